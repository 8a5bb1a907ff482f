"""bpcli export: the exported run.py reproduces its run's logged numbers bit for bit,
without bpcli, for every shipped config and for each kind with other optimizers, batches,
dtypes and data."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bpcli.export import read_printed
from conftest import CONFIGS, cli

# Reduced epochs keep each run a second or two; exp1, exp2 and moons run whole.
SHIPPED = {
    "exp1.yaml": None, "exp2.yaml": None, "exp3.yaml": 300, "diabetes.yaml": 200, "longley.yaml": 200,
    "mlp.yaml": 100, "moons.yaml": None, "spiral.yaml": 100, "xor.yaml": 100, "logistic.yaml": 100,
    "logistic-circles.yaml": 100, "logistic-gauss.yaml": 100, "softmax.yaml": 100,
}

# Without bpcli: `bpcli` is made unimportable before the script runs, in isolated mode.
WITHOUT_BPCLI = "import sys, runpy; sys.modules['bpcli'] = None; runpy.run_path('run.py', run_name='__main__')"


def train(tmp_path, config, *args, name="run"):
    out = tmp_path / name
    result = cli("train", CONFIGS / config, "--out", out, "--device", "cpu", "--no-plots", "-q", *args)
    assert result.exit_code == 0, result.output
    return out


def run_script(run_dir):
    text = (run_dir / "run.py").read_text()
    assert "bpcli" not in "".join(line for line in text.splitlines() if "import" in line)
    done = subprocess.run([sys.executable, "-I", "-c", WITHOUT_BPCLI], cwd=run_dir, capture_output=True,
                          text=True, timeout=120, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return read_printed(done.stdout)


def recorded(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        losses = {int(row["step"]): float(row["loss"]) for row in csv.DictReader(f)}
    return losses, json.loads((run_dir / "summary.json").read_text())["params"]


def export_and_compare(run_dir):
    result = cli("export", run_dir)
    assert result.exit_code == 0, result.output
    printed_losses, printed_params = run_script(run_dir)
    losses, params = recorded(run_dir)
    assert printed_losses == losses  # every logged step, bit for bit
    for name, values in params.items():
        if isinstance(values, dict):  # a large tensor, summarised by its norm
            import torch
            assert float(torch.tensor(printed_params[name]).norm()) == values["norm"]
        else:
            assert printed_params[name] == values, name


@pytest.mark.parametrize("config", sorted(SHIPPED))
def test_every_shipped_config_is_reproduced_bit_for_bit(tmp_path, config):
    epochs = SHIPPED[config]
    run_dir = train(tmp_path, config, *(["--epochs", epochs] if epochs else []))
    export_and_compare(run_dir)


VARIANTS = [
    ("exp1.yaml", ["--set", "train.momentum=0.9"]),
    ("exp1.yaml", ["--set", "train.batch_size=2", "--set", "train.shuffle=true", "--set", "dtype=float64"]),
    ("exp1.yaml", ["--set", "train.optimizer=adam", "--set", "train.grad=autograd"]),
    ("exp2.yaml", ["--epochs", "200", "--set", "train.grad=manual", "--set", "train.optimizer=adam"]),
    ("exp1.yaml", ["--epochs", "5", "--set", "train.shuffle=true"]),
    ("exp2.yaml", ["--epochs", "50", "--set", "train.grad=manual", "--set", "train.shuffle=true"]),
    ("exp3.yaml", ["--epochs", "50", "--set", "model.bias=false", "--set", "train.nesterov=true",
                   "--set", "train.momentum=0.9"]),
    ("mlp.yaml", ["--epochs", "30", "--set", "train.momentum=0.9", "--set", "train.nesterov=true",
                  "--set", "train.weight_decay=0.001", "--set", "model.hidden=[5]"]),
    ("logistic-gauss.yaml", ["--epochs", "50", "--set", "model.bias=false", "--set", "train.momentum=0.9"]),
    ("exp2.yaml", ["--epochs", "20", "--set", "train.batch_size=7"]),
    ("exp2.yaml", ["--epochs", "200", "--set", "train.grad=manual", "--set", "train.momentum=0.9",
                   "--set", "train.nesterov=true", "--set", "train.weight_decay=0.01"]),
    ("exp2.yaml", ["--epochs", "200", "--set", "train.grad=manual", "--set", "dtype=float64",
                   "--set", "model.bias=false"]),
    ("exp3.yaml", ["--epochs", "100", "--set", "train.optimizer=adam", "--set", "train.lr=0.01"]),
    ("exp3.yaml", ["--epochs", "20", "--set", "train.batch_size=7", "--set", "train.momentum=0.9"]),
    ("exp3.yaml", ["--epochs", "100", "--set", "train.grad=manual", "--set", "dtype=float64"]),
    ("longley.yaml", ["--epochs", "50", "--set", "train.batch_size=7", "--set", "train.optimizer=adam",
                      "--set", "train.lr=0.01"]),
    ("diabetes.yaml", ["--epochs", "100", "--set", "train.grad=autograd", "--set", "train.momentum=0.5"]),
    ("mlp.yaml", ["--epochs", "20", "--set", "train.batch_size=7", "--set", "model.activation=sigmoid"]),
    ("mlp.yaml", ["--epochs", "50", "--set", "train.grad=autograd", "--set", "model.activation=relu",
                  "--set", "train.optimizer=adam", "--set", "train.lr=0.01"]),
    ("moons.yaml", ["--epochs", "50", "--set", "model.loss=cross-entropy", "--set", "dtype=float64",
                    "--set", "train.momentum=0.9"]),
    ("moons.yaml", ["--epochs", "50", "--set", "model.loss=bce", "--set", "model.activation=tanh"]),
    ("logistic.yaml", ["--epochs", "20", "--set", "train.batch_size=7", "--set", "train.momentum=0.9"]),
    ("logistic.yaml", ["--epochs", "100", "--set", "train.grad=autograd", "--set", "train.optimizer=adam",
                       "--set", "train.lr=0.05"]),
    ("softmax.yaml", ["--epochs", "20", "--set", "train.batch_size=7", "--set", "train.optimizer=adam",
                      "--set", "train.lr=0.05", "--set", "dtype=float64"]),
    ("softmax.yaml", ["--epochs", "100", "--set", "train.grad=autograd", "--set", "train.weight_decay=0.01"]),
    ("exp1.yaml", ["--set", "train.optimizer=rmsprop", "--set", "train.momentum=0.5", "--set", "train.centered=true"]),
    ("exp2.yaml", ["--epochs", "100", "--set", "train.grad=manual", "--set", "train.optimizer=rmsprop",
                   "--set", "train.weight_decay=0.01"]),
    ("mlp.yaml", ["--epochs", "30", "--set", "train.optimizer=adagrad", "--set", "train.lr=0.1",
                  "--set", "train.weight_decay=0.001"]),
    ("logistic.yaml", ["--epochs", "50", "--set", "train.optimizer=adamw", "--set", "train.lr=0.05"]),
    ("exp3.yaml", ["--epochs", "50", "--set", "train.optimizer=rmsprop", "--set", "train.lr=0.01"]),
    ("exp3.yaml", ["--epochs", "50", "--set", "train.optimizer=adagrad", "--set", "train.lr=0.1"]),
    ("exp3.yaml", ["--epochs", "50", "--set", "train.optimizer=adamw", "--set", "train.lr=0.01"]),
]


@pytest.mark.parametrize("config, args", VARIANTS, ids=[f"{c}:{' '.join(a)}" for c, a in VARIANTS])
def test_each_kind_with_other_settings_is_reproduced_bit_for_bit(tmp_path, config, args):
    export_and_compare(train(tmp_path, config, *args))


def test_large_initial_tensors_come_from_run_init_pt(tmp_path):
    run_dir = train(tmp_path, "mlp.yaml", "--epochs", "3", "--set", "model.hidden=[40, 40]")
    export_and_compare(run_dir)
    assert (run_dir / "run_init.pt").is_file()
    assert "run_init.pt" in json.loads((run_dir / "manifest.json").read_text())["written"]


def test_an_existing_run_py_is_kept_without_force(tmp_path):
    run_dir = train(tmp_path, "exp1.yaml", "--epochs", "1")
    assert cli("export", run_dir).exit_code == 0
    (run_dir / "run.py").write_text("mine\n")
    result = cli("export", run_dir)
    assert result.exit_code == 2 and "--force" in result.output
    assert (run_dir / "run.py").read_text() == "mine\n"
    assert cli("export", run_dir, "--force").exit_code == 0
    assert "run.py" in json.loads((run_dir / "manifest.json").read_text())["written"]


def test_a_kind_registered_by_a_user_is_refused_by_name(write_config):
    from bpcli.kinds import register, unregister
    from test_kinds import KIND  # the throw-away kind test_kinds registers

    register(KIND)
    try:
        config = write_config("kind: quadratic\ndevice: cpu\ntrain:\n  epochs: 2\n", "quadratic.yaml")
        assert cli("train", config, "--out", "q", "-q", "--no-plots").exit_code == 0
        result = cli("export", "q")
    finally:
        unregister("quadratic")
    assert result.exit_code == 2 and "'quadratic'" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (Path("q") / "run.py").exists()


def test_a_run_whose_data_csv_is_a_sample_is_refused(tmp_path):
    run_dir = train(tmp_path, "exp1.yaml", "--epochs", "1")
    summary = json.loads((run_dir / "summary.json").read_text())
    summary["data_csv_rows"] = {"written": 100_000, "of": 200_000}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    result = cli("export", run_dir)
    assert result.exit_code == 2 and "100000 of the 200000" in result.output


@pytest.mark.parametrize("changes", [["--set", "train.optimizer=adagrad", "--set", "train.lr_decay=0.1"],
                                     ["--set", "train.schedule=cosine"]])
def test_a_run_whose_update_the_script_cannot_write_is_refused_in_one_line(changes):
    assert cli("train", CONFIGS / "exp2.yaml", "--epochs", "5", "--out", "run", "-q", "--no-plots", *changes).exit_code == 0
    result = cli("export", "run")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.output
    assert "run/run.py" not in result.stdout and not Path("run/run.py").exists()
    assert ("lr_decay" in result.stderr or "schedule" in result.stderr)
