"""Learning-rate schedules: each equals torch.optim.lr_scheduler's sequence, spans the run when
nothing else is said, and is logged, checkpointed, swept and checked against the stable bound."""

import csv
import json
import math
from pathlib import Path

import pytest
import torch

from bpcli.config.schema import TrainConfig
from bpcli.lifecycle import resume, train
from bpcli.optimizers import Optimizer
from bpcli.schedules import SCHEDULES, peak
from conftest import CONFIGS, InterruptAt, cli, config


def section(lr=0.1, **changes):
    return TrainConfig(lr=lr, epochs=1, log_every=1, grad="manual", **changes)


def torch_sequence(scheduler_of, lr, updates):
    """The lr torch.optim.lr_scheduler gives each of `updates` updates, stepped once per update."""
    p = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([p], lr=lr)
    scheduler = scheduler_of(optimizer)
    lrs = []
    for _ in range(updates):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def our_sequence(train, updates):
    p = {"p": torch.zeros(1, 1, dtype=torch.float64)}
    optimizer = Optimizer(p, [train], updates)
    lrs = []
    for _ in range(updates):
        optimizer.step(p, {"p": torch.zeros_like(p["p"])})
        lrs.append(float(optimizer.lr[0]))
    return lrs


S = torch.optim.lr_scheduler
CASES = [
    (section(schedule="step"), lambda o: S.StepLR(o, step_size=math.ceil(500 / 3), gamma=0.1)),
    (section(schedule="step", step_size=37, gamma=0.5), lambda o: S.StepLR(o, step_size=37, gamma=0.5)),
    (section(schedule="exponential", gamma=0.99), lambda o: S.ExponentialLR(o, gamma=0.99)),
    (section(schedule="exponential", lr_end=1e-3), lambda o: S.ExponentialLR(o, gamma=(1e-3 / 0.1) ** (1 / 500))),
    (section(schedule="cosine"), lambda o: S.CosineAnnealingLR(o, T_max=500)),
    (section(schedule="cosine", lr_end=0.01), lambda o: S.CosineAnnealingLR(o, T_max=500, eta_min=0.01)),
    (section(schedule="linear"), lambda o: S.LinearLR(o, start_factor=1.0, end_factor=0.0, total_iters=500)),
    (section(lr=1.0, schedule="linear", lr_end=0.1), lambda o: S.LinearLR(o, 1.0, 0.1, total_iters=500)),
    (section(lr=0.01, schedule="linear", lr_end=0.5), lambda o: S.LambdaLR(o, lambda k: 1 + 49 * min(k, 500) / 500)),
    (section(schedule="cosine", warmup=50), lambda o: S.SequentialLR(
        o, [S.LinearLR(o, 1 / 51, 1.0, total_iters=50), S.CosineAnnealingLR(o, T_max=450)], milestones=[50])),
    (section(schedule="constant", warmup=20), lambda o: S.SequentialLR(
        o, [S.LinearLR(o, 1 / 21, 1.0, total_iters=20), S.ConstantLR(o, 1.0, total_iters=0)], milestones=[20])),
    (section(schedule="step", warmup=10, gamma=0.3, step_size=100), lambda o: S.SequentialLR(
        o, [S.LinearLR(o, 1 / 11, 1.0, total_iters=10), S.StepLR(o, 100, 0.3)], milestones=[10])),
    (section(schedule="exponential", warmup=5, gamma=0.995), lambda o: S.SequentialLR(
        o, [S.LinearLR(o, 1 / 6, 1.0, total_iters=5), S.ExponentialLR(o, 0.995)], milestones=[5])),
    (section(lr=0.3, schedule="linear", warmup=100, lr_end=0.03), lambda o: S.SequentialLR(
        o, [S.LinearLR(o, 1 / 101, 1.0, total_iters=100), S.LinearLR(o, 1.0, 0.1, total_iters=400)], milestones=[100])),
]


@pytest.mark.parametrize("train,reference", CASES, ids=lambda c: getattr(c, "schedule", ""))
def test_each_schedule_equals_torchs_sequence_over_a_run(train, reference):
    ours = our_sequence(train, 500)
    theirs = torch_sequence(reference, train.lr, 500)
    assert max(abs(a - b) for a, b in zip(ours, theirs)) < 1e-12
    assert len(set(ours)) > 1 or train.schedule == "constant"
    assert max(ours) == pytest.approx(peak(train, 500), rel=1e-12)


def test_every_schedule_of_the_registry_is_tested():
    assert {train.schedule for train, _ in CASES} == set(SCHEDULES)


def test_micrographs_demo_is_a_linear_schedule_to_one_tenth():
    # micrograd's demo: lr = 1.0 − 0.9·k/100 for k = 0 … 99
    ours = our_sequence(section(lr=1.0, schedule="linear", lr_end=0.1), 100)
    assert max(abs(a - (1.0 - 0.9 * k / 100)) for k, a in enumerate(ours)) < 1e-12


def rows(run):
    with open(Path(run) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_the_lr_used_is_logged_only_when_it_changes():
    constant = train(config("exp2.yaml", train__epochs=20, train__log_every=1), "constant", plots=False)
    assert "lr" not in rows("constant")[0] and "schedule" not in constant.summary
    cosine = train(config("exp2.yaml", train__epochs=20, train__log_every=1, train__schedule="cosine"), "cosine",
                   plots=False)
    logged = [float(r["lr"]) for r in rows("cosine")]
    expected = [0.01 * (1 + math.cos(math.pi * k / 20)) / 2 for k in range(20)]
    assert logged == pytest.approx(expected, rel=1e-12, abs=1e-15)
    assert cosine.summary["schedule"] == "cosine to 0" and cosine.summary["lr_peak"] == 0.01


@pytest.mark.parametrize("name,changes,stop_at", [
    ("exp2.yaml", {"train__schedule": "cosine", "train__warmup": 10, "train__epochs": 60, "train__log_every": 1}, 23),
    ("exp3.yaml", {"train__schedule": "linear", "train__optimizer": "adamw", "train__epochs": 200,
                   "train__log_every": 5}, 95),
    ("mlp.yaml", {"train__schedule": "step", "train__optimizer": "rmsprop", "train__lr": 0.01, "train__epochs": 20,
                  "train__log_every": 1, "train__batch_size": 64}, 33),
    ("exp1.yaml", {"train__schedule": "exponential", "train__gamma": 0.99}, 100),
])
def test_resume_in_the_middle_of_a_schedule_is_bit_identical(tmp_path, name, changes, stop_at):
    cfg = config(name, **changes)
    whole = train(cfg, tmp_path / "whole", plots=False)
    stopped = train(cfg, tmp_path / "cut", plots=False, observer=InterruptAt(stop_at))
    assert stopped.status == "interrupted"
    resumed = resume(tmp_path / "cut", plots=False)
    assert resumed.params == whole.params
    assert (tmp_path / "cut/metrics.csv").read_bytes() == (tmp_path / "whole/metrics.csv").read_bytes()


def test_a_sweep_over_schedules_gives_each_member_its_single_runs_result():
    result = cli("sweep", CONFIGS / "exp2.yaml", "--grid", "schedule=constant,cosine,linear", "--grid", "lr=0.01,0.02",
                 "--epochs", "50", "--out", "sweep", "-q")
    assert result.exit_code == 0, result.output
    with open("sweep/summary.csv", newline="") as f:
        members = list(csv.DictReader(f))
    assert len(members) == 6
    for m in members:
        single = train(config("exp2.yaml", train__epochs=50, train__schedule=m["train.schedule"],
                              train__lr=float(m["train.lr"])), save=False)
        assert float(m["final_loss"]) == pytest.approx(single.final_loss, rel=1e-5)


def test_the_stable_bound_is_checked_against_the_largest_lr_the_schedule_reaches():
    # exp2's full-batch bound is about 0.796: a linear schedule from 0.01 up to 2 crosses it
    result = cli("train", CONFIGS / "exp2.yaml", "--lr", "0.01", "--set", "train.schedule=linear",
                 "--set", "train.lr_end=2", "--epochs", "400", "--no-plots", "--out", "rising")
    assert result.exit_code == 1
    peak = 0.01 + (2 - 0.01) * 399 / 400  # the last update's lr
    assert f"The learning rate {peak:g} is too large" in result.stderr
    summary = json.loads(Path("rising/summary.json").read_text())
    assert summary["lr_peak"] == pytest.approx(peak, rel=1e-12)


@pytest.mark.parametrize("changes,expected", [
    (["--set", "train.schedule=cosine", "--set", "train.gamma=0.5"], "train.gamma is a setting of schedule step and"),
    (["--set", "train.schedule=exponential"], "needs train.gamma (e.g. 0.999) or train.lr_end above 0"),
    (["--set", "train.schedule=cosine", "--set", "train.warmup=3000"], "train.warmup: 3000 updates leave none"),
    (["--set", "train.schedule=sawtooth"], "unknown schedule 'sawtooth'"),
])
def test_schedule_mistakes_are_one_line(changes, expected):
    result = cli("train", CONFIGS / "exp2.yaml", *changes, "--out", "bad", "--no-plots")
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_loss_png_draws_the_lr_on_a_second_axis_only_when_it_changes():
    from bpcli.plots.run import figures
    from bpcli.rundir.run import read_run

    train(config("exp2.yaml", train__epochs=40, train__log_every=1, train__schedule="step"), "step", plots=False)
    train(config("exp2.yaml", train__epochs=40, train__log_every=1), "flat", plots=False)
    for run, axes in (("step", 2), ("flat", 1)):
        loss = dict(figures(read_run(run)))["loss"]
        assert len(loss.axes) == axes, run
    lr_axis = dict(figures(read_run("step")))["loss"].axes[-1]
    assert lr_axis.get_ylabel() == "learning rate (dashed)"
    assert max(lr_axis.lines[0].get_ydata()) == pytest.approx(0.01)
