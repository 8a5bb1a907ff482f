"""What every experiment kind provides, and the pieces the shipped kinds share.

Every kind builds a Trainer that the one loop in bpcli.loop drives. A trainer exposes
its loss as a pure function of (parameters, batch), so autograd, finite differences,
`bpcli check` and `bpcli explain` all see the very computation training uses, and a
hand-derived `manual_backward` with each formula written beside the forward.

Tensors carry a leading *member* dimension K (K = 1 for a single run), so that the same
code can train many independent models in one batched step; a gradient formula reads
the same for K = 1 and K > 1. Random draws happen on the CPU generator in the article's
order (data, then parameters), so a seed reproduces the article's numbers on any device.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from pydantic import model_validator

from bpcli.section import Section

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class LeastSquares:
    """A kind whose loss is linear least squares, so its optimum has a closed form."""

    bias: bool
    """Whether the model has an intercept b besides the slope w."""
    per_sample: bool
    """One update per sample (SGD) rather than one per pass over the data."""


class Trainer(Protocol):
    """A built experiment: parameters on the device and the step that updates them.

    A kind's trainer class is called as `Trainer(config, data, device, generator)` to
    build a single run, and `Trainer.stack(members, device)` to batch single runs.
    """

    steps_per_epoch: int
    """Updates in one pass over the data (N for per-sample kinds, 1 for full-batch)."""
    least_squares: LeastSquares | None
    """Set for linear least-squares kinds (closed-form optimum, stability bound)."""

    @classmethod
    def stack(cls, members: list[Any], device: torch.device) -> Trainer:
        """One trainer on `device` whose K members are the given single-member trainers."""
        ...

    def batch(self, index: int) -> Tensors:
        """The data step `index` of an epoch trains on: {"x": ..., "y": ...}."""
        ...

    def params(self) -> Tensors:
        """The live parameter tensors, by name, each with a leading member dimension."""
        ...

    def loss(self, params: Tensors, batch: Tensors) -> torch.Tensor:
        """The training loss per member, shape (K,), as a differentiable function of params."""
        ...

    def manual_backward(self, params: Tensors, batch: Tensors) -> tuple[torch.Tensor, Tensors]:
        """The loss and its gradient with respect to each parameter, by hand-derived formulas."""
        ...

    def step(self, index: int, with_loss: bool = True) -> torch.Tensor | None:
        """Update with batch `index` of the epoch; return its loss per member, shape (K,)
        (or a 0-dim tensor when there is one member).

        The loss is the one computed before the update. A trainer may skip computing it,
        and return None, when with_loss is False (the step is not logged). No host
        synchronisation happens here: the caller decides when to read values back.
        """
        ...

    def gradients(self) -> Tensors:
        """The gradients of the latest step, with the names and shapes of params()."""
        ...

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predictions for inputs x of shape (M, F): shape (K, M)."""
        ...

    def distribute(self, group: Any) -> None:
        """Train this process's shard of the data as part of a torchrun job."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything the next step depends on (parameters, optimizer state), for a checkpoint."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict() returned, so training continues bit for bit."""
        ...


class LinearModel(Section):
    """The weight and bias of y = w·x + b (one weight per feature)."""

    init_w: float | None = None
    """Starting value of w; null uses the kind's random initialisation with the seed."""
    init_b: float | None = None
    """Starting value of b; null uses the kind's random initialisation with the seed."""
    bias: bool = True
    """Whether the model has the intercept b; false fits y = w·x, a line through the origin
    (R² is then the uncentred one, 1 − Σ(y − ŷ)²/Σy²)."""

    @model_validator(mode="after")
    def _init_b_needs_a_bias(self) -> LinearModel:
        if not self.bias and self.init_b is not None:
            raise ValueError("model.init_b is set but model.bias is false, so there is no b to start; "
                             "remove model.init_b, or set model.bias: true")
        return self


def refuse_standardising_without_intercept(cfg: Any, model: str, fix: str) -> None:
    """Refuse data.standardize for a model without intercept: centring x and y would fit
    another model (y − ȳ = w·(x − x̄)/σ has an intercept in the original units)."""
    standardize = getattr(cfg.data, "standardize", "none")
    if standardize != "none":
        raise ValueError(f"{model} fits y = w·x through the origin, but data.standardize: {standardize} centres "
                         f"the data, which would give it an intercept; set data.standardize: none, or {fix}")


def uniform(shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype,
            low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    """U[low, high) draws; equal to torch.rand(shape) for [0, 1) from the same generator."""
    return torch.empty(shape, dtype=dtype).uniform_(low, high, generator=generator)


def sgd_update(params: Tensors, grads: Tensors, lr: float | torch.Tensor) -> None:
    """p ← p − lr·dL/dp for every parameter, in place; lr is a number or one per member (K,)."""
    with torch.no_grad():
        for name, p in params.items():
            rate = lr if not isinstance(lr, torch.Tensor) else lr.reshape(-1, *([1] * (p.dim() - 1)))
            p.sub_(rate * grads[name])


def autograd_gradients(loss: torch.Tensor, params: Tensors) -> Tensors:
    """dL/dp for every parameter by autograd, each member's from its own loss."""
    # Members are independent: differentiating their sum gives each one its own gradient.
    grads = torch.autograd.grad(loss.sum(), list(params.values()))
    return dict(zip(params, grads))


def flat(tensors: Tensors) -> Tensors:
    """Each tensor as (K, values): how parameters and gradients are logged."""
    return {name: t.detach().reshape(t.shape[0], -1) for name, t in tensors.items()}


class HandWrittenSGD:
    """The step shared by kinds whose update is written by hand (p ← p − lr·grad).

    A subclass sets `_params`, `_grads`, `x`, `y`, `lr`, `_manual` and `steps_per_epoch`
    in its constructor and provides `batch`, `loss`, `manual_backward` and `predict`.
    """

    lr: float | torch.Tensor
    _params: Tensors
    _grads: Tensors
    _manual: bool
    x: torch.Tensor
    y: torch.Tensor
    _group: Any = None  # set by distribute() under torchrun

    def distribute(self, group: Any) -> None:
        """Train this process's shard as part of a torchrun job (see bpcli.distributed)."""
        self._group = group

    @classmethod
    def stack(cls, members: list[Any], device: torch.device) -> Any:
        """One trainer on `device` whose K members are the given single-member trainers,
        side by side.

        Parameters and data are concatenated along the member dimension and each member
        keeps its own learning rate, so one batched step trains them all independently.
        Members are best built on the CPU: the stack then moves to `device` in one copy.
        """
        batched = copy.copy(members[0])
        autograd = not members[0]._manual
        batched._params = {
            name: torch.cat([m._params[name].detach() for m in members]).to(device).requires_grad_(autograd)
            for name in members[0]._params
        }
        batched._grads = {name: torch.zeros_like(p) for name, p in batched._params.items()}
        batched.x = torch.cat([m.x for m in members]).to(device)
        batched.y = torch.cat([m.y for m in members]).to(device)
        batched.lr = torch.tensor([m.lr for m in members], dtype=batched.x.dtype, device=device)
        return batched

    def params(self) -> Tensors:
        return self._params

    def gradients(self) -> Tensors:
        return self._grads

    def step(self, index: int, with_loss: bool = True) -> torch.Tensor | None:
        batch = self.batch(index)  # type: ignore[attr-defined]
        if self._manual:
            loss, self._grads = self.manual_backward(self._params, batch)  # type: ignore[attr-defined]
        else:
            loss = self.loss(self._params, batch)  # type: ignore[attr-defined]
            self._grads = autograd_gradients(loss, self._params)
            loss = loss.detach()
        if self._group is not None:  # the full batch's gradient: Σ_r (n_r/N)·∇L_r
            self._grads = self._group.weighted_sum(self._grads)
            loss = self._group.weighted_sum({"loss": loss})["loss"] if with_loss else loss
        sgd_update(self._params, self._grads, self.lr)
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {name: p.detach().clone() for name, p in self._params.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for name, p in self._params.items():
                p.copy_(state[name])


@dataclass(frozen=True)
class Kind:
    """An experiment kind: its name, its config class and the trainer that config builds."""

    name: str
    config: type[Section]
    """The kind's config class, a subclass of bpcli.config.Experiment with its `model`."""
    trainer: Any
    """The Trainer class: Trainer(config, data, device, generator), and Trainer.stack."""
