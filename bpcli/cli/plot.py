"""`bpcli plot` and `bpcli compare`: plots from run directories (torch is never imported)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from bpcli import interrupts
from bpcli.cli.options import OutPath, RunDirArg


class Format(str, Enum):
    png = "png"
    svg = "svg"
    pdf = "pdf"


def plot(
    run_dir: RunDirArg,
    fmt: Annotated[Format, typer.Option("--format", help="File format of the plots.")] = Format.png,
) -> None:
    """Redraw a run's plots (loss, fit, params, landscape; a classifier's loss, boundary,
    confusion, params) from its directory alone, or a sweep's (losses, final loss against
    lr) from a sweep directory."""
    interrupts.defer()  # Ctrl-C stops between two figures: none is left half written
    from bpcli.errors import RunDirBusy, RunDirError
    from bpcli.plots import draw_plots, draw_sweep
    from bpcli.rundir.files import MARKER, claim, release
    from bpcli.rundir.sweep import is_sweep_dir

    # A run still being trained draws its own plots at its end; drawing into it meanwhile
    # would write beside a process that may replace or clear them.
    held = (run_dir / MARKER).is_file()
    if held:
        try:
            claim(run_dir, elsewhere="copy the run elsewhere and plot the copy")
        except RunDirBusy:
            raise RunDirError(f"{run_dir}: a bpcli process is still writing this run; it draws its plots when it "
                              "ends (then, or after Ctrl-C, bpcli plot redraws them)") from None
    try:
        paths = draw_sweep(run_dir, fmt.value) if is_sweep_dir(run_dir) else draw_plots(run_dir, fmt.value)
    finally:
        if held:
            release(run_dir)
    for path in paths:
        typer.echo(str(path))


MAX_COMPARED = 20
"""The most runs compare draws: the palette of pairs has twenty colours, and more runs would share them."""


def compare(
    run_dirs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR", help="The run directories to draw together "
                                                   "(two or more).", show_default=False)],
    out: Annotated[Optional[Path], typer.Option(
        "--out", parser=OutPath, help="The figure to write (.png, .svg or .pdf); default: outputs/compare<N>.png, "
        "the next "
        "free N.", show_default=False)] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the file already at --out.")] = False,
) -> None:
    """Overlay several runs' losses, fitted curves and, for runs on the same data, their
    descent paths on one loss landscape (classifiers: their accuracy); each run is labelled
    by the settings that differ."""
    interrupts.defer()  # Ctrl-C stops before the figure is written, or after: never half of it
    from bpcli.errors import BpcliError
    from bpcli.plots import FORMATS, compare as draw
    from bpcli.rundir.files import check_figure_out, next_free

    seen: dict[Path, Path] = {}
    for run_dir in run_dirs:  # one run given twice would be one line drawn twice, with two legend entries
        if run_dir.resolve() in seen:
            again = "" if str(seen[run_dir.resolve()]) == str(run_dir) else f" (as {seen[run_dir.resolve()]} too)"
            raise BpcliError(f"{run_dir}: is given twice{again}; name each run once")
        seen[run_dir.resolve()] = run_dir
    if len(run_dirs) > MAX_COMPARED:
        raise BpcliError(f"compare draws at most {MAX_COMPARED} runs, each in a colour of its own, and was given "
                         f"{len(run_dirs)}; compare fewer, or train them as one sweep (bpcli sweep draws every "
                         "member's loss)")
    if len(run_dirs) < 2:
        raise BpcliError(f"compare draws two or more runs together; for {run_dirs[0]} alone, its own figures are "
                         f"`bpcli plot {run_dirs[0]}`")
    if out is not None:  # a figure is never replaced silently
        check_figure_out(out, force, FORMATS)
    # Without --out the name is claimed (created empty) at once: two compares never draw to one file.
    target = out or next_free(Path("outputs"), "compare", ".png", elsewhere="choose another --out")
    try:
        path, notes = draw(run_dirs, target)
    except BaseException:
        if out is None:  # the empty placeholder next_free made
            target.unlink(missing_ok=True)
        raise
    typer.echo(str(path))
    for note in notes:
        typer.echo(f"note: {note}", err=True)
