"""Why a run diverged, in words that are true: which quantity of a step stopped being a
finite number first, or which term of the updates made the loss grow, and what to change.

A step computes, from its parameters θ, the loss L(θ), the gradient g = ∇L(θ) and the
update θ ← θ − lr·d, with d = g + λ·θ (λ the weight decay) for plain SGD; momentum and
Adam transform g + λ·θ first. Read from the state the step started from:

    L or g not finite at the initial parameters   the data or the initial values: no update yet
    g finite, lr·g not                            the update overflowed: the learning rate
    λ·θ or lr·λ·θ not finite                      the weight decay
    otherwise                                     the updates carried θ to where L overflows or
                                                  grows: the larger term of the update before,
                                                  lr·λ·θ or lr·g, is named, with the stability
                                                  bound where bpcli computes one
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import torch

from bpcli.analysis import StableLR
from bpcli.kinds.base import batch_index


@dataclass(frozen=True)
class Terms:
    """The quantities of one step, computed again from the state it started from."""

    step: int
    loss_finite: bool
    grad_finite: bool
    grad_max: float
    """max |g| over every parameter (inf when g is not finite)."""
    param_max: float
    """max |θ|."""
    step_overflows: bool
    """lr·g is not finite although g is."""
    decay_overflows: bool
    """λ·θ or lr·λ·θ is not finite."""


def terms_of(trainer: Any, state: dict[str, Any], step: int, members: dict[int, tuple[float, float]]) -> dict[int, Terms]:
    """The loss, gradient and update terms of training step `step` from `state`, for each
    member given as {k: (lr, weight decay)}, in the run's dtype (so that what overflowed in
    training overflows here); the trainer is left as it was."""
    now = copy.deepcopy(trainer.state_dict())
    try:
        trainer.load_state_dict(state)
        params = {name: p.detach().clone().requires_grad_(True) for name, p in trainer.params().items()}
        batch = trainer.batch(batch_index(trainer, step))
        with torch.enable_grad():
            losses = trainer.loss(params, batch).reshape(-1)
            finite_losses = torch.isfinite(losses).tolist()
            wanted = [k for k in members if finite_losses[k]]
            # The members' losses are independent, so the gradient of their sum holds each
            # member's own gradient in its slice.
            grads = (torch.autograd.grad(losses[wanted].sum(), list(params.values()), allow_unused=True)
                     if wanted else [])
    finally:
        trainer.load_state_dict(now)
    grads = [g for g in grads if g is not None]
    terms = {}
    for k, (lr, decay) in members.items():
        mine = [g[k] for g in grads]
        thetas = [p.detach()[k] for p in params.values()]
        grad_finite = finite_losses[k] and all(bool(torch.isfinite(g).all()) for g in mine)
        grad_max = max((float(g.abs().max()) for g in mine if g.numel()), default=0.0) if grad_finite else math.inf
        param_max = max((float(p.abs().max()) for p in thetas if p.numel()), default=0.0)
        step_overflows = grad_finite and not all(bool(torch.isfinite(g * lr).all()) for g in mine)
        decay_overflows = decay > 0 and not all(
            bool(torch.isfinite(p * decay).all() and torch.isfinite(p * decay * lr).all()) for p in thetas)
        terms[k] = Terms(step, finite_losses[k], grad_finite, grad_max, param_max, step_overflows, decay_overflows)
    return terms


def member_terms(trainer: Any, started: dict[int, list[dict[str, Any]]], at: dict[int, int],
                 members: dict[int, tuple[float, float]]) -> dict[int, list[Terms]]:
    """For each diverged member (`at`: its step), the terms of the step it diverged at and of
    the one before where that was taken again (`started`: the states they started from, by
    step, latest first); `members` gives each one's (lr, weight decay)."""
    found: dict[int, list[Terms]] = {k: [] for k in at}
    for step in sorted(set(at.values())):
        here = {k: members[k] for k in at if at[k] == step}
        for state, s in zip(started.get(step, []), (step, step - 1)):
            for k, terms in terms_of(trainer, state, s, here).items():
                found[k].append(terms)
    return found


def _rescale(config: Any) -> str:
    """How to rescale this run's data: a CSV file standardises (a classifier its features
    alone, since class labels are not rescaled); other sources draw smaller values."""
    if getattr(config.data, "source", None) != "csv":
        return "draw smaller values: data.noise, data.x_low/x_high or the file's units"
    return "data.standardize: features" if config.classifies else "data.standardize: all"


def peak_lr(built: Any) -> float:
    """The largest learning rate the run's schedule reaches (its lr, without a schedule): what
    the stability bound is checked against."""
    from bpcli import schedules

    return schedules.peak(built.config.train, built.config.train.epochs * built.trainer.steps_per_epoch)


def explain_members(builts: list[Any], trainer: Any, divergence: Any, start: int, step: int,
                    bounds: list[StableLR | None]) -> dict[int, dict[str, Any]]:
    """The divergence record of every diverged member of `trainer` (a run is one member):
    `builts` are the members as single runs, `divergence` the loop's Divergence callback,
    `step` where the loop is now."""
    at = divergence.diverged()
    settings = {k: (peak_lr(builts[k]), builts[k].config.train.weight_decay) for k in at}
    terms = member_terms(trainer, divergence.started, at, settings)
    batch_index(trainer, step)  # the order of the epoch the loop is in, as it was
    return {k: explain(builts[k], at[k], start, divergence.reasons[k], bounds[k], terms[k]) for k in at}


def explain(built: Any, step: int, start: int, reason: str, bound: StableLR | None,
            terms: list[Terms]) -> dict[str, Any]:
    """The divergence record for summary.json: where, why, and what to change. `terms` are
    those of the step it stopped at and of the one before (see member_terms)."""
    record: dict[str, Any] = {"step": step, "reason": reason, "lr": peak_lr(built)}
    record["message"] = f"training diverged at step {step}: {reason}." + _cause(built, step, start, bound, terms)
    if bound is not None:
        record["stable_lr"] = bound.lr
    return record


def _cause(built: Any, step: int, start: int, bound: StableLR | None, terms: list[Terms]) -> str:
    config, data = built.config, built.data
    lr, decay, dtype = peak_lr(built), config.train.weight_decay, config.dtype
    largest = max(float(data.x.abs().max()), float(data.y.abs().max()))
    limit = torch.finfo(data.x.dtype).max
    wider = dtype != "float64"  # whether a wider dtype is left to suggest
    now = terms[0] if terms else None
    rescale = _rescale(config)
    if config.classifies and largest > math.sqrt(limit):
        # A classifier's loss has no square; its logits w·x outgrow the dtype with the inputs.
        return (f" The inputs reach {largest:.3g}, so the logits w·x outgrow what {dtype} holds ({limit:.3g}) as "
                f"soon as the weights move; rescale the features ({rescale})"
                + (" or use dtype: float64." if wider else "."))
    if largest > math.sqrt(limit):
        # A squared error of such values cannot be held, whatever the learning rate.
        return (f" The data's values reach {largest:.3g}, whose square is beyond what {dtype} holds "
                f"({limit:.3g}), so the loss cannot be computed whatever the learning rate; rescale the data "
                f"({rescale})" + (" or use dtype: float64." if wider else "."))
    if now is not None and step == 1 and start == 0 and not now.grad_finite:
        what = "loss" if not now.loss_finite else "gradient"
        return (f" The {what} at the initial parameters is not a finite number: it happened before any update, so "
                f"the learning rate is not the cause; the initial parameters or the data (largest |value| "
                f"{largest:.3g}) are too large for {dtype}; choose smaller model.init_* values or rescale the data"
                + (", or use dtype: float64." if wider else "."))
    if now is not None and now.grad_finite and now.decay_overflows:
        return _decay(decay, bound, f"at step {now.step} its term λ·θ ({decay * now.param_max:.3g} at most) is "
                                    f"beyond {dtype}")
    if now is not None and now.grad_finite and now.step_overflows:
        fix = (f"the stable learning rate is {bound.lr:.4g}: try --lr {bound.lr / 2:.3g}." if bound and bound.lr
               else f"try a learning rate far below {limit / max(now.grad_max, 1e-300):.3g} (--lr).")
        return (f" The gradient was finite (largest |g| {now.grad_max:.3g}) but the update lr·g was not: lr {lr:g} "
                f"times it is beyond {dtype}'s {limit:.3g}, so the learning rate is the cause; {fix}")
    # The updates carried θ to where the loss overflows or grows: which term of them did it.
    before = terms[1] if len(terms) > 1 else now
    if decay > 0 and _decay_driven(decay, bound, before):
        if bound is not None and bound.curvature is not None and bound.lr:
            why = (f"λ = {decay:g} is larger than the data's own curvature {bound.curvature:.3g}, so it sets the "
                   f"stable learning rate: {bound.explanation}")
        elif before.decay_overflows:
            why = f"at step {before.step} its term λ·θ ({decay * before.param_max:.3g} at most) is beyond {dtype}"
        else:
            why = (f"at step {before.step} its term λ·θ ({decay * before.param_max:.3g} at most) outweighed the "
                   f"gradient g ({before.grad_max:.3g} at most)")
        return _decay(decay, bound, why)
    return _learning_rate(built, bound, largest)


def _decay_driven(decay: float, bound: StableLR | None, terms: Terms | None) -> bool:
    """Whether the weight decay, rather than the gradient, drove the updates: exactly, from
    the bound's curvature where bpcli computes one, else by the larger term of the update."""
    if bound is not None and bound.curvature is not None:
        return decay > bound.curvature
    return terms is not None and (terms.decay_overflows or decay * terms.param_max > terms.grad_max)


def _decay(decay: float, bound: StableLR | None, why: str) -> str:
    """Weight decay named as the cause, with what to change."""
    lower = f", or the learning rate below {bound.lr:.3g}" if bound is not None and bound.lr else ""
    return (f" The weight decay is the cause: each update subtracts lr·λ·θ, and {why}. Lower "
            f"train.weight_decay (now {decay:g}){lower}.")


def _learning_rate(built: Any, bound: StableLR | None, largest: float) -> str:
    """The learning rate's part, from the stability bound where bpcli computes one."""
    config = built.config
    lr, dtype = peak_lr(built), config.dtype
    wider = dtype != "float64"
    if bound is not None and bound.lr is None:  # no bound of the form lr < c/λ_max (adaptive rules)
        return f" {bound.explanation[0].upper()}{bound.explanation[1:]}; try a smaller learning rate than {lr:g} (--lr)."
    if bound is not None and bound.scope == "full batch" and not built.trainer.batches.full:
        size = built.trainer.batches.size
        return (f" With {'one sample' if size == 1 else f'batches of {size}'} a step follows its own batch's "
                f"curvature, which can be far steeper than the whole data's, so the full-batch bound "
                f"({bound.lr:.4g}) promises nothing here; try a smaller learning rate than {lr:g} (--lr) or a "
                "larger train.batch_size.")
    if bound is not None and lr < bound.lr:
        return (f" The learning rate {lr:g} is below the stable bound {bound.lr:.6g}, so it is not the cause: "
                f"the values outgrew {dtype} (largest |value| in the data {largest:.3g}); rescale the data "
                "or the initial parameters" + (", or use dtype: float64." if wider else "."))
    if bound is not None and bound.lr < 1e-8:
        return (f" The data's scale (largest |value| {largest:.3g}) makes the stable learning rate tiny: "
                f"{bound.explanation}. Rescale the data ({_rescale(config)}) rather than "
                "shrinking the learning rate.")
    if bound is not None:
        return f" The learning rate {lr:g} is too large: {bound.explanation}. Try --lr {bound.lr / 2:.3g}."
    return f" Try a smaller learning rate than {lr:g} (--lr)."
