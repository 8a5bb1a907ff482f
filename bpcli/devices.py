"""Choosing the torch device a run trains on."""

from __future__ import annotations

import torch

from bpcli.errors import DeviceError


def resolve_device(name: str) -> torch.device:
    """The torch.device for a config's `device` value; a DeviceError if it is not here."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' is not available on this machine; use --device cpu or auto")
        return torch.device("mps")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            why = "this torch build has no CUDA" if torch.version.cuda is None else "no CUDA GPU is visible"
            raise DeviceError(f"device {name!r} is not available ({why}); use --device cpu or auto")
        index = int(name.partition(":")[2] or torch.cuda.current_device())  # under torchrun: this rank's
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(
                f"device {name!r} does not exist: this machine has {count} CUDA device(s), "
                f"cuda:0 to cuda:{count - 1}"
            )
        return torch.device("cuda", index)
    raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())
