"""Options shared by several commands, declared once as typed aliases, and their helpers."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from bpcli.flags import OVERRIDE_FLAGS
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


def override(flag: str) -> Any:
    """The option of a named override flag, its name and help from the one table
    (bpcli.flags.OVERRIDE_FLAGS); the alias below it gives its type."""
    return typer.Option(flag, help=OVERRIDE_FLAGS[flag].help, show_default=False)


# One alias per named flag, in the table's order; a command takes the ones it accepts and
# passes them to bpcli.config.from_flags under the same names.
Lr = Annotated[Optional[float], override("--lr")]
Epochs = Annotated[Optional[int], override("--epochs")]
Seed = Annotated[Optional[int], override("--seed")]
Device = Annotated[Optional[str], override("--device")]
LogEvery = Annotated[Optional[int], override("--log-every")]
Engine = Annotated[Optional[EngineChoice], override("--engine")]
Grad = Annotated[Optional[GradChoice], override("--grad")]
Optimizer = Annotated[Optional[OptimizerChoice], override("--optimizer")]
Momentum = Annotated[Optional[float], override("--momentum")]
BatchSize = Annotated[Optional[int], override("--batch-size")]
Threads = Annotated[Optional[int], override("--threads")]


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
