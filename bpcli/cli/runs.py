"""`bpcli runs`: what each run directory in a folder holds, one line each (no torch)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def runs(
    folder: Annotated[Path, typer.Argument(metavar="FOLDER", help="The folder holding run directories.")] = Path(
        "outputs"),
) -> None:
    """List the runs and sweeps in a folder (default: outputs): config, settings, status,
    steps, final loss and accuracy or R², in the order of their names (run2 before run10)."""
    from rich.table import Table

    from bpcli.console import make_console
    from bpcli.errors import BpcliError
    from bpcli.rundir.listing import list_runs

    if not folder.is_dir():
        raise BpcliError(f"{folder}: no such folder; runs are written to outputs/ unless --out says otherwise")
    found = list_runs(folder)
    console = make_console()
    if not found:
        console.print(f"{folder}: no run directories yet (bpcli train CONFIG writes one)")
        return
    headers = ("run", "kind", "config", "settings", "status", "steps", "final loss", "fit")
    rows = [(run.path.name, run.kind, run.config, run.settings, run.status, run.steps, run.loss, run.quality)
            for run in found]
    table = Table(title=f"runs in {folder}", title_justify="left")
    for header in headers:
        table.add_column(header, justify="right" if header in ("steps", "final loss") else "left", no_wrap=True)
    for row in rows:
        table.add_row(*row)
    # Each column as wide as its widest cell, plus a border and a space either side.
    natural = sum(max(len(cell) for cell in column) for column in zip(headers, *rows)) + 3 * len(headers) + 1
    if natural <= console.width:
        console.print(table)
        return
    # Too narrow for the table: a line per run, so that no value is cut.
    console.print(f"runs in {folder}:", soft_wrap=True)
    for name, *values in rows:
        console.print(f"{name}: " + ", ".join(f"{h} {v}" for h, v in zip(headers[1:], values) if v and v != "—"),
                      soft_wrap=True, highlight=False)
