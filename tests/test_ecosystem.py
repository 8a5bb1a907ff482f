"""Fitting the tools people already use: TensorBoard event files and shell completion."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CONFIGS, ROOT, cli


def test_tensorboard_gets_the_logged_curves():
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = cli("train", CONFIGS / "exp2.yaml", "--set", "log.tensorboard=true", "--out", "run", "-q")
    assert result.exit_code == 0, result.output
    assert list(Path("run").glob("events.out.tfevents.*"))
    events = EventAccumulator("run")
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"loss/loss", "params/w", "params/b", "grads/w", "grads/b", "lr"} <= tags
    losses = [e.value for e in events.Scalars("loss/loss")]
    metrics = [float(line.split(",")[2]) for line in Path("run/metrics.csv").read_text().splitlines()[1:]]
    assert losses == pytest.approx(metrics, rel=1e-6)
    assert [e.step for e in events.Scalars("lr")] == [1, 500, 1000, 1500, 2000, 2500, 3000]


def test_a_sweep_writes_one_tensorboard_run_per_member_or_per_setting(monkeypatch):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from bpcli import sweep_results

    args = ["sweep", CONFIGS / "exp2.yaml", "--grid", "lr=0.01,0.1", "--grid", "seed=0:2",
            "--set", "log.tensorboard=true", "-q"]
    assert cli(*args, "--out", "small").exit_code == 0
    runs = sorted(p.name for p in Path("small/tensorboard").iterdir())
    assert runs == ["lr=0.01,seed=0", "lr=0.01,seed=1", "lr=0.1,seed=0", "lr=0.1,seed=1"]
    events = EventAccumulator("small/tensorboard/lr=0.1,seed=1")
    events.Reload()
    member = next(r for r in csv.DictReader(open("small/summary.csv")) if r["train.lr"] == "0.1" and r["seed"] == "1")
    assert events.Scalars("loss/loss")[-1].value == pytest.approx(float(member["final_loss"]), rel=1e-6)
    assert events.Scalars("params/w")[-1].value == pytest.approx(float(member["w"]), rel=1e-6)

    monkeypatch.setattr(sweep_results, "TENSORBOARD_MEMBERS", 2)  # 4 members are now many: one run per lr
    assert cli(*args, "--out", "large").exit_code == 0
    assert sorted(p.name for p in Path("large/tensorboard").iterdir()) == ["lr=0.01", "lr=0.1"]
    events = EventAccumulator("large/tensorboard/lr=0.01")
    events.Reload()
    assert events.Tags()["scalars"] == ["loss/median"]


def test_tensorboard_without_the_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    result = cli("train", CONFIGS / "exp2.yaml", "--set", "log.tensorboard=true", "--out", "run")
    assert result.exit_code == 2
    assert "pip install 'bpcli[tensorboard]'" in result.stderr
    assert not Path("run").exists()
    result = cli("sweep", CONFIGS / "exp2.yaml", "--grid", "seed=0:2", "--set", "log.tensorboard=true", "--out", "sw")
    assert result.exit_code == 2 and "pip install 'bpcli[tensorboard]'" in result.stderr
    assert not Path("sw").exists()


def complete(words):
    env = dict(os.environ, _BPCLI_COMPLETE="complete_zsh", _TYPER_COMPLETE_ARGS=words)
    out = subprocess.run([sys.executable, "-m", "bpcli"], env=env, capture_output=True, text=True, cwd=ROOT)
    return out.stdout


def test_shell_completion_offers_commands_options_and_configs():
    assert "train" in complete("bpcli tr") and "explain" not in complete("bpcli tr")
    assert "--log-every" in complete("bpcli train --lo")
    offered = complete("bpcli train configs/ex")
    assert "configs/exp1.yaml" in offered and "configs/exp3.yaml" in offered and "mlp" not in offered


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts_are_available(shell):
    # Typer detects the user's shell from the process tree, which a test runner may not
    # have; its own switch makes --show-completion take the shell's name instead.
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    out = subprocess.run([sys.executable, "-m", "bpcli", "--show-completion", shell], capture_output=True,
                         text=True, env=env)
    assert out.returncode == 0
    assert "_BPCLI_COMPLETE" in out.stdout
