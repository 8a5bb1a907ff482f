"""Experiment configs: typed, validated and documented in this one module.

A config is a YAML mapping whose ``kind`` picks one experiment class below. Every field
has a docstring (it becomes the field's description and the README's reference). Values
a config leaves out come from the kind's ``DEFAULTS``, which are the article's settings.
Everything else in bpcli receives a validated config and never re-checks raw dicts.
"""

from __future__ import annotations

import copy
import difflib
import json
import re
import reprlib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)

from bpcli.errors import ConfigError

DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:\d+)?)$"


class _Section(BaseModel):
    # strict: "0.01" (a string) is not a number and `true` is not an integer;
    # an int is still accepted where a float is expected.
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        frozen=True,
        use_attribute_docstrings=True,
    )


# --------------------------------------------------------------------------- data


class InlineData(_Section):
    """Data written out in the config, as in the article's experiment 1."""

    source: Literal["inline"] = "inline"
    """Where the data comes from: `inline` lists its points in the config."""
    x: list[float] = Field(min_length=1, max_length=1_000_000)
    """Inputs, one number per sample."""
    y: list[float] = Field(min_length=1, max_length=1_000_000)
    """Targets, one per input, in the same order."""
    true_w: float | None = None
    """The slope that generated the data, if known; drawn as the true line and reported."""
    true_b: float | None = None
    """The intercept that generated the data, if known."""

    @model_validator(mode="after")
    def _same_length(self) -> InlineData:
        if len(self.x) != len(self.y):
            raise ValueError(
                f"x has {len(self.x)} values but y has {len(self.y)}; give one target per input"
            )
        return self


def _x_range_checked(section: Any) -> Any:
    """The section itself, if its x_low lies below its x_high."""
    if not section.x_low < section.x_high:
        raise ValueError(f"x_low ({section.x_low}) must be below x_high ({section.x_high}); swap them")
    return section


class SyntheticData(_Section):
    """Points on the line y = true_w·x + true_b, drawn with the run's seed."""

    source: Literal["synthetic"] = "synthetic"
    """Where the data comes from: `synthetic` draws x uniformly and computes y."""
    n: int = Field(100, ge=1, le=1_000_000_000)
    """Number of samples."""
    true_w: float = 4.0
    """Slope of the line that generates y."""
    true_b: float = 0.6
    """Intercept of the line that generates y."""
    x_low: float = 0.0
    """x is drawn uniformly from [x_low, x_high); the article uses [0, 1)."""
    x_high: float = 1.0
    """Upper end of the range of x."""
    noise: float = Field(0.0, ge=0.0)
    """Standard deviation of Gaussian noise added to y (0 = exact line, as in the article)."""

    @model_validator(mode="after")
    def _range(self) -> SyntheticData:
        return _x_range_checked(self)


FUNCTIONS = ("sin", "cos", "square", "abs", "tanh")


class FunctionData(_Section):
    """Points on a nonlinear curve y = fn(x), plus optional noise, drawn with the run's seed."""

    source: Literal["function"] = "function"
    """Where the data comes from: `function` draws x uniformly and computes y = fn(x)."""
    fn: Literal[FUNCTIONS] = "sin"  # type: ignore[valid-type]
    """The curve to learn: sin, cos, square (x²), abs (|x|) or tanh."""
    n: int = Field(200, ge=1, le=100_000_000)
    """Number of samples."""
    x_low: float = -3.14159
    """x is drawn uniformly from [x_low, x_high)."""
    x_high: float = 3.14159
    """Upper end of the range of x."""
    noise: float = Field(0.05, ge=0.0)
    """Standard deviation of Gaussian noise added to y."""

    @model_validator(mode="after")
    def _range(self) -> FunctionData:
        return _x_range_checked(self)


class CsvData(_Section):
    """A table read from a CSV file: feature columns and a target column."""

    source: Literal["csv"] = "csv"
    """Where the data comes from: `csv` reads a file."""
    path: str = Field(min_length=1)
    """The CSV file; a relative path is relative to the config file's folder."""
    target: str = Field(min_length=1)
    """The column to predict (its name, or its number from 0 when header is false)."""
    features: list[str] | None = Field(None, min_length=1)
    """The input columns; null takes every column but the target."""
    header: bool = True
    """Whether the first line names the columns."""
    delimiter: str = Field(",", min_length=1, max_length=1)
    """The character between cells."""
    drop_invalid: bool = False
    """Drop rows holding NaN or infinite values (and report how many) instead of stopping."""
    standardize: Literal["none", "features", "all"] = "none"
    """Rescale to mean 0 and standard deviation 1 (with the training split's statistics):
    the features, or the features and the target. Parameters are also reported in the
    original units."""
    val_fraction: float = Field(0.0, ge=0.0, le=0.9)
    """Share of the rows held out, after a shuffle drawn with the seed, to measure the
    validation loss."""


def _data_source(value: Any) -> str | None:
    # `source` may be left out: points listed as x/y are inline, a file is csv, a curve
    # named by fn is a function, anything else synthetic.
    if isinstance(value, dict):
        if "source" in value:
            return value["source"]
        if "x" in value or "y" in value:
            return "inline"
        if "path" in value:
            return "csv"
        return "function" if "fn" in value else "synthetic"
    return getattr(value, "source", None)


DataConfig = Annotated[
    Union[
        Annotated[InlineData, Tag("inline")],
        Annotated[SyntheticData, Tag("synthetic")],
        Annotated[FunctionData, Tag("function")],
        Annotated[CsvData, Tag("csv")],
    ],
    Discriminator(
        _data_source,
        custom_error_type="data_source",
        custom_error_message="data.source must be 'inline', 'synthetic', 'function' or 'csv'",
    ),
]
DATA_SOURCES = {"inline": InlineData, "synthetic": SyntheticData, "function": FunctionData, "csv": CsvData}

# --------------------------------------------------------------------------- model


class ScalarModel(_Section):
    """The one weight of y = w·x."""

    init_w: float | None = None
    """Starting value of w; null draws it from U[0, 1) with the seed."""


class MLPModel(_Section):
    """The layers of a multi-layer perceptron."""

    hidden: list[Annotated[int, Field(ge=1, le=4096)]] = Field(
        default_factory=lambda: [16, 16], min_length=1, max_length=8
    )
    """Sizes of the hidden layers, input side first."""
    activation: Literal["tanh", "sigmoid", "relu"] = "tanh"
    """The nonlinearity after every hidden layer (the output layer is linear)."""


class LinearModel(_Section):
    """The weight and bias of y = w·x + b."""

    init_w: float | None = None
    """Starting value of w; null uses the kind's random initialisation with the seed."""
    init_b: float | None = None
    """Starting value of b; null uses the kind's random initialisation with the seed."""


# --------------------------------------------------------------------------- training


class TrainConfig(_Section):
    """How the parameters are updated; missing keys take the kind's defaults."""

    lr: float = Field(gt=0.0)
    """Learning rate of the gradient-descent update p ← p − lr·dL/dp."""
    epochs: int = Field(ge=1, le=1_000_000_000)
    """Passes over the data. Per-sample kinds make one update per sample in each epoch,
    full-batch kinds one update per epoch."""
    log_every: int = Field(ge=1)
    """Record loss, parameters and gradients every this many steps (the first and last
    steps are always recorded)."""
    grad: Literal["manual", "autograd"]
    """How gradients are computed: `manual` by bpcli's hand-derived formulas, `autograd`
    by loss.backward()."""
    engine: Literal["auto", "eager", "graph"] = "auto"
    """How steps run: `eager` one operation at a time, `graph` replayed from a captured CUDA
    graph (CUDA only), `auto` graph on CUDA and eager elsewhere."""
    diverge_factor: float = Field(1e4, gt=1.0)
    """Stop the run as diverged when the loss exceeds this many times its first logged
    value (a NaN or infinite loss always stops it)."""
    check_grad_every: int = Field(0, ge=0)
    """Every this many steps, compare the hand-derived gradient with autograd's and a
    finite difference (in float64) and record the worst error in summary.json (0: never)."""
    checkpoint_every: int = Field(0, ge=0)
    """Write checkpoint.pt every this many steps (0: only when the run ends or is
    interrupted). A run with a checkpoint can be resumed with `bpcli train --resume`."""


class LogConfig(_Section):
    """Where metrics go besides metrics.csv."""

    tensorboard: bool = False
    """Also write TensorBoard event files (loss, parameters, gradients, learning rate) in
    the run directory (a sweep: one run per member under tensorboard/); needs the optional
    extra: pip install 'bpcli[tensorboard]'."""


# --------------------------------------------------------------------------- experiments


class _Experiment(_Section):
    """Fields every experiment kind has."""

    kind: str
    """The experiment kind; see the kinds table."""
    seed: int = Field(0, ge=0, le=2**63 - 1)
    """Seed of the random generator that draws the data and the initial parameters,
    in the article's order."""
    device: str = Field("auto", pattern=DEVICE_PATTERN)
    """Where to train: auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps."""
    dtype: Literal["float32", "float64"] = "float32"
    """Floating-point precision of data and parameters (the article uses float32)."""
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

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, raw: Any) -> Any:
        return _merge_defaults(raw, cls.DEFAULTS) if isinstance(raw, dict) else raw


class ScalarSGDConfig(_Experiment):
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
        if isinstance(self.data, CsvData) and (self.data.features is None or len(self.data.features) != 1):
            raise ValueError(
                "scalar-sgd fits y = w·x with one input: set data.features to one column, "
                "or use kind linear-gd for several"
            )
        return self

    @model_validator(mode="after")
    def _no_bias(self) -> ScalarSGDConfig:
        if getattr(self.data, "true_b", None) not in (None, 0.0):
            raise ValueError(
                "scalar-sgd fits y = w·x, which has no bias: set data.true_b to 0, "
                "or use kind linear-gd to fit y = w·x + b"
            )
        return self


class LinearGDConfig(_Experiment):
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


class NNLinearConfig(_Experiment):
    """Experiment 3: nn.Linear(1, 1) with nn.MSELoss and optim.SGD."""

    kind: Literal["nn-linear"]
    """The experiment kind."""
    model: LinearModel
    """Initial parameters (null: nn.Linear's own initialisation)."""

    DEFAULTS: ClassVar[dict[str, Any]] = {
        "data": {"source": "synthetic", "n": 50, "true_w": 4.0, "true_b": 0.6},
        "model": {},
        "train": {"lr": 0.001, "epochs": 30000, "log_every": 20, "grad": "autograd"},
    }


class MLPConfig(_Experiment):
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


ExperimentConfig = Union[ScalarSGDConfig, LinearGDConfig, NNLinearConfig, MLPConfig]

# The registry of config classes by kind; bpcli.experiments has the matching trainers.
CONFIG_CLASSES: dict[str, type[_Experiment]] = {
    "scalar-sgd": ScalarSGDConfig,
    "linear-gd": LinearGDConfig,
    "nn-linear": NNLinearConfig,
    "mlp": MLPConfig,
}


def _merge_defaults(raw: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The raw config with the kind's defaults filled in where keys are missing."""
    merged = dict(raw)
    for key, default in defaults.items():
        given = merged.get(key)
        if key not in merged:
            merged[key] = copy.deepcopy(default)
        elif isinstance(default, dict) and isinstance(given, dict):
            # Data defaults only make sense for the same source: an inline default must
            # not leak x/y into a synthetic section.
            if key == "data" and _data_source(given) != default.get("source"):
                continue
            merged[key] = {**{k: copy.deepcopy(v) for k, v in default.items() if k not in given}, **given}
    return merged


# --------------------------------------------------------------------------- loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key given twice in one mapping."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if not isinstance(key, (str, int, float, bool, type(None))):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain word, not a list or mapping", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice; keep one", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)
# YAML 1.1 (PyYAML) reads 1e-3 as a string; learning rates are written that way, so
# numbers in exponent form without a dot are floats here, as in YAML 1.2.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no code runs


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The YAML mapping in a config file, or a ConfigError saying why there is none."""
    path = Path(path)
    name = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(name, ["no such file; check the path (configs live in configs/)"])
    except IsADirectoryError:
        raise ConfigError(name, ["is a directory; give the path of a YAML config file"])
    except PermissionError:
        raise ConfigError(name, ["cannot be read (permission denied)"])
    except UnicodeDecodeError:
        raise ConfigError(name, ["is not a UTF-8 text file; give a YAML config file"])
    except OSError as exc:
        raise ConfigError(name, [f"cannot be read ({exc.strerror or exc})"])
    try:
        raw = _load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "malformed YAML"
        raise ConfigError(name, [f"{where}{problem}"])
    except yaml.YAMLError as exc:
        raise ConfigError(name, [f"malformed YAML ({exc})"])
    except RecursionError:
        raise ConfigError(name, ["nested too deeply to be a config"])
    except ValueError as exc:  # e.g. a date that does not exist, 2020-13-45
        raise ConfigError(name, [f"a value cannot be read ({exc})"])
    if raw is None:
        raise ConfigError(name, ["is empty; a config needs at least `kind:`" + _kinds_hint()])
    if not isinstance(raw, dict):
        raise ConfigError(
            name,
            [f"must be a mapping of keys (kind, data, train, ...), not a {_yaml_type(raw)}"],
        )
    return raw


def _yaml_type(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


def _kinds_hint() -> str:
    return " (one of " + ", ".join(CONFIG_CLASSES) + ")"


# --------------------------------------------------------------------------- overrides


class Override(BaseModel):
    """One change to a loaded config: a dotted key, its new value, and the flag that set it."""

    model_config = ConfigDict(frozen=True)

    path: str
    value: Any
    origin: str


def parse_set(assignment: str) -> Override:
    """An Override from a `--set dotted.key=value` string; the value is parsed as YAML."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(
            "--set", [f"{assignment!r} is not key=value; write e.g. --set train.lr=0.05"]
        )
    try:
        value = _load_yaml(text) if text.strip() else None
    except (yaml.YAMLError, RecursionError, ValueError):
        raise ConfigError("--set", [f"{assignment!r}: the value is not valid YAML"])
    return Override(path=key, value=value, origin=f"--set {assignment}")


def _apply(raw: dict[str, Any], override: Override) -> str | None:
    """Apply one override to a raw config in place; a problem message if it cannot go."""
    parts = override.path.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            return f"{override.path}: cannot set it, {where} is not a section (from {override.origin})"
        node = child
    node[parts[-1]] = override.value
    return None


# --------------------------------------------------------------------------- validation


def load_config(
    path: str | Path, overrides: list[Override] | None = None
) -> ExperimentConfig:
    """Read, override and validate a config file; a ConfigError lists every problem."""
    raw = read_yaml(path)
    config = validate_config(raw, overrides or [], source=str(path))
    data = config.data
    if isinstance(data, CsvData) and not Path(data.path).is_absolute():
        # A data file is found next to the config that names it, wherever bpcli runs.
        located = (Path(path).parent / data.path).resolve()
        config = config.model_copy(update={"data": data.model_copy(update={"path": str(located)})})
    return config


def validate_config(
    raw: dict[str, Any], overrides: list[Override] | None = None, source: str = "<config>"
) -> ExperimentConfig:
    """Validate a raw config mapping after applying overrides; raise one ConfigError."""
    raw = copy.deepcopy(raw)
    problems = [p for o in overrides or [] if (p := _apply(raw, o)) is not None]
    if problems:
        raise ConfigError(source, problems)

    kind = raw.get("kind")
    cls = CONFIG_CLASSES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ConfigError(source, [_kind_problem(kind)])
    try:
        return cls.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(err, cls, overrides or []) for err in exc.errors()]
        raise ConfigError(source, list(dict.fromkeys(lines))) from None  # each problem once


def with_overrides(config: ExperimentConfig, overrides: list[Override]) -> ExperimentConfig:
    """A copy of a validated config with overrides applied and validated again."""
    return validate_config(config.model_dump(mode="json"), overrides, source="<config>")


def _kind_problem(kind: Any) -> str:
    if kind is None:
        return "kind: missing; add `kind:`" + _kinds_hint()
    suggestion = difflib.get_close_matches(str(kind), list(CONFIG_CLASSES), n=1, cutoff=0.5)
    hint = f" (did you mean '{suggestion[0]}'?)" if suggestion else ""
    return f"kind: unknown kind {kind!r}{hint}; choose one of " + ", ".join(CONFIG_CLASSES)


def _clean_loc(loc: tuple[Any, ...]) -> list[Any]:
    # A discriminated union puts the chosen tag into the error location
    # (data.synthetic.n); the user wrote data.n.
    out: list[Any] = []
    for part in loc:
        if out and out[-1] == "data" and part in DATA_SOURCES:
            continue
        if isinstance(part, str) and part.startswith("list["):
            continue  # a union member's name (predict: list[float] | list[list[float]])
        out.append(part)
    return out


def _dotted(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _describe(err: dict[str, Any], cls: type[BaseModel], overrides: list[Override]) -> str:
    """One line for one pydantic error: where, what, and how to fix it."""
    where = _dotted(_clean_loc(err["loc"]))
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        message = _unknown_key(list(err["loc"]), cls)
    elif kind == "missing":
        message = "required, but missing"
    elif kind == "data_source":
        message = f"must be 'inline', 'synthetic', 'function' or 'csv' (got {_short(_data_source(value))})"
        where = "data.source"
    else:
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        message = message[0].lower() + message[1:]
        if not isinstance(value, dict):
            message += f" (got {_short(value)})"
    origin = _origin(where, overrides)
    return f"{where}: {message}{origin}" if where else f"{message}{origin}"


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 40, 40


def _short(value: Any) -> str:
    # Bounded, however large or self-referencing the value is.
    return _REPR.repr(value)


def _origin(where: str, overrides: list[Override]) -> str:
    for o in reversed(overrides):
        if where == o.path or where.startswith(o.path + ".") or o.path.startswith(where + "."):
            return f" (from {o.origin})"
    return ""


def _section_fields(cls: type[BaseModel], parts: list[Any]) -> dict[str, Any] | None:
    """The fields of the section at `parts` (a pydantic error location) inside `cls`."""
    model: Any = cls
    for i, part in enumerate(parts):
        if i > 0 and parts[i - 1] == "data" and part in DATA_SOURCES:
            model = DATA_SOURCES[part]
            continue
        field = model.model_fields.get(part) if model is not None else None
        annotation = getattr(field, "annotation", None)
        is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        model = annotation if is_model else None
        if model is None and part != "data":
            return None
    return model.model_fields if model is not None else None


def _unknown_key(loc: list[Any], cls: type[BaseModel]) -> str:
    key = str(loc[-1])
    fields = _section_fields(cls, loc[:-1]) or {}
    valid = [f for f in fields if f != "kind"]
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean '{close[0]}'?)"
    elsewhere = _where_else(key, cls)
    if elsewhere:
        return f"unknown key here (did you mean '{elsewhere}'?)"
    return "unknown key; valid keys here: " + ", ".join(valid)


def _where_else(key: str, cls: type[BaseModel]) -> str | None:
    """The dotted path of a field named `key` in another section, if there is one."""
    sections = {name: f.annotation for name, f in cls.model_fields.items()}
    for name, annotation in sections.items():
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if key in annotation.model_fields:
                return f"{name}.{key}"
    for data_cls in DATA_SOURCES.values():
        if key in data_cls.model_fields:
            return f"data.{key}"
    if key in cls.model_fields:
        return key
    return None


SECTION_ORDER = ("kind", "seed", "device", "dtype", "data", "model", "train", "predict", "log")


def dump_config(config: ExperimentConfig) -> str:
    """The config as YAML, sections in reading order, ready to be saved or printed."""
    raw = config.model_dump(mode="json")
    ordered = {key: raw[key] for key in SECTION_ORDER if key in raw}
    return yaml.safe_dump(ordered, sort_keys=False, allow_unicode=True)


# --------------------------------------------------------------------------- reference


def _type_name(annotation: Any) -> str:
    # Markdown-table-safe: no "|" in the cell.
    if getattr(annotation, "__origin__", None) is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in annotation.__args__)
    text = str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")
    return text.replace(" | None", " or null").replace("Optional[", "null or ").replace(" | ", " or ")


def _field_rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        description = " ".join((field.description or "").split())
        value = None if field.is_required() else field.get_default(call_default_factory=True)
        if field.is_required():
            default = "per kind"
        elif isinstance(value, BaseModel):
            default = "see below"
        else:
            default = f"`{json.dumps(value)}`"
        rows.append(f"| `{prefix}{name}` | {_type_name(field.annotation)} | {default} | {description} |")
    return rows


def reference_markdown() -> str:
    """The config reference for the README, generated from the models' field docstrings."""
    head = ["| key | type | default | description |", "|---|---|---|---|"]
    top = [r for r in _field_rows(_Experiment, "") if not r.startswith("| `kind`")]
    lines = ["#### Top level", "", *head, "| `kind` | one of " + ", ".join(f"`{k}`" for k in CONFIG_CLASSES)]
    lines[-1] += " | required | The experiment kind; see the table of kinds below. |"
    lines += [*(r for r in top if not r.startswith(("| `data`", "| `train`", "| `log`")))]
    lines += ["| `data`, `model`, `train`, `log` | section | per kind | See below. |", ""]
    for source, cls in DATA_SOURCES.items():
        lines += [f"#### `data` with `source: {source}`", "", cls.__doc__ or "", "", *head]
        lines += [*_field_rows(cls, "data."), ""]
    lines += ["#### `model`", "", "`scalar-sgd` has only `init_w`; `mlp` has `hidden` and `activation`.", "", *head]
    lines += [*_field_rows(LinearModel, "model."), *_field_rows(MLPModel, "model."), ""]
    lines += ["#### `train`", "", *head, *_field_rows(TrainConfig, "train."), ""]
    lines += ["#### `log`", "", *head, *_field_rows(LogConfig, "log."), ""]
    lines += ["#### Kinds and their defaults", "", "| kind | what it trains | defaults |", "|---|---|---|"]
    for kind, cls in CONFIG_CLASSES.items():
        parts = []
        for section, values in cls.DEFAULTS.items():
            if isinstance(values, dict) and values:
                parts.append(f"{section}: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items()))
            elif not isinstance(values, dict):
                parts.append(f"{section}: {json.dumps(values)}")
        lines.append(f"| `{kind}` | {cls.__doc__} | {'; '.join(parts)} |")
    return "\n".join(lines) + "\n"
