"""Checkpoints: everything a run needs to continue bit for bit, written atomically.

checkpoint.pt holds the trainer's state (parameters, optimizer state), the step reached,
the random generator's state, and hashes of the config and the data, so that a
checkpoint is never applied to a run it does not belong to. It is read back with
`torch.load(weights_only=True)`: tensors and plain containers only, no code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch

from bpcli import schedules
from bpcli.config import Experiment
from bpcli.errors import RunDirError
from bpcli.rundir.files import bpcli_version, write_file

CHECKPOINT = "checkpoint.pt"
FORMAT = 1


def config_hash(config: Experiment) -> str:
    """A hash of everything in the config that shapes training, except the epoch count.

    The number of epochs is left out because resuming may extend it.
    """
    raw = config.model_dump(mode="json")
    raw["train"] = {k: v for k, v in raw["train"].items() if k != "epochs"}
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()


_BEFORE_THE_REGISTRY = {"momentum": 0.0, "nesterov": False, "weight_decay": 0.0, "betas": [0.9, 0.999], "eps": 1e-08}
"""The optimizer settings every train section listed, at these defaults, before the optimizer
registry and the lr schedules (checkpoints of that time hash them)."""


def _hash_before_the_registry(config: Experiment) -> str | None:
    """The config hash a checkpoint written before the optimizer registry holds for this config,
    when the config uses nothing added since (so such runs still resume); None otherwise."""
    raw = config.model_dump(mode="json")
    train = raw["train"]
    added = {"schedule": schedules.DEFAULT, "warmup": 0, "lr_end": 0.0, "gamma": None, "step_size": None, "threads": None}
    if any(train.get(key, value) != value for key, value in added.items()):
        return None
    since = set(train) - set(_TRAIN_FIELDS_BEFORE) - set(added) - {"epochs"}  # settings of rules added since
    if any(train[key] not in (None, 0.0, False) for key in since):
        return None
    old = {key: value for key, value in train.items() if key in _TRAIN_FIELDS_BEFORE}
    raw["train"] = {**old, **{key: value for key, value in _BEFORE_THE_REGISTRY.items() if old.get(key) is None}}
    return hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()


_TRAIN_FIELDS_BEFORE = ("lr", "log_every", "optimizer", "momentum", "nesterov", "weight_decay", "betas", "eps",
                        "batch_size", "shuffle", "grad", "engine", "diverge_factor", "check_grad_every",
                        "checkpoint_every")


def data_hash(x: torch.Tensor, y: torch.Tensor) -> str:
    """A hash of the training data's exact bytes."""
    digest = hashlib.sha256()
    for t in (x, y):
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_checkpoint(
    run_dir: Path,
    *,
    step: int,
    trainer_state: dict[str, Any],
    generator: torch.Generator,
    config: Experiment,
    data_digest: str,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write checkpoint.pt (through a temporary file and a rename); return its path. `extra`
    holds what else the loop's callbacks keep (the divergence rule's state, a sweep's losses)."""
    payload = {
        **(extra or {}),
        "format": FORMAT,
        "step": step,
        "trainer": trainer_state,
        "generator_state": generator.get_state(),
        "config_hash": config_hash(config),
        "data_hash": data_digest,
        "bpcli_version": bpcli_version(),
        "torch_version": str(torch.__version__),  # a plain str: weights_only loads only those
    }
    return write_file(run_dir / CHECKPOINT, lambda fh: torch.save(payload, fh))


def load_checkpoint(run_dir: Path, device: torch.device) -> dict[str, Any]:
    """Read checkpoint.pt; a RunDirError says why it cannot be used."""
    path = run_dir / CHECKPOINT
    if not path.is_file():
        raise RunDirError(
            f"{path}: no checkpoint, so the run cannot be resumed; train it again "
            "(set train.checkpoint_every to checkpoint long runs as they go)"
        )
    try:
        payload = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # torch reports a damaged file in many ways
        raise RunDirError(
            f"{path}: corrupt or truncated ({type(exc).__name__}); it cannot be resumed from"
        ) from None
    expected = {"format", "step", "trainer", "generator_state", "config_hash", "data_hash"}
    if not isinstance(payload, dict) or not expected <= payload.keys() or payload["format"] != FORMAT:
        raise RunDirError(f"{path}: not a bpcli checkpoint (or from an incompatible version)")
    if not isinstance(payload["step"], int) or payload["step"] < 0:
        raise RunDirError(f"{path}: corrupt (bad step)")
    return payload


def check_belongs(payload: dict[str, Any], config: Experiment, data_digest: str, path: Path) -> None:
    """Refuse a checkpoint written for another config or other data."""
    if payload["config_hash"] not in (config_hash(config), _hash_before_the_registry(config)):
        raise RunDirError(
            f"{path}: was written for a different config than config.yaml beside it; "
            "restore the original config.yaml, or start a new run"
        )
    if payload["data_hash"] != data_digest:
        if getattr(config.data, "source", None) == "csv":  # the file is read anew on resume: it was changed
            raise RunDirError(
                f"{path}: the data file {config.data.path} has changed since this checkpoint was written (its "
                "rows no longer match the run's); restore that file, or train a new run on the new data"
            )
        raise RunDirError(
            f"{path}: the data drawn from config.yaml differ from the checkpointed run's "
            f"(torch {payload.get('torch_version')} wrote it); resume with that torch version"
        )
