"""`bpcli plot` and `bpcli compare`: plots from run directories (torch is never imported)."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from bpcli.cli import app, skip_teardown
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
    """Redraw a run's plots (loss, fit, params, landscape) from its directory alone, or a
    sweep's (losses, final loss against lr) from a sweep directory."""
    # Plots need no BLAS threads; without them this process stays single-threaded, so
    # draw_plots may fork to draw half the figures at the same time.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from bpcli.plots import draw_plots, draw_sweep

    if (run_dir / "sweep.json").is_file():
        paths = draw_sweep(run_dir, fmt.value)
    else:
        paths = draw_plots(run_dir, fmt.value, processes=2)
    for path in paths:
        typer.echo(str(path))
    skip_teardown()


@app.command()
def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Two or more run directories.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="The figure to write (.png, .svg or .pdf).")] = Path(
        "compare.png"
    ),
) -> None:
    """Overlay the loss curves and fitted curves of several runs, labelled by what differs."""
    from bpcli.plots import compare as draw

    typer.echo(str(draw(run_dirs, out)))
