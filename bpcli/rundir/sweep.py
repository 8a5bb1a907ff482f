"""Every file of a sweep directory, written and read back here (no torch).

    config.yaml      the base config every member starts from
    sweep.json       the grid, the status, the device, timings and versions
    summary.csv      one row per member: its settings, status and final values
    aggregates.csv   per setting: mean and standard deviation over seeds
    metrics.csv      step,member,loss for every logged step of every member
    losses.png, lr.png, tensorboard/
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bpcli.errors import RunDirError
from bpcli.rundir.files import write_text

SWEEP_FILES = ("sweep.json", "summary.csv", "aggregates.csv", "metrics.csv")

QUALITY_COLUMNS = ("final_loss", "final_loss_all_samples", "accuracy", "val_accuracy", "r2", "val_r2")
"""The columns of summary.csv that measure a member (besides its settings and parameters)."""


def write_config(directory: Path, text: str) -> None:
    """Write config.yaml, the base config."""
    write_text(directory / "config.yaml", text)


def write_info(directory: Path, info: dict[str, Any]) -> None:
    """Write sweep.json."""
    write_text(directory / "sweep.json", json.dumps(info, indent=2, default=str) + "\n")


def write_table(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write rows of dicts as a CSV table (floats in full, None as an empty cell)."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else repr(v) if isinstance(v, float) else v) for k, v in r.items()}
                     for r in rows)
    write_text(path, buffer.getvalue())


def write_losses(directory: Path, history: list[tuple[int, list[float]]]) -> None:
    """Write metrics.csv: every member's loss at every logged step."""
    lines = ["step,member,loss"] + [f"{step},{k},{v!r}" for step, values in history for k, v in enumerate(values)]
    write_text(directory / "metrics.csv", "\n".join(lines) + "\n")


def refuse_links(directory: Path) -> None:
    """Refuse, before a sweep is resumed, a file of it that is a symbolic link: bpcli never
    writes through one, so the resumed sweep could not write its files."""
    for name in (*SWEEP_FILES, "config.yaml", "checkpoint.pt", "manifest.json", "losses.png", "lr.png"):
        if (directory / name).is_symlink():
            raise RunDirError(f"{directory / name}: is a symbolic link, which bpcli never writes through; put the "
                              "file itself there to resume the sweep")


def read_info(directory: Path) -> dict[str, Any]:
    """sweep.json, read back; a RunDirError if it is not there or not a JSON object."""
    try:
        info = json.loads((directory / "sweep.json").read_text(encoding="utf-8"))
    except OSError as exc:
        raise RunDirError(f"{directory}/sweep.json: cannot be read ({exc.strerror or exc})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise corrupt(directory, exc) from None
    if not isinstance(info, dict):
        raise RunDirError(f"{directory}/sweep.json: corrupt (not a JSON object); the sweep cannot be resumed")
    return info


def is_sweep_dir(path: Path) -> bool:
    """Whether `path` holds a sweep (rather than a single run)."""
    return (path / "sweep.json").is_file()


@dataclass(frozen=True)
class SweepRecord:
    """What a sweep directory holds, read back without torch."""

    path: Path
    info: dict[str, Any]
    members: list[dict[str, str]]
    aggregates: list[dict[str, str]]


def read_table(path: Path) -> list[dict[str, str]]:
    """A CSV table as a list of rows (cells as text)."""
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def read_sweep(directory: str | Path) -> SweepRecord:
    """Read a sweep directory's info and tables; a RunDirError names what is missing or broken."""
    directory = Path(directory)
    missing = [name for name in SWEEP_FILES if not (directory / name).is_file()]
    if missing:
        raise RunDirError(f"{directory}: not a complete sweep directory (missing {', '.join(missing)}); "
                          "give a directory written by `bpcli sweep`")
    try:
        info = json.loads((directory / "sweep.json").read_text(encoding="utf-8"))
        return SweepRecord(directory, info, read_table(directory / "summary.csv"),
                           read_table(directory / "aggregates.csv"))
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise corrupt(directory, exc) from None


def corrupt(directory: Path, exc: Exception) -> RunDirError:
    """The error for a sweep file that cannot be parsed."""
    why = str(exc).split(";")[0]  # numpy's advice after the semicolon is not for our users
    return RunDirError(f"{directory}: a sweep file is corrupt ({type(exc).__name__}: {why})")


def read_losses(directory: Path, members: int) -> tuple[Any, Any]:
    """The logged steps (S,) and every member's loss at each of them (S, K), from metrics.csv."""
    import numpy as np

    try:
        table = np.loadtxt(directory / "metrics.csv", delimiter=",", skiprows=1, ndmin=2)  # step, member, loss
        steps, where = np.unique(table[:, 0], return_inverse=True)
        losses = np.full((len(steps), members), np.nan)
        losses[where, table[:, 1].astype(int)] = table[:, 2]
    except (ValueError, IndexError) as exc:
        raise corrupt(directory, exc) from None
    return steps, losses
