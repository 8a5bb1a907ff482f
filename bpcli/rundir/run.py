"""Every file of a run directory, written and read back here (this module never imports torch).

A run directory holds everything a run produced, so that plots can be redrawn from it
alone:

    config.yaml         the resolved config (after overrides, with the actual device)
    metrics.csv         step,epoch,loss, then parameter and gradient columns, per logged step
    summary.json        status, final parameters, predictions, timings and versions
    data.csv            the training data, x then y (an even sample of very large data)
    curve.csv           the trained model's predictions on a grid of x (one-feature data)
    curves.csv          an MLP's predictions on that grid at up to 8 logged steps
    predictions.csv     every sample's target and prediction (several features); a classifier's
                        class, predicted class and each class's probability
    boundary.csv        a classifier's class probabilities on a grid over two features
    preprocessing.json  the means and deviations the data were standardised with
    checkpoint.pt       what resuming needs (see bpcli.rundir.checkpoint)
    loss.png, fit.png, params.png, landscape.png, residuals.png

Files other than metrics.csv are written through bpcli.rundir.files.write_file (a
temporary file, then a rename), so an interrupted run never leaves half a file behind;
metrics.csv grows a whole row at a time.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from bpcli.errors import RunDirError
from bpcli.rundir.files import record, write_text

RUN_FILES = ("config.yaml", "summary.json", "metrics.csv", "data.csv")


def _finite(value: Any) -> Any:
    # JSON has no NaN or infinity: a diverged run records them as null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    """Write summary.json (atomically)."""
    write_text(run_dir / "summary.json", json.dumps(_finite(summary), indent=2) + "\n")


def data_columns(features: int) -> list[str]:
    """data.csv's input columns: x for one feature, x[0], x[1], … for several."""
    return ["x"] if features == 1 else [f"x[{i}]" for i in range(features)]


def write_data(run_dir: Path, x: list[list[float]], y: list[float]) -> None:
    """Write data.csv: one row per sample, feature columns then y."""
    lines = [",".join(data_columns(len(x[0]) if x else 1) + ["y"])]
    lines += [",".join(map(repr, row + [target])) for row, target in zip(x, y)]
    write_text(run_dir / "data.csv", "\n".join(lines) + "\n")


def write_curve(run_dir: Path, x: list[float], y: list[float]) -> None:
    """Write curve.csv: the trained model's predictions y_pred on a grid of x."""
    lines = ["x,y_pred"] + [f"{a!r},{b!r}" for a, b in zip(x, y)]
    write_text(run_dir / "curve.csv", "\n".join(lines) + "\n")


def write_curves(run_dir: Path, x: list[float], curves: list[tuple[int, float, list[float]]]) -> None:
    """Write curves.csv: a nonlinear regression's predictions on the grid of curve.csv at a
    few logged steps (step 0: the initial parameters), with the loss of the whole data there."""
    lines = ["step,loss_all_samples,x,y_pred"]
    # Nine significant digits: every float32 exactly, and a file of some 40 kB.
    lines += [f"{step},{loss:.9g},{a:.9g},{b:.9g}" for step, loss, ys in curves for a, b in zip(x, ys)]
    write_text(run_dir / "curves.csv", "\n".join(lines) + "\n")


def read_curves(run_dir: Path) -> list[tuple[int, float, list[float]]]:
    """curves.csv as write_curves takes it: (step, loss of the whole data, predictions), by step; [] without one."""
    path = run_dir / "curves.csv"
    if not path.is_file():
        return []
    columns = _read_columns(path)
    _check_header(path, list(columns), ["step", "loss_all_samples", "x", "y_pred"])
    taken: dict[int, tuple[float, list[float]]] = {}
    for step, loss, y in zip(columns["step"], columns["loss_all_samples"], columns["y_pred"]):
        taken.setdefault(int(step), (loss, []))[1].append(y)
    return [(step, loss, ys) for step, (loss, ys) in taken.items()]


def write_config(run_dir: Path, text: str) -> None:
    """Write config.yaml, the resolved config as YAML."""
    write_text(run_dir / "config.yaml", text)


def write_preprocessing(run_dir: Path, scaling: dict[str, Any]) -> None:
    """Write preprocessing.json: the statistics the data were standardised with."""
    write_text(run_dir / "preprocessing.json", json.dumps(scaling, indent=2) + "\n")


def write_predictions(run_dir: Path, rows: list[tuple[Any, ...]], original_units: bool = False) -> None:
    """Write predictions.csv: (split, targets, predictions) as one row per sample; with
    `original_units`, the model's standardised targets and predictions come first and then
    the same in the target's original units (split, y_std, y_pred_std, y, y_pred)."""
    lines = ["split,y_standardised,y_pred_standardised,y,y_pred" if original_units else "split,y,y_pred"]
    for split, *columns in rows:
        lines += [",".join([split, *map(repr, values)]) for values in zip(*columns)]
    write_text(run_dir / "predictions.csv", "\n".join(lines) + "\n")


class MetricsWriter:
    """Appends logged steps to metrics.csv, each row in one write, so none is lost or torn."""

    def __init__(self, path: Path, columns: list[str], append: bool = False) -> None:
        self.path = path
        self.columns = columns
        if path.is_symlink():
            raise RunDirError(f"{path}: is a symbolic link; bpcli never writes through a link, so remove it, "
                              "then run again")
        record(path.parent, path.name)
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_APPEND if append else os.O_TRUNC)
        self._fd = os.open(path, flags, 0o644)
        if not append:
            self._append(columns)

    def write(self, row: dict[str, Any]) -> None:
        """Append one row; floats are written in full (repr), so they read back exactly."""
        self._append([_cell(row[c]) for c in self.columns])

    def _append(self, cells: list[str]) -> None:
        line = io.StringIO()
        csv.writer(line, lineterminator="\n").writerow(cells)
        data = line.getvalue().encode("utf-8")
        end = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            if os.write(self._fd, data) != len(data):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        except OSError:
            # A row that could not be written whole (a full disk) is taken back: the file
            # keeps whole rows only.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, end)
            raise

    def close(self) -> None:
        os.close(self._fd)


def _cell(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class RunRecord:
    """What a run directory holds, read back without torch."""

    path: Path
    config: dict[str, Any]
    summary: dict[str, Any]
    metrics: dict[str, list[float]]
    data_x: list[list[float]]
    data_y: list[float]
    curve: dict[str, list[float]] | None
    """The model's predictions on a grid (curve.csv), if the run wrote them."""
    fitted: list[tuple[str, float, float]] | None
    """(split, y, y_pred) for every sample (predictions.csv), for several features."""
    classified: list[Classified] | None = None
    """Every sample's class and predicted class (a classifier's predictions.csv)."""
    boundary: dict[str, list[float]] | None = None
    """Each class's probability on a grid over two features (boundary.csv): x1, x2, p[<class>]…,
    x1 varying fastest."""
    curves: dict[str, list[float]] | None = None
    """A nonlinear regression's predictions at a few logged steps (curves.csv): step,
    loss_all_samples, x, y_pred, one row per step and grid point."""


@dataclass(frozen=True)
class Classified:
    """One row of a classifier's predictions.csv."""

    split: str
    y: str
    """The sample's class, by name."""
    y_pred: str
    """The most probable class, by name."""
    p: list[float]
    """Each class's probability (a score where the task has no probabilities), in class order."""
    x: list[float] | None
    """The sample's features, where the file holds them (x or x[0], x[1], … columns)."""


def refuse_sweep(path: Path) -> None:
    """A RunDirError when `path` is a sweep directory where a single run is expected."""
    if (path / "sweep.json").is_file():
        raise RunDirError(f"{path}: is a sweep directory (sweep.json), not a single run; `bpcli plot {path}` draws "
                          "its figures, and `bpcli train CONFIG` with one member's settings (see its summary.csv) "
                          "makes a run of that member")


def read_run(path: str | Path) -> RunRecord:
    """Read a run directory; a RunDirError names the first file that is missing or broken."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path}: no such run directory; runs are in outputs/ by default")
    refuse_sweep(path)
    missing = [name for name in RUN_FILES if not (path / name).is_file()]
    if missing:
        raise RunDirError(
            f"{path}: not a complete run directory (missing {', '.join(missing)}); "
            "give a directory written by `bpcli train`"
        )
    try:
        # libyaml's loader when PyYAML has it: a run made from a large config reads back fast.
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        config = yaml.load((path / "config.yaml").read_text(encoding="utf-8"), Loader=loader)
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: config.yaml or summary.json is corrupt ({type(exc).__name__})")
    if not isinstance(config, dict) or not isinstance(summary, dict):
        raise RunDirError(f"{path}: config.yaml or summary.json is not a mapping")
    _check_summary(path / "summary.json", summary)
    metrics = _read_columns(path / "metrics.csv")
    check_metrics_header(path / "metrics.csv", list(metrics), summary)
    _check_steps(path / "metrics.csv", metrics["step"], summary)
    data = _read_columns(path / "data.csv")
    features = summary.get("features")
    width = len(features) if isinstance(features, list) and features else len(data) - 1
    _check_header(path / "data.csv", list(data), data_columns(width) + ["y"])
    y = data.pop("y")
    x = [list(row) for row in zip(*data.values())]
    curve = _read_columns(path / "curve.csv") if (path / "curve.csv").exists() else None
    if curve is not None:
        _check_header(path / "curve.csv", list(curve), ["x", "y_pred"])
    task = summary.get("task") if isinstance(summary.get("task"), dict) else {}
    classes = [str(c) for c in task.get("classes") or []]
    fitted, classified = _read_predictions(path / "predictions.csv")
    if classes and (path / "predictions.csv").exists():  # a classifier's: its classes' probabilities, in order
        with open(path / "predictions.csv", encoding="utf-8", newline="") as fh:
            header = next(csv.reader(fh), [])
        _check_header(path / "predictions.csv", header[:3 + len(classes)],
                      ["split", "y", "y_pred", *(f"p[{c}]" for c in classes)])
    boundary = _read_boundary(path / "boundary.csv")
    if boundary is not None and classes:
        _check_header(path / "boundary.csv", list(boundary), ["x1", "x2", *(f"p[{c}]" for c in classes)])
    curves = _read_columns(path / "curves.csv") if (path / "curves.csv").is_file() else None
    if curves is not None:
        _check_header(path / "curves.csv", list(curves), ["step", "loss_all_samples", "x", "y_pred"])
    return RunRecord(path, config, summary, metrics, x, y, curve, fitted, classified, boundary, curves)


Number = Union[float, None]  # JSON has no NaN or infinity: summary.json writes them as null
Values = Union[list[Number], dict[str, Any]]  # every value, or {"shape", "norm"} of a large tensor


class _Prediction(BaseModel):
    x: Union[float, list[float]]
    y_pred: Union[Number, str]
    """A number, or a classifier's predicted class (its name, with every class's probability in p)."""
    p: Optional[list[Number]] = None


class _Summary(BaseModel):
    """The fields of summary.json that are read back (by plots, compare, resume), with their types."""

    model_config = ConfigDict(extra="allow")

    status: str = "unknown"
    kind: str = "?"
    params: Optional[dict[str, Values]] = None
    initial_params: Optional[dict[str, Values]] = None
    true_params: Optional[dict[str, Number]] = None
    optimum: Optional[dict[str, Union[list[Number], Number]]] = None
    predictions: Optional[list[_Prediction]] = None
    scaling: Optional[dict[str, Any]] = None
    r2: Optional[dict[str, Number]] = None


def _check_summary(path: Path, summary: dict[str, Any]) -> None:
    """A RunDirError naming the first field of summary.json that does not hold what bpcli wrote."""
    try:
        _Summary.model_validate(summary)
    except ValidationError as exc:
        error = exc.errors()[0]
        # The path to the field, without pydantic's names for the union member it tried.
        where = ".".join(str(part) for part in error["loc"] if "[" not in str(part))
        raise RunDirError(f"{path}: damaged ({where}: {error['msg'].lower()}); restore it, or train the run "
                          "again") from None


def _check_header(path: Path, header: list[str], expected: list[str]) -> None:
    """Refuse a CSV file of the run whose columns are not the ones bpcli wrote."""
    if header != expected:
        raise RunDirError(f"{path}: damaged: its columns are {', '.join(header[:6]) or 'none'}"
                          f"{', …' if len(header) > 6 else ''} where bpcli wrote {', '.join(expected[:6])}"
                          f"{', …' if len(expected) > 6 else ''}; restore it from a copy, or train the run again")


def _read_predictions(path: Path) -> tuple[list[tuple[str, float, float]] | None, list[Classified] | None]:
    """predictions.csv as a regression's (split, y, y_pred) rows, or as a classifier's rows
    (its header names each class's probability, p[<class>]); (None, None) without the file."""
    if not path.is_file():
        return None, None
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            header, *rows = list(csv.reader(fh)) or [[]]
        if any(name.startswith("p[") for name in header):
            return None, _classified(header, rows)
        return [(split, float(y), float(p)) for split, y, p, *_ in rows], None  # the model's own units first
    except (OSError, UnicodeDecodeError, ValueError):
        raise RunDirError(f"{path}: is corrupt; rerun the experiment to write it again") from None


def _classified(header: list[str], rows: list[list[str]]) -> list[Classified]:
    """A classifier's rows: split, y, y_pred by name, the p[<class>] and x columns in file order;
    a ValueError for a row that does not fit the header."""
    if not {"split", "y", "y_pred"} <= set(header):
        raise ValueError
    split, y, y_pred = (header.index(name) for name in ("split", "y", "y_pred"))
    probabilities = [i for i, name in enumerate(header) if name.startswith("p[")]
    features = [i for i, name in enumerate(header) if name == "x" or name.startswith("x[")]
    out = []
    for row in rows:
        if len(row) != len(header):
            raise ValueError
        out.append(Classified(row[split], row[y], row[y_pred], [float(row[i]) for i in probabilities],
                              [float(row[i]) for i in features] if features else None))
    return out


def _read_boundary(path: Path) -> dict[str, list[float]] | None:
    """boundary.csv, checked to be the grid the boundary figure reshapes it into."""
    if not path.is_file():
        return None
    grid = _read_columns(path)
    x1, x2 = grid.get("x1", []), grid.get("x2", [])
    side = next((i for i, v in enumerate(x2) if v != x2[0]), len(x2))  # x1 varies fastest
    if not x1 or not any(name.startswith("p[") for name in grid) or len(x1) != side * side:
        raise RunDirError(f"{path}: is not a grid of x1, x2 and p[<class>] columns; rerun the experiment to "
                          "write it again")
    return grid


def _read_columns(path: Path) -> dict[str, list[float]]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: cannot be read ({exc})") from None
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]  # a row torn by a hard kill or a full disk: left out
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise RunDirError(f"{path}: is empty; the run wrote nothing")
    header, body = rows[0], rows[1:]
    try:
        if any(len(row) != len(header) for row in body):
            raise ValueError
        columns = [[float(row[i]) for row in body] for i in range(len(header))]
    except ValueError:
        raise RunDirError(f"{path}: is corrupt (a row has more or fewer cells than the header, or a cell "
                          "is not a number)") from None
    return dict(zip(header, columns))


MAX_LOGGED_VALUES = 12  # a parameter with more values is logged as its norm


def flat_names(name: str, size: int) -> list[str]:
    """Column names for a parameter of `size` values: `w`, `w[0]`, `w[1]`, … or `norm(W2)`."""
    if size == 1:
        return [name]
    if size > MAX_LOGGED_VALUES:
        return [f"norm({name})"]
    return [f"{name}[{i}]" for i in range(size)]


def param_columns(params: dict[str, int]) -> list[str]:
    """metrics.csv's columns for parameters of the given sizes: values, then gradients."""
    values = [c for name, size in params.items() for c in flat_names(name, size)]
    return ["step", "epoch", "loss"] + values + [f"grad_{c}" for c in values]


def _values_in(values: Any) -> int:
    """How many numbers a parameter of summary.json holds: a list's length, or the product
    of a large tensor's recorded shape."""
    if isinstance(values, list):
        return len(values)
    shape = values.get("shape") if isinstance(values, dict) else None
    return math.prod(shape) if isinstance(shape, list) and all(isinstance(n, int) for n in shape) else 0


def _check_steps(path: Path, steps: list[float], summary: dict[str, Any]) -> None:
    """Refuse a metrics.csv whose steps cannot be its run's: not whole, not increasing, or
    beyond the run's last step (epochs × updates per epoch, from summary.json)."""
    epochs, batch = summary.get("epochs"), summary.get("batch_size")
    samples = (summary.get("samples") or {}).get("train") if isinstance(summary.get("samples"), dict) else None
    total = epochs * -(-samples // batch) if all(isinstance(v, int) and v > 0 for v in (epochs, batch, samples)) \
        else math.inf
    previous = 0.0
    for step in steps:
        if not math.isfinite(step):
            raise RunDirError(f"{path}: damaged: a step is {step}; restore it from a copy, or train the run again")
        if not (step == int(step) and previous < step <= total):
            shown = f"{step:.0f}" if step == int(step) else repr(step)  # never round a step to look whole
            raise RunDirError(f"{path}: damaged: step {shown} cannot follow step {previous:.0f} in a run of "
                              f"{total} steps; restore it from a copy, or train the run again")
        previous = step


def check_metrics_header(path: Path, header: list[str], summary: dict[str, Any]) -> None:
    """Refuse a metrics.csv whose header is not the one its run wrote: the columns recorded
    in summary.json (`metrics_columns`), or, for a run from before they were recorded,
    step, epoch, loss and a column per parameter value of summary.json's parameters."""
    recorded = summary.get("metrics_columns")
    if isinstance(recorded, list) and all(isinstance(c, str) for c in recorded):
        expected, exact = recorded, True
    else:
        params = summary.get("initial_params") or summary.get("params") or {}
        sizes = {name: _values_in(values) for name, values in params.items()} if isinstance(params, dict) else {}
        expected, exact = param_columns({name: size for name, size in sizes.items() if size}), False
    missing = [c for c in expected if c not in header]
    extra = [c for c in header if c not in expected] if exact else []
    if not missing and not extra and (not exact or header == expected):
        return
    if missing:
        what = f"lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing[:5])}" + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else "")
    elif extra:
        what = f"has column{'s' if len(extra) > 1 else ''} {', '.join(extra[:5])} that the run never wrote"
    else:
        what = "has its columns in another order than the run wrote them"
    raise RunDirError(f"{path}: damaged: its header {what}; restore it from a copy, or train the run again")


def read_summary(run_dir: Path) -> dict[str, Any]:
    """summary.json as a mapping; a RunDirError if it is missing or damaged."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{run_dir}/summary.json: missing or corrupt ({type(exc).__name__})") from None
    if not isinstance(summary, dict):
        raise RunDirError(f"{run_dir}/summary.json: corrupt (not a mapping)")
    return summary


def torch_versions(summary: dict[str, Any]) -> list[str]:
    """The torch versions a run was trained with, each once, in the order they were first
    used: the one it started with, then those it was resumed with (`resumed_from`)."""
    resumes = summary.get("resumed_from")
    resumes = resumes if isinstance(resumes, list) else []
    used = [summary.get("torch_version")] + [r.get("torch_version") for r in resumes if isinstance(r, dict)]
    return list(dict.fromkeys(str(v) for v in used if v))


def truncate_metrics(path: Path, step: int, log_every: int, write: bool = True,
                     summary: dict[str, Any] | None = None) -> list[dict[str, float]]:
    """Keep metrics.csv's rows up to `step`, the checkpoint's, that a run continuing from it
    would have logged: rows after it will be logged again, and a row logged only because it
    was the last step of a shorter run is dropped, so a resumed run's file equals an
    uninterrupted run's."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise RunDirError(f"{path}: missing or unreadable; the run cannot be resumed") from None
    lines = text.splitlines(keepends=True)
    if not lines:
        raise RunDirError(f"{path}: empty; the run cannot be resumed")
    kept, history = [lines[0]], []
    header = next(csv.reader(io.StringIO(lines[0])))
    if summary is not None:  # before a byte is written: a damaged header is refused, not appended to
        check_metrics_header(path, header, summary)
    for line in lines[1:]:
        if not line.endswith("\n"):
            break  # a row torn by a hard kill: it will be logged again
        cells = next(csv.reader(io.StringIO(line)))
        try:
            row: dict[str, float] = dict(zip(header, map(float, cells)))
            row.update(step=int(row["step"]), epoch=int(row["epoch"]))
        except (ValueError, KeyError):
            raise RunDirError(f"{path}: corrupt row {line.strip()!r}; the run cannot be resumed") from None
        if row["step"] > step:
            break
        if row["step"] != 1 and row["step"] % log_every:
            continue
        kept.append(line)
        history.append(row)
    if write:
        write_text(path, "".join(kept))
    return history
