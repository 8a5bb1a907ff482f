"""The article's numbers (docs/article.md), reproduced by bpcli on CPU in float32."""

import pytest

import article
from bpcli import train
from conftest import config


def run(name, **changes):
    return train(config(name, **changes), save=False)


@pytest.mark.parametrize("grad", ["manual", "autograd"])
def test_exp1_predicts_the_articles_value(grad):
    result = run("exp1.yaml", train__grad=grad)
    assert result.summary["predictions"] == [{"x": 4.0, "y_pred": 7.999998569488525}]
    assert result.final_loss == 9.094947017729282e-13
    assert result.history[-1]["grad_w"] == -5.7220458984375e-06
    assert result.steps == 300


def test_exp1_logs_every_gradient_the_article_prints():
    reference = article.experiment1()
    result = run("exp1.yaml")
    assert [row["grad_w"] for row in result.history] == reference["grads"]
    # The article prints, after each epoch, the loss of that epoch's last sample.
    epoch_ends = [row["loss"] for row in result.history if row["step"] % 3 == 0]
    assert epoch_ends == reference["epoch_losses"]


def test_exp1_manual_and_autograd_are_identical_at_every_step():
    manual = run("exp1.yaml", train__grad="manual", train__lr=0.05, train__epochs=20)
    auto = run("exp1.yaml", train__grad="autograd", train__lr=0.05, train__epochs=20)
    assert manual.history == auto.history


# (seed, w, b) from docs/article.md
EXP2 = [(0, 3.9592, 0.6214), (1, 3.9227, 0.6414), (2, 3.8985, 0.6532)]
EXP3 = [
    (0, 3.939624071121216, 0.6291572451591492),
    (1, 3.8606271743774414, 0.6759740114212036),
    (2, 3.8133931159973145, 0.6942018866539001),
]


@pytest.mark.parametrize("seed,w,b", EXP2)
def test_exp2_matches_the_published_numbers(seed, w, b):
    result = run("exp2.yaml", seed=seed)
    assert result.params["w"][0] == pytest.approx(w, abs=5e-5)  # published to 4 decimals
    assert result.params["b"][0] == pytest.approx(b, abs=5e-5)


@pytest.mark.parametrize("seed,w,b", EXP3)
def test_exp3_matches_the_published_numbers(seed, w, b):
    result = run("exp3.yaml", seed=seed)
    assert result.params["w"][0] == pytest.approx(w, abs=1e-5)
    assert result.params["b"][0] == pytest.approx(b, abs=1e-5)


@pytest.mark.parametrize("grad", ["autograd", "manual"])
@pytest.mark.parametrize("seed,lr,epochs", [(0, 0.01, 3000), (3, 0.05, 500), (11, 0.2, 250)])
def test_exp2_equals_the_article_loop_under_overrides(seed, lr, epochs, grad):
    reference = article.experiment2(seed, lr=lr, iterations=epochs)
    result = run("exp2.yaml", seed=seed, train__lr=lr, train__epochs=epochs, train__grad=grad)
    assert result.params["w"][0] == pytest.approx(reference["w"], abs=1e-5)
    assert result.params["b"][0] == pytest.approx(reference["b"], abs=1e-5)
    assert result.history[0]["loss"] == pytest.approx(reference["losses"][0], rel=1e-6)


@pytest.mark.parametrize("grad", ["autograd", "manual"])
@pytest.mark.parametrize("seed,lr,epochs", [(5, 1e-3, 2000), (8, 0.05, 1000)])
def test_exp3_equals_the_article_loop_under_overrides(seed, lr, epochs, grad):
    reference = article.experiment3(seed, lr=lr, iterations=epochs)
    result = run("exp3.yaml", seed=seed, train__lr=lr, train__epochs=epochs, train__grad=grad)
    assert result.params["w"][0] == pytest.approx(reference["w"], abs=1e-5)
    assert result.params["b"][0] == pytest.approx(reference["b"], abs=1e-5)
    logged = {int(row["step"]): row["loss"] for row in result.history}
    for step, loss in logged.items():
        assert loss == pytest.approx(reference["losses"][step - 1], rel=1e-5)


def test_fixed_initial_values_leave_the_data_unchanged(tmp_path):
    # A fixed init_w still consumes its random draw, so the data stay the article's.
    drawn_run = train(config("exp2.yaml", train__epochs=1), tmp_path / "drawn", plots=False)
    fixed_run = train(config("exp2.yaml", train__epochs=1, model__init_w=1.0), tmp_path / "fixed", plots=False)
    assert (tmp_path / "drawn/data.csv").read_bytes() == (tmp_path / "fixed/data.csv").read_bytes()
    assert fixed_run.history[0]["w"] != drawn_run.history[0]["w"]
    first = fixed_run.history[0]  # logged after the first update: w = 1 − lr·dL/dw
    assert first["w"] == pytest.approx(1.0 - 0.01 * first["grad_w"], rel=1e-6)
