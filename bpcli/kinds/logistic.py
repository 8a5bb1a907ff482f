"""Binary logistic regression: P(y = 1 | x) = σ(w·x + b), by gradient descent on the mean
binary cross-entropy, with a hand-written gradient."""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

from bpcli.data.dataset import Dataset
from bpcli.errors import DataError
from bpcli.kinds.base import HandWrittenSGD, Kind, LinearClassifierExperiment, LinearModel, Tensors, linear_init
from bpcli.kinds.tasks import Classification, class_names


class LogisticConfig(LinearClassifierExperiment):
    """Binary logistic regression σ(w·x + b), mean binary cross-entropy, gradient descent."""

    kind: Literal["logistic"]
    """The experiment kind."""
    model: LinearModel
    """Initial parameters."""

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "data": {"source": "moons", "n": 200, "noise": 0.1},
        "model": {},
        "train": {"lr": 0.5, "epochs": 1000, "log_every": 50, "grad": "manual"},
    }



def softplus(z: torch.Tensor) -> torch.Tensor:
    """log(1 + e^z), exactly and without overflow for any z: max(z, 0) + log(1 + e^−|z|)."""
    return z.clamp_min(0) + torch.log1p(torch.exp(-z.abs()))


class Logistic(HandWrittenSGD):
    """σ(w·x + b) fitted by gradient descent on the mean binary cross-entropy."""

    least_squares = None

    def __init__(self, cfg: LogisticConfig, data: Dataset, device: torch.device,
                 generator: torch.Generator) -> None:
        classes = class_names(data)
        if len(classes) != 2:
            raise DataError(f"data: logistic regression tells two classes apart, and the target has {len(classes)} "
                            f"({', '.join(classes[:5])}{', …' if len(classes) > 5 else ''}); use kind: softmax for "
                            "more than two")
        features = data.x.shape[1]
        # As linear-gd: w ~ U[0, 1) per feature, then b ~ U[0, 1), after the data.
        w, b = linear_init(cfg, (1, features), generator, data.x.dtype)
        self.x = data.x.to(device)[None]  # (K, N, F)
        self.y = data.y.to(device)[None]  # (K, N): 0 or 1, the index of each sample's class
        self._hold({"w": w, **({"b": b} if cfg.model.bias else {})}, device, cfg.train.grad == "manual")  # (K, F), (K,)
        self._train_with(cfg)
        from bpcli import likelihood

        loss = "mean binary cross-entropy"
        self.task = Classification(
            classes=classes, loss_name=loss,
            solve=functools.partial(likelihood.logistic_optimum, bias=cfg.model.bias),
            bound=lambda data, train: likelihood.stable_lr(data, cfg.model.bias, train, 0.25, loss),
            extra={"model": "P(y = 1) = σ(w·x + b), y = 1 for the second class"},
        )

    @staticmethod
    def _logits(params: Tensors, x: torch.Tensor) -> torch.Tensor:
        # z = Σ_f x_f·w_f + b (or without b), for every sample of every member: (K, N)
        z = (x * params["w"][:, None, :]).sum(-1)
        return z + params["b"][:, None] if "b" in params else z

    def loss(self, params: Tensors, batch: Tensors) -> torch.Tensor:
        # −[y·log σ(z) + (1 − y)·log(1 − σ(z))] = softplus(z) − y·z, since log σ(z) = z − softplus(z)
        # and log(1 − σ(z)) = −softplus(z): computed from z, it never takes the log of a rounded 0.
        # torch's binary_cross_entropy_with_logits computes the same, stably, in one fused kernel
        # (forward and backward), which is what makes an autograd step as fast as a plain torch loop.
        z = self._logits(params, batch["x"])
        return F.binary_cross_entropy_with_logits(z, batch["y"], reduction="none").mean(-1)

    def manual_backward(self, params: Tensors, batch: Tensors) -> tuple[torch.Tensor, Tensors]:
        x, y = batch["x"], batch["y"]
        params = {name: p.detach() for name, p in params.items()}
        z = self._logits(params, x)
        loss = (softplus(z) - y * z).mean(-1)  # L = mean(softplus(z) − y·z)
        # dL/dz_n = (σ(z_n) − y_n)/N  (d softplus/dz = σ(z)), and z = x·w + b, so
        # dL/dw = Xᵀ(σ(z) − y)/N = mean((σ(z) − y)·x),  dL/db = mean(σ(z) − y)
        error = torch.sigmoid(z) - y
        grads = {"w": (error[..., None] * x).mean(1)}
        if "b" in params:
            grads["b"] = error.mean(1)
        return loss, grads

    def explained_loss(self, params: Tensors, batch: Tensors) -> torch.Tensor:
        """The loss as a learner writes it, for `bpcli explain`: p = σ(z), then
        L = mean(−[y·log p + (1 − y)·log(1 − p)]), so that the graph shows σ with its local
        derivative σ(1 − σ). Equal to `loss`, but it takes log(0) once σ(z) rounds to 0 or 1,
        so then the stable form softplus(z) − y·z is explained."""
        with torch.no_grad():  # not a node of the graph
            p = torch.sigmoid(self._logits({name: t.detach() for name, t in params.items()}, batch["x"]))
        if not bool(((p > 0) & (p < 1)).all()):  # the stable form, written out: softplus(z) − y·z
            z = self._logits(params, batch["x"])
            return (softplus(z) - batch["y"] * z).mean(-1)
        p = torch.sigmoid(self._logits(params, batch["x"]))
        y = batch["y"]
        return (-(y * torch.log(p) + (1 - y) * torch.log(1 - p))).mean(-1)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """[P(class 0), P(class 1)] for every input: (K, M, 2)."""
        params = {name: p.detach() for name, p in self._params.items()}
        p = torch.sigmoid(self._logits(params, x.to(self.x.device)[None]))
        return torch.stack([1 - p, p], dim=-1)


KIND = Kind("logistic", LogisticConfig, Logistic)
