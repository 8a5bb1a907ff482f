"""Verdicts that are true and messages a learner can act on (issue 20, sections 4 and 5).

Each test feeds several members of a class of input, not one case, and asserts the one-line
message names the real cause.
"""

from __future__ import annotations

import math

import pytest

from conftest import CONFIGS, cli

EXP1, EXP2, EXP3, MLP = (CONFIGS / f"{n}.yaml" for n in ("exp1", "exp2", "exp3", "mlp"))


def one_line(result):
    return len(result.stderr.strip().splitlines()) == 1


# --------------------------------------------------------------------------- sweep grids


@pytest.mark.parametrize("grid", ["lr=0.1,0.1", "lr=0.1,1e-1", "lr=0.01,0.1,0.010", "seed=3,1,3",
                                  "optimizer=sgd,sgd", "model.init_w=0.5,null,.5"])
def test_a_grid_value_given_twice_is_refused_in_one_line(grid):
    from bpcli.errors import BpcliError
    from bpcli.grid import parse_grid

    with pytest.raises(BpcliError, match="twice") as caught:
        parse_grid([grid])
    assert "\n" not in str(caught.value) and "once" in str(caught.value)
    result = cli("sweep", EXP2, "--grid", grid, "--epochs", "2", "--out", "s")
    assert result.exit_code == 2 and one_line(result) and "twice" in result.stderr, result.output


def test_distinct_grid_values_still_sweep():
    from bpcli.grid import parse_grid

    assert parse_grid(["lr=0.1,0.01", "seed=0:3"]) == {"train.lr": [0.1, 0.01], "seed": [0, 1, 2]}


# --------------------------------------------------------------------------- config values


@pytest.mark.parametrize("value", ["[.nan]", "[.inf]", "[1, -.inf]", "[2.0, .NaN, 3]"])
def test_a_prediction_input_that_is_not_finite_is_called_that(value):
    result = cli("config", EXP2, "--set", f"predict={value}")
    assert result.exit_code == 2, result.output
    assert "finite number" in result.stderr and "valid list" not in result.stderr, result.stderr
    assert one_line(result)


def test_a_prediction_of_the_wrong_shape_is_still_refused():
    result = cli("config", EXP2, "--set", "predict=[abc]")
    assert result.exit_code == 2 and "predict[0]" in result.stderr and one_line(result), result.stderr


# --------------------------------------------------------------------------- explain --expr programs


@pytest.mark.parametrize("program,at,cycle", [
    ("a = b; b = a", [], "a → b → a"),
    ("a = b*2; b = a + x; J = 3*b", ["--at", "x=1"], "a → b → a"),
    ("u = w*2; v = u + x; w = v*3; J = w", ["--at", "x=1"], "u → w → v → u"),
])
def test_a_cycle_of_steps_is_named_as_a_cycle(program, at, cycle):
    result = cli("explain", "--expr", program, *at)
    assert result.exit_code == 2 and one_line(result), result.output
    assert "cycle" in result.stderr and cycle in result.stderr and "put that step first" not in result.stderr


def test_a_step_out_of_order_without_a_cycle_is_still_told_to_move():
    result = cli("explain", "--expr", "u = a + v; v = b*c; J = 3*u", "--at", "a=1", "--at", "b=2", "--at", "c=3")
    assert result.exit_code == 2 and "put that step first" in result.stderr and "cycle" not in result.stderr


# --------------------------------------------------------------------------- explain --sample


@pytest.mark.parametrize("n,batch,step,size", [(16, 7, 15, 2), (16, 7, 3, 2), (10, 4, 6, 2), (9, 4, 3, 1)])
def test_sample_beyond_a_short_last_batch_names_that_step_s_batch(n, batch, step, size):
    sample = size + 1 if size + 1 < batch else size
    result = cli("explain", MLP, "--set", f"data.n={n}", "--set", f"train.batch_size={batch}",
                 "--step", step, "--sample", sample, "--device", "cpu", "--out", "g.png")
    assert result.exit_code == 2 and one_line(result), result.output
    assert f"step {step}'s batch" in result.stderr and f"{size} sample" in result.stderr, result.stderr
    assert "this data has" not in result.stderr


# --------------------------------------------------------------------------- explain --expr derivatives


@pytest.mark.parametrize("formula,at,respect", [
    ("J = x**x", ["x=0"], "x"),
    ("J = a**b", ["a=0", "b=0"], "b"),
    ("J = 2*a**b + 1", ["a=0", "b=0"], "b"),
    ("J = a**b", ["a=0", "b=1.5"], "a"),
    ("J = x**1.5", ["x=0"], "x"),
    ("J = (x - 1)**2.5", ["x=1"], "x - 1"),
    ("J = abs(x)", ["x=0"], "x"),
    ("J = 3*abs(x - y)", ["x=2", "y=2"], "x - y"),
    ("J = relu(x)", ["x=0"], "x"),
    ("J = relu(a*b) + a", ["a=0", "b=5"], "a*b"),
    ("J = sqrt(x)", ["x=0"], "x"),
])
def test_a_derivative_that_is_infinite_or_undefined_is_refused(formula, at, respect):
    args = [a for value in at for a in ("--at", value)]
    result = cli("explain", "--expr", formula, *args, "--out", "g.png")
    assert result.exit_code == 2 and one_line(result), result.output
    assert f"with respect to {respect}" in result.stderr, result.stderr
    assert "d(node)" not in result.stdout


@pytest.mark.parametrize("formula,at,expected", [
    ("J = x**2", ["x=0"], {"x": 0.0}),
    ("J = x**3", ["x=-2"], {"x": 12.0}),
    ("J = x**1", ["x=0"], {"x": 1.0}),
    ("J = x**0 + x", ["x=0"], {"x": 1.0}),
    ("J = a**b", ["a=0", "b=2"], {"a": 0.0, "b": 0.0}),
    ("J = a**b", ["a=2", "b=0"], {"a": 0.0, "b": math.log(2)}),
    ("J = abs(x)", ["x=-3"], {"x": -1.0}),
    ("J = relu(x)", ["x=0.5"], {"x": 1.0}),
    ("J = 2**x", ["x=0"], {"x": math.log(2)}),
])
def test_derivatives_that_exist_are_still_shown(formula, at, expected):
    from bpcli.explain import explain_expression, parse_assignments

    graph = explain_expression(formula, parse_assignments(at))
    found = {n.name: n.full_grad[0] for n in graph.nodes if n.kind == "param"}
    assert found == pytest.approx(expected)


# --------------------------------------------------------------------------- bpcli check


@pytest.mark.parametrize("config,lr", [(EXP2, "1e30"), (EXP2, "3e25"), (EXP3, "1e35"), (EXP1, "1e30")])
def test_check_never_calls_values_that_are_not_finite_agreement(config, lr):
    result = cli("check", config, "--lr", lr, "--steps", "4", "--device", "cpu")
    assert result.exit_code == 1 and one_line(result), result.output
    assert "not comparable" in result.stdout and "not finite" in result.stderr, result.output
    assert "agree:" not in result.stdout  # an agreement is qualified by the steps it covers
    for line in result.stdout.splitlines():
        if line.split()[:1] != [] and line.split()[0].isdigit() and ("inf" in line or "nan" in line):
            # a row of the table: no error measured beside an infinity or a NaN
            assert "e+00" not in line and "e-" not in line and "n/c" in line, line
    assert "--steps" in result.stderr or "--lr" in result.stderr


def test_relative_error_of_values_that_are_not_finite_is_not_a_number():
    import torch

    from bpcli.gradcheck import relative_error

    inf, nan = math.inf, math.nan
    for a, b in [([inf], [inf]), ([-inf], [-inf]), ([nan], [nan]), ([1.0, inf], [1.0, inf]), ([inf], [1e30]),
                 ([nan], [0.0])]:
        assert math.isnan(relative_error(torch.tensor(a), torch.tensor(b)))
    exact = torch.float64
    assert relative_error(torch.tensor([1.0, 2.0], dtype=exact), torch.tensor([1.0, 2.0 + 2e-9], dtype=exact)) == \
        pytest.approx(1e-9)


def test_a_check_whose_values_are_finite_still_agrees():
    result = cli("check", EXP2, "--steps", "3", "--device", "cpu")
    assert result.exit_code == 0 and "manual and autograd agree" in result.stdout and "comparable" not in result.stdout


# --------------------------------------------------------------------------- why a run diverged


def diverged(config, *args):
    result = cli("train", config, *args, "--device", "cpu", "--out", "d", "--no-plots", "-q")
    assert result.exit_code == 1 and one_line(result), result.output
    return result.stderr


@pytest.mark.parametrize("config,lr", [(EXP2, "3e38"), (EXP2, "1e39"), (EXP2, "2e38"), (EXP1, "3e38"),
                                       (EXP3, "3e38"), (EXP2, "1e300")])
def test_an_update_that_overflows_blames_the_learning_rate(config, lr):
    message = diverged(config, "--lr", lr)
    assert "not the cause" not in message and "before any update" not in message, message
    assert "lr·g" in message and "learning rate is the cause" in message and "--lr" in message, message


@pytest.mark.parametrize("config,decay,lr", [(EXP2, "1e30", "0.01"), (EXP2, "1e40", "0.01"), (EXP2, "300", "0.01"),
                                             (EXP2, "5e3", "0.001"), (EXP3, "1e30", "0.01"), (MLP, "1e30", "0.01"),
                                             (EXP1, "1e25", "0.01")])
def test_a_weight_decay_that_drives_the_update_is_named(config, decay, lr):
    message = diverged(config, "--set", f"train.weight_decay={decay}", "--lr", lr)
    assert "weight decay" in message and "train.weight_decay" in message, message
    assert "data's scale" not in message and "Rescale the data" not in message, message


@pytest.mark.parametrize("lr", ["1.0", "5", "1e20"])
def test_a_learning_rate_above_the_bound_is_still_named(lr):
    message = diverged(EXP2, "--lr", lr)
    assert "is too large" in message and "Try --lr" in message and "weight decay" not in message, message


@pytest.mark.parametrize("init", ["model.init_w=1e30", "model.init_b=-2e19"])
def test_values_too_large_before_any_update_are_still_not_blamed_on_the_lr(init):
    message = diverged(EXP2, "--set", init)
    assert "before any update" in message and "learning rate is not the cause" in message, message


# --------------------------------------------------------------------------- the results table, any width


def _printed(summary, run_dir, width):
    import io

    from rich.console import Console

    from bpcli.console import print_result

    out = io.StringIO()
    print_result(Console(file=out, width=width, highlight=False, color_system=None), summary, run_dir)
    return out.getvalue()


def _cells(summary, run_dir):
    """Every cell the results table holds, as printed on a console wide enough for it."""
    wide = _printed(summary, run_dir, 400)
    return [c.strip() for line in wide.splitlines() if "│" in line for c in line.split("│") if c.strip()]


@pytest.mark.parametrize("config", ["exp2.yaml", "diabetes.yaml"])
def test_no_width_hides_or_cuts_a_number_of_the_results(config):
    from bpcli.lifecycle import train
    from conftest import config as load

    result = train(load(config, train__epochs=5), "r", plots=False)
    cells = _cells(result.summary, result.run_dir)
    assert any(c[:1].isdigit() or c[:1] == "-" for c in cells)
    shortened = _printed(result.summary, result.run_dir, 400).count("…")  # the inputs of a prediction, by design
    for width in (10, 20, 30, 45, 61, 80):
        text = _printed(result.summary, result.run_dir, width)
        assert text.count("…") == shortened, (width, text)
        for cell in cells:
            assert cell in text, (width, cell, text)


def test_the_confusion_matrix_is_never_cut_either():
    from bpcli.lifecycle import train
    from conftest import config as load

    summary = dict(train(load("exp2.yaml", train__epochs=2), "r", plots=False).summary)
    classes = ["setosa", "versicolor", "virginica"]
    counts = [[12345, 2, 0], [3, 45678, 9], [0, 7, 98765]]
    summary.update(task={"classes": classes}, confusion={"train": counts}, accuracy={"train": 0.99})
    for width in (10, 30, 45, 200):
        text = _printed(summary, None, width)
        assert "…" not in text
        for name, line in zip(classes, counts):
            assert name in text and all(str(n) in text for n in line), (width, text)


# --------------------------------------------------------------------------- too few rows


def _csv(path, rows, features, seed=0, repeat=False):
    import random

    generator = random.Random(seed)
    lines = [",".join([f"x{i}" for i in range(features)] + ["y"])]
    first = [f"{generator.random():.4f}" for _ in range(features + 1)]
    for _ in range(rows):
        lines.append(",".join(first if repeat else [f"{generator.random():.4f}" for _ in range(features + 1)]))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("rows,features,repeat", [(5, 8, False), (2, 3, False), (6, 7, False), (9, 3, True)])
def test_fewer_rows_than_parameters_is_said_so_not_drop_a_column(tmp_path, write_config, rows, features, repeat):
    data = _csv(tmp_path / "few.csv", rows, features, repeat=repeat)
    path = write_config(f"kind: linear-gd\ndevice: cpu\ndata:\n  source: csv\n  path: {data}\n  target: y\n"
                        "train:\n  lr: 0.01\n  epochs: 5\n  log_every: 1\n")
    result = cli("train", path, "--out", "r", "--no-plots")
    assert result.exit_code == 0, result.output
    warning = next(line for line in result.stdout.splitlines() if "optimum:" in line and "warning" in line)
    assert "drop a column" not in warning and "fewer" in warning and "parameters" in warning, warning
    assert (f"{rows} rows" if not repeat else "1 distinct row") in warning, warning


def test_one_synthetic_row_is_fewer_rows_than_parameters_and_its_r2_is_undefined():
    result = cli("train", EXP2, "--set", "data.n=1", "--epochs", "5", "--out", "r", "--no-plots", "--device", "cpu")
    assert result.exit_code == 0, result.output
    assert "1 row for 2 parameters" in result.stdout and "drop a column" not in result.stdout, result.stdout
    r2 = next(line for line in result.stdout.splitlines() if "R²" in line and "train" in line)
    assert "nan" not in r2 and "None" not in r2 and "undefined" in r2, r2
    assert "1 training row," in result.stdout  # one row, not "1 training rows"


def test_an_r2_with_no_spread_to_explain_is_undefined_with_its_reason():
    import torch

    from bpcli import analysis

    for y, centred in (([3.0], True), ([2.0, 2.0, 2.0], True), ([0.0, 0.0], False)):
        y = torch.tensor(y)
        assert math.isnan(analysis.r2(y, y + 1, centred))
        assert analysis.r2_undefined(y, centred)
    assert analysis.r2_undefined(torch.tensor([1.0, 2.0]), True) is None


# --------------------------------------------------------------------------- numbers and files named in full


@pytest.mark.parametrize("step,shown", [("1000000000", "step 1000000000 "), ("1000000000.5", "step 1000000000.5 "),
                                        ("123456789012", "step 123456789012 ")])
def test_a_step_number_is_printed_whole(step, shown):
    assert cli("train", EXP2, "--epochs", "5", "--log-every", "1", "--out", "v", "--no-plots", "-q",
               "--device", "cpu").exit_code == 0
    from pathlib import Path

    lines = Path("v/metrics.csv").read_text().splitlines()
    lines[-1] = ",".join([step, *lines[-1].split(",")[1:]])
    Path("v/metrics.csv").write_text("\n".join(lines) + "\n")
    result = cli("rerun", "v", "--verify")
    assert result.exit_code != 0 and shown in result.stderr and "e+" not in result.stderr, result.stderr


@pytest.mark.parametrize("failing", ["metrics.csv", "summary.csv", "aggregates.csv", "sweep.json"])
def test_a_sweep_on_a_full_disk_names_the_file(monkeypatch, failing):
    import errno

    from bpcli.rundir import files

    original = files.write_file

    def full(path, write):
        def fails(fh):  # as a write that fails part-way raises it: no file name
            raise OSError(errno.ENOSPC, "No space left on device")

        return original(path, fails if path.name == failing else write)

    monkeypatch.setattr(files, "write_file", full)
    result = cli("sweep", EXP2, "--grid", "lr=0.01,0.1", "--epochs", "3", "--out", "s")
    assert result.exit_code == 1 and one_line(result), result.output
    assert f"s/{failing}: No space left on device" in result.stderr, result.stderr


def test_a_sweep_whose_figure_fails_names_the_sweep_directory(monkeypatch):
    import errno

    import bpcli.plots

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(bpcli.plots, "draw_sweep", full)
    result = cli("sweep", EXP2, "--grid", "lr=0.01,0.1", "--epochs", "3", "--out", "s")
    assert result.exit_code == 1 and "s: No space left on device" in result.stderr, result.stderr


@pytest.mark.parametrize("width", ["12", "30", "47"])
def test_check_sweep_and_explain_tables_never_cut_a_number(monkeypatch, width):
    wide = {
        "check": cli("check", EXP2, "--steps", "2", "--device", "cpu").stdout,
        "sweep": cli("sweep", EXP2, "--grid", "lr=0.01,0.1", "--epochs", "3", "--out", "s1").stdout,
        "explain": cli("explain", "--expr", "J = 3*(a + b*c)", "--at", "a=1.25", "--at", "b=-2.5", "--at", "c=3",
                       "--out", "g1.png").stdout,
    }
    monkeypatch.setenv("COLUMNS", width)
    narrow = {
        "check": cli("check", EXP2, "--steps", "2", "--device", "cpu").stdout,
        "sweep": cli("sweep", EXP2, "--grid", "lr=0.01,0.1", "--epochs", "3", "--out", "s2").stdout,
        "explain": cli("explain", "--expr", "J = 3*(a + b*c)", "--at", "a=1.25", "--at", "b=-2.5", "--at", "c=3",
                       "--out", "g2.png").stdout,
    }
    import re

    for command, text in narrow.items():
        assert "…" not in text, (command, text)
        # every number of the wide output is printed whole in the narrow one (timings aside)
        untimed = re.sub(r"\d+\.\d+ s\b", "", wide[command])  # timings differ from run to run
        numbers = {n for n in re.findall(r"-?\d[\d.e+-]*", untimed) if len(n) > 2}
        shown = set(re.findall(r"-?\d[\d.e+-]*", text))
        missing = numbers - shown
        assert not missing, (command, sorted(missing), text)


def test_a_training_run_s_grad_check_never_records_infinities_as_agreement():
    from bpcli.lifecycle import train
    from conftest import config as load

    for lr in (1e30, 1e35):
        result = train(load("exp2.yaml", train__lr=lr, train__check_grad_every=1, train__log_every=100), None,
                       plots=False)
        check = result.summary["grad_check"]  # checked up to step 100, infinite from step 3
        assert check["agree"] is None and check["not_comparable_from"]["step"] >= 2, check
        assert math.isfinite(check["worst_manual_vs_autograd"])


@pytest.mark.parametrize("lr,shuffle", [("0.3", "true"), ("0.25", "true"), ("0.3", "false"), ("1.0", "true")])
def test_a_per_sample_run_is_told_its_own_per_sample_bound_in_any_order(lr, shuffle):
    message = diverged(EXP1, "--lr", lr, "--set", f"train.shuffle={shuffle}")
    assert "full-batch bound" not in message and "per-sample SGD" in message and "Try --lr" in message, message


def test_a_mini_batch_run_is_still_told_the_full_batch_bound_promises_nothing():
    message = diverged(MLP.parent / "exp2.yaml", "--lr", "3", "--set", "train.batch_size=10")
    assert "full-batch bound" in message and "batch_size" in message, message
