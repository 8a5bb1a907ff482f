"""The sections every experiment kind shares: top-level fields, `train` and `log`.

Each kind adds its own `model` section and DEFAULTS in its file under bpcli/kinds; the
data sections live with their sources under bpcli/data. Values a config leaves out come
from the kind's DEFAULTS, which are the article's settings.
"""

from __future__ import annotations

import copy
import sys
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from bpcli.section import Section
from bpcli.data import DataConfig, source_of

DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"

DTYPE_TINY = {"float32": 1.1754943508222875e-38, "float64": sys.float_info.min}
"""The smallest positive normal value of each dtype, torch.finfo(dtype).tiny."""

DTYPE_MAX = {"float32": 3.4028234663852886e38, "float64": sys.float_info.max}
"""The largest finite value of each dtype, torch.finfo(dtype).max, written out so that
validating a config does not import torch."""


OPTIMIZER_SETTINGS = {"sgd": ("momentum", "nesterov"), "adam": ("betas", "eps")}
"""The `train` settings that belong to one optimizer only."""


class TrainConfig(Section):
    """How the parameters are updated; missing keys take the kind's defaults."""

    lr: float = Field(gt=0.0)
    """Learning rate: the step size of the optimizer (plain SGD: p ← p − lr·dL/dp)."""
    epochs: int = Field(ge=1, le=1_000_000_000)
    """Passes over the data: ⌈N / batch_size⌉ updates each (one per sample for per-sample
    training, one for full-batch gradient descent)."""
    log_every: int = Field(ge=1)
    """Record loss, parameters and gradients every this many steps (the first and last
    steps are always recorded)."""
    optimizer: Literal["sgd", "adam"] = "sgd"
    """The update rule, with torch.optim's meaning: `sgd` (p ← p − lr·g, plus momentum,
    nesterov and weight_decay when set) or `adam` (betas, eps, weight_decay)."""
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    """sgd only: heavy-ball momentum μ; the velocity v ← μ·v + g replaces g in the update."""
    nesterov: bool = False
    """sgd only: Nesterov's look-ahead, the update uses g + μ·v (needs momentum > 0)."""
    weight_decay: float = Field(0.0, ge=0.0)
    """L2 penalty λ added to every gradient as g + λ·p (sgd and adam)."""
    betas: list[Annotated[float, Field(ge=0.0, lt=1.0)]] = Field(default_factory=lambda: [0.9, 0.999],
                                                                  min_length=2, max_length=2)
    """adam only: decay rates [β1, β2] of the running averages of g and g²."""
    eps: float = Field(1e-8, gt=0.0)
    """adam only: added to √v̂ in the denominator, for numerical stability."""
    batch_size: int | None = Field(None, ge=1)
    """Samples per update: 1 is per-sample SGD, the number of samples is full-batch
    gradient descent, anything between is mini-batch SGD (the last batch of an epoch may be
    smaller). null: the kind's own (1 for scalar-sgd, the full batch for the others)."""
    shuffle: bool | None = None
    """Visit the samples in a new seeded random order every epoch. null: true when
    batch_size is set smaller than the data, false otherwise (the article's order)."""
    grad: Literal["manual", "autograd"]
    """How gradients are computed: `manual` by bpcli's hand-derived formulas, `autograd`
    by loss.backward()."""
    engine: Literal["auto", "eager", "graph"] = "auto"
    """How steps run: `eager` one operation at a time, `graph` replayed from a captured CUDA
    graph (CUDA only), `auto` graph on CUDA and eager elsewhere."""
    diverge_factor: float = Field(1e4, gt=1.0)
    """Stop the run as diverged when a logged loss exceeds this many times the first one
    (per-sample and mini-batch training: the initial loss on all samples); a NaN or
    infinite loss always stops it."""
    check_grad_every: int = Field(0, ge=0)
    """Every this many steps, compare the hand-derived gradient with autograd's and a
    finite difference (in float64) and record the worst error in summary.json (0: never)."""
    checkpoint_every: int = Field(0, ge=0)
    """Write checkpoint.pt every this many steps (0: only when the run ends or is
    interrupted). A run with a checkpoint can be resumed with `bpcli train --resume`."""


    @classmethod
    def default(cls, name: str) -> Any:
        """The default value of the field `name`."""
        return cls.model_fields[name].get_default(call_default_factory=True)

    @model_validator(mode="after")
    def _settings_of_the_optimizer(self) -> TrainConfig:
        # A resolved config lists every setting, so only a value other than the default
        # is a mistake.
        other = "adam" if self.optimizer == "sgd" else "sgd"
        misplaced = [name for name in OPTIMIZER_SETTINGS[other] if getattr(self, name) != self.default(name)]
        if misplaced:
            raise ValueError(
                f"train.{misplaced[0]} is a setting of optimizer {other}, and this run uses "
                f"{self.optimizer}: remove it, or set train.optimizer: {other}"
            )
        if self.nesterov and self.momentum == 0:
            raise ValueError("train.nesterov needs momentum: set train.momentum above 0 (e.g. 0.9), "
                             "or nesterov: false")
        return self


class LogConfig(Section):
    """Where metrics go besides metrics.csv."""

    tensorboard: bool = False
    """Also write TensorBoard event files (loss, parameters, gradients, learning rate) in
    the run directory (a sweep: one run per member under tensorboard/); needs the optional
    extra: pip install 'bpcli[tensorboard]'."""


class Experiment(Section):
    """Fields every experiment kind has."""

    kind: str
    """The experiment kind; see the kinds table."""
    seed: int = Field(0, ge=0, le=2**63 - 1)
    """Seed of the random generator that draws the data and the initial parameters,
    in the article's order."""
    device: str = Field("auto", pattern=DEVICE_PATTERN)
    """Where to train: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps."""
    dtype: Literal["float32", "float64"] = "float32"
    """Floating-point precision of data and parameters (the article uses float32). float32
    holds numbers up to ±3.4e38; a `predict` or `model` value beyond that needs float64."""
    data: DataConfig
    """The training data."""
    train: TrainConfig
    """Training settings."""
    predict: list[float] | list[list[float]] = Field(default_factory=list, max_length=10_000)
    """Inputs x at which the trained model's prediction is reported (a list of numbers,
    or of lists with one number per feature; in the data's original units)."""
    log: LogConfig = Field(default_factory=LogConfig)
    """Extra logging."""
    # Each kind adds `model`, the section that differs between kinds, and its DEFAULTS.

    DEFAULTS: ClassVar[dict[str, Any]] = {}

    @property
    def classifies(self) -> bool:
        """Whether the kind learns class labels (its data's target is read as classes);
        a classification kind returns True."""
        return False

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, raw: Any) -> Any:
        return merge_defaults(raw, cls.DEFAULTS) if isinstance(raw, dict) else raw

    # A number beyond the dtype's range becomes inf when the tensors are made, and the run
    # fails far from its cause; refuse it here. The model section is each kind's own, so
    # every float in it is checked, whatever its fields are called.
    @field_validator("predict")
    @classmethod
    def _predict_fits_dtype(cls, predict: Any, info: ValidationInfo) -> Any:
        _fits_dtype(predict, "predict", info.data.get("dtype"))
        return predict

    @model_validator(mode="after")
    def _eps_fits_dtype(self) -> Experiment:
        tiny = DTYPE_TINY[self.dtype]
        if self.train.optimizer == "adam" and self.train.eps < tiny:
            raise ValueError(
                f"train.eps: {self.train.eps:g} is below the smallest normal {self.dtype} ({tiny:.2g}), where it "
                f"may round to 0 and make Adam divide 0 by 0; use {tiny:.2g} or more"
                + (", or dtype: float64" if self.dtype == "float32" else "")
            )
        return self

    @field_validator("model", check_fields=False)
    @classmethod
    def _model_fits_dtype(cls, model: Any, info: ValidationInfo) -> Any:
        _fits_dtype(model, "model", info.data.get("dtype"))
        return model


def _floats(value: Any, where: str) -> list[tuple[str, float]]:
    """Every float inside a value (a section, a list, a number), with its dotted location."""
    if isinstance(value, float):
        return [(where, value)]
    if isinstance(value, BaseModel):
        return [f for name, v in value for f in _floats(v, f"{where}.{name}")]
    if isinstance(value, (list, tuple)):
        return [f for i, v in enumerate(value) for f in _floats(v, f"{where}[{i}]")]
    return []


def _fits_dtype(value: Any, where: str, dtype: str | None) -> None:
    """Raise a `dtype_range` error naming the first float in value that dtype cannot hold."""
    if dtype not in DTYPE_MAX:
        return  # the dtype itself is wrong, and reported as such
    limit = DTYPE_MAX[dtype]
    too_big = [(w, v) for w, v in _floats(value, where) if abs(v) > limit]
    if too_big:
        (first, number), others = too_big[0], [w for w, _ in too_big[1:]]
        also = ""
        if others:
            named = ", ".join(others[:3]) + (f" and {len(others) - 3} more" if len(others) > 3 else "")
            also = f"; so {'is' if len(others) == 1 else 'are'} {named}"
        message = (
            f"{number!r} is outside {dtype}'s range (±{limit!r}){also}; "
            "set dtype: float64, or use a smaller value"
        )
        raise PydanticCustomError("dtype_range", message, {"where": first})


def merge_defaults(raw: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The raw config with the kind's defaults filled in where keys are missing."""
    merged = dict(raw)
    for key, default in defaults.items():
        given = merged.get(key)
        if key not in merged:
            merged[key] = copy.deepcopy(default)
        elif isinstance(default, dict) and isinstance(given, dict):
            # Data defaults only make sense for the same source: an inline default must
            # not leak x/y into a synthetic section.
            if key == "data" and source_of(given) != default.get("source"):
                continue
            merged[key] = {**{k: copy.deepcopy(v) for k, v in default.items() if k not in given}, **given}
    return merged


SECTION_ORDER = ("kind", "seed", "device", "dtype", "data", "model", "train", "predict", "log")
"""The order of a config's sections when it is written out."""
