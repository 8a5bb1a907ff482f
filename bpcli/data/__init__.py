"""Training data sources, each defined once (its config section and its builder) and
registered once in SOURCES.

A config's `data` section names its source; `DataConfig`, the type of that section, is
built from SOURCES. Data are drawn or read on the CPU, in the article's order (data
before parameters), and moved to the device once. Importing this package does not
import torch: the config schema and the plots read it, and torch is imported when data
are built.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Callable, Literal, Union

from pydantic import Discriminator, Tag

from bpcli.section import Section
from bpcli.data import csvfile, function, inline, planar, synthetic

if TYPE_CHECKING:
    import torch

    from bpcli.data.dataset import Dataset


@dataclass(frozen=True)
class Source:
    """A data source: the config section that describes it, the function that builds it,
    and what its targets are."""

    config: type[Section]
    build: Callable[..., Dataset]
    targets: Literal["numbers", "classes", "either"] = "numbers"
    """What y holds: numbers (for regression), class labels, or either, as the kind asks;
    the builder of an `either` source is told which, as its fourth argument (classify)."""


# The registry of data sources, by the value of `data.source`.
SOURCES: dict[str, Source] = {
    "inline": Source(inline.InlineData, inline.build),
    "synthetic": Source(synthetic.SyntheticData, synthetic.build),
    "function": Source(function.FunctionData, function.build),
    "csv": Source(csvfile.CsvData, csvfile.build, "either"),
    "moons": Source(planar.MoonsData, planar.build_moons, "classes"),
    "circles": Source(planar.CirclesData, planar.build_circles, "classes"),
    "xor": Source(planar.XorData, planar.build_xor, "classes"),
    "gauss": Source(planar.GaussData, planar.build_gauss, "classes"),
    "spiral": Source(planar.SpiralData, planar.build_spiral, "classes"),
}


def source_of(value: Any) -> str | None:
    """The source a data section names; when it names none, the one its keys imply."""
    # Points listed as x/y are inline, a file is csv, a curve named by fn is a function,
    # anything else synthetic.
    if isinstance(value, dict):
        if "source" in value:
            return value["source"]
        if "x" in value or "y" in value:
            return "inline"
        if "path" in value:
            return "csv"
        return "function" if "fn" in value else "synthetic"
    return getattr(value, "source", None)


SOURCE_CHOICES = " or ".join(", ".join(f"'{name}'" for name in SOURCES).rsplit(", ", 1))
"""The valid values of data.source, for messages: 'inline', 'synthetic', … or 'spiral'."""

DataConfig = Annotated[
    Union[tuple(Annotated[s.config, Tag(name)] for name, s in SOURCES.items())],  # type: ignore[valid-type]
    Discriminator(
        source_of,
        custom_error_type="data_source",
        custom_error_message=f"data.source must be {SOURCE_CHOICES}",
    ),
]
"""The type of a config's `data` section: one of the registered sources' sections."""


def targets_mismatch(source: str, classify: bool) -> str | None:
    """Why data of `source` cannot train a kind that classifies (or, with classify False,
    one that fits numbers); None when they go together. Kinds may call it to refuse a config."""
    targets = SOURCES[source].targets
    if classify and targets == "numbers":
        labelled = ", ".join(name for name, s in SOURCES.items() if s.targets == "classes")
        return (f"data: source: {source} has numeric targets, and this kind classifies; use a source of "
                f"class labels ({labelled}), or source: csv with a column of labels")
    if not classify and targets == "classes":
        return (f"data: source: {source} draws class labels and needs a classification kind (logistic, "
                "softmax, or mlp with a classification loss)")
    return None


def make_dataset(cfg: Any, generator: torch.Generator, dtype: torch.dtype, classify: bool = False) -> Dataset:
    """Build the configured data on the CPU, drawing from `generator` where it is random;
    with `classify`, y holds class indices and the Dataset its classes."""
    import torch

    from bpcli.data.limits import fix, name_of
    from bpcli.errors import DataError

    source = SOURCES[cfg.source]
    problem = targets_mismatch(cfg.source, classify)
    if problem:
        raise DataError(problem)
    told = (classify,) if source.targets == "either" else ()
    data = source.build(cfg, generator, dtype, *told)
    # Each source refuses, with its own words, the values that do not fit the dtype; this is
    # the net under them: a NaN or inf that reached the tensors would only surface later,
    # as a diverged loss or an error from the linear-algebra library.
    for name, tensor in (("x", data.x), ("y", data.y), ("x_val", data.x_val), ("y_val", data.y_val)):
        if tensor is not None and not bool(torch.isfinite(tensor).all()):
            count = int((~torch.isfinite(tensor)).sum())
            raise DataError(f"data: {count} value(s) of {name} are NaN or infinite in {name_of(dtype)}; "
                            f"{fix(dtype)}")
    return data
