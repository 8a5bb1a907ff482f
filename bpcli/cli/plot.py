"""`bpcli plot`: redraw a run's plots from its directory (torch is never imported)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated

import typer

from bpcli.cli import app
from bpcli.cli._options import RunDirArg


class Format(str, Enum):
    png = "png"
    svg = "svg"
    pdf = "pdf"


@app.command()
def plot(
    run_dir: RunDirArg,
    fmt: Annotated[Format, typer.Option("--format", help="File format of the plots.")] = Format.png,
) -> None:
    """Redraw loss and fit plots from a run directory alone."""
    from bpcli.plots import draw_plots

    for path in draw_plots(run_dir, fmt.value):
        typer.echo(str(path))
