"""The command line as a user meets it: run directories, output, overrides, errors."""

import csv
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import typer
import yaml
from typer.testing import CliRunner

from bpcli.cli import app
from bpcli.devices import resolve_device
from bpcli.flags import OVERRIDE_FLAGS
from conftest import CONFIGS, cli

EXP2 = CONFIGS / "exp2.yaml"
SHORT = ["--epochs", "50", "--log-every", "10"]


def header(path):
    with open(path, newline="") as fh:
        return next(csv.reader(fh))


def test_train_writes_a_complete_run_directory():
    result = cli("train", EXP2, *SHORT)
    assert result.exit_code == 0, result.output
    run = Path("outputs/run1")
    assert sorted(p.name for p in run.iterdir()) == sorted(
        [".bpcli", "manifest.json", "config.yaml", "metrics.csv", "summary.json", "data.csv", "curve.csv",
         "checkpoint.pt", "loss.png", "fit.png", "params.png", "landscape.png"]
    )
    assert header(run / "metrics.csv") == ["step", "epoch", "loss", "w", "b", "grad_w", "grad_b",
                                           "distance_to_optimum"]
    rows = list(csv.DictReader(open(run / "metrics.csv")))
    assert [int(r["step"]) for r in rows] == [1, 10, 20, 30, 40, 50]
    summary = json.loads((run / "summary.json").read_text())
    for key in ["status", "kind", "seed", "device", "epochs", "steps", "final_loss", "params",
                "predictions", "true_params", "train_seconds", "torch_version", "bpcli_version"]:
        assert key in summary, key
    assert summary["status"] == "completed"
    assert summary["steps"] == 50 and summary["epochs"] == 50
    assert summary["true_params"] == {"w": 4.0, "b": 0.6}
    assert summary["final_loss"] == float(rows[-1]["loss"])
    assert summary["params"]["w"] == [float(rows[-1]["w"])]
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["train"]["epochs"] == 50 and config["seed"] == 0
    assert config["device"] == summary["device"] == str(resolve_device("auto"))  # the device used, not "auto"
    data = list(csv.reader(open(run / "data.csv")))
    assert data[0] == ["x", "y"] and len(data) == 101


def test_named_flags_override_the_config():
    result = cli("train", EXP2, "--lr", "0.05", "--epochs", "500", "--seed", "3", "--device", "cpu",
                 "--engine", "eager", "--grad", "manual", "--set", "train.grad=autograd", "--out", "outputs/fast")
    assert result.exit_code == 0, result.output
    config = yaml.safe_load(Path("outputs/fast/config.yaml").read_text())
    assert (config["train"]["lr"], config["train"]["epochs"], config["seed"]) == (0.05, 500, 3)
    assert (config["train"]["engine"], config["train"]["grad"]) == ("eager", "manual")  # the flag wins over --set
    summary = json.loads(Path("outputs/fast/summary.json").read_text())
    assert (summary["seed"], summary["grad"], summary["engine"]) == (3, "manual", "eager")


def test_set_overrides_any_field():
    result = cli("train", CONFIGS / "exp3.yaml", "--set", "data.n=200", "--set", "train.log_every=100",
                 "--epochs", "300", "--device", "cpu")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(open("outputs/run1/data.csv")))
    assert len(rows) == 201
    steps = [r[0] for r in csv.reader(open("outputs/run1/metrics.csv"))][1:]
    assert steps == ["1", "100", "200", "300"]


def test_exp1_logs_every_step_and_reports_the_prediction():
    result = cli("train", CONFIGS / "exp1.yaml", "--device", "cpu")
    assert result.exit_code == 0, result.output
    summary = json.loads(Path("outputs/run1/summary.json").read_text())
    assert summary["predictions"] == [{"x": 4.0, "y_pred": 7.999998569488525}]
    assert summary["true_params"] == {"w": 2.0}
    assert header("outputs/run1/metrics.csv") == ["step", "epoch", "loss", "w", "grad_w", "distance_to_optimum"]
    assert len(open("outputs/run1/metrics.csv").readlines()) == 301
    assert "7.999998569488525"[:8] in result.stdout  # the final table shows ŷ(4)


def test_a_second_run_never_overwrites_the_first():
    assert cli("train", EXP2, *SHORT).exit_code == 0
    first = Path("outputs/run1/summary.json").read_bytes()
    assert cli("train", EXP2, *SHORT, "--lr", "0.02").exit_code == 0
    assert Path("outputs/run2/summary.json").is_file()
    assert Path("outputs/run1/summary.json").read_bytes() == first


def test_an_existing_run_needs_force_and_other_files_are_never_cleared(tmp_path):
    assert cli("train", EXP2, *SHORT, "--out", "mine").exit_code == 0
    before = Path("mine/metrics.csv").read_bytes()
    refused = cli("train", EXP2, *SHORT, "--lr", "0.02", "--out", "mine")
    assert refused.exit_code == 2
    assert "mine: already holds files" in refused.stderr and "--force" in refused.stderr
    assert Path("mine/metrics.csv").read_bytes() == before
    forced = cli("train", EXP2, *SHORT, "--lr", "0.02", "--out", "mine", "--force")
    assert forced.exit_code == 0
    assert yaml.safe_load(Path("mine/config.yaml").read_text())["train"]["lr"] == 0.02

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.txt").write_text("precious")
    result = cli("train", EXP2, *SHORT, "--out", notes, "--force")
    assert result.exit_code == 2 and "not a bpcli run" in result.stderr
    assert (notes / "thesis.txt").read_text() == "precious"


def test_quiet_prints_only_the_run_directory():
    result = cli("train", EXP2, *SHORT, "--quiet")
    assert result.exit_code == 0
    assert result.stdout == "outputs/run1\n"


def test_output_to_a_pipe_is_plain_lines_at_the_logging_interval():
    result = cli("train", EXP2, *SHORT)
    assert "\x1b" not in result.output and "\r" not in result.output
    lines = [line for line in result.stdout.splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["1/50", "10/50", "20/50", "30/50", "40/50", "50/50"]
    assert "loss" in lines[0] and " w " in lines[0] and "grad_w" not in lines[0]  # gradients: metrics.csv
    assert "outputs/run1" in result.stdout  # the final table names the run directory


def test_config_prints_the_resolved_config_without_training():
    result = cli("config", EXP2, "--lr", "0.5", "--set", "data.noise=0.1")
    assert result.exit_code == 0
    printed = yaml.safe_load(result.stdout)
    assert printed["train"]["lr"] == 0.5 and printed["data"]["noise"] == 0.1
    assert printed["kind"] == "linear-gd"
    assert not Path("outputs").exists()


# A value each named flag can take with exp2.yaml: a flag added to the table needs one here.
FLAG_VALUES = {"--lr": 0.05, "--epochs": 7, "--seed": 3, "--device": "cpu", "--log-every": 2, "--engine": "eager",
               "--grad": "manual", "--optimizer": "adam", "--momentum": 0.5, "--batch-size": 4, "--threads": 1}


@pytest.mark.parametrize("flag", list(OVERRIDE_FLAGS))
def test_every_named_flag_sets_the_field_its_row_names_and_says_so_in_help(flag):
    assert set(FLAG_VALUES) == set(OVERRIDE_FLAGS)
    result = cli("config", EXP2, flag, FLAG_VALUES[flag])
    assert result.exit_code == 0, result.output
    node = yaml.safe_load(result.stdout)
    for part in OVERRIDE_FLAGS[flag].path.split("."):
        node = node[part]
    assert node == FLAG_VALUES[flag]
    shown = CliRunner().invoke(app, ["train", "--help"], env={"COLUMNS": "300"}).stdout
    assert f"{flag} " in shown and OVERRIDE_FLAGS[flag].help in " ".join(shown.split())


def test_a_diverging_run_exits_1_and_keeps_what_it_logged():
    result = cli("train", EXP2, "--lr", "50", "--epochs", "400", "--log-every", "1")
    assert result.exit_code == 1
    assert "diverged" in result.stderr and "The learning rate 50 is too large" in result.stderr
    assert "Try --lr" in result.stderr
    summary = json.loads(Path("outputs/run1/summary.json").read_text())
    assert summary["status"] == "diverged"
    assert summary["steps"] < 400
    assert len(open("outputs/run1/metrics.csv").readlines()) == summary["steps"] + 1


@pytest.mark.parametrize(
    "args,expected",
    [
        (["train", "missing.yaml"], "missing.yaml: no such file"),
        (["train", EXP2, "--lr", "-1"], "train.lr: input should be greater than 0 (got -1.0) (from --lr -1.0)"),
        (["train", EXP2, "--epochs", "0"], "train.epochs: input should be greater than or equal to 1"),
        (["train", EXP2, "--set", "train.lrr=1"], "train.lrr: unknown key (did you mean 'lr'?)"),
        (["train", EXP2, "--set", "nonsense"], "'nonsense' is not key=value"),
        (["train", EXP2, "--device", "tpu"], "device: 'tpu' is not a device bpcli knows"),
        (["config", EXP2, "--set", "kind=cnn"], "kind: unknown kind 'cnn'"),
        (["plot", "outputs/run9"], "outputs/run9: no such run directory"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_traceback(args, expected):
    result = cli(*args)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_an_unavailable_device_is_an_error_not_a_fallback():
    result = cli("train", EXP2, "--device", "cuda")
    assert result.exit_code == 2
    assert "device 'cuda' is not available" in result.stderr and "--device cpu" in result.stderr
    assert not Path("outputs").exists()


def test_an_unwritable_output_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli("train", EXP2, *SHORT, "--out", blocker / "run")
    assert result.exit_code == 2
    assert "cannot write there" in result.stderr
    result = cli("train", EXP2, *SHORT, "--out", blocker)
    assert result.exit_code == 2 and "exists and is not a directory" in result.stderr


def test_bad_yaml_names_the_line(write_config):
    path = write_config("kind: linear-gd\ntrain:\n  lr: [0.1\n")
    result = cli("train", path)
    assert result.exit_code == 2
    assert f"{path}: line" in result.stderr


def test_debug_variable_shows_the_traceback(monkeypatch):
    monkeypatch.setenv("BPCLI_DEBUG", "1")
    result = cli("train", "missing.yaml")
    assert result.exit_code == 2
    assert "Traceback" in result.stderr


def test_python_dash_m_and_the_console_script_answer_help():
    out = subprocess.run([sys.executable, "-m", "bpcli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("train", "config", "plot"):
        assert command in out.stdout


def test_help_does_not_import_torch():
    code = "import sys; sys.argv=['bpcli','train','--help']; from bpcli.cli import main\n" \
           "try:\n    main()\nexcept SystemExit:\n    pass\n" \
           "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules, 'heavy import'"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr



@pytest.mark.parametrize("name", ["", *typer.main.get_command(app).commands])
def test_help_wraps_descriptions_at_the_terminal_width_only(name):
    # A docstring's line breaks are the source file's, not the reader's: on a terminal 200
    # columns wide every paragraph of a command's description is one line of --help.
    group = typer.main.get_command(app)
    command = group.commands[name] if name else group
    result = CliRunner().invoke(app, [*([name] if name else []), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.stdout.splitlines()]
    for paragraph in inspect.cleandoc(command.callback.__doc__).split("\n\n"):
        text = " ".join(paragraph.split())[:150]
        assert any(text in line for line in lines), f"{text[:60]!r}… is broken across lines:\n{result.stdout}"
