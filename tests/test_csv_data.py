"""Real tables: CSV data, several features, validation split, standardisation, R²."""

import json
from pathlib import Path

import numpy as np
import pytest

from bpcli.lifecycle import train
from conftest import cli, config


def test_the_diabetes_example_reaches_the_closed_form_optimum(tmp_path):
    result = train(config("diabetes.yaml"), tmp_path / "run")
    summary = result.summary
    assert summary["samples"] == {"train": 354, "val": 88}
    for split in ("train", "val"):
        assert abs(summary["r2"][split] - summary["optimum_r2"][split]) < 0.01
    assert summary["r2"]["train"] > 0.45
    assert summary["features"] == ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    for name in ("fit.png", "residuals.png", "loss.png", "params.png", "predictions.csv", "preprocessing.json"):
        assert (tmp_path / "run" / name).is_file(), name
    header = (tmp_path / "run/metrics.csv").read_text().splitlines()[0].split(",")
    assert "w[9]" in header and "val_loss" in header


def test_parameters_in_original_units_predict_like_the_model(tmp_path):
    summary = train(config("diabetes.yaml"), tmp_path / "run", plots=False).summary
    original = summary["params_original_units"]
    point = summary["predictions"][0]
    by_hand = sum(w * x for w, x in zip(original["w"], point["x"])) + original["b"][0]
    assert by_hand == pytest.approx(point["y_pred"], rel=1e-4)


def write_csv(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def csv_config(tmp_path, data_lines, kind="nn-linear", **data):
    write_csv(tmp_path / "table.csv", data_lines)
    fields = "\n".join(f"  {k}: {json.dumps(v)}" for k, v in data.items())
    config = tmp_path / "exp.yaml"
    config.write_text(f"kind: {kind}\ndevice: cpu\ndata:\n  source: csv\n  path: table.csv\n{fields}\n"
                      "train:\n  lr: 0.1\n  epochs: 400\n  log_every: 100\n", encoding="utf-8")
    return config


def test_several_features_are_learned_from_a_generated_table(tmp_path):
    rng = np.random.default_rng(3)
    a, b = rng.uniform(-1, 1, 200), rng.uniform(-1, 1, 200)
    rows = "\n".join(f"{x:.6f};{z:.6f};\"{2 * x - 3 * z + 1:.6f}\"" for x, z in zip(a, b))
    config = csv_config(tmp_path, "a;b;y\n" + rows + "\n", target="y", delimiter=";")
    for grad in ("autograd", "manual"):
        result = cli("train", config, "--set", f"train.grad={grad}", "--epochs", "3000", "--out", grad, "-q")
        assert result.exit_code == 0, result.output
        summary = json.loads(Path(grad, "summary.json").read_text())
        assert summary["params"]["w"] == pytest.approx([2.0, -3.0], abs=1e-3)
        assert summary["params"]["b"] == pytest.approx([1.0], abs=1e-3)
        assert summary["r2"]["train"] == pytest.approx(1.0, abs=1e-5)


def test_header_false_and_column_numbers(tmp_path):
    config = csv_config(tmp_path, "1,3\n2,5\n3,7\n4,9\n", kind="linear-gd", header=False, target="1")
    result = cli("train", config, "--epochs", "3000", "--out", "run", "-q")
    assert result.exit_code == 0, result.output
    summary = json.loads(Path("run/summary.json").read_text())
    assert summary["optimum"]["w"] == pytest.approx([2.0]) and summary["optimum"]["b"] == pytest.approx([1.0])


def test_the_data_path_is_relative_to_the_config_file(tmp_path, monkeypatch):
    config = csv_config(tmp_path, "x,y\n1,2\n2,4\n3,6\n", target="y")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert cli("train", config, "--out", "run", "-q").exit_code == 0
    recorded = (elsewhere / "run/config.yaml").read_text()
    assert str(tmp_path / "table.csv") in recorded  # the resolved config works from anywhere


def test_the_validation_split_follows_the_seed(tmp_path):
    lines = "x,y\n" + "\n".join(f"{i / 20},{i / 10}" for i in range(20)) + "\n"
    config = csv_config(tmp_path, lines, target="y", val_fraction=0.25)
    for out, seed in (("a", 1), ("b", 1), ("c", 2)):
        assert cli("train", config, "--seed", seed, "--out", out, "-q", "--no-plots").exit_code == 0
    data = {out: Path(out, "data.csv").read_text() for out in "abc"}
    assert data["a"] == data["b"] != data["c"]
    assert len(data["a"].splitlines()) == 1 + 15


def test_nan_rows_stop_the_run_unless_dropped(tmp_path):
    lines = "x,y\n1,2\n2,nan\n3,6\n4,8\n"
    config = csv_config(tmp_path, lines, target="y")
    result = cli("train", config)
    assert result.exit_code == 2
    assert "line 3, column 'y' is nan (1 such rows); set data.drop_invalid: true" in result.stderr
    config = csv_config(tmp_path, lines, target="y", drop_invalid=True)
    result = cli("train", config, "--out", "run", "-q", "--no-plots")
    assert result.exit_code == 0
    summary = json.loads(Path("run/summary.json").read_text())
    assert summary["data_notes"] == ["dropped 1 rows holding NaN or infinite values"]
    assert summary["samples"]["train"] == 3


@pytest.mark.parametrize(
    "text,data,expected",
    [
        ("x,y\n1,2\n3,oops\n", {"target": "y"}, "line 3, column 'y': 'oops' is not a number"),
        ("x,y\n1,2\n3,\n", {"target": "y"}, "line 3, column 'y': '' is not a number"),
        ("x,y\n1,2\n3\n", {"target": "y"}, "line 3 has 1 cells, the header has 2"),
        ("x,y\n1,2\n", {"target": "y"}, "has 1 usable row(s)"),
        ("x,y\n", {"target": "y"}, "has 0 usable row(s)"),
        ("", {"target": "y"}, "is empty"),
        ("x,y\n1,2\n2,3\n", {"target": "z"}, "no column 'z' for data.target; the columns are x, y"),
        ("x,y\n1,2\n2,3\n", {"target": "y", "features": ["x", "w"]}, "no column 'w' for data.features"),
        ("x,y\n1,2\n2,3\n", {"target": "y", "val_fraction": 0.9}, "cannot give a validation split"),
        ("x,c,y\n1,5,2\n2,5,3\n", {"target": "y", "standardize": "features"}, "column 'c' is constant"),
    ],
)
def test_a_broken_table_gets_one_line(tmp_path, text, data, expected):
    config = csv_config(tmp_path, text, **data)
    result = cli("train", config)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_missing_data_file_and_bad_prediction_inputs(tmp_path):
    config = tmp_path / "exp.yaml"
    config.write_text("kind: linear-gd\ndata:\n  path: nowhere.csv\n  target: y\n")
    result = cli("train", config)
    assert result.exit_code == 2 and "nowhere.csv: no such data file" in result.stderr
    config = csv_config(tmp_path, "a,b,y\n1,2,3\n2,1,3\n3,3,6\n", target="y")
    result = cli("train", config, "--set", "predict=[1.5]")
    assert result.exit_code == 2
    assert "predict: 1.5 has 1 value(s) but the data has 2 feature(s) (a, b)" in result.stderr


def test_scalar_sgd_needs_exactly_one_feature_column(tmp_path):
    config = csv_config(tmp_path, "a,b,y\n1,2,3\n2,1,3\n", kind="scalar-sgd", target="y")
    result = cli("train", config)
    assert result.exit_code == 2 and "scalar-sgd fits y = w·x with one input" in result.stderr
