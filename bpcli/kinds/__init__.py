"""The experiment kinds. Each is one file (its config class, its trainer, its formulas)
and one line of the registry below.

To add a kind: write `bpcli/kinds/<name>.py` with a config class (a subclass of
bpcli.config.Experiment with a `model` section and DEFAULTS), a Trainer (see
bpcli.kinds.base; subclassing HandWrittenSGD gives the update, batching for sweeps and
checkpoints), and `KIND = Kind(name, config, trainer)`; then add `<name>.KIND` below.
A kind can also be registered at run time with `register` (from a notebook or a test).
"""

from __future__ import annotations

from bpcli.kinds import linear_gd, logistic, mlp, nn_linear, scalar_sgd, softmax
from bpcli.kinds.base import Kind, LeastSquares, Trainer

# The registry: every experiment kind by name, in the order the docs list them.
KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        scalar_sgd.KIND,
        linear_gd.KIND,
        nn_linear.KIND,
        mlp.KIND,
        logistic.KIND,
        softmax.KIND,
    )
}


def register(kind: Kind) -> None:
    """Add a kind to the registry (configs naming it then validate, train, sweep, …)."""
    KINDS[kind.name] = kind


def unregister(name: str) -> None:
    """Remove a kind added by `register`."""
    KINDS.pop(name, None)


__all__ = ["KINDS", "Kind", "LeastSquares", "Trainer", "register", "unregister"]
