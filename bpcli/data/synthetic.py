"""`source: synthetic`: points on a line, drawn with the run's seed as the article draws them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, model_validator

from bpcli.section import Section

if TYPE_CHECKING:
    import torch

    from bpcli.data.dataset import Dataset


def x_range_checked(section: Any) -> Any:
    """The section itself, if its x_low lies below its x_high."""
    if not section.x_low < section.x_high:
        raise ValueError(f"x_low ({section.x_low}) must be below x_high ({section.x_high}); swap them")
    return section


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

    # The article: x = torch.rand(n) after torch.manual_seed(seed), then y = 4·x + 0.6.
    # uniform_(0, 1) draws exactly what torch.rand draws from the same generator.
    x = torch.empty(cfg.n, 1, dtype=dtype).uniform_(cfg.x_low, cfg.x_high, generator=generator)
    y = cfg.true_w * x[:, 0] + cfg.true_b
    if cfg.noise > 0:
        # Drawn after x, so the noise-free data (and everything drawn later) stay as they were.
        y = y + cfg.noise * torch.randn(cfg.n, dtype=dtype, generator=generator)
    return Dataset(x, y, {"w": cfg.true_w, "b": cfg.true_b})
