"""`bpcli plot` and `bpcli compare`: plots from run directories (torch is never imported)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from bpcli.cli.options import RunDirArg


class Format(str, Enum):
    png = "png"
    svg = "svg"
    pdf = "pdf"


def plot(
    run_dir: RunDirArg,
    fmt: Annotated[Format, typer.Option("--format", help="File format of the plots.")] = Format.png,
) -> None:
    """Redraw a run's plots (loss, fit, params, landscape) from its directory alone, or a
    sweep's (losses, final loss against lr) from a sweep directory."""
    from bpcli.plots import draw_plots, draw_sweep
    from bpcli.rundir.sweep import is_sweep_dir

    paths = draw_sweep(run_dir, fmt.value) if is_sweep_dir(run_dir) else draw_plots(run_dir, fmt.value)
    for path in paths:
        typer.echo(str(path))


def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Two or more run directories.", show_default=False)],
    out: Annotated[Path, typer.Option("--out", help="The figure to write (.png, .svg or .pdf).")] = Path(
        "compare.png"
    ),
    force: Annotated[bool, typer.Option("--force", help="Replace the file already at --out.")] = False,
) -> None:
    """Overlay the loss curves and fitted curves of several runs, labelled by what differs."""
    from bpcli.errors import BpcliError
    from bpcli.plots import FORMATS, compare as draw

    # A figure is never replaced silently, the default compare.png included. (A name with
    # the wrong suffix is left to draw, which says so.)
    if out.exists() and not force and out.suffix.lstrip(".") in FORMATS:
        raise BpcliError(f"{out}: already exists; write to --out NEW{out.suffix}, or add --force to replace it")
    typer.echo(str(draw(run_dirs, out)))
