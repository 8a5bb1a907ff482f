"""Honest numbers on real tables: certified reference data (NIST StRD), models without an
intercept, original units, the optimum solved from the data as read, rank-deficient designs.

The certified values below are NIST's; tests/data/README.md says where each digit was taken
from and how it was checked.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from bpcli.config import validate_config
from bpcli.lifecycle import train
from conftest import cli

DATA = Path(__file__).resolve().parent / "data"

# NIST StRD Longley, certified estimates of B0 (the intercept), B1 … B6, and R².
LONGLEY_B = [-3482258.63459582, 15.0618722713733, -0.358191792925910e-01, -2.02022980381683,
             -1.03322686717359, -0.511041056535807e-01, 1829.15146461355]
LONGLEY_R2 = 0.995479004577296
# Longley without intercept, as R's lm(y ~ 0 + .) gives it (quoted by Apache Commons Math,
# which checks its own solver against these to 1e-11); not certified by NIST.
LONGLEY_NO_INTERCEPT_W = [-52.99357013868291, 0.07107319907358, -0.42346585566399, -0.57256866841929,
                          -0.41420358884978, 48.41786562001326]
LONGLEY_NO_INTERCEPT_R2 = 0.9999670130706
# NIST StRD NoInt1 and NoInt2: y = B1·x without intercept, certified B1 and (uncentred) R².
NOINT = {"noint1": (2.07438016528926, 0.999365492298663), "noint2": (0.727272727272727, 0.993348115299335)}


def significant_digits(got, certified):
    """How many significant digits of `certified` `got` reproduces (NIST's log relative error)."""
    if got == certified:
        return math.inf
    return -math.log10(abs(got - certified) / abs(certified))


def table_config(table, kind="linear-gd", data=None, model=None, train=None, **top):
    """A config dict training on one of tests/data's tables (its first column is y)."""
    raw = {"kind": kind, "device": "cpu", **top,
           "data": {"source": "csv", "path": str(DATA / table), "target": "y", **(data or {})},
           "train": {"epochs": 1, "log_every": 1, **(train or {})}}
    if model is not None:
        raw["model"] = model
    return raw


def run(raw, out=None, **options):
    return train(validate_config(raw), out, save=out is not None, plots=False, **options)


# --------------------------------------------------------------------------- certified tables


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("standardize", ["none", "features", "all"])
def test_longleys_optimum_in_original_units_has_the_certified_coefficients(dtype, standardize):
    summary = run(table_config("longley.csv", dtype=dtype, data={"standardize": standardize},
                               train={"lr": 1e-3})).summary
    best = summary["optimum_original_units"] if standardize != "none" else summary["optimum"]
    got = [best["b"][0], *best["w"]]
    digits = [significant_digits(g, c) for g, c in zip(got, LONGLEY_B)]
    assert min(digits) >= 11, digits
    assert summary["optimum_solved"]["rank"] == summary["optimum_solved"]["columns"] == 7
    assert "warnings" not in summary
    if dtype == "float64" and standardize == "none":
        assert significant_digits(summary["optimum_r2"]["train"], LONGLEY_R2) >= 11
        assert summary["r2_definition"].startswith("centred")


def test_longleys_optimum_without_intercept_matches_r():
    summary = run(table_config("longley.csv", dtype="float64", model={"bias": False},
                               train={"lr": 1e-12})).summary
    assert "b" not in summary["optimum"] and "b" not in summary["params"]
    digits = [significant_digits(g, c) for g, c in zip(summary["optimum"]["w"], LONGLEY_NO_INTERCEPT_W)]
    assert min(digits) >= 9, digits
    assert summary["optimum_r2"]["train"] == pytest.approx(LONGLEY_NO_INTERCEPT_R2, abs=1e-12)
    assert summary["r2_definition"].startswith("uncentred")


@pytest.mark.parametrize("name", ["noint1", "noint2"])
@pytest.mark.parametrize("kind,grad", [("linear-gd", "manual"), ("linear-gd", "autograd"),
                                       ("nn-linear", "manual"), ("nn-linear", "autograd")])
def test_a_model_without_intercept_trains_to_the_certified_slope_and_r2(tmp_path, name, kind, grad):
    certified_w, certified_r2 = NOINT[name]
    x = np.loadtxt(DATA / f"{name}.csv", delimiter=",", skiprows=1)[:, 1]
    lr = 0.5 / np.mean(x * x)  # half the stable bound 2/λ_max = 1/mean(x²): the error shrinks by 2 a step
    raw = table_config(f"{name}.csv", kind=kind, dtype="float64", model={"bias": False},
                       train={"lr": float(lr), "epochs": 200, "log_every": 50, "grad": grad})
    result = run(raw, tmp_path / "run")
    summary = result.summary
    assert set(summary["params"]) == {"w"}
    assert summary["optimum"]["w"][0] == pytest.approx(certified_w, rel=1e-13)
    assert result.params["w"][0] == pytest.approx(certified_w, rel=1e-12)
    assert summary["r2"]["train"] == pytest.approx(certified_r2, rel=1e-13)
    assert summary["optimum_r2"]["train"] == pytest.approx(certified_r2, rel=1e-13)
    assert summary["r2_definition"] == "uncentred: 1 − Σ(y − ŷ)²/Σy², for a model without intercept"
    header = (tmp_path / "run/metrics.csv").read_text().splitlines()[0].split(",")
    assert header[:5] == ["step", "epoch", "loss", "w", "grad_w"]


def test_the_results_table_says_which_r2_it_reports(tmp_path):
    table = tmp_path / "t.yaml"
    table.write_text(yaml.safe_dump(table_config("noint1.csv", model={"bias": False},
                                                 train={"lr": 1e-4, "epochs": 50})), encoding="utf-8")
    result = cli("train", table, "--out", "run", "--no-plots")
    assert result.exit_code == 0, result.output
    assert "R² (train, uncentred)" in result.stdout
    # the caption wraps at the table's width
    assert "R² uncentred: 1 − Σ(y − ŷ)²/Σy², for a model without intercept" in " ".join(result.stdout.split())
    with_bias = cli("train", table, "--set", "model.bias=true", "--out", "run2", "--no-plots")
    assert "R² (train)" in with_bias.stdout
    assert "R² centred: 1 − Σ(y − ŷ)²/Σ(y − ȳ)²" in " ".join(with_bias.stdout.split())


def test_without_intercept_a_model_predicts_zero_at_zero():
    raw = table_config("noint2.csv", kind="nn-linear", model={"bias": False, "init_w": 0.5}, predict=[0.0, 2.0])
    summary = run(raw).summary
    w = summary["params"]["w"][0]
    assert [p["y_pred"] for p in summary["predictions"]] == pytest.approx([0.0, 2 * w])


# --------------------------------------------------------------------------- refused combinations


@pytest.mark.parametrize("text,expected", [
    ("kind: linear-gd\nmodel: {bias: false, init_b: 0.5}\n",
     "model.init_b is set but model.bias is false, so there is no b to start; remove model.init_b, "
     "or set model.bias: true"),
    ("kind: nn-linear\nmodel: {bias: false, init_b: 0}\n", "model.init_b is set but model.bias is false"),
    ("kind: linear-gd\nmodel: {bias: false}\ndata: {source: csv, path: t.csv, target: y, standardize: all}\n",
     "model.bias: false fits y = w·x through the origin, but data.standardize: all centres the data, which "
     "would give it an intercept; set data.standardize: none, or model.bias: true"),
    ("kind: nn-linear\nmodel: {bias: false}\ndata: {source: csv, path: t.csv, target: y, standardize: features}\n",
     "data.standardize: features centres the data"),
    ("kind: scalar-sgd\ndata: {source: csv, path: t.csv, target: y, features: [x], standardize: all}\n",
     "scalar-sgd fits y = w·x through the origin, but data.standardize: all centres the data, which would give "
     "it an intercept; set data.standardize: none, or use kind linear-gd, which has an intercept b"),
    ("kind: scalar-sgd\ndata: {source: csv, path: t.csv, target: y, features: [x], standardize: features}\n",
     "scalar-sgd fits y = w·x through the origin"),
])
def test_combinations_that_would_fit_another_model_are_refused(write_config, text, expected):
    Path("t.csv").write_text("x,y\n1,2\n2,4\n3,7\n", encoding="utf-8")
    result = cli("train", write_config(text), "--out", "run")
    assert result.exit_code == 2
    assert expected in result.stderr
    assert "Traceback" not in result.output
    assert not Path("run").exists()


def test_scalar_sgd_trains_on_an_unstandardised_table_and_reports_uncentred_r2(write_config):
    Path("t.csv").write_text("x,y\n1,2\n2,4\n3,6.5\n", encoding="utf-8")
    text = "kind: scalar-sgd\ndata: {source: csv, path: t.csv, target: y, features: [x]}\n"
    scalar = cli("train", write_config(text), "-q", "--no-plots")
    assert scalar.exit_code == 0, scalar.output
    summary = json.loads(Path(scalar.stdout.strip(), "summary.json").read_text())
    # y = w·x has no intercept: its R² is the uncentred one, as for model.bias: false
    assert summary["r2_definition"].startswith("uncentred")
    w = summary["optimum"]["w"][0]
    assert w == pytest.approx((2 + 8 + 19.5) / 14, rel=1e-14)  # Σxy/Σx²
    residual = sum((y - w * x) ** 2 for x, y in [(1, 2), (2, 4), (3, 6.5)])
    assert summary["optimum_r2"]["train"] == pytest.approx(1 - residual / (4 + 16 + 42.25), rel=1e-12)


# --------------------------------------------------------------------------- original units


def diabetes(tmp_path, **data):
    root = Path(__file__).resolve().parents[1] / "configs"
    raw = yaml.safe_load((root / "diabetes.yaml").read_text())
    raw["data"]["path"] = str(root / raw["data"]["path"])
    raw["data"].update(data)
    raw.update(device="cpu")
    raw["train"].update(epochs=300)
    return raw


def test_standardised_runs_report_the_optimum_and_predictions_in_original_units(tmp_path):
    raw = diabetes(tmp_path)
    result = run(raw, tmp_path / "run")
    summary = result.summary
    table = np.genfromtxt(raw["data"]["path"], delimiter=",", names=True)
    columns = table.dtype.names
    x = np.stack([table[c] for c in columns if c != "progression"], axis=1)
    y = table["progression"]
    scaling = summary["scaling"]
    units = summary["units"]
    assert "optimum" in units["standardised"] and "optimum_original_units" in units["original"]
    assert "predictions.csv y, y_pred" in units["original"]
    # predictions.csv: the standardised columns say so, y and y_pred are in the target's units
    lines = (tmp_path / "run/predictions.csv").read_text().splitlines()
    assert lines[0] == "split,y_standardised,y_pred_standardised,y,y_pred"
    cells = [line.split(",") for line in lines[1:]]
    assert len(cells) == len(y)
    for split, y_std, p_std, y_orig, p_orig in cells:
        assert float(y_orig) == pytest.approx(float(y_std) * scaling["y_std"] + scaling["y_mean"], rel=1e-6)
        assert float(p_orig) == pytest.approx(float(p_std) * scaling["y_std"] + scaling["y_mean"], rel=1e-12)
    assert sorted(float(c[3]) for c in cells) == sorted(y)  # the file's own values, every one of them
    assert {c[0] for c in cells} == {"train", "val"}
    # The optimum in original units predicts, on the rows as read, what the standardised one does.
    best, original = summary["optimum"], summary["optimum_original_units"]
    mean, std = np.array(scaling["x_mean"]), np.array(scaling["x_std"])
    standardised = ((x - mean) / std) @ np.array(best["w"]) + best["b"][0]
    in_units = x @ np.array(original["w"]) + original["b"][0]
    assert in_units == pytest.approx(standardised * scaling["y_std"] + scaling["y_mean"], rel=1e-9)


def test_the_optimum_in_original_units_is_numpys_float64_solution_of_the_rows_as_read(tmp_path):
    raw = diabetes(tmp_path, val_fraction=0.0)
    summary = run(raw).summary
    table = np.loadtxt(raw["data"]["path"], delimiter=",", skiprows=1)
    x, y = table[:, :-1], table[:, -1]
    reference, *_ = np.linalg.lstsq(np.hstack([x, np.ones((len(x), 1))]), y, rcond=None)
    original = summary["optimum_original_units"]
    assert [*original["w"], original["b"][0]] == pytest.approx(reference.tolist(), rel=1e-9)
    assert summary["optimum_solved"]["from"] == ("the 442 training rows as read, in float64 before rounding to "
                                                 "float32 and standardising")


def test_the_results_table_shows_both_units_and_what_the_optimum_is_of(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")  # wide enough for every header on one line
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(diabetes(tmp_path)), encoding="utf-8")
    result = cli("train", path, "--out", "run", "--no-plots")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for header in ("value", "optimum", "value, data units", "optimum, data units",
                   "value, optimum: in standardised units"):
        assert header in out, header
    assert "optimum: the least-squares solution of the 354 training rows as read, in float64 before rounding " \
           "to float32 and standardising" in " ".join(out.split())
    summary = json.loads(Path("run/summary.json").read_text())
    row = next(line for line in out.splitlines() if "w[2] (bmi)" in line)
    assert f"{summary['params_original_units']['w'][2]:.8g}" in row
    assert f"{summary['optimum_original_units']['w'][2]:.8g}" in row
    prediction = next(line for line in out.splitlines() if "ŷ at x" in line).split("│")
    # the prediction is in the target's units: it stands in the data-units column (no "true" column for a CSV)
    assert prediction[2].strip() == "" and prediction[4].strip() == f"{summary['predictions'][0]['y_pred']:.8g}"


def test_features_only_keeps_the_target_and_predictions_csv_in_original_units(tmp_path):
    result = run(diabetes(tmp_path, standardize="features"), tmp_path / "run")
    assert (tmp_path / "run/predictions.csv").read_text().splitlines()[0] == "split,y,y_pred"
    units = result.summary["units"]
    assert "final_loss" in units["original"] and "predictions.csv" in units["original"]
    # Only x was rescaled: w_j per standard deviation of feature j is w'_j·σ_j in the original units.
    std = result.summary["scaling"]["x_std"]
    best, original = result.summary["optimum"], result.summary["optimum_original_units"]
    assert best["w"] == pytest.approx([w * s for w, s in zip(original["w"], std)], rel=1e-12)


# --------------------------------------------------------------------------- the data as read


def test_the_optimum_is_solved_from_the_file_not_from_float32_rounded_values(tmp_path):
    # x = 2²⁴ + k: float32 keeps only even numbers there, so half of x is rounded on the way in.
    xs = [2**24 + k for k in range(1, 40)]
    Path("t.csv").write_text("x,y\n" + "".join(f"{x},{3 * x + 1}\n" for x in xs), encoding="utf-8")
    raw = {"kind": "linear-gd", "device": "cpu", "data": {"source": "csv", "path": "t.csv", "target": "y"},
           "train": {"lr": 1e-20, "epochs": 1}}
    best = run(raw).summary["optimum"]
    assert best["w"][0] == pytest.approx(3.0, rel=1e-12)
    assert best["b"][0] == pytest.approx(1.0, abs=1e-5)
    rounded = np.array(xs, dtype=np.float32).astype(np.float64)
    targets = np.array([3 * x + 1 for x in xs], dtype=np.float32).astype(np.float64)
    w32, b32 = np.polyfit(rounded, targets, 1)
    assert abs(b32 - 1.0) > 1.0  # what solving the rounded values would have reported


# --------------------------------------------------------------------------- rank-deficient designs


def polynomial_table(path, degree, columns=None, low=-9.0, high=-3.0, rows=82):
    x = np.linspace(low, high, rows)
    table = np.stack([x**k for k in range(1, degree + 1)] + [np.sin(x)], axis=1)
    names = [f"x{k}" for k in range(1, degree + 1)] + ["y"]
    if columns is not None:
        table = np.hstack([table[:, :-1], columns(table), table[:, -1:]])
        names = names[:-1] + ["extra"] + ["y"]
    np.savetxt(path, table, delimiter=",", header=",".join(names), comments="", fmt="%.17g")
    return table


def test_a_polynomial_table_is_solved_at_full_rank_without_standardising(tmp_path):
    table = polynomial_table("poly.csv", 10)
    raw = {"kind": "linear-gd", "dtype": "float64", "device": "cpu",
           "data": {"source": "csv", "path": "poly.csv", "target": "y"}, "train": {"lr": 1e-30, "epochs": 1}}
    summary = run(raw).summary
    assert summary["optimum_solved"]["rank"] == summary["optimum_solved"]["columns"] == 11
    assert "warnings" not in summary
    # The oracle: numpy's lstsq on the centred and scaled design, mapped back.
    x, y = table[:, :-1], table[:, -1]
    z = (x - x.mean(0)) / x.std(0)
    coef, *_ = np.linalg.lstsq(z, y - y.mean(), rcond=None)
    w = coef / x.std(0)
    b = y.mean() - x.mean(0) @ w
    fitted = x @ np.array(summary["optimum"]["w"]) + summary["optimum"]["b"][0]
    assert fitted == pytest.approx(x @ w + b, abs=1e-6)
    assert np.abs(fitted - y).max() < 1e-3  # a degree-10 polynomial follows sin over this range


@pytest.mark.parametrize("extra,rank", [
    (lambda t: t[:, :1] + 2 * t[:, 1:2], 3),  # x1 + 2·x2: exactly determined by the others
    (lambda t: 5 * t[:, 1:2] * (1 + 1e-15 * np.cos(7 * t[:, :1])), 3),  # x2 again, but for rounding noise
])
def test_a_rank_deficient_design_is_reported_with_advice(tmp_path, extra, rank):
    polynomial_table("poly.csv", 2, columns=extra)
    path = tmp_path / "p.yaml"
    path.write_text("kind: linear-gd\ndevice: cpu\ndtype: float64\ndata: {source: csv, path: poly.csv, target: y}\n"
                    "train: {lr: 1e-6, epochs: 5}\n", encoding="utf-8")
    result = cli("train", path, "--out", "run", "--no-plots")
    assert result.exit_code == 0, result.output
    summary = json.loads(Path("run/summary.json").read_text())
    assert summary["optimum_solved"]["rank"] == rank and summary["optimum_solved"]["columns"] == 4
    assert summary["optimum_solved"]["condition"] is None or summary["optimum_solved"]["condition"] > 1e13
    (warning,) = summary["warnings"]
    assert f"effective rank {rank} of 4 columns" in warning
    assert "is one of many" in warning and "drop a column" in warning
    assert "standardising would not help" in warning  # the solve already centres and scales the columns
    assert f"warning: optimum: the design has effective rank {rank} of 4 columns" in " ".join(result.stdout.split())


def test_a_column_that_is_constant_is_rank_deficient_beside_the_intercept(tmp_path):
    Path("t.csv").write_text("a,c,y\n1,5,2\n2,5,3\n3,5,5\n4,5,4\n", encoding="utf-8")
    raw = {"kind": "nn-linear", "device": "cpu", "data": {"source": "csv", "path": "t.csv", "target": "y"},
           "train": {"lr": 0.01, "epochs": 3}}
    summary = run(raw).summary
    assert summary["optimum_solved"]["rank"] == 2 and summary["optimum_solved"]["columns"] == 3
    assert "one of many" in summary["warnings"][0]
    # This optimum still fits the data as well as any other: y ≈ 0.8·a + 1.5.
    w, b = summary["optimum"]["w"], summary["optimum"]["b"][0]
    assert w[0] == pytest.approx(0.8) and w[1] * 5 + b == pytest.approx(1.5)


def test_the_optimum_of_a_table_near_float64s_limit_is_the_small_tables_scaled(tmp_path):
    # Rescaling a column by 10²⁹⁰ rescales its weight by 10⁻²⁹⁰ and changes nothing else,
    # though the squares of such values are far beyond float64.
    rng = np.random.default_rng(11)
    a, c = rng.uniform(1, 2, 25), rng.uniform(-1, 1, 25)
    y = 2 * a - 0.5 * c + 0.1 * rng.standard_normal(25)
    optima = []
    for scale in (1.0, 1e290):
        rows = "".join(f"{p:.17g},{q:.17g},{r:.17g}\n" for p, q, r in zip(a * scale, c, y))
        Path("t.csv").write_text("a,c,y\n" + rows, encoding="utf-8")
        raw = {"kind": "linear-gd", "dtype": "float64", "device": "cpu",
               "data": {"source": "csv", "path": "t.csv", "target": "y"}, "train": {"lr": 1e-300, "epochs": 1}}
        optima.append(run(raw).summary["optimum"])
    small, huge = optima
    assert huge["w"][0] * 1e290 == pytest.approx(small["w"][0], rel=1e-12)
    assert huge["w"][1] == pytest.approx(small["w"][1], rel=1e-12)
    assert huge["b"][0] == pytest.approx(small["b"][0], rel=1e-12)


def test_units_list_only_what_a_run_has(tmp_path):
    raw = diabetes(tmp_path)
    raw.update(kind="mlp", model={"hidden": [4]}, predict=[])
    raw["train"] = {"lr": 0.05, "epochs": 20, "log_every": 10}
    summary = run(raw, tmp_path / "run").summary
    units = summary["units"]
    named = units["standardised"] + units["original"]
    assert "optimum" not in named and "params_original_units" not in named  # an MLP has neither
    assert "params" in units["standardised"] and "final_loss" in units["standardised"]
    assert (tmp_path / "run/predictions.csv").read_text().startswith("split,y_standardised,y_pred_standardised,y,y_pred")


def test_with_only_the_features_standardised_the_table_shows_the_loss_in_ys_units(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "220")
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(diabetes(tmp_path, standardize="features")), encoding="utf-8")
    result = cli("train", path, "--set", "train.lr=0.2", "--out", "run", "--no-plots")
    assert result.exit_code == 0, result.output
    summary = json.loads(Path("run/summary.json").read_text())
    cells = [c.strip() for c in next(line for line in result.stdout.splitlines() if "final loss" in line).split("│")]
    assert cells[2] == "" and cells[4] == f"{summary['final_loss']:.6g}"  # under "value, data units"
