"""Experiment 1: y = w·x, trained by per-sample SGD in data order, one update per sample
(or by mini-batches of train.batch_size samples)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
from pydantic import model_validator

from bpcli.config.schema import Experiment
from bpcli.section import Section
from bpcli.data.dataset import Dataset
from bpcli.errors import BpcliError
from bpcli.kinds.base import (HandWrittenSGD, Kind, LeastSquares, Tensors, refuse_standardising_without_intercept,
                              uniform)


class ScalarModel(Section):
    """The one weight of y = w·x."""

    init_w: float | None = None
    """Starting value of w; null draws it from U[0, 1) with the seed."""


class ScalarSGDConfig(Experiment):
    """Experiment 1: y = w·x trained by per-sample SGD, one update per sample."""

    kind: Literal["scalar-sgd"]
    """The experiment kind."""
    model: ScalarModel
    """Initial parameters."""

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "data": {"source": "inline", "x": [1.0, 2.0, 3.0], "y": [2.0, 4.0, 6.0], "true_w": 2.0},
        "model": {"init_w": 1.0},
        "train": {"lr": 0.01, "epochs": 100, "log_every": 1, "grad": "manual"},
        "predict": [4.0],
    }

    @model_validator(mode="after")
    def _one_feature(self) -> ScalarSGDConfig:
        if self.data.source == "csv" and len(self.data.features or []) != 1:
            raise ValueError(
                "scalar-sgd fits y = w·x with one input: set data.features to one column, "
                "or use kind linear-gd for several"
            )
        return self

    @model_validator(mode="after")
    def _not_standardised(self) -> ScalarSGDConfig:
        refuse_standardising_without_intercept(self, "scalar-sgd", "use kind linear-gd, which has an intercept b")
        return self

    @model_validator(mode="after")
    def _no_bias(self) -> ScalarSGDConfig:
        if getattr(self.data, "true_b", None) not in (None, 0.0):
            raise ValueError(
                "scalar-sgd fits y = w·x, which has no bias: set data.true_b to 0, "
                "or use kind linear-gd to fit y = w·x + b"
            )
        return self


class ScalarSGD(HandWrittenSGD):
    """y = w·x, per-sample SGD in data order, one update per sample."""

    least_squares = LeastSquares(bias=False, per_sample=True)

    def __init__(self, cfg: ScalarSGDConfig, data: Dataset, device: torch.device,
                 generator: torch.Generator) -> None:
        # w is drawn after the data, as in the article. A fixed init_w is still drawn
        # first, so changing it leaves every later draw unchanged.
        w = uniform((1,), generator, data.x.dtype)
        if cfg.model.init_w is not None:
            w.fill_(cfg.model.init_w)
        self._params = {"w": w.to(device).requires_grad_(cfg.train.grad == "autograd")}  # (K,)
        self._grads = {"w": torch.zeros_like(self._params["w"])}
        self.x = data.x[:, 0].to(device)[None, :]  # (K, N)
        self.y = data.y.to(device)[None, :]  # (K, N)
        self._manual = cfg.train.grad == "manual"
        self._train_with(cfg, per_sample=True)  # one sample per update unless batch_size says otherwise

    def distribute(self, group: Any) -> None:
        raise BpcliError("scalar-sgd updates after every single sample, in order, so there is nothing "
                         "to share between processes; run it without torchrun")

    def batch(self, index: int) -> Tensors:
        batch = self.batches(index)
        if self.batches.size == 1:  # one sample per step: x and y are numbers, (K,), as in the article
            return {name: values[:, 0] for name, values in batch.items()}
        return batch  # (K, B)

    def loss(self, params: Tensors, batch: Tensors) -> torch.Tensor:
        x, y = batch["x"], batch["y"]
        if x.dim() == 1:
            return (x * params["w"] - y).pow(2)  # L = (x·w − y)², the article's order
        return (x * params["w"][:, None] - y).pow(2).mean(-1)  # L = mean((x·w − y)²) over the batch

    def manual_backward(self, params: Tensors, batch: Tensors) -> tuple[torch.Tensor, Tensors]:
        x, y, w = batch["x"], batch["y"], params["w"].detach()
        if x.dim() == 1:
            residual = w * x - y  # ŷ − y, with ŷ = w·x
            loss = residual.pow(2)  # L = (ŷ − y)²
            # dL/dw = dL/dŷ · dŷ/dw = 2·(w·x − y) · x
            return loss, {"w": 2 * x * residual}
        residual = w[:, None] * x - y
        # over a batch the loss is the mean, and so is its gradient: dL/dw = mean(2·(w·x − y)·x)
        return residual.pow(2).mean(-1), {"w": (2 * x * residual).mean(-1)}

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return self._params["w"].detach()[:, None] * x.to(self.x.device)[None, :, 0]


KIND = Kind("scalar-sgd", ScalarSGDConfig, ScalarSGD)
