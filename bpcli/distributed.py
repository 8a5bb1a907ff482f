"""Data-parallel training under torchrun, on PyTorch's own distributed stack.

Every process builds the whole dataset from the seed (so all draw the same data and the
same initial parameters), keeps its contiguous shard of the rows, and computes the
gradient of its shard's mean loss L_r. The full-batch loss is L = Σ_r (n_r/N)·L_r, so
its gradient is Σ_r (n_r/N)·∇L_r: each process weights its gradient by n_r/N and an
all-reduce adds them up. Shards of unequal size are therefore weighted exactly, and every
process applies the same update. Only rank 0 writes the run directory and prints.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Iterator

import torch
import torch.distributed as dist

from bpcli.data.dataset import Dataset
from bpcli.errors import DataError, RunFailed

TIMEOUT_SECONDS = int(os.environ.get("BPCLI_DIST_TIMEOUT", "120"))
"""How long a collective waits for the other processes before failing (no hang)."""


@contextlib.contextmanager
def collective() -> Iterator[None]:
    """Around communication with the other processes: when one of them has stopped (or
    does not answer in time), the collective fails here, and this says so in one line
    instead of the backend's own error."""
    try:
        yield
    except RuntimeError as exc:  # gloo and nccl raise RuntimeError or its subclass DistError
        raise RunFailed(
            "lost another process of this torchrun job: it stopped, or did not answer within "
            f"BPCLI_DIST_TIMEOUT={TIMEOUT_SECONDS} s; its own error says why"
        ) from exc


@dataclass
class Group:
    """This process's place in a torchrun job and its share of the data."""

    rank: int
    world: int
    weight: float = 1.0
    """n_r / N: this rank's share of the rows, the weight of its gradient."""

    def weighted_sum(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Σ_r (n_r/N)·t_r for each tensor, identical on every rank afterwards."""
        out = {}
        for name, t in tensors.items():
            total = t.detach() * self.weight
            with collective():
                dist.all_reduce(total, op=dist.ReduceOp.SUM)
            out[name] = total
        return out


def launched() -> bool:
    """Whether this process is one of several started by torchrun."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def join(device: torch.device) -> tuple[Group, torch.device]:
    """Join the torchrun job (gloo on CPU, nccl on CUDA); each CUDA rank takes its own GPU."""
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        with collective():  # a partner that stops while the job forms is a lost process too
            dist.init_process_group(backend, timeout=timedelta(seconds=TIMEOUT_SECONDS))
    return Group(dist.get_rank(), dist.get_world_size()), device


def leave(clean: bool = True) -> None:
    """Leave the job. After success every rank waits for the others first (rank 0 may still
    be writing): closing while another rank holds its connections can abort it in gloo.
    After a failure there is no waiting: torchrun ends the other ranks."""
    if dist.is_initialized():
        try:
            if clean:
                with collective():
                    dist.barrier()
        finally:
            dist.destroy_process_group()


def shard(data: Dataset, group: Group) -> tuple[Dataset, Group]:
    """This rank's contiguous slice of the training rows, and its weight n_r/N."""
    n = len(data.y)
    base, extra = divmod(n, group.world)
    sizes = [base + (1 if r < extra else 0) for r in range(group.world)]
    if min(sizes) == 0:
        raise DataError(
            f"the data has {n} training rows for {group.world} processes, so rank {sizes.index(0)} "
            "would get none; use fewer processes (--nproc-per-node) or more data"
        )
    start = sum(sizes[: group.rank])
    end = start + sizes[group.rank]
    part = replace(data, x=data.x[start:end], y=data.y[start:end])
    return part, replace(group, weight=sizes[group.rank] / n)


def gather(value: Any, group: Group) -> list[Any]:
    """Every rank's `value`, in rank order, on every rank."""
    values: list[Any] = [None] * group.world
    with collective():
        dist.all_gather_object(values, value)
    return values
