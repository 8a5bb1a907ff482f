"""`bpcli train`, `bpcli config` and `bpcli rerun`: run, show or repeat an experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from bpcli.cli.options import (
    BatchSize,
    ConfigArg,
    Device,
    Engine,
    Epochs,
    Force,
    OutPath,
    Grad,
    LogEvery,
    Lr,
    Momentum,
    OptionalConfigArg,
    Optimizer,
    Out,
    Quiet,
    RunDirArg,
    Seed,
    Set,
    Threads,
    given,
    complete_runs,
    main_process,
)
from bpcli import interrupts
from bpcli.errors import BpcliError, RunFailed, RunInterrupted
from bpcli.flags import OVERRIDE_FLAGS, keyword


def report(result: Any, quiet: bool, console: Any) -> None:
    """Print how a run ended; raise the error that gives its exit code if it did not complete."""
    from bpcli.console import print_result

    if not main_process():
        pass  # rank 0 prints for the whole torchrun job
    elif quiet:
        typer.echo(str(result.run_dir))
    else:
        print_result(console, result.summary, result.run_dir)
    _warn_torch_versions(result)
    if result.status == "interrupted" and result.signal is not None:
        import signal

        name = signal.Signals(result.signal).name
        where = f"; resume with: bpcli train --resume {result.run_dir}" if result.run_dir else ""
        raise RunInterrupted(f"{name}: stopped after step {result.steps}{where}", result.signal)
    if result.status == "diverged":
        raise RunFailed(result.summary["divergence"]["message"])


def _warn_torch_versions(result: Any) -> None:
    """Say so when a resumed run has been trained with more than one torch version."""
    from bpcli.rundir.run import torch_versions

    versions = torch_versions(result.summary)
    if len(versions) > 1 and main_process():
        typer.echo(f"warning: {result.run_dir} was trained with torch {', then '.join(versions)}; it is "
                   "bit-identical to a run never interrupted only when one torch version trains it all", err=True)


def train(
    config: OptionalConfigArg = None,
    lr: Lr = None,
    epochs: Epochs = None,
    seed: Seed = None,
    device: Device = None,
    log_every: LogEvery = None,
    engine: Engine = None,
    grad: Grad = None,
    optimizer: Optimizer = None,
    momentum: Momentum = None,
    batch_size: BatchSize = None,
    threads: Threads = None,
    set_: Set = None,
    out: Out = None,
    force: Force = False,
    resume: Annotated[
        Optional[Path],
        typer.Option(
            "--resume",
            autocompletion=complete_runs,
            help="Continue the run in this directory from its checkpoint, instead of CONFIG "
            "(only --epochs may change).",
            show_default=False,
        ),
    ] = None,
    quiet: Quiet = False,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip drawing the plots.")] = False,
) -> None:
    """Train the experiment a config describes and write a run directory.

    Example: bpcli train configs/exp2.yaml --lr 0.05 --epochs 500 --out outputs/fast
    """
    from bpcli.console import make_console, progress, starting

    interrupts.defer()  # a Ctrl-C while torch loads stops the run before its first step
    console = make_console()
    quiet = quiet or not main_process()
    named = dict(lr=lr, epochs=epochs, seed=seed, device=device, log_every=log_every, engine=engine, grad=grad,
                 optimizer=optimizer, momentum=momentum, batch_size=batch_size, threads=threads)
    if resume is not None:
        others = {"CONFIG": config, **{flag: named[keyword(flag)] for flag in OVERRIDE_FLAGS if flag != "--epochs"},
                  "--set": set_, "--out": out, "--force": force}
        _resume(resume, epochs, given(others), quiet, no_plots, console)
        return
    if config is None:
        raise BpcliError("give a config file (bpcli train configs/exp2.yaml) or --resume RUN_DIR")
    with progress(console, quiet=quiet) as observer:
        starting(observer, "loading torch")
        from bpcli import lifecycle
        from bpcli.config import from_flags, load_config

        cfg = load_config(config, from_flags(set_, **named))
        starting(observer, "building the data and the model", f"Training {cfg.kind} ({config})")
        result = lifecycle.train(cfg, out, force=force, plots=not no_plots, observer=observer,
                                 config_file=str(config))
    report(result, quiet, console)


def _resume(run_dir: Path, epochs: int | None, given: list[str], quiet: bool, no_plots: bool, console: Any) -> None:
    from bpcli.console import progress, starting

    if given:
        raise BpcliError(
            f"--resume continues a run as it was configured; drop {', '.join(given)} "
            "(only --epochs may change)"
        )
    with progress(console, f"Resuming {run_dir}", quiet) as observer:
        starting(observer, "loading torch")
        from bpcli import lifecycle

        starting(observer, "loading the checkpoint, the data and the model")
        result = lifecycle.resume(run_dir, epochs, plots=not no_plots, observer=observer)
    report(result, quiet, console)


def show_config(
    config: ConfigArg,
    lr: Lr = None,
    epochs: Epochs = None,
    seed: Seed = None,
    device: Device = None,
    log_every: LogEvery = None,
    engine: Engine = None,
    grad: Grad = None,
    optimizer: Optimizer = None,
    momentum: Momentum = None,
    batch_size: BatchSize = None,
    threads: Threads = None,
    set_: Set = None,
) -> None:
    """Print the resolved config (defaults filled in, overrides applied) without training."""
    from bpcli.config import dump_config, from_flags, load_config

    flags = from_flags(set_, lr=lr, epochs=epochs, seed=seed, device=device, log_every=log_every,
                       engine=engine, grad=grad, optimizer=optimizer, momentum=momentum, batch_size=batch_size,
                       threads=threads)
    typer.echo(dump_config(load_config(config, flags)), nl=False)


def rerun(
    run_dir: RunDirArg,
    verify: Annotated[
        bool,
        typer.Option("--verify", help="Re-run without writing anything and check the logged losses match."),
    ] = False,
    steps: Annotated[
        Optional[int],
        typer.Option("--steps", min=1, help="With --verify: how many logged losses to compare (default: all)."),
    ] = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", parser=OutPath, help="Without --verify: the new run's directory.")
    ] = None,
    force: Force = False,
    quiet: Quiet = False,
) -> None:
    """Run a recorded config again: into a new run directory, or with --verify to check it reproduces."""
    from bpcli.console import make_console, print_verification, progress, starting

    interrupts.defer()  # a Ctrl-C while torch loads stops the run before its first step
    if force and (verify or out is None):
        raise BpcliError("--force replaces the run in --out: give --out DIR (and not --verify)")
    console = make_console()
    with progress(console, f"Re-running {run_dir}", quiet) as observer:
        starting(observer, "loading torch")
        from bpcli import lifecycle
        from bpcli.verify import verify_run

        if verify:
            starting(observer, "training again in memory")
            verification = verify_run(run_dir, steps)
        else:
            starting(observer, "building the data and the model")
            result = lifecycle.rerun(run_dir, out, force=force, observer=observer)
    if verify:
        print_verification(console, verification)
        if not verification.matches:
            raise RunFailed(verification.explanation())
        return
    report(result, quiet, console)
