"""torch.optim.RMSprop by hand: steps divided by a running root mean square of the gradient.

With g the gradient, λ the weight decay, α the smoothing constant and μ the momentum, per p:

    g ← g + λ·p
    v ← α·v + (1 − α)·g²
    centered:  a ← α·a + (1 − α)·g,  s = √(v − a²) + ε;   otherwise s = √v + ε
    momentum:  b ← μ·b + g/s,  p ← p − lr·b;              otherwise p ← p − lr·g/s
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from bpcli.optimizers.base import Stability, adaptive, export_decay, pick
from bpcli.section import Section


class Settings(Section):
    """torch.optim.RMSprop's settings besides lr."""

    alpha: float = Field(0.99, ge=0.0, lt=1.0)
    """Smoothing constant α of the running average of g²."""
    eps: float = Field(1e-8, gt=0.0)
    """Added to the denominator, for numerical stability."""
    weight_decay: float = Field(0.0, ge=0.0)
    """L2 penalty λ added to every gradient as g + λ·p."""
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    """Heavy-ball momentum μ: the velocity v ← μ·v + g replaces g in the update."""
    centered: bool = False
    """Divide by an estimate of the gradient's standard deviation (g² averaged minus the average g, squared)."""


class RMSprop:
    name = "rmsprop"
    words = "RMSprop (steps divided by the gradient's running root mean square)"
    torch_name = "RMSprop"
    Settings = Settings

    def knobs(self, s: Settings) -> dict[str, float | bool]:
        return s.model_dump()

    def counts_steps(self, s: Settings) -> bool:
        return False

    def plain(self, s: Settings) -> bool:
        return False

    def slots(self, p: Any, s: Any) -> dict[str, Any]:
        import torch

        state = {"square_avg": torch.zeros_like(p)}
        if s.on("centered"):
            state["grad_avg"] = torch.zeros_like(p)
        if s.on("momentum"):
            state["momentum_buffer"] = torch.zeros_like(p)
        return state

    def step(self, p: Any, g: Any, state: dict[str, Any], lr: Any, s: Any, t: Any) -> None:
        if s.on("weight_decay"):
            g = g + s.weight_decay * p  # g ← g + λ·p
        v = state["square_avg"]
        v.mul_(s.alpha).add_((1 - s.alpha) * (g * g))  # v ← α·v + (1 − α)·g²
        if "grad_avg" in state:
            a = state["grad_avg"]
            a.mul_(s.alpha).add_((1 - s.alpha) * g)  # a ← α·a + (1 − α)·g
            size = pick(s.centered, (v - a * a).sqrt(), v.sqrt()) + s.eps  # s = √(v − a²) + ε
        else:
            size = v.sqrt() + s.eps  # s = √v + ε
        if "momentum_buffer" in state:
            b = state["momentum_buffer"]
            b.mul_(s.momentum).add_(g / size)  # b ← μ·b + g/s (b stays g/s-only where μ = 0)
            p.sub_(lr * b)  # p ← p − lr·b
        else:
            p.sub_(lr * (g / size))  # p ← p − lr·g/s

    def torch_optimizer(self, params: Any, lr: Any, s: Settings, capturable: bool) -> Any:
        import torch

        return torch.optim.RMSprop(params, lr=lr, capturable=capturable, **s.model_dump())

    def describe(self, s: Settings) -> str:
        extras = [f"alpha {s.alpha:g}"] if s.alpha != Settings().alpha else []
        extras += [f"momentum {s.momentum:g}"] if s.momentum else []
        extras += ["centered"] if s.centered else []
        extras += [f"weight decay {s.weight_decay:g}"] if s.weight_decay else []
        return ", ".join(extras)

    def formula(self, s: Settings, g: str) -> str:
        decay = f"g = {g} + {s.weight_decay:g}·θ; " if s.weight_decay else ""
        g = "g" if decay else g
        size = f"√(v − a²) + {s.eps:g} with a ← {s.alpha:g}·a + {1 - s.alpha:g}·{g}" if s.centered else f"√v + {s.eps:g}"
        step = (f"b ← {s.momentum:g}·b + {g}/s, θ ← θ − lr·b" if s.momentum else f"θ ← θ − lr·{g}/s")
        return f"rmsprop: {decay}v ← {s.alpha:g}·v + {1 - s.alpha:g}·({g})², s = {size}, {step}"

    def stability(self, s: Settings) -> Stability:
        return adaptive("RMSprop")

    def linear(self, s: Settings) -> bool:
        # g/(√v + ε) divides each coordinate by its own running root mean square: gradients
        # summing to zero give steps that need not.
        return False

    unexported = ()

    def export_setup(self, lr: float, s: Settings) -> list[str]:
        lines = [f"lr, alpha, eps = {lr!r}, {s.alpha!r}, {s.eps!r}",
                 *([f"weight_decay = {s.weight_decay!r}  # λ"] if s.weight_decay else []),
                 "square_avg = {name: torch.zeros_like(p) for name, p in params.items()}  # v, the mean of g²"]
        if s.centered:
            lines.append("grad_avg = {name: torch.zeros_like(p) for name, p in params.items()}  # a, the mean of g")
        if s.momentum:
            lines += [f"momentum = {s.momentum!r}  # μ",
                      "buffer = {name: torch.zeros_like(p) for name, p in params.items()}"]
        return lines

    def export_update(self, s: Settings, fast: bool) -> list[str]:
        lines = [*export_decay(s), "sq = square_avg[name]",
                 "sq.mul_(alpha).add_((1 - alpha) * (g * g))  # v ← α·v + (1 − α)·g²"]
        if s.centered:
            lines += ["a = grad_avg[name]", "a.mul_(alpha).add_((1 - alpha) * g)  # a ← α·a + (1 − α)·g",
                      "size = (sq - a * a).sqrt() + eps  # s = √(v − a²) + ε"]
        else:
            lines.append("size = sq.sqrt() + eps  # s = √v + ε")
        if s.momentum:
            return lines + ["b = buffer[name]", "b.mul_(momentum).add_(g / size)  # b ← μ·b + g/s",
                            "p.sub_(lr * b)  # p ← p − lr·b"]
        return lines + ["p.sub_(lr * (g / size))  # p ← p − lr·g/s"]

    def export_optim(self, lr: float, s: Settings) -> str:
        return (f"torch.optim.RMSprop(model.parameters(), lr={lr!r}, alpha={s.alpha!r}, eps={s.eps!r}, "
                f"weight_decay={s.weight_decay!r}, momentum={s.momentum!r}, centered={s.centered!r})")


RULE = RMSprop()
