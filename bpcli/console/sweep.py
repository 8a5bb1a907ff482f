"""A sweep's table: per setting, mean ± std over seeds of the final loss, accuracy or R², and parameters."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from bpcli.console.common import show
from bpcli.rundir.sweep import QUALITY_COLUMNS


def print_sweep(console: Console, result: Any) -> None:
    """The sweep's aggregates: per setting, mean ± std over seeds of the final loss and parameters."""
    rows = result.aggregates
    settings = [k for k in rows[0] if not k.endswith(("_mean", "_std")) and k not in ("members", "diverged")]
    measures = [k[: -len("_mean")] for k in rows[0] if k.endswith("_mean")]
    # A few parameter values are worth a column each; an MLP's hundreds are not (and one weight
    # averaged over seeds means little, as hidden units come out in any order).
    params = [m for m in measures if m not in QUALITY_COLUMNS]
    shown = [m for m in measures if m in QUALITY_COLUMNS] + (params if len(params) <= 4 else [])
    table = Table(title=f"{len(result.members)} members, {result.steps} steps each, in {result.seconds:.2f} s",
                  box=box.SIMPLE_HEAD)
    left_out = len(shown) < len(measures)
    measures = shown
    for name in [*settings, "runs", *measures]:
        table.add_column(name.split(".")[-1], justify="right")
    for row in rows:
        cells = [str(row[k]) for k in settings]
        runs = f"{row['members']}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "")
        # One member's value has no spread to show (its "std" of 0 would claim a certainty).
        averaged = row["members"] - row["diverged"]
        values = [f"{row[m + '_mean']:.4g}" + (f" ± {row[m + '_std']:.2g}" if averaged > 1 else "")
                  for m in measures]
        table.add_row(*cells, runs, *values)
    show(console, table)
    diverged = sorted((m for m in result.members if m.get("divergence")), key=lambda m: m["diverged_at_step"])
    if diverged:  # the first to diverge, told why as its single run would be; the others in summary.csv
        first = diverged[0]
        grid = ", ".join(f"{k.split('.')[-1]}={first[k]}" for k in first if "." in k or k == "seed")
        others = (f" ({len(diverged) - 1} more diverged: summary.csv's divergence column says why)"
                  if len(diverged) > 1 else "")
        console.print(f"member {first['member']} ({grid}): {first['divergence']}{others}", soft_wrap=True)
    if result.out is not None:
        more = " (its aggregates.csv has every parameter's mean and std)" if left_out else ""
        console.print(f"sweep directory: {result.out}{more}", soft_wrap=True)
