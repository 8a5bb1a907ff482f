"""Checkpoints and resume: an interrupted run continues to exactly the uninterrupted result."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bpcli.lifecycle import resume, train
from bpcli.rundir.run import read_curves
from conftest import CONFIGS, InterruptAt, cli, config


def files(run):
    return {name: (run / name).read_bytes() for name in ("metrics.csv", "data.csv", "config.yaml")}


@pytest.mark.parametrize(
    "name,changes,stop_at",
    [
        ("exp1.yaml", {}, 4),  # mid-epoch: the second epoch's first sample
        ("exp1.yaml", {}, 152),
        ("exp1.yaml", {"train__grad": "autograd"}, 299),
        ("exp2.yaml", {"train__log_every": 1, "train__epochs": 600}, 1),
        ("exp3.yaml", {"train__log_every": 7, "train__epochs": 1500}, 777),
        ("exp3.yaml", {"train__log_every": 10, "train__epochs": 1500, "train__grad": "manual"}, 1490),
        # optimizer state and the shuffled order of the epoch it stopped in carry over
        ("exp1.yaml", {"train__momentum": 0.9, "train__nesterov": True}, 7),
        ("exp2.yaml", {"train__optimizer": "adam", "train__batch_size": 30, "train__log_every": 1,
                       "train__epochs": 40}, 17),
        ("exp2.yaml", {"train__momentum": 0.5, "train__grad": "manual", "train__epochs": 300, "train__log_every": 3}, 123),
        ("exp3.yaml", {"train__optimizer": "adam", "train__batch_size": 16, "train__log_every": 5,
                       "train__epochs": 50}, 110),
        ("mlp.yaml", {"train__momentum": 0.9, "train__batch_size": 64, "train__weight_decay": 1e-3,
                      "train__epochs": 30, "train__log_every": 1}, 45),
    ],
)
def test_resume_after_an_interrupt_is_bit_identical(tmp_path, name, changes, stop_at):
    cfg = config(name, **changes)
    whole = train(cfg, tmp_path / "whole", plots=False)

    stopped = train(cfg, tmp_path / "cut", plots=False, observer=InterruptAt(stop_at))
    assert stopped.status == "interrupted" and stopped.signal == signal.SIGINT
    assert stopped.steps == stop_at
    assert json.loads((tmp_path / "cut/summary.json").read_text())["status"] == "interrupted"

    resumed = resume(tmp_path / "cut", plots=False)
    assert resumed.status == "completed"
    assert resumed.params == whole.params  # exact float equality
    assert resumed.losses == whole.losses
    assert files(tmp_path / "cut") == files(tmp_path / "whole")


def test_resume_can_extend_the_epochs(tmp_path):
    train(config("exp2.yaml", train__epochs=1000), tmp_path / "short", plots=False)
    extended = resume(tmp_path / "short", epochs=3000, plots=False)
    whole = train(config("exp2.yaml"), tmp_path / "whole", plots=False)
    assert extended.params == whole.params
    assert json.loads((tmp_path / "short/summary.json").read_text())["epochs"] == 3000


def test_periodic_checkpoints_survive_a_hard_kill(tmp_path):
    args = [sys.executable, "-m", "bpcli", "train", CONFIGS / "exp3.yaml", "--device", "cpu", "--epochs",
            "3000000", "--log-every", "10", "--set", "train.checkpoint_every=250", "--no-plots", "--out", "killed"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = Path("killed/checkpoint.pt")
    try:
        # The first checkpoint is at step 250, the 26th logged row (steps 1, 10, …, 250):
        # wait for it and for rows after it, which the resume must drop and log again.
        _wait_until(lambda: checkpoint.exists() and _rows(Path("killed/metrics.csv")) > 26)
    finally:
        proc.kill()  # SIGKILL: no handler runs, rows after the checkpoint are left behind
        proc.wait()
    assert json.loads(Path("killed/summary.json").read_text())["status"] == "running"
    saved = torch.load(checkpoint, weights_only=True)["step"]
    assert saved % 250 == 0

    # Resuming to a shorter end keeps the test fast: the rows up to the checkpoint are kept,
    # the rest are logged again, and the result equals an uninterrupted run of that length.
    end_epochs = saved + 500
    result = cli("train", "--resume", "killed", "--epochs", end_epochs, "--no-plots", "-q")
    assert result.exit_code == 0, result.output
    whole = train(config("exp3.yaml", train__epochs=end_epochs, train__log_every=10,
                         train__checkpoint_every=250), "whole", plots=False)
    assert Path("killed/metrics.csv").read_bytes() == Path("whole/metrics.csv").read_bytes()
    assert json.loads(Path("killed/summary.json").read_text())["params"] == whole.params


def _start_long_run(out):
    return subprocess.Popen(
        [sys.executable, "-m", "bpcli", "train", CONFIGS / "exp3.yaml", "--device", "cpu", "--epochs", "20000",
         "--log-every", "50", "--no-plots", "--out", out],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _rows(path):
    """The data rows a metrics.csv holds so far (0 before it exists)."""
    return max(len(path.read_text().splitlines()) - 1, 0) if path.is_file() else 0


def _wait_until(condition, timeout=60):
    """Poll `condition` until it holds; fail the test if it does not within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {timeout} s for a training subprocess that never got there")
        time.sleep(0.02)


@pytest.mark.parametrize("signum,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_at_a_random_moment_then_resume_gives_the_uninterrupted_result(signum, code):
    proc = _start_long_run("cut")
    try:
        _wait_until(lambda: _rows(Path("cut/metrics.csv")) >= 5)
    except BaseException:
        proc.kill()
        raise
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "resume with: bpcli train --resume cut" in err and "Traceback" not in err
    summary = json.loads(Path("cut/summary.json").read_text())
    assert summary["status"] == "interrupted" and 0 < summary["steps"] < 20000

    result = cli("train", "--resume", "cut", "--no-plots", "-q")
    assert result.exit_code == 0, result.output
    whole = train(config("exp3.yaml", train__epochs=20000, train__log_every=50), "whole", plots=False)
    assert json.loads(Path("cut/summary.json").read_text())["params"] == whole.params
    assert Path("cut/metrics.csv").read_bytes() == Path("whole/metrics.csv").read_bytes()


def _finished_run(out="run"):
    assert cli("train", CONFIGS / "exp2.yaml", "--epochs", "20", "--no-plots", "--out", out, "-q").exit_code == 0
    return Path(out)


@pytest.mark.parametrize(
    "damage,expected",
    [
        (lambda run: (run / "checkpoint.pt").write_bytes(b"not a checkpoint"), "corrupt or truncated"),
        (lambda run: (run / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes()[:200]),
         "corrupt or truncated"),
        (lambda run: (run / "checkpoint.pt").unlink(), "no checkpoint"),
        (lambda run: torch.save({"step": 3}, run / "checkpoint.pt"), "not a bpcli checkpoint"),
        (lambda run: (run / "config.yaml").write_text(
            (run / "config.yaml").read_text().replace("lr: 0.01", "lr: 0.02")), "different config"),
        (lambda run: (run / "config.yaml").unlink(), "not a run directory"),
        (lambda run: (run / "config.yaml").write_text("kind: [\n"), "config.yaml: line"),
        (lambda run: (run / "metrics.csv").unlink(), "not a complete run directory (missing metrics.csv)"),
        (lambda run: (run / "summary.json").write_text("{"), "summary.json: missing or corrupt"),
    ],
)
def test_a_damaged_run_is_refused_with_one_line(damage, expected):
    run = _finished_run()
    damage(run)
    result = cli("train", "--resume", run, "--epochs", "40")
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.output


def test_resume_refuses_other_flags_and_needs_more_epochs():
    run = _finished_run()
    result = cli("train", "--resume", run, "--lr", "0.5")
    assert result.exit_code == 2 and "drop --lr" in result.stderr
    result = cli("train", "--resume", run)
    assert result.exit_code == 2 and "already trained 20 steps" in result.stderr
    result = cli("train", "--resume", "nowhere")
    assert result.exit_code == 2 and "nowhere: no such run directory" in result.stderr
    Path("empty").mkdir()
    result = cli("train", "--resume", "empty")
    assert result.exit_code == 2 and "not a run directory (no config.yaml)" in result.stderr


@pytest.mark.parametrize("changes,expected", [
    ({}, "68cb1d67f9ff3bfb8c536dcfae2f44c16e5d6ea10b4ccc56a4f8d374751ef401"),
    ({"train__momentum": 0.9, "train__nesterov": True}, "dd9988bfe38512c86b071f1ef9f80cbe34e5034b3cc6fffbd93d58ac7bd4a2f7"),
])
def test_a_checkpoint_written_before_the_optimizer_registry_still_belongs_to_its_config(changes, expected):
    # the hashes bpcli wrote before train gained schedules and every rule's settings
    from bpcli.rundir.checkpoint import _hash_before_the_registry

    assert _hash_before_the_registry(config("exp2.yaml", **changes)) == expected
    assert _hash_before_the_registry(config("exp2.yaml", train__schedule="cosine")) is None
def test_a_resumed_run_leaves_no_figure_of_the_run_before_it():
    # The SVGs drawn before the resume, and descent.gif, showed the run as it stopped.
    assert cli("train", CONFIGS / "exp2.yaml", "--epochs", "300", "--out", "run").exit_code == 0
    assert cli("plot", "run", "--format", "svg").exit_code == 0
    assert cli("animate", "run", "--frames", "2").exit_code == 0
    before = {p.name: p.read_bytes() for p in Path("run").glob("*.svg")}
    assert {"loss.svg", "fit.svg", "params.svg", "landscape.svg"} <= set(before)
    assert cli("train", "--resume", "run", "--epochs", "600").exit_code == 0
    after = {p.name: p.read_bytes() for p in Path("run").glob("*.svg")}
    assert set(after) == set(before)
    assert all(after[name] != before[name] for name in before)  # redrawn: 600 epochs, not 300
    assert not Path("run/descent.gif").exists()
    assert not list(Path("run").glob("*.pdf"))  # only the formats that were there


def test_a_resumed_mlp_adds_its_curves_to_those_taken_before():
    assert cli("train", CONFIGS / "mlp.yaml", "--epochs", "100", "--log-every", "10", "--out", "run",
               "--no-plots").exit_code == 0
    before = read_curves(Path("run"))
    assert before[0][0] == 0 and before[-1][0] == 100
    assert cli("train", "--resume", "run", "--epochs", "300", "--no-plots").exit_code == 0
    after = read_curves(Path("run"))
    assert after[:len(before)] == before and after[-1][0] == 300 and len(after) <= 8 + len(before)


class CopiedAfter:
    """An observer that copies the run directory after step `step`: what a SIGKILL then leaves."""

    def __init__(self, step, source, copy):
        self.step, self.source, self.copy = step, source, copy

    def on_start(self, *args):
        pass

    def on_log(self, row):
        pass

    def on_progress(self, step):
        if step == self.step:
            import shutil

            shutil.copytree(self.source, self.copy)


@pytest.mark.parametrize("lr,checkpoint_every,killed", [(1.2, 9, 9), (3.0, 3, 3), (1.0, 8, 16)])
def test_a_run_that_broke_the_rule_before_its_checkpoint_resumes_to_the_same_divergence(tmp_path, lr,
                                                                                         checkpoint_every, killed):
    """The loss grew past the rule between logged steps, before the checkpoint: the resumed run
    still names the step it happened at (the checkpoint keeps the last logged good state)."""
    changes = {"train__lr": lr, "train__epochs": 100, "train__log_every": 10,
               "train__checkpoint_every": checkpoint_every}
    whole = train(config("exp2.yaml", **changes), tmp_path / "whole", plots=False)
    assert whole.status == "diverged" and whole.steps < killed + 10
    train(config("exp2.yaml", **changes), tmp_path / "run", plots=False,
          observer=CopiedAfter(killed, tmp_path / "run", tmp_path / "killed"))
    assert torch.load(tmp_path / "killed/checkpoint.pt", weights_only=True)["step"] == killed
    resumed = resume(tmp_path / "killed", plots=False)
    assert resumed.status == "diverged"
    assert resumed.summary["divergence"]["step"] == whole.summary["divergence"]["step"]
    assert resumed.summary["divergence"]["message"] == whole.summary["divergence"]["message"]
    assert (tmp_path / "killed/metrics.csv").read_bytes() == (tmp_path / "whole/metrics.csv").read_bytes()
