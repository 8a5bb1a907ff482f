"""torch.optim.lr_scheduler.StepLR: the lr falls by a factor γ every step_size updates.

    lr_k = lr · γ^⌊k / step_size⌋      (step_size null: a third of the run, so the lr falls twice)
"""

from __future__ import annotations

import math
from typing import Any


def step_size(s: Any, span: int) -> int:
    return s.step_size if s.step_size is not None else max(1, math.ceil(span / 3))


def gamma(s: Any) -> float:
    return s.gamma if s.gamma is not None else 0.1  # StepLR's default


class Step:
    name = "step"
    words = "step decay"
    uses = ("gamma", "step_size")

    def lr(self, k: Any, base: Any, s: Any, span: int) -> Any:
        import torch

        return base * gamma(s) ** torch.floor(k / step_size(s, span))  # lr·γ^⌊k/step_size⌋


    def torch_scheduler(self, optimizer: Any, s: Any, span: int) -> Any:
        import torch

        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size(s, span), gamma=gamma(s))

    def describe(self, s: Any, span: int) -> str:
        return f"× {gamma(s):g} every {step_size(s, span)} updates"


SCHEDULE = Step()
