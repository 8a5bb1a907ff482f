"""The constant learning rate: lr at every update (the article's, and the default)."""

from __future__ import annotations

from typing import Any


class Constant:
    name = "constant"
    words = "constant"
    uses: tuple[str, ...] = ()

    def lr(self, k: Any, base: Any, s: Any, span: int) -> Any:
        return base + 0 * k  # lr_k = lr


    def torch_scheduler(self, optimizer: Any, s: Any, span: int) -> Any:
        import torch

        return torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)


SCHEDULE = Constant()
