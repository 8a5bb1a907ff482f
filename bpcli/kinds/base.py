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

from bpcli.config.schema import Experiment
from bpcli.errors import BpcliError
from bpcli.optimizers import Optimizer
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
    shuffle: bool
    """Whether each epoch visits the samples in a new order (then start_epoch draws it)."""
    batches: Batches
    """Which samples each step trains on (batches.full: every sample, every step)."""

    @classmethod
    def stack(cls, members: list[Any], device: torch.device) -> Trainer:
        """One trainer on `device` whose K members are the given single-member trainers."""
        ...

    def start_epoch(self, epoch: int) -> None:
        """Draw the sample order of `epoch` (from 1) when shuffling; call batch_index()
        rather than this, before a step that may begin an epoch."""
        ...

    def batch(self, index: int) -> Tensors:
        """The data step `index` of an epoch trains on: {"x": ..., "y": ...}."""
        ...

    def full_batch(self) -> Tensors:
        """Every training sample as one batch, in the shapes loss() takes."""
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


class LinearExperiment(Experiment):
    """A config whose model is w·x + b (LinearModel): without an intercept, data.standardize
    is refused (see refuse_standardising_without_intercept)."""

    model: LinearModel
    """Initial parameters."""

    @model_validator(mode="after")
    def _no_centring_without_bias(self) -> LinearExperiment:
        if not self.model.bias:
            refuse_standardising_without_intercept(self, "model.bias: false", "model.bias: true")
        return self


class LinearClassifierExperiment(LinearExperiment):
    """A linear model of class labels (logistic, softmax): its data's target is read as classes."""

    @property
    def classifies(self) -> bool:
        return True


def linear_init(cfg: Any, shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype,
                low: float = 0.0, high: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """w ~ U[low, high) of `shape` (members first), then b of shape[:-1], drawn after the data
    as the article draws them; model.init_w / init_b overwrite every value (still drawn, so
    that later draws do not move). Without a bias, b holds no values."""
    w = uniform(shape, generator, dtype, low, high)
    b = uniform(shape[:-1], generator, dtype, low, high) if cfg.model.bias else w[..., :0]
    if cfg.model.init_w is not None:
        w.fill_(cfg.model.init_w)
    if cfg.model.init_b is not None:
        b.fill_(cfg.model.init_b)
    return w, b


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


def autograd_gradients(loss: torch.Tensor, params: Tensors) -> Tensors:
    """dL/dp for every parameter by autograd, each member's from its own loss."""
    # Members are independent: differentiating their sum gives each one its own gradient.
    grads = torch.autograd.grad(loss.sum(), list(params.values()))
    return dict(zip(params, grads))


def flat(tensors: Tensors) -> Tensors:
    """Each tensor as (K, values): how parameters and gradients are logged."""
    return {name: t.detach().reshape(t.shape[0], -1) for name, t in tensors.items()}


class Batches:
    """Which samples each step of an epoch trains on.

    `x` and `y` hold every member's data, (K, N, …) and (K, N). Step `index` of an epoch
    trains on samples index·B … index·B + B − 1 of that epoch's order (the last batch may
    be smaller): the data's own order, or, with shuffle, a permutation drawn for each
    epoch from a generator seeded with (seed, epoch) alone, so that a resumed run and a
    sweep member see the very orders the single run saw. The order lives in one tensor on
    the device, rewritten between epochs, which a captured CUDA graph reads.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, size: int, shuffle: bool, seeds: list[int]) -> None:
        self.x, self.y = x, y
        self.samples = x.shape[1]
        self.size = size
        self.steps_per_epoch = -(-self.samples // size)
        self.full = size >= self.samples
        self.shuffle = shuffle
        self.seeds = seeds
        self.epoch = 0
        """The epoch whose order `order` holds."""
        self.order = torch.empty((len(seeds), self.samples), dtype=torch.long, device=x.device) if shuffle else None
        self.start_epoch(1)  # so that a batch asked for before training starts is the first epoch's

    def like(self, x: torch.Tensor, y: torch.Tensor, seeds: list[int]) -> Batches:
        """The same batching of other data: the stacked members' of a sweep, with their seeds."""
        return Batches(x, y, self.size, self.shuffle, seeds)

    def start_epoch(self, epoch: int) -> None:
        """Draw the order of `epoch` (from 1), if it is not already the current one."""
        if not self.shuffle or epoch == self.epoch:
            return
        orders = {seed: epoch_order(seed, epoch, self.samples) for seed in set(self.seeds)}
        self.order.copy_(torch.stack([orders[seed] for seed in self.seeds]))
        self.epoch = epoch

    def __call__(self, index: int) -> Tensors:
        if self.full and not self.shuffle:
            return {"x": self.x, "y": self.y}
        low, high = index * self.size, min(self.samples, (index + 1) * self.size)
        if not self.shuffle:
            return {"x": self.x[:, low:high], "y": self.y[:, low:high]}
        chosen = self.order[:, low:high]  # (K, B): the samples of this batch, per member
        return {"x": _take(self.x, chosen), "y": _take(self.y, chosen)}


def _take(values: torch.Tensor, chosen: torch.Tensor) -> torch.Tensor:
    """values[k, chosen[k]] for every member k: (K, N, …) and (K, B) give (K, B, …)."""
    index = chosen.reshape(*chosen.shape, *([1] * (values.dim() - 2))).expand(-1, -1, *values.shape[2:])
    return values.gather(1, index)


def whole_data_loss(trainer: Trainer) -> torch.Tensor:
    """Each member's loss on all its training samples at its current parameters, (K,):
    what a per-sample or mini-batch run's loss means, beside the loss of its last batch."""
    with torch.no_grad():
        return trainer.loss(trainer.params(), trainer.full_batch()).detach().reshape(-1)


def batch_index(trainer: Trainer, step: int) -> int:
    """The batch of its epoch that training step `step` (from 1) trains on, with that
    epoch's order drawn first when the trainer shuffles."""
    if trainer.shuffle:
        trainer.start_epoch((step - 1) // trainer.steps_per_epoch + 1)
    return (step - 1) % trainer.steps_per_epoch


def epoch_order(seed: int, epoch: int, samples: int) -> torch.Tensor:
    """The order in which a shuffled run visits its samples in `epoch`: randperm(N) from a
    CPU generator seeded with the run's seed and the epoch, the same on every device."""
    generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**64)
    return torch.randperm(samples, generator=generator)


def batch_settings(train: Any, samples: int, kind_size: int) -> tuple[int, bool]:
    """(batch size, shuffle) of a run on `samples` samples, from its `train` section; the
    kind's own size when batch_size is null. Shuffle defaults to true for mini-batches."""
    size = kind_size if train.batch_size is None else train.batch_size
    if size > samples:
        raise BpcliError(f"train.batch_size: {size} is more than the {samples} samples of the data; "
                         f"use at most {samples} (the full batch)")
    shuffle = train.shuffle if train.shuffle is not None else (train.batch_size is not None and size < samples)
    return size, shuffle


class Sampled:
    """What a trainer whose `batches` picks each step's samples answers about them."""

    batches: Batches
    x: torch.Tensor
    y: torch.Tensor

    def _sample(self, cfg: Any, x: torch.Tensor, y: torch.Tensor, kind_size: int) -> None:
        """Batches of x and y, (K, N, …), as the run's `train` section says (`kind_size` when
        batch_size is null); keeps the settings a sweep's stack needs."""
        size, shuffle = batch_settings(cfg.train, x.shape[1], kind_size)
        self.train = cfg.train
        self.seed = cfg.seed
        self.batches = Batches(x, y, size, shuffle, [cfg.seed])
        self.steps_per_epoch = self.batches.steps_per_epoch

    @property
    def shuffle(self) -> bool:
        return self.batches.shuffle

    def start_epoch(self, epoch: int) -> None:
        self.batches.start_epoch(epoch)

    def full_batch(self) -> Tensors:
        return {"x": self.x, "y": self.y}

    def updates(self, train: Any) -> int:
        """The run's number of updates, which a learning-rate schedule spans."""
        return train.epochs * self.batches.steps_per_epoch


class HandWrittenSGD(Sampled):
    """The step shared by kinds whose update is written by hand.

    A subclass sets `_params`, `_grads`, `x`, `y` (data with a leading member dimension,
    samples second) and `_manual` in its constructor, then calls `_train_with(cfg)`, and
    provides `loss`, `manual_backward` and `predict`. The update is bpcli.optimizers'
    hand-written form of the configured optimizer; the batches come from `Batches`.
    """

    _params: Tensors
    _grads: Tensors
    _manual: bool
    _group: Any = None  # set by distribute() under torchrun

    def _hold(self, params: Tensors, device: torch.device, manual: bool) -> None:
        """Take `params` (K, …) as the trainer's parameters on `device`, tracked by autograd
        unless the gradients are hand-derived (`manual`), each with a zero gradient."""
        self._manual = manual
        self._params = {name: p.to(device).requires_grad_(not manual) for name, p in params.items()}
        self._grads = {name: torch.zeros_like(p) for name, p in self._params.items()}

    def _train_with(self, cfg: Any, per_sample: bool = False) -> None:
        """Batches and optimizer from the run's config: one sample per step when the kind
        is `per_sample` and batch_size is null, else the full batch."""
        self._sample(cfg, self.x, self.y, 1 if per_sample else self.x.shape[1])
        self.optimizer = Optimizer(self._params, [cfg.train], self.updates(cfg.train))

    def batch(self, index: int) -> Tensors:
        return self.batches(index)

    def distribute(self, group: Any) -> None:
        """Train this process's shard as part of a torchrun job (see bpcli.distributed)."""
        if not self.batches.full:
            raise BpcliError("train.batch_size: mini-batches are drawn from the whole data, which no single "
                             "torchrun process holds; run mini-batch training without torchrun")
        self._group = group

    @classmethod
    def stack(cls, members: list[Any], device: torch.device) -> Any:
        """One trainer on `device` whose K members are the given single-member trainers,
        side by side.

        Parameters and data are concatenated along the member dimension and each member
        keeps its own optimizer settings and batch order, so one batched step trains them
        all independently. Members are best built on the CPU: the stack then moves to
        `device` in one copy.
        """
        batched = copy.copy(members[0])
        batched._hold({name: torch.cat([m._params[name].detach() for m in members]) for name in members[0]._params},
                      device, members[0]._manual)
        batched.x = torch.cat([m.x for m in members]).to(device)
        batched.y = torch.cat([m.y for m in members]).to(device)
        batched.batches = members[0].batches.like(batched.x, batched.y, [m.seed for m in members])
        batched.optimizer = Optimizer(batched._params, [m.train for m in members], batched.updates(members[0].train))
        return batched

    def params(self) -> Tensors:
        return self._params

    def gradients(self) -> Tensors:
        return self._grads

    def step(self, index: int, with_loss: bool = True) -> torch.Tensor | None:
        batch = self.batch(index)
        if self._manual:
            loss, self._grads = self.manual_backward(self._params, batch)  # type: ignore[attr-defined]
        else:
            loss = self.loss(self._params, batch)  # type: ignore[attr-defined]
            self._grads = autograd_gradients(loss, self._params)
            loss = loss.detach()
        if self._group is not None:  # the full batch's gradient: Σ_r (n_r/N)·∇L_r
            self._grads = self._group.weighted_sum(self._grads)
            loss = self._group.weighted_sum({"loss": loss})["loss"] if with_loss else loss
        self.optimizer.step(self._params, self._grads)
        return loss

    def state_dict(self) -> dict[str, Any]:
        return {**{name: p.detach().clone() for name, p in self._params.items()},
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        with torch.no_grad():
            for name, p in self._params.items():
                p.copy_(state[name])
        self.optimizer.load_state_dict(state.get("optimizer", {}))  # runs before optimizers had none


@dataclass(frozen=True)
class Kind:
    """An experiment kind: its name, its config class and the trainer that config builds."""

    name: str
    config: type[Section]
    """The kind's config class, a subclass of bpcli.config.Experiment with its `model`."""
    trainer: Any
    """The Trainer class: Trainer(config, data, device, generator), and Trainer.stack."""
