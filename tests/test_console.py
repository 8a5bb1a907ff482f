"""What a user sees in the terminal: progress on a terminal and in a log, the final tables,
--help, and the words of a bad device."""

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console

from bpcli.console import PLAIN_LINES, ConsoleObserver, make_console, print_result
from conftest import CONFIGS, cli


def step_lines(output):
    return [line for line in output.splitlines() if line.startswith("step ")]


def steps_of(lines):
    return [int(line.split()[1].split("/")[0]) for line in lines]


def metrics_rows(run):
    with open(Path(run) / "metrics.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("epochs,log_every", [(100, 1), (37, 1), (400, 3), (7, 1)])
def test_a_log_gets_a_bounded_number_of_progress_lines_spread_over_the_run(epochs, log_every):
    # exp1 makes 3 steps an epoch; every step logged used to print a line each.
    result = cli("train", CONFIGS / "exp1.yaml", "--epochs", epochs, "--log-every", log_every, "--no-plots")
    assert result.exit_code == 0, result.output
    total = 3 * epochs
    steps = steps_of(step_lines(result.stdout))
    assert len(steps) <= PLAIN_LINES + 1
    assert steps[0] == 1 and steps[-1] == total and steps == sorted(set(steps))
    # No stretch of a twentieth of the run (or of a logging interval) goes without a line.
    gaps = [b - a for a, b in zip(steps, steps[1:])]
    assert max(gaps) <= max(-(-total // PLAIN_LINES), log_every) + log_every
    # metrics.csv still has every logged step.
    logged = [int(r["step"]) for r in metrics_rows("outputs/run1")]
    assert len(logged) == len({1, total} | set(range(log_every, total + 1, log_every)))


def test_a_long_sweep_in_a_log_is_short_too():
    result = cli("sweep", CONFIGS / "exp2.yaml", "--grid", "lr=0.01,0.2", "--grid", "seed=0:3", "--epochs", "900",
                 "--log-every", "2")
    assert result.exit_code == 0, result.output
    steps = steps_of(step_lines(result.stdout))
    assert steps[0] == 1 and steps[-1] == 900 and len(steps) <= PLAIN_LINES + 1
    assert "6 members" in result.stdout  # the aggregates table follows


def test_a_run_that_diverges_ends_its_log_with_the_step_it_diverged_at():
    result = cli("train", CONFIGS / "exp2.yaml", "--lr", "3", "--epochs", "2000", "--log-every", "1", "--no-plots")
    assert result.exit_code == 1
    diverged_at = json.loads(Path("outputs/run1/summary.json").read_text())["divergence"]["step"]
    steps = steps_of(step_lines(result.stdout))
    assert steps[-1] == diverged_at and len(steps) <= PLAIN_LINES + 1


def test_a_plain_line_leaves_out_gradients_and_wide_models_parameters():
    exp3 = cli("train", CONFIGS / "exp3.yaml", "--epochs", "300", "--no-plots")
    line = step_lines(exp3.stdout)[0]
    assert re.search(r"loss \S+  w \S+  b \S+  distance_to_optimum \S+", line) and "grad" not in line

    mlp = cli("train", CONFIGS / "mlp.yaml", "--epochs", "200", "--no-plots", "--out", "mlp")
    for line in step_lines(mlp.stdout):
        assert "norm(" not in line and "grad" not in line and len(line) < 100
        assert re.fullmatch(r"step \d+/200  epoch \d+  loss \S+  \(\d+\.\d s\)", line)


def table_rows(output):
    """The end-of-run table's rows as lists of cells (rich's heavy-box table)."""
    return [[c.strip() for c in line.strip()[1:-1].split(line.strip()[0])]
            for line in output.splitlines() if line.startswith(("│", "┃"))]


def test_the_results_table_has_no_column_that_nothing_fills():
    mlp = cli("train", CONFIGS / "mlp.yaml", "--epochs", "50", "--no-plots")
    header = table_rows(mlp.stdout)[0]
    assert header == ["", "value"]

    exp1 = cli("train", CONFIGS / "exp1.yaml", "--epochs", "20", "--no-plots", "--out", "exp1")
    assert table_rows(exp1.stdout)[0] == ["", "value", "true", "optimum"]

    diabetes = cli("train", CONFIGS / "diabetes.yaml", "--epochs", "30", "--no-plots", "--out", "diabetes")
    # a CSV has no true parameters; standardised, it has the data's units beside
    assert table_rows(diabetes.stdout)[0] == ["", "value", "optimum", "value, data units", "optimum, data units"]


@pytest.mark.parametrize("name,epochs", [("diabetes.yaml", 2000), ("diabetes.yaml", 700), ("exp2.yaml", 3000),
                                         ("exp3.yaml", 30000), ("exp1.yaml", 100)])
def test_the_trained_loss_and_the_optimum_loss_are_shown_to_the_same_digits(name, epochs):
    result = cli("train", CONFIGS / name, "--epochs", epochs, "--no-plots")
    assert result.exit_code == 0, result.output
    header, *rows = table_rows(result.stdout)
    summary = json.loads(Path("outputs/run1/summary.json").read_text())
    # The optimum's loss stands beside the loss of the whole data: per sample (exp1) that is
    # its own row, under the last sample's loss.
    label = "final loss" if "final_loss_all_samples" not in summary else f"loss on all {summary['samples']['train']} samples"
    loss = summary.get("final_loss_all_samples", summary["final_loss"])
    row = next(r for r in rows if r[0] == label)
    trained, optimum = row[header.index("value")], row[header.index("optimum")]
    assert trained == f"{loss:.6g}" and optimum == f"{summary['optimum']['loss']:.6g}"
    # The optimum is never shown above the trained loss by rounding alone.
    assert float(optimum) <= float(trained) or loss < summary["optimum"]["loss"]


def ascii_table_widths(text):
    lines = [line for line in text.splitlines() if line.startswith(("|", "+"))]
    assert lines, text
    return {len(line) for line in lines}


def test_on_an_ascii_terminal_tables_are_spelled_in_ascii_and_stay_aligned():
    env = {**os.environ, "PYTHONIOENCODING": "ascii"}
    check = subprocess.run([sys.executable, "-m", "bpcli", "check", CONFIGS / "mlp.yaml", "--steps", "1"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert check.returncode == 0, check.stderr
    assert "theta" in check.stdout and "θ" not in check.stdout
    assert len(ascii_table_widths(check.stdout)) == 1  # borders, rule and rows as wide as each other

    summary = {"kind": "scalar-sgd", "status": "completed", "params": {"w": [1.9999996]}, "true_params": {"w": 2.0},
               "optimum": {"w": [2.0], "loss": 1e-30}, "final_loss": 9e-13, "predictions": [{"x": 4.0, "y_pred": 8.0}],
               "r2": {"train": 1.0}, "optimum_r2": {"train": 1.0}, "steps": 300, "epochs": 100, "device": "cpu"}
    out = io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="strict")
    print_result(make_console().__class__(file=out, width=100), summary, None)
    out.seek(0)
    text = out.read()
    assert "y_hat at x = 4" in text and "R^2 (train)" in text
    assert len(ascii_table_widths(text)) == 1


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_on_a_terminal_the_wait_before_the_first_step_and_after_the_last_says_what_happens():
    screen = Terminal()
    console = Console(file=screen, force_terminal=True, width=100)
    observer = ConsoleObserver(console, "Training scalar-sgd (exp1.yaml)")
    observer.stage("loading torch")
    observer.stage("building the data and the model")
    observer.on_start(3, Path("outputs/run7"), "cpu")
    for step in (1, 2, 3):
        observer.on_log({"step": step, "epoch": 1, "loss": 1.0 / step})
    observer.close()
    text = screen.getvalue()
    order = [text.find(s) for s in ("loading torch", "building the data and the model", "Training scalar-sgd",
                                    "starting", "training", "3/3", "saving outputs/run7")]
    assert -1 not in order and order == sorted(order), text


def test_bpcli_check_fits_an_80_column_terminal_without_cutting_a_value():
    from bpcli.console import print_grad_checks
    from bpcli.gradcheck import check_steps
    from bpcli.build import build
    from conftest import config

    for name in ("mlp.yaml", "exp1.yaml", "diabetes.yaml"):
        checks = check_steps(build(config(name)).trainer, 2)
        screen = Terminal()
        print_grad_checks(Console(file=screen, force_terminal=True, width=80, color_system=None), checks, name)
        table = screen.getvalue().splitlines()
        assert not any("…" in line for line in table), "\n".join(table)
        assert max(len(line.rstrip()) for line in table[:-1]) <= 80  # the verdict line may wrap


@pytest.mark.parametrize("command", ["", "train", "config", "rerun", "sweep", "check", "explain", "plot", "compare"])
def test_help_shows_flags_as_flags(command):
    result = cli(*([command] if command else []), "--help")
    assert result.exit_code == 0
    assert "<bool>" not in result.stdout and "bool" not in result.stdout.lower().replace("boolean", "")
    assert "--help" in result.stdout


@pytest.mark.parametrize("device", ["gpu", "GPU:0", "cuda0", "cuda:-1", "tpu", "cpu:0"])
def test_an_unknown_device_is_one_line_naming_the_devices_bpcli_accepts(device):
    result = cli("train", CONFIGS / "exp2.yaml", "--device", device)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output
    assert repr(device) in lines[0] and f"--device {device}" in lines[0]
    assert "auto" in lines[0] and "cuda:N" in lines[0] and "mps" in lines[0]
    assert "^(" not in lines[0] and "\\d" not in lines[0]  # no regular expression
    assert not Path("outputs").exists()


def test_a_run_resumed_with_another_torch_records_both_and_warns(monkeypatch):
    cut = cli("train", CONFIGS / "exp2.yaml", "--epochs", "300", "--no-plots", "--out", "run")
    assert cut.exit_code == 0
    summary_path = Path("run/summary.json")
    summary = json.loads(summary_path.read_text())
    assert cut.stderr == ""  # one torch version so far: nothing to warn about
    summary["torch_version"] = "2.0.1"  # as if an older torch had trained the first 300 steps
    summary_path.write_text(json.dumps(summary))

    resumed = cli("train", "--resume", "run", "--epochs", "500", "--no-plots")
    assert resumed.exit_code == 0, resumed.output
    after = json.loads(summary_path.read_text())
    assert after["torch_version"] == "2.0.1"
    assert after["resumed_from"][-1]["step"] == 300
    assert after["resumed_from"][-1]["torch_version"] == torch.__version__
    warning = resumed.stderr.strip()
    assert warning.startswith("warning: run was trained with torch 2.0.1, then " + torch.__version__)

    again = cli("train", "--resume", "run", "--epochs", "600", "--no-plots")  # the same torch again
    assert [r["torch_version"] for r in json.loads(summary_path.read_text())["resumed_from"]] == \
        [torch.__version__] * 2
    assert "2.0.1, then " + torch.__version__ in again.stderr  # the run as a whole still mixes two


def test_a_run_resumed_with_the_same_torch_does_not_warn():
    assert cli("train", CONFIGS / "exp1.yaml", "--epochs", "10", "--no-plots", "--out", "run").exit_code == 0
    resumed = cli("train", "--resume", "run", "--epochs", "20", "--no-plots")
    assert resumed.exit_code == 0 and resumed.stderr == ""
    assert json.loads(Path("run/summary.json").read_text())["resumed_from"][0]["torch_version"] == torch.__version__


def test_a_run_cut_short_ends_its_log_with_the_last_step_it_logged():
    log = io.StringIO()
    observer = ConsoleObserver(Console(file=log, width=120), "Training")
    observer.on_start(1000, None, "cpu")
    for step in range(1, 438):  # interrupted after step 437, every step logged
        observer.on_log({"step": step, "epoch": step, "loss": 1.0, "grad_w": 2.0})
    observer.close()
    steps = steps_of(step_lines(log.getvalue()))
    assert steps[-1] == 437 and steps[0] == 1 and len(steps) <= PLAIN_LINES + 1
    assert "grad_w" not in log.getvalue()


@pytest.mark.parametrize("command,name", [("train", "CONFIG"), ("check", "CONFIG"), ("sweep", "CONFIG"),
                                          ("rerun", "RUN_DIR"), ("plot", "RUN_DIR")])
def test_arguments_are_named_as_the_readme_names_them(command, name):
    usage = cli(command, "--help").stdout
    assert re.search(rf"Usage: bpcli {command} \[OPTIONS\] [\[{{]{name}[\]}}]", usage), usage


def sweep_header(output):
    rule = next(i for i, line in enumerate(output.splitlines()) if "────" in line)
    return output.splitlines()[rule - 1].split()


def test_a_sweeps_table_shows_few_parameters_and_no_spread_for_one_member():
    linear = cli("sweep", CONFIGS / "exp2.yaml", "--grid", "lr=0.01,0.1", "--grid", "seed=0:3", "--epochs", "200")
    assert sweep_header(linear.stdout) == ["lr", "runs", "final_loss", "r2", "w", "b"]
    assert linear.stdout.count("±") == 8  # two settings of three seeds: mean ± std for each measure
    assert "aggregates.csv has every parameter" not in linear.stdout  # every one is shown

    mlp = cli("sweep", CONFIGS / "mlp.yaml", "--grid", "lr=0.05,0.1", "--epochs", "20", "--out", "mlp")
    assert sweep_header(mlp.stdout) == ["lr", "runs", "final_loss", "r2"]  # not four of its 337 weights
    assert "±" not in mlp.stdout  # one member per setting: nothing to spread
    assert "aggregates.csv has every parameter" in mlp.stdout
    with open("mlp/aggregates.csv", newline="") as fh:
        assert "W2[255]_mean" in next(csv.reader(fh))


def test_a_diverged_runs_last_progress_line_and_its_table_agree_on_the_time():
    # The step it diverged at is printed as the run ends, after its figures are drawn: its
    # line said 2.4 s (drawing included) where the table's training time said 0.26 s.
    import re

    result = cli("train", CONFIGS / "exp2.yaml", "--lr", "5")
    assert result.exit_code != 0
    lines = [line for line in result.stdout.splitlines() if line.startswith("step ")]
    line_seconds = float(re.search(r"\((\d+\.\d) s\)$", lines[-1]).group(1))
    table_seconds = float(re.search(r"│ time\s+│\s+(\d+\.\d+) s", result.stdout).group(1))
    assert abs(line_seconds - table_seconds) <= 0.06, (lines[-1], table_seconds)
