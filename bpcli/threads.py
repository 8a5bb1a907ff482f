"""How many CPU threads torch uses for a run: one for small problems.

A step of bpcli's small models is a handful of tiny kernels. OpenMP's worker threads spin
while they wait, so on a machine where another process uses a core, a small MLP with the
default thread count ran about eight times slower than with one thread (and no faster on
an idle machine). Small problems therefore run on one thread; large ones (big sweeps,
big data) keep torch's default. `--threads N` (train.threads) chooses, and so does
OMP_NUM_THREADS when it is set.
"""

from __future__ import annotations

import os

import torch

SMALL = 1 << 20
"""Numbers a step touches (data and activations, all members) below which one thread is used."""

DEFAULT = torch.get_num_threads()
"""torch's own count (the physical cores, or OMP_NUM_THREADS), read before bpcli changes it."""


def choose(requested: int | None, numbers: int) -> tuple[int, str]:
    """The thread count for a problem of `numbers` numbers, and why."""
    if requested is not None:
        return requested, "train.threads"
    env = os.environ.get("OMP_NUM_THREADS", "").strip()
    if env.isdigit() and int(env) > 0:
        return int(env), "OMP_NUM_THREADS"
    if numbers < SMALL:
        return 1, "small problem"
    return DEFAULT, "torch's default"


def use(requested: int | None, numbers: int) -> dict[str, int | str]:
    """Set torch's thread count for this problem; what summary.json records of it."""
    count, why = choose(requested, numbers)
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    return {"threads": count, "threads_chosen_by": why}
