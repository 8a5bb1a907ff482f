"""`bpcli runs`: a line for every run and sweep in a folder, so outputs/run7 can be found again."""

import json
from pathlib import Path

import pytest

from conftest import CONFIGS, cli


def fake_run(path, **summary):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text("kind: linear-gd\n")
    (path / "summary.json").write_text(json.dumps(summary))


def rows(stdout):
    return [line for line in stdout.splitlines() if line.startswith("│")]


def test_runs_lists_every_run_in_natural_order_with_its_config_and_result(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert cli("train", CONFIGS / "exp2.yaml", "--no-plots", "-q", "--epochs", "50", "--lr", "0.1").exit_code == 0
    assert cli("train", CONFIGS / "exp1.yaml", "--no-plots", "-q", "--out", "outputs/run10").exit_code == 0
    assert cli("train", CONFIGS / "exp1.yaml", "--no-plots", "-q", "--out", "outputs/run9", "--epochs", "2").exit_code == 0
    Path("outputs/notes").mkdir()  # a folder of the user's, not a run: left out
    result = cli("runs")
    assert result.exit_code == 0, result.output
    lines = rows(result.stdout)
    assert [line.split("│")[1].strip() for line in lines] == ["run1", "run9", "run10"]  # by number, not as text
    first = [cell.strip() for cell in lines[0].split("│")[1:-1]]
    assert first[:5] == ["run1", "linear-gd", "exp2.yaml", "lr 0.1, seed 0", "completed"]
    assert first[5] == "50"
    summary = json.loads(Path("outputs/run1/summary.json").read_text())
    assert float(first[6]) == pytest.approx(summary["final_loss"], rel=1e-3)
    assert first[7] == f"R² {summary['r2']['train']:.4g}"


def test_a_classifiers_accuracy_a_damaged_run_and_a_sweep_are_each_told(monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    fake_run(Path("outputs/run2"), kind="logistic", status="completed", steps=100, lr=0.5, seed=3,
             optimizer="adam", final_loss=0.25, accuracy={"train": 0.875}, config_file="configs/moons.yaml")
    Path("outputs/run3").mkdir()
    (Path("outputs/run3") / "summary.json").write_text("{ torn")
    Path("outputs/sweep1").mkdir()
    (Path("outputs/sweep1") / "sweep.json").write_text(json.dumps(
        {"kind": "nn-linear", "grid": {"train.lr": [0.1, 0.2], "seed": [0, 1, 2]}, "members": 6, "status": "completed"}))
    result = cli("runs")
    assert result.exit_code == 0, result.output
    cells = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[1:-1]] for line in rows(result.stdout)}
    assert cells["run2"][1:5] == ["logistic", "moons.yaml", "lr 0.5, adam, seed 3", "completed"]
    assert cells["run2"][7] == "accuracy 87.5%"
    assert cells["run3"][4] == "damaged: summary.json unreadable"
    assert cells["sweep1"][1] == "nn-linear sweep (6)"
    assert cells["sweep1"][3] == "train.lr: 2 values; seed: 3 values"


@pytest.mark.parametrize("columns", [40, 60, 90])
def test_a_narrow_terminal_gets_a_line_per_run_and_every_value(monkeypatch, columns):
    fake_run(Path("outputs/run1"), kind="linear-gd", status="completed", steps=3000, lr=0.01, seed=0,
             final_loss=0.000145514, r2={"train": 0.99991}, config_file="configs/exp2.yaml")
    monkeypatch.setenv("COLUMNS", str(columns))
    result = cli("runs")
    assert result.exit_code == 0
    assert "…" not in result.stdout
    for value in ("run1", "linear-gd", "exp2.yaml", "lr 0.01", "completed", "3000", "0.0001455", "R² 0.9999"):
        assert value in result.stdout


def test_runs_of_a_folder_that_is_not_there_is_one_line_and_exit_2():
    result = cli("runs", "elsewhere")
    assert result.exit_code == 2
    assert result.stderr.strip() == ("error: elsewhere: no such folder; runs are written to outputs/ unless "
                                     "--out says otherwise")


def test_an_empty_folder_says_how_to_make_a_run():
    Path("outputs").mkdir()
    result = cli("runs")
    assert result.exit_code == 0 and "no run directories yet" in result.stdout
