"""Conditioning: κ of the least-squares Hessian, the linear rates it predicts, the rate a run shows."""

import json
import math

import numpy as np
import pytest
import torch

from bpcli import analysis
from bpcli.build import build
from bpcli.config.schema import TrainConfig
from bpcli.data.dataset import Dataset
from bpcli.kinds.base import LeastSquares
from bpcli.lifecycle import train
from conftest import CONFIGS, cli, config

FULL_BATCH = LeastSquares(bias=True, per_sample=False)


def dataset(rows, features, seed, scales):
    """Random data whose features have very different scales, hence a spread of eigenvalues."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, features)) * np.array(scales) + rng.normal(size=features)
    y = x @ rng.normal(size=features) + rng.normal(scale=0.1, size=rows)
    return Dataset(torch.tensor(x), torch.tensor(y), None)


def numpy_eigenvalues(data, bias=True):
    x = data.x.numpy()
    a = np.hstack([x, np.ones((len(x), 1))]) if bias else x
    return np.linalg.eigvalsh(2 / len(a) * a.T @ a)


def settings(**changes):
    return TrainConfig(lr=changes.pop("lr", 0.01), epochs=10, log_every=1, grad="manual", **changes)


def largest_root(coefficients):
    return max(abs(r) for r in np.roots(coefficients))


PROBLEMS = [(20, 1, 0, [1.0]), (50, 3, 1, [1.0, 3.0, 0.2]), (9, 2, 2, [10.0, 0.5]), (200, 5, 3, [1, 2, 3, 4, 0.1])]


@pytest.mark.parametrize("rows,features,seed,scales", PROBLEMS)
def test_condition_number_and_gradient_descent_rate_match_numpy(rows, features, seed, scales):
    data = dataset(rows, features, seed, scales)
    eigenvalues = numpy_eigenvalues(data)
    lr = 1.5 / eigenvalues.max()  # past the middle, so the largest eigenvalue can set the rate too
    found = analysis.conditioning(data, FULL_BATCH, settings(lr=lr))
    assert found.condition_number == pytest.approx(eigenvalues.max() / eigenvalues.min(), rel=1e-9)
    assert found.rate_predicted == pytest.approx(np.abs(1 - lr * eigenvalues).max(), rel=1e-12)
    assert found.rate_momentum_optimal == pytest.approx(
        (math.sqrt(found.condition_number) - 1) / (math.sqrt(found.condition_number) + 1))


@pytest.mark.parametrize("rows,features,seed,scales", PROBLEMS)
@pytest.mark.parametrize("momentum,fraction", [(0.5, 0.3), (0.9, 0.05), (0.99, 0.7)])
def test_momentum_rates_are_the_largest_roots_of_their_recurrences(rows, features, seed, scales, momentum, fraction):
    data = dataset(rows, features, seed, scales)
    eigenvalues = numpy_eigenvalues(data)
    lr = fraction * 2 / eigenvalues.max()
    heavy = analysis.conditioning(data, FULL_BATCH, settings(lr=lr, momentum=momentum)).rate_predicted
    nesterov = analysis.conditioning(data, FULL_BATCH, settings(lr=lr, momentum=momentum, nesterov=True)).rate_predicted
    assert heavy == pytest.approx(max(largest_root([1, -(1 + momentum - lr * v), momentum]) for v in eigenvalues))
    assert nesterov == pytest.approx(max(largest_root([1, -(1 + momentum) * (1 - lr * v), momentum * (1 - lr * v)])
                                         for v in eigenvalues))


@pytest.mark.parametrize("rows,features,seed,scales", PROBLEMS)
@pytest.mark.parametrize("momentum", [0.3, 0.9])
def test_heavy_ball_rate_is_what_iterating_it_gives(rows, features, seed, scales, momentum):
    # An oracle outside the formulas: torch.optim.SGD itself, on the least-squares loss in float64.
    data = dataset(rows, features, seed, scales)
    eigenvalues = numpy_eigenvalues(data)
    lr = 0.8 / eigenvalues.max()
    a = torch.cat([data.x, torch.ones(len(data.x), 1, dtype=torch.float64)], 1)
    best = torch.linalg.lstsq(a, data.y[:, None]).solution[:, 0]
    theta = torch.zeros(a.shape[1], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.SGD([theta], lr=lr, momentum=momentum)
    errors = []
    for _ in range(3000):
        optimizer.zero_grad()
        (a @ theta - data.y).pow(2).mean().backward()
        optimizer.step()
        errors.append(float((theta.detach() - best).norm()))
    measured = [e for e in errors if e > 1e-11]
    tail = np.log(measured[len(measured) // 2:])
    # The slope of log ‖θ − θ*‖ over the second half: complex roots make the error oscillate
    # around the line of slope log ρ, which a fit averages over.
    observed = math.exp(np.polyfit(np.arange(len(tail)), tail, 1)[0])
    predicted = analysis.conditioning(data, FULL_BATCH, settings(lr=lr, momentum=momentum)).rate_predicted
    assert 1 - observed == pytest.approx(1 - predicted, rel=0.03)


def test_at_heavy_balls_best_settings_the_rate_is_root_kappa_minus_one_over_plus_one():
    data = dataset(30, 3, 5, [1.0, 4.0, 0.3])
    eigenvalues = numpy_eigenvalues(data)
    top, bottom = eigenvalues.max(), eigenvalues.min()
    lr = 4 / (math.sqrt(top) + math.sqrt(bottom)) ** 2
    momentum = ((math.sqrt(top / bottom) - 1) / (math.sqrt(top / bottom) + 1)) ** 2
    found = analysis.conditioning(data, FULL_BATCH, settings(lr=lr, momentum=momentum))
    assert found.rate_predicted == pytest.approx(found.rate_momentum_optimal, rel=1e-6)
    plain = analysis.conditioning(data, FULL_BATCH, settings(lr=2 / (top + bottom))).rate_predicted
    assert plain == pytest.approx((top / bottom - 1) / (top / bottom + 1))  # GD at its best lr
    assert found.rate_predicted < plain


@pytest.mark.parametrize("momentum,nesterov", [(0.0, False), (0.4, False), (0.9, False), (0.4, True), (0.9, True)])
def test_stable_bounds_are_where_the_largest_root_reaches_one(momentum, nesterov):
    data = dataset(40, 2, 7, [1.0, 2.5])
    bound = analysis.stable_lr(data, FULL_BATCH, settings(momentum=momentum, nesterov=nesterov)).lr
    top = numpy_eigenvalues(data).max()
    expected = 2 * (1 + momentum) / ((1 + 2 * momentum) if nesterov else 1) / top
    assert bound == pytest.approx(expected)
    for lr, inside in ((0.999 * bound, True), (1.001 * bound, False)):
        rate = analysis.conditioning(data, FULL_BATCH, settings(lr=lr, momentum=momentum, nesterov=nesterov))
        assert (rate.rate_predicted < 1) is inside


def test_adam_has_no_bound_of_that_form_and_no_predicted_rate():
    data = dataset(40, 2, 7, [1.0, 2.5])
    adam = settings(optimizer="adam")
    assert analysis.stable_lr(data, FULL_BATCH, adam).lr is None
    assert "no bound of the form" in analysis.stable_lr(data, FULL_BATCH, adam).explanation
    found = analysis.conditioning(data, FULL_BATCH, adam)
    assert found.rate_predicted is None and found.condition_number > 1
    assert "Adam" in found.note


def test_a_singular_hessian_has_an_infinite_condition_number_and_the_rate_of_its_smallest_positive_eigenvalue():
    x = torch.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0], [4.0, 8.0]], dtype=torch.float64)  # collinear
    data = Dataset(x, torch.tensor([1.0, 2.0, 2.0, 5.0], dtype=torch.float64), None)
    found = analysis.conditioning(data, FULL_BATCH, settings(lr=0.01))
    positive = [v for v in numpy_eigenvalues(data) if v > 1e-9]
    assert math.isinf(found.condition_number)
    assert found.rate_predicted == pytest.approx(max(abs(1 - 0.01 * v) for v in positive))
    assert "singular" in found.note


@pytest.mark.parametrize("changes", [
    {},
    {"seed": 3, "train__lr": 0.3, "train__epochs": 1000},
    {"data__noise": 0.5, "data__n": 40, "train__lr": 0.05},
    {"data__x_low": -2.0, "data__x_high": 5.0, "train__lr": 0.02, "train__epochs": 800, "dtype": "float64"},
])
def test_observed_rate_of_plain_gradient_descent_matches_the_prediction(changes):
    result = train(config("exp2.yaml", train__log_every=10, **changes), save=False)
    found = result.summary["convergence"]
    assert found["rate_observed"] is not None
    # Both rates are close to 1; what must agree is how far below 1 they are.
    assert 1 - found["rate_observed"] == pytest.approx(1 - found["rate_predicted"], rel=0.01)


def test_observed_rate_uses_the_loss_gap_and_its_square():
    # A gap that shrinks by exactly 0.81 a step is an error shrinking by 0.9 a step.
    steps = list(range(1, 41))
    losses = [2.0 + 5.0 * 0.81 ** (s - 1) for s in steps]
    assert analysis.observed_rate(steps, losses, 2.0, eps=1e-16) == pytest.approx(0.9)
    # Once the gap is down to rounding it is not measured: a flat tail does not drag the rate to 1.
    flat = losses + [2.0 + 1e-14] * 200
    assert analysis.observed_rate(steps + list(range(41, 241)), flat, 2.0, eps=1e-16) == pytest.approx(0.9)
    # Steps logged unevenly, the second half holding one of them: the last two are used.
    uneven = [1, 2, 100]
    assert analysis.observed_rate(uneven, [2.0 + 5.0 * 0.81 ** (s - 1) for s in uneven], 2.0, 1e-16) \
        == pytest.approx(0.9)
    # Momentum's oscillations (the gap dipping to a sixth of its trend about every three steps)
    # are averaged over by the fit.
    steps = list(range(1, 401))
    wavy = [2.0 + 5.0 * 0.98 ** (2 * (s - 1)) * (1.2 + math.cos(2.1 * s)) for s in steps]
    assert 1 - analysis.observed_rate(steps, wavy, 2.0, eps=1e-16) == pytest.approx(1 - 0.98, rel=0.05)


def test_summary_has_every_convergence_field_null_where_it_does_not_apply(tmp_path):
    keys = {"condition_number", "eigenvalue_min", "eigenvalue_max", "rate_predicted", "rate_momentum_optimal",
            "rate_observed", "note"}
    mlp = train(config("mlp.yaml", train__epochs=5), tmp_path / "mlp", plots=False)
    recorded = json.loads((tmp_path / "mlp/summary.json").read_text())["convergence"]
    assert set(recorded) == keys and mlp.summary["convergence"] == recorded
    assert all(recorded[k] is None for k in keys - {"note"})

    # Adam: no rate is predicted, but what it did is measured.
    train(config("exp2.yaml", train__optimizer="adam", train__lr=0.05, train__epochs=300, train__log_every=10),
          tmp_path / "adam", plots=False)
    adam = json.loads((tmp_path / "adam/summary.json").read_text())
    assert set(adam["convergence"]) == keys
    assert adam["convergence"]["rate_predicted"] is None and adam["stable_lr"] is None
    assert 0 < adam["convergence"]["rate_observed"] < 1 and adam["convergence"]["condition_number"] > 1

    # Per-sample SGD: κ of its full-batch problem, nothing predicted or measured.
    assert cli("train", CONFIGS / "exp1.yaml", "--out", tmp_path / "exp1", "-q", "--no-plots").exit_code == 0
    per_sample = json.loads((tmp_path / "exp1/summary.json").read_text())["convergence"]
    assert set(per_sample) == keys and per_sample["condition_number"] == pytest.approx(1.0)
    assert per_sample["rate_predicted"] is None and per_sample["rate_observed"] is None
    assert "mini-batches" in per_sample["note"]


def test_results_table_shows_kappa_and_both_rates():
    result = cli("train", CONFIGS / "longley.yaml", "--epochs", "200", "--no-plots")
    assert result.exit_code == 0, result.output
    assert "condition number κ" in result.stdout and "12220" in result.stdout
    assert "rate ρ, predicted" in result.stdout and "0.999849" in result.stdout
    assert "rate ρ, observed" in result.stdout and "ρ at best momentum" in result.stdout


def test_loss_plot_draws_the_predicted_envelope(tmp_path):
    from bpcli.plots.loss import loss_plot
    from bpcli.rundir.run import read_run

    train(config("exp2.yaml", train__lr=0.1, train__epochs=300, train__log_every=5), tmp_path / "run", plots=False)
    record = read_run(tmp_path / "run")
    _, fig = loss_plot(record)
    lines = {line.get_label(): line for line in fig.axes[0].get_lines()}
    envelope = next(line for label, line in lines.items() if label.startswith("predicted"))
    steps, values = envelope.get_xdata(), envelope.get_ydata()
    rate, best = record.summary["convergence"]["rate_predicted"], record.summary["optimum"]["loss"]
    start = record.metrics["loss"][0]
    # The gap in the loss shrinks with the square of the error's rate.
    for s, v in zip(steps, values):
        assert v == pytest.approx((start - best) * rate ** (2 * (s - 1)))
    # and plain gradient descent stays under it
    for s, loss in zip(record.metrics["step"], record.metrics["loss"]):
        assert loss - best <= (start - best) * rate ** (2 * (s - 1)) * (1 + 1e-4) + 1e-6


def test_longley_table_reproduces_nists_certified_estimates():
    # NIST StRD, Longley.dat: certified B0 … B6 of employed = B0 + B1·x1 + … + B6·x6.
    table = np.loadtxt(CONFIGS / "data/longley.csv", delimiter=",", skiprows=1)
    assert table.shape == (16, 7)
    a = np.hstack([np.ones((16, 1)), table[:, 1:]])
    estimates, *_ = np.linalg.lstsq(a, table[:, 0], rcond=None)
    certified = [-3482258.63459582, 15.0618722713733, -0.358191792925910e-01, -2.02022980381683,
                 -1.03322686717359, -0.511041056535807e-01, 1829.15146461355]
    assert estimates == pytest.approx(certified, rel=1e-9)
    residual = table[:, 0] - a @ estimates
    assert math.sqrt(residual @ residual / (16 - 7)) == pytest.approx(304.854073561965, rel=1e-10)


def test_longley_is_ill_conditioned_even_standardised():
    found = analysis.conditioning(build(config("longley.yaml")).data, FULL_BATCH, config("longley.yaml").train)
    assert 1e4 < found.condition_number < 2e4
    assert found.rate_predicted > 0.9998  # plain GD at lr 0.2: the flattest direction barely moves
    assert found.rate_momentum_optimal < 0.99


def test_weight_decay_shifts_every_eigenvalue_and_is_not_observed():
    data = dataset(30, 2, 8, [1.0, 0.2])
    eigenvalues = numpy_eigenvalues(data)
    found = analysis.conditioning(data, FULL_BATCH, settings(lr=0.3, weight_decay=0.05))
    assert found.rate_predicted == pytest.approx(np.abs(1 - 0.3 * (eigenvalues + 0.05)).max())
    assert not found.measurable and "weight_decay" in found.note
    bound = analysis.stable_lr(data, FULL_BATCH, settings(weight_decay=0.05)).lr
    assert bound == pytest.approx(2 / (eigenvalues.max() + 0.05))


@pytest.mark.parametrize("batch_size", [1, 7, 29])
def test_mini_batches_get_kappa_but_no_predicted_rate(batch_size):
    data = dataset(30, 2, 8, [1.0, 0.2])
    found = analysis.conditioning(data, FULL_BATCH, settings(batch_size=batch_size))
    eigenvalues = numpy_eigenvalues(data)
    assert found.condition_number == pytest.approx(eigenvalues.max() / eigenvalues.min())
    assert found.rate_predicted is None and not found.measurable
    assert "mini-batches" in found.note
    assert "full-batch bound" in analysis.stable_lr(data, FULL_BATCH, settings(batch_size=batch_size)).explanation
    # a batch holding every sample is full-batch gradient descent again
    assert analysis.conditioning(data, FULL_BATCH, settings(batch_size=30)).rate_predicted is not None


def test_per_sample_sgd_keeps_its_bound_but_has_none_with_momentum():
    data = build(config("exp1.yaml")).data
    per_sample = LeastSquares(bias=False, per_sample=True)
    assert analysis.stable_lr(data, per_sample, settings()).lr == pytest.approx(0.204, abs=5e-4)
    with_momentum = analysis.stable_lr(data, per_sample, settings(momentum=0.5))
    assert with_momentum.lr is None and "velocity" in with_momentum.explanation
    # one batch of all three samples is gradient descent on y = w·x: 2/λ with λ = 2·mean(x²)
    assert analysis.stable_lr(data, per_sample, settings(batch_size=3)).lr == pytest.approx(2 / (2 * 14 / 3))


@pytest.mark.parametrize("changes", [
    {"train__momentum": 0.9, "train__lr": 0.05},
    {"train__momentum": 0.5, "train__lr": 0.2, "seed": 2},
    {"train__momentum": 0.9, "train__nesterov": True, "train__lr": 0.1, "data__noise": 0.2},
])
def test_observed_rate_with_momentum_matches_the_prediction(changes):
    result = train(config("exp2.yaml", train__log_every=10, **changes), save=False)
    found = result.summary["convergence"]
    assert 1 - found["rate_observed"] == pytest.approx(1 - found["rate_predicted"], rel=0.03)


@pytest.mark.parametrize("momentum,nesterov", [(0.5, False), (0.9, False), (0.9, True)])
def test_just_below_the_momentum_bound_converges_and_just_above_diverges(momentum, nesterov):
    settings_ = {"train__momentum": momentum, "train__nesterov": nesterov, "train__epochs": 400,
                 "train__log_every": 10}
    built = build(config("exp2.yaml", **settings_))
    bound = analysis.stable_lr(built.data, built.trainer.least_squares, built.config.train).lr
    below = train(config("exp2.yaml", train__lr=0.97 * bound, **settings_), save=False)
    above = train(config("exp2.yaml", train__lr=1.03 * bound, **settings_), save=False)
    assert below.status == "completed" and below.summary["distance_to_optimum"] < 1e-3
    assert above.status == "diverged"
    message = above.summary["divergence"]["message"]
    assert f"{bound:.6g}" in message and ("Nesterov" if nesterov else "heavy-ball") in message


def test_a_diverging_adam_run_says_no_bound_applies():
    # Logged every step: Adam's steps shrink as its running sizes grow, and by step 500 it is back.
    result = cli("train", CONFIGS / "exp2.yaml", "--set", "train.optimizer=adam", "--lr", "1000", "--log-every", "1",
                 "--no-plots")
    assert result.exit_code == 1
    error = result.stderr.strip()
    assert len(error.splitlines()) == 1
    assert "no bound of the form lr < c/λ_max applies; try a smaller learning rate than 1000" in error


def test_on_longley_plain_gradient_descent_stalls_where_momentum_and_adam_do_not():
    runs = {name: train(config("longley.yaml", **changes), save=False).summary
            for name, changes in (("sgd", {}), ("momentum", {"train__momentum": 0.9}),
                                  ("adam", {"train__optimizer": "adam"}))}
    gap = {name: s["final_loss"] - s["optimum"]["loss"] for name, s in runs.items()}
    best = runs["sgd"]["optimum"]["loss"]
    assert gap["sgd"] > 0.1 * best  # still 10 % above the optimum's loss after 2000 epochs
    assert gap["momentum"] < gap["sgd"] / 100 and gap["adam"] < gap["sgd"] / 100
    assert runs["sgd"]["distance_to_optimum"] > 10 * runs["momentum"]["distance_to_optimum"]
    heavy = runs["momentum"]["convergence"]
    assert 1 - heavy["rate_observed"] == pytest.approx(1 - heavy["rate_predicted"], rel=0.01)
    assert runs["adam"]["convergence"]["rate_predicted"] is None


def test_a_full_rank_design_far_beyond_float32_keeps_its_finite_condition_number():
    # Longley in its raw units: κ ≈ 2.4e19, resolved by A's singular values (forming AᵀA
    # would square it past float64's precision and call the design singular).
    cfg = config("longley.yaml", data__standardize="none", dtype="float64")
    built = build(cfg)
    a = np.column_stack([built.data.x.numpy(), np.ones(len(built.data.y))])
    expected = np.linalg.svd(a, compute_uv=False) ** 2 * 2 / len(a)
    conditioning = analysis.conditioning(built.data, built.trainer.least_squares, cfg.train)
    assert conditioning.condition_number == pytest.approx(expected.max() / expected.min(), rel=1e-6)
    assert conditioning.condition_number > 1e19


def test_momentums_best_rate_on_a_singular_design_is_that_of_the_directions_that_move():
    x = torch.linspace(0, 1, 30, dtype=torch.float64)[:, None].repeat(1, 2)  # two equal columns
    data = Dataset(x, 3 * x[:, 0] + 1, None)
    fit = LeastSquares(bias=True, per_sample=False)
    conditioning = analysis.conditioning(data, fit, TrainConfig(lr=0.1, epochs=1, log_every=1, grad="manual"))
    assert math.isinf(conditioning.condition_number)
    moving = np.linalg.eigvalsh(2 / 30 * np.column_stack([x.numpy(), np.ones(30)]).T @ np.column_stack([x.numpy(), np.ones(30)]))[1:]
    kappa = moving.max() / moving.min()
    assert conditioning.rate_momentum_optimal == pytest.approx((math.sqrt(kappa) - 1) / (math.sqrt(kappa) + 1), rel=1e-6)
    assert conditioning.rate_momentum_optimal < 1
