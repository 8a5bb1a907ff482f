"""Training data: drawn or read on the CPU, in the article's order, then moved once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from bpcli.config import FunctionData, InlineData, SyntheticData


@dataclass(frozen=True)
class Dataset:
    """Inputs x of shape (N, F), targets y of shape (N,), and the line behind them if known."""

    x: torch.Tensor
    y: torch.Tensor
    true_params: dict[str, float] | None
    true_function: str | None = None
    """The name of the curve behind the data (function source), for plots."""


def _inline(cfg: InlineData, generator: torch.Generator, dtype: torch.dtype) -> Dataset:
    x = torch.tensor(cfg.x, dtype=dtype).reshape(-1, 1)
    y = torch.tensor(cfg.y, dtype=dtype)
    known = {"w": cfg.true_w, "b": cfg.true_b}
    true = {k: v for k, v in known.items() if v is not None}
    return Dataset(x, y, true or None)


def _synthetic(cfg: SyntheticData, generator: torch.Generator, dtype: torch.dtype) -> Dataset:
    # The article: x = torch.rand(n) after torch.manual_seed(seed), then y = 4·x + 0.6.
    # uniform_(0, 1) draws exactly what torch.rand draws from the same generator.
    x = torch.empty(cfg.n, 1, dtype=dtype).uniform_(cfg.x_low, cfg.x_high, generator=generator)
    y = cfg.true_w * x[:, 0] + cfg.true_b
    if cfg.noise > 0:
        # Drawn after x, so the noise-free data (and everything drawn later) stay as they were.
        y = y + cfg.noise * torch.randn(cfg.n, dtype=dtype, generator=generator)
    return Dataset(x, y, {"w": cfg.true_w, "b": cfg.true_b})


# The curves a function source can draw, by name.
CURVES = {"sin": torch.sin, "cos": torch.cos, "square": torch.square, "abs": torch.abs, "tanh": torch.tanh}


def _function(cfg: FunctionData, generator: torch.Generator, dtype: torch.dtype) -> Dataset:
    x = torch.empty(cfg.n, 1, dtype=dtype).uniform_(cfg.x_low, cfg.x_high, generator=generator)
    y = CURVES[cfg.fn](x[:, 0])
    if cfg.noise > 0:
        y = y + cfg.noise * torch.randn(cfg.n, dtype=dtype, generator=generator)
    return Dataset(x, y, None, cfg.fn)


# The data sources by name, matching the `source` field of the config's data section.
SOURCES: dict[str, Callable[..., Dataset]] = {"inline": _inline, "synthetic": _synthetic, "function": _function}


def make_dataset(cfg: InlineData | SyntheticData | FunctionData, generator: torch.Generator, dtype: torch.dtype) -> Dataset:
    """Build the configured data on the CPU, drawing from `generator` where it is random."""
    return SOURCES[cfg.source](cfg, generator, dtype)
