"""The experiment kinds: each one's model, gradient and update, reached through KINDS.

Every kind builds a Trainer that the shared loop in bpcli.training drives. Tensors carry
a leading *member* dimension K (K = 1 for a single run), so that the same code can later
train many independent models in one batched step; a gradient formula therefore reads
the same for K = 1 and K > 1.

Random draws happen on the CPU generator in the article's order (data, then parameters),
so a seed reproduces the article's numbers on every device.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Protocol

import torch
from torch import nn, optim

from bpcli.config import ExperimentConfig, LinearGDConfig, NNLinearConfig, ScalarSGDConfig
from bpcli.data import Dataset


class Trainer(Protocol):
    """A built experiment: parameters on the device and the step that updates them."""

    steps_per_epoch: int
    """Updates in one pass over the data (N for per-sample kinds, 1 for full-batch)."""

    def step(self, index: int) -> torch.Tensor:
        """Update with batch `index` of the epoch; return its loss per member, shape (K,).

        The loss is the one computed before the update. No host synchronisation happens
        here: the caller decides when to read values back.
        """
        ...

    def parameters(self) -> dict[str, torch.Tensor]:
        """Current parameter values by name, each with a leading member dimension."""
        ...

    def gradients(self) -> dict[str, torch.Tensor]:
        """The gradients of the latest step, with the same names and shapes."""
        ...

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predictions for inputs x of shape (M, F): shape (K, M)."""
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything the next step depends on (parameters, optimizer state), for a checkpoint."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict() returned, so training continues bit for bit."""
        ...


def _draw_uniform(
    shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype, low: float = 0.0, high: float = 1.0
) -> torch.Tensor:
    # Equal to torch.rand(shape) for [0, 1) when drawn from the same generator.
    return torch.empty(shape, dtype=dtype).uniform_(low, high, generator=generator)


class ScalarSGD:
    """Experiment 1: y = w·x, per-sample SGD in data order, one update per sample."""

    def __init__(
        self, cfg: ScalarSGDConfig, data: Dataset, device: torch.device, generator: torch.Generator
    ) -> None:
        dtype = data.x.dtype
        # Parameters are drawn after the data, as in the article. A fixed init_w is still
        # drawn first, so changing it leaves every later draw unchanged.
        w = _draw_uniform((1,), generator, dtype)
        if cfg.model.init_w is not None:
            w.fill_(cfg.model.init_w)
        self.w = w.to(device)  # (K,)
        self.x = data.x[:, 0].to(device)[None, :]  # (K, N)
        self.y = data.y.to(device)[None, :]  # (K, N)
        self.lr = cfg.train.lr
        self.steps_per_epoch = data.x.shape[0]
        self._grad = torch.zeros_like(self.w)
        self.w.requires_grad_(cfg.train.grad == "autograd")
        self.step = self._manual_step if cfg.train.grad == "manual" else self._autograd_step

    def _manual_step(self, index: int) -> torch.Tensor:
        x, y = self.x[:, index], self.y[:, index]
        residual = self.w * x - y  # ŷ − y, with ŷ = w·x
        loss = residual.pow(2)  # L = (ŷ − y)²
        # dL/dw = dL/dŷ · dŷ/dw = 2·(w·x − y) · x
        self._grad = 2 * x * residual
        self.w.sub_(self.lr * self._grad)  # w ← w − lr·dL/dw
        return loss

    def _autograd_step(self, index: int) -> torch.Tensor:
        x, y = self.x[:, index], self.y[:, index]
        loss = (x * self.w - y).pow(2)
        loss.sum().backward()  # members are independent: the sum keeps each one's gradient
        with torch.no_grad():
            self._grad = self.w.grad
            self.w.sub_(self.lr * self._grad)
        self.w.grad = None  # the article zeroes the gradient after every update
        return loss.detach()

    def parameters(self) -> dict[str, torch.Tensor]:
        return {"w": self.w.detach()[:, None]}

    def gradients(self) -> dict[str, torch.Tensor]:
        return {"w": self._grad[:, None]}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self.w.detach()[:, None] * x[None, :, 0]

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.w.copy_(state["w"])


class LinearGD:
    """Experiment 2: y = w·x + b, full-batch gradient descent with a hand-written update."""

    def __init__(
        self, cfg: LinearGDConfig, data: Dataset, device: torch.device, generator: torch.Generator
    ) -> None:
        dtype = data.x.dtype
        features = data.x.shape[1]
        # The article draws w = torch.rand(1), then b = torch.rand(1), after the data.
        w = _draw_uniform((1, features), generator, dtype)
        b = _draw_uniform((1,), generator, dtype)
        if cfg.model.init_w is not None:
            w.fill_(cfg.model.init_w)
        if cfg.model.init_b is not None:
            b.fill_(cfg.model.init_b)
        self.w, self.b = w.to(device), b.to(device)  # (K, F), (K,)
        self.x = data.x.to(device)[None]  # (K, N, F)
        self.y = data.y.to(device)[None]  # (K, N)
        self.lr = cfg.train.lr
        self.steps_per_epoch = 1
        self._grads = {"w": torch.zeros_like(self.w), "b": torch.zeros_like(self.b)}
        for p in (self.w, self.b):
            p.requires_grad_(cfg.train.grad == "autograd")
        self.step = self._manual_step if cfg.train.grad == "manual" else self._autograd_step

    def _forward(self) -> torch.Tensor:
        # ŷ = Σ_f x_f·w_f + b, for every sample of every member: (K, N)
        return (self.x * self.w[:, None, :]).sum(-1) + self.b[:, None]

    def _manual_step(self, index: int) -> torch.Tensor:
        residual = self._forward() - self.y  # r = ŷ − y
        loss = residual.pow(2).mean(-1)  # L = mean(r²)
        # dL/dw = 2·mean(r·x),  dL/db = 2·mean(r)
        grad_w = (2 * residual[..., None] * self.x).mean(1)
        grad_b = (2 * residual).mean(1)
        self.w.sub_(self.lr * grad_w)  # p ← p − lr·dL/dp
        self.b.sub_(self.lr * grad_b)
        self._grads = {"w": grad_w, "b": grad_b}
        return loss

    def _autograd_step(self, index: int) -> torch.Tensor:
        loss = (self._forward() - self.y).pow(2).mean(-1)
        loss.sum().backward()
        with torch.no_grad():
            self.w.sub_(self.lr * self.w.grad)
            self.b.sub_(self.lr * self.b.grad)
        self._grads = {"w": self.w.grad, "b": self.b.grad}
        self.w.grad = self.b.grad = None  # the article zeroes gradients before each backward
        return loss.detach()

    def parameters(self) -> dict[str, torch.Tensor]:
        return {"w": self.w.detach(), "b": self.b.detach()[:, None]}

    def gradients(self) -> dict[str, torch.Tensor]:
        return {"w": self._grads["w"], "b": self._grads["b"][:, None]}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return (x[None] * self.w.detach()[:, None, :]).sum(-1) + self.b.detach()[:, None]

    def state_dict(self) -> dict[str, Any]:
        return {"w": self.w.detach().clone(), "b": self.b.detach().clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            self.w.copy_(state["w"])
            self.b.copy_(state["b"])


class NNLinear:
    """Experiment 3: nn.Linear + nn.MSELoss + optim.SGD, full batch, one member."""

    def __init__(
        self, cfg: NNLinearConfig, data: Dataset, device: torch.device, generator: torch.Generator
    ) -> None:
        features = data.x.shape[1]
        # nn.Linear(F, 1) initialised as its reset_parameters() does, but from our
        # generator: weight ~ kaiming_uniform(a=√5), bias ~ U(−1/√F, 1/√F), in that order.
        model = nn.utils.skip_init(nn.Linear, features, 1, dtype=data.x.dtype)
        nn.init.kaiming_uniform_(model.weight, a=math.sqrt(5), generator=generator)
        bound = 1 / math.sqrt(features)
        nn.init.uniform_(model.bias, -bound, bound, generator=generator)
        with torch.no_grad():
            if cfg.model.init_w is not None:
                model.weight.fill_(cfg.model.init_w)
            if cfg.model.init_b is not None:
                model.bias.fill_(cfg.model.init_b)
        self.model = model.to(device)
        self.x = data.x.to(device)  # (N, F)
        self.y = data.y.to(device)[:, None]  # (N, 1), the shape nn.Linear produces
        self.criterion = nn.MSELoss()
        self.optimizer = optim.SGD(self.model.parameters(), lr=cfg.train.lr)
        self.steps_per_epoch = 1
        self.step = self._manual_step if cfg.train.grad == "manual" else self._autograd_step

    def _autograd_step(self, index: int) -> torch.Tensor:
        out = self.model(self.x)
        loss = self.criterion(self.y, out)  # the article's argument order; MSE is symmetric
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.detach()[None]

    def _manual_step(self, index: int) -> torch.Tensor:
        weight, bias = self.model.weight, self.model.bias
        with torch.no_grad():
            residual = self.model(self.x) - self.y  # r = Xwᵀ + b − y, shape (N, 1)
            loss = residual.pow(2).mean()  # L = mean(r²)
            scaled = (2 / residual.shape[0]) * residual  # dL/dr = 2r/N
            # dL/dW = (dL/dr)ᵀ·X, shape (1, F);  dL/db = Σ dL/dr, shape (1,)
            weight.grad = scaled.T @ self.x
            bias.grad = scaled.sum(0)
        self.optimizer.step()  # optim.SGD applies p ← p − lr·grad
        return loss[None]

    def parameters(self) -> dict[str, torch.Tensor]:
        return {"w": self.model.weight.detach(), "b": self.model.bias.detach()[:, None]}

    def gradients(self) -> dict[str, torch.Tensor]:
        weight, bias = self.model.weight.grad, self.model.bias.grad
        if weight is None or bias is None:
            return {name: torch.zeros_like(p) for name, p in self.parameters().items()}
        return {"w": weight, "b": bias[:, None]}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.model(x.to(self.x.device))[:, 0][None]

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])


# The registry: kind name → the Trainer it builds. bpcli.config.CONFIG_CLASSES has the
# matching config classes under the same names.
KINDS: dict[str, Callable[[ExperimentConfig, Dataset, torch.device, torch.Generator], Trainer]] = {
    "scalar-sgd": ScalarSGD,
    "linear-gd": LinearGD,
    "nn-linear": NNLinear,
}
