"""The sections every experiment kind shares: top-level fields, `train` and `log`.

Each kind adds its own `model` section and DEFAULTS in its file under bpcli/kinds; the
data sections live with their sources under bpcli/data. Values a config leaves out come
from the kind's DEFAULTS, which are the article's settings.
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Annotated, Any, ClassVar, Literal, Optional

from pydantic import (BaseModel, Field, ValidationError, ValidationInfo, create_model, field_validator,
                      model_serializer, model_validator)
from pydantic_core import PydanticCustomError

from bpcli import optimizers, schedules
from bpcli.section import Section
from bpcli.data import DataConfig, source_of

DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"

DTYPE_TINY = {"float32": 1.1754943508222875e-38, "float64": sys.float_info.min}
"""The smallest positive normal value of each dtype, torch.finfo(dtype).tiny."""

DTYPE_MAX = {"float32": 3.4028234663852886e38, "float64": sys.float_info.max}
"""The largest finite value of each dtype, torch.finfo(dtype).max, written out so that
validating a config does not import torch."""


class _TrainFields(Section):
    """How the parameters are updated; missing keys take the kind's defaults."""

    lr: float = Field(gt=0.0)
    """Learning rate: the step size of the optimizer (plain SGD: p ← p − lr·dL/dp); with a
    schedule, the lr it starts from (after the warm-up)."""
    epochs: int = Field(ge=1, le=1_000_000_000)
    """Passes over the data: ⌈N / batch_size⌉ updates each (one per sample for per-sample
    training, one for full-batch gradient descent)."""
    log_every: int = Field(ge=1)
    """Record loss, parameters and gradients every this many steps (the first and last
    steps are always recorded)."""
    optimizer: str = Field(optimizers.DEFAULT, description=(
        "The update rule, with torch.optim's meaning and settings: one of "
        + ", ".join(f"`{name}`" for name in optimizers.OPTIMIZERS)
        + " (docs/optimizers.md). Its settings are the fields below that name it; a setting of another "
          "rule is refused."))
    schedule: str = Field(schedules.DEFAULT, description=(
        "How the lr changes over the run, once per update, as torch.optim.lr_scheduler does: one of "
        + ", ".join(f"`{name}`" for name in schedules.SCHEDULES)
        + ". With no further setting a schedule spans the whole run (cosine: T_max = the run's updates; "
          "linear: from lr to lr_end)."))
    warmup: int = Field(0, ge=0)
    """Updates of linear warm-up in front of the schedule: update k < warmup uses
    lr·(k + 1)/(warmup + 1)."""
    lr_end: float = Field(0.0, ge=0.0)
    """cosine, linear, exponential: the lr the schedule reaches at the end of the run."""
    gamma: float | None = Field(None, gt=0.0)
    """step: the factor of each drop (null: 0.1); exponential: the factor per update (null: the
    one that reaches lr_end at the end of the run)."""
    step_size: int | None = Field(None, ge=1)
    """step: updates between drops (null: a third of the run)."""
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
    threads: int | None = Field(None, ge=1, le=1024)
    """CPU threads torch uses (null: OMP_NUM_THREADS when set, else one for a small problem,
    where spinning OpenMP threads cost more than they save, and torch's default for a large one)."""

    @classmethod
    def default(cls, name: str) -> Any:
        """The default value of the field `name`."""
        return cls.model_fields[name].get_default(call_default_factory=True)

    @field_validator("optimizer")
    @classmethod
    def _known_optimizer(cls, name: str) -> str:
        if name not in optimizers.OPTIMIZERS:
            raise ValueError(f"unknown optimizer {name!r}: use one of {', '.join(optimizers.OPTIMIZERS)}")
        return name

    @field_validator("schedule")
    @classmethod
    def _known_schedule(cls, name: str) -> str:
        if name not in schedules.SCHEDULES:
            raise ValueError(f"unknown schedule {name!r}: use one of {', '.join(schedules.SCHEDULES)}")
        return name

    @model_validator(mode="after")
    def _settings_of_the_optimizer(self) -> _TrainFields:
        # A resolved config lists its rule's settings, so only a value other than a default
        # is a mistake; the same rule refuses a sweep's settings (bpcli.grid).
        values = {name: getattr(self, name) for name in optimizers.setting_names()}
        problem = optimizers.misplaced([self.optimizer], values)
        if problem:
            raise ValueError(problem)
        rule = optimizers.OPTIMIZERS[self.optimizer]
        try:
            own = rule.Settings(**{k: v for k, v in values.items()
                                   if k in rule.Settings.model_fields and v is not None})
        except ValidationError as exc:
            raise ValueError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
        for name in values:  # the rule's settings resolved, the others' null (left out of a dump)
            object.__setattr__(self, name, getattr(own, name) if name in rule.Settings.model_fields else None)
        schedule = schedules.SCHEDULES[self.schedule]
        for name in schedules.SETTINGS:
            if getattr(self, name) != self.default(name) and name not in schedule.uses:
                users = [s for s, found in schedules.SCHEDULES.items() if name in found.uses]
                raise ValueError(f"train.{name} is a setting of schedule {' and '.join(users)}, and this run's "
                                 f"schedule is {self.schedule}: remove it, or set train.schedule: {users[0]}")
        return self

    @model_serializer(mode="wrap")
    def _without_other_rules(self, handler: Any) -> Any:
        data = handler(self)
        names = optimizers.setting_names()
        return {k: v for k, v in data.items() if not (v is None and k in names)} if isinstance(data, dict) else data


def _rule_fields() -> dict[str, Any]:
    """One train field per rule setting (momentum, betas, …), null meaning the rule's default:
    each rule's file declares its settings, and the train section lists them all."""
    fields: dict[str, Any] = {}
    for name, owners in optimizers.setting_names().items():
        first = optimizers.OPTIMIZERS[owners[0]].Settings.model_fields[name]
        defaults = {o: optimizers.OPTIMIZERS[o].Settings.model_fields[name].get_default(call_default_factory=True)
                    for o in owners}
        shown = ", ".join(f"{o} {json.dumps(d)}" for o, d in defaults.items())
        description = f"{', '.join(owners)}: {first.description} Null: the rule's default ({shown})."
        optional = Optional[first.annotation]
        annotation = Annotated[optional, *first.metadata] if first.metadata else optional
        fields[name] = (annotation, Field(None, description=description))
    return fields


TrainConfig = create_model("TrainConfig", __base__=_TrainFields, __module__=__name__, **_rule_fields())
TrainConfig.__doc__ = _TrainFields.__doc__


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
        eps = getattr(self.train, "eps", None)
        if eps is not None and eps < tiny:
            raise ValueError(
                f"train.eps: {eps:g} is below the smallest normal {self.dtype} ({tiny:.2g}), where it may round "
                f"to 0 and make {self.train.optimizer} divide 0 by 0; use {tiny:.2g} or more"
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
