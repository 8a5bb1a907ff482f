"""Seeing back-propagation work: gradient checks, the optimum, the stability bound, the MLP."""

import json
from pathlib import Path

import numpy as np
import pytest

from bpcli.analysis import optimum, stable_lr
from bpcli.build import build
from bpcli.kinds.linear_gd import LinearGD
from bpcli.gradcheck import check_steps
from bpcli.lifecycle import train
from conftest import CONFIGS, cli, config

SHIPPED = sorted(p.name for p in CONFIGS.glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_manual_gradients_agree_with_autograd_and_finite_differences(name):
    checks = check_steps(build(config(name)).trainer, steps=3)
    assert checks and all(c.manual_vs_autograd <= 1e-6 for c in checks)
    for c in checks:  # finite differences carry ~1e-10 of absolute error of their own
        scale = 1 + max(abs(v) for v in c.autograd)
        assert max(abs(f - a) for f, a in zip(c.finite_difference, c.autograd)) < 1e-6 * scale
    assert {c.step for c in checks} == {1, 2, 3}


@pytest.mark.parametrize("name", SHIPPED)
def test_check_command_passes_for_every_shipped_config(name):
    result = cli("check", CONFIGS / name, "--steps", "2")
    assert result.exit_code == 0, result.output
    assert "manual and autograd agree" in result.stdout


def test_check_catches_a_wrong_hand_derived_gradient(monkeypatch):
    right = LinearGD.manual_backward

    def off_by_a_bit(self, params, batch):
        loss, grads = right(self, params, batch)
        return loss, {**grads, "b": grads["b"] * (1 + 1e-5)}

    monkeypatch.setattr(LinearGD, "manual_backward", off_by_a_bit)
    result = cli("check", CONFIGS / "exp2.yaml", "--steps", "3")
    assert result.exit_code == 1
    assert "the hand-derived gradient of b disagrees with autograd at step 1" in result.stderr


def test_check_grad_every_records_the_worst_error(tmp_path):
    result = train(config("mlp.yaml", train__epochs=40, train__check_grad_every=10), tmp_path / "run", plots=False)
    check = result.summary["grad_check"]
    assert check["checks"] == 4 and check["agree"] is True
    assert check["worst_manual_vs_autograd"] <= 1e-6
    assert json.loads((tmp_path / "run/summary.json").read_text())["grad_check"] == check


@pytest.mark.parametrize("name", ["exp1.yaml", "exp2.yaml", "exp3.yaml"])
def test_closed_form_optimum_matches_numpy_lstsq(name):
    built = build(config(name, seed=4))
    x = built.data.x.double().numpy()
    fit = built.trainer.least_squares
    a = np.hstack([x, np.ones((len(x), 1))]) if fit.bias else x
    reference, *_ = np.linalg.lstsq(a, built.data.y.double().numpy(), rcond=None)
    assert optimum(built.data, fit).flat() == pytest.approx(reference.tolist(), rel=1e-12)


def test_runs_report_the_optimum_and_their_distance_to_it(tmp_path):
    result = train(config("exp2.yaml"), tmp_path / "run", plots=False)
    summary = result.summary
    assert summary["optimum"]["w"][0] == pytest.approx(4.0, abs=1e-6)
    assert summary["optimum"]["b"][0] == pytest.approx(0.6, abs=1e-6)
    w, b = result.params["w"][0], result.params["b"][0]
    expected = ((w - summary["optimum"]["w"][0]) ** 2 + (b - summary["optimum"]["b"][0]) ** 2) ** 0.5
    assert summary["distance_to_optimum"] == pytest.approx(expected)
    distances = [row["distance_to_optimum"] for row in result.history]
    assert distances == sorted(distances, reverse=True)  # gradient descent closes in on it


@pytest.mark.parametrize("name,epochs", [("exp1.yaml", 300), ("exp2.yaml", 2000), ("exp3.yaml", 2000)])
def test_just_below_the_stability_bound_converges_and_just_above_diverges(name, epochs):
    built = build(config(name))
    bound = stable_lr(built.data, built.trainer.least_squares).lr
    below = train(config(name, train__lr=0.95 * bound, train__epochs=epochs, train__log_every=1), save=False)
    above = train(config(name, train__lr=1.05 * bound, train__epochs=epochs, train__log_every=1), save=False)
    assert below.status == "completed"
    assert below.summary["distance_to_optimum"] < 1e-2
    assert above.status == "diverged"
    assert above.summary["divergence"]["stable_lr"] == pytest.approx(bound)
    assert f"{bound:.6g}" in above.summary["divergence"]["message"]


def test_full_batch_bound_is_two_over_the_largest_hessian_eigenvalue():
    built = build(config("exp2.yaml"))
    x = built.data.x.double().numpy()
    a = np.hstack([x, np.ones((len(x), 1))])
    hessian = 2 / len(a) * a.T @ a
    assert stable_lr(built.data, built.trainer.least_squares).lr == pytest.approx(2 / np.linalg.eigvalsh(hessian).max())


def test_per_sample_bound_for_the_articles_data():
    # Each update multiplies the error by (1 − 2·lr·x²); one epoch by the product for
    # x = 1, 2, 3. At the bound that product is −1 or 1 in size.
    bound = stable_lr(build(config("exp1.yaml")).data, build(config("exp1.yaml")).trainer.least_squares).lr
    product = (1 - 2 * bound) * (1 - 8 * bound) * (1 - 18 * bound)
    assert abs(product) == pytest.approx(1.0, abs=1e-9)
    assert 1 / 9 < bound < 0.25


def test_a_diverged_run_explains_itself_on_the_command_line():
    result = cli("train", CONFIGS / "exp1.yaml", "--lr", "0.3")
    assert result.exit_code == 1
    assert "per-sample SGD on this data converges only for lr < 0.204" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_mlp_fits_its_curve_with_the_hand_written_backward_pass(tmp_path):
    result = train(config("mlp.yaml"), tmp_path / "run")
    assert result.status == "completed" and result.summary["grad"] == "manual"
    assert result.final_loss < 0.01  # the noise alone costs 0.05² = 0.0025
    by_x = {p["x"]: p["y_pred"] for p in result.summary["predictions"]}
    assert by_x[0.0] == pytest.approx(0.0, abs=0.1) and by_x[1.5708] == pytest.approx(1.0, abs=0.1)
    for name in ("fit.png", "loss.png", "params.png"):
        assert (tmp_path / "run" / name).is_file()
    assert not (tmp_path / "run/landscape.png").exists()  # no closed form for an MLP


def test_mlp_manual_and_autograd_training_stay_together():
    manual = train(config("mlp.yaml", train__epochs=200, dtype="float64"), save=False)
    auto = train(config("mlp.yaml", train__epochs=200, dtype="float64", train__grad="autograd"), save=False)
    for m, a in zip(manual.losses, auto.losses):
        assert m == pytest.approx(a, rel=1e-9)


def test_compare_overlays_runs_labelled_by_what_differs():
    for out, lr in (("a", "0.1"), ("b", "0.3")):
        assert cli("train", CONFIGS / "exp2.yaml", "--lr", lr, "--epochs", "100", "--out", out, "-q",
                   "--no-plots").exit_code == 0
    result = cli("compare", "a", "b", "--out", "both.svg")
    assert result.exit_code == 0, result.output
    text = Path("both.svg").read_text()
    assert "lr=0.1" in text and "lr=0.3" in text
    assert cli("compare", "a", "missing").exit_code == 2
    assert cli("compare", "a", "b", "--out", "both.txt").exit_code == 2
