"""Options shared by several commands, declared once as typed aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

ConfigArg = Annotated[
    Path,
    typer.Argument(help="YAML experiment config, e.g. configs/exp2.yaml.", show_default=False),
]
RunDirArg = Annotated[
    Path,
    typer.Argument(help="A run directory written by `bpcli train`, e.g. outputs/run1.", show_default=False),
]
Lr = Annotated[Optional[float], typer.Option("--lr", help="Learning rate (train.lr).", show_default=False)]
Epochs = Annotated[
    Optional[int], typer.Option("--epochs", help="Passes over the data (train.epochs).", show_default=False)
]
Seed = Annotated[
    Optional[int], typer.Option("--seed", help="Seed for data and initial parameters.", show_default=False)
]
Device = Annotated[
    Optional[str],
    typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.", show_default=False),
]
LogEvery = Annotated[
    Optional[int],
    typer.Option("--log-every", help="Record metrics every N steps (train.log_every).", show_default=False),
]
Set = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set",
        metavar="KEY=VALUE",
        help="Override any field: --set data.n=200 (value parsed as YAML). Repeatable.",
        show_default=False,
    ),
]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the run directory.")]
