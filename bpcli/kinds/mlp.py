"""A multi-layer perceptron learning a curve, with a backward pass written layer by layer."""

from __future__ import annotations

import math
from typing import Annotated, Any, Callable, ClassVar, Literal

import torch
from pydantic import Field

from bpcli.config.schema import Experiment
from bpcli.section import Section
from bpcli.data.dataset import Dataset
from bpcli.kinds.base import HandWrittenSGD, Kind, Tensors, uniform

# Activations with their derivatives, written in terms of the activation's output a = f(z)
# where that is cheaper: d tanh/dz = 1 − a², d sigmoid/dz = a·(1 − a), d relu/dz = [z > 0].
ACTIVATIONS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor],
                             Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = {
    "tanh": (torch.tanh, lambda z, a: 1 - a * a),
    "sigmoid": (torch.sigmoid, lambda z, a: a * (1 - a)),
    "relu": (torch.relu, lambda z, a: (z > 0).to(a.dtype)),
}


class MLPModel(Section):
    """The layers of a multi-layer perceptron."""

    hidden: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=lambda: [16, 16], min_length=1, max_length=8
    )
    """Sizes of the hidden layers, input side first."""
    activation: Literal[tuple(ACTIVATIONS)] = "tanh"  # type: ignore[valid-type]
    """The nonlinearity after every hidden layer (the output layer is linear)."""


class MLPConfig(Experiment):
    """A multi-layer perceptron learning a curve, with a hand-written backward pass."""

    kind: Literal["mlp"]
    """The experiment kind."""
    model: MLPModel
    """The network's layers."""

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "data": {"source": "function", "fn": "sin", "n": 200, "noise": 0.05},
        "model": {"hidden": [16, 16], "activation": "tanh"},
        "train": {"lr": 0.1, "epochs": 3000, "log_every": 100, "grad": "manual"},
    }


class MLP(HandWrittenSGD):
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
            weight = uniform((1, fan_out, fan_in), generator, data.x.dtype, -bound, bound)
            bias = uniform((1, fan_out), generator, data.x.dtype, -bound, bound)
            self._params[f"W{layer}"] = weight.to(device).requires_grad_(autograd)  # (K, out, in)
            self._params[f"b{layer}"] = bias.to(device).requires_grad_(autograd)  # (K, out)
        self._grads = {name: torch.zeros_like(p) for name, p in self._params.items()}
        self.layers = len(sizes) - 1
        self.activation, self.activation_grad = ACTIVATIONS[cfg.model.activation]
        self.x = data.x.to(device)[None]  # (K, N, F)
        self.y = data.y.to(device)[None]  # (K, N)
        self._manual = not autograd
        self._train_with(cfg)

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


KIND = Kind("mlp", MLPConfig, MLP)
