"""Multinomial logistic regression: P(class c | x) = softmax(W·x + b)_c for C ≥ 2 classes, by
gradient descent on the mean cross-entropy, with a hand-written gradient."""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar, Literal

import torch

from bpcli.data.dataset import Dataset
from bpcli.errors import DataError
from bpcli.kinds.base import HandWrittenSGD, Kind, LinearClassifierExperiment, LinearModel, Tensors, linear_init
from bpcli.kinds.tasks import Classification, class_names, one_hot


class SoftmaxConfig(LinearClassifierExperiment):
    """Multinomial logistic regression softmax(W·x + b), mean cross-entropy, gradient descent."""

    kind: Literal["softmax"]
    """The experiment kind."""
    model: LinearModel
    """Initial parameters: init_w and init_b set every value of W and of b."""

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "data": {"source": "gauss", "n": 200, "noise": 0.5},
        "model": {},
        "train": {"lr": 0.5, "epochs": 1000, "log_every": 50, "grad": "manual"},
    }



class Softmax(HandWrittenSGD):
    """softmax(W·x + b) fitted by gradient descent on the mean cross-entropy."""

    least_squares = None

    def __init__(self, cfg: SoftmaxConfig, data: Dataset, device: torch.device,
                 generator: torch.Generator) -> None:
        classes = class_names(data)
        if len(classes) < 2:
            raise DataError(f"data: the target has {len(classes)} class; a classifier needs at least two")
        features, count = data.x.shape[1], len(classes)
        # Like nn.Linear: W, then b, ~ U(−1/√F, 1/√F), after the data.
        bound = 1 / math.sqrt(features)
        w, b = linear_init(cfg, (1, count, features), generator, data.x.dtype, -bound, bound)
        self.classes = count
        self.x = data.x.to(device)[None]  # (K, N, F)
        self.y = data.y.to(device)[None]  # (K, N): each sample's class index
        # W (K, C, F) and b (K, C)
        self._hold({"W": w, **({"b": b} if cfg.model.bias else {})}, device, cfg.train.grad == "manual")
        self._train_with(cfg)
        from bpcli import likelihood, optimizers

        # Σ_c dL/d(W_c, b_c) = 0, so a rule whose steps are a fixed linear combination of the
        # gradients keeps Σ_c (W_c, b_c) at its start (see likelihood.softmax_optimum); one that
        # scales each coordinate by its own gradient size, or decays the weights, does not.
        start = torch.cat([w[0], b[0][:, None]], dim=1) if cfg.model.bias else w[0]
        loss = "mean cross-entropy"
        extra = {"model": "P(class c) = softmax(W·x + b)_c"}
        if not optimizers.OPTIMIZERS[cfg.train.optimizer].linear(optimizers.settings_of(cfg.train)):
            extra["optimum_note"] = (f"{optimizers.describe(cfg.train)} does not keep Σ_c W_c at its start, so this "
                                     "run approaches another of the equivalent optima (or, with weight decay, "
                                     "another loss's): its distance to the one reported need not fall to 0")
        self.task = Classification(
            classes=classes, loss_name=loss,
            solve=functools.partial(likelihood.softmax_optimum, classes=count, bias=cfg.model.bias,
                                    sums=start.sum(0).to(torch.float64)),
            bound=lambda data, train: likelihood.stable_lr(data, cfg.model.bias, train, 0.5, loss),
            extra=extra,
        )

    @staticmethod
    def _logits(params: Tensors, x: torch.Tensor) -> torch.Tensor:
        # Z = X·Wᵀ + b: every class's logit for every sample of every member, (K, N, C)
        z = x @ params["W"].transpose(-1, -2)
        return z + params["b"][:, None, :] if "b" in params else z

    def loss(self, params: Tensors, batch: Tensors) -> torch.Tensor:
        # −log softmax(z)_y = logsumexp(z) − z_y; logsumexp subtracts max(z) first, so no e^z overflows
        z = self._logits(params, batch["x"])
        own = z.gather(-1, batch["y"].long()[..., None])[..., 0]
        return (torch.logsumexp(z, -1) - own).mean(-1)

    def manual_backward(self, params: Tensors, batch: Tensors) -> tuple[torch.Tensor, Tensors]:
        x, y = batch["x"], batch["y"]
        params = {name: p.detach() for name, p in params.items()}
        z = self._logits(params, x)
        targets = one_hot(y, self.classes, z.dtype)  # Y, (K, N, C)
        loss = (torch.logsumexp(z, -1) - (z * targets).sum(-1)).mean(-1)  # L = mean(logsumexp(z) − z_y)
        # dL/dZ = (softmax(Z) − Y)/N, and Z = X·Wᵀ + b, so
        # dL/dW = (softmax(Z) − Y)ᵀ·X/N,  dL/db = mean over samples of (softmax(Z) − Y)
        error = torch.softmax(z, -1) - targets  # (K, N, C)
        grads = {"W": error.transpose(-1, -2) @ x / x.shape[1]}
        if "b" in params:
            grads["b"] = error.mean(1)
        return loss, grads

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Every class's probability for every input: (K, M, C)."""
        params = {name: p.detach() for name, p in self._params.items()}
        return torch.softmax(self._logits(params, x.to(self.x.device)[None]), -1)


KIND = Kind("softmax", SoftmaxConfig, Softmax)
