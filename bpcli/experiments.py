"""The experiment kinds: each one's model, gradient and update, reached through KINDS.

Every kind builds a Trainer that the shared loop in bpcli.training drives. A trainer
exposes its loss as a pure function of (parameters, batch), so autograd, finite
differences, `bpcli check` and `bpcli explain` all see the very computation training
uses, and a hand-derived `manual_backward` with each formula written beside the forward.

Tensors carry a leading *member* dimension K (K = 1 for a single run), so that the same
code can train many independent models in one batched step; a gradient formula reads
the same for K = 1 and K > 1. Random draws happen on the CPU generator in the article's
order (data, then parameters), so a seed reproduces the article's numbers on any device.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn, optim

from bpcli.config import ExperimentConfig, LinearGDConfig, MLPConfig, NNLinearConfig, ScalarSGDConfig
from bpcli.data import Dataset

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class LeastSquares:
    """A kind whose loss is linear least squares, so its optimum has a closed form."""

    bias: bool
    """Whether the model has an intercept b besides the slope w."""
    per_sample: bool
    """One update per sample (SGD) rather than one per pass over the data."""


class Trainer(Protocol):
    """A built experiment: parameters on the device and the step that updates them."""

    steps_per_epoch: int
    """Updates in one pass over the data (N for per-sample kinds, 1 for full-batch)."""
    least_squares: LeastSquares | None
    """Set for linear least-squares kinds (closed-form optimum, stability bound)."""

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


def _uniform(shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype,
             low: float = 0.0, high: float = 1.0) -> torch.Tensor:
    # Equal to torch.rand(shape) for [0, 1) when drawn from the same generator.
    return torch.empty(shape, dtype=dtype).uniform_(low, high, generator=generator)


def _sgd_update(params: Tensors, grads: Tensors, lr: float | torch.Tensor) -> None:
    """p ← p − lr·dL/dp for every parameter, in place; lr is a number or one per member (K,)."""
    with torch.no_grad():
        for name, p in params.items():
            rate = lr if not isinstance(lr, torch.Tensor) else lr.reshape(-1, *([1] * (p.dim() - 1)))
            p.sub_(rate * grads[name])


def _autograd(loss: torch.Tensor, params: Tensors) -> Tensors:
    # Members are independent: differentiating their sum gives each one its own gradient.
    grads = torch.autograd.grad(loss.sum(), list(params.values()))
    return dict(zip(params, grads))


class _HandWrittenSGD:
    """The step shared by kinds whose update is written by hand (p ← p − lr·grad)."""

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
            self._grads = _autograd(loss, self._params)
            loss = loss.detach()
        if self._group is not None:  # the full batch's gradient: Σ_r (n_r/N)·∇L_r
            self._grads = self._group.weighted_sum(self._grads)
            loss = self._group.weighted_sum({"loss": loss})["loss"] if with_loss else loss
        _sgd_update(self._params, self._grads, self.lr)
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {name: p.detach().clone() for name, p in self._params.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for name, p in self._params.items():
                p.copy_(state[name])


class ScalarSGD(_HandWrittenSGD):
    """Experiment 1: y = w·x, per-sample SGD in data order, one update per sample."""

    least_squares = LeastSquares(bias=False, per_sample=True)

    def __init__(self, cfg: ScalarSGDConfig, data: Dataset, device: torch.device,
                 generator: torch.Generator) -> None:
        # w is drawn after the data, as in the article. A fixed init_w is still drawn
        # first, so changing it leaves every later draw unchanged.
        w = _uniform((1,), generator, data.x.dtype)
        if cfg.model.init_w is not None:
            w.fill_(cfg.model.init_w)
        self._params = {"w": w.to(device).requires_grad_(cfg.train.grad == "autograd")}  # (K,)
        self._grads = {"w": torch.zeros_like(self._params["w"])}
        self.x = data.x[:, 0].to(device)[None, :]  # (K, N)
        self.y = data.y.to(device)[None, :]  # (K, N)
        self.lr = cfg.train.lr
        self._manual = cfg.train.grad == "manual"
        self.steps_per_epoch = data.x.shape[0]

    def distribute(self, group: Any) -> None:
        from bpcli.errors import BpcliError

        raise BpcliError("scalar-sgd updates after every single sample, in order, so there is nothing "
                         "to share between processes; run it without torchrun")

    def batch(self, index: int) -> Tensors:
        return {"x": self.x[:, index], "y": self.y[:, index]}

    def loss(self, params: Tensors, batch: Tensors) -> torch.Tensor:
        return (batch["x"] * params["w"] - batch["y"]).pow(2)  # L = (x·w − y)², the article's order

    def manual_backward(self, params: Tensors, batch: Tensors) -> tuple[torch.Tensor, Tensors]:
        x, y, w = batch["x"], batch["y"], params["w"].detach()
        residual = w * x - y  # ŷ − y, with ŷ = w·x
        loss = residual.pow(2)  # L = (ŷ − y)²
        # dL/dw = dL/dŷ · dŷ/dw = 2·(w·x − y) · x
        return loss, {"w": 2 * x * residual}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self._params["w"].detach()[:, None] * x.to(self.x.device)[None, :, 0]


class LinearGD(_HandWrittenSGD):
    """Experiment 2: y = w·x + b, full-batch gradient descent with a hand-written update."""

    least_squares = LeastSquares(bias=True, per_sample=False)

    def __init__(self, cfg: LinearGDConfig, data: Dataset, device: torch.device,
                 generator: torch.Generator) -> None:
        features = data.x.shape[1]
        # The article draws w = torch.rand(1), then b = torch.rand(1), after the data.
        w = _uniform((1, features), generator, data.x.dtype)
        b = _uniform((1,), generator, data.x.dtype)
        if cfg.model.init_w is not None:
            w.fill_(cfg.model.init_w)
        if cfg.model.init_b is not None:
            b.fill_(cfg.model.init_b)
        autograd = cfg.train.grad == "autograd"
        self.x = data.x.to(device)[None]  # (K, N, F)
        self.y = data.y.to(device)[None]  # (K, N)
        self.lr = cfg.train.lr
        self._manual = not autograd
        self.steps_per_epoch = 1
        if autograd:
            self._params = {"w": w.to(device).requires_grad_(True),  # (K, F)
                            "b": b.to(device).requires_grad_(True)}  # (K,)
            self._grads = {name: torch.zeros_like(p) for name, p in self._params.items()}
        else:
            self._use_fast_path(torch.cat([w, b[:, None]], dim=1).to(device))

    def _use_fast_path(self, theta: torch.Tensor) -> None:
        # With θ = (w, b) and A = [x, 1], the loss is mean((A·θ − y)²) and its gradient
        # dL/dθ = (2/N)·Aᵀ(A·θ − y) = S·θ − c, where S = (2/N)·AᵀA and c = (2/N)·Aᵀy depend
        # on the data alone. Computed once (in float64), they make each step two small
        # in-place operations, whatever the number of samples N.
        features = theta.shape[1] - 1
        self._theta = theta  # (K, F + 1); w and b are views into it
        self._theta_row = theta[:, None, :]  # the same numbers, shaped for the batched multiply
        self._params = {"w": theta[:, :features], "b": theta[:, features]}
        a = torch.cat([self.x, torch.ones_like(self.x[..., :1])], dim=-1).to(torch.float64)
        n = a.shape[1]
        self._hessian = ((2 / n) * a.transpose(1, 2) @ a).to(theta.dtype)  # S, (K, F+1, F+1)
        self._target = ((2 / n) * (a.transpose(1, 2) @ self.y.to(torch.float64)[..., None])).to(theta.dtype)
        self._target = self._target.transpose(1, 2)  # c, (K, 1, F+1)
        self._gradient = torch.zeros_like(self._target)  # reused every step, (K, 1, F+1)
        flat_gradient = self._gradient[:, 0]
        self._grads = {"w": flat_gradient[:, :features], "b": flat_gradient[:, features]}

    def distribute(self, group: Any) -> None:
        super().distribute(group)
        if self._manual:  # S and c of the full data, once: Σ_r (n_r/N)·S_r, Σ_r (n_r/N)·c_r
            total = group.weighted_sum({"S": self._hessian, "c": self._target})
            self._hessian.copy_(total["S"])
            self._target.copy_(total["c"])

    @classmethod
    def stack(cls, members: list[Any], device: torch.device) -> Any:
        batched = super().stack(members, device)
        if batched._manual:
            batched._use_fast_path(torch.cat([m._theta for m in members]).to(device))
        return batched

    def step(self, index: int, with_loss: bool = True) -> torch.Tensor | None:
        if not self._manual:
            return super().step(index, with_loss)
        loss = None
        if with_loss:  # the loss before the update, evaluated only when it is logged
            with torch.no_grad():
                loss = self.loss(self._params, self.batch(index))
            if self._group is not None:
                loss = self._group.weighted_sum({"loss": loss})["loss"]
        # dL/dθ = S·θ − c (one fused batched multiply-add into a reused buffer)
        torch.baddbmm(self._target, self._theta_row, self._hessian, beta=-1, out=self._gradient)
        if isinstance(self.lr, torch.Tensor):  # one learning rate per member
            self._theta_row.addcmul_(self._gradient, self.lr[:, None, None], value=-1)
        else:
            self._theta_row.add_(self._gradient, alpha=-self.lr)  # θ ← θ − lr·dL/dθ
        return loss

    def batch(self, index: int) -> Tensors:
        return {"x": self.x, "y": self.y}

    @staticmethod
    def _forward(params: Tensors, x: torch.Tensor) -> torch.Tensor:
        # ŷ = Σ_f x_f·w_f + b, for every sample of every member: (K, N)
        return (x * params["w"][:, None, :]).sum(-1) + params["b"][:, None]

    def loss(self, params: Tensors, batch: Tensors) -> torch.Tensor:
        return (self._forward(params, batch["x"]) - batch["y"]).pow(2).mean(-1)  # mean((ŷ − y)²)

    def manual_backward(self, params: Tensors, batch: Tensors) -> tuple[torch.Tensor, Tensors]:
        x = batch["x"]
        params = {name: p.detach() for name, p in params.items()}
        residual = self._forward(params, x) - batch["y"]  # r = ŷ − y
        loss = residual.pow(2).mean(-1)  # L = mean(r²)
        # dL/dw = 2·mean(r·x),  dL/db = 2·mean(r)
        grad_w = (2 * residual[..., None] * x).mean(1)
        grad_b = (2 * residual).mean(1)
        return loss, {"w": grad_w, "b": grad_b}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        params = {name: p.detach() for name, p in self._params.items()}
        return self._forward(params, x.to(self.x.device)[None])


class NNLinear:
    """Experiment 3: nn.Linear + nn.MSELoss + optim.SGD, full batch, one member."""

    least_squares = LeastSquares(bias=True, per_sample=False)

    def __init__(self, cfg: NNLinearConfig, data: Dataset, device: torch.device,
                 generator: torch.Generator) -> None:
        features = data.x.shape[1]
        # nn.Linear(F, 1) initialised as its reset_parameters() does, but from our
        # generator: weight ~ kaiming_uniform(a=√5), bias ~ U(−1/√F, 1/√F), in that order.
        weight = torch.empty(1, features, dtype=data.x.dtype)
        nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
        bound = 1 / math.sqrt(features)
        bias = nn.init.uniform_(torch.empty(1, dtype=data.x.dtype), -bound, bound, generator=generator)
        if cfg.model.init_w is not None:
            weight.fill_(cfg.model.init_w)
        if cfg.model.init_b is not None:
            bias.fill_(cfg.model.init_b)
        self._initial = {"w": weight, "b": bias}  # on the CPU until the module is made
        self.x = data.x.to(device)  # (N, F)
        self.y = data.y.to(device)[:, None]  # (N, 1), the shape nn.Linear produces
        self.lr = cfg.train.lr
        self.steps_per_epoch = 1
        self._manual_flag = cfg.train.grad == "manual"
        self.step = self._manual_step if self._manual_flag else self._autograd_step
        self._group: Any = None

    # The module and its optimizer are made when first used: a sweep stacks its members'
    # initial values and never needs one module per member.
    @functools.cached_property
    def model(self) -> nn.Linear:
        weight, bias = self._initial["w"], self._initial["b"]
        model = nn.utils.skip_init(nn.Linear, weight.shape[1], 1, dtype=weight.dtype, device=self.x.device)
        with torch.no_grad():
            model.weight.copy_(weight)
            model.bias.copy_(bias)
        return model

    @functools.cached_property
    def optimizer(self) -> optim.SGD:
        return optim.SGD(self.model.parameters(), lr=self.lr)

    @functools.cached_property
    def criterion(self) -> nn.MSELoss:
        return nn.MSELoss()

    def distribute(self, group: Any) -> None:
        """Train this process's shard with DistributedDataParallel (see bpcli.distributed)."""
        from torch.nn.parallel import DistributedDataParallel

        from bpcli.distributed import collective

        self._collective = collective
        self._group = group
        self._ddp = DistributedDataParallel(self.model)
        # DDP averages the ranks' gradients; scaling each rank's loss by n_r·world/N turns
        # that average into the full batch's gradient Σ_r (n_r/N)·∇L_r, shards uneven or not.
        self._loss_scale = group.weight * group.world
        if not self._manual_flag:
            self.step = self._ddp_step

    def _ddp_step(self, index: int, with_loss: bool = True) -> torch.Tensor:
        out = self._ddp(self.x)
        loss = self.criterion(self.y, out)
        self.optimizer.zero_grad()
        with self._collective():
            (loss * self._loss_scale).backward()  # DDP all-reduces the gradients here
        self.optimizer.step()
        return self._group.weighted_sum({"loss": loss})["loss"] if with_loss else loss

    @staticmethod
    def stack(members: list[NNLinear], device: torch.device) -> StackedNNLinear:
        """Several nn-linear runs as one batched trainer on `device` (see StackedNNLinear)."""
        return StackedNNLinear(members, device)

    def batch(self, index: int) -> Tensors:
        return {"x": self.x, "y": self.y}

    def params(self) -> Tensors:
        # weight is (1, F): its leading 1 doubles as the member dimension.
        return {"w": self.model.weight, "b": self.model.bias}

    def loss(self, params: Tensors, batch: Tensors) -> torch.Tensor:
        out = F.linear(batch["x"], params["w"], params["b"])
        return F.mse_loss(batch["y"], out)[None]  # the article's argument order; MSE is symmetric

    def manual_backward(self, params: Tensors, batch: Tensors) -> tuple[torch.Tensor, Tensors]:
        x, w, b = batch["x"], params["w"].detach(), params["b"].detach()
        residual = F.linear(x, w, b) - batch["y"]  # r = X·wᵀ + b − y, shape (N, 1)
        loss = residual.pow(2).mean()  # L = mean(r²)
        scaled = (2 / residual.shape[0]) * residual  # dL/dr = 2r/N
        # dL/dw = (dL/dr)ᵀ·X, shape (1, F);  dL/db = Σ dL/dr, shape (1,)
        return loss[None], {"w": scaled.T @ x, "b": scaled.sum(0)}

    def _autograd_step(self, index: int, with_loss: bool = True) -> torch.Tensor:
        out = self.model(self.x)
        loss = self.criterion(self.y, out)  # exactly the article's loop
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        # One member: a 0-dim loss (indexing it would cost a few µs a step), detached so
        # that this step's autograd graph is freed now rather than with the next loss.
        return loss.detach()

    def _manual_step(self, index: int, with_loss: bool = True) -> torch.Tensor:
        loss, grads = self.manual_backward(self.params(), self.batch(index))
        if self._group is not None:  # Σ_r (n_r/N)·∇L_r, and the full batch's loss
            grads = self._group.weighted_sum(grads)
            loss = self._group.weighted_sum({"loss": loss})["loss"] if with_loss else loss
        self.model.weight.grad, self.model.bias.grad = grads["w"], grads["b"]
        self.optimizer.step()  # optim.SGD applies p ← p − lr·grad
        return loss

    def gradients(self) -> Tensors:
        return {name: p.grad if p.grad is not None else torch.zeros_like(p) for name, p in self.params().items()}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(x.to(self.x.device))[:, 0][None]

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


class StackedNNLinear(_HandWrittenSGD):
    """Several nn-linear runs trained side by side: weights (K, 1, F), biases (K, 1), each
    member's loss nn.Linear's output under MSELoss, and optim.SGD's update p ← p − lr·grad
    applied per member with its own lr.

    The linear layer is written out as a multiply and a sum over features, not as K tiny
    matrix products: on a GPU a batched product of K (N×F)·(F×1) matrices costs far more
    than the elementwise kernels, which is what lets 65 536 members step in a few times
    one member's time. The results equal the single runs' to float rounding.
    """

    least_squares = LeastSquares(bias=True, per_sample=False)

    def __init__(self, members: list[NNLinear], device: torch.device) -> None:
        self._manual = members[0]._manual_flag
        self._params = {name: torch.stack([m._initial[name] for m in members]).to(device)
                        .requires_grad_(not self._manual) for name in ("w", "b")}  # (K, 1, F), (K, 1)
        self._grads = {name: torch.zeros_like(p) for name, p in self._params.items()}
        self.x = torch.stack([m.x for m in members]).to(device)  # (K, N, F)
        self.y = torch.stack([m.y for m in members]).to(device)  # (K, N, 1)
        self.lr = torch.tensor([m.lr for m in members], dtype=self.x.dtype, device=device)
        self.steps_per_epoch = 1

    def batch(self, index: int) -> Tensors:
        return {"x": self.x, "y": self.y}

    @staticmethod
    def _forward(params: Tensors, x: torch.Tensor) -> torch.Tensor:
        # nn.Linear(F, 1) per member: ŷ = Σ_f x_f·w_f + b, shape (K, N, 1)
        w, b = params["w"], params["b"][:, None, :]
        if x.shape[-1] == 1:
            return torch.addcmul(b, x, w)  # one feature: b + x·w in one kernel
        return (x * w).sum(-1, keepdim=True) + b

    def loss(self, params: Tensors, batch: Tensors) -> torch.Tensor:
        # MSELoss per member: (ŷ − y)² in one kernel, then the mean over each member's samples
        return F.mse_loss(self._forward(params, batch["x"]), batch["y"], reduction="none").mean((1, 2))

    def manual_backward(self, params: Tensors, batch: Tensors) -> tuple[torch.Tensor, Tensors]:
        x = batch["x"]
        params = {name: p.detach() for name, p in params.items()}
        residual = self._forward(params, x) - batch["y"]  # r = ŷ − y, (K, N, 1)
        loss = residual.pow(2).mean((1, 2))
        # dL/dr = 2r/N:  dL/dw = (2/N)·Σ_n r·x per member, (K, 1, F);  dL/db = (2/N)·Σ_n r, (K, 1)
        # (the constant is applied to the K sums, not to the K·N residuals)
        scale = 2 / residual.shape[1]
        return loss, {"w": (residual * x).sum(1, keepdim=True).mul_(scale), "b": residual.sum(1).mul_(scale)}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        params = {name: p.detach() for name, p in self._params.items()}
        with torch.no_grad():
            return self._forward(params, x.to(self.x.device)[None])[..., 0]


# Activations with their derivatives, written in terms of the activation's output a = f(z)
# where that is cheaper: d tanh/dz = 1 − a², d sigmoid/dz = a·(1 − a), d relu/dz = [z > 0].
ACTIVATIONS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor],
                             Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = {
    "tanh": (torch.tanh, lambda z, a: 1 - a * a),
    "sigmoid": (torch.sigmoid, lambda z, a: a * (1 - a)),
    "relu": (torch.relu, lambda z, a: (z > 0).to(a.dtype)),
}


class MLP(_HandWrittenSGD):
    """A multi-layer perceptron fitted by full-batch gradient descent, with a backward
    pass written layer by layer."""

    least_squares = None

    def __init__(self, cfg: MLPConfig, data: Dataset, device: torch.device,
                 generator: torch.Generator) -> None:
        sizes = [data.x.shape[1], *cfg.model.hidden, 1]
        autograd = cfg.train.grad == "autograd"
        self._params = {}
        # Each layer initialised like nn.Linear: W, b ~ U(−1/√fan_in, 1/√fan_in), layer by layer.
        for layer, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:]), start=1):
            bound = 1 / math.sqrt(fan_in)
            weight = _uniform((1, fan_out, fan_in), generator, data.x.dtype, -bound, bound)
            bias = _uniform((1, fan_out), generator, data.x.dtype, -bound, bound)
            self._params[f"W{layer}"] = weight.to(device).requires_grad_(autograd)  # (K, out, in)
            self._params[f"b{layer}"] = bias.to(device).requires_grad_(autograd)  # (K, out)
        self._grads = {name: torch.zeros_like(p) for name, p in self._params.items()}
        self.layers = len(sizes) - 1
        self.activation, self.activation_grad = ACTIVATIONS[cfg.model.activation]
        self.x = data.x.to(device)[None]  # (K, N, F)
        self.y = data.y.to(device)[None]  # (K, N)
        self.lr = cfg.train.lr
        self._manual = not autograd
        self.steps_per_epoch = 1

    def batch(self, index: int) -> Tensors:
        return {"x": self.x, "y": self.y}

    def _forward(self, params: Tensors, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """ŷ, and every layer's input a and pre-activation z (kept for the backward pass)."""
        inputs, pre = [], []
        a = x
        for layer in range(1, self.layers + 1):
            inputs.append(a)
            z = a @ params[f"W{layer}"].transpose(-1, -2) + params[f"b{layer}"][:, None, :]  # z = a·Wᵀ + b
            pre.append(z)
            a = self.activation(z) if layer < self.layers else z  # the output layer is linear
        return a[..., 0], inputs, pre

    def loss(self, params: Tensors, batch: Tensors) -> torch.Tensor:
        y_hat, _, _ = self._forward(params, batch["x"])
        return (y_hat - batch["y"]).pow(2).mean(-1)  # L = mean((ŷ − y)²)

    def manual_backward(self, params: Tensors, batch: Tensors) -> tuple[torch.Tensor, Tensors]:
        params = {name: p.detach() for name, p in params.items()}
        y_hat, inputs, pre = self._forward(params, batch["x"])
        residual = y_hat - batch["y"]
        loss = residual.pow(2).mean(-1)
        grads: Tensors = {}
        # dL/dŷ = 2(ŷ − y)/N; the output layer is linear, so dL/dz_L = dL/dŷ.
        grad_z = (2 / residual.shape[-1]) * residual[..., None]  # (K, N, 1)
        for layer in range(self.layers, 0, -1):
            a_in = inputs[layer - 1]
            # z = a·Wᵀ + b:  dL/dW = (dL/dz)ᵀ·a,  dL/db = Σ_n dL/dz,  dL/da = dL/dz·W
            grads[f"W{layer}"] = grad_z.transpose(-1, -2) @ a_in
            grads[f"b{layer}"] = grad_z.sum(1)
            if layer > 1:
                grad_a = grad_z @ params[f"W{layer}"]
                # a = f(z) one layer down:  dL/dz = dL/da · f'(z)
                grad_z = grad_a * self.activation_grad(pre[layer - 2], a_in)
        return loss, {name: grads[name] for name in params}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        params = {name: p.detach() for name, p in self._params.items()}
        with torch.no_grad():
            return self._forward(params, x.to(self.x.device)[None])[0]


# The registry: kind name → the Trainer it builds. bpcli.config.CONFIG_CLASSES has the
# matching config classes under the same names.
KINDS: dict[str, Callable[[ExperimentConfig, Dataset, torch.device, torch.Generator], Trainer]] = {
    "scalar-sgd": ScalarSGD,
    "linear-gd": LinearGD,
    "nn-linear": NNLinear,
    "mlp": MLP,
}


def flat(tensors: Tensors) -> Tensors:
    """Each tensor as (K, values): how parameters and gradients are logged."""
    return {name: t.detach().reshape(t.shape[0], -1) for name, t in tensors.items()}
