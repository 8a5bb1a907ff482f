"""Sweeps: a grid trained as one batched model, each member equal to its single run."""

import csv
import itertools
import json
import shutil
import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from bpcli.config import Override, with_overrides
from bpcli.errors import ConfigError
from bpcli.grid import expand, parse_grid
from bpcli.sweep import resume_sweep, run_sweep
from bpcli.lifecycle import train
from conftest import CONFIGS, InterruptAt, cli, config


@pytest.mark.parametrize(
    "name,grid,epochs",
    [
        ("exp1.yaml", ["lr=0.01,0.05", "model.init_w=0.5,1.5"], 100),
        ("exp2.yaml", ["lr=0.001,0.01,0.1", "seed=0:3"], 1000),
        ("exp3.yaml", ["lr=0.001,0.01", "seed=0:3"], 1000),
        ("mlp.yaml", ["lr=0.05,0.1", "seed=0:2"], 200),
    ],
)
@pytest.mark.parametrize("grad", ["autograd", "manual"])
def test_every_member_equals_its_single_run(name, grid, epochs, grad):
    base = config(name, train__epochs=epochs, train__grad=grad)
    parsed = parse_grid(grid)
    result = run_sweep(base, parsed, save=False)
    assert len(result.members) == len(list(itertools.product(*parsed.values())))
    for member in result.members:
        changes = {k.replace(".", "__"): member[k] for k in parsed}
        single = train(config(name, train__epochs=epochs, train__grad=grad, **changes), save=False)
        assert member["final_loss"] == pytest.approx(single.final_loss, rel=1e-5, abs=1e-9)
        for column, value in single.history[-1].items():
            if column in member and column not in ("step", "epoch", "loss"):
                assert member[column] == pytest.approx(value, abs=1e-5), column


def test_sweep_command_writes_a_sweep_directory_with_aggregates():
    result = cli("sweep", CONFIGS / "exp2.yaml", "--grid", "lr=0.001,0.01,0.1", "--grid", "seed=0:10")
    assert result.exit_code == 0, result.output
    sweep = Path("outputs/sweep1")
    for name in ("summary.csv", "aggregates.csv", "metrics.csv", "sweep.json", "config.yaml", "losses.png", "lr.png"):
        assert (sweep / name).is_file(), name
    members = list(csv.DictReader((sweep / "summary.csv").open()))
    assert len(members) == 30 and {m["seed"] for m in members} == {str(s) for s in range(10)}
    aggregates = list(csv.DictReader((sweep / "aggregates.csv").open()))
    assert [a["train.lr"] for a in aggregates] == ["0.001", "0.01", "0.1"]
    assert all(a["members"] == "10" for a in aggregates)
    assert "± " in result.stdout  # mean ± std per lr
    info = json.loads((sweep / "sweep.json").read_text())
    assert info["members"] == 30 and info["steps"] == 3000


def test_diverged_members_are_marked_not_fatal():
    result = run_sweep(config("exp2.yaml", train__epochs=300, train__log_every=10),
                       parse_grid(["lr=0.01,5.0"]), save=False)
    statuses = {m["train.lr"]: m["status"] for m in result.members}
    assert statuses == {0.01: "completed", 5.0: "diverged"}
    assert result.members[1]["diverged_at_step"] is not None
    assert result.aggregates[1]["diverged"] == 1


@pytest.mark.parametrize(
    "name,changes,grid,log_every",
    [
        ("exp2.yaml", {}, "lr=0.01,1.2,3,1e30", 1),
        ("exp2.yaml", {}, "lr=0.01,1.2,3,1e30", 7),  # the step does not depend on how often it logs
        ("exp2.yaml", {"train__weight_decay": 1e30}, "lr=0.001,0.01", 50),  # weight decay named, not the lr
        ("exp1.yaml", {"train__batch_size": 1}, "lr=0.02,0.3,2.5", 9),  # per-sample steps, shuffled order
        ("logistic.yaml", {}, "lr=0.5,3e38,1e39", 13),
        ("mlp.yaml", {"train__optimizer": "adam"}, "lr=0.01,1e38", 25),
    ],
)
def test_every_diverged_member_is_told_what_its_single_run_is_told(name, changes, grid, log_every):
    """Each member's step, reason, message and final values are its single run's (issue 19)."""
    base = config(name, train__epochs=40, train__log_every=log_every, **changes)
    result = run_sweep(base, parse_grid([grid]), save=False)
    assert any(m["status"] == "diverged" for m in result.members)
    for member in result.members:
        single = train(with_overrides(base, [Override(path="train.lr", value=member["train.lr"], origin="test")]),
                       save=False, plots=False)
        assert member["status"] == single.status, member["train.lr"]
        if single.status != "diverged":
            assert member["divergence"] is None
            continue
        record = single.summary["divergence"]
        assert member["diverged_at_step"] == record["step"] == single.steps
        assert member["divergence"] == record["message"]
        final = single.summary["final_loss"]
        assert member["final_loss"] == pytest.approx(final, rel=1e-5) if final is not None \
            else not math.isfinite(member["final_loss"])
        for column, values in single.params.items():
            for i, value in enumerate(values):
                ours = member[column if len(values) == 1 else f"{column}[{i}]"]
                assert ours == pytest.approx(value, rel=1e-5, abs=1e-6) or (math.isnan(ours) and math.isnan(value))


@pytest.mark.parametrize(
    "grid,expected",
    [
        (["epochs=1,2"], "not a setting one batched sweep can vary"),
        (["data.n=10,20"], "not a setting one batched sweep can vary"),
        (["lr"], "write key=v1,v2"),
        (["seed=5:5"], "the range is empty"),
        (["lr=0.1", "lr=0.2"], "given twice"),
        (["lr=-1"], "train.lr: input should be greater than 0"),
    ],
)
def test_bad_grids_are_clear_errors(grid, expected):
    args = [a for g in grid for a in ("--grid", g)]
    result = cli("sweep", CONFIGS / "exp2.yaml", *args)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and "Traceback" not in result.output


def test_each_member_config_is_the_base_with_its_settings_validated():
    base = config("exp2.yaml")
    grid = parse_grid(["lr=0.01,0.1", "seed=0:2", "data.x_low=-1,0", "data.noise=0,0.5"])
    for settings, member in expand(base, grid):
        overrides = [Override(path=k, value=v, origin="t") for k, v in settings.items()]
        assert member == with_overrides(base, overrides)


def test_a_combination_that_is_invalid_only_together_is_a_clear_error():
    # x_low=5 goes with x_high=10, and x_high=2 with x_low=0; x_low=5 with x_high=2 does not.
    base = config("exp2.yaml", data__x_high=10.0)
    with pytest.raises(ConfigError) as caught:
        expand(base, parse_grid(["data.x_low=0,5", "data.x_high=10,2"]))
    assert "x_low (5.0) must be below x_high (2.0)" in str(caught.value)


def test_plot_redraws_a_sweep_directory_and_large_sweeps_draw_bands(monkeypatch):
    from bpcli.plots import sweep as plots

    assert cli("sweep", CONFIGS / "exp2.yaml", "--grid", "lr=0.01,0.1", "--grid", "seed=0:3", "-q").exit_code == 0
    sweep = Path("outputs/sweep1")
    lines = (sweep / "losses.png").read_bytes()
    monkeypatch.setattr(plots, "SWEEP_LINES", 2)  # 6 members are now "many": medians and bands
    result = cli("plot", sweep)
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == [str(sweep / "losses.png"), str(sweep / "lr.png")]
    assert (sweep / "losses.png").read_bytes() != lines


def test_plot_of_a_broken_sweep_directory_is_a_clear_error():
    assert cli("sweep", CONFIGS / "exp2.yaml", "--grid", "lr=0.01,0.1", "-q").exit_code == 0
    sweep = Path("outputs/sweep1")
    (sweep / "metrics.csv").write_text("step,member,loss\n1,0,0.5\n2,zero,0.4\n")
    result = cli("plot", sweep)
    assert result.exit_code == 2 and "a sweep file is corrupt" in result.stderr and "Traceback" not in result.output
    (sweep / "metrics.csv").unlink()
    result = cli("plot", sweep)
    assert result.exit_code == 2 and "not a complete sweep directory (missing metrics.csv)" in result.stderr


def test_a_sweep_where_every_member_diverges_still_writes_its_plots():
    result = cli("sweep", CONFIGS / "exp2.yaml", "--grid", "lr=5,6", "--grid", "seed=0:2", "--epochs", "200")
    # Like a single diverged run, a sweep in which every member diverged exits 1, and says so.
    assert result.exit_code == 1, result.output
    assert "every one of the 4 members diverged" in result.stderr
    members = list(csv.DictReader(Path("outputs/sweep1/summary.csv").open()))
    assert {m["status"] for m in members} == {"diverged"}
    for name in ("losses.png", "lr.png"):
        assert Path("outputs/sweep1", name).read_bytes()[:4] == b"\x89PNG"




def test_an_interrupted_sweep_keeps_every_member_as_it_was_at_that_step(tmp_path):
    base = config("exp2.yaml", train__epochs=1000, train__log_every=50)
    result = run_sweep(base, parse_grid(["lr=0.01,0.1", "seed=0:2"]), tmp_path / "cut", observer=InterruptAt(100))
    # The signal came while step 100 was logged: the sweep stops after it, as a single run does.
    assert result.status == "interrupted" and result.signal == signal.SIGINT and result.steps == 100
    assert json.loads((tmp_path / "cut/sweep.json").read_text())["status"] == "interrupted"
    rows = list(csv.DictReader((tmp_path / "cut/summary.csv").open()))
    assert {r["status"] for r in rows} == {"interrupted"}
    for member in result.members:
        single = train(config("exp2.yaml", train__epochs=100, train__lr=member["train.lr"], seed=member["seed"]),
                       save=False)
        assert member["final_loss"] == pytest.approx(single.final_loss, rel=1e-5)
        assert member["w"] == pytest.approx(single.history[-1]["w"], abs=1e-5)


def test_ctrl_c_stops_a_sweep_command_with_exit_130_and_keeps_its_directory():
    proc = subprocess.Popen(
        [sys.executable, "-m", "bpcli", "sweep", CONFIGS / "exp3.yaml", "--grid", "seed=0:8", "--device", "cpu",
         "--epochs", "1000000", "--log-every", "1000", "--out", "cut"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:  # plain progress lines: training has begun once one arrives
        if line.startswith("step "):
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "SIGINT: stopped the sweep after step" in err and "Traceback" not in err
    info = json.loads(Path("cut/sweep.json").read_text())
    assert info["status"] == "interrupted" and 0 < info["steps"] < 1_000_000
    assert (Path("cut/losses.png")).is_file()


SWEEP_TABLES = ("summary.csv", "aggregates.csv", "metrics.csv")


@pytest.mark.parametrize(
    "name,changes,grid,epochs,first",
    [
        ("exp2.yaml", {"train__log_every": 10}, ["lr=0.01,0.1,1.2", "seed=0:2"], 100, 37),  # a member diverges first
        ("exp1.yaml", {"train__batch_size": 1, "train__log_every": 4}, ["lr=0.02,0.3,2.5"], 30, 11),  # shuffled
        ("logistic.yaml", {"train__optimizer": "adam", "train__log_every": 25}, ["lr=0.05,0.5"], 300, 120),
        ("exp3.yaml", {"train__log_every": 50}, ["lr=0.001,0.01"], 500, 250),  # torch.optim
        ("mlp.yaml", {"train__log_every": 20}, ["lr=0.05,0.1"], 300, 1),
    ],
)
def test_a_resumed_sweep_writes_what_one_uninterrupted_sweep_writes(tmp_path, name, changes, grid, epochs, first):
    """`bpcli sweep --resume DIR --epochs N` continues every member bit for bit (issue 19)."""
    whole = run_sweep(config(name, train__epochs=epochs, **changes), parse_grid(grid), tmp_path / "whole", plots=False)
    run_sweep(config(name, train__epochs=first, **changes), parse_grid(grid), tmp_path / "cut", plots=False)
    resumed = resume_sweep(tmp_path / "cut", epochs, plots=False)
    assert resumed.status == whole.status and resumed.steps == whole.steps
    for table in SWEEP_TABLES:
        assert (tmp_path / "cut" / table).read_bytes() == (tmp_path / "whole" / table).read_bytes(), table
    info = json.loads((tmp_path / "cut/sweep.json").read_text())
    assert [r["step"] for r in info["resumed_from"]] == [first * resumed.steps // epochs]


class KilledAt(InterruptAt):
    """Copies the sweep directory as it is when step `step` is logged: what a SIGKILL then leaves."""

    def __init__(self, step, source, copy):
        super().__init__(step)
        self.source, self.copy = source, copy

    def on_log(self, row):
        if row["step"] == self.step:
            shutil.copytree(self.source, self.copy)


def test_a_killed_sweep_resumes_from_its_last_periodic_checkpoint(tmp_path):
    changes = {"train__epochs": 400, "train__log_every": 10, "train__checkpoint_every": 30, "train__schedule": "cosine"}
    grid = parse_grid(["lr=0.02,0.2,5.0", "seed=0:2"])  # lr 5 diverges on the way
    run_sweep(config("exp2.yaml", **changes), grid, tmp_path / "whole", plots=False)
    run_sweep(config("exp2.yaml", **changes), grid, tmp_path / "sweep", plots=False,
              observer=KilledAt(200, tmp_path / "sweep", tmp_path / "killed"))
    assert json.loads((tmp_path / "killed/sweep.json").read_text())["status"] == "running"
    assert torch.load(tmp_path / "killed/checkpoint.pt", weights_only=True)["step"] == 180
    resumed = resume_sweep(tmp_path / "killed", plots=False)
    assert resumed.status == "completed" and resumed.steps == 400
    for table in SWEEP_TABLES:
        assert (tmp_path / "killed" / table).read_bytes() == (tmp_path / "whole" / table).read_bytes(), table


def test_sweep_resume_refuses_what_it_cannot_continue(tmp_path):
    base = config("exp2.yaml", train__epochs=50, train__log_every=10)
    run_sweep(base, parse_grid(["lr=0.01,0.1"]), tmp_path / "sweep", plots=False)
    train(base, tmp_path / "run", plots=False)
    cases = [
        (["--resume", tmp_path / "sweep"], "already trained 50 steps"),
        (["--resume", tmp_path / "sweep", "--grid", "lr=1"], "drop --grid"),
        (["--resume", tmp_path / "run"], "a run directory; `bpcli sweep --resume` continues a sweep"),
        (["--resume", tmp_path / "nowhere"], "not a sweep directory"),
        ([], "give a config and at least one --grid"),
    ]
    for args, expected in cases:
        result = cli("sweep", *args)
        assert result.exit_code == 2 and expected in result.output, (args, result.output)
    (tmp_path / "sweep/checkpoint.pt").write_bytes(b"not a checkpoint")
    result = cli("sweep", "--resume", tmp_path / "sweep", "--epochs", "60")
    assert result.exit_code == 2 and "corrupt or truncated" in result.output
    assert json.loads((tmp_path / "sweep/sweep.json").read_text())["status"] == "completed"  # nothing was written
    run_sweep(base, parse_grid(["lr=5,6"]), tmp_path / "diverged", plots=False)
    result = cli("sweep", "--resume", tmp_path / "diverged", "--epochs", "60")
    assert result.exit_code == 2 and "every member diverged" in result.output


@pytest.mark.parametrize("name,grid,changes", [
    ("moons.yaml", ["lr=0.1,0.8", "seed=0:3"], {"train__epochs": 100}),
    ("logistic.yaml", ["lr=0.5,3e38"], {"train__epochs": 60}),  # a diverged member is measured where it stopped
    ("softmax.yaml", ["lr=0.01,0.05"], {"train__epochs": 50}),  # held-out rows: val_accuracy
    ("exp2.yaml", ["lr=0.01,0.1", "seed=0:2"], {"train__epochs": 200}),
])
def test_each_member_reports_the_accuracy_or_r2_of_its_single_run(name, grid, changes):
    """summary.csv gives each member's accuracy (classifiers) or R² (regression), per split."""
    result = run_sweep(config(name, **changes), parse_grid(grid), save=False)
    for member in result.members:
        settings = {k.replace(".", "__"): member[k] for k in parse_grid(grid)}
        single = train(config(name, **changes, **settings), save=False, plots=False)
        measure = "accuracy" if "accuracy" in single.summary else "r2"
        assert single.summary[measure], measure
        for split, value in single.summary[measure].items():
            ours = member[measure if split == "train" else f"{split}_{measure}"]
            assert ours == pytest.approx(value, abs=1e-9 if measure == "accuracy" else 1e-5), (member, split)


@pytest.mark.parametrize("edit,expected", [
    (lambda info: info["grid"].update({"train.lr": [0.01, 0.3]}), "its grid is not the one checkpoint.pt"),
    (lambda info: info["grid"].update({"train.lr": [0.1, 0.01]}), "its grid is not the one checkpoint.pt"),  # order
    (lambda info: info["grid"].update({"seed": [0, 1]}), "its grid is not the one checkpoint.pt"),
    (lambda info: info["grid"].update({"train.lr": 5}), "its grid is damaged"),
    (lambda info: info["grid"].update({"train.lr": []}), "its grid is damaged"),
    (lambda info: info.update(grid={"nonsense.key": [1]}), "its grid is not the one"),
    (lambda info: info.update(resumed_from=5), "resumed_from is damaged"),
])
def test_a_sweep_json_edited_since_the_checkpoint_is_refused_before_anything_is_written(tmp_path, edit, expected):
    run_sweep(config("exp2.yaml", train__epochs=20), parse_grid(["lr=0.01,0.1"]), tmp_path / "s", plots=False)
    info = json.loads((tmp_path / "s/sweep.json").read_text())
    edit(info)
    (tmp_path / "s/sweep.json").write_text(json.dumps(info))
    before = {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir() if p.is_file()}
    result = cli("sweep", "--resume", tmp_path / "s", "--epochs", "30")
    assert result.exit_code == 2 and expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in (tmp_path / "s").iterdir() if p.is_file()} == before


def test_a_sweep_whose_files_cannot_be_written_fails_and_resumes_from_its_last_checkpoint(tmp_path, monkeypatch):
    """A full disk after training: exit 1, `failed`, and the checkpoint still the one before,
    so the same resume succeeds once there is room (it was a dead end: 'already trained')."""
    import errno

    import bpcli.sweep_results as results

    grid = parse_grid(["lr=0.05,0.5,5"])
    run_sweep(config("exp2.yaml", train__epochs=40, train__log_every=10), grid, tmp_path / "s", plots=False)
    run_sweep(config("exp2.yaml", train__epochs=80, train__log_every=10), grid, tmp_path / "whole", plots=False)
    real = results.files.write_table

    def full(path, rows):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(results.files, "write_table", full)
    result = cli("sweep", "--resume", tmp_path / "s", "--epochs", "80")
    assert result.exit_code == 1 and "No space left on device" in result.stderr
    assert f"bpcli sweep --resume {tmp_path / 's'}" in result.stderr
    info = json.loads((tmp_path / "s/sweep.json").read_text())
    assert info["status"] == "failed" and info["steps"] == 40 and info["resumed_from"]  # the record is kept
    assert torch.load(tmp_path / "s/checkpoint.pt", weights_only=True)["step"] == 40
    monkeypatch.setattr(results.files, "write_table", real)
    assert cli("sweep", "--resume", tmp_path / "s", "--epochs", "80").exit_code == 0
    for table in SWEEP_TABLES:
        assert (tmp_path / "s" / table).read_bytes() == (tmp_path / "whole" / table).read_bytes(), table


def test_a_sweep_file_that_is_a_link_is_refused_before_the_resume_trains(tmp_path):
    run_sweep(config("exp2.yaml", train__epochs=20), parse_grid(["lr=0.01,0.1"]), tmp_path / "s", plots=False)
    (tmp_path / "s/summary.csv").rename(tmp_path / "elsewhere.csv")
    (tmp_path / "s/summary.csv").symlink_to(tmp_path / "elsewhere.csv")
    result = cli("sweep", "--resume", tmp_path / "s", "--epochs", "30")
    assert result.exit_code == 2 and "is a symbolic link" in result.stderr
    assert json.loads((tmp_path / "s/sweep.json").read_text())["status"] == "completed"
    assert torch.load(tmp_path / "s/checkpoint.pt", weights_only=True)["step"] == 20


def test_a_sweep_resumed_under_another_torch_says_so_and_one_from_torchrun_says_why_it_has_no_checkpoint(tmp_path):
    run_sweep(config("exp2.yaml", train__epochs=20), parse_grid(["lr=0.01,0.1"]), tmp_path / "s", plots=False)
    info = json.loads((tmp_path / "s/sweep.json").read_text())
    (tmp_path / "s/sweep.json").write_text(json.dumps({**info, "torch_version": "2.12.0"}))
    result = cli("sweep", "--resume", tmp_path / "s", "--epochs", "30", "-q")
    assert result.exit_code == 0 and f"torch 2.12.0, then {torch.__version__}" in result.stderr
    assert json.loads((tmp_path / "s/sweep.json").read_text())["torch_version"] == "2.12.0"  # where it began
    (tmp_path / "s/checkpoint.pt").unlink()
    info = json.loads((tmp_path / "s/sweep.json").read_text())
    (tmp_path / "s/sweep.json").write_text(json.dumps({**info, "processes": 2}))
    result = cli("sweep", "--resume", tmp_path / "s", "--epochs", "40")
    assert result.exit_code == 2 and "trained by 2 torchrun processes" in result.stderr


def test_a_sweep_beyond_the_measured_size_leaves_accuracy_and_r2_out(monkeypatch):
    """Measuring costs 0.1–0.5 ms a member: beyond QUALITY_MEMBERS the columns are left out."""
    import bpcli.sweep

    monkeypatch.setattr(bpcli.sweep, "QUALITY_MEMBERS", 2)
    small = run_sweep(config("exp2.yaml", train__epochs=20), parse_grid(["lr=0.01,0.1"]), save=False)
    large = run_sweep(config("exp2.yaml", train__epochs=20), parse_grid(["lr=0.01,0.1,0.2"]), save=False)
    assert "r2" in small.members[0] and "r2" not in large.members[0]
    assert large.members[0]["final_loss"] == small.members[0]["final_loss"]
