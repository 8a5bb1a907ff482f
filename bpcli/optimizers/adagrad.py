"""torch.optim.Adagrad by hand: steps divided by the root of the summed squared gradients.

With g the gradient, λ the weight decay and t the step count, per parameter p:

    g ← g + λ·p
    η = lr / (1 + (t − 1)·lr_decay)
    S ← S + g²                     (S starts at initial_accumulator_value)
    p ← p − η·g / (√S + ε)
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from bpcli.optimizers.base import Stability, adaptive, export_decay, over
from bpcli.section import Section


class Settings(Section):
    """torch.optim.Adagrad's settings besides lr."""

    lr_decay: float = Field(0.0, ge=0.0)
    """The lr of step t is lr / (1 + (t − 1)·lr_decay)."""
    weight_decay: float = Field(0.0, ge=0.0)
    """L2 penalty λ added to every gradient as g + λ·p."""
    initial_accumulator_value: float = Field(0.0, ge=0.0)
    """The starting value of the sum of squared gradients."""
    eps: float = Field(1e-10, ge=0.0)
    """Added to the denominator, for numerical stability."""


class Adagrad:
    name = "adagrad"
    words = "Adagrad (steps divided by the root of the summed squared gradients)"
    torch_name = "Adagrad"
    Settings = Settings

    def knobs(self, s: Settings) -> dict[str, float | bool]:
        return s.model_dump()

    def counts_steps(self, s: Settings) -> bool:
        return True

    def plain(self, s: Settings) -> bool:
        return False

    def slots(self, p: Any, s: Any) -> dict[str, Any]:
        import torch

        return {"sum": torch.zeros_like(p) + s.initial_accumulator_value}

    def step(self, p: Any, g: Any, state: dict[str, Any], lr: Any, s: Any, t: Any) -> None:
        if s.on("weight_decay"):
            g = g + s.weight_decay * p  # g ← g + λ·p
        if s.on("lr_decay"):
            lr = over(lr, 1 + (t - 1) * s.lr_decay).to(p.dtype)  # η = lr / (1 + (t − 1)·lr_decay)
        total = state["sum"]
        total.add_(g * g)  # S ← S + g²
        p.sub_(lr * (g / (total.sqrt() + s.eps)))  # p ← p − η·g/(√S + ε)

    def torch_optimizer(self, params: Any, lr: Any, s: Settings, capturable: bool) -> Any:
        import torch

        return torch.optim.Adagrad(params, lr=lr, **s.model_dump())

    def describe(self, s: Settings) -> str:
        extras = [f"lr decay {s.lr_decay:g}"] if s.lr_decay else []
        extras += [f"initial accumulator {s.initial_accumulator_value:g}"] if s.initial_accumulator_value else []
        extras += [f"weight decay {s.weight_decay:g}"] if s.weight_decay else []
        return ", ".join(extras)

    def formula(self, s: Settings, g: str) -> str:
        decay = f"g = {g} + {s.weight_decay:g}·θ; " if s.weight_decay else ""
        g = "g" if decay else g
        rate = f"lr/(1 + (t − 1)·{s.lr_decay:g})" if s.lr_decay else "lr"
        return f"adagrad: {decay}S ← S + ({g})², θ ← θ − {rate}·{g}/(√S + {s.eps:g})"

    def stability(self, s: Settings) -> Stability:
        return adaptive("Adagrad")

    def linear(self, s: Settings) -> bool:
        # g/(√S + ε) divides each coordinate by the root of its own summed squared gradients:
        # gradients summing to zero give steps that need not.
        return False

    unexported = ("lr_decay",)

    def export_setup(self, lr: float, s: Settings) -> list[str]:
        return [f"lr, eps = {lr!r}, {s.eps!r}",
                *([f"weight_decay = {s.weight_decay!r}  # λ"] if s.weight_decay else []),
                f"total = {{name: torch.zeros_like(p) + {s.initial_accumulator_value!r} for name, p in params.items()}}"
                "  # S, the sum of g²"]

    def export_update(self, s: Settings, fast: bool) -> list[str]:
        return [*export_decay(s), "total[name].add_(g * g)  # S ← S + g²",
                "p.sub_(lr * (g / (total[name].sqrt() + eps)))  # p ← p − lr·g/(√S + ε)"]

    def export_optim(self, lr: float, s: Settings) -> str:
        return (f"torch.optim.Adagrad(model.parameters(), lr={lr!r}, eps={s.eps!r}, "
                f"weight_decay={s.weight_decay!r}, initial_accumulator_value={s.initial_accumulator_value!r})")


RULE = Adagrad()
