"""`bpcli sweep`: a grid of settings trained at once as one batched model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from bpcli.cli.options import (BatchSize, ConfigArg, Device, Engine, Epochs, Grad, LogEvery, Momentum, Optimizer, OutPath, Set,
                               Threads, main_process)
from bpcli import interrupts
from bpcli.errors import RunFailed, RunInterrupted


def sweep(
    config: ConfigArg,
    grid: Annotated[
        list[str],
        typer.Option("--grid", metavar="KEY=VALUES",
                     help="Values to sweep: lr=0.001,0.01,0.1 or seed=0:10 (stop excluded). Repeatable; "
                          "every combination becomes one member."),
    ],
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
) -> None:
    """Train every combination of a grid at once, as one batched model, and compare them.

    Example: bpcli sweep configs/exp2.yaml --grid lr=0.001,0.01,0.1 --grid seed=0:10
    """
    from bpcli.console import make_console, print_sweep, progress, starting

    console = make_console()
    interrupts.defer()  # a Ctrl-C while torch loads stops the sweep before its first step
    quiet = quiet or not main_process()  # rank 0 reports for the whole torchrun job
    with progress(console, f"Sweeping {config} (loss: the members' median)", quiet) as observer:
        starting(observer, "loading torch")
        from bpcli.config import from_flags, load_config
        from bpcli.sweep import parse_grid, run_sweep

        cfg = load_config(config, from_flags(set_, epochs=epochs, device=device, log_every=log_every,
                                            engine=engine, grad=grad, optimizer=optimizer, momentum=momentum,
                                            batch_size=batch_size, threads=threads))
        starting(observer, "building the members' data and models")
        result = run_sweep(cfg, parse_grid(grid), out, force=force, observer=observer)
    if not main_process():
        return
    if quiet:
        typer.echo(str(result.out))
    else:
        print_sweep(console, result)
    if result.status == "interrupted" and result.signal is not None:
        import signal

        where = f"; what was trained is in {result.out}" if result.out else ""
        name = signal.Signals(result.signal).name
        raise RunInterrupted(f"{name}: stopped the sweep after step {result.steps}{where}", result.signal)
    if result.status == "diverged":
        first = min(m["diverged_at_step"] for m in result.members)
        raise RunFailed(f"every one of the {len(result.members)} members diverged (the first at step {first}); "
                        "sweep smaller learning rates (--grid lr=…) or check the data's scale")
