"""`source: synthetic`: points on a line, drawn with the run's seed as the article draws them."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from bpcli.errors import DataError
from bpcli.section import Section

if TYPE_CHECKING:
    import torch

    from bpcli.data.dataset import Dataset


def x_range_checked(section: Any) -> Any:
    """The section itself, if its x_low lies below its x_high and the width is a float."""
    if not section.x_low < section.x_high:
        raise ValueError(f"x_low ({section.x_low}) must be below x_high ({section.x_high}); swap them")
    if math.isinf(section.x_high - section.x_low):
        raise ValueError(f"the range from x_low {section.x_low:g} to x_high {section.x_high:g} is wider than "
                         "any float can hold; narrow it")
    return section


def x_range_fits(cfg: Any, dtype: torch.dtype) -> None:
    """Refuse a range (or noise) that `dtype` cannot hold, before torch draws from it."""
    from bpcli.data.limits import beyond, check_values, fix, largest

    check_values({"data.x_low": cfg.x_low, "data.x_high": cfg.x_high, "data.noise": cfg.noise}, dtype)
    # uniform_ computes x_low + (x_high − x_low)·u, so the width must fit too.
    if cfg.x_high - cfg.x_low > largest(dtype):
        raise DataError(f"data.x_high − data.x_low = {cfg.x_high - cfg.x_low:g} is beyond {beyond(dtype)}; "
                        f"narrow the range, or {fix(dtype)}")


def y_finite(x: torch.Tensor, y: torch.Tensor, formula: str, remedy: str, dtype: torch.dtype) -> None:
    """Refuse targets that overflowed `dtype`: the formula where it left the range, and the fix."""
    import torch

    from bpcli.data.limits import beyond, fix

    finite = torch.isfinite(y)
    if not bool(finite.all()):
        i = int(torch.argmin(finite.to(torch.uint8)))
        count = int((~finite).sum())
        raise DataError(f"data: y = {formula} overflows {beyond(dtype)} at x = {float(x[i, 0]):g} "
                        f"({count} of {len(y)} samples); {remedy}, or {fix(dtype)}")


class SyntheticData(Section):
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
        return x_range_checked(self)


def build(cfg: SyntheticData, generator: torch.Generator, dtype: torch.dtype) -> Dataset:
    """x ~ U[x_low, x_high), y = true_w·x + true_b (+ noise), drawn from `generator`."""
    import torch

    from bpcli.data.dataset import Dataset
    from bpcli.data.limits import beyond, check_values, fix, largest

    x_range_fits(cfg, dtype)
    check_values({"data.true_w": cfg.true_w, "data.true_b": cfg.true_b}, dtype)
    # y is largest at an end of the range; true_w·x alone must fit too, since torch
    # computes it before adding true_b.
    for end in (cfg.x_low, cfg.x_high):
        for part, value in (("true_w·x", cfg.true_w * end), ("true_w·x + true_b", cfg.true_w * end + cfg.true_b)):
            if not abs(value) <= largest(dtype):
                reaches = "overflows" if math.isinf(value) else f"reaches {value:g}"
                raise DataError(f"data: {part} {reaches} at x = {end:g} (true_w = {cfg.true_w:g}), "
                                f"beyond {beyond(dtype)}; narrow data.x_low/x_high or lower true_w, or {fix(dtype)}")

    # The article: x = torch.rand(n) after torch.manual_seed(seed), then y = 4·x + 0.6.
    # uniform_(0, 1) draws exactly what torch.rand draws from the same generator.
    x = torch.empty(cfg.n, 1, dtype=dtype).uniform_(cfg.x_low, cfg.x_high, generator=generator)
    y = cfg.true_w * x[:, 0] + cfg.true_b
    if cfg.noise > 0:
        # Drawn after x, so the noise-free data (and everything drawn later) stay as they were.
        y = y + cfg.noise * torch.randn(cfg.n, dtype=dtype, generator=generator)
    # Only the noise can still overflow here (true_w·x + true_b was checked above).
    y_finite(x, y, "true_w·x + true_b + noise·N(0, 1)", "lower data.noise", dtype)
    return Dataset(x, y, {"w": cfg.true_w, "b": cfg.true_b})
