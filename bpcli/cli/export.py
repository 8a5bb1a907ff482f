"""`bpcli export`: a run as a plain PyTorch script, RUN/run.py, that reproduces it without bpcli."""

from __future__ import annotations

from typing import Annotated

import typer

from bpcli.cli.options import RunDirArg


def export(
    run_dir: RunDirArg,
    force: Annotated[bool, typer.Option("--force", help="Replace the run's run.py if it has one.")] = False,
) -> None:
    """Write RUN_DIR/run.py: the run as a plain PyTorch script (data, model, loop, prints), with
    the hand-derived gradient where the run used grad: manual and loss.backward() where it used
    autograd. `python run.py` in the run directory reads its data.csv, starts from the run's
    initial parameters, and prints the logged losses and the final parameters of metrics.csv and
    summary.json, bit for bit, without bpcli.
    """
    from bpcli.export import export_run

    path = export_run(run_dir, force=force)
    typer.echo(f"wrote {path}; run it with: cd {path.parent} && python run.py")
