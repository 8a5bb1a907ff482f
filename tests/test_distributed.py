"""torchrun: data-parallel training on CPU (gloo) equals the single-process run."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import bpcli
from conftest import CONFIGS, cli

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="torchrun jobs are tested on Linux")


def torchrun(*args, processes=2, timeout=180):
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", "bpcli", *map(str, args)]
    env = dict(os.environ, BPCLI_DIST_TIMEOUT="60", OMP_NUM_THREADS="1")
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def _in_bpcli(traceback_line):
    """Whether a line of a traceback names a file of the bpcli package being tested."""
    package = Path(bpcli.__file__).parent
    return any(f'File "{folder}{os.sep}' in traceback_line for folder in {str(package), str(package.resolve())})


def summary(run):
    return json.loads(Path(run, "summary.json").read_text())


@pytest.mark.parametrize(
    "name,settings",
    [
        ("exp3.yaml", ["--set", "data.n=51"]),  # 26 + 25 rows: the uneven shards are weighted
        ("exp3.yaml", ["--set", "data.n=51", "--set", "train.grad=manual"]),
        ("exp2.yaml", ["--set", "data.n=101", "--set", "train.grad=manual"]),
        # An MLP's training amplifies float32 rounding (sums are added in another order
        # across processes), so its equality is checked in float64.
        ("mlp.yaml", ["--set", "data.n=201", "--set", "dtype=float64"]),
    ],
)
def test_two_processes_give_the_single_process_result(name, settings):
    args = [CONFIGS / name, "--device", "cpu", "--epochs", "600", "--log-every", "50", "--no-plots", *settings]
    job = torchrun("train", *args, "--out", "two", "-q")
    assert job.returncode == 0, job.stderr[-2000:]
    assert job.stdout.strip().splitlines()[-1] == "two"  # rank 0 alone prints
    assert cli("train", *args, "--out", "one", "-q").exit_code == 0
    two, one = summary("two"), summary("one")
    assert two["processes"] == 2 and one["processes"] == 1
    for param, values in one["params"].items():
        if isinstance(values, list):
            assert two["params"][param] == pytest.approx(values, abs=1e-6)
    assert two["final_loss"] == pytest.approx(one["final_loss"], rel=1e-5)
    assert sorted(p.name for p in Path(".").iterdir()) == ["one", "two"]  # one run directory per job


def test_a_sweep_splits_its_members_across_processes():
    args = [CONFIGS / "exp2.yaml", "--grid", "lr=0.001,0.01,0.1", "--grid", "seed=0:3", "--device", "cpu",
            "--epochs", "300"]
    job = torchrun("sweep", *args, "--out", "two", "-q")
    assert job.returncode == 0, job.stderr[-2000:]
    assert cli("sweep", *args, "--out", "one", "-q").exit_code == 0
    assert Path("two/summary.csv").read_text() == Path("one/summary.csv").read_text()
    assert json.loads(Path("two/sweep.json").read_text())["processes"] == 2


def test_a_rank_without_data_fails_clearly_on_every_rank(tmp_path):
    config = tmp_path / "one-row.yaml"
    config.write_text("kind: linear-gd\ndevice: cpu\ndata:\n  x: [1.0]\n  y: [2.0]\n")
    job = torchrun("train", config, timeout=120)
    assert job.returncode != 0
    assert "error: [rank 0] the data has 1 training rows for 2 processes, so rank 1 would get none" in job.stderr
    assert "error: [rank 1]" in job.stderr
    # No traceback through bpcli's own code: torchrun prints its own, from files that may
    # live anywhere, even under a folder called bpcli, so only bpcli's package is looked for.
    assert not [line for line in job.stderr.splitlines() if _in_bpcli(line)], job.stderr


def test_per_sample_training_refuses_torchrun():
    job = torchrun("train", CONFIGS / "exp1.yaml", "--device", "cpu", timeout=120)
    assert job.returncode != 0
    assert "scalar-sgd updates after every single sample" in job.stderr


def test_when_rank_0_cannot_write_the_job_ends_with_its_reason_and_no_backend_noise():
    Path("taken").mkdir()
    Path("taken/notes.txt").write_text("not a sweep")
    job = torchrun("sweep", CONFIGS / "exp2.yaml", "--grid", "seed=0:4", "--device", "cpu", "--out", "taken",
                   timeout=120)
    assert job.returncode != 0
    assert "error: [rank 0] taken: already holds files" in job.stderr
    # Rank 1 either says it lost rank 0 or is ended by torchrun first; never a raw gloo error.
    assert "unexpected" not in job.stderr and Path("taken/notes.txt").read_text() == "not a sweep"


def test_a_failed_collective_is_reported_as_a_lost_process():
    from bpcli.distributed import collective
    from bpcli.errors import RunFailed

    with pytest.raises(RunFailed, match="lost another process of this torchrun job"):
        with collective():
            raise RuntimeError("[gloo/transport/tcp/pair.cc:553] Connection closed by peer")


def _children(pid):
    """The processes whose parent is `pid` (read from /proc/<child>/stat, whose fourth field is the ppid)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # The second field, the command in parentheses, may itself hold spaces or ')'.
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


def _rank_of(pid):
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    ranks = [int(v.partition(b"=")[2]) for v in environ if v.startswith(b"RANK=")]
    return ranks[0] if ranks else None


def test_a_rank_that_dies_ends_the_job_instead_of_hanging():
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2", "-m", "bpcli",
               "train", str(CONFIGS / "exp3.yaml"), "--device", "cpu", "--epochs", "10000000", "--log-every",
               "1000", "--no-plots", "--out", "doomed"]
    env = dict(os.environ, BPCLI_DIST_TIMEOUT="30", OMP_NUM_THREADS="1")
    job = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        # Rank 1 is the worker that torchrun (our own child, job.pid) started with RANK=1;
        # no other process on the machine is looked at beyond its parent id.
        deadline = time.monotonic() + 60
        victim = None
        while victim is None and time.monotonic() < deadline:
            if Path("doomed/metrics.csv").is_file():  # both ranks are training
                victim = next((pid for pid in _children(job.pid) if _rank_of(pid) == 1), None)
            if victim is None:
                time.sleep(0.2)
        assert victim is not None, "torchrun started no worker with RANK=1"
        os.kill(victim, signal.SIGKILL)
        job.wait(timeout=120)
    finally:
        if job.poll() is None:  # the test failed: end its workers, then torchrun
            for pid in _children(job.pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            job.kill()
            job.wait()
    assert job.returncode != 0


def test_a_torchrun_run_resumes_under_torchrun():
    args = [CONFIGS / "exp3.yaml", "--device", "cpu", "--log-every", "50", "--no-plots", "--set", "data.n=51"]
    assert torchrun("train", *args, "--epochs", "300", "--out", "two", "-q").returncode == 0
    job = torchrun("train", "--resume", "two", "--epochs", "600", "--no-plots", "-q")
    assert job.returncode == 0, job.stderr[-2000:]
    assert cli("train", *args, "--epochs", "600", "--out", "one", "-q").exit_code == 0
    two, one = summary("two"), summary("one")
    assert two["params"]["w"] == pytest.approx(one["params"]["w"], abs=1e-6)
    assert two["steps"] == 600 and two["resumed_from"][0]["step"] == 300
    steps = [line.split(",")[0] for line in Path("two/metrics.csv").read_text().splitlines()[1:]]
    assert steps == [line.split(",")[0] for line in Path("one/metrics.csv").read_text().splitlines()[1:]]
