"""A kind is one file and one registry line: a throw-away kind, written here, goes through
everything the shipped kinds do (train, sweep, checkpoint and resume, check, config). And a
kind's one trainer class trains a single run or a sweep's K members (nn-linear's too)."""

import csv
import json
from pathlib import Path
from typing import Any, ClassVar, Literal

import pytest
import torch

from bpcli.config import Experiment
from bpcli.kinds import KINDS, Kind, register, unregister
from bpcli.kinds.base import HandWrittenSGD, batch_index, uniform
from bpcli.kinds.nn_linear import NNLinear
from bpcli.lifecycle import build
from bpcli.optimizers import Optimizer
from bpcli.section import Section
from conftest import cli, config

# --------------------------------------------------------------------------- the whole kind


class QuadraticModel(Section):
    """The coefficients of y = a·x² + b."""

    init_a: float | None = None
    """Starting value of a; null draws it from U[0, 1)."""


class QuadraticConfig(Experiment):
    """y = a·x² + b by full-batch gradient descent."""

    kind: Literal["quadratic"]
    """The experiment kind."""
    model: QuadraticModel
    """Initial parameters."""

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "data": {"source": "function", "fn": "square", "n": 40, "noise": 0.0, "x_low": -1.0, "x_high": 1.0},
        "model": {},
        "train": {"lr": 0.5, "epochs": 300, "log_every": 25, "grad": "manual"},
    }


class Quadratic(HandWrittenSGD):
    least_squares = None

    def __init__(self, cfg, data, device, generator):
        a, b = uniform((1,), generator, data.x.dtype), uniform((1,), generator, data.x.dtype)
        if cfg.model.init_a is not None:
            a.fill_(cfg.model.init_a)
        self._manual = cfg.train.grad == "manual"
        self._params = {n: p.to(device).requires_grad_(not self._manual) for n, p in (("a", a), ("b", b))}
        self._grads = {n: torch.zeros_like(p) for n, p in self._params.items()}
        self.x, self.y = data.x[:, 0].to(device)[None], data.y.to(device)[None]  # (K, N)
        self._train_with(cfg)  # batches and optimizer from cfg.train

    def loss(self, params, batch):
        return (params["a"][:, None] * batch["x"] ** 2 + params["b"][:, None] - batch["y"]).pow(2).mean(-1)

    def manual_backward(self, params, batch):
        x2 = batch["x"] ** 2
        r = params["a"].detach()[:, None] * x2 + params["b"].detach()[:, None] - batch["y"]  # r = a·x² + b − y
        # dL/da = 2·mean(r·x²),  dL/db = 2·mean(r)
        return r.pow(2).mean(-1), {"a": 2 * (r * x2).mean(-1), "b": 2 * r.mean(-1)}

    def predict(self, x):
        return self._params["a"].detach()[:, None] * x.to(self.x.device)[None, :, 0] ** 2 + self._params["b"].detach()[:, None]


KIND = Kind("quadratic", QuadraticConfig, Quadratic)

# --------------------------------------------------------------------------- the tests


@pytest.fixture
def quadratic(write_config):
    register(KIND)  # the one registry line
    yield write_config("kind: quadratic\ndevice: cpu\n", "quadratic.yaml")
    unregister("quadratic")


def summary(run):
    return json.loads((Path(run) / "summary.json").read_text())


def test_a_registered_kind_trains_and_fits_its_curve(quadratic):
    result = cli("train", quadratic, "--out", "q", "-q")
    assert result.exit_code == 0, result.output
    fitted = summary("q")
    assert fitted["status"] == "completed" and fitted["kind"] == "quadratic"
    assert fitted["params"]["a"][0] == pytest.approx(1.0, abs=1e-3)  # the data are y = x²
    assert fitted["params"]["b"][0] == pytest.approx(0.0, abs=1e-3)
    assert {"loss.png", "fit.png", "params.png", "metrics.csv"} <= {p.name for p in Path("q").iterdir()}
    assert "kind: quadratic" in cli("config", quadratic).stdout


def test_a_registered_kind_sweeps_each_member_as_its_single_run(quadratic):
    assert cli("sweep", quadratic, "--grid", "lr=0.1,0.5", "--grid", "seed=0:2", "--out", "s", "-q").exit_code == 0
    members = list(csv.DictReader(open("s/summary.csv")))
    assert len(members) == 4
    for member in members:
        args = ["--lr", member["train.lr"], "--seed", member["seed"], "--out", f"one{member['member']}", "-q"]
        assert cli("train", quadratic, *args, "--no-plots").exit_code == 0
        single = summary(f"one{member['member']}")
        assert float(member["a"]) == pytest.approx(single["params"]["a"][0], rel=1e-5)
        assert float(member["final_loss"]) == pytest.approx(single["final_loss"], rel=1e-4)


def test_a_registered_kind_checkpoints_and_resumes_bit_for_bit(quadratic):
    assert cli("train", quadratic, "--epochs", "120", "--out", "cut", "--no-plots", "-q").exit_code == 0
    assert cli("train", "--resume", "cut", "--epochs", "300", "--no-plots", "-q").exit_code == 0
    assert cli("train", quadratic, "--out", "whole", "--no-plots", "-q").exit_code == 0
    assert Path("cut/metrics.csv").read_bytes() == Path("whole/metrics.csv").read_bytes()
    assert summary("cut")["params"] == summary("whole")["params"]


def test_bpcli_check_verifies_a_registered_kinds_formulas(quadratic):
    result = cli("check", quadratic, "--steps", "3")
    assert result.exit_code == 0, result.output
    assert "agree" in result.stdout


def test_a_kind_with_a_wrong_formula_is_caught_by_check(quadratic, monkeypatch):
    right = Quadratic.manual_backward

    def wrong(self, params, batch):  # dL/da off by 1 %
        loss, grads = right(self, params, batch)
        return loss, {"a": grads["a"] * 1.01, "b": grads["b"]}

    monkeypatch.setattr(Quadratic, "manual_backward", wrong)
    result = cli("check", quadratic, "--steps", "2")
    assert result.exit_code == 1
    assert "the hand-derived gradient of a disagrees with autograd at step 1" in result.stderr


def test_unregistering_removes_the_kind(quadratic):
    unregister("quadratic")
    assert "quadratic" not in KINDS
    result = cli("train", quadratic)
    assert result.exit_code == 2 and "unknown kind 'quadratic'" in result.stderr


# --------------------------------------------------------------------------- nn-linear: one class for K ≥ 1 members

MEMBERS = [  # each its own rule and settings, as a sweep over them gives
    {"train__lr": 0.01},
    {"train__lr": 0.02, "train__momentum": 0.9, "train__nesterov": True, "seed": 1},
    {"train__lr": 0.02, "train__schedule": "cosine", "train__warmup": 5},
    {"train__optimizer": "adam", "train__lr": 0.05, "seed": 2},
    {"train__optimizer": "adamw", "train__lr": 0.03, "train__weight_decay": 0.1},
    {"train__optimizer": "rmsprop", "train__lr": 0.01, "train__momentum": 0.5, "train__centered": True},
    {"train__optimizer": "adagrad", "train__lr": 0.1, "train__lr_decay": 0.01, "seed": 3},
]


def nn_linear(**changes):
    """A single nn-linear run's trainer, built on the CPU."""
    return build(config("exp3.yaml", train__epochs=60, **changes)).trainer


@pytest.mark.parametrize("settings", [{"train__grad": "autograd"}, {"train__grad": "manual"},
                                      {"train__batch_size": 10, "model__bias": False}], ids=str)
def test_nn_linear_members_step_as_their_single_runs(settings):
    """K members side by side (bpcli's rules) take the steps of K single runs (torch.optim's
    own classes), every rule with its own settings, lr and schedule."""
    singles = [nn_linear(dtype="float64", **settings, **member) for member in MEMBERS]
    stacked = NNLinear.stack([nn_linear(dtype="float64", **settings, **member) for member in MEMBERS],
                             torch.device("cpu"))
    assert stacked.members == len(MEMBERS) and isinstance(stacked.optimizer, Optimizer)
    shapes = {"w": (len(MEMBERS), 1, singles[0].x.shape[-1]), "b": (len(MEMBERS), 1)}  # (K, 1, F), (K, 1)
    assert {name: p.shape for name, p in stacked.params().items()} == {n: shapes[n] for n in singles[0].params()}
    for step in range(1, 61):
        losses = stacked.step(batch_index(stacked, step))
        for k, single in enumerate(singles):
            assert losses[k] == pytest.approx(single.step(batch_index(single, step)).item(), rel=1e-12), (k, step)
    for k, single in enumerate(singles):
        for name, p in single.params().items():
            assert torch.allclose(stacked.params()[name][k], p.detach()[0], rtol=1e-10, atol=0), (k, name)
            assert torch.allclose(stacked.gradients()[name][k], single.gradients()[name][0], rtol=1e-8, atol=1e-14)
    x = torch.linspace(0, 1, 5, dtype=torch.float64)[:, None]
    assert torch.allclose(stacked.predict(x), torch.cat([s.predict(x) for s in singles]), rtol=1e-10)


@pytest.mark.parametrize("grad", ["autograd", "manual"])
def test_a_stack_of_one_nn_linear_member_is_the_single_run_bit_for_bit(grad):
    """One member, stacked or not, is the article's loop: nn.Linear, nn.MSELoss, optim.SGD."""
    single = nn_linear(train__grad=grad, train__momentum=0.9)
    alone = NNLinear.stack([nn_linear(train__grad=grad, train__momentum=0.9)], torch.device("cpu"))
    assert alone.members == 1 and isinstance(alone.model, torch.nn.Linear)
    assert type(alone.optimizer) is torch.optim.SGD
    for index in range(60):
        assert torch.equal(alone.step(index), single.step(index))
    for name, p in single.params().items():
        assert torch.equal(alone.params()[name], p)
    assert torch.equal(alone.predict(single.x[0]), single.predict(single.x[0]))


def test_nn_linear_members_resume_bit_for_bit():
    """K members' state (parameters, each rule's moments, the schedules' lr) restores exactly."""
    stacked = NNLinear.stack([nn_linear(**member) for member in MEMBERS], torch.device("cpu"))
    for index in range(20):
        stacked.step(index)
    state = stacked.state_dict()
    ahead = [stacked.step(index).clone() for index in range(20, 40)]
    stacked.load_state_dict(state)
    assert all(torch.equal(stacked.step(index), loss) for index, loss in zip(range(20, 40), ahead))
