"""Classification: logistic and softmax against torch's own layers and losses, their
maximum-likelihood optimum, separable data, and a throw-away classifier kind that goes
through everything the shipped kinds do."""

import csv
import json
import math
import sys
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import torch

from bpcli.config import Experiment, load_config
from bpcli.kinds import Kind, register, unregister
from bpcli.kinds.base import HandWrittenSGD, uniform
from bpcli.kinds.logistic import Logistic
from bpcli.kinds.softmax import Softmax
from bpcli.kinds.tasks import Classification, class_names
from bpcli.build import build
from bpcli.section import Section
from conftest import CONFIGS, cli, config

# --------------------------------------------------------------------------- data


def _two_moons(n, noise, seed):
    """micrograd's moons, drawn here: two interleaved half circles, class 0 and class 1."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g, dtype=torch.float64) * math.pi
    label = torch.arange(n) % 2
    x1 = torch.where(label == 0, torch.cos(t), 1 - torch.cos(t))
    x2 = torch.where(label == 0, torch.sin(t), 0.5 - torch.sin(t))
    x = torch.stack([x1, x2], 1) + noise * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return x, label


def _blobs(n, classes, seed, spread=1.0):
    """`classes` Gaussian blobs in the plane, centred on a circle, overlapping."""
    g = torch.Generator().manual_seed(seed)
    label = torch.arange(n) % classes
    angle = 2 * math.pi * label.to(torch.float64) / classes
    centres = torch.stack([torch.cos(angle), torch.sin(angle)], 1) * 1.5
    return centres + spread * torch.randn(n, 2, generator=g, dtype=torch.float64), label


def _write_csv(path, x, label):
    with open(path, "w") as f:
        f.write("x1,x2,label\n")
        for (a, b), c in zip(x.tolist(), label.tolist()):
            f.write(f"{a!r},{b!r},{c}\n")
    return path


@pytest.fixture
def moons(write_config, tmp_path):
    """A logistic config on 100 noisy moons (not separable), float64."""
    _write_csv(tmp_path / "moons.csv", *_two_moons(100, 0.3, 0))
    return write_config("kind: logistic\ndevice: cpu\ndtype: float64\n"
                        "data: {source: csv, path: moons.csv, target: label}\n"
                        "train: {lr: 1.0, epochs: 400, log_every: 50}\n", "logistic.yaml")


@pytest.fixture
def blobs(write_config, tmp_path):
    """A softmax config on 90 samples of three overlapping blobs, float64."""
    _write_csv(tmp_path / "blobs.csv", *_blobs(90, 3, 1))
    return write_config("kind: softmax\ndevice: cpu\ndtype: float64\n"
                        "data: {source: csv, path: blobs.csv, target: label}\n"
                        "train: {lr: 1.0, epochs: 400, log_every: 50}\n", "softmax.yaml")


def summary(run):
    return json.loads((Path(run) / "summary.json").read_text())


def rows(run):
    return list(csv.DictReader(open(Path(run) / "metrics.csv")))


# --------------------------------------------------------------------------- torch's own steps


@pytest.mark.parametrize("grad", ["manual", "autograd"])
def test_logistic_takes_the_steps_of_nn_linear_with_bce_with_logits_and_sgd(moons, grad):
    trainer = build(load_config(moons, _set(train__grad=grad, train__lr=0.8))).trainer
    x, y = trainer.x[0], trainer.y[0]
    layer = torch.nn.Linear(2, 1, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(trainer.params()["w"].detach())
        layer.bias.copy_(trainer.params()["b"].detach())
    sgd = torch.optim.SGD(layer.parameters(), lr=0.8)
    worst = 0.0
    for _ in range(300):
        loss = torch.nn.BCEWithLogitsLoss()(layer(x)[:, 0], y)
        sgd.zero_grad()
        loss.backward()
        sgd.step()
        ours = trainer.step(0)
        assert float(ours) == pytest.approx(float(loss.detach()), rel=1e-12)
        worst = max(worst, float((trainer.params()["w"][0].detach() - layer.weight[0].detach()).abs().max()),
                    float((trainer.params()["b"][0].detach() - layer.bias[0].detach()).abs()))
    assert worst < 1e-6
    assert worst < 1e-12  # in fact: the same steps, to rounding


@pytest.mark.parametrize("grad", ["manual", "autograd"])
def test_softmax_takes_the_steps_of_nn_linear_with_cross_entropy_and_sgd(blobs, grad):
    trainer = build(load_config(blobs, _set(train__grad=grad))).trainer
    x, y = trainer.x[0], trainer.y[0].long()
    layer = torch.nn.Linear(2, 3, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(trainer.params()["W"][0].detach())
        layer.bias.copy_(trainer.params()["b"][0].detach())
    sgd = torch.optim.SGD(layer.parameters(), lr=1.0)
    worst = 0.0
    for _ in range(300):
        loss = torch.nn.CrossEntropyLoss()(layer(x), y)
        sgd.zero_grad()
        loss.backward()
        sgd.step()
        assert float(trainer.step(0)) == pytest.approx(float(loss.detach()), rel=1e-12)
        worst = max(worst, float((trainer.params()["W"][0].detach() - layer.weight.detach()).abs().max()),
                    float((trainer.params()["b"][0].detach() - layer.bias.detach()).abs().max()))
    assert worst < 1e-12


def _set(**changes):
    from bpcli.config import Override

    return [Override(path=k.replace("__", "."), value=v, origin="test") for k, v in changes.items()]


# --------------------------------------------------------------------------- the optimum


def test_logistic_reaches_the_newton_optimum(moons):
    result = cli("train", moons, "--epochs", "4000", "--lr", "4", "--out", "run", "-q", "--no-plots")
    assert result.exit_code == 0, result.output
    done = summary("run")
    assert done["optimum_solved"]["method"] == "the maximum-likelihood solution (Newton's method)"
    assert done["distance_to_optimum"] < 1e-6
    assert done["final_loss"] == pytest.approx(done["optimum"]["loss"], rel=1e-12)
    assert "distance_to_optimum" in rows("run")[0]
    # The optimum is one, independently of the solver: torch's own loss is flat there.
    x, y = _two_moons(100, 0.3, 0)
    layer = torch.nn.Linear(2, 1, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([done["optimum"]["w"]], dtype=torch.float64))
        layer.bias.copy_(torch.tensor(done["optimum"]["b"], dtype=torch.float64))
    torch.nn.BCEWithLogitsLoss()(layer(x)[:, 0], y.to(torch.float64)).backward()
    assert float(layer.weight.grad.abs().max()) < 1e-12 and float(layer.bias.grad.abs().max()) < 1e-12


def test_the_optimum_of_standardised_data_is_in_the_models_units(write_config, tmp_path):
    x, label = _two_moons(100, 0.3, 0)
    _write_csv(tmp_path / "scaled.csv", x * torch.tensor([100.0, 0.01]) + torch.tensor([5.0, -3.0]), label)
    config = write_config("kind: logistic\ndevice: cpu\ndtype: float64\n"
                          "data: {source: csv, path: scaled.csv, target: label, standardize: features}\n"
                          "train: {lr: 4.0, epochs: 3000, log_every: 500}\n")
    assert cli("train", config, "--out", "run", "-q", "--no-plots").exit_code == 0
    done = summary("run")
    assert done["distance_to_optimum"] < 1e-6
    # The unscaled data's optimum, in the data's units: w scaled by 1/100 and 100 (to the rounding of x).
    assert done["optimum_original_units"]["w"] == pytest.approx([1.2587586141727 / 100, -3.8105529975045 * 100],
                                                                 rel=1e-6)
    assert done["params_original_units"]["w"] == pytest.approx(done["optimum_original_units"]["w"], rel=1e-9)


def test_softmax_reports_the_optimum_gradient_descent_approaches(blobs):
    result = cli("train", blobs, "--epochs", "3000", "--lr", "3", "--out", "run", "-q", "--no-plots")
    assert result.exit_code == 0, result.output
    done = summary("run")
    assert done["distance_to_optimum"] < 1e-6  # the one with the start's Σ_c W_c, Σ_c b_c
    start = done["initial_params"]
    best = done["optimum"]
    assert sum(best["b"]) == pytest.approx(sum(start["b"]), abs=1e-12)
    w_sums = [sum(best["W"][c * 2 + j] for c in range(3)) for j in range(2)]
    assert w_sums == pytest.approx([sum(start["W"][c * 2 + j] for c in range(3)) for j in range(2)], abs=1e-12)


def test_separable_classes_have_no_optimum_and_the_run_is_not_diverged(write_config, tmp_path):
    x, label = _blobs(60, 2, 3, spread=0.2)  # two tight blobs far apart
    _write_csv(tmp_path / "apart.csv", x, label)
    config = write_config("kind: logistic\ndevice: cpu\ndtype: float64\n"
                          "data: {source: csv, path: apart.csv, target: label}\n"
                          "train: {lr: 5.0, epochs: 2000, log_every: 100}\n")
    result = cli("train", config, "--out", "run", "--no-plots")
    assert result.exit_code == 0, result.output
    done = summary("run")
    assert done["status"] == "completed" and "divergence" not in done
    assert "linearly separable" in done["no_optimum"] and "grow without bound" in done["no_optimum"]
    assert "optimum" not in done and "distance_to_optimum" not in rows("run")[0]
    assert "linearly separable" in result.stdout  # the console says so too
    logged = rows("run")
    losses = [float(r["loss"]) for r in logged]
    assert losses == sorted(losses, reverse=True) and losses[-1] < 1e-2  # the loss falls toward 0 …
    norms = [math.hypot(float(r["w[0]"]), float(r["w[1]"])) for r in logged]
    assert norms == sorted(norms) and norms[-1] > 1.2 * norms[2]  # … as the weights keep growing
    assert done["accuracy"]["train"] == 1.0


def test_classes_that_touch_on_a_line_have_no_optimum_but_an_outlier_does_not_count():
    from bpcli import likelihood
    from bpcli.data.dataset import Dataset

    x = torch.tensor([[-2.0], [-1.0], [0.0], [0.0], [1.0], [2.0]], dtype=torch.float64)
    touching = Dataset(x, torch.tensor([0, 0, 0, 1, 1, 1], dtype=torch.float64), None)  # both classes at x = 0
    assert "quasi-complete separation" in likelihood.logistic_optimum(touching, bias=True)
    # Overlapping classes with one sample so far out that σ rounds to 1 there: a finite optimum.
    x = torch.tensor([[-2.0], [-1.0], [0.0], [0.5], [1.0], [2.0], [1000.0]], dtype=torch.float64)
    outlier = Dataset(x, torch.tensor([0, 1, 0, 1, 0, 1, 1], dtype=torch.float64), None)
    best = likelihood.logistic_optimum(outlier, bias=True)
    layer = torch.nn.Linear(1, 1, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.fill_(best.params["w"][0])
        layer.bias.fill_(best.params["b"][0])
    torch.nn.BCEWithLogitsLoss()(layer(x)[:, 0], outlier.y).backward()
    assert float(layer.weight.grad.abs()) < 1e-14 and float(layer.bias.grad.abs()) < 1e-14


def test_logistic_refuses_more_than_two_classes_in_one_line(write_config):
    from conftest import CONFIGS

    path = write_config(f"kind: logistic\ndevice: cpu\ndata: {{source: csv, path: {CONFIGS / 'data/penguins.csv'}, "
                        "target: species, standardize: features}\n")
    result = cli("train", path, "--out", "run", "-q")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "the target has 3 (Adelie, Chinstrap, Gentoo); use kind: softmax" in result.stderr
    assert not Path("run").exists()


def test_stable_lr_is_an_upper_bound_on_the_curvature(moons):
    config = load_config(moons)
    built = build(config)
    bound = built.trainer.task.stable_lr(built.data, config.train)
    a = torch.cat([built.data.x, torch.ones(100, 1, dtype=torch.float64)], 1)
    assert bound.scope == "upper bound"
    assert bound.lr == pytest.approx(8 * 100 / float(torch.linalg.eigvalsh(a.T @ a)[-1]), rel=1e-10)
    # Below it the loss falls at every step, whatever the start; for Adam no bound is claimed.
    trainer = build(load_config(moons, _set(train__lr=0.99 * bound.lr, model__init_w=-5.0))).trainer
    losses = [float(trainer.step(0)) for _ in range(200)]
    assert all(b <= a for a, b in zip(losses, losses[1:]))
    adam = load_config(moons, _set(train__optimizer="adam"))
    assert built.trainer.task.stable_lr(built.data, adam.train).lr is None


@pytest.mark.parametrize("name", ["logistic.yaml", "logistic-gauss.yaml", "logistic-circles.yaml", "softmax.yaml"])
def test_the_shipped_classifier_configs(name):
    from bpcli.lifecycle import train

    done = train(config(name), "run", plots=False).summary
    assert done["status"] == "completed"
    accuracy = done["accuracy"]
    if name == "logistic.yaml":  # the moons: a line gets 87 %, at the maximum-likelihood optimum
        assert accuracy["train"] == pytest.approx(0.87) and done["distance_to_optimum"] < 1e-4
    elif name == "logistic-gauss.yaml":  # two blobs apart: separable, no optimum
        assert accuracy["train"] == 1.0 and "linearly separable" in done["no_optimum"]
    elif name == "logistic-circles.yaml":  # a line cannot classify circles
        assert accuracy["train"] < 0.6 and done["distance_to_optimum"] < 1e-4
    else:  # penguins: three species from four measurements, a fifth held out
        assert done["task"]["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
        assert accuracy["train"] > 0.98 and accuracy["val"] > 0.95


# --------------------------------------------------------------------------- everything else a kind does


@pytest.mark.parametrize("optimizer", [[], ["--set", "train.momentum=0.9"], ["--set", "train.optimizer=adam",
                                                                              "--lr", "0.05"]])
@pytest.mark.parametrize("config", ["moons", "blobs"])
def test_every_optimizer_trains_a_classifier(config, optimizer, request):
    path = request.getfixturevalue(config)
    result = cli("train", path, *optimizer, "--out", "run", "-q", "--no-plots")
    assert result.exit_code == 0, result.output
    done = summary("run")
    logged = rows("run")
    assert float(logged[-1]["loss"]) < 0.8 * float(logged[0]["loss"])
    assert done["accuracy"]["train"] > (0.75 if config == "moons" else 0.6)


@pytest.mark.parametrize("config", ["moons", "blobs"])
def test_a_classifier_sweep_member_is_its_single_run(config, request):
    path = request.getfixturevalue(config)
    assert cli("sweep", path, "--grid", "lr=0.3,1.0", "--grid", "seed=0:2", "--out", "s", "-q").exit_code == 0
    members = list(csv.DictReader(open("s/summary.csv")))
    assert len(members) == 4
    for member in members[::3]:
        args = ["--lr", member["train.lr"], "--seed", member["seed"], "--out", f"one{member['member']}", "-q"]
        assert cli("train", path, *args, "--no-plots").exit_code == 0
        assert float(member["final_loss"]) == pytest.approx(summary(f"one{member['member']}")["final_loss"],
                                                            rel=1e-12)


@pytest.mark.parametrize("config", ["moons", "blobs"])
@pytest.mark.parametrize("batch", [[], ["--set", "train.batch_size=16"]])
def test_a_classifier_resumes_bit_for_bit_and_reruns(config, batch, request):
    path = request.getfixturevalue(config)
    assert cli("train", path, *batch, "--epochs", "150", "--out", "cut", "--no-plots", "-q").exit_code == 0
    assert cli("train", "--resume", "cut", "--epochs", "400", "--no-plots", "-q").exit_code == 0
    assert cli("train", path, *batch, "--out", "whole", "--no-plots", "-q").exit_code == 0
    assert Path("cut/metrics.csv").read_bytes() == Path("whole/metrics.csv").read_bytes()
    assert summary("cut")["params"] == summary("whole")["params"]
    assert "accuracy" in rows("whole")[0]
    result = cli("rerun", "whole", "--verify")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("config", ["moons", "blobs"])
@pytest.mark.parametrize("batch", ["1", "16", "null"])
def test_check_verifies_the_classifiers_gradients(config, batch, request):
    result = cli("check", request.getfixturevalue(config), "--steps", "3", "--set", f"train.batch_size={batch}")
    assert result.exit_code == 0, result.output
    assert "manual and autograd agree" in result.stdout


@pytest.mark.parametrize("config,kind,name", [("moons", Logistic, "w"), ("moons", Logistic, "b"),
                                              ("blobs", Softmax, "W"), ("blobs", Softmax, "b")])
def test_a_planted_bug_in_a_classifier_gradient_is_caught(config, kind, name, request, monkeypatch):
    right = kind.manual_backward

    def wrong(self, params, batch):  # one gradient off by 1 %
        loss, grads = right(self, params, batch)
        return loss, {**grads, name: grads[name] * 1.01}

    monkeypatch.setattr(kind, "manual_backward", wrong)
    result = cli("check", request.getfixturevalue(config), "--steps", "2")
    assert result.exit_code == 1
    assert f"the hand-derived gradient of {name} disagrees with autograd at step 1" in result.stderr


@pytest.mark.skipif(sys.platform != "linux", reason="torchrun jobs are tested on Linux")
@pytest.mark.parametrize("config", ["moons", "blobs"])
def test_two_torchrun_processes_give_the_single_process_classifier(config, request):
    from test_distributed import torchrun

    args = [request.getfixturevalue(config), "--epochs", "200", "--no-plots", "-q"]
    job = torchrun("train", *args, "--out", "two")
    assert job.returncode == 0, job.stderr[-2000:]
    assert cli("train", *args, "--out", "one").exit_code == 0
    two, one = summary("two"), summary("one")
    assert two["processes"] == 2
    for name, values in one["params"].items():
        assert two["params"][name] == pytest.approx(values, abs=1e-10)
    assert two["accuracy"] == one["accuracy"] and two["distance_to_optimum"] < 1


def test_explain_shows_the_sigmoid_and_its_local_derivative(write_config):
    from bpcli.explain import explain_config

    Path("five.csv").write_text("x,label\n-2.0,0\n-1.0,0\n0.5,1\n1.0,0\n3.0,1\n")
    config = write_config("kind: logistic\ndevice: cpu\ndata: {source: csv, path: five.csv, target: label}\n"
                          "model: {init_w: 0.5, init_b: 0.1}\ntrain: {lr: 0.5, epochs: 10}\n")
    graph = explain_config(load_config(config), sample=2)
    sigmoid = next(n for n in graph.nodes if n.op == "sigmoid")
    p = 1 / (1 + math.exp(-(0.5 * 0.5 + 0.1)))  # σ(w·x + b) at sample 2
    assert sigmoid.value == pytest.approx(p, rel=1e-6)
    (edge,) = [e for e in graph.edges if e.dst == sigmoid.id]
    assert edge.local == pytest.approx(p * (1 - p), rel=1e-6)  # σ(1 − σ)
    # The update explain shows is the one training takes.
    for u in graph.update:
        assert u["before"] - u["lr"] * u["grad"] == pytest.approx(u["after"], rel=1e-6)
    result = cli("explain", config, "--sample", "2", "--out", "g.png")
    assert result.exit_code == 0 and "sigmoid(v3)" in result.stdout and Path("g.png").exists()


def test_explain_falls_back_to_the_training_loss_once_the_sigmoid_rounds(write_config):
    from bpcli.explain import explain_config

    Path("five.csv").write_text("x,label\n-2.0,0\n-1.0,0\n0.5,1\n1.0,0\n3.0,1\n")
    config = write_config("kind: logistic\ndevice: cpu\ndata: {source: csv, path: five.csv, target: label}\n"
                          "model: {init_w: 100.0, init_b: 0.0}\ntrain: {lr: 0.5, epochs: 10}\n")
    graph = explain_config(load_config(config), sample=4)  # z = 300: σ(z) is 1 in float32, log(1 − σ) is −inf
    assert not any(n.op == "sigmoid" for n in graph.nodes) and any(n.op == "log1p" for n in graph.nodes)
    loss = graph.nodes[graph.loss].value
    assert loss == pytest.approx(100 / 5, rel=1e-6)  # sample 3 (x = 1, class 0) costs softplus(100) = 100


# --------------------------------------------------------------------------- a throw-away classifier kind


class HingeModel(Section):
    """The score s = a·x + c of a one-feature linear classifier."""

    init_a: float | None = None
    """Starting value of a; null draws it from U[0, 1)."""


class HingeConfig(Experiment):
    """A linear classifier on one feature with the hinge loss mean(relu(1 − t·s)), t = ±1."""

    kind: Literal["hinge"]
    """The experiment kind."""
    model: HingeModel
    """Initial parameters."""

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "data": {"source": "csv", "path": "hinge.csv", "target": "label"},
        "model": {},
        "train": {"lr": 0.1, "epochs": 200, "log_every": 10, "grad": "manual"},
    }

    @property
    def classifies(self) -> bool:
        return True


class Hinge(HandWrittenSGD):
    least_squares = None

    def __init__(self, cfg, data, device, generator):
        a, c = uniform((1,), generator, data.x.dtype), uniform((1,), generator, data.x.dtype)
        if cfg.model.init_a is not None:
            a.fill_(cfg.model.init_a)
        self._manual = cfg.train.grad == "manual"
        self._params = {n: p.to(device).requires_grad_(not self._manual) for n, p in (("a", a), ("c", c))}
        self._grads = {n: torch.zeros_like(p) for n, p in self._params.items()}
        self.x, self.y = data.x[:, 0].to(device)[None], data.y.to(device)[None]  # (K, N)
        self._train_with(cfg)
        self.task = Classification(classes=class_names(data), loss_name="mean hinge loss", probabilities=False)

    def loss(self, params, batch):
        s = params["a"][:, None] * batch["x"] + params["c"][:, None]
        return torch.relu(1 - (2 * batch["y"] - 1) * s).mean(-1)

    def manual_backward(self, params, batch):
        t = 2 * batch["y"] - 1  # t = ±1
        s = params["a"].detach()[:, None] * batch["x"] + params["c"].detach()[:, None]
        active = (1 - t * s > 0).to(s.dtype)  # where the margin is under 1
        # dL/da = −mean([1 − t·s > 0]·t·x),  dL/dc = −mean([1 − t·s > 0]·t)
        return torch.relu(1 - t * s).mean(-1), {"a": -(active * t * batch["x"]).mean(-1), "c": -(active * t).mean(-1)}

    def predict(self, x):
        s = self._params["a"].detach()[:, None] * x.to(self.x.device)[None, :, 0] + self._params["c"].detach()[:, None]
        return torch.stack([-s, s], dim=-1)  # scores of class 0 and class 1


KIND = Kind("hinge", HingeConfig, Hinge)


HINGE_X = [-2.0, -1.5, -1.0, -0.2, 0.3, 0.1, 1.0, 1.4, 2.0, 2.5]
HINGE_Y = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]


@pytest.fixture
def hinge(write_config):
    Path("hinge.csv").write_text("x,label\n" + "".join(f"{x},{y}\n" for x, y in zip(HINGE_X, HINGE_Y)))
    register(KIND)  # the one registry line
    yield write_config("kind: hinge\ndevice: cpu\n", "hinge.yaml")
    unregister("hinge")


def test_a_registered_classifier_trains_and_reports_its_accuracy(hinge):
    result = cli("train", hinge, "--out", "h", "-q")
    assert result.exit_code == 0, result.output
    done = summary("h")
    assert done["task"]["type"] == "classification" and done["task"]["loss"] == "mean hinge loss"
    assert {"loss", "params"} <= set(done["task"]["figures"])
    assert {"loss.png", "params.png", "metrics.csv", "predictions.csv"} <= {p.name for p in Path("h").iterdir()}
    # Accuracy, independently: from predictions.csv's classes, and from the final parameters.
    predicted = list(csv.DictReader(open("h/predictions.csv")))
    assert len(predicted) == 10
    from_file = sum(r["y"] == r["y_pred"] for r in predicted) / len(predicted)
    a, c = done["params"]["a"][0], done["params"]["c"][0]
    by_hand = sum((a * x + c > 0) == (y == 1) for x, y in zip(HINGE_X, HINGE_Y)) / len(HINGE_X)
    assert done["accuracy"]["train"] == pytest.approx(from_file) == pytest.approx(by_hand)
    assert from_file == 0.9  # the one sample on the wrong side (x = 0.3, class 0) stays wrong
    assert float(rows("h")[-1]["accuracy"]) == pytest.approx(from_file)
    confusion = done["confusion"]["train"]
    assert sum(map(sum, confusion)) == 10 and confusion[0][0] + confusion[1][1] == 9


def test_a_registered_classifier_sweeps_resumes_and_is_checked(hinge):
    assert cli("sweep", hinge, "--grid", "lr=0.05,0.1", "--out", "s", "-q").exit_code == 0
    member = list(csv.DictReader(open("s/summary.csv")))[1]
    assert cli("train", hinge, "--lr", member["train.lr"], "--out", "one", "-q", "--no-plots").exit_code == 0
    assert float(member["a"]) == pytest.approx(summary("one")["params"]["a"][0], rel=1e-6)
    assert cli("train", hinge, "--epochs", "70", "--out", "cut", "--no-plots", "-q").exit_code == 0
    assert cli("train", "--resume", "cut", "--epochs", "200", "--no-plots", "-q").exit_code == 0
    assert cli("train", hinge, "--out", "whole", "--no-plots", "-q").exit_code == 0
    assert Path("cut/metrics.csv").read_bytes() == Path("whole/metrics.csv").read_bytes()
    result = cli("check", hinge, "--steps", "3")
    assert result.exit_code == 0 and "agree" in result.stdout


def test_a_classifier_predicts_a_class_with_its_probability():
    result = cli("train", CONFIGS / "softmax.yaml", "--epochs", "100", "--set", "predict=[[40,18,190,3700],[50,15,220,5500]]",
                 "--out", "run", "--no-plots")
    assert result.exit_code == 0, result.output
    predictions = json.loads(Path("run/summary.json").read_text())["predictions"]
    assert [p["y_pred"] for p in predictions] == ["Adelie", "Gentoo"]  # a small-billed light bird, a large heavy one
    for p in predictions:
        assert sum(p["p"]) == pytest.approx(1.0, abs=1e-6) and max(p["p"]) > 0.5
    assert "class at x = (40, 18, 190, …)" in result.stdout and "Adelie (p 0." in result.stdout


@pytest.mark.parametrize("name, lr", [("logistic.yaml", "1e3"), ("moons.yaml", "1e3"), ("logistic.yaml", "300")])
def test_a_run_whose_loss_ends_above_its_start_says_so(name, lr):
    # A cross-entropy can bounce far above its start without overflowing: not diverged, but not learning.
    result = cli("train", CONFIGS / name, "--lr", lr, "--out", "run", "--no-plots")
    assert result.exit_code == 0, result.output
    summary = json.loads(Path("run/summary.json").read_text())
    warning = next(w for w in summary["warnings"] if w.startswith("the loss ended above where it started"))
    assert f"the learning rate {float(lr):g}" in warning and "warning: the loss ended above" in result.stdout
    ok = cli("train", CONFIGS / name, "--out", "ok", "--no-plots", "-q")
    assert ok.exit_code == 0 and not any("ended above" in w for w in
                                         json.loads(Path("ok/summary.json").read_text()).get("warnings", []))


def test_damaged_classifier_files_are_refused_before_a_figure_is_drawn():
    assert cli("train", CONFIGS / "logistic.yaml", "--epochs", "20", "--out", "run", "-q").exit_code == 0
    for name, damage in (("boundary.csv", lambda t: t[: len(t) // 3]),
                         ("boundary.csv", lambda t: "\n".join(",".join(r.split(",")[:3]) for r in t.splitlines())),
                         ("predictions.csv", lambda t: "\n".join(",".join(r.split(",")[:4]) for r in t.splitlines()))):
        path = Path("run") / name
        good = path.read_text()
        path.write_text(damage(good))
        before = Path("run/boundary.png").read_bytes()
        result = cli("plot", "run")
        assert result.exit_code == 2 and result.stderr.startswith(f"error: run/{name}: "), result.output
        assert Path("run/boundary.png").read_bytes() == before
        path.write_text(good)
