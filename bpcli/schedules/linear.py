"""torch.optim.lr_scheduler.LinearLR from lr down to lr_end over the run's T updates.

    lr_k = lr + (lr_end − lr)·min(k, T)/T

micrograd's demo, lr = 1.0 − 0.9·k/100 over 100 updates, is `lr: 1.0, schedule: linear, lr_end: 0.1`.
"""

from __future__ import annotations

from typing import Any


class Linear:
    name = "linear"
    words = "linear decay"
    uses = ("lr_end",)

    def lr(self, k: Any, base: Any, s: Any, span: int) -> Any:
        import torch

        return base + (s.lr_end - base) * torch.clamp(k, max=span) / span


    def torch_scheduler(self, optimizer: Any, s: Any, span: int) -> Any:
        import torch

        base = float(optimizer.param_groups[0]["lr"])
        end = s.lr_end / base
        if end > 1:  # LinearLR only decays: a rising lr is the same line as a LambdaLR
            return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: 1 + (end - 1) * min(k, span) / span)
        return torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0, end_factor=end, total_iters=span)

    def describe(self, s: Any, span: int) -> str:
        return f"to {s.lr_end:g}"


SCHEDULE = Linear()
