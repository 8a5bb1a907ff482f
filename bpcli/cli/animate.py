"""`bpcli animate`: a run's descent as an animated GIF (torch is never imported)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from bpcli import interrupts
from bpcli.cli.options import OutPath, RunDirArg

# The library's defaults and limits (bpcli.plots.animate), written out so that `bpcli --help`
# does not import the plotting package; a test keeps them in step.
FRAMES, MAX_FRAMES, FPS, MAX_FPS = 60, 300, 12.0, 50


def animate(
    run_dir: RunDirArg,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", parser=OutPath, help="The GIF to write (default: RUN_DIR/descent.gif).", show_default=False),
    ] = None,
    frames: Annotated[
        int,
        typer.Option("--frames", help=f"Most frames to draw (2 to {MAX_FRAMES}); a run logged more often is "
                                      "sampled, early steps more densely."),
    ] = FRAMES,
    fps: Annotated[float, typer.Option("--fps", help=f"Frames per second (at most {MAX_FPS}).")] = FPS,
    force: Annotated[bool, typer.Option("--force", help="Replace the GIF already at --out.")] = False,
) -> None:
    """Animate a run's descent into a GIF: the fit over the data, the parameters over the loss landscape.

    One frame per logged step (sampled down to --frames), read from the run directory alone.
    Draws scalar-sgd, linear-gd and nn-linear runs; with several inputs, predictions beside the loss;
    a linear classifier of two features (logistic, softmax): its decision boundary moving over the data.

    Example: bpcli animate outputs/run1 --frames 80 --fps 15
    """
    interrupts.defer()  # Ctrl-C stops between two frames: no GIF is left half written
    from bpcli.plots.animate import animate as draw


    result = draw(run_dir, out, frames=frames, fps=fps, force=force)
    size = result.path.stat().st_size / 1024
    typer.echo(f"{result.path}: {result.frames} frames, step {result.first_step} to {result.last_step}, "
               f"{fps:g} fps, {size:.0f} KB")
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
