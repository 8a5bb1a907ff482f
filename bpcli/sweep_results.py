"""A sweep's results: each member's final row, the mean and spread over seeds of the others,
and the files (summary.csv, aggregates.csv, metrics.csv, sweep.json) and TensorBoard runs
they are written to."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bpcli.config import Experiment
from bpcli.kinds.base import flat
from bpcli.kinds.tasks import task_of
from bpcli.lifecycle import tensorboard_writer_class
from bpcli.loop import Divergence
from bpcli.rundir import sweep as files
from bpcli.rundir.files import bpcli_version, make_folder


@dataclass
class SweepResult:
    """What a sweep produced: one row per member, aggregates over seeds, where it went."""

    out: Path | None
    members: list[dict[str, Any]]
    aggregates: list[dict[str, Any]]
    seconds: float
    steps: int
    """Steps every member took (fewer than planned if the sweep was interrupted)."""
    status: str = "completed"
    """completed; interrupted (a signal stopped it after a step, and what was trained is kept);
    or diverged, when every member diverged."""
    signal: int | None = None


def member_results(count: int, trainer: Any, history: list[tuple[int, list[float]]], divergence: Divergence,
                   status: str) -> list[dict[str, Any]]:
    """Each member's status, final loss and final parameter values: a diverged member's as a
    single run with its settings ends, at the step it diverged."""
    params = {name: t.tolist() for name, t in flat(trainer.params()).items()}
    diverged = divergence.diverged()
    results = []
    for k in range(count):
        result: dict[str, Any] = {
            "status": "diverged" if k in diverged else status,
            "diverged_at_step": diverged.get(k),
            "divergence": None,  # why, in the words a single run's summary.json gives
            "final_loss": history[-1][1][k] if history else None,  # None: stopped before the first step
        }
        values_of = params
        if k in divergence.ended:
            result["final_loss"], ended = divergence.ended[k]
            values_of = {name: [t.reshape(-1).tolist()] for name, t in ended.items()}
        for name, values in values_of.items():
            member = values[k] if values_of is params else values[0]
            for i, v in enumerate(member):
                result[name if len(member) == 1 else f"{name}[{i}]"] = v
        results.append(result)
    return results


def member_quality(built: list[Any], trainer: Any, divergence: Divergence) -> list[dict[str, float | None]]:
    """Each member's accuracy (a classifier) or R² (a regression) on its training and
    validation rows, as its single run's summary.json gives them: measured by the member's
    own single-run trainer (`built`), given the member's final parameters."""
    stacked = {name: t.detach() for name, t in trainer.params().items()}
    rows = []
    for k, member in enumerate(built):
        values = divergence.ended[k][1] if k in divergence.ended else {name: t[k] for name, t in stacked.items()}
        single = member.trainer
        with torch.no_grad():
            for name, p in single.params().items():
                p.copy_(values[name].reshape(p.shape))
        quality = task_of(single).quality(single, member.data, None)
        measure = "accuracy" if "accuracy" in quality else "r2"
        rows.append({measure if split == "train" else f"{split}_{measure}": quality[measure].get(split)
                     for split in member.data.splits()})
    return rows


def aggregate(rows: list[dict[str, Any]], grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Mean and standard deviation over seeds of each numeric result, per other setting
    (diverged members are counted, not averaged)."""
    keys = [k for k in grid if k != "seed"]
    numeric = [c for c in rows[0] if c not in ("member", "status", "diverged_at_step", "divergence", *grid)]
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    aggregates = []
    for values, group in groups.items():
        entry: dict[str, Any] = dict(zip(keys, values))
        entry["members"] = len(group)
        entry["diverged"] = sum(r["status"] == "diverged" for r in group)
        for column in numeric:
            data = [r[column] for r in group if r["status"] != "diverged" and r[column] is not None]
            entry[f"{column}_mean"] = statistics.fmean(data) if data else math.nan
            entry[f"{column}_std"] = statistics.pstdev(data) if len(data) > 1 else 0.0 if data else math.nan
        aggregates.append(entry)
    return aggregates


def write_results(directory: Path, config: Experiment, grid: dict[str, list[Any]], result: SweepResult,
                  history: list[tuple[int, list[float]]], device: str, processes: int, info: dict[str, Any]) -> None:
    """Write a sweep's summary.csv, aggregates.csv, metrics.csv and sweep.json (`info`: more for it)."""
    files.write_table(directory / "summary.csv", result.members)
    files.write_table(directory / "aggregates.csv", result.aggregates)
    files.write_losses(directory, history)
    files.write_info(directory, {
        "kind": config.kind, "grid": grid, "members": len(result.members), "status": result.status,
        "steps": result.steps,
        "device": device, "processes": processes, "threads": torch.get_num_threads(), "train_seconds": result.seconds,
        "seconds_per_step": result.seconds / max(result.steps, 1),
        "diverged": sum(r["status"] == "diverged" for r in result.members),
        "bpcli_version": bpcli_version(), "torch_version": str(torch.__version__), **info,
    })


QUALITY_MEMBERS = 4096
"""Up to this many members, each one's accuracy or R² is measured by its own single-run
trainer (0.1 to 0.5 ms a member on a CPU); a larger sweep leaves those columns out, so
that measuring never takes longer than building its members."""

TENSORBOARD_MEMBERS = 256
"""Up to this many members, each is a TensorBoard run of its own; beyond, each setting is
one run holding its members' median loss."""


def write_tensorboard(folder: Path, grid: dict[str, list[Any]], rows: list[dict[str, Any]],
                      history: list[tuple[int, list[float]]]) -> None:
    """TensorBoard runs under `folder`, named by their settings (lr=0.01 seed=3): the loss
    at every logged step and each parameter's final value, as a single run would log them."""
    writer_class = tensorboard_writer_class()
    make_folder(folder)  # never a link, and listed in the manifest before it is written
    steps = [step for step, _ in history]
    keys = list(grid) if len(rows) <= TENSORBOARD_MEMBERS else [k for k in grid if k != "seed"]
    groups: dict[str, list[int]] = {}
    for k, row in enumerate(rows):
        name = ",".join(f"{key.split('.')[-1]}={row[key]}" for key in keys) or "all-members"
        groups.setdefault(name, []).append(k)
    for name, members in groups.items():
        board = writer_class(log_dir=str(make_folder(folder / name)))
        for step, values in zip(steps, (values for _, values in history)):
            chosen = [values[k] for k in members]
            finite = sorted(v for v in chosen if math.isfinite(v))
            loss = chosen[0] if len(members) == 1 else (statistics.median(finite) if finite else math.nan)
            board.add_scalar("loss/loss" if len(members) == 1 else "loss/median", loss, step)
        if len(members) == 1:
            row = rows[members[0]]
            for column, value in row.items():
                if column not in ("member", "status", "diverged_at_step", "divergence", "final_loss", *grid):
                    board.add_scalar(f"params/{column}", value, steps[-1])
        board.close()
