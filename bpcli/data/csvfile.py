"""`source: csv`: a table read from a file, optionally split and standardised.

The file is read with numpy's C parser and checked cell by cell only when that fails; the
problems are then reported with their lines, the first few in full and the rest counted.
Validation rows are chosen by a shuffle drawn from the run's generator (before the
parameters are drawn), and standardisation uses the training rows' statistics alone.

For a kind that classifies, the target column holds class labels, whole numbers or text:
the classes are the distinct labels, numbers in numeric order and text in alphabetical
order, and y each row's class index. The index takes the label's place in the table as
read, so that dropping rows, splitting and `raw` treat it as any target.
"""

from __future__ import annotations

import csv
import math
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

from pydantic import Field, field_validator

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
    """The column to predict (its name, or its number from 0 when header is false): numbers,
    or for a kind that classifies, class labels (whole numbers or text)."""
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
    the features, or the features and the target. Parameters, the optimum and predictions
    are also reported in the original units. Refused for models without intercept
    (scalar-sgd, model.bias: false), which centring would give one; `all` is refused for a
    kind that classifies (class labels are not rescaled)."""
    val_fraction: float = Field(0.0, ge=0.0, le=0.9)
    """Share of the rows held out, after a shuffle drawn with the seed, to measure the
    validation loss."""

    @field_validator("target", "features", mode="before")
    @classmethod
    def _numbers_as_names(cls, value: Any) -> Any:
        # With header: false a column is given by its number, which YAML reads as an int;
        # the names of such columns are "0", "1", …
        def named(v: Any) -> Any:
            return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

        return [named(v) for v in value] if isinstance(value, list) else named(value)


SHOWN = 3
"""How many problems of a broken file are spelled out; the rest are counted, so a file of a
million bad cells still gets one short line."""


def _open(path: Path, errors: str = "strict") -> TextIO:
    # utf-8-sig: a byte-order mark (spreadsheets write one) is not part of the first cell.
    return open(path, encoding="utf-8-sig", errors=errors, newline="")


def _read_header(path: Path, cfg: CsvData) -> list[str]:
    """The column names: the first line's cells, or their numbers from 0 without a header."""
    try:
        with open(path, "rb") as fh:
            # Decoded alone: a text reader would decode (and trip on) the lines after it too.
            first = fh.readline().decode("utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: no such data file; data.path is relative to the config file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory; data.path must name a CSV file") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: line 1 is not UTF-8 text; save the file as UTF-8") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror})") from None
    if not first.strip():
        raise DataError(f"{path}: is empty; a CSV needs a header line and rows of numbers")
    try:
        cells = next(csv.reader([first], delimiter=cfg.delimiter))
    except csv.Error as exc:
        raise DataError(f"{path}: line 1 cannot be read as CSV ({exc})") from None
    return [c.strip() for c in cells] if cfg.header else [str(i) for i in range(len(cells))]


def _looks_numeric(names: list[str]) -> bool:
    return all(_is_number(n) for n in names)


def _columns(path: Path, cfg: CsvData, names: list[str]) -> tuple[list[str], list[int]]:
    """The feature names, and the file's columns to read: the features', then the target's."""
    if not cfg.header:
        where = f"with header: false, columns are numbered 0 to {len(names) - 1} (line 1 has {len(names)} cells)"
    elif _looks_numeric(names):
        where = (f"the columns are {', '.join(names)}, which look like numbers: if line 1 is data, "
                 "set data.header: false and give columns by number")
    else:
        where = f"the columns are {', '.join(names)}"
    if cfg.target not in names:
        raise DataError(f"{path}: no column {cfg.target!r} for data.target; {where}")
    if cfg.features is not None:
        if cfg.target in cfg.features:
            raise DataError(f"{path}: data.features lists the target {cfg.target!r}; a column cannot be both "
                            "an input and the target, remove it from data.features")
        twice = sorted({f for f in cfg.features if cfg.features.count(f) > 1})
        if twice:
            raise DataError(f"{path}: data.features lists {', '.join(map(repr, twice))} more than once; "
                            "list each column once")
    features = cfg.features or [n for n in names if n != cfg.target]
    missing = [f for f in features if f not in names]
    if missing:
        raise DataError(f"{path}: no column {', '.join(map(repr, missing))} for data.features; {where}")
    if not features:
        raise DataError(f"{path}: no feature columns besides the target {cfg.target!r}")
    for name in [*features, cfg.target]:
        cells = [i + 1 for i, n in enumerate(names) if n == name]
        if name == "":
            raise DataError(f"{path}: line 1, cell {cells[0]} has no column name, so the column cannot be "
                            "told apart; name it, or list the columns to use in data.features")
        if len(cells) > 1:
            raise DataError(f"{path}: line 1 names {len(cells)} columns {name!r} (cells "
                            f"{', '.join(map(str, cells))}); rename them so that data.target and "
                            "data.features say which one they mean")
    return features, [names.index(f) for f in features] + [names.index(cfg.target)]


def _ignored(cell: str) -> float:
    """The value of a cell in a column that is not used (it may hold text)."""
    return 0.0


def _read_table(path: Path, cfg: CsvData, names: list[str], columns: list[int], labels: bool) -> np.ndarray:
    """The used columns as float64, features first and the target last (or a DataError).

    With `labels`, the target may hold text: its cells are read by _read_labels, and its
    column here holds 0.0 where a cell is not a number."""
    import numpy as np

    def load(converters: dict[int, Any] | None) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": checked later
            return np.loadtxt(path, delimiter=cfg.delimiter, skiprows=1 if cfg.header else 0,
                              converters=converters, dtype=np.float64, ndmin=2, comments=None,
                              quotechar='"', encoding="utf-8-sig")

    # Every column is read, so that numpy's C reader checks that each row has as many cells
    # as the first (with usecols it would silently ignore extra cells, or a missing cell of
    # an unused column); the first row is checked against the header below. If an unused
    # column holds text, it is read again through a converter that ignores it (a Python
    # call per cell, so only when needed).
    numeric = columns[:-1] if labels else columns
    unused = {i: _ignored for i in range(len(names)) if i not in numeric}
    try:
        try:
            table = load(None)
        except ValueError:
            if not unused:
                raise
            table = load(unused)
    except ValueError as exc:  # a cell that is not a number, a row of another length, bad UTF-8
        raise DataError(f"{path}: {_problems(path, cfg, names, numeric, exc)}") from None
    if not len(table):
        return np.empty((0, len(columns)))
    if table.shape[1] != len(names):
        raise DataError(f"{path}: {_problems(path, cfg, names, numeric, None)}")
    return table if columns == list(range(len(names))) else table[:, columns]


def _is_number(cell: str) -> bool:
    """Whether numpy's reader takes the cell as a number (Python's float also takes 1_000)."""
    try:
        float(cell)
    except ValueError:
        return False
    return "_" not in cell


def _shown(cell: str) -> str:
    return repr(cell) if len(cell) <= 24 else repr(cell[:24]) + "…"


def _not_utf8(cell: str) -> bool:
    # Read with errors="surrogateescape", a byte that is not UTF-8 becomes U+DC80…U+DCFF.
    return any("\udc80" <= ch <= "\udcff" for ch in cell)


def _problems(path: Path, cfg: CsvData, names: list[str], columns: list[int],
              error: ValueError | None) -> str:
    """What is wrong with the rows: the first few problems with their lines, and how many
    there are (the slow path, taken only when numpy's reader has refused the file)."""
    width, shown = len(names), []
    counts = {"rows": 0, "cells": 0, "text": 0}

    def found(kind: str, text: str) -> None:
        counts[kind] += 1
        if len(shown) < SHOWN:
            shown.append(text)

    first = "the header" if cfg.header else "line 1"
    with _open(path, errors="surrogateescape") as fh:
        reader = csv.reader(fh, delimiter=cfg.delimiter)
        try:
            end = 0
            for number, row in enumerate(reader):
                # A quoted cell may span lines: a row is named by the line it starts on.
                line, end = end + 1, reader.line_num
                if (number == 0 and cfg.header) or not row:
                    continue
                if any(_not_utf8(cell) for cell in row):
                    found("text", f"line {line} is not UTF-8 text")
                elif len(row) != width:
                    found("rows", f"line {line} has {len(row)} cells, {first} has {width}")
                else:
                    for i in columns:
                        if not _is_number(row[i]):
                            found("cells", f"line {line}, column {names[i]!r}: {_shown(row[i])} is not a number")
        except csv.Error as exc:
            return f"line {reader.line_num} cannot be read as CSV ({exc})"
    # The target is checked here unless it holds class labels (and may hold text).
    checked = "data.target and data.features" if names.index(cfg.target) in columns else "data.features"
    fixes = {"rows": f"give every row {width} cells",
             "cells": f"make every cell of {checked} a number",
             "text": "save the file as UTF-8"}
    total = sum(counts.values())
    if total == 0:  # numpy refused something the check above let through
        return f"cannot be read as a table of numbers ({error})"
    advice = " and ".join(fixes[k] for k, n in counts.items() if n)
    if total == 1:
        return f"{shown[0]}; {advice}"
    tally = {"rows": "rows with the wrong number of cells", "cells": "cells that are not numbers",
             "text": "lines that are not UTF-8"}
    summary = ", ".join(f"{n} {tally[k]}" for k, n in counts.items() if n)
    return f"{summary}; the first {len(shown)}: {'; '.join(shown)}; {advice}"


def _line_of(path: Path, cfg: CsvData, index: int) -> tuple[int, list[str]]:
    """The line on which the table's row `index` starts, and its cells (blank lines hold no row)."""
    with _open(path, errors="surrogateescape") as fh:
        reader = csv.reader(fh, delimiter=cfg.delimiter)
        end, number = 0, -1 if cfg.header else 0  # the header is row -1
        for row in reader:
            line, end = end + 1, reader.line_num
            if row:
                if number == index:
                    return line, row
                number += 1
    return end, []


def _in_range(path: Path, cfg: CsvData, table: np.ndarray, names: list[str], columns: list[int],
              dtype: torch.dtype) -> None:
    """Refuse finite cells that `dtype` cannot hold (they would become ±inf)."""
    import numpy as np

    from bpcli.data.limits import beyond, fix, largest

    if largest(dtype) >= np.finfo(table.dtype).max:
        return  # every finite cell of the table fits
    with np.errstate(invalid="ignore"):
        over = np.isfinite(table) & (np.abs(table) > largest(dtype))
    if over.any():
        row, cell = divmod(int(np.argmax(over)), table.shape[1])
        line, _ = _line_of(path, cfg, row)
        count = int(over.sum())
        raise DataError(f"{path}: line {line}, column {names[columns[cell]]!r}: {table[row, cell]:g} is beyond "
                        f"{beyond(dtype)} ({count} such cell{'s' if count > 1 else ''}); {fix(dtype)}")


def _finite_rows(path: Path, cfg: CsvData, table: np.ndarray, names: list[str],
                 columns: list[int]) -> tuple[np.ndarray, list[str]]:
    """The rows without NaN or infinity, and a note if some were dropped (or a DataError)."""
    import numpy as np

    finite = np.isfinite(table).all(axis=1)
    if finite.all():
        return table, []
    bad = int((~finite).sum())
    if not cfg.drop_invalid:
        row = int(np.argmin(finite))
        cell = int(np.argmin(np.isfinite(table[row])))
        line, cells = _line_of(path, cfg, row)
        text = cells[columns[cell]] if columns[cell] < len(cells) else ""
        # A number too large for float64 (1e999) reads as inf: say so.
        why = f", as {_shown(text)} overflows float64" if any(c.isdigit() for c in text) else ""
        raise DataError(
            f"{path}: line {line}, column {names[columns[cell]]!r} is {table[row, cell]}{why} "
            f"({bad} such rows); set data.drop_invalid: true to drop them"
        )
    return table[finite], [f"dropped {bad} rows holding NaN or infinite values"]


def _standardised(path: Path, cfg: CsvData, features: list[str], target: str,
                  splits: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[Any, dict[str, Any]]:
    """Every (x, y) split rescaled with the first (training) split's means and deviations."""
    import torch

    from bpcli.data.limits import fix, name_of

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
    scaled = [((x - x_mean) / x_std, (y - y_mean) / y_std) for x, y in splits]
    # A mean or a deviation (a root of mean squares) can overflow although every value fits.
    fits = torch.isfinite(x_mean) & torch.isfinite(x_std)
    for x, _ in scaled:
        fits &= torch.isfinite(x).all(0)
    fits_y = bool(torch.isfinite(torch.stack([y_mean, y_std])).all()) and all(
        bool(torch.isfinite(y).all()) for _, y in scaled)
    unfit = [n for n, ok in zip([*features, target], [*fits.tolist(), fits_y]) if not ok]
    if unfit:
        raise DataError(f"{path}: column {unfit[0]!r} spans too wide a range to standardise in "
                        f"{name_of(x_all.dtype)} (its mean or standard deviation overflows); {fix(x_all.dtype)}")
    scaling = {"features": features, "x_mean": x_mean.tolist(), "x_std": x_std.tolist(),
               "target": target, "y_mean": float(y_mean), "y_std": float(y_std)}
    return scaled, scaling


def _read_labels(path: Path, cfg: CsvData, column: int) -> np.ndarray:
    """The target's cells as text, one per row of the table."""
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # blank lines, as in _read_table
        return np.loadtxt(path, delimiter=cfg.delimiter, skiprows=1 if cfg.header else 0, usecols=[column],
                          dtype=str, ndmin=1, comments=None, quotechar='"', encoding="utf-8-sig")


def _class_codes(path: Path, cfg: CsvData, cells: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each row's class as its place among the distinct labels in order, and their names.

    Labels (without surrounding blanks) are whole numbers, in numeric order (2 before 10;
    1 and 1.0 are one class), or text, in alphabetical order; a NaN or infinite number is a
    missing value, NaN here, which data.drop_invalid drops. Each distinct label is judged
    once, not once per row."""
    import numpy as np

    distinct, rows_of = np.unique(cells, return_inverse=True)
    labels = sorted({cell.strip() for cell in distinct.tolist()})
    at = {label: k for k, label in enumerate(labels)}
    rows_of = np.array([at[cell.strip()] for cell in distinct.tolist()], dtype=np.int64)[rows_of.reshape(-1)]

    def first(of: list[int]) -> tuple[int, str]:
        """The line of the first row whose label is one of `of`, and that label."""
        row = int(np.argmax(np.isin(rows_of, of)))
        return _line_of(path, cfg, row)[0], labels[rows_of[row]]

    where = f"column {cfg.target!r}"
    if "" in at:
        raise DataError(f"{path}: line {first([at['']])[0]}, {where} is empty; give every row a class label")
    numbers = [float(label) if _is_number(label) else None for label in labels]
    texts = [k for k, v in enumerate(numbers) if v is None]
    finite = [k for k, v in enumerate(numbers) if v is not None and math.isfinite(v)]
    if texts and finite:
        (a, number), (b, text) = first(finite), first(texts)
        raise DataError(f"{path}: {where} mixes numbers and text as class labels: line {a} holds the number "
                        f"{_shown(number)} and line {b} the text {_shown(text)}; write every label as a number "
                        "or every label as text")
    fractions = [k for k in finite if not float(numbers[k]).is_integer()]  # type: ignore[arg-type]
    if fractions:
        line, label = first(fractions)
        raise DataError(f"{path}: line {line}, {where}: {_shown(label)} is not a whole number, and class labels "
                        "that are numbers must be; a numeric target needs a kind that fits numbers")
    # Each label's class: its place among the texts alphabetically, or among the values numerically.
    keys: list[Any] = [labels[k] for k in texts] if texts else [numbers[k] for k in finite]
    ordered = sorted(set(keys), key=(lambda t: (t.casefold(), t)) if texts else None)
    place = {key: float(c) for c, key in enumerate(ordered)}
    code = np.full(len(labels), np.nan)  # a missing value (NaN, inf) keeps NaN
    for k, key in zip(texts or finite, keys):
        code[k] = place[key]
    names = ordered if texts else [str(int(v)) for v in ordered]
    return code[rows_of], names


def _classes_present(path: Path, cfg: CsvData, table: np.ndarray, names: list[str],
                     dropped: str) -> tuple[np.ndarray, list[str]]:
    """The table with its classes numbered 0 … C−1 among the usable rows, and their names."""
    import numpy as np

    present = np.unique(table[:, -1])  # a class whose rows were all dropped is no class
    if len(present) < 2:
        raise DataError(f"{path}: column {cfg.target!r} holds one class, {names[int(present[0])]!r}, in its "
                        f"{len(table)} usable rows{dropped}; a classifier needs at least two")
    table[:, -1] = np.searchsorted(present, table[:, -1])
    return table, [names[int(c)] for c in present]


def _every_class_trains(path: Path, cfg: CsvData, y: np.ndarray, train: np.ndarray, classes: list[str]) -> None:
    """Refuse a validation split that holds out every row of a class (`y`: all rows' classes)."""
    import numpy as np

    counts, trained = np.bincount(y.astype(int), minlength=len(classes)), np.bincount(
        y[train].astype(int), minlength=len(classes))
    missing = [i for i in range(len(classes)) if trained[i] == 0]
    if missing:
        i = missing[0]
        more = f" (and {len(missing) - 1} more class{'es' if len(missing) > 2 else ''})" if len(missing) > 1 else ""
        raise DataError(f"{path}: class {classes[i]!r} of column {cfg.target!r} has no row in the training split: "
                        f"data.val_fraction: {cfg.val_fraction} holds out all {counts[i]} of its rows{more}; use a "
                        "smaller data.val_fraction or another seed")


def _split(path: Path, cfg: CsvData, rows: int, dropped: str) -> int:
    """How many rows to hold out for validation: at least 1, leaving at least 2 to train on."""
    held = round(rows * cfg.val_fraction)
    if held < 1 or rows - held < 2:
        low, high = 1 / rows, min((rows - 2) / rows, 0.9)
        if rows < 3:
            how = "set data.val_fraction: 0 or add rows"
        elif f"{low:.3g}" == f"{high:.3g}":
            how = f"with {rows} rows, use data.val_fraction: {low:.3g}"
        else:
            how = f"with {rows} rows, use a data.val_fraction from {low:.3g} to {high:.3g}"
        raise DataError(f"{path}: {rows} usable rows{dropped} cannot give a validation split of "
                        f"{cfg.val_fraction}: it would leave {rows - held} to train on and {held} to validate, "
                        f"and training needs at least 2 rows and validation 1; {how}")
    return held


def build(cfg: CsvData, generator: torch.Generator, dtype: torch.dtype, classify: bool = False) -> Dataset:
    """The table's training (and validation) rows as tensors, standardised if asked; with
    `classify`, the target read as class labels."""
    import torch

    from bpcli.data.dataset import Dataset

    path = Path(cfg.path)
    if classify and cfg.standardize == "all":
        raise DataError(f"{path}: data.standardize: all would rescale the class labels of column {cfg.target!r}; "
                        "use data.standardize: features, which rescales the inputs alone")
    names = _read_header(path, cfg)
    features, columns = _columns(path, cfg, names)
    table = _read_table(path, cfg, names, columns, classify)
    labels: list[str] = []
    if classify and len(table):
        table[:, -1], labels = _class_codes(path, cfg, _read_labels(path, cfg, columns[-1]))
    _in_range(path, cfg, table, names, columns, dtype)
    rows = len(table)
    table, notes = _finite_rows(path, cfg, table, names, columns)
    dropped = f" ({rows - len(table)} dropped for NaN or infinite values)" if len(table) < rows else ""
    if len(table) < 2:
        raise DataError(f"{path}: has {len(table)} usable row(s){dropped}; gradient descent needs at least 2")
    classes = None
    if classify:
        table, classes = _classes_present(path, cfg, table, labels, dropped)

    x_all = torch.from_numpy(table[:, :-1]).to(dtype)
    y_all = torch.from_numpy(table[:, -1]).to(dtype)
    splits = [(x_all, y_all)]
    if cfg.val_fraction > 0:
        held = _split(path, cfg, len(table), dropped)
        order = torch.randperm(len(table), generator=generator)  # drawn before the parameters
        splits = [(x_all[order[held:]], y_all[order[held:]]), (x_all[order[:held]], y_all[order[:held]])]
        if classes is not None:
            _every_class_trains(path, cfg, table[:, -1], order[held:].numpy(), classes)
    # The rows as read, in float64: the closed-form optimum is solved from these, not from
    # values already rounded to the dtype and standardised in it.
    raw = {"train": table}
    if cfg.val_fraction > 0:
        raw = {"train": table[order[held:].numpy()], "val": table[order[:held].numpy()]}
    raw = {split: (torch.from_numpy(rows[:, :-1]), torch.from_numpy(rows[:, -1])) for split, rows in raw.items()}
    scaling = None
    if cfg.standardize != "none":
        splits, scaling = _standardised(path, cfg, features, cfg.target, splits)
    (x, y), (x_val, y_val) = splits[0], (splits[1] if len(splits) > 1 else (None, None))
    return Dataset(x, y, None, None, x_val, y_val, features, cfg.target, scaling, notes, raw, classes)
