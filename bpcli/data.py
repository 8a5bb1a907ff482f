"""Training data: drawn or read on the CPU, in the article's order, then moved once.

Synthetic sources draw from the run's generator; a CSV file is read with numpy's C
parser, checked cell by cell only when it fails, optionally split into training and
validation rows (a shuffle drawn from the same generator) and standardised with the
training rows' statistics.
"""

from __future__ import annotations

import csv
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from bpcli.config import CsvData, FunctionData, InlineData, SyntheticData
from bpcli.errors import BpcliError


class DataError(BpcliError):
    """The data cannot be used: a missing file or column, a bad cell, too few rows."""


@dataclass(frozen=True)
class Dataset:
    """Inputs x of shape (N, F), targets y of shape (N,), and what is known about them."""

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


# --------------------------------------------------------------------------- CSV


def _read_header(path: Path, cfg: CsvData) -> list[str]:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            first = fh.readline()
    except FileNotFoundError:
        raise DataError(f"{path}: no such data file; data.path is relative to the config file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory; data.path must name a CSV file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: is not a UTF-8 text file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    if not first.strip():
        raise DataError(f"{path}: is empty; a CSV needs a header line and rows of numbers")
    cells = next(csv.reader([first], delimiter=cfg.delimiter))
    return [c.strip() for c in cells] if cfg.header else [str(i) for i in range(len(cells))]


def _find_bad_cell(path: Path, cfg: CsvData, names: list[str], columns: list[int]) -> str:
    """The first cell numpy could not read, as 'line L, column C: …' (the slow path)."""
    with open(path, encoding="utf-8", newline="") as fh:
        for line_number, row in enumerate(csv.reader(fh, delimiter=cfg.delimiter), start=1):
            if line_number == 1 and cfg.header:
                continue
            if not row:
                continue
            if len(row) != len(names):
                return f"line {line_number} has {len(row)} cells, the header has {len(names)}"
            for i in columns:
                try:
                    float(row[i])
                except ValueError:
                    return f"line {line_number}, column {names[i]!r}: {row[i]!r} is not a number"
    return "a row cannot be read as numbers"


def _read_table(path: Path, cfg: CsvData) -> tuple[np.ndarray, list[str], str]:
    names = _read_header(path, cfg)
    if cfg.target not in names:
        raise DataError(f"{path}: no column {cfg.target!r} for data.target; the columns are {', '.join(names)}")
    features = cfg.features or [n for n in names if n != cfg.target]
    missing = [f for f in features if f not in names]
    if missing:
        raise DataError(f"{path}: no column {', '.join(map(repr, missing))} for data.features; "
                        f"the columns are {', '.join(names)}")
    if not features:
        raise DataError(f"{path}: no feature columns besides the target {cfg.target!r}")
    columns = [names.index(f) for f in features] + [names.index(cfg.target)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": checked below
            table = np.loadtxt(path, delimiter=cfg.delimiter, skiprows=1 if cfg.header else 0,
                               usecols=columns, dtype=np.float64, ndmin=2, comments=None,
                               quotechar='"', encoding="utf-8")
    except ValueError:
        raise DataError(f"{path}: {_find_bad_cell(path, cfg, names, columns)}") from None
    return table, features, cfg.target


def _csv(cfg: CsvData, generator: torch.Generator, dtype: torch.dtype) -> Dataset:
    path = Path(cfg.path)
    table, features, target = _read_table(path, cfg)
    notes = []
    finite = np.isfinite(table).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        cell = int(np.argmin(np.isfinite(table[row])))
        if not cfg.drop_invalid:
            raise DataError(
                f"{path}: line {row + 1 + int(cfg.header)}, column {[*features, target][cell]!r} is "
                f"{table[row][cell]} ({int((~finite).sum())} such rows); set data.drop_invalid: true to drop them"
            )
        notes.append(f"dropped {int((~finite).sum())} rows holding NaN or infinite values")
        table = table[finite]
    if len(table) < 2:
        raise DataError(f"{path}: has {len(table)} usable row(s); gradient descent needs at least 2")

    x_all = torch.from_numpy(table[:, :-1]).to(dtype)
    y_all = torch.from_numpy(table[:, -1]).to(dtype)
    x_val = y_val = None
    if cfg.val_fraction > 0:
        held = round(len(table) * cfg.val_fraction)
        if held < 1 or held >= len(table):
            raise DataError(f"{path}: {len(table)} rows cannot give a validation split of "
                            f"{cfg.val_fraction}; change data.val_fraction")
        order = torch.randperm(len(table), generator=generator)  # drawn before the parameters
        x_val, y_val = x_all[order[:held]], y_all[order[:held]]
        x_all, y_all = x_all[order[held:]], y_all[order[held:]]

    scaling = None
    if cfg.standardize != "none":
        x_mean, x_std = x_all.mean(0), x_all.std(0, unbiased=False)
        constant = [f for f, s in zip(features, x_std.tolist()) if s == 0]
        if constant:
            raise DataError(f"{path}: column {', '.join(map(repr, constant))} is constant and cannot be "
                            "standardised; leave it out of data.features")
        y_mean, y_std = (y_all.mean(), y_all.std(unbiased=False)) if cfg.standardize == "all" else (
            torch.tensor(0.0, dtype=dtype), torch.tensor(1.0, dtype=dtype))
        if float(y_std) == 0:
            raise DataError(f"{path}: the target {target!r} is constant; there is nothing to learn")
        scaling = {"features": features, "x_mean": x_mean.tolist(), "x_std": x_std.tolist(),
                   "target": target, "y_mean": float(y_mean), "y_std": float(y_std)}

        def scale(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return (x - x_mean) / x_std, (y - y_mean) / y_std

        x_all, y_all = scale(x_all, y_all)
        if x_val is not None and y_val is not None:
            x_val, y_val = scale(x_val, y_val)
    return Dataset(x_all, y_all, None, None, x_val, y_val, features, target, scaling, notes)


# The data sources by name, matching the `source` field of the config's data section.
SOURCES: dict[str, Callable[..., Dataset]] = {
    "inline": _inline, "synthetic": _synthetic, "function": _function, "csv": _csv,
}


def make_dataset(cfg: Any, generator: torch.Generator, dtype: torch.dtype) -> Dataset:
    """Build the configured data on the CPU, drawing from `generator` where it is random."""
    return SOURCES[cfg.source](cfg, generator, dtype)


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
