"""The named override flags (--lr, --epochs, …), one row each: the config field a flag sets
and its line in --help. The command line's options (bpcli.cli.options) and the config's
overrides (bpcli.config.overrides.FLAGS) both read this table; it imports nothing, so that
`bpcli --help` never loads the config package (which loads torch)."""

from __future__ import annotations

from typing import NamedTuple


class Flag(NamedTuple):
    """What a named flag sets, and how --help describes it."""

    path: str
    """The config field it sets, dotted: train.lr."""
    help: str
    """Its description in --help."""


OVERRIDE_FLAGS: dict[str, Flag] = {
    "--lr": Flag("train.lr", "Learning rate (train.lr)."),
    "--epochs": Flag("train.epochs", "Passes over the data (train.epochs)."),
    "--seed": Flag("seed", "Seed for data and initial parameters."),
    "--device": Flag("device", "auto, cpu, cuda, cuda:N or mps."),
    "--log-every": Flag("train.log_every", "Record a row of metrics.csv every N steps (train.log_every)."),
    "--engine": Flag("train.engine", "How steps run: eager, replayed CUDA graphs, or auto: graph on CUDA "
                                     "(train.engine)."),
    "--grad": Flag("train.grad", "Gradients by autograd or by the hand-derived formulas (train.grad)."),
    "--optimizer": Flag("train.optimizer", "The update rule, with torch.optim's meaning and settings "
                                           "(train.optimizer; its settings with --set, e.g. --set "
                                           "train.betas=[0.9,0.99]; see docs/optimizers.md)."),
    "--momentum": Flag("train.momentum", "Heavy-ball momentum, 0 ≤ μ < 1, of a rule that has it (train.momentum)."),
    "--batch-size": Flag("train.batch_size", "Samples per update: 1 per-sample, N full batch, between: "
                                             "mini-batches, shuffled each epoch (train.batch_size)."),
    "--threads": Flag("train.threads", "CPU threads for torch (train.threads; default: one for a small problem, "
                                       "or OMP_NUM_THREADS when set)."),
}
"""Every named flag, by its name on the command line. A command takes one as a parameter
named like the flag (--log-every: log_every), typed by its alias in bpcli.cli.options, and
passes it to bpcli.config.from_flags; named flags win over --set."""


def keyword(flag: str) -> str:
    """The parameter name of a flag: --log-every → log_every."""
    return flag.removeprefix("--").replace("-", "_")
