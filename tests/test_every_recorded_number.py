"""Every column of metrics.csv and every number of summary.json against an independent
computation (issue 20 §6).

The data are rebuilt here from the CSV with numpy (the validation split from the seed's
first draw, the standardisation from the training rows alone), and every logged number is
recomputed from them and from the run's own parameters: the loss and gradient of each
logged step at the parameters before it, the epoch of each step, the validation loss and
accuracy, the distance to the optimum, R², the confusion matrix, …

COLUMN_CHECKS and SUMMARY_CHECKS say which test here checks each column and each number;
test_every_column_and_number_has_a_check trains a small run of every registered kind and
fails on a column or a summary number that has no entry, so a new one must get a check.
"""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from bpcli.build import build
from bpcli.config import validate_config
from bpcli.kinds import KINDS
from bpcli.lifecycle import train

# --------------------------------------------------------------------------- data made here

N = 40
VAL = 0.25
HELD = round(N * VAL)


def _regression_csv(path, seed=0):
    g = np.random.default_rng(seed)
    x = g.normal([3.0, -1.0], [2.0, 0.5], (N, 2))
    y = 1.5 * x[:, 0] - 2.0 * x[:, 1] + 4.0 + g.normal(0, 0.3, N)
    _write(path, ["a", "b", "t"], np.column_stack([x, y]))
    return path


def _classes_csv(path, seed=1):
    g = np.random.default_rng(seed)
    label = np.arange(N) % 2
    x = g.normal(0, 1.0, (N, 2)) + np.where(label[:, None] == 1, 0.8, -0.8) + [5.0, -2.0]
    _write(path, ["u", "v", "c"], np.column_stack([x, label]), integer_last=True)
    return path


def _write(path, header, table, integer_last=False):
    lines = [",".join(header)]
    for row in table:
        cells = [repr(float(v)) for v in row[:-1]] + [str(int(row[-1])) if integer_last else repr(float(row[-1]))]
        lines.append(",".join(cells))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _splits(path, seed, val=True):
    """(x, y) of the training and validation rows, rebuilt from the file: the rows are shuffled
    by the seed's first draw (randperm) and the first round(N·val_fraction) held out."""
    table = np.loadtxt(path, delimiter=",", skiprows=1)
    if not val:
        return {"train": (table[:, :-1], table[:, -1])}
    order = torch.randperm(len(table), generator=torch.Generator().manual_seed(seed)).numpy()
    return {"train": (table[order[HELD:], :-1], table[order[HELD:], -1]),
            "val": (table[order[:HELD], :-1], table[order[:HELD], -1])}


def _standardise(splits, target_too):
    """Each split rescaled with the training rows' means and (population) deviations."""
    x, y = splits["train"]
    mx, sx = x.mean(0), x.std(0)
    my, sy = (y.mean(), y.std()) if target_too else (0.0, 1.0)
    stats = {"x_mean": mx, "x_std": sx, "y_mean": my, "y_std": sy}
    return {s: ((xs - mx) / sx, (ys - my) / sy) for s, (xs, ys) in splits.items()}, stats


def _run(tmp, name, raw):
    out = Path(tmp) / name
    cfg = validate_config({"device": "cpu", "dtype": "float64", **raw})
    result = train(cfg, out, plots=False)
    assert result.status == "completed"
    return out


def _metrics(run):
    with open(run / "metrics.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [{k: float(v) for k, v in row.items()} for row in rows]


def _summary(run):
    return json.loads((run / "summary.json").read_text())


def _predictions(run):
    with open(run / "predictions.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _theta(row, names):
    return np.array([row[n] for n in names])


# --------------------------------------------------------------------------- the runs

LR = 0.1
SEED = 3


@pytest.fixture(scope="module")
def regression(tmp_path_factory):
    """linear-gd, full batch, standardize: all, validation rows; 7 steps logged every 3 (1, 3, 6, 7)."""
    tmp = tmp_path_factory.mktemp("regression")
    path = _regression_csv(tmp / "reg.csv")
    run = _run(tmp, "run", {"kind": "linear-gd", "seed": SEED,
                            "data": {"source": "csv", "path": str(path), "target": "t", "standardize": "all",
                                     "val_fraction": VAL},
                            "train": {"lr": LR, "epochs": 7, "log_every": 3, "grad": "manual"},
                            "predict": [[1.0, -2.0], [4.0, 0.5]]})
    splits, stats = _standardise(_splits(path, SEED), target_too=True)
    return run, path, splits, stats


@pytest.fixture(scope="module")
def per_sample(tmp_path_factory):
    """scalar-sgd: one update per sample, 5 samples, 3 epochs, every step logged."""
    tmp = tmp_path_factory.mktemp("per_sample")
    x, y = [1.0, 2.0, 0.5, -1.5, 3.0], [2.2, 3.9, 1.1, -3.2, 5.8]
    run = _run(tmp, "run", {"kind": "scalar-sgd", "seed": 0, "data": {"source": "inline", "x": x, "y": y},
                            "model": {"init_w": 0.3}, "train": {"lr": 0.02, "epochs": 3, "log_every": 1}})
    return run, np.array(x), np.array(y)


@pytest.fixture(scope="module")
def mini_batch(tmp_path_factory):
    """linear-gd, shuffled mini-batches of 7 of the 40 rows (6 steps an epoch, the last of 5),
    3 epochs, logged every 4."""
    tmp = tmp_path_factory.mktemp("mini_batch")
    path = _regression_csv(tmp / "reg.csv", seed=4)
    run = _run(tmp, "run", {"kind": "linear-gd", "seed": 11,
                            "data": {"source": "csv", "path": str(path), "target": "t"},
                            "train": {"lr": 0.01, "epochs": 3, "log_every": 4, "batch_size": 7, "grad": "manual"}})
    return run, _splits(path, 11, val=False)["train"]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """logistic regression, standardize: features, validation rows; 6 steps logged every 2."""
    tmp = tmp_path_factory.mktemp("classifier")
    path = _classes_csv(tmp / "classes.csv")
    run = _run(tmp, "run", {"kind": "logistic", "seed": 5,
                            "data": {"source": "csv", "path": str(path), "target": "c", "standardize": "features",
                                     "val_fraction": VAL},
                            "train": {"lr": 0.5, "epochs": 6, "log_every": 2, "grad": "manual"}})
    splits, stats = _standardise(_splits(path, 5), target_too=False)
    return run, path, splits, stats


# --------------------------------------------------------------------------- independent formulas

def _design(x, bias=True):
    return np.column_stack([x, np.ones(len(x))]) if bias else x


def _mse_and_grad(theta, x, y):
    """L = mean((A·θ − y)²) and dL/dθ = (2/N)·Aᵀ(A·θ − y), A = [x, 1]."""
    a = _design(x)
    r = a @ theta - y
    return float(np.mean(r ** 2)), 2 * a.T @ r / len(y)


def _bce_and_grad(theta, x, y):
    """L = −mean(y·log p + (1 − y)·log(1 − p)), p = σ(A·θ), and dL/dθ = Aᵀ(p − y)/N."""
    a = _design(x)
    p = 1 / (1 + np.exp(-(a @ theta)))
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))), a.T @ (p - y) / len(y)


def _r2(y, predicted):
    return 1 - np.sum((y - predicted) ** 2) / np.sum((y - y.mean()) ** 2)


LINEAR = ["w[0]", "w[1]", "b"]
GRADS = ["grad_w[0]", "grad_w[1]", "grad_b"]


def _initial(summary):
    return np.array([*summary["initial_params"]["w"], *summary["initial_params"]["b"]])


# --------------------------------------------------------------------------- metrics.csv


def test_full_batch_epochs_steps_and_the_last_step_always_logged(regression):
    run, *_ = regression
    rows, summary = _metrics(run), _summary(run)
    assert [r["step"] for r in rows] == [1, 3, 6, 7]  # 7 is not a multiple of 3, and is logged all the same
    assert [r["epoch"] for r in rows] == [1, 3, 6, 7]  # one step an epoch
    assert summary["steps"] == 7 == summary["epochs"]
    assert summary["final_loss"] == rows[-1]["loss"]
    assert list(rows[0]) == summary["metrics_columns"]


def test_per_sample_epochs_and_every_step_from_the_previous_row(per_sample):
    run, x, y = per_sample
    rows, summary = _metrics(run), _summary(run)
    assert [r["step"] for r in rows] == list(range(1, 16))
    assert [r["epoch"] for r in rows] == [(s - 1) // 5 + 1 for s in range(1, 16)]
    assert summary["steps"] == 15
    w_before = summary["initial_params"]["w"][0]
    assert w_before == 0.3
    assert summary["initial_loss"] == pytest.approx(np.mean((0.3 * x - y) ** 2), rel=1e-12)  # on every sample
    for row in rows:  # step s trains on sample (s − 1) mod 5, in data order, from the previous row's w
        i = int(row["step"] - 1) % 5
        residual = w_before * x[i] - y[i]
        assert row["loss"] == pytest.approx(residual ** 2, rel=1e-12)  # L = (w·x − y)²
        assert row["grad_w"] == pytest.approx(2 * residual * x[i], rel=1e-12)  # dL/dw = 2(w·x − y)·x
        assert row["w"] == pytest.approx(w_before - 0.02 * 2 * residual * x[i], rel=1e-12)
        w_before = row["w"]
    assert summary["final_loss"] == rows[-1]["loss"]
    assert summary["params"]["w"] == [rows[-1]["w"]]
    assert summary["final_loss_all_samples"] == pytest.approx(np.mean((rows[-1]["w"] * x - y) ** 2), rel=1e-12)
    assert summary["distance_to_optimum"] == pytest.approx(abs(rows[-1]["w"] - x @ y / (x @ x)), rel=1e-9)
    for row in rows:
        assert row["distance_to_optimum"] == pytest.approx(abs(row["w"] - x @ y / (x @ x)), rel=1e-9)


def test_mini_batch_epochs_and_each_steps_batch(mini_batch):
    run, (x, y) = mini_batch
    rows, summary = _metrics(run), _summary(run)
    per_epoch = math.ceil(N / 7)
    assert [r["step"] for r in rows] == [1, 4, 8, 12, 16, 18]
    assert [r["epoch"] for r in rows] == [(r["step"] - 1) // per_epoch + 1 for r in rows]
    assert summary["steps"] == 3 * per_epoch
    for row in rows:
        step = int(row["step"])
        epoch, index = (step - 1) // per_epoch + 1, (step - 1) % per_epoch
        # the documented order: randperm(N) from a generator seeded with seed·1 000 003 + epoch
        order = torch.randperm(N, generator=torch.Generator().manual_seed(11 * 1_000_003 + epoch)).numpy()
        rows_of_batch = order[index * 7:(index + 1) * 7]
        theta = _theta(row, LINEAR)
        grad = _theta(row, GRADS)
        before = theta + 0.01 * grad  # plain SGD: θ_after = θ_before − lr·g
        loss, expected = _mse_and_grad(before, x[rows_of_batch], y[rows_of_batch])
        assert row["loss"] == pytest.approx(loss, rel=1e-10)
        np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-12)
        if step == 1:
            np.testing.assert_allclose(before, _initial(summary), rtol=1e-12, atol=1e-14)
    final = _theta(rows[-1], LINEAR)
    assert summary["initial_loss"] == pytest.approx(_mse_and_grad(_initial(summary), x, y)[0], rel=1e-12)
    assert summary["final_loss"] == rows[-1]["loss"]
    assert summary["final_loss_all_samples"] == pytest.approx(_mse_and_grad(final, x, y)[0], rel=1e-12)


def test_loss_gradients_and_params_of_each_logged_step(regression):
    run, path, splits, stats = regression
    rows, summary = _metrics(run), _summary(run)
    x, y = splits["train"]
    for row in rows:
        theta, grad = _theta(row, LINEAR), _theta(row, GRADS)
        before = theta + LR * grad
        loss, expected = _mse_and_grad(before, x, y)
        assert row["loss"] == pytest.approx(loss, rel=1e-10)
        np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-12)
    # step 0 is not logged: step 1 starts from summary's initial_params, by the formula
    first = _initial(summary) - LR * _mse_and_grad(_initial(summary), x, y)[1]
    np.testing.assert_allclose(_theta(rows[0], LINEAR), first, rtol=1e-12, atol=1e-14)
    last = rows[-1]
    assert summary["params"] == {"w": [last["w[0]"], last["w[1]"]], "b": [last["b"]]}


def test_val_loss_is_the_mse_of_the_validation_rows(regression):
    run, path, splits, stats = regression
    rows = _metrics(run)
    xv, yv = splits["val"]
    for row in rows:  # at each logged step's own parameters
        assert row["val_loss"] == pytest.approx(np.mean((_design(xv) @ _theta(row, LINEAR) - yv) ** 2), rel=1e-10)
    held = [r for r in _predictions(run) if r["split"] == "val"]
    assert len(held) == HELD
    np.testing.assert_allclose([float(r["y_standardised"]) for r in held], yv, rtol=1e-12)
    mse = np.mean([(float(r["y_pred_standardised"]) - float(r["y_standardised"])) ** 2 for r in held])
    assert rows[-1]["val_loss"] == pytest.approx(mse, rel=1e-10)


def test_distance_to_optimum_and_the_optimum(regression):
    run, path, splits, stats = regression
    rows, summary = _metrics(run), _summary(run)
    x, y = splits["train"]
    best, *_ = np.linalg.lstsq(_design(x), y, rcond=None)
    optimum = summary["optimum"]
    np.testing.assert_allclose([*optimum["w"], *optimum["b"]], best, rtol=1e-9, atol=1e-12)
    assert optimum["loss"] == pytest.approx(_mse_and_grad(best, x, y)[0], rel=1e-9)
    for row in rows:
        assert row["distance_to_optimum"] == pytest.approx(np.linalg.norm(_theta(row, LINEAR) - best), rel=1e-9)
    assert summary["distance_to_optimum"] == pytest.approx(np.linalg.norm(_theta(rows[-1], LINEAR) - best), rel=1e-9)
    raw_x, raw_y = _splits(path, SEED)["train"]
    raw, *_ = np.linalg.lstsq(_design(raw_x), raw_y, rcond=None)
    original = summary["optimum_original_units"]
    np.testing.assert_allclose([*original["w"], *original["b"]], raw, rtol=1e-9)


def test_standardisation_statistics_come_from_the_training_rows(regression):
    run, path, splits, stats = regression
    written = json.loads((run / "preprocessing.json").read_text())
    np.testing.assert_allclose(written["x_mean"], stats["x_mean"], rtol=1e-12)
    np.testing.assert_allclose(written["x_std"], stats["x_std"], rtol=1e-12)
    assert written["y_mean"] == pytest.approx(stats["y_mean"], rel=1e-12)
    assert written["y_std"] == pytest.approx(stats["y_std"], rel=1e-12)
    assert _summary(run)["scaling"] == written
    table = np.loadtxt(path, delimiter=",", skiprows=1)  # all rows' statistics differ: the check can tell
    assert abs(table[:, 0].mean() - stats["x_mean"][0]) > 1e-3
    with open(run / "data.csv", newline="") as fh:
        data = np.array([[float(v) for v in row.values()] for row in csv.DictReader(fh)])
    x, y = splits["train"]
    np.testing.assert_allclose(data, np.column_stack([x, y]), rtol=1e-10, atol=1e-12)


def test_quality_numbers_of_a_regression(regression):
    run, path, splits, stats = regression
    summary = _summary(run)
    theta = np.array([*summary["params"]["w"], *summary["params"]["b"]])
    x, y = splits["train"]
    best, *_ = np.linalg.lstsq(_design(x), y, rcond=None)
    predictions = _predictions(run)
    for split, (xs, ys) in splits.items():
        rows = [r for r in predictions if r["split"] == split]
        assert summary["samples"][split] == len(ys) == len(rows)
        assert summary["r2"][split] == pytest.approx(_r2(ys, _design(xs) @ theta), rel=1e-10)
        from_file = [float(r["y_pred"]) for r in rows], [float(r["y"]) for r in rows]
        assert summary["r2"][split] == pytest.approx(_r2(np.array(from_file[1]), np.array(from_file[0])), rel=1e-9)
        assert summary["optimum_r2"][split] == pytest.approx(_r2(ys, _design(xs) @ best), rel=1e-10)
    # ŷ = y_std·(w·(x − x̄)/σ + b) + ȳ, written in the original units
    w = theta[:2] * stats["y_std"] / stats["x_std"]
    b = stats["y_mean"] + stats["y_std"] * theta[2] - w @ stats["x_mean"]
    np.testing.assert_allclose(summary["params_original_units"]["w"], w, rtol=1e-10)
    assert summary["params_original_units"]["b"][0] == pytest.approx(b, rel=1e-10)
    for asked in summary["predictions"]:
        assert asked["y_pred"] == pytest.approx(w @ np.array(asked["x"]) + b, rel=1e-10)
    assert [p["x"] for p in summary["predictions"]] == [[1.0, -2.0], [4.0, 0.5]]


def test_stability_and_convergence_numbers(regression):
    run, path, splits, stats = regression
    summary = _summary(run)
    x, _ = splits["train"]
    a = _design(x)
    hessian = 2 * a.T @ a / len(a)  # of mean((A·θ − y)²)
    eig = np.linalg.eigvalsh(hessian)
    assert summary["stable_lr"] == pytest.approx(2 / eig[-1], rel=1e-9)  # gradient descent diverges beyond 2/λ_max
    conv = summary["convergence"]
    assert conv["eigenvalue_min"] == pytest.approx(eig[0], rel=1e-9)
    assert conv["eigenvalue_max"] == pytest.approx(eig[-1], rel=1e-9)
    assert conv["condition_number"] == pytest.approx(eig[-1] / eig[0], rel=1e-9)
    assert conv["rate_predicted"] == pytest.approx(max(abs(1 - LR * eig)), rel=1e-9)
    root = math.sqrt(eig[-1] / eig[0])
    assert conv["rate_momentum_optimal"] == pytest.approx((root - 1) / (root + 1), rel=1e-9)
    # the error θ − θ* shrinks by about rate_predicted a step: the observed rate is near it
    assert conv["rate_observed"] == pytest.approx(conv["rate_predicted"], rel=0.05)
    solved = summary["optimum_solved"]
    assert (solved["rank"], solved["columns"]) == (3, 3)
    # κ of the solve: the training rows as read, centred, each column scaled by its largest |value|
    raw_x, _ = _splits(path, SEED)["train"]
    centred = raw_x - raw_x.mean(0)
    assert solved["condition"] == pytest.approx(np.linalg.cond(centred / np.abs(centred).max(0)), rel=1e-9)


def test_a_classifiers_columns_from_its_own_parameters(classifier):
    run, path, splits, stats = classifier
    rows, summary = _metrics(run), _summary(run)
    assert [r["step"] for r in rows] == [1, 2, 4, 6] and [r["epoch"] for r in rows] == [1, 2, 4, 6]
    x, y = splits["train"]
    xv, yv = splits["val"]
    for row in rows:
        theta, grad = _theta(row, LINEAR), _theta(row, GRADS)
        before = theta + 0.5 * grad
        loss, expected = _bce_and_grad(before, x, y)
        assert row["loss"] == pytest.approx(loss, rel=1e-10)
        np.testing.assert_allclose(grad, expected, rtol=1e-9, atol=1e-12)
        # accuracy on the training rows, val_* on the validation rows, at the step's parameters
        assert row["accuracy"] == pytest.approx(np.mean((_design(x) @ theta > 0) == (y == 1)), abs=1e-12)
        assert row["val_accuracy"] == pytest.approx(np.mean((_design(xv) @ theta > 0) == (yv == 1)), abs=1e-12)
        assert row["val_loss"] == pytest.approx(_bce_and_grad(theta, xv, yv)[0], rel=1e-10)
    first = _initial(summary) - 0.5 * _bce_and_grad(_initial(summary), x, y)[1]
    np.testing.assert_allclose(_theta(rows[0], LINEAR), first, rtol=1e-12, atol=1e-14)
    assert summary["final_loss"] == rows[-1]["loss"]
    # the classes overlap, so the loss has a minimum (Newton's), where its gradient vanishes
    best = np.array([*summary["optimum"]["w"], *summary["optimum"]["b"]])
    np.testing.assert_allclose(_bce_and_grad(best, x, y)[1], 0, atol=1e-8)
    assert summary["optimum"]["loss"] == pytest.approx(_bce_and_grad(best, x, y)[0], rel=1e-9)
    for row in rows:
        assert row["distance_to_optimum"] == pytest.approx(np.linalg.norm(_theta(row, LINEAR) - best), rel=1e-9)
    assert summary["distance_to_optimum"] == pytest.approx(np.linalg.norm(_theta(rows[-1], LINEAR) - best), rel=1e-9)


def test_a_classifiers_predictions_accuracy_and_confusion(classifier):
    run, path, splits, stats = classifier
    rows, summary = _metrics(run), _summary(run)
    theta = np.array([*summary["params"]["w"], *summary["params"]["b"]])
    written = json.loads((run / "preprocessing.json").read_text())
    np.testing.assert_allclose(written["x_mean"], stats["x_mean"], rtol=1e-12)
    np.testing.assert_allclose(written["x_std"], stats["x_std"], rtol=1e-12)
    predictions = _predictions(run)
    for split, (xs, ys) in splits.items():
        mine = [r for r in predictions if r["split"] == split]
        assert summary["samples"][split] == len(mine) == len(ys)
        assert [int(r["y"]) for r in mine] == ys.astype(int).tolist()
        np.testing.assert_allclose([[float(r["x[0]"]), float(r["x[1]"])] for r in mine], xs, rtol=1e-10, atol=1e-12)
        p = 1 / (1 + np.exp(-(_design(xs) @ theta)))
        np.testing.assert_allclose([float(r["p[1]"]) for r in mine], p, rtol=1e-10)
        predicted = (p > 0.5).astype(int)
        assert [int(r["y_pred"]) for r in mine] == predicted.tolist()
        assert summary["accuracy"][split] == pytest.approx(np.mean(predicted == ys), abs=1e-12)
        confusion = [[int(np.sum((ys == t) & (predicted == q))) for q in (0, 1)] for t in (0, 1)]
        assert summary["confusion"][split] == confusion
    assert rows[-1]["accuracy"] == summary["accuracy"]["train"]
    assert rows[-1]["val_accuracy"] == summary["accuracy"]["val"]
    held = [r for r in predictions if r["split"] == "val"]
    assert rows[-1]["val_loss"] == pytest.approx(
        -np.mean([math.log(float(r[f"p[{r['y']}]"])) for r in held]), rel=1e-9)


# --------------------------------------------------------------------------- coverage of the columns

# Each column class bpcli writes to metrics.csv, and the tests above that check it against
# an independent computation.
FULL, PER_SAMPLE, MINI = ("test_full_batch_epochs_steps_and_the_last_step_always_logged",
                          "test_per_sample_epochs_and_every_step_from_the_previous_row",
                          "test_mini_batch_epochs_and_each_steps_batch")
STEPS, VAL_MSE, CLASSIFIER = ("test_loss_gradients_and_params_of_each_logged_step",
                              "test_val_loss_is_the_mse_of_the_validation_rows",
                              "test_a_classifiers_columns_from_its_own_parameters")
COLUMN_CHECKS = {
    "step": [FULL, MINI],
    "epoch": [FULL, PER_SAMPLE, MINI],
    "loss": [STEPS, PER_SAMPLE, MINI, CLASSIFIER],
    "parameter": [STEPS, PER_SAMPLE],
    "gradient": [STEPS, PER_SAMPLE, MINI, CLASSIFIER],
    "distance_to_optimum": ["test_distance_to_optimum_and_the_optimum", PER_SAMPLE],
    "val_loss": [VAL_MSE, CLASSIFIER],
    "accuracy": [CLASSIFIER],
    "val_accuracy": [CLASSIFIER],
}
# The norm of a parameter too large to log value by value (an mlp layer), norm(W1), and its
# gradient's, are checked in test_mlp_norm_columns below.
COLUMN_CHECKS["norm"] = ["test_mlp_norm_columns"]

# Each top-level number of summary.json and the test here that recomputes it …
SUMMARY_CHECKS = {
    "steps": "test_full_batch_epochs_steps_and_the_last_step_always_logged",
    "samples": "test_quality_numbers_of_a_regression",
    "scaling": "test_standardisation_statistics_come_from_the_training_rows",
    "initial_params": "test_loss_gradients_and_params_of_each_logged_step",
    "initial_loss": "test_mini_batch_epochs_and_each_steps_batch",
    "final_loss": "test_full_batch_epochs_steps_and_the_last_step_always_logged",
    "final_loss_all_samples": "test_mini_batch_epochs_and_each_steps_batch",
    "params": "test_loss_gradients_and_params_of_each_logged_step",
    "params_original_units": "test_quality_numbers_of_a_regression",
    "predictions": "test_quality_numbers_of_a_regression",
    "optimum": "test_distance_to_optimum_and_the_optimum",
    "optimum_original_units": "test_distance_to_optimum_and_the_optimum",
    "optimum_solved": "test_stability_and_convergence_numbers",
    "distance_to_optimum": "test_distance_to_optimum_and_the_optimum",
    "stable_lr": "test_stability_and_convergence_numbers",
    "convergence": "test_stability_and_convergence_numbers",
    "r2": "test_quality_numbers_of_a_regression",
    "optimum_r2": "test_quality_numbers_of_a_regression",
    "accuracy": "test_a_classifiers_predictions_accuracy_and_confusion",
    "confusion": "test_a_classifiers_predictions_accuracy_and_confusion",
}
# … or why it is not a result to recompute.
SUMMARY_NOT_RESULTS = {
    "seed": "the configuration, echoed", "lr": "the configuration, echoed", "epochs": "the configuration, echoed",
    "batch_size": "the configuration, echoed", "processes": "how the run was launched (test_distributed)",
    "train_seconds": "a timing", "true_params": "the configuration's data truth, echoed",
    "grad_check": "bpcli.gradcheck's own comparison, checked in test_teaching",
    "threads": "how the run was run, checked in test_threads",
}


def column_class(column, params):
    """Which entry of COLUMN_CHECKS a metrics.csv column belongs to (None: not known here)."""
    base = column[len("grad_"):] if column.startswith("grad_") else column
    if base.startswith("norm(") and base[5:-1] in params:
        return "norm"
    if base.split("[")[0] in params:
        return "gradient" if column.startswith("grad_") else "parameter"
    return column if column in COLUMN_CHECKS else None


def unchecked(columns, summary):
    """The columns of a run, and the numbers of its summary.json, that no test here checks."""
    params = set(summary["params"])
    missing = [c for c in columns if column_class(c, params) is None]

    def numeric(value):
        if isinstance(value, bool):
            return False
        if isinstance(value, (int, float)):
            return True
        if isinstance(value, dict):
            return any(numeric(v) for v in value.values())
        if isinstance(value, list):
            return any(numeric(v) for v in value)
        return False

    known = {**SUMMARY_CHECKS, **SUMMARY_NOT_RESULTS}
    missing += [f"summary.json {key}" for key, value in summary.items() if numeric(value) and key not in known]
    return missing


def _every_kinds_run(tmp, kind):
    """A small run of `kind` with validation rows (and for mlp, a classifier and a regression)."""
    reg, classes = _regression_csv(tmp / "reg.csv"), _classes_csv(tmp / "classes.csv")
    data = {"source": "csv", "val_fraction": VAL}
    variants = {
        "scalar-sgd": [{"data": {**data, "path": str(reg), "target": "t", "features": ["a"]}}],
        "linear-gd": [{"data": {**data, "path": str(reg), "target": "t", "standardize": "all"}}],
        "nn-linear": [{"data": {**data, "path": str(reg), "target": "t"}}],
        "mlp": [{"data": {**data, "path": str(reg), "target": "t"}, "model": {"hidden": [5]}},
                {"data": {**data, "path": str(classes), "target": "c"}, "model": {"hidden": [5], "loss": "bce"}}],
        "logistic": [{"data": {**data, "path": str(classes), "target": "c"}}],
        "softmax": [{"data": {**data, "path": str(classes), "target": "c"}}],
    }
    if kind not in variants:
        pytest.fail(f"kind {kind!r} has no run in test_every_column_and_number_has_a_check: add one, "
                    "and a check for any column it adds")
    return variants[kind]


@pytest.mark.parametrize("kind", list(KINDS))
def test_every_column_and_number_has_a_check(tmp_path, kind):
    tests = {name for name, value in globals().items() if name.startswith("test_") and callable(value)}
    for entries in COLUMN_CHECKS.values():
        assert set(entries) <= tests, set(entries) - tests  # the table names tests that exist
    assert set(SUMMARY_CHECKS.values()) <= tests, set(SUMMARY_CHECKS.values()) - tests
    for n, raw in enumerate(_every_kinds_run(tmp_path, kind)):
        cfg = validate_config({"kind": kind, "device": "cpu", "dtype": "float64", "seed": 0,
                               "train": {"epochs": 2, "lr": 0.01}, **raw})
        train(cfg, tmp_path / f"run{n}", plots=False)
        with open(tmp_path / f"run{n}" / "metrics.csv", newline="") as fh:
            columns = next(csv.reader(fh))  # what bpcli wrote, not what it says it wrote
        assert unchecked(columns, _summary(tmp_path / f"run{n}")) == []


def test_mlp_norm_columns(tmp_path):
    """A layer of more than 12 values is logged as the norm of its values and of its gradient."""
    path = _regression_csv(tmp_path / "reg.csv")
    cfg = validate_config({"kind": "mlp", "device": "cpu", "dtype": "float64", "seed": 0,
                           "data": {"source": "csv", "path": str(path), "target": "t"},
                           "model": {"hidden": [7]}, "train": {"epochs": 1, "lr": 0.01, "grad": "manual"}})
    result = train(cfg, tmp_path / "run", plots=False)
    row = _metrics(tmp_path / "run")[-1]
    trainer = build(cfg).trainer  # the same parameters, drawn again from the seed
    params = {n: p.detach().clone().requires_grad_(True) for n, p in trainer.params().items()}
    loss = trainer.loss(params, trainer.full_batch())
    grads = dict(zip(params, torch.autograd.grad(loss.sum(), list(params.values()))))
    assert row["loss"] == pytest.approx(float(loss.detach()), rel=1e-12)
    assert row["grad_norm(W1)"] == pytest.approx(float(grads["W1"].norm()), rel=1e-10)  # 7×2 = 14 values
    assert row["norm(W1)"] == pytest.approx(float((params["W1"] - 0.01 * grads["W1"]).detach().norm()), rel=1e-10)
    after = (params["W1"] - 0.01 * grads["W1"]).detach()[0].reshape(-1).tolist()
    assert result.summary["params"]["W1"] == pytest.approx(after, rel=1e-10)


def test_the_coverage_check_names_what_it_does_not_know():
    summary = {"params": {"w": [1.0], "W1": {"shape": [20, 2], "norm": 3.0}}, "final_loss": 0.5,
               "a_new_number": {"train": 0.25}, "kind": "linear-gd"}
    columns = ["step", "epoch", "loss", "w", "grad_w", "norm(W1)", "grad_norm(W1)", "val_loss", "a_new_column"]
    assert unchecked(columns, summary) == ["a_new_column", "summary.json a_new_number"]
