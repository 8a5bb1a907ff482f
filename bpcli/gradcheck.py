"""Gradients checked three ways: bpcli's hand-derived formulas, autograd, finite differences.

All three are evaluated in float64 at the same point (the current parameters of a
training run, whatever its own dtype), on the same batch, through the kind's own loss
function, so a disagreement can only come from a wrong formula.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from bpcli.kinds.base import Tensors, Trainer, batch_index

TOLERANCE = 1e-6
"""Manual and autograd gradients must agree to this relative error (in float64)."""
FLOOR = 1e-8
"""Relative errors are taken against max(|a|, |b|, FLOOR), so two gradients that are both
zero up to rounding count as equal."""
MAX_FD_VALUES = 4096
"""Finite differences cost two loss evaluations per value: only this many per tensor."""


@dataclass(frozen=True)
class ParamCheck:
    """One parameter's gradient at one step, computed three ways."""

    step: int
    name: str
    manual: list[float]
    autograd: list[float]
    finite_difference: list[float]
    manual_vs_autograd: float
    """The worst relative error between manual and autograd over the tensor's values."""
    fd_vs_autograd: float
    """The worst relative error between the central difference and autograd."""

    @property
    def comparable(self) -> bool:
        """Whether manual and autograd are finite numbers, so that their error means something."""
        return math.isfinite(self.manual_vs_autograd)

    @property
    def ok(self) -> bool:
        """Manual and autograd agree: finite, and within TOLERANCE (NaN compares False)."""
        return self.manual_vs_autograd <= TOLERANCE

    @property
    def disagrees(self) -> bool:
        return self.comparable and not self.ok


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a − b| / max(|a|, |b|, FLOOR), elementwise, over two tensors of equal shape;
    NaN, "not comparable", when any value of either is infinite or NaN.

    Two infinities, or two NaNs, are not two methods agreeing: the gradient overflowed and
    neither says what it is, so no error is measured (a value of 0 would read as agreement).
    """
    if a.numel() == 0:
        return 0.0
    if not (bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all())):
        return math.nan
    scale = torch.maximum(torch.maximum(a.abs(), b.abs()), torch.full_like(a, FLOOR))
    return float(((a - b).abs() / scale).max().item())


def _central_differences(trainer: Trainer, params: Tensors, batch: Tensors) -> Tensors:
    # dL/dθ_j ≈ (L(θ + h·e_j) − L(θ − h·e_j)) / 2h, with h scaled to θ_j; in float64 the
    # error is about h² from truncation plus 1e-16/h from rounding, near 1e-10 here.
    # The values are read once and the losses kept on the device, then read back in one
    # copy: one synchronisation per tensor instead of three per value.
    grads: Tensors = {}
    with torch.no_grad():
        for name, p in params.items():
            values = p.view(-1)
            originals = values[:MAX_FD_VALUES].tolist()
            steps = [1e-6 * max(1.0, abs(original)) for original in originals]
            losses = []
            for j, (original, h) in enumerate(zip(originals, steps)):
                values[j] = original + h
                losses.append(trainer.loss(params, batch).sum())
                values[j] = original - h
                losses.append(trainer.loss(params, batch).sum())
                values[j] = original
            read = torch.stack(losses).tolist() if losses else []
            g = [(plus - minus) / (2 * h) for plus, minus, h in zip(read[0::2], read[1::2], steps)]
            g += [float("nan")] * (values.numel() - len(g))  # beyond MAX_FD_VALUES: not measured
            grads[name] = torch.tensor(g, dtype=torch.float64).reshape(p.shape)
    return grads


def compare_gradients(trainer: Trainer, index: int, step: int) -> list[ParamCheck]:
    """The three gradients of the loss of batch `index` at the trainer's current parameters."""
    batch = {k: v.detach().to(torch.float64) for k, v in trainer.batch(index).items()}
    params = {k: v.detach().to(torch.float64).clone().requires_grad_(True) for k, v in trainer.params().items()}
    loss = trainer.loss(params, batch).sum()
    autograd = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
    _, manual = trainer.manual_backward(params, batch)
    finite = _central_differences(trainer, {k: v.detach().clone() for k, v in params.items()}, batch)
    checks = []
    for name in params:
        a, m = autograd[name].detach().cpu(), manual[name].detach().cpu().reshape(autograd[name].shape)
        f = finite[name].cpu()
        measured = min(f.numel(), MAX_FD_VALUES)  # the values beyond are not measured (NaN)
        checks.append(
            ParamCheck(
                step=step,
                name=name,
                manual=m.reshape(-1).tolist(),
                autograd=a.reshape(-1).tolist(),
                finite_difference=f.reshape(-1).tolist(),
                manual_vs_autograd=relative_error(m, a),
                fd_vs_autograd=relative_error(f.reshape(-1)[:measured], a.reshape(-1)[:measured]),
            )
        )
    return checks


def check_steps(trainer: Trainer, steps: int) -> list[ParamCheck]:
    """Compare the gradients at each of the first `steps` training steps, training as it goes."""
    return check_training(trainer, steps)[0]


def check_training(trainer: Trainer, steps: int) -> tuple[list[ParamCheck], list[Tensors]]:
    """The gradient checks of the first `steps` steps, and the gradients training used."""
    results: list[ParamCheck] = []
    used: list[Tensors] = []
    for step in range(1, steps + 1):
        index = batch_index(trainer, step)
        results += compare_gradients(trainer, index, step)
        trainer.step(index)
        used.append({name: g.detach().clone() for name, g in trainer.gradients().items()})
    return results, used


def worst(checks: list[ParamCheck]) -> dict[str, Any]:
    """The worst errors over a set of checks, as recorded in summary.json."""
    if not checks:
        return {}
    compared = [c for c in checks if c.comparable]
    bad = max(compared, key=lambda c: c.manual_vs_autograd) if compared else None
    errors = [c.fd_vs_autograd for c in checks if math.isfinite(c.fd_vs_autograd)]
    record = {
        "checks": len({c.step for c in checks}),
        "worst_manual_vs_autograd": bad.manual_vs_autograd if bad else None,
        "worst_at": {"step": bad.step, "param": bad.name} if bad else None,
        "worst_finite_difference_vs_autograd": max(errors) if errors else None,
        "tolerance": TOLERANCE,
        "agree": all(c.ok for c in checks),
    }
    first = next((c for c in checks if not c.comparable), None)
    if first is not None:  # infinite or NaN gradients: neither agreement nor disagreement
        record["not_comparable_from"] = {"step": first.step, "param": first.name}
        if not any(c.disagrees for c in checks):
            record["agree"] = None  # agreement where compared; not established beyond
    return record


# --------------------------------------------------------------------------- the update rule


@dataclass(frozen=True)
class UpdateCheck:
    """bpcli's hand-written update rule against torch.optim's, on one run's gradients."""

    optimizer: str
    """The rule in words, e.g. `sgd (momentum 0.9, nesterov)`, with its schedule."""
    steps: int
    difference: float
    """The worst relative difference between the two rules' parameters over the steps compared."""
    given: int = 0
    """The gradients given; those after the first that makes a parameter infinite or NaN are
    not compared (`steps` counts the ones that are)."""

    @property
    def ok(self) -> bool:
        return self.difference <= UPDATE_TOLERANCE


UPDATE_TOLERANCE = 1e-10
"""The hand-written rule and torch.optim's must agree to this relative error (float64)."""


def check_update(train: Any, start: Tensors, gradients: list[Tensors], updates: int | None = None) -> UpdateCheck:
    """Apply the configured rule (and lr schedule, over a run of `updates` updates) both ways,
    bpcli's and torch.optim's, from the parameters `start`, to the same sequence of gradients
    (a run's own), in float64, and compare the parameters after every step."""
    from bpcli import schedules
    from bpcli.optimizers import OPTIMIZERS, Optimizer, describe, settings_of

    updates = updates if updates is not None else max(len(gradients), 1)
    ours = {name: p.detach().to(torch.float64).clone() for name, p in start.items()}
    theirs = [p.clone().requires_grad_(True) for p in ours.values()]
    reference = OPTIMIZERS[train.optimizer].torch_optimizer(theirs, train.lr, settings_of(train), capturable=False)
    scheduler = schedules.torch_scheduler(reference, train, updates) if schedules.scheduled(train) else None
    rule = Optimizer(ours, [train], updates)
    worst, compared = 0.0, 0
    for grads in gradients:
        grads = {name: g.detach().to(torch.float64) for name, g in grads.items()}
        rule.step(ours, grads)
        for p, g in zip(theirs, grads.values()):
            p.grad = g.clone()
        reference.step()
        if scheduler is not None:
            scheduler.step()  # once per update
        errors = [relative_error(a, b.detach()) for a, b in zip(ours.values(), theirs)]
        if not all(math.isfinite(e) for e in errors):  # infinite or NaN from here on: not comparable
            break
        worst, compared = max([worst, *errors]), compared + 1
    words = describe(train) + (f", {schedules.describe(train, updates)}" if schedules.scheduled(train) else "")
    return UpdateCheck(words, compared, worst, len(gradients))
