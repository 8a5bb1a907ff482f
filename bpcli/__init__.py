"""bpcli: run, see and speed up back-propagation experiments.

The Python API mirrors the CLI:

    from bpcli import load_config, train
    result = train(load_config("configs/exp2.yaml"), out="outputs/notebook")

Importing bpcli is cheap; torch is imported on the first call to `train`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bpcli.config import Experiment, Override
    from bpcli.lifecycle import TrainResult


def load_config(path: Any, overrides: list[Override] | None = None) -> Experiment:
    """Read and validate a YAML config, with optional overrides (see bpcli.config)."""
    from bpcli.config import load_config as load

    return load(path, overrides)


def train(config: Experiment, out: Any = None, **options: Any) -> TrainResult:
    """Train a validated config and write its run directory (see bpcli.lifecycle.train)."""
    from bpcli.lifecycle import train as run

    return run(config, out, **options)


def __getattr__(name: str) -> Any:
    # bpcli.__version__, from the package metadata, read when asked for: importing
    # importlib.metadata costs every command's start a tenth of a second.
    if name == "__version__":
        from bpcli.rundir.files import bpcli_version

        return bpcli_version()
    raise AttributeError(f"module 'bpcli' has no attribute {name!r}")


__all__ = ["__version__", "load_config", "train"]
