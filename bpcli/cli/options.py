"""Options shared by several commands, declared once as typed aliases, and their helpers."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from bpcli.optimizers import OPTIMIZERS


def main_process() -> bool:
    """False on the non-zero ranks of a torchrun job, which train but print nothing."""
    return int(os.environ.get("RANK", "0")) == 0


def complete_configs(incomplete: str) -> list[str]:
    """Shell completion for config arguments: YAML files under what has been typed so far."""
    folder = Path(incomplete).parent if incomplete and not incomplete.endswith("/") else Path(incomplete or ".")
    try:
        candidates = [p for p in folder.iterdir() if p.is_dir() or p.suffix in (".yaml", ".yml")]
    except OSError:
        return []
    names = [str(p) + ("/" if p.is_dir() else "") for p in sorted(candidates)]
    names = [n[2:] if n.startswith("./") and not incomplete.startswith("./") else n for n in names]
    return [n for n in names if n.startswith(incomplete)]


def complete_runs(incomplete: str) -> list[str]:
    """Shell completion for run-directory arguments: folders holding a config.yaml."""
    roots = [Path("outputs"), Path(".")]
    found = {str(p.parent) for root in roots if root.is_dir() for p in root.glob("*/config.yaml")}
    return sorted(n for n in found if n.startswith(incomplete))


ConfigArg = Annotated[
    Path,
    typer.Argument(metavar="CONFIG", help="YAML experiment config, e.g. configs/exp2.yaml.", show_default=False,
                   autocompletion=complete_configs),
]
OptionalConfigArg = Annotated[
    Optional[Path],
    typer.Argument(metavar="CONFIG", help="YAML experiment config, e.g. configs/exp2.yaml (or see the options).",
                   show_default=False, autocompletion=complete_configs),
]
RunDirArg = Annotated[
    Path,
    typer.Argument(metavar="RUN_DIR", help="A run directory written by `bpcli train`, e.g. outputs/run1.",
                   show_default=False, autocompletion=complete_runs),
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
Momentum = Annotated[
    Optional[float],
    typer.Option("--momentum", help="Heavy-ball momentum, 0 ≤ μ < 1, of a rule that has it (train.momentum).",
                 show_default=False),
]
BatchSize = Annotated[
    Optional[int],
    typer.Option("--batch-size", help="Samples per update: 1 per-sample, N full batch, between: mini-batches, "
                 "shuffled each epoch (train.batch_size).", show_default=False),
]
Threads = Annotated[
    Optional[int],
    typer.Option("--threads", help="CPU threads for torch (train.threads; default: one for a small problem, "
                 "or OMP_NUM_THREADS when set).", show_default=False),
]
LogEvery = Annotated[
    Optional[int],
    typer.Option("--log-every", help="Record a row of metrics.csv every N steps (train.log_every).",
                 show_default=False),
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


class EngineChoice(str, Enum):
    auto = "auto"
    eager = "eager"
    graph = "graph"


class GradChoice(str, Enum):
    autograd = "autograd"
    manual = "manual"


OptimizerChoice = Enum("OptimizerChoice", {name: name for name in OPTIMIZERS}, type=str)  # type: ignore[misc]
"""The registry's rules (bpcli.optimizers.OPTIMIZERS)."""


Optimizer = Annotated[
    Optional[OptimizerChoice],
    typer.Option("--optimizer", help="The update rule, with torch.optim's meaning and settings (train.optimizer; "
                 "its settings with --set, e.g. --set train.betas=[0.9,0.99]; see docs/optimizers.md).",
                 show_default=False),
]
Engine = Annotated[
    Optional[EngineChoice],
    typer.Option("--engine", help="How steps run: eager, replayed CUDA graphs, or auto: graph on CUDA "
                                  "(train.engine).", show_default=False),
]
Grad = Annotated[
    Optional[GradChoice],
    typer.Option("--grad", help="Gradients by autograd or by the hand-derived formulas (train.grad).",
                 show_default=False),
]
def out_path(value: str) -> Path:
    """An --out value, refused in one line if it cannot name a new file or directory (empty,
    or a name longer than a file system allows): see bpcli.rundir.files.check_out."""
    from bpcli.rundir.files import check_out

    return check_out(value)


OutPath = out_path
"""The parser every --out option uses."""

Out = Annotated[
    Optional[Path],
    typer.Option("--out", parser=out_path, metavar="DIR",
                 help="Run directory to write (default: outputs/run<N>, the next free N)."),
]
Force = Annotated[bool, typer.Option("--force", help="Replace the run already in --out (never other files).")]
