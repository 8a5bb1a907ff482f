"""`source: csv`: a table read from a file, optionally split and standardised.

The file is read with numpy's C parser and checked cell by cell only when that fails.
Validation rows are chosen by a shuffle drawn from the run's generator (before the
parameters are drawn), and standardisation uses the training rows' statistics alone.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from bpcli.section import Section
from bpcli.errors import DataError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from bpcli.data.dataset import Dataset


class CsvData(Section):
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
    import numpy as np

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


def _finite_rows(path: Path, cfg: CsvData, table: np.ndarray, columns: list[str]) -> tuple[np.ndarray, list[str]]:
    """The rows without NaN or infinity, and a note if some were dropped (or a DataError)."""
    import numpy as np

    finite = np.isfinite(table).all(axis=1)
    if finite.all():
        return table, []
    row = int(np.argmin(finite))
    cell = int(np.argmin(np.isfinite(table[row])))
    if not cfg.drop_invalid:
        raise DataError(
            f"{path}: line {row + 1 + int(cfg.header)}, column {columns[cell]!r} is "
            f"{table[row][cell]} ({int((~finite).sum())} such rows); set data.drop_invalid: true to drop them"
        )
    return table[finite], [f"dropped {int((~finite).sum())} rows holding NaN or infinite values"]


def _standardised(path: Path, cfg: CsvData, features: list[str], target: str,
                  splits: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[Any, dict[str, Any]]:
    """Every (x, y) split rescaled with the first (training) split's means and deviations."""
    import torch

    x_all, y_all = splits[0]
    x_mean, x_std = x_all.mean(0), x_all.std(0, unbiased=False)
    constant = [f for f, s in zip(features, x_std.tolist()) if s == 0]
    if constant:
        raise DataError(f"{path}: column {', '.join(map(repr, constant))} is constant and cannot be "
                        "standardised; leave it out of data.features")
    y_mean, y_std = (y_all.mean(), y_all.std(unbiased=False)) if cfg.standardize == "all" else (
        torch.tensor(0.0, dtype=y_all.dtype), torch.tensor(1.0, dtype=y_all.dtype))
    if float(y_std) == 0:
        raise DataError(f"{path}: the target {target!r} is constant; there is nothing to learn")
    scaling = {"features": features, "x_mean": x_mean.tolist(), "x_std": x_std.tolist(),
               "target": target, "y_mean": float(y_mean), "y_std": float(y_std)}
    return [((x - x_mean) / x_std, (y - y_mean) / y_std) for x, y in splits], scaling


def build(cfg: CsvData, generator: torch.Generator, dtype: torch.dtype) -> Dataset:
    """The table's training (and validation) rows as tensors, standardised if asked."""
    import torch

    from bpcli.data.dataset import Dataset

    path = Path(cfg.path)
    table, features, target = _read_table(path, cfg)
    table, notes = _finite_rows(path, cfg, table, [*features, target])
    if len(table) < 2:
        raise DataError(f"{path}: has {len(table)} usable row(s); gradient descent needs at least 2")

    x_all = torch.from_numpy(table[:, :-1]).to(dtype)
    y_all = torch.from_numpy(table[:, -1]).to(dtype)
    splits = [(x_all, y_all)]
    if cfg.val_fraction > 0:
        held = round(len(table) * cfg.val_fraction)
        if held < 1 or held >= len(table):
            raise DataError(f"{path}: {len(table)} rows cannot give a validation split of "
                            f"{cfg.val_fraction}; change data.val_fraction")
        order = torch.randperm(len(table), generator=generator)  # drawn before the parameters
        splits = [(x_all[order[held:]], y_all[order[held:]]), (x_all[order[:held]], y_all[order[:held]])]
    scaling = None
    if cfg.standardize != "none":
        splits, scaling = _standardised(path, cfg, features, target, splits)
    (x, y), (x_val, y_val) = splits[0], (splits[1] if len(splits) > 1 else (None, None))
    return Dataset(x, y, None, None, x_val, y_val, features, target, scaling, notes)
