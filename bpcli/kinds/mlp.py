"""A multi-layer perceptron learning a curve or classes, with a backward pass written
layer by layer.

The network's last layer is linear: its outputs S (K, N, O) are a prediction ŷ (mse), a
logit s (bce), a score s (hinge), or one score per class (cross-entropy). What the loss
makes of S, and the gradient dL/dS that starts the backward pass, live in LOSSES.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any, Callable, ClassVar, Literal

import torch
from pydantic import Field, model_validator

from bpcli.config.schema import Experiment
from bpcli.data import targets_mismatch
from bpcli.errors import DataError
from bpcli.section import Section
from bpcli.data.dataset import Dataset
from bpcli.kinds.base import HandWrittenSGD, Kind, Tensors, uniform
from bpcli.kinds.tasks import Classification

# Activations with their derivatives, written in terms of the activation's output a = f(z)
# where that is cheaper: d tanh/dz = 1 − a², d sigmoid/dz = a·(1 − a), d relu/dz = [z > 0].
ACTIVATIONS: dict[str, tuple[Callable[[torch.Tensor], torch.Tensor],
                             Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]] = {
    "tanh": (torch.tanh, lambda z, a: 1 - a * a),
    "sigmoid": (torch.sigmoid, lambda z, a: a * (1 - a)),
    "relu": (torch.relu, lambda z, a: (z > 0).to(a.dtype)),
}


# --------------------------------------------------------------------------- the output losses
#
# S is the output layer's (K, N, O); y is (K, N) or (1, N) (a sweep's validation rows are
# shared by its members): numbers for mse, class indices 0 … C − 1 as floats otherwise.
# Each loss is the mean over the N samples of the batch, so every dL/dS carries 1/N.


def _mse(S: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (S[..., 0] - y).pow(2).mean(-1)  # L = mean((ŷ − y)²)


def _mse_grad(S: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    residual = S[..., 0] - y
    return (2 / residual.shape[-1]) * residual[..., None]  # dL/dŷ = 2(ŷ − y)/N


def _bce(S: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # L = mean(−y·log σ(s) − (1 − y)·log(1 − σ(s))) = mean(log(1 + eˢ) − y·s), computed by
    # torch from the logit s as max(s, 0) − y·s + log(1 + e^−|s|): no overflow for large |s|.
    s = S[..., 0]
    return torch.nn.functional.binary_cross_entropy_with_logits(s, y.expand_as(s), reduction="none").mean(-1)


def _bce_grad(S: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s = S[..., 0]
    return ((torch.sigmoid(s) - y) / s.shape[-1])[..., None]  # dL/ds = (σ(s) − y)/N


def _hinge(S: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # micrograd's max-margin loss with labels t = 2y − 1 = ±1: L = mean(relu(1 − t·s))
    return torch.relu(1 - (2 * y - 1) * S[..., 0]).mean(-1)


def _hinge_grad(S: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    s, t = S[..., 0], 2 * y - 1
    inside = (1 - t * s > 0).to(s.dtype)  # the samples within the margin; relu'(0) = 0, as autograd has it
    return (-t * inside / s.shape[-1])[..., None]  # dL/ds = −t·[1 − t·s > 0]/N


def _cross_entropy(S: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # L = mean(−log softmax(S)_y) = mean(log Σ_c e^(S_c) − S_y), logsumexp keeping e^S finite
    own = S.gather(-1, y.long()[..., None].expand(*S.shape[:-1], 1))[..., 0]
    return (torch.logsumexp(S, -1) - own).mean(-1)


def _cross_entropy_grad(S: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    # Y one-hot by comparison with 0 … C − 1 (F.one_hot checks its input on the host,
    # which a captured CUDA graph cannot do)
    Y = (y.long()[..., None] == torch.arange(S.shape[-1], device=S.device)).to(S.dtype)
    return (torch.softmax(S, -1) - Y) / S.shape[-2]  # dL/dS = (softmax(S) − Y)/N


def _two_probabilities(S: torch.Tensor) -> torch.Tensor:
    s = S[..., 0]
    return torch.stack([torch.sigmoid(-s), torch.sigmoid(s)], -1)  # P(y = 0) = σ(−s), P(y = 1) = σ(s)


def _two_scores(S: torch.Tensor) -> torch.Tensor:
    s = S[..., 0]
    return torch.stack([-s, s], -1)  # [−s, s]: the larger is class 1 where s > 0, as micrograd decides


@dataclass(frozen=True)
class OutputLoss:
    """A loss on the network's outputs S: how many outputs it needs, its value, the
    gradient dL/dS that starts the backward pass, and what `predict` gives."""

    words: str
    """The loss in words, for summary.json and the console."""
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    """L per member, (K,), from S (K, N, O) and y."""
    grad: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    """dL/dS, (K, N, O), written by hand."""
    predict: Callable[[torch.Tensor], torch.Tensor]
    """ŷ (K, M) for a regression; (K, M, C) of a classifier, every class's probability or score."""
    classifies: bool = True
    one_per_class: bool = False
    """C outputs (one per class) rather than one."""
    probabilities: bool = True
    """Whether a classifier's predict gives probabilities (else scores whose largest wins)."""


LOSSES: dict[str, OutputLoss] = {
    "mse": OutputLoss("mean squared error", _mse, _mse_grad, lambda S: S[..., 0], classifies=False),
    "bce": OutputLoss("binary cross-entropy", _bce, _bce_grad, _two_probabilities),
    "hinge": OutputLoss("hinge (max-margin)", _hinge, _hinge_grad, _two_scores, probabilities=False),
    "cross-entropy": OutputLoss("softmax cross-entropy", _cross_entropy, _cross_entropy_grad,
                                lambda S: torch.softmax(S, -1), one_per_class=True),
}


class MLPModel(Section):
    """The layers of a multi-layer perceptron."""

    hidden: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=lambda: [16, 16], min_length=1, max_length=8
    )
    """Sizes of the hidden layers, input side first."""
    activation: Literal[tuple(ACTIVATIONS)] = "tanh"  # type: ignore[valid-type]
    """The nonlinearity after every hidden layer (the output layer is linear)."""
    loss: Literal[tuple(LOSSES)] = "mse"  # type: ignore[valid-type]
    """What the network learns: mse fits numbers (one output); bce (one logit, σ gives P(y = 1)),
    hinge (micrograd's max-margin loss on one score, labels ±1) and cross-entropy (one output
    per class, softmax) learn class labels, and need a source of labels (moons, …, csv)."""


class MLPConfig(Experiment):
    """A multi-layer perceptron learning a curve or classes, with a hand-written backward pass."""

    kind: Literal["mlp"]
    """The experiment kind."""
    model: MLPModel
    """The network's layers."""

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "data": {"source": "function", "fn": "sin", "n": 200, "noise": 0.05},
        "model": {"hidden": [16, 16], "activation": "tanh"},
        "train": {"lr": 0.1, "epochs": 3000, "log_every": 100, "grad": "manual"},
    }

    @property
    def classifies(self) -> bool:
        return LOSSES[self.model.loss].classifies

    @model_validator(mode="after")
    def _loss_fits_the_data(self) -> MLPConfig:
        problem = targets_mismatch(self.data.source, self.classifies)
        if problem and self.classifies:  # the data layer's words, and the fix on this side
            raise ValueError(f"{problem}; or fit the numbers with model.loss: mse")
        if problem:
            raise ValueError(f"{problem}: set model.loss: bce, hinge or cross-entropy")
        return self


class MLP(HandWrittenSGD):
    """A multi-layer perceptron fitted by full-batch gradient descent, with a backward
    pass written layer by layer."""

    least_squares = None

    def __init__(self, cfg: MLPConfig, data: Dataset, device: torch.device,
                 generator: torch.Generator) -> None:
        self.output = LOSSES[cfg.model.loss]
        outputs = 1
        if self.output.classifies:
            classes = _classes(cfg, data)
            outputs = len(classes) if self.output.one_per_class else 1
            self.task = Classification(classes=tuple(classes), loss_name=self.output.words,
                                       probabilities=self.output.probabilities)
        sizes = [data.x.shape[1], *cfg.model.hidden, outputs]
        params = {}
        # Each layer initialised like nn.Linear: W, b ~ U(−1/√fan_in, 1/√fan_in), layer by layer.
        for layer, (fan_in, fan_out) in enumerate(zip(sizes, sizes[1:]), start=1):
            bound = 1 / math.sqrt(fan_in)
            params[f"W{layer}"] = uniform((1, fan_out, fan_in), generator, data.x.dtype, -bound, bound)  # (K, out, in)
            params[f"b{layer}"] = uniform((1, fan_out), generator, data.x.dtype, -bound, bound)  # (K, out)
        self._hold(params, device, cfg.train.grad == "manual")
        self.layers = len(sizes) - 1
        self.activation, self.activation_grad = ACTIVATIONS[cfg.model.activation]
        self.x = data.x.to(device)[None]  # (K, N, F)
        self.y = data.y.to(device)[None]  # (K, N)
        self._train_with(cfg)

    def _forward(self, params: Tensors, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """The outputs S (K, N, O), and every layer's input a and pre-activation z (kept for
        the backward pass)."""
        inputs, pre = [], []
        a = x
        for layer in range(1, self.layers + 1):
            inputs.append(a)
            z = a @ params[f"W{layer}"].transpose(-1, -2) + params[f"b{layer}"][:, None, :]  # z = a·Wᵀ + b
            pre.append(z)
            a = self.activation(z) if layer < self.layers else z  # the output layer is linear
        return a, inputs, pre

    def loss(self, params: Tensors, batch: Tensors) -> torch.Tensor:
        S, _, _ = self._forward(params, batch["x"])
        return self.output.loss(S, batch["y"])

    def manual_backward(self, params: Tensors, batch: Tensors) -> tuple[torch.Tensor, Tensors]:
        params = {name: p.detach() for name, p in params.items()}
        S, inputs, pre = self._forward(params, batch["x"])
        loss = self.output.loss(S, batch["y"])
        grads: Tensors = {}
        # The loss's own dL/dS (see LOSSES); the output layer is linear, so dL/dz_L = dL/dS.
        grad_z = self.output.grad(S, batch["y"])  # (K, N, O)
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
            return self.output.predict(self._forward(params, x.to(self.x.device)[None])[0])


def _classes(cfg: MLPConfig, data: Dataset) -> list[str]:
    """The classes a classification loss learns (the config made sure the data have them),
    refusing more than two for a loss with one output."""
    loss, classes = cfg.model.loss, data.classes or []
    if len(classes) > 2 and not LOSSES[loss].one_per_class:
        raise DataError(f"model.loss: {loss} tells two classes apart with one output, and the data have "
                        f"{len(classes)}; use model.loss: cross-entropy")
    return list(classes)


KIND = Kind("mlp", MLPConfig, MLP)
