"""Every hand-derived gradient, on every branch, against autograd (issue 20 §6).

The cases are generated from the registries: every kind of KINDS, every activation and loss
of the mlp's ACTIVATIONS and LOSSES, with and without a bias where a kind has model.bias,
and each batch-size class: one sample, a mini-batch between 1 and N, and the full batch
(for linear-gd, its precomputed S·θ − c fast path). A new kind, activation or loss is a new
case without a new line here; a kind this file cannot yet build fails loudly.

Two checks per case, in float64 with random parameters drawn from several seeds:
- the trainer's own manual_backward on each batch its own Batches gives, against autograd
  through its own loss;
- one training step with grad: manual, and the same step with grad: autograd from the same
  parameters: the same updated parameters, and gradients() equal to autograd's.
"""

import pytest
import torch

from bpcli.config import validate_config
from bpcli.kinds import KINDS
from bpcli.kinds.base import autograd_gradients
from bpcli.kinds.mlp import ACTIVATIONS, LOSSES
from bpcli.build import build

N = 8
# batch size and shuffle of each batch-size class ("between" in data order slices, shuffled gathers)
SIZES = {"one": (1, None), "between": (3, None), "between-in-order": (3, False), "all": (N, None)}
SEEDS = (0, 1, 2)


def _write_data(folder):
    """One CSV for every kind: two features, a numeric target, two-class and three-class labels."""
    g = torch.Generator().manual_seed(7)
    x = torch.randn((N, 2), generator=g, dtype=torch.float64) * 1.5
    number = 1.3 * x[:, 0] - 0.7 * x[:, 1] + 0.4 + 0.3 * torch.randn(N, generator=g, dtype=torch.float64)
    two = [i % 2 for i in range(N)]
    three = ["abc"[i % 3] for i in range(N)]
    lines = ["x1,x2,number,two,three"]
    lines += [f"{a!r},{b!r},{c!r},{d},{e}" for (a, b), c, d, e in zip(x.tolist(), number.tolist(), two, three)]
    path = folder / "every.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _csv(path, target, features=("x1", "x2")):
    return {"source": "csv", "path": path, "target": target, "features": list(features)}


# How each registered kind is built on this file's data: its model variants (every
# branch the kind's config can select) and its target column.
def _variants(kind):
    if kind == "mlp":
        # the target each loss needs, from what LOSSES says of it: numbers, two classes, or one output per class
        def target(loss):
            return "three" if loss.one_per_class else "two" if loss.classifies else "number"

        return [({"hidden": [4, 3], "activation": a, "loss": name}, target(loss))
                for a in ACTIVATIONS for name, loss in LOSSES.items()]
    if kind == "scalar-sgd":
        return [({"init_w": None}, "number")]
    target = {"linear-gd": "number", "nn-linear": "number", "logistic": "two", "softmax": "three"}.get(kind)
    if target is None:
        pytest.fail(f"kind {kind!r} has no case in {__file__}: say which data and model variants cover its branches")
    return [({"bias": bias}, target) for bias in (True, False)]


CASES = [(kind, model, target) for kind in KINDS for model, target in _variants(kind)]


def _id(case):
    kind, model, _ = case
    return "-".join([kind, *(str(v) for k, v in model.items() if k in ("activation", "loss"))]
                    + ([f"bias={model['bias']}"] if "bias" in model else []))


def _built(tmp_path, case, size, grad, seed):
    kind, model, target = case
    features = ("x1",) if kind == "scalar-sgd" else ("x1", "x2")
    raw = {"kind": kind, "seed": seed, "device": "cpu", "dtype": "float64",
           "data": _csv(_write_data(tmp_path), target, features), "model": model,
           "train": {"lr": 0.05, "epochs": 1, "grad": grad, "batch_size": SIZES[size][0], "shuffle": SIZES[size][1]}}
    return build(validate_config(raw))


def _random_params(trainer, seed, scale=1.5):
    g = torch.Generator().manual_seed(1000 + seed)
    return {name: scale * torch.randn(p.shape, generator=g, dtype=torch.float64)
            for name, p in trainer.params().items()}


def _set(trainer, values):
    with torch.no_grad():
        for name, p in trainer.params().items():
            p.copy_(values[name])


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_manual_backward_equals_autograd_on_every_batch(tmp_path, case, size):
    for seed in SEEDS:
        trainer = _built(tmp_path, case, size, "manual", seed).trainer
        values = _random_params(trainer, seed)
        for index in range(trainer.steps_per_epoch):
            batch = trainer.batch(index)
            params = {name: v.clone().requires_grad_(True) for name, v in values.items()}
            loss = trainer.loss(params, batch)
            expected = autograd_gradients(loss, params)
            value, grads = trainer.manual_backward(params, batch)
            assert torch.allclose(value.reshape(-1), loss.detach().reshape(-1), rtol=1e-12, atol=1e-14)
            assert set(grads) == set(params)
            for name in params:
                assert grads[name].shape == params[name].shape, (name, grads[name].shape)
                assert torch.allclose(grads[name], expected[name], rtol=1e-9, atol=1e-12), (seed, index, name)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_a_manual_step_equals_an_autograd_step(tmp_path, case, size):
    for seed in SEEDS:
        manual = _built(tmp_path, case, size, "manual", seed).trainer
        auto = _built(tmp_path, case, size, "autograd", seed).trainer
        values = _random_params(manual, seed)
        for trainer in (manual, auto):
            _set(trainer, values)
        # every batch of the first epoch: the full-batch fast path, the last, smaller mini-batch
        for index in range(manual.steps_per_epoch):
            before = {name: p.detach().clone() for name, p in manual.params().items()}
            params = {name: v.clone().requires_grad_(True) for name, v in before.items()}
            expected = autograd_gradients(manual.loss(params, manual.batch(index)), params)
            lm, la = manual.step(index), auto.step(index)
            assert torch.allclose(lm.reshape(-1), la.reshape(-1), rtol=1e-12, atol=1e-14), (seed, index)
            for name, p in manual.params().items():
                q = auto.params()[name]
                assert torch.allclose(p.detach(), q.detach(), rtol=1e-10, atol=1e-12), (seed, index, name)
                # SGD without momentum: the step moved θ by −lr·∇L(θ before)
                assert torch.allclose(before[name] - p.detach(), 0.05 * expected[name], rtol=1e-8, atol=1e-12)
                assert torch.allclose(manual.gradients()[name].reshape(p.shape), expected[name],
                                      rtol=1e-9, atol=1e-12), (seed, index, name)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("case", CASES, ids=_id)
def test_a_sweeps_stacked_members_have_the_same_gradients(tmp_path, case, size):
    """A sweep stacks K runs into one trainer (nn-linear's K members have a manual_backward
    of its own, linear-gd its batched fast path): each member's gradient and step are autograd's."""
    kind = KINDS[case[0]]
    stacked = {}
    for grad in ("manual", "autograd"):
        members = [_built(tmp_path, case, size, grad, seed).trainer for seed in SEEDS]
        stacked[grad] = kind.trainer.stack(members, torch.device("cpu"))
    manual, auto = stacked["manual"], stacked["autograd"]
    values = _random_params(manual, seed=len(SEEDS))
    for trainer in (manual, auto):
        _set(trainer, values)
    for index in range(manual.steps_per_epoch):
        batch = manual.batch(index)  # each member its own order when shuffled
        params = {name: p.detach().clone().requires_grad_(True) for name, p in manual.params().items()}
        loss = manual.loss(params, batch)
        expected = autograd_gradients(loss, params)
        value, grads = manual.manual_backward(params, batch)
        assert torch.allclose(value, loss.detach(), rtol=1e-12, atol=1e-14)
        for name in params:
            assert torch.allclose(grads[name], expected[name], rtol=1e-9, atol=1e-12), (index, name)
        manual.step(index), auto.step(index)
        for name, p in manual.params().items():
            assert torch.allclose(p.detach(), auto.params()[name].detach(), rtol=1e-10, atol=1e-12), (index, name)
            assert torch.allclose(p.detach(), params[name].detach() - 0.05 * expected[name], rtol=1e-9, atol=1e-12)
