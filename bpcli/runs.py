"""Run directories: creating them safely, writing their files, and reading them back.

A run directory holds everything a run produced, so that plots can be redrawn from it
alone (this module never imports torch):

    config.yaml    the resolved config (after overrides, with the actual device)
    metrics.csv    step,epoch,loss, then parameter and gradient columns, per logged step
    summary.json   status, final parameters, predictions, timings and versions
    data.csv       the training data, x then y
    curve.csv      the trained model's predictions on a grid of x (one-feature data)
    checkpoint.pt  what resuming needs (see bpcli.checkpoints)
    loss.png, fit.png, params.png, landscape.png

Files other than metrics.csv are written atomically (a temporary file, then a rename),
so an interrupted run never leaves half a file behind.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bpcli.errors import RunDirError

RUN_FILES = ("config.yaml", "summary.json", "metrics.csv", "data.csv")
DEFAULT_ROOT = Path("outputs")


def next_run_dir(root: Path = DEFAULT_ROOT, prefix: str = "run") -> Path:
    """The first `<prefix><N>` under root with N above every existing one."""
    taken = [int(m.group(1)) for p in _listdir(root) if (m := re.fullmatch(rf"{prefix}(\d+)", p.name))]
    return root / f"{prefix}{max(taken, default=0) + 1}"


def _listdir(root: Path) -> list[Path]:
    try:
        return list(root.iterdir())
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise RunDirError(f"{root}: cannot list it ({exc.strerror}); choose another --out")


def is_run_dir(path: Path) -> bool:
    """Whether `path` looks like a directory bpcli wrote."""
    written = (path / "summary.json").is_file() or (path / "sweep.json").is_file()
    return (path / "config.yaml").is_file() and written


def create_run_dir(out: Path | None, force: bool = False, root: Path = DEFAULT_ROOT, prefix: str = "run") -> Path:
    """Create the directory a new run writes to, never reusing a non-empty one unless forced.

    With `out` None, the next free `run<N>` under root. `force` clears an existing run
    directory first; it still refuses a non-empty directory that bpcli did not write.
    """
    if out is None:
        for _ in range(1000):  # another process may take the same number first
            path = next_run_dir(root, prefix)
            try:
                path.mkdir(parents=True)
                return path
            except FileExistsError:
                continue
            except OSError as exc:
                raise RunDirError(f"{path}: cannot create it ({exc.strerror}); pass --out DIR")
        raise RunDirError(f"{root}: no free run<N> directory; pass --out DIR")

    path = Path(out)
    if path.exists() and not path.is_dir():
        raise RunDirError(f"{path}: exists and is not a directory; choose another --out")
    if path.is_dir() and any(path.iterdir()):
        if not force:
            raise RunDirError(
                f"{path}: already holds files; choose another --out, or add --force to replace "
                "the run that is there"
            )
        if not is_run_dir(path):
            raise RunDirError(
                f"{path}: holds files that are not a bpcli run; --force only replaces runs, "
                "so choose another --out"
            )
        shutil.rmtree(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".bpcli-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunDirError(f"{path}: cannot write there ({exc.strerror}); choose another --out")
    return path


def write_atomic(path: Path, text: str) -> None:
    """Write text to path through a temporary file and a rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


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
    write_atomic(run_dir / "summary.json", json.dumps(_finite(summary), indent=2) + "\n")


def write_data(run_dir: Path, x: list[list[float]], y: list[float]) -> None:
    """Write data.csv: one row per sample, feature columns then y."""
    features = len(x[0]) if x else 1
    names = ["x"] if features == 1 else [f"x[{i}]" for i in range(features)]
    lines = [",".join(names + ["y"])]
    lines += [",".join(map(repr, row + [target])) for row, target in zip(x, y)]
    write_atomic(run_dir / "data.csv", "\n".join(lines) + "\n")


def write_curve(run_dir: Path, x: list[float], y: list[float]) -> None:
    """Write curve.csv: the trained model's predictions y_pred on a grid of x."""
    lines = ["x,y_pred"] + [f"{a!r},{b!r}" for a, b in zip(x, y)]
    write_atomic(run_dir / "curve.csv", "\n".join(lines) + "\n")


class MetricsWriter:
    """Appends logged steps to metrics.csv, flushed after each row so none is lost."""

    def __init__(self, path: Path, columns: list[str], append: bool = False) -> None:
        self.columns = columns
        self._file = open(path, "a" if append else "w", encoding="utf-8", newline="")
        self._writer = csv.writer(self._file, lineterminator="\n")
        if not append:
            self._writer.writerow(columns)
            self._file.flush()

    def write(self, row: dict[str, Any]) -> None:
        """Append one row; floats are written in full (repr), so they read back exactly."""
        self._writer.writerow([_cell(row[c]) for c in self.columns])
        self._file.flush()

    def close(self) -> None:
        self._file.close()


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


def read_run(path: str | Path) -> RunRecord:
    """Read a run directory; a RunDirError names the first file that is missing or broken."""
    path = Path(path)
    if not path.is_dir():
        raise RunDirError(f"{path}: no such run directory; runs are in outputs/ by default")
    missing = [name for name in RUN_FILES if not (path / name).is_file()]
    if missing:
        raise RunDirError(
            f"{path}: not a complete run directory (missing {', '.join(missing)}); "
            "give a directory written by `bpcli train`"
        )
    try:
        config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8"))
        summary = json.loads((path / "summary.json").read_text(encoding="utf-8"))
    except (yaml.YAMLError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: config.yaml or summary.json is corrupt ({type(exc).__name__})")
    if not isinstance(config, dict) or not isinstance(summary, dict):
        raise RunDirError(f"{path}: config.yaml or summary.json is not a mapping")
    metrics = _read_columns(path / "metrics.csv")
    data = _read_columns(path / "data.csv")
    y = data.pop("y", None)
    if y is None or not data:
        raise RunDirError(f"{path}/data.csv: expected x and y columns")
    x = [list(row) for row in zip(*data.values())]
    curve = _read_columns(path / "curve.csv") if (path / "curve.csv").is_file() else None
    return RunRecord(path, config, summary, metrics, x, y, curve, _read_fitted(path / "predictions.csv"))


def _read_fitted(path: Path) -> list[tuple[str, float, float]] | None:
    if not path.is_file():
        return None
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))[1:]
        return [(split, float(y), float(p)) for split, y, p in rows]
    except (OSError, UnicodeDecodeError, ValueError):
        raise RunDirError(f"{path}: is corrupt; rerun the experiment to write it again") from None


def _read_columns(path: Path) -> dict[str, list[float]]:
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: cannot be read ({exc})")
    if not rows:
        raise RunDirError(f"{path}: is empty; the run wrote nothing")
    header, body = rows[0], rows[1:]
    try:
        columns = [[float(row[i]) for row in body] for i in range(len(header))]
    except (ValueError, IndexError):
        raise RunDirError(f"{path}: is corrupt (a row is short or not numeric)")
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
