"""torch.optim.lr_scheduler.CosineAnnealingLR with T_max = the run's updates and eta_min = lr_end.

    lr_k = lr_end + (lr − lr_end)·(1 + cos(π·k/T))/2
"""

from __future__ import annotations

import math
from typing import Any


class Cosine:
    name = "cosine"
    words = "cosine annealing"
    uses = ("lr_end",)

    def lr(self, k: Any, base: Any, s: Any, span: int) -> Any:
        import torch

        return s.lr_end + (base - s.lr_end) * (1 + torch.cos(math.pi * k / span)) / 2


    def torch_scheduler(self, optimizer: Any, s: Any, span: int) -> Any:
        import torch

        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=span, eta_min=s.lr_end)

    def describe(self, s: Any, span: int) -> str:
        return f"to {s.lr_end:g}"


SCHEDULE = Cosine()
