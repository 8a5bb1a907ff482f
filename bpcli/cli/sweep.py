"""`bpcli sweep`: a grid of settings trained at once as one batched model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from bpcli.cli.options import (BatchSize, Device, Engine, Epochs, Grad, LogEvery, Momentum, OptionalConfigArg,
                               Optimizer, OutPath, Set, Threads, given, main_process)
from bpcli import interrupts
from bpcli.errors import BpcliError, RunFailed, RunInterrupted


def sweep(
    config: OptionalConfigArg = None,
    grid: Annotated[
        Optional[list[str]],
        typer.Option("--grid", metavar="KEY=VALUES",
                     help="Values to sweep: lr=0.001,0.01,0.1 or seed=0:10 (stop excluded). Repeatable; "
                          "every combination becomes one member."),
    ] = None,
    epochs: Epochs = None,
    device: Device = None,
    log_every: LogEvery = None,
    engine: Engine = None,
    grad: Grad = None,
    optimizer: Optimizer = None,
    momentum: Momentum = None,
    batch_size: BatchSize = None,
    threads: Threads = None,
    set_: Set = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", parser=OutPath, help="Sweep directory (default: outputs/sweep<N>).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the sweep already in --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the sweep directory.")] = False,
    resume: Annotated[
        Optional[Path],
        typer.Option("--resume", metavar="SWEEP_DIR", help="Continue a sweep from its checkpoint, in its own "
                     "directory (with --epochs: to that many epochs).", show_default=False),
    ] = None,
) -> None:
    """Train every combination of a grid at once, as one batched model, and compare them.

    Example: bpcli sweep configs/exp2.yaml --grid lr=0.001,0.01,0.1 --grid seed=0:10
    """
    from bpcli.console import make_console, progress, starting

    console = make_console()
    interrupts.defer()  # a Ctrl-C while torch loads stops the sweep before its first step
    quiet = quiet or not main_process()  # rank 0 reports for the whole torchrun job
    if resume is not None:
        others = given({"CONFIG": config, "--grid": grid, "--device": device, "--log-every": log_every,
                        "--engine": engine, "--grad": grad, "--optimizer": optimizer, "--momentum": momentum,
                        "--batch-size": batch_size, "--threads": threads, "--set": set_, "--out": out,
                        "--force": force})
        if others:
            raise BpcliError(f"--resume continues a sweep as it was configured; drop {', '.join(others)} "
                             "(only --epochs may change)")
        with progress(console, f"Resuming {resume} (loss: the members' median)", quiet) as observer:
            starting(observer, "loading torch")
            from bpcli.sweep import resume_sweep

            starting(observer, "loading the checkpoint and building the members")
            result = resume_sweep(resume, epochs, observer=observer)
        _report(result, quiet, console)
        return
    if config is None or not grid:
        raise BpcliError("give a config and at least one --grid (bpcli sweep configs/exp2.yaml --grid "
                         "lr=0.001,0.01,0.1), or --resume SWEEP_DIR")
    with progress(console, f"Sweeping {config} (loss: the members' median)", quiet) as observer:
        starting(observer, "loading torch")
        from bpcli.config import from_flags, load_config
        from bpcli.grid import parse_grid
        from bpcli.sweep import run_sweep

        cfg = load_config(config, from_flags(set_, epochs=epochs, device=device, log_every=log_every,
                                            engine=engine, grad=grad, optimizer=optimizer, momentum=momentum,
                                            batch_size=batch_size, threads=threads))
        starting(observer, "building the members' data and models")
        result = run_sweep(cfg, parse_grid(grid), out, force=force, observer=observer)
    _report(result, quiet, console)


def _report(result: Any, quiet: bool, console: Any) -> None:
    """The sweep's table (or its directory alone), and its end as an exit status."""
    from bpcli.console import print_sweep

    if not main_process():
        return
    _warn_torch_versions(result.out)
    if quiet:
        typer.echo(str(result.out))
    else:
        print_sweep(console, result)
    if result.status == "interrupted" and result.signal is not None:
        import signal

        where = f"; what was trained is in {result.out}" if result.out else ""
        if result.out is not None and (result.out / "checkpoint.pt").is_file():
            where = f"; resume with: bpcli sweep --resume {result.out}"
        name = signal.Signals(result.signal).name
        raise RunInterrupted(f"{name}: stopped the sweep after step {result.steps}{where}", result.signal)
    if result.status == "diverged":
        first = min(result.members, key=lambda m: m["diverged_at_step"])
        reason = (first.get("divergence") or "").split(". ")[0].removeprefix("training diverged ")
        where = f"; summary.csv's divergence column in {result.out} says why for each" if result.out else ""
        raise RunFailed(f"every one of the {len(result.members)} members diverged (the first, member "
                        f"{first['member']}, {reason}){where}")


def _warn_torch_versions(directory: Path | None) -> None:
    """Say so when a resumed sweep has been trained with more than one torch version."""
    import json

    from bpcli.rundir.run import torch_versions

    try:
        info = json.loads((directory / "sweep.json").read_text(encoding="utf-8")) if directory else {}
    except (OSError, ValueError):
        return
    versions = torch_versions(info) if isinstance(info, dict) else []
    if len(versions) > 1:
        typer.echo(f"warning: {directory} was trained with torch {', then '.join(versions)}; it is bit-identical "
                   "to a sweep never interrupted only when one torch version trains it all", err=True)
