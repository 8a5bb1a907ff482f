"""The training data as tensors, and the conversions between model and original units."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True)
class Dataset:
    """Inputs x of shape (N, F), targets y of shape (N,) (numbers, or class indices), and
    what is known about them."""

    x: torch.Tensor
    y: torch.Tensor
    true_params: dict[str, float] | None
    true_function: str | None = None
    """The name of the curve behind the data (function source), for plots."""
    x_val: torch.Tensor | None = None
    """Held-out inputs (CSV with val_fraction), in the same units as x."""
    y_val: torch.Tensor | None = None
    feature_names: list[str] = field(default_factory=lambda: ["x"])
    target_name: str = "y"
    scaling: dict[str, Any] | None = None
    """Means and standard deviations used to standardise (x − mean)/std, if any."""
    notes: list[str] = field(default_factory=list)
    """What happened to the data on the way in (rows dropped), for the summary."""
    raw: dict[str, tuple[torch.Tensor, torch.Tensor]] | None = None
    """Each split's rows (x, y) as read, in float64, before rounding to the run's dtype and
    standardising (CSV data); None when x and y are the data as read."""
    classes: list[str] | None = None
    """The class names in order, when y holds class labels (None for a numeric target): y
    (and y_val, and raw's y) then holds each row's class index 0 … C−1 as a float, and of
    two classes the second, y = 1, is the positive one."""

    def as_read(self, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """A split's rows as read, in float64 and the original units."""
        if self.raw is not None:
            return self.raw[split]
        x, y = self.splits()[split]
        return x.to(torch.float64), y.to(torch.float64)

    def splits(self) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """{"train": (x, y)}, and "val" when rows were held out."""
        out = {"train": (self.x, self.y)}
        if self.x_val is not None and self.y_val is not None:
            out["val"] = (self.x_val, self.y_val)
        return out


def to_model_units(data: Dataset, x: torch.Tensor) -> torch.Tensor:
    """Inputs in the data's original units, scaled as the model saw its training data."""
    if data.scaling is None:
        return x
    mean = torch.tensor(data.scaling["x_mean"], dtype=x.dtype)
    std = torch.tensor(data.scaling["x_std"], dtype=x.dtype)
    return (x - mean) / std


def to_original_units(data: Dataset, y: torch.Tensor) -> torch.Tensor:
    """Model outputs back in the target's original units."""
    if data.scaling is None:
        return y
    return y * data.scaling["y_std"] + data.scaling["y_mean"]


def target_scaled(data: Dataset) -> bool:
    """Whether the model's outputs are in other units than the target's (standardize: all)."""
    return data.scaling is not None and (data.scaling["y_std"] != 1.0 or data.scaling["y_mean"] != 0.0)


def model_linear_params(data: Dataset, params: dict[str, list[float]]) -> dict[str, list[float]]:
    """w and b of a linear model in the original units, in the standardised units the model
    trains in: the inverse of original_linear_params, w_j = w'_j·σ_j/σ_y and
    b = (b' + Σ_j w'_j·μ_j − μ_y)/σ_y."""
    if data.scaling is None:
        return params
    s = data.scaling
    w = [wj * sj / s["y_std"] for wj, sj in zip(params["w"], s["x_std"])]
    out = {"w": w}
    if "b" in params:
        shift = sum(wj * mj for wj, mj in zip(params["w"], s["x_mean"]))
        out["b"] = [(params["b"][0] + shift - s["y_mean"]) / s["y_std"]]
    return out


def original_linear_params(data: Dataset, params: dict[str, list[float]]) -> dict[str, list[float]] | None:
    """w and b of a linear model trained on standardised data, in the original units.

    ŷ = σ_y·(Σ_j w_j·(x_j − μ_j)/σ_j + b) + μ_y, so w'_j = σ_y·w_j/σ_j and
    b' = σ_y·(b − Σ_j w_j·μ_j/σ_j) + μ_y.
    """
    if data.scaling is None or "w" not in params or "b" not in params or isinstance(params["w"], dict):
        return None
    s = data.scaling
    w = [s["y_std"] * wj / sj for wj, sj in zip(params["w"], s["x_std"])]
    shift = sum(wj * mj / sj for wj, mj, sj in zip(params["w"], s["x_mean"], s["x_std"]))
    b = s["y_std"] * (params["b"][0] - shift) + s["y_mean"]
    if not all(math.isfinite(v) for v in [*w, b]):
        return None
    return {"w": w, "b": [b]}
