"""A config built into tensors, before anything is trained: the device, the generator, the
data and the trainer; whether the data fit in memory; torch's CPU threads for the problem;
and, under torchrun, this process's place in the job.

A run, each member of a sweep, `bpcli check`, `explain` and `export` start here.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

import torch

from bpcli import distributed, threads
from bpcli.config import Experiment
from bpcli.data import make_dataset
from bpcli.data.dataset import Dataset
from bpcli.devices import resolve_device
from bpcli.errors import DataError
from bpcli.kinds import KINDS, Trainer

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass
class Built:
    """A config turned into tensors: the device, the generator, the data and the trainer."""

    config: Experiment
    device: torch.device
    generator: torch.Generator
    data: Dataset
    trainer: Trainer
    group: Any = None
    """This process's place in a torchrun job, if it is one."""

    @property
    def writes(self) -> bool:
        """Whether this process writes and reports (not the other ranks of a torchrun job)."""
        return self.group is None or self.group.rank == 0


def memory_needed(config: Experiment) -> int:
    """A rough upper estimate, in bytes, of what one run's data and activations take."""
    samples = getattr(config.data, "n", None) or len(getattr(config.data, "x", None) or [])
    itemsize = DTYPES[config.dtype].itemsize
    # x and y, with room for the temporaries of drawing them and moving them to the device;
    # an MLP also keeps each layer's input and pre-activation, and their gradients.
    widths = sum(getattr(config.model, "hidden", None) or [])
    return samples * itemsize * (4 * 2 + 4 * widths)


def use_threads(config: Experiment, members: int = 1) -> dict[str, Any]:
    """Set torch's CPU threads for this problem (see bpcli.threads); what summary.json records."""
    numbers = members * memory_needed(config) // DTYPES[config.dtype].itemsize
    return threads.use(config.train.threads, numbers)


def check_memory(config: Experiment, device: torch.device, members: int = 1) -> None:
    """Refuse, before anything is drawn, data that cannot fit where they would be trained."""
    needed = members * memory_needed(config)
    available = _available_memory(device)
    if available is None or needed <= available:
        return
    who = f" for {members:,} members" if members > 1 else ""
    raise DataError(f"the data need about {needed / 2**30:.1f} GiB of memory{who} and {device} has "
                    f"{available / 2**30:.1f} GiB available; use fewer samples (data.n)"
                    + (" or fewer members" if members > 1 else ""))


def _available_memory(device: torch.device) -> int | None:
    """Free memory on the device (for the CPU, what Linux reports as available), if known."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            fields = dict(line.split(":", 1) for line in fh)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None


def build(config: Experiment, device: torch.device | None = None, join: bool = False) -> Built:
    """Turn a config into its device, generator, data and trainer, without training.

    On the config's device, or on `device` when given (a sweep builds its members on the
    CPU and moves them together); with `join`, as one process of a torchrun job.
    """
    device = resolve_device(config.device) if device is None else device
    group = None
    if join:
        group, device = distributed.join(device)
    check_memory(config, device)
    generator = torch.Generator().manual_seed(config.seed)
    data = make_dataset(config.data, generator, DTYPES[config.dtype], classify=config.classifies)
    trainer_class = KINDS[config.kind].trainer
    if group is None:
        return Built(config, device, generator, data, trainer_class(config, data, device, generator))
    # Every rank drew the whole data (and draws the same parameters next); each trains
    # on its own rows.
    part, group = distributed.shard(data, group)
    trainer = trainer_class(config, part, device, generator)
    trainer.distribute(group)
    return Built(config, device, generator, data, trainer, group)


@contextlib.contextmanager
def membership(built: Built) -> Iterator[None]:
    """Leave the torchrun job (if this is one) when training ends, cleanly or not."""
    if built.group is None:
        yield
        return
    try:
        yield
    except BaseException:
        distributed.leave(clean=False)
        raise
    distributed.leave()
