"""The mlp kind learns classes: bce, hinge and cross-entropy beside mse, each with its
output gradient written by hand, checked against autograd, and micrograd's moons demo."""

import csv
import dataclasses
import json
from pathlib import Path

import pytest
import torch

from bpcli.config import Override, load_config
from bpcli.data import make_dataset
from bpcli.data.dataset import Dataset
from bpcli.data.planar import MoonsData
from bpcli.kinds.base import autograd_gradients
from bpcli.kinds.mlp import LOSSES, MLP, MLPConfig
from conftest import CONFIGS, cli

CLASSIFYING = ["bce", "hinge", "cross-entropy"]
ACTIVATIONS = ["tanh", "sigmoid", "relu"]

# --------------------------------------------------------------------------- data made here


def labelled(x, y, classes, x_val=None, y_val=None):
    """A Dataset of class labels: y holds each row's class index as a float."""
    return Dataset(x=x, y=y, true_params=None, x_val=x_val, y_val=y_val, feature_names=["x1", "x2"],
                   classes=list(classes))


def moons(n=30, seed=0):
    """bpcli's moons source (noise 0.1) in float64, drawn with `seed`."""
    return make_dataset(MoonsData(n=n), torch.Generator().manual_seed(seed), torch.float64, classify=True)


def blobs(n=150, seed=0, spread=0.5, val=0):
    """Three Gaussian blobs around the corners of a triangle, classes a, b, c."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[0.0, 2.0], [-1.8, -1.0], [1.8, -1.0]], dtype=torch.float64)
    y = torch.arange(n + val) % 3
    x = centres[y] + spread * torch.randn((n + val, 2), generator=g, dtype=torch.float64)
    y = y.to(torch.float64)
    return labelled(x[:n], y[:n], ["a", "b", "c"], x[n:] if val else None, y[n:] if val else None)


@pytest.fixture
def data_is(monkeypatch):
    """Train on the given Dataset whatever the config's data section says."""

    def use(dataset):
        def make(cfg, generator, dtype, classify=False):
            x_val = None if dataset.x_val is None else dataset.x_val.to(dtype)
            y_val = None if dataset.y_val is None else dataset.y_val.to(dtype)
            return labelled(dataset.x.to(dtype), dataset.y.to(dtype), dataset.classes, x_val, y_val)

        monkeypatch.setattr("bpcli.build.make_dataset", make)

    return use


def two_or_three(loss, seed=0, n=30):
    """Data for a loss: three classes for cross-entropy, two (moons) for the others."""
    return blobs(n, seed) if LOSSES[loss].one_per_class else moons(n, seed)


@pytest.fixture
def data_for(data_is):
    """A run's data: the config's own (moons, `n` points) for a loss with one output, three
    blobs made here (and `val` held-out rows) for cross-entropy."""

    def use(loss, n, val=0):
        if LOSSES[loss].one_per_class:
            data_is(blobs(n, val=val))

    return use


def yaml(loss, activation="tanh", hidden="[6, 5]", dtype="float32", n=30, **train):
    """An mlp config on n points of moons (which `data_is` may replace)."""
    settings = {"lr": 0.3, "epochs": 60, "log_every": 10, **train}
    lines = "".join(f"  {k}: {v}\n" for k, v in settings.items())
    return (f"kind: mlp\ndevice: cpu\nseed: 0\ndtype: {dtype}\ndata:\n  source: moons\n  n: {n}\n"
            f"model:\n  hidden: {hidden}\n  activation: {activation}\n  loss: {loss}\ntrain:\n{lines}")


def summary(run):
    return json.loads((Path(run) / "summary.json").read_text())


# --------------------------------------------------------------------------- the formulas


def trainer(loss, activation, data, seed):
    """A 2-5-4-O MLP built on `data` (the config's data section only has to fit the loss)."""
    source = "function" if loss == "mse" else "moons"
    cfg = MLPConfig.model_validate({"kind": "mlp", "dtype": "float64", "seed": seed, "data": {"source": source},
                                    "model": {"hidden": [5, 4], "activation": activation, "loss": loss},
                                    "train": {"grad": "autograd"}})
    return MLP(cfg, data, torch.device("cpu"), torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("loss", ["mse", *CLASSIFYING])
def test_each_losss_hand_written_gradient_equals_autograd(loss, activation):
    for seed in range(3):
        data = two_or_three(loss, seed)
        t = trainer(loss, activation, data, seed)
        g = torch.Generator().manual_seed(100 + seed)
        for scale in (0.5, 3.0):  # small and large outputs: hinge samples on both sides of the margin
            params = {name: (scale * torch.randn(p.shape, generator=g, dtype=torch.float64)).requires_grad_(True)
                      for name, p in t.params().items()}
            batch = {"x": data.x[None], "y": data.y[None]}
            expected = autograd_gradients(t.loss(params, batch), params)
            value, grads = t.manual_backward(params, batch)
            assert torch.allclose(value, t.loss(params, batch).detach(), rtol=1e-14, atol=0)
            for name in params:
                assert torch.allclose(grads[name], expected[name], rtol=1e-10, atol=1e-13), (loss, activation, name)


def test_the_losses_are_the_textbook_formulas():
    g = torch.Generator().manual_seed(0)
    S = torch.randn((1, 7, 3), generator=g, dtype=torch.float64) * 4
    y = torch.tensor([[0, 1, 2, 2, 1, 0, 1]], dtype=torch.float64)
    s, y2 = S[..., :1], (y > 0).to(torch.float64)
    assert LOSSES["cross-entropy"].loss(S, y) == pytest.approx(
        torch.nn.functional.cross_entropy(S[0], y[0].long()).item(), rel=1e-14)
    assert LOSSES["bce"].loss(s, y2) == pytest.approx(
        torch.nn.functional.binary_cross_entropy(torch.sigmoid(s[0, :, 0]), y2[0]).item(), rel=1e-12)
    margins = [max(0.0, 1 - (2 * t - 1) * v) for t, v in zip(y2[0].tolist(), s[0, :, 0].tolist())]
    assert LOSSES["hinge"].loss(s, y2) == pytest.approx(sum(margins) / 7, rel=1e-14)
    big = torch.tensor([[[800.0], [-800.0]]], dtype=torch.float64)  # e^800 overflows float64
    assert LOSSES["bce"].loss(big, torch.tensor([[0.0, 1.0]], dtype=torch.float64)).item() == pytest.approx(800)


@pytest.mark.parametrize("batch", [1, 8, None])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("loss", CLASSIFYING)
def test_bpcli_check_passes_for_every_loss_activation_and_batch_size(loss, activation, batch, write_config, data_for):
    data_for(loss, 24)
    extra = {"batch_size": batch} if batch else {}
    result = cli("check", write_config(yaml(loss, activation, n=24, momentum=0.9, **extra)), "--steps", "3")
    assert result.exit_code == 0, result.output
    assert "agree" in result.stdout


@pytest.mark.parametrize("loss", ["mse", *CLASSIFYING])
def test_a_planted_bug_in_each_output_gradient_fails_check(loss, write_config, data_for, monkeypatch):
    right = LOSSES[loss]
    wrong = dataclasses.replace(right, grad=lambda S, y: right.grad(S, y) * 1.01)  # dL/dS off by 1 %
    monkeypatch.setitem(LOSSES, loss, wrong)
    if loss == "mse":
        config = CONFIGS / "mlp.yaml"  # sin(x)
    else:
        data_for(loss, 24)
        config = write_config(yaml(loss, n=24))
    result = cli("check", config, "--steps", "2", "--device", "cpu")
    assert result.exit_code == 1
    assert "disagrees with autograd at step 1" in result.stderr


# --------------------------------------------------------------------------- training


def test_micrograds_moons_demo_reaches_every_training_point():
    # micrograd's demo: moons (n 100, noise 0.1), MLP 2-16-16-1 with ReLU, hinge loss + 1e-4·Σp²,
    # full-batch SGD, 100 steps: 100 % training accuracy. configs/moons.yaml is this run.
    moons_config = CONFIGS / "moons.yaml"
    config = load_config(moons_config, [Override(path="device", value="cpu", origin="test")])
    assert (config.data.source, config.data.n, config.data.noise) == ("moons", 100, 0.1)
    assert (config.model.hidden, config.model.activation, config.model.loss) == ([16, 16], "relu", "hinge")
    assert (config.train.epochs, config.train.batch_size, config.train.weight_decay) == (100, None, 2e-4)
    result = cli("train", moons_config, "--device", "cpu", "--out", "moons", "--no-plots", "-q")
    assert result.exit_code == 0, result.output
    assert summary("moons")["accuracy"]["train"] == 1.0
    assert summary("moons")["confusion"]["train"] == [[50, 0], [0, 50]]


def test_cross_entropy_tells_three_blobs_apart(write_config, data_is):
    data_is(blobs(150, val=60))
    config = write_config(yaml("cross-entropy", "tanh", "[8]", lr=0.5, epochs=200, log_every=50))
    assert cli("train", config, "--out", "blobs", "--no-plots", "-q").exit_code == 0
    fitted = summary("blobs")
    assert fitted["accuracy"]["train"] >= 0.95 and fitted["accuracy"]["val"] >= 0.95
    assert fitted["task"]["classes"] == ["a", "b", "c"] and fitted["task"]["probabilities"] is True
    rows = list(csv.DictReader(open("blobs/metrics.csv")))
    assert {"accuracy", "val_loss", "val_accuracy"} <= set(rows[-1])


def test_cross_entropy_learns_the_penguins_species_and_draws_its_figures(write_config):
    # real data with text labels: predictions.csv then holds names, which the plots must not read as numbers
    config = write_config(f"kind: mlp\ndevice: cpu\ndata:\n  source: csv\n  path: {CONFIGS / 'data/penguins.csv'}\n"
                          "  target: species\n  standardize: features\n  val_fraction: 0.2\n"
                          "model:\n  hidden: [8]\n  loss: cross-entropy\ntrain:\n  lr: 0.5\n  epochs: 150\n")
    result = cli("train", config, "--out", "penguins", "-q")
    assert result.exit_code == 0, result.output
    fitted = summary("penguins")
    assert fitted["task"]["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert fitted["accuracy"]["train"] >= 0.97 and fitted["accuracy"]["val"] >= 0.97
    assert Path("penguins/loss.png").exists()


@pytest.mark.parametrize("loss", CLASSIFYING)
def test_accuracy_is_what_predictions_csv_says(loss, write_config, data_for):
    data_for(loss, 90, val=30)
    assert cli("train", write_config(yaml(loss, n=90, epochs=40)), "--out", "run", "--no-plots", "-q").exit_code == 0
    rows = list(csv.DictReader(open("run/predictions.csv")))
    fitted = summary("run")
    for split in fitted["accuracy"]:
        mine = [r for r in rows if r["split"] == split]
        classes = [k[2:-1] for k in mine[0] if k.startswith("p[")]
        argmax = [classes[max(range(len(classes)), key=lambda c: float(r[f"p[{classes[c]}]"]))] for r in mine]
        assert argmax == [r["y_pred"] for r in mine]
        right = sum(r["y"] == r["y_pred"] for r in mine)
        assert fitted["accuracy"][split] == right / len(mine)
    last = list(csv.DictReader(open("run/metrics.csv")))[-1]  # step 40: accuracy after its update
    assert float(last["accuracy"]) == fitted["accuracy"]["train"]
    if loss == "bce":  # probabilities of two classes add up to 1
        assert all(float(r["p[0]"]) + float(r["p[1]"]) == pytest.approx(1.0) for r in rows)


@pytest.mark.parametrize("loss", ["hinge", "cross-entropy"])
def test_a_classifiers_sweep_members_equal_their_single_runs(loss, write_config, data_for):
    data_for(loss, 40)
    config = write_config(yaml(loss, n=40, epochs=30))
    assert cli("sweep", config, "--grid", "lr=0.1,0.5", "--grid", "seed=0:2", "--out", "s", "-q").exit_code == 0
    members = list(csv.DictReader(open("s/summary.csv")))
    assert len(members) == 4
    for member in members:
        out = f"one{member['member']}"
        args = ["--lr", member["train.lr"], "--seed", member["seed"], "--out", out, "-q", "--no-plots"]
        assert cli("train", config, *args).exit_code == 0
        single = summary(out)
        assert float(member["final_loss"]) == pytest.approx(single["final_loss"], rel=1e-5)


@pytest.mark.parametrize("loss", CLASSIFYING)
def test_a_classifier_resumes_bit_for_bit(loss, write_config, data_for):
    data_for(loss, 60, val=20)
    config = write_config(yaml(loss, n=60, epochs=60, momentum=0.9, batch_size=16))
    assert cli("train", config, "--epochs", "25", "--out", "cut", "--no-plots", "-q").exit_code == 0
    assert cli("train", "--resume", "cut", "--epochs", "60", "--no-plots", "-q").exit_code == 0
    assert cli("train", config, "--out", "whole", "--no-plots", "-q").exit_code == 0
    assert Path("cut/metrics.csv").read_bytes() == Path("whole/metrics.csv").read_bytes()
    assert summary("cut")["params"] == summary("whole")["params"]
    assert summary("cut")["accuracy"] == summary("whole")["accuracy"]


@pytest.mark.parametrize("loss", CLASSIFYING)
def test_manual_and_autograd_training_stay_together(loss, write_config, data_for):
    data_for(loss, 60)
    for grad in ("manual", "autograd"):
        config = write_config(yaml(loss, n=60, grad=grad, dtype="float64"))
        assert cli("train", config, "--out", grad, "--no-plots", "-q").exit_code == 0
    manual, autograd = summary("manual"), summary("autograd")
    assert manual["final_loss"] == pytest.approx(autograd["final_loss"], rel=1e-9)
    assert manual["accuracy"] == autograd["accuracy"]


# --------------------------------------------------------------------------- refusals and explain


@pytest.mark.parametrize("loss", CLASSIFYING)
def test_a_classification_loss_on_numbers_is_refused_in_one_line(loss, write_config):
    config = write_config(f"kind: mlp\ndevice: cpu\nmodel:\n  loss: {loss}\n")  # the default data: sin(x)
    result = cli("train", config, "--no-plots")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "class labels" in result.stderr and "model.loss: mse" in result.stderr


def test_mse_on_class_labels_is_refused_in_one_line(write_config):
    result = cli("train", write_config("kind: mlp\ndevice: cpu\ndata:\n  source: moons\n"), "--no-plots")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "bce, hinge or cross-entropy" in result.stderr


@pytest.mark.parametrize("loss", ["bce", "hinge"])
def test_one_output_for_three_classes_is_refused_with_the_fix(loss, write_config, data_is):
    data_is(blobs(30))
    result = cli("train", write_config(yaml(loss)), "--no-plots")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "3" in result.stderr and "cross-entropy" in result.stderr


@pytest.mark.parametrize("loss", CLASSIFYING)
def test_explain_shows_a_classifiers_step(loss, write_config, data_for):
    data_for(loss, 20)
    result = cli("explain", write_config(yaml(loss, hidden="[4]", n=20)), "--out", "graph.png")
    assert result.exit_code == 0, result.output
    assert Path("graph.png").exists()
