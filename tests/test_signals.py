"""Signals at any moment: Ctrl-C sent to train, sweep, plot and animate at random times
ends each in exit 130 with the truth recorded, or in a clean completed run when it came
after the work was done, and never leaves half a file."""

import json
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import CONFIGS, cli

EXP2 = CONFIGS / "exp2.yaml"
SEEDS = range(2)
# Each command with the window its signal is drawn from: seconds after the command began
# (after Python started; see _begun), to about when it ends, all eight running at once.
COMMANDS = {
    "train": (["train", EXP2, "--device", "cpu", "--epochs", "300", "--log-every", "50", "-q"], 5.0),
    "sweep": (["sweep", EXP2, "--grid", "lr=0.01,0.1", "--device", "cpu", "--epochs", "300", "-q"], 5.0),
    "plot": (["plot"], 4.0),
    "animate": (["animate", "--frames", "10"], 4.0),
}

pytestmark = pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="reads /proc to see a command begin")


def _begun(job):
    """Whether the command has begun: it catches SIGTERM (bpcli.interrupts.defer), which Python
    alone does not. Before, a signal lands in Python's own start-up, whose traceback is Python's."""
    try:
        for line in Path(f"/proc/{job.pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    except OSError:
        pass
    return job.poll() is not None


def _interrupt(job, delay, times):
    end = time.monotonic() + 60
    while not _begun(job) and time.monotonic() < end:
        time.sleep(0.01)
    time.sleep(delay)
    for _ in range(times):
        if job.poll() is None:
            job.send_signal(signal.SIGINT)
            time.sleep(0.15)


def _whole(path):
    """Whether an image file reads back whole (every frame of a GIF)."""
    from PIL import Image

    with Image.open(path) as image:
        for frame in range(getattr(image, "n_frames", 1)):
            image.seek(frame)
            image.load()
    return True


def _status(folder):
    for name in ("summary.json", "sweep.json"):
        if (folder / name).is_file():
            return json.loads((folder / name).read_text())["status"]
    return None


def _start(name, seed):
    args, window = COMMANDS[name]
    folder = Path(f"{name}{seed}")
    if name in ("plot", "animate"):
        shutil.copytree("source", folder, symlinks=True)
        args = [args[0], folder, *args[1:]] + (["--force"] if name == "animate" else [])
    else:
        args = [*args, "--out", folder]
    job = subprocess.Popen([sys.executable, "-m", "bpcli", *map(str, args)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    chance = random.Random(f"{name}{seed}")
    return job, folder, chance.uniform(0.0, window), 2 if seed == 1 else 1  # the second seed: Ctrl-C twice


def test_ctrl_c_at_any_moment_ends_in_130_and_the_truth_or_completes():
    assert cli("train", EXP2, "--device", "cpu", "--epochs", "30", "-q", "--out", "source").exit_code == 0
    assert cli("animate", "source", "--frames", "3").exit_code == 0
    jobs = [(name, *_start(name, seed)) for name in COMMANDS for seed in SEEDS]
    senders = [threading.Thread(target=_interrupt, args=(job, delay, times)) for _, job, _, delay, times in jobs]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join()
    for name, job, folder, delay, times in jobs:
        _, err = job.communicate(timeout=120)
        where = f"{name} {folder}, Ctrl-C ×{times} at {delay:.2f} s: exit {job.returncode}, {err!r}"
        assert job.returncode in (0, 130), where
        assert "unexpected" not in err and "Traceback" not in err, where
        left = [p.name for p in folder.glob("*") if p.name.endswith(".tmp")] if folder.exists() else []
        assert left == [], where
        if name in ("train", "sweep"):
            # No directory: stopped before it was made. Otherwise it says how the run ended.
            if folder.exists():
                assert _status(folder) == ("completed" if job.returncode == 0 else "interrupted"), where
        else:
            if job.returncode == 0:
                assert err == "" or "note:" in err, where
            for image in [*folder.glob("*.png"), *folder.glob("*.gif")]:
                assert _whole(image), f"{where}: {image.name} is not whole"


def test_a_sweep_stopped_before_its_first_step_is_interrupted(monkeypatch):
    # A signal while the members are built (the directory made, no step yet) is honoured
    # before the first step; the sweep then has no logged loss at all.
    import bpcli.sweep
    from bpcli import interrupts

    built = bpcli.sweep.build

    def build(*args, **kwargs):
        interrupts.pending = signal.SIGINT  # as the deferred handler records a Ctrl-C
        return built(*args, **kwargs)

    monkeypatch.setattr(bpcli.sweep, "build", build)
    result = cli("sweep", EXP2, "--grid", "lr=0.01,0.1", "--device", "cpu", "--epochs", "5", "--out", "s")
    assert result.exit_code == 130, result.output
    assert "unexpected" not in result.stderr and "step 0" in result.stderr
    info = json.loads(Path("s/sweep.json").read_text())
    assert info["status"] == "interrupted" and info["steps"] == 0
    assert Path("s/metrics.csv").read_text() == "step,member,loss\n"


def test_a_ctrl_c_while_a_sweep_writes_its_last_files_leaves_it_completed(monkeypatch):
    # Training is over: the files that end the sweep are written whole, and the sweep is
    # what it was (as a run's: StopRequest.held), not `interrupted` half-way through them.
    import bpcli.plots
    from bpcli import interrupts

    drawn = bpcli.plots.draw_sweep

    def draw_sweep(*args, **kwargs):
        interrupts.pending = signal.SIGINT  # as the deferred handler records a Ctrl-C
        return drawn(*args, **kwargs)

    monkeypatch.setattr(bpcli.plots, "draw_sweep", draw_sweep)
    result = cli("sweep", EXP2, "--grid", "lr=0.01,0.1", "--device", "cpu", "--epochs", "5", "--out", "s", "-q")
    assert result.exit_code == 0, result.output
    assert json.loads(Path("s/sweep.json").read_text())["status"] == "completed"
    assert _whole(Path("s/losses.png")) and _whole(Path("s/lr.png"))
    interrupts.take()
