"""`bpcli train`, `bpcli config` and `bpcli rerun`: run, show or repeat an experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from bpcli.cli import app
from bpcli.cli._options import (
    ConfigArg,
    Device,
    Engine,
    Epochs,
    Grad,
    LogEvery,
    Lr,
    OptionalConfigArg,
    Quiet,
    RunDirArg,
    Seed,
    Set,
    complete_runs,
)
from bpcli.errors import BpcliError, RunFailed, RunInterrupted


def _overrides(lr: Any, epochs: Any, seed: Any, device: Any, log_every: Any, sets: Any,
               engine: Any = None, grad: Any = None) -> list[Any]:
    """The flags as config overrides, in the order they apply (named flags win over --set)."""
    from bpcli.config import Override, parse_set

    overrides = [parse_set(s) for s in sets or []]
    named = {
        "train.lr": ("--lr", lr),
        "train.epochs": ("--epochs", epochs),
        "seed": ("--seed", seed),
        "device": ("--device", device),
        "train.log_every": ("--log-every", log_every),
        "train.engine": ("--engine", engine.value if engine is not None else None),
        "train.grad": ("--grad", grad.value if grad is not None else None),
    }
    for path, (flag, value) in named.items():
        if value is not None:
            overrides.append(Override(path=path, value=value, origin=f"{flag} {value}"))
    return overrides


def _report(result: Any, quiet: bool, console: Any, lr: float) -> None:
    """Print how a run ended; raise the error that gives its exit code if it did not complete."""
    from bpcli.cli import main_process
    from bpcli.console import print_result

    if not main_process():
        pass  # rank 0 prints for the whole torchrun job
    elif quiet:
        typer.echo(str(result.run_dir))
    else:
        print_result(console, result.summary, result.run_dir)
    if result.status == "interrupted" and result.signal is not None:
        import signal

        name = signal.Signals(result.signal).name
        where = f"; resume with: bpcli train --resume {result.run_dir}" if result.run_dir else ""
        raise RunInterrupted(f"{name}: stopped after step {result.steps}{where}", result.signal)
    if result.status == "diverged":
        raise RunFailed(result.summary["divergence"]["message"])


@app.command()
def train(
    config: OptionalConfigArg = None,
    lr: Lr = None,
    epochs: Epochs = None,
    seed: Seed = None,
    device: Device = None,
    log_every: LogEvery = None,
    engine: Engine = None,
    grad: Grad = None,
    set_: Set = None,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", help="Run directory to write (default: outputs/run<N>, the next free N)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the run already in --out (never other files).")
    ] = False,
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
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip drawing loss.png and fit.png.")] = False,
) -> None:
    """Train the experiment a config describes and write a run directory.

    Example: bpcli train configs/exp2.yaml --lr 0.05 --epochs 500 --out outputs/fast
    """
    from bpcli.config import load_config
    from bpcli.console import make_console, progress
    from bpcli.training import resume as resume_run
    from bpcli.training import train as run

    from bpcli.cli import main_process

    console = make_console()
    quiet = quiet or not main_process()
    if resume is not None:
        others = {"CONFIG": config, "--lr": lr, "--seed": seed, "--device": device,
                  "--log-every": log_every, "--engine": engine, "--grad": grad, "--set": set_, "--out": out,
                  "--force": force or None}
        given = [name for name, value in others.items() if value]
        if given:
            raise BpcliError(
                f"--resume continues a run as it was configured; drop {', '.join(given)} "
                "(only --epochs may change)"
            )
        with progress(console, f"Resuming {resume}", quiet) as observer:
            result = resume_run(resume, epochs, plots=not no_plots, observer=observer)
        _report(result, quiet, console, float(result.summary.get("lr", 0.0)))
        return

    if config is None:
        raise BpcliError("give a config file (bpcli train configs/exp2.yaml) or --resume RUN_DIR")
    cfg = load_config(config, _overrides(lr, epochs, seed, device, log_every, set_, engine, grad))
    with progress(console, f"Training {cfg.kind} ({config})", quiet) as observer:
        result = run(cfg, out, force=force, plots=not no_plots, observer=observer, config_file=str(config))
    _report(result, quiet, console, cfg.train.lr)


@app.command("config")
def show_config(
    config: ConfigArg,
    lr: Lr = None,
    epochs: Epochs = None,
    seed: Seed = None,
    device: Device = None,
    log_every: LogEvery = None,
    engine: Engine = None,
    grad: Grad = None,
    set_: Set = None,
) -> None:
    """Print the resolved config (defaults filled in, overrides applied) without training."""
    from bpcli.config import dump_config, load_config

    cfg = load_config(config, _overrides(lr, epochs, seed, device, log_every, set_, engine, grad))
    typer.echo(dump_config(cfg), nl=False)


@app.command()
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
        Optional[Path], typer.Option("--out", help="Without --verify: the new run's directory.")
    ] = None,
    quiet: Quiet = False,
) -> None:
    """Run a recorded config again: into a new run directory, or with --verify to check it reproduces."""
    from bpcli.config import read_yaml, validate_config
    from bpcli.console import make_console, print_verification, progress
    from bpcli.training import train as run
    from bpcli.training import verify_run

    console = make_console()
    if verify:
        report = verify_run(run_dir, steps)
        print_verification(console, report)
        if not report.matches:
            raise RunFailed(report.explanation())
        return
    config_path = run_dir / "config.yaml"
    if not config_path.is_file():
        raise BpcliError(f"{run_dir}: not a run directory (no config.yaml); give one written by `bpcli train`")
    cfg = validate_config(read_yaml(config_path), source=str(config_path))
    with progress(console, f"Re-running {run_dir}", quiet) as observer:
        result = run(cfg, out, observer=observer, config_file=str(config_path))
    _report(result, quiet, console, cfg.train.lr)
