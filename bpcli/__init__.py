"""bpcli: run, see and speed up back-propagation experiments.

The Python API mirrors the CLI:

    from bpcli import load_config, train
    result = train(load_config("configs/exp2.yaml"), out="outputs/notebook")

Importing bpcli is cheap; torch is imported on the first call to `train`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from bpcli.config import ExperimentConfig, Override
    from bpcli.training import TrainResult


def load_config(path: Any, overrides: "list[Override] | None" = None) -> "ExperimentConfig":
    """Read and validate a YAML config, with optional overrides (see bpcli.config)."""
    from bpcli.config import load_config as _load

    return _load(path, overrides)


def train(config: "ExperimentConfig", out: Any = None, **options: Any) -> "TrainResult":
    """Train a validated config and write its run directory (see bpcli.training.train)."""
    from bpcli.training import train as _train

    return _train(config, out, **options)


__all__ = ["__version__", "load_config", "train"]
