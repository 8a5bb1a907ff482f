"""`bpcli train` and `bpcli config`: run an experiment, or show the config it would run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from bpcli.cli import app
from bpcli.cli._options import ConfigArg, Device, Epochs, LogEvery, Lr, Seed, Set


def _overrides(lr: Any, epochs: Any, seed: Any, device: Any, log_every: Any, sets: Any) -> list[Any]:
    """The flags as config overrides, in the order they apply (named flags win over --set)."""
    from bpcli.config import Override, parse_set

    overrides = [parse_set(s) for s in sets or []]
    named = {
        "train.lr": ("--lr", lr),
        "train.epochs": ("--epochs", epochs),
        "seed": ("--seed", seed),
        "device": ("--device", device),
        "train.log_every": ("--log-every", log_every),
    }
    for path, (flag, value) in named.items():
        if value is not None:
            overrides.append(Override(path=path, value=value, origin=f"{flag} {value}"))
    return overrides


@app.command()
def train(
    config: ConfigArg,
    lr: Lr = None,
    epochs: Epochs = None,
    seed: Seed = None,
    device: Device = None,
    log_every: LogEvery = None,
    set_: Set = None,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", help="Run directory to write (default: outputs/run<N>, the next free N)."),
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Replace the run already in --out (never other files).")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the run directory.")] = False,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Skip drawing loss.png and fit.png.")] = False,
) -> None:
    """Train the experiment a config describes and write a run directory.

    Example: bpcli train configs/exp2.yaml --lr 0.05 --epochs 500 --out outputs/fast
    """
    from rich.console import Console

    from bpcli.config import load_config
    from bpcli.console import ConsoleObserver, print_result
    from bpcli.errors import RunFailed
    from bpcli.training import train as run

    cfg = load_config(config, _overrides(lr, epochs, seed, device, log_every, set_))
    console = Console(highlight=False)
    observer = None if quiet else ConsoleObserver(console, f"Training {cfg.kind} ({config})")
    try:
        result = run(cfg, out, force=force, plots=not no_plots, observer=observer, config_file=str(config))
    except KeyboardInterrupt:
        if observer is not None:
            observer.close()
        sys.stderr.write("run interrupted; what was logged so far is kept in the run directory\n")
        raise
    finally:
        if observer is not None:
            observer.close()
    if quiet:
        typer.echo(str(result.run_dir))
    else:
        print_result(console, result.summary, result.run_dir)
    if result.status == "diverged":
        raise RunFailed(
            f"the loss became {result.final_loss} at step {result.steps}: training diverged; "
            f"try a smaller learning rate than {cfg.train.lr} (--lr)"
        )


@app.command("config")
def show_config(
    config: ConfigArg,
    lr: Lr = None,
    epochs: Epochs = None,
    seed: Seed = None,
    device: Device = None,
    log_every: LogEvery = None,
    set_: Set = None,
) -> None:
    """Print the resolved config (defaults filled in, overrides applied) without training."""
    from bpcli.config import dump_config, load_config

    cfg = load_config(config, _overrides(lr, epochs, seed, device, log_every, set_))
    typer.echo(dump_config(cfg), nl=False)
