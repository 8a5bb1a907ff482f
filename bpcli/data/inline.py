"""`source: inline`: data written out in the config, as in the article's experiment 1."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from bpcli.section import Section

if TYPE_CHECKING:
    import torch

    from bpcli.data.dataset import Dataset


class InlineData(Section):
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


def build(cfg: InlineData, generator: torch.Generator, dtype: torch.dtype) -> Dataset:
    """The listed points as tensors (nothing is drawn)."""
    import torch

    from bpcli.data.dataset import Dataset
    from bpcli.data.limits import check_values

    check_values({"data.x": cfg.x, "data.y": cfg.y, "data.true_w": cfg.true_w, "data.true_b": cfg.true_b}, dtype)
    x = torch.tensor(cfg.x, dtype=dtype).reshape(-1, 1)
    y = torch.tensor(cfg.y, dtype=dtype)
    known = {"w": cfg.true_w, "b": cfg.true_b}
    true = {k: v for k, v in known.items() if v is not None}
    return Dataset(x, y, true or None)
