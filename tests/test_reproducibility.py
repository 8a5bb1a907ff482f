"""Same config and seed, same bytes; `bpcli rerun --verify` proves it for a recorded run."""

import json
from pathlib import Path

import pytest

from bpcli.devices import resolve_device
from conftest import CONFIGS, cli


@pytest.mark.parametrize("name", ["exp1.yaml", "exp2.yaml", "exp3.yaml"])
def test_the_same_config_and_seed_give_byte_identical_metrics(name):
    for out in ("a", "b"):
        assert cli("train", CONFIGS / name, "--epochs", "200", "--seed", "7", "--out", out,
                   "--no-plots", "-q").exit_code == 0
    assert Path("a/metrics.csv").read_bytes() == Path("b/metrics.csv").read_bytes()
    assert Path("a/data.csv").read_bytes() == Path("b/data.csv").read_bytes()


def test_different_seeds_give_different_data():
    for out, seed in (("a", "1"), ("b", "2")):
        assert cli("train", CONFIGS / "exp2.yaml", "--epochs", "5", "--seed", seed, "--out", out,
                   "--no-plots", "-q").exit_code == 0
    assert Path("a/data.csv").read_bytes() != Path("b/data.csv").read_bytes()


def test_rerun_verify_confirms_a_run_and_writes_nothing():
    assert cli("train", CONFIGS / "exp3.yaml", "--epochs", "300", "--out", "run", "-q").exit_code == 0
    before = sorted(Path(".").rglob("*"))
    result = cli("rerun", "run", "--verify")
    assert result.exit_code == 0, result.output
    assert "reproduces" in result.stdout and "16 logged losses" in result.stdout
    assert sorted(Path(".").rglob("*")) == before
    result = cli("rerun", "run", "--verify", "--steps", "3")
    assert result.exit_code == 0 and "3 logged losses" in result.stdout


def test_rerun_verify_reports_the_first_difference_and_the_versions():
    assert cli("train", CONFIGS / "exp2.yaml", "--epochs", "100", "--log-every", "10", "--out", "run",
               "-q").exit_code == 0
    metrics = Path("run/metrics.csv")
    lines = metrics.read_text().splitlines()
    cells = lines[3].split(",")
    cells[2] = repr(float(cells[2]) * (1 + 1e-6))
    lines[3] = ",".join(cells)
    metrics.write_text("\n".join(lines) + "\n")
    result = cli("rerun", "run", "--verify")
    assert result.exit_code == 1
    assert "does not reproduce" in result.stdout and "step 20" in result.stdout
    assert "the loss at step 20" in result.stderr and "torch" in result.stderr
    # The first two logged losses still match.
    assert cli("rerun", "run", "--verify", "--steps", "2").exit_code == 0


def test_rerun_without_verify_makes_a_new_run_with_the_recorded_config():
    assert cli("train", CONFIGS / "exp2.yaml", "--epochs", "50", "--lr", "0.05", "--out", "first",
               "-q").exit_code == 0
    result = cli("rerun", "first", "--out", "second", "-q")
    assert result.exit_code == 0, result.output
    assert Path("first/metrics.csv").read_bytes() == Path("second/metrics.csv").read_bytes()
    assert json.loads(Path("second/summary.json").read_text())["lr"] == 0.05


def test_the_run_records_what_explains_a_mismatch():
    assert cli("train", CONFIGS / "exp2.yaml", "--epochs", "5", "--out", "run", "-q").exit_code == 0
    summary = json.loads(Path("run/summary.json").read_text())
    assert summary["torch_version"] and summary["seed"] == 0
    assert summary["device"] == str(resolve_device("auto"))  # exp2 says auto: the device it resolved to
