"""Off the happy path: every run ends with the truth, a clear message and nothing lost.

Runs that diverge, disks that fill, plots that fail, pipes that close, --force and --out
aimed at the wrong place, two processes at once, and a verification that is interrupted
or handed a file that is not the run's.
"""

import errno
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bpcli.lifecycle import train
from conftest import CONFIGS, cli, config

EXP1, EXP2, EXP3 = CONFIGS / "exp1.yaml", CONFIGS / "exp2.yaml", CONFIGS / "exp3.yaml"


def summary(run):
    return json.loads((Path(run) / "summary.json").read_text())


def rows(run):
    lines = (Path(run) / "metrics.csv").read_text().splitlines()
    header = lines[0].split(",")
    return [dict(zip(header, map(float, line.split(",")))) for line in lines[1:]]


def one_line(result):
    lines = result.stderr.strip().splitlines()
    return len(lines) == 1 and "Traceback" not in result.output and "unexpected" not in result.stderr


# --------------------------------------------------------------------------- divergence


def first_bad_step_exp2(lr, seed=0, steps=3000, factor=1e4):
    """The article's experiment-2 loop, watched: the first step whose loss, or whose updated
    parameters, are not finite, or whose loss is over `factor` times the first (None if none)."""
    torch.manual_seed(seed)
    x = torch.rand([100])
    y = 4 * x + 0.6
    w = torch.rand(1, requires_grad=True)
    b = torch.rand(1, requires_grad=True)
    first = None
    for step in range(1, steps + 1):
        loss = (x * w + b - y).pow(2).mean()
        first = loss.item() if first is None else first
        if loss.item() > factor * first:
            return step
        for p in (w, b):
            if p.grad is not None:
                p.grad.data.zero_()
        loss.backward()
        w.data -= lr * w.grad.data
        b.data -= lr * b.grad.data
        if not (math.isfinite(loss.item()) and math.isfinite(w.item()) and math.isfinite(b.item())):
            return step
    return None


@pytest.mark.parametrize("lr", [1.0, 1.194, 2.39, 5.5, 80, 8e29])
def test_a_diverging_run_stops_at_the_first_step_that_is_not_finite(lr):
    expected = first_bad_step_exp2(lr)
    result = cli("train", EXP2, "--lr", lr, "--device", "cpu", "--out", "d", "--no-plots")
    assert result.exit_code == 1 and one_line(result), result.output
    record = summary("d")
    assert record["status"] == "diverged" and record["divergence"]["step"] == record["steps"] == expected
    assert f"training diverged at step {expected}:" in result.stderr
    assert "too large" in result.stderr and "Try --lr 0.398" in result.stderr  # the stable lr, halved
    assert all(math.isfinite(v) for values in record["params"].values() for v in values)  # the last finite fit
    assert rows("d")[-1]["step"] == expected


@pytest.mark.parametrize("lr", [1.3, 40.0])
def test_where_a_run_diverges_does_not_depend_on_how_often_it_logs(lr):
    assert cli("train", EXP2, "--lr", lr, "--device", "cpu", "--out", "every", "--log-every", "1",
               "--no-plots").exit_code == 1
    assert cli("train", EXP2, "--lr", lr, "--device", "cpu", "--out", "rarely", "--log-every", "700",
               "--no-plots").exit_code == 1
    every, rarely = summary("every"), summary("rarely")
    assert every["divergence"]["step"] == rarely["divergence"]["step"]
    assert every["params"] == rarely["params"]
    assert rows("every")[-1] == rows("rarely")[-1]  # the same last row, loss, parameters and gradients


@pytest.mark.parametrize("config,lr", [(EXP1, "2e29"), (EXP3, "82"), (CONFIGS / "mlp.yaml", "60")])
def test_every_kind_says_where_it_diverged(config, lr):
    result = cli("train", config, "--lr", lr, "--device", "cpu", "--out", "d", "--no-plots")
    assert result.exit_code == 1 and one_line(result), result.output
    step = summary("d")["divergence"]["step"]
    assert f"diverged at step {step}:" in result.stderr
    logged = rows("d")
    assert not math.isfinite(logged[-1]["loss"]) or logged[-1]["step"] == step
    assert all(math.isfinite(r["loss"]) for r in logged[:-1])


def test_huge_initial_values_are_not_blamed_on_the_learning_rate():
    for init in ("1e30", "-3e25"):
        result = cli("train", EXP2, "--set", f"model.init_w={init}", "--device", "cpu", "--out", f"i{init}",
                     "--no-plots")
        assert result.exit_code == 1 and one_line(result)
        assert "diverged at step 1:" in result.stderr and "the learning rate is not the cause" in result.stderr
        assert "Try --lr" not in result.stderr


def test_data_whose_scale_makes_any_learning_rate_tiny_say_so():
    result = cli("train", EXP2, "--set", "data.x_high=1e15", "--device", "cpu", "--out", "big", "--no-plots")
    assert result.exit_code == 1 and one_line(result)
    assert "The data's scale" in result.stderr and "Rescale the data" in result.stderr


def test_a_periodic_checkpoint_is_never_written_from_a_diverged_state():
    result = cli("train", EXP2, "--lr", "1.194", "--device", "cpu", "--out", "d", "--no-plots",
                 "--set", "train.checkpoint_every=10", "--log-every", "1000")
    assert result.exit_code == 1
    state = torch.load("d/checkpoint.pt", weights_only=True)
    assert state["step"] < summary("d")["divergence"]["step"]
    optimizer = state["trainer"].pop("optimizer")
    saved = {**state["trainer"], **optimizer}  # the parameters and the optimizer's state
    assert saved and all(torch.isfinite(t).all() for t in saved.values())


# --------------------------------------------------------------------------- the recorded status


def test_a_full_disk_stops_the_run_as_failed_and_the_checkpoint_resumes_it(monkeypatch):
    from bpcli.rundir import run as files

    original, written = files.MetricsWriter.write, []

    def write(self, row):
        if len(written) == 7:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        written.append(row)
        original(self, row)

    monkeypatch.setattr(files.MetricsWriter, "write", write)
    result = cli("train", EXP2, "--device", "cpu", "--epochs", "100", "--log-every", "10", "--out", "full",
                 "--set", "train.checkpoint_every=25", "--no-plots")
    assert result.exit_code == 1 and one_line(result), result.output
    assert "No space left on device" in result.stderr and "recorded as failed" in result.stderr
    assert "checkpoint at step 50 is intact" in result.stderr
    record = summary("full")
    assert record["status"] == "failed" and record["error"]["type"] == "OSError"
    assert [r["step"] for r in rows("full")] == [1, 10, 20, 30, 40, 50, 60]  # whole rows only

    monkeypatch.setattr(files.MetricsWriter, "write", original)
    assert cli("train", "--resume", "full", "--no-plots", "-q").exit_code == 0
    assert cli("train", EXP2, "--device", "cpu", "--epochs", "100", "--log-every", "10", "--out", "whole",
               "--set", "train.checkpoint_every=25", "--no-plots", "-q").exit_code == 0
    assert Path("full/metrics.csv").read_bytes() == Path("whole/metrics.csv").read_bytes()
    assert summary("full")["status"] == "completed"


def test_a_plot_that_fails_leaves_the_run_failed_not_completed(monkeypatch):
    import bpcli.plots

    def broken(run_dir, fmt="png"):
        raise ValueError("a figure could not be drawn")

    monkeypatch.setattr(bpcli.plots, "draw_plots", broken)
    result = cli("train", EXP2, "--device", "cpu", "--epochs", "20", "--out", "p")
    assert result.exit_code == 1
    record = summary("p")
    assert record["status"] == "failed" and "figure could not be drawn" in record["error"]["message"]


def test_a_sweep_that_fails_is_never_left_running(monkeypatch):
    import bpcli.sweep

    def broken(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bpcli.sweep, "_finish", broken)
    result = cli("sweep", EXP2, "--grid", "lr=0.01,0.1", "--epochs", "10", "--out", "s")
    assert result.exit_code != 0
    info = json.loads(Path("s/sweep.json").read_text())
    assert info["status"] == "failed" and "No space left" in info["error"]["message"]


def test_output_to_a_closed_pipe_finishes_the_run_quietly_and_truly():
    job = subprocess.Popen([sys.executable, "-m", "bpcli", "train", str(EXP1), "--device", "cpu", "--out", "piped"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(5):
        job.stdout.readline()
    job.stdout.close()  # as `| head -5` does
    _, err = job.communicate(timeout=120)
    assert job.returncode == 0, err
    assert err == ""
    assert summary("piped")["status"] == "completed" and summary("piped")["steps"] == 300


# --------------------------------------------------------------------------- --out and --force


def test_force_clears_only_directories_bpcli_marked(tmp_path):
    assert cli("train", EXP2, "--epochs", "3", "--out", "run", "--no-plots", "-q").exit_code == 0
    assert (Path("run/.bpcli")).is_file()
    (Path("run/.bpcli")).unlink()  # a run from before the mark, or a look-alike
    result = cli("train", EXP2, "--epochs", "3", "--out", "run", "--force", "--no-plots")
    assert result.exit_code == 2 and one_line(result) and "not a bpcli run" in result.stderr
    assert Path("run/summary.json").is_file()


def test_force_never_follows_a_symlink_or_clears_the_current_directory(tmp_path, monkeypatch):
    assert cli("train", EXP2, "--epochs", "3", "--out", "real", "--no-plots", "-q").exit_code == 0
    Path("link").symlink_to("real")
    result = cli("train", EXP2, "--epochs", "3", "--out", "link", "--force", "--no-plots")
    assert result.exit_code == 2 and one_line(result) and "symbolic link" in result.stderr
    assert Path("real/summary.json").is_file()

    monkeypatch.chdir("real")
    for out in (".", str(Path.cwd())):
        result = cli("train", EXP2, "--epochs", "3", "--out", out, "--force", "--no-plots")
        assert result.exit_code == 2 and one_line(result) and "current directory" in result.stderr
    assert Path("summary.json").is_file()


def _long_run(out):
    return subprocess.Popen([sys.executable, "-m", "bpcli", "train", str(EXP3), "--device", "cpu", "--epochs",
                             "10000000", "--log-every", "100", "--no-plots", "--out", out, "-q"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, deadline=60.0):
    end = time.monotonic() + deadline
    while not path.is_file() or path.stat().st_size == 0:
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def test_a_directory_being_written_is_refused_to_a_second_process():
    job = _long_run("busy")
    try:
        _wait_for(Path("busy/metrics.csv"))
        for args in (["train", EXP2, "--out", "busy", "--force"], ["train", "--resume", "busy", "--epochs", "99"]):
            result = cli(*args, "--no-plots") if args[1] != "--resume" else cli(*args)
            assert result.exit_code == 2 and one_line(result), result.output
            assert "another bpcli process is writing there" in result.stderr
    finally:
        job.send_signal(signal.SIGTERM)
        job.communicate(timeout=60)
    assert job.returncode == 143 and summary("busy")["status"] == "interrupted"


def test_two_runs_started_on_the_same_out_one_gets_it():
    command = [sys.executable, "-m", "bpcli", "train", str(EXP2), "--device", "cpu", "--epochs", "200",
               "--no-plots", "--out", "same", "-q"]
    jobs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outcomes = sorted((job.wait(timeout=120), job.stderr.read()) for job in jobs)
    assert [code for code, _ in outcomes] == [0, 2], outcomes
    assert "same:" in outcomes[1][1] and len(outcomes[1][1].strip().splitlines()) == 1
    assert summary("same")["status"] == "completed" and rows("same")[-1]["step"] == 200


# --------------------------------------------------------------------------- rerun --verify


@pytest.fixture
def recorded():
    assert cli("train", EXP2, "--device", "cpu", "--epochs", "100", "--log-every", "10", "--out", "run",
               "-q", "--no-plots").exit_code == 0
    return Path("run/metrics.csv")


def _edit(path, change):
    lines = path.read_text().splitlines()
    path.write_text("\n".join(change(lines)) + "\n")


def test_verify_compares_every_column_not_only_the_loss(recorded):
    def nudge_w(lines):
        cells = lines[3].split(",")
        cells[3] = repr(float(cells[3]) * (1 + 1e-7))  # w at step 20
        return lines[:3] + [",".join(cells)] + lines[4:]

    _edit(recorded, nudge_w)
    result = cli("rerun", "run", "--verify")
    assert result.exit_code == 1 and "does not reproduce" in result.stdout
    assert "the w at step 20" in result.stderr


@pytest.mark.parametrize("change,expected", [
    (lambda lines: lines[:4] + lines[5:], "step 30 is logged by the re-run but not in metrics.csv"),
    (lambda lines: lines + [lines[-1].replace("100,100,", "101,101,", 1)], "step 101 cannot follow step 100 in a run of 100 steps"),
])
def test_verify_notices_missing_and_extra_rows(recorded, change, expected):
    _edit(recorded, change)
    result = cli("rerun", "run", "--verify")
    assert result.exit_code in (1, 2) and expected in result.stderr


@pytest.mark.parametrize("change", [
    lambda lines: [lines[0], lines[2], lines[1], *lines[3:]],  # reordered
    lambda lines: lines[:-1] + [lines[-1].replace("100,100,", "1000000000,1000000000,", 1)],  # a billion steps
    lambda lines: lines[:-1] + [lines[-1].replace("100,100,", "nan,100,", 1)],
])
def test_verify_refuses_steps_that_cannot_be_the_runs(recorded, change):
    _edit(recorded, change)
    started = time.monotonic()
    result = cli("rerun", "run", "--verify")
    assert result.exit_code == 2 and one_line(result) and "run/metrics.csv: damaged: " in result.stderr
    assert time.monotonic() - started < 10  # refused, not trained for a billion steps


def test_verify_of_a_diverged_run_reproduces_it():
    assert cli("train", EXP2, "--lr", "2.39", "--device", "cpu", "--out", "d", "--no-plots").exit_code == 1
    result = cli("rerun", "d", "--verify")
    assert result.exit_code == 0, result.output  # NaN equals NaN, inf equals inf


def test_an_interrupted_verification_exits_130_and_does_not_claim_a_mismatch(recorded, monkeypatch):
    from bpcli.recording import RunLog

    original = RunLog.on_log

    def interrupting(self, loop, step, losses):
        original(self, loop, step, losses)
        if step == 30:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(RunLog, "on_log", interrupting)
    result = cli("rerun", "run", "--verify")
    assert result.exit_code == 130 and "does not reproduce" not in result.output
    assert "the verification stopped at step 30" in result.stderr


# --------------------------------------------------------------------------- sizes and damaged files


@pytest.mark.parametrize("args,expected", [
    (["train", EXP2, "--set", "data.n=1000000000"], "GiB of memory"),
    (["train", CONFIGS / "mlp.yaml", "--set", "data.n=90000000"], "GiB of memory"),
    (["sweep", EXP2, "--grid", "seed=0:1000", "--grid", "lr=0.1,0.2", "--set", "data.n=5000000"], "2,000 members"),
    (["sweep", EXP2, "--grid", "seed=0:10000000000"], "10,000,000,000 values"),
    (["sweep", EXP2, "--grid", "seed=0:2000", "--grid", "lr=" + ",".join(map(str, range(1, 600)))],
     "1,198,000 combinations"),
])
def test_work_too_large_for_the_machine_is_refused_before_it_starts(args, expected):
    started = time.monotonic()
    result = cli(*args, "--no-plots") if args[0] == "train" else cli(*args)
    assert result.exit_code == 2 and one_line(result), result.output
    assert expected in result.stderr
    assert time.monotonic() - started < 20 and not Path("outputs").exists()


@pytest.mark.parametrize("damage,expected", [
    (lambda s: s.update(params={"w": "abc", "b": [0.5]}), "summary.json: damaged (params.w"),
    (lambda s: s.update(params=[1, 2]), "summary.json: damaged (params"),
    (lambda s: s.update(predictions=[{"x": 4.0}]), "summary.json: damaged (predictions.0.y_pred"),
    (lambda s: s.update(true_params={"w": "four"}), "summary.json: damaged (true_params.w"),
])
def test_a_damaged_summary_is_named_by_plot_compare_and_verify(damage, expected):
    for run in ("run", "other"):
        assert cli("train", EXP2, "--epochs", "20", "--out", run, "-q", "--no-plots").exit_code == 0
    record = summary("run")
    damage(record)
    Path("run/summary.json").write_text(json.dumps(record))
    for args in (["plot", "run"], ["compare", "run", "other", "--out", "c.png"], ["rerun", "run", "--verify"]):
        result = cli(*args)
        assert result.exit_code == 2 and one_line(result), (args, result.output)
        assert expected in result.stderr


def test_a_metrics_file_without_its_columns_is_named():
    assert cli("train", EXP2, "--epochs", "20", "--out", "run", "-q", "--no-plots").exit_code == 0
    Path("run/metrics.csv").write_text("a,b\n1,2\n")
    result = cli("plot", "run")
    assert result.exit_code == 2 and one_line(result)
    assert "metrics.csv: damaged: its header lacks the columns step, epoch, loss" in result.stderr


@pytest.mark.parametrize("damage", [
    lambda p: p["trainer"].update(w=torch.zeros(3, 3)),
    lambda p: p["trainer"].pop("b"),
    lambda p: p.update(generator_state=torch.zeros(4, dtype=torch.uint8)),
])
def test_a_checkpoint_with_a_damaged_body_is_named(damage):
    assert cli("train", EXP2, "--epochs", "20", "--out", "run", "-q", "--no-plots").exit_code == 0
    payload = torch.load("run/checkpoint.pt", weights_only=True)
    damage(payload)
    torch.save(payload, "run/checkpoint.pt")
    result = cli("train", "--resume", "run", "--epochs", "40")
    assert result.exit_code == 2 and one_line(result), result.output
    assert "checkpoint.pt: damaged" in result.stderr


def test_resume_says_what_it_can_and_cannot_continue():
    assert cli("train", EXP2, "--epochs", "1000", "--log-every", "500", "--out", "done", "-q",
               "--no-plots").exit_code == 0
    result = cli("train", "--resume", "done", "--epochs", "10")
    assert result.exit_code == 2 and "more than 1000" in result.stderr
    assert cli("sweep", EXP2, "--grid", "lr=0.1,0.2", "--epochs", "10", "--out", "s", "-q").exit_code == 0
    result = cli("train", "--resume", "s", "--epochs", "20")
    assert result.exit_code == 2 and one_line(result) and "bpcli sweep --resume s" in result.stderr


# --------------------------------------------------------------------------- terminals and file systems


@pytest.mark.parametrize("encoding", ["latin-1", "ascii"])
def test_a_terminal_that_cannot_show_symbols_gets_them_spelled_out(encoding):
    env = dict(os.environ, PYTHONIOENCODING=encoding)
    job = subprocess.run([sys.executable, "-m", "bpcli", "train", str(EXP2), "--device", "cpu", "--lr", "3",
                          "--out", "d", "--no-plots"], capture_output=True, env=env)
    assert job.returncode == 1
    out, err = job.stdout.decode(encoding), job.stderr.decode(encoding)
    assert "->" in out and "Traceback" not in err and "unexpected" not in err
    assert len(err.strip().splitlines()) == 1 and "lambda_max" in err
    job = subprocess.run([sys.executable, "-m", "bpcli", "explain", "--expr", "J = 3*(a + b*c)", "--at", "a=1",
                          "--at", "b=2", "--at", "c=3", "--out", "g.png"], capture_output=True, env=env)
    assert job.returncode == 0 and b"Traceback" not in job.stderr


def test_a_figure_that_cannot_be_written_is_one_line(monkeypatch):
    from matplotlib.figure import Figure

    assert cli("train", EXP2, "--epochs", "20", "--out", "run", "-q", "--no-plots").exit_code == 0

    def refuse(self, path, *args, **kwargs):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(Figure, "savefig", refuse)
    result = cli("plot", "run")
    assert result.exit_code == 2 and one_line(result), result.output
    assert "run/loss.png: is read-only (Permission denied)" in result.stderr


def test_plot_and_compare_draw_a_diverged_run():
    assert cli("train", EXP2, "--lr", "1.5", "--out", "d", "-q", "--no-plots").exit_code == 1
    assert cli("train", EXP2, "--out", "ok", "-q", "--no-plots").exit_code == 0
    assert cli("plot", "d").exit_code == 0
    assert {"loss.png", "fit.png", "params.png"} <= {p.name for p in Path("d").iterdir()}
    assert cli("compare", "ok", "d", "--out", "both.png").exit_code == 0


def test_check_counts_infinities_as_neither_agreement_nor_disagreement():
    from bpcli.gradcheck import TOLERANCE, relative_error

    inf, nan = math.inf, math.nan
    assert math.isnan(relative_error(torch.tensor([inf, -inf, nan, 2.0]), torch.tensor([inf, -inf, nan, 2.0])))
    assert math.isnan(relative_error(torch.tensor([inf]), torch.tensor([1e30])))
    assert relative_error(torch.tensor([1.0]), torch.tensor([1.0 + 1e-9])) <= TOLERANCE
    result = cli("check", EXP2, "--set", "model.init_w=1e30", "--steps", "2", "--device", "cpu")
    assert "DISAGREE" not in result.stdout and "unexpected" not in result.stderr, result.output


def test_a_ctrl_c_while_the_command_starts_stops_the_run_before_its_first_step():
    # A KeyboardInterrupt raised inside `import torch` can leave numpy half-loaded; the
    # training commands note a signal that comes before the run takes over instead.
    from bpcli import interrupts

    previous = signal.getsignal(signal.SIGINT)
    try:
        interrupts.defer()
        signal.raise_signal(signal.SIGINT)  # as if Ctrl-C came while torch loads
        result = train(config("exp2.yaml"), "early", plots=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert result.status == "interrupted" and result.steps == 0 and result.signal == signal.SIGINT
    assert summary("early")["status"] == "interrupted"
    assert interrupts.pending is None  # taken by the run, not left for the next one


def test_rerun_replaces_its_out_only_with_force():
    assert cli("train", EXP2, "--epochs", "10", "--out", "first", "-q", "--no-plots").exit_code == 0
    assert cli("rerun", "first", "--out", "again", "-q").exit_code == 0
    refused = cli("rerun", "first", "--out", "again", "-q")
    assert refused.exit_code == 2 and "add --force" in refused.stderr
    assert cli("rerun", "first", "--out", "again", "-q", "--force").exit_code == 0
    assert cli("rerun", "first", "--verify", "--force").exit_code == 2


@pytest.mark.parametrize("args,message", [
    (["train", str(EXP2), "--bogus"], "No such option: --bogus"),
    (["train", str(EXP2), "--lr", "abc"], "Invalid value for '--lr'"),
    (["sweep", str(EXP2)], "at least one --grid"),
    (["plot", "outputs/run1", "--format", "jpg"], "Invalid value for '--format'"),
    (["nothing"], "No such command 'nothing'"),
])
def test_a_usage_error_is_one_line_too(args, message):
    proc = subprocess.run([sys.executable, "-m", "bpcli", *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and message in proc.stderr
    assert "Traceback" not in proc.stderr and "╭" not in proc.stderr
