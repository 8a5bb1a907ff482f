"""torch.optim.lr_scheduler.ExponentialLR: the lr is multiplied by γ after every update.

    lr_k = lr · γ^k      (gamma null: the γ that takes lr to lr_end over the run, (lr_end/lr)^(1/updates))
"""

from __future__ import annotations

from typing import Any


def gamma(s: Any, base: float, span: int) -> float:
    return s.gamma if s.gamma is not None else (s.lr_end / base) ** (1 / span)


class Exponential:
    name = "exponential"
    words = "exponential decay"
    uses = ("gamma", "lr_end")

    def refuse(self, s: Any) -> str | None:
        if s.gamma is None and s.lr_end <= 0:
            return ("train.schedule exponential needs train.gamma (e.g. 0.999) or train.lr_end above 0, which it "
                    "then reaches at the end of the run")
        return None

    def lr(self, k: Any, base: Any, s: Any, span: int) -> Any:
        import torch

        if s.gamma is None:  # one γ per member when each has its own lr
            return base * torch.pow(torch.as_tensor(s.lr_end / base, dtype=k.dtype) ** (1 / span), k)
        return base * torch.pow(torch.as_tensor(s.gamma, dtype=k.dtype), k)  # lr·γ^k


    def torch_scheduler(self, optimizer: Any, s: Any, span: int) -> Any:
        import torch

        base = optimizer.param_groups[0]["lr"]
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma(s, float(base), span))

    def describe(self, s: Any, span: int) -> str:
        return f"× {s.gamma:g} every update" if s.gamma is not None else f"to {s.lr_end:g}"


SCHEDULE = Exponential()
