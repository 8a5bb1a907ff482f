"""`bpcli rerun --verify`: a run directory's recorded config trained again in memory, just far
enough to reach its last logged step, and every recorded value of metrics.csv compared with
the re-run's. Nothing is written."""

from __future__ import annotations

import math
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bpcli.build import build
from bpcli.config import validate_config
from bpcli.errors import RunDirError, RunInterrupted
from bpcli.lifecycle import train_built
from bpcli.rundir import run as files


@dataclass(frozen=True)
class Difference:
    """One value of metrics.csv that a re-run did not reproduce (None: the row is missing)."""

    step: int
    column: str
    recorded: float | None
    now: float | None


@dataclass
class Verification:
    """The outcome of re-running a recorded config and comparing every logged row."""

    run_dir: Path
    rows: int
    """How many recorded rows were compared, every column of each."""
    differences: list[Difference]
    recorded: dict[str, Any]
    """torch version and device the run was recorded with."""
    current: dict[str, Any]
    """torch version and device of the re-run."""

    @property
    def mismatch(self) -> Difference | None:
        """The first difference, in step order, if any."""
        return self.differences[0] if self.differences else None

    @property
    def matches(self) -> bool:
        return not self.differences

    def explanation(self) -> str:
        """One line on what differs and what may explain it."""
        first = self.mismatch
        if first is None:
            return f"{self.run_dir}: all {self.rows} logged rows reproduce bit for bit"
        if first.recorded is None or first.now is None:
            what = (f"step {first.step} is logged by the re-run but not in metrics.csv" if first.recorded is None
                    else f"step {first.step} is in metrics.csv but the re-run does not log it")
        else:
            what = f"the {first.column} at step {first.step} was {first.recorded!r} and is now {first.now!r}"
        envs = (
            f"recorded with torch {self.recorded['torch_version']} on {self.recorded['device']}, "
            f"re-run with torch {self.current['torch_version']} on {self.current['device']}"
        )
        same = self.recorded == self.current
        why = "the same setup, so something else changed" if same else "results are bit-identical only on the same setup"
        return f"{self.run_dir}: {what} ({envs}; {why})"


def verify_run(run_dir: str | Path, steps: int | None = None) -> Verification:
    """Re-run a run directory's config in memory and compare its first `steps` logged rows
    (all of them by default), every recorded column, with what the re-run logs."""
    run_dir = Path(run_dir)
    record = files.read_run(run_dir)
    config = validate_config(record.config, source=str(run_dir / "config.yaml"))
    columns = list(record.metrics)
    recorded = [dict(zip(columns, values)) for values in zip(*record.metrics.values())][:steps or None]
    if not recorded:
        raise RunDirError(f"{run_dir}/metrics.csv: no logged steps to compare")
    built = build(config)
    total = config.train.epochs * built.trainer.steps_per_epoch
    _check_steps(run_dir, [row.get("step", math.nan) for row in recorded], total)
    last = int(recorded[-1]["step"])
    ended = record.summary.get("steps")
    if steps is None and record.summary.get("status") in ("completed", "diverged") and isinstance(ended, int) \
            and last < ended <= total:
        last = ended  # a run that ended logged its last step: rows missing at the end are differences too
    epochs = -(-last // built.trainer.steps_per_epoch)  # just enough epochs to reach it
    short = config.model_copy(update={"train": config.train.model_copy(update={"epochs": epochs})})
    result = train_built(built, short, None, {}, [], False, None)
    if result.status == "interrupted" and result.signal is not None:
        name = signal.Signals(result.signal).name
        raise RunInterrupted(f"{name}: the verification stopped at step {result.steps}", result.signal)
    again = [row for row in result.history if row["step"] <= last]
    return Verification(
        run_dir=run_dir,
        rows=len(recorded),
        differences=_differences(recorded, again),
        recorded={"torch_version": ", then ".join(files.torch_versions(record.summary)) or None,
                  "device": record.summary.get("device")},
        current={"torch_version": torch.__version__, "device": str(built.device)},
    )


def _check_steps(run_dir: Path, steps: list[float], total: int) -> None:
    """Refuse a metrics.csv whose steps cannot be this run's: out of range or out of order."""
    previous = 0.0
    for step in steps:
        if not (math.isfinite(step) and step == int(step) and previous < step <= total):
            shown = str(int(step)) if math.isfinite(step) and step == int(step) else repr(step)  # never 1e+09
            raise RunDirError(f"{run_dir}/metrics.csv: step {shown} is not a step of this run (1 to {total}, "
                              "increasing); the file does not belong to config.yaml beside it")
        previous = step


def _differences(recorded: list[dict[str, float]], again: list[dict[str, float]]) -> list[Difference]:
    """Every value that differs between two lists of logged rows (NaN equals NaN), in step order."""
    now = {int(row["step"]): row for row in again}
    then = {int(row["step"]): row for row in recorded}
    out = []
    for step in sorted(set(now) | set(then)):
        a, b = then.get(step), now.get(step)
        if a is None or b is None:
            out.append(Difference(step, "row", None if a is None else a["loss"], None if b is None else b["loss"]))
            continue
        for column in a.keys() | b.keys():
            x, y = a.get(column), b.get(column)
            same = x == y or (x is not None and y is not None and math.isnan(x) and math.isnan(y))
            if not same:
                out.append(Difference(step, column, x, y))
    order = list(recorded[0])
    return sorted(out, key=lambda d: (d.step, order.index(d.column) if d.column in order else len(order)))
