"""Experiment 2: y = w·x + b by full-batch gradient descent with a hand-written update."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch

from bpcli.data.dataset import Dataset
from bpcli.kinds.base import HandWrittenSGD, Kind, LeastSquares, LinearExperiment, LinearModel, Tensors, linear_init
from bpcli.optimizers import Optimizer


class LinearGDConfig(LinearExperiment):
    """Experiment 2: y = w·x + b by full-batch gradient descent with a hand-written update."""

    kind: Literal["linear-gd"]
    """The experiment kind."""
    model: LinearModel
    """Initial parameters."""

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "data": {"source": "synthetic", "n": 100, "true_w": 4.0, "true_b": 0.6},
        "model": {},
        "train": {"lr": 0.01, "epochs": 3000, "log_every": 500, "grad": "autograd"},
    }



class LinearGD(HandWrittenSGD):
    """y = w·x + b, full-batch gradient descent with a hand-written update."""

    least_squares = LeastSquares(bias=True, per_sample=False)

    def __init__(self, cfg: LinearGDConfig, data: Dataset, device: torch.device,
                 generator: torch.Generator) -> None:
        features = data.x.shape[1]
        # The article draws w = torch.rand(1), then b = torch.rand(1), after the data.
        w, b = linear_init(cfg, (1, features), generator, data.x.dtype)
        self.least_squares = LeastSquares(bias=cfg.model.bias, per_sample=False)
        self.x = data.x.to(device)[None]  # (K, N, F)
        self.y = data.y.to(device)[None]  # (K, N)
        self._hold({"w": w, **({"b": b} if cfg.model.bias else {})}, device, cfg.train.grad == "manual")  # (K, F), (K,)
        self._train_with(cfg)
        self._fast = self._manual and self.batches.full
        """Hand-derived gradients of the full batch: the precomputed S·θ − c below."""
        if self._fast:
            self._use_fast_path(torch.cat([w, b.reshape(1, -1)], dim=1).to(device), [cfg.train])

    def _use_fast_path(self, theta: torch.Tensor, settings: list[Any]) -> None:
        # With θ = (w, b) and A = [x, 1], the loss is mean((A·θ − y)²) and its gradient
        # dL/dθ = (2/N)·Aᵀ(A·θ − y) = S·θ − c, where S = (2/N)·AᵀA and c = (2/N)·Aᵀy depend
        # on the data alone. Computed once (in float64), they make each step two small
        # in-place operations, whatever the number of samples N.
        bias = int(self.least_squares.bias)  # without it, θ = w and A = x
        features = theta.shape[1] - bias
        self._theta = theta  # (K, F + 1); w and b are views into it
        self._theta_row = theta[:, None, :]  # the same numbers, shaped for the batched multiply
        self._params = {"w": theta[:, :features], **({"b": theta[:, features]} if bias else {})}
        a = torch.cat([self.x, torch.ones_like(self.x[..., :bias])], dim=-1).to(torch.float64)
        n = a.shape[1]
        self._hessian = ((2 / n) * a.transpose(1, 2) @ a).to(theta.dtype)  # S, (K, F+1, F+1)
        self._target = ((2 / n) * (a.transpose(1, 2) @ self.y.to(torch.float64)[..., None])).to(theta.dtype)
        self._target = self._target.transpose(1, 2)  # c, (K, 1, F+1)
        self._gradient = torch.zeros_like(self._target)  # reused every step, (K, 1, F+1)
        flat_gradient = self._gradient[:, 0]
        self._grads = {"w": flat_gradient[:, :features], **({"b": flat_gradient[:, features]} if bias else {})}
        self.optimizer = Optimizer({"θ": self._theta_row}, settings, self.updates(settings[0]))  # it updates θ itself

    def distribute(self, group: Any) -> None:
        super().distribute(group)
        if self._fast:  # S and c of the full data, once: Σ_r (n_r/N)·S_r, Σ_r (n_r/N)·c_r
            total = group.weighted_sum({"S": self._hessian, "c": self._target})
            self._hessian.copy_(total["S"])
            self._target.copy_(total["c"])

    @classmethod
    def stack(cls, members: list[Any], device: torch.device) -> Any:
        batched = super().stack(members, device)
        if batched._fast:
            batched._use_fast_path(torch.cat([m._theta for m in members]).to(device), [m.train for m in members])
        return batched

    def step(self, index: int, with_loss: bool = True) -> torch.Tensor | None:
        if not self._fast:
            return super().step(index, with_loss)
        loss = None
        if with_loss:  # the loss before the update, evaluated only when it is logged
            with torch.no_grad():
                loss = self.loss(self._params, self.batch(index))
            if self._group is not None:
                loss = self._group.weighted_sum({"loss": loss})["loss"]
        # dL/dθ = S·θ − c (one fused batched multiply-add into a reused buffer)
        torch.baddbmm(self._target, self._theta_row, self._hessian, beta=-1, out=self._gradient)
        lr = self.optimizer.settings["lr"]
        if not self.optimizer.plain:  # another rule or a schedule, from the same gradient
            self.optimizer.step({"θ": self._theta_row}, {"θ": self._gradient})
        elif isinstance(lr, torch.Tensor):  # one learning rate per member
            self._theta_row.addcmul_(self._gradient, lr[:, None, None], value=-1)
        else:
            self._theta_row.add_(self._gradient, alpha=-lr)  # θ ← θ − lr·dL/dθ
        return loss

    @staticmethod
    def _forward(params: Tensors, x: torch.Tensor) -> torch.Tensor:
        # ŷ = Σ_f x_f·w_f + b (or without b), for every sample of every member: (K, N)
        out = (x * params["w"][:, None, :]).sum(-1)
        return out + params["b"][:, None] if "b" in params else out

    def loss(self, params: Tensors, batch: Tensors) -> torch.Tensor:
        return (self._forward(params, batch["x"]) - batch["y"]).pow(2).mean(-1)  # mean((ŷ − y)²)

    def manual_backward(self, params: Tensors, batch: Tensors) -> tuple[torch.Tensor, Tensors]:
        x = batch["x"]
        params = {name: p.detach() for name, p in params.items()}
        residual = self._forward(params, x) - batch["y"]  # r = ŷ − y
        loss = residual.pow(2).mean(-1)  # L = mean(r²)
        # dL/dw = 2·mean(r·x),  dL/db = 2·mean(r)
        grads = {"w": (2 * residual[..., None] * x).mean(1)}
        if "b" in params:
            grads["b"] = (2 * residual).mean(1)
        return loss, grads

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        params = {name: p.detach() for name, p in self._params.items()}
        return self._forward(params, x.to(self.x.device)[None])


KIND = Kind("linear-gd", LinearGDConfig, LinearGD)
