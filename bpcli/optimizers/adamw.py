"""torch.optim.AdamW by hand: Adam with the weight decay taken out of the gradient.

With λ the weight decay, per parameter p, before Adam's step on the plain gradient g:

    p ← p·(1 − lr·λ)
    then Adam: m ← β₁·m + (1 − β₁)·g, v ← β₂·v + (1 − β₂)·g², p ← p − (lr/(1 − β₁ᵗ))·m/(√v̂/√(1 − β₂ᵗ) + ε)
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from bpcli.optimizers import adam
from bpcli.optimizers.base import Stability, adaptive
from bpcli.section import Section


class Settings(Section):
    """torch.optim.AdamW's settings besides lr (its weight decay defaults to 0.01)."""

    betas: list[adam.Beta] = Field(default_factory=lambda: [0.9, 0.999], min_length=2, max_length=2)
    """Decay rates [β1, β2] of the running averages of g and g²."""
    eps: float = Field(1e-8, gt=0.0)
    """Added to the denominator, for numerical stability."""
    weight_decay: float = Field(0.01, ge=0.0)
    """Decoupled weight decay λ: p ← p·(1 − lr·λ) before the step."""
    amsgrad: bool = False
    """Divide by the largest v seen so far rather than the current one (AMSGrad)."""


class AdamW:
    name = "adamw"
    words = "AdamW (Adam with decoupled weight decay)"
    torch_name = "AdamW"
    Settings = Settings

    def knobs(self, s: Settings) -> dict[str, float | bool]:
        return adam.knobs(s)

    def counts_steps(self, s: Settings) -> bool:
        return False  # it keeps β₁ᵗ and β₂ᵗ itself

    def plain(self, s: Settings) -> bool:
        return False

    def slots(self, p: Any, s: Any) -> dict[str, Any]:
        return adam.slots(p, s)

    def step(self, p: Any, g: Any, state: dict[str, Any], lr: Any, s: Any, t: Any) -> None:
        if s.on("weight_decay"):
            p.mul_(1 - lr * s.weight_decay)  # p ← p·(1 − lr·λ)
        adam.moments_step(p, g, state, lr, s, t)

    def torch_optimizer(self, params: Any, lr: Any, s: Settings, capturable: bool) -> Any:
        import torch

        return torch.optim.AdamW(params, lr=lr, betas=tuple(s.betas), eps=s.eps, weight_decay=s.weight_decay,
                                 amsgrad=s.amsgrad, capturable=capturable)

    def describe(self, s: Settings) -> str:
        extras = [f"betas {s.betas[0]:g}, {s.betas[1]:g}"] if list(s.betas) != Settings().betas else []
        extras += ["amsgrad"] if s.amsgrad else []
        extras += [f"weight decay {s.weight_decay:g}"] if s.weight_decay != Settings().weight_decay else []
        return ", ".join(extras)

    def formula(self, s: Settings, g: str) -> str:
        b1, b2 = s.betas
        decay = f"θ ← θ·(1 − lr·{s.weight_decay:g}); " if s.weight_decay else ""
        return (f"adamw: {decay}m ← {b1:g}·m + {1 - b1:g}·{g}, v ← {b2:g}·v + {1 - b2:g}·({g})², "
                f"θ ← θ − lr·m̂/(√v̂ + {s.eps:g}) with m̂, v̂ corrected for their start at 0")

    def stability(self, s: Settings) -> Stability:
        return adaptive("AdamW")

    def linear(self, s: Settings) -> bool:
        # Adam's step divides each coordinate by its own √v̂ (see adam.Adam.linear), and the
        # decoupled decay p·(1 − lr·λ) shrinks a sum towards 0 besides.
        return False

    unexported = ("amsgrad",)

    def export_setup(self, lr: float, s: Settings) -> list[str]:
        lines = adam.export_setup(lr, s.model_copy(update={"weight_decay": 0.0}))  # Adam's, without L2
        if s.weight_decay:
            lines.append(f"weight_decay = {s.weight_decay!r}  # λ, decoupled from the gradient")
        return lines

    def export_update(self, s: Settings, fast: bool) -> list[str]:
        update = adam.export_update(s.model_copy(update={"weight_decay": 0.0}))  # Adam's step on the plain g
        if s.weight_decay:
            return ["p.mul_(1 - lr * weight_decay)  # decoupled weight decay: p ← p·(1 − lr·λ)", *update]
        return update

    def export_optim(self, lr: float, s: Settings) -> str:
        beta1, beta2 = s.betas
        return (f"torch.optim.AdamW(model.parameters(), lr={lr!r}, betas=({beta1!r}, {beta2!r}), eps={s.eps!r}, "
                f"weight_decay={s.weight_decay!r})")


RULE = AdamW()
