"""`source: function`: points on a nonlinear curve, drawn with the run's seed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from bpcli.section import Section
from bpcli.data.synthetic import x_range_checked, x_range_fits, y_finite

if TYPE_CHECKING:
    import torch

    from bpcli.data.dataset import Dataset

CURVES = ("sin", "cos", "square", "abs", "tanh")
"""The curves a function source can draw. torch and numpy both name these functions so
(torch.sin, numpy.sin, …): training draws with one and the plots, which never import
torch, redraw the true curve with the other."""


class FunctionData(Section):
    """Points on a nonlinear curve y = fn(x), plus optional noise, drawn with the run's seed."""

    source: Literal["function"] = "function"
    """Where the data comes from: `function` draws x uniformly and computes y = fn(x)."""
    fn: Literal[CURVES] = "sin"  # type: ignore[valid-type]
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
        return x_range_checked(self)


def build(cfg: FunctionData, generator: torch.Generator, dtype: torch.dtype) -> Dataset:
    """x ~ U[x_low, x_high), y = fn(x) (+ noise), drawn from `generator`."""
    import torch

    from bpcli.data.dataset import Dataset

    x_range_fits(cfg, dtype)
    x = torch.empty(cfg.n, 1, dtype=dtype).uniform_(cfg.x_low, cfg.x_high, generator=generator)
    y = getattr(torch, cfg.fn)(x[:, 0])
    if cfg.noise > 0:
        y = y + cfg.noise * torch.randn(cfg.n, dtype=dtype, generator=generator)
    noisy = cfg.noise > 0
    y_finite(x, y, f"{cfg.fn}(x)" + (" + noise·N(0, 1)" if noisy else ""),
             "narrow data.x_low/x_high" + (" or lower data.noise" if noisy else ""), dtype)
    return Dataset(x, y, None, cfg.fn)
