"""torch.optim.Adam by hand: steps scaled by running averages of the gradient and its square.

With g the gradient, λ the weight decay and t the step count, per parameter p:

    g ← g + λ·p
    m ← β₁·m + (1 − β₁)·g          v ← β₂·v + (1 − β₂)·g²
    v̂ = max(v̂, v) with amsgrad, else v
    p ← p − (lr / (1 − β₁ᵗ)) · m / (√v̂ / √(1 − β₂ᵗ) + ε)
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field

from bpcli.optimizers.base import Stability, adaptive, export_decay, over, pick
from bpcli.section import Section

Beta = Annotated[float, Field(ge=0.0, lt=1.0)]


class Settings(Section):
    """torch.optim.Adam's settings besides lr."""

    betas: list[Beta] = Field(default_factory=lambda: [0.9, 0.999], min_length=2, max_length=2)
    """Decay rates [β1, β2] of the running averages of g and g²."""
    eps: float = Field(1e-8, gt=0.0)
    """Added to the denominator, for numerical stability."""
    weight_decay: float = Field(0.0, ge=0.0)
    """L2 penalty λ added to every gradient as g + λ·p."""
    amsgrad: bool = False
    """Divide by the largest v seen so far rather than the current one (AMSGrad)."""


def knobs(s: Any) -> dict[str, float | bool]:
    return {"beta1": s.betas[0], "beta2": s.betas[1], "eps": s.eps, "weight_decay": s.weight_decay,
            "amsgrad": s.amsgrad}


def slots(p: Any, s: Any) -> dict[str, Any]:
    import torch

    # β₁ᵗ and β₂ᵗ, one per member in float64, kept by multiplying once a step: the same
    # multiplications for a member alone or in a batch (a vectorised pow is not the scalar one)
    powers = torch.ones((p.shape[0],) + (1,) * (p.dim() - 1), dtype=torch.float64, device=p.device)
    state = {"m": torch.zeros_like(p), "v": torch.zeros_like(p), "beta1_power": powers, "beta2_power": powers.clone()}
    if s.on("amsgrad"):
        state["v_max"] = torch.zeros_like(p)
    return state


def moments_step(p: Any, g: Any, state: dict[str, Any], lr: Any, s: Any, t: Any) -> None:
    """Adam's step from the gradient g (weight decay already applied, if any)."""
    import torch

    m, v = state["m"], state["v"]
    m.mul_(s.beta1).add_((1 - s.beta1) * g)  # m ← β₁·m + (1 − β₁)·g
    v.mul_(s.beta2).add_((1 - s.beta2) * (g * g))  # v ← β₂·v + (1 − β₂)·g²
    if "v_max" in state:
        torch.maximum(state["v_max"], v, out=state["v_max"])  # v̂ ← max(v̂, v)
        v = pick(s.amsgrad, state["v_max"], v)
    # The bias corrections in float64, from powers kept on the device (where a CUDA graph advances them).
    beta1, beta2 = (b.double() if isinstance(b, torch.Tensor) else b for b in (s.beta1, s.beta2))
    power1 = state["beta1_power"].mul_(beta1)  # β₁ᵗ
    power2 = state["beta2_power"].mul_(beta2)  # β₂ᵗ
    step_size = over(lr, 1 - power1).to(p.dtype)  # lr / (1 − β₁ᵗ)
    root = (1 - power2).sqrt().to(p.dtype)  # √(1 − β₂ᵗ)
    p.sub_(step_size * m / (v.sqrt() / root + s.eps))  # p ← p − step·m / (√v̂/√(1 − β₂ᵗ) + ε)


def export_setup(lr: float, s: Any) -> list[str]:
    """Adam's settings and state as script lines (its weight decay, if any, as L2)."""
    beta1, beta2 = s.betas
    return [
        f"lr, beta1, beta2, eps = {lr!r}, {beta1!r}, {beta2!r}, {s.eps!r}",
        *([f"weight_decay = {s.weight_decay!r}  # λ"] if s.weight_decay else []),
        "m = {name: torch.zeros_like(p) for name, p in params.items()}  # first moment",
        "v = {name: torch.zeros_like(p) for name, p in params.items()}  # second moment",
        "# β₁ᵗ and β₂ᵗ in float64, kept by one multiplication a step, as bpcli keeps them",
        "power1 = {name: torch.ones((1,) + (1,) * (p.dim() - 1), dtype=torch.float64) for name, p in params.items()}",
        "power2 = {name: torch.ones((1,) + (1,) * (p.dim() - 1), dtype=torch.float64) for name, p in params.items()}",
    ]


def export_update(s: Any) -> list[str]:
    """Adam's update of `p` as script lines, as moments_step computes it (after L2 weight decay, if any)."""
    return [
        *export_decay(s),
        "m[name].mul_(beta1).add_((1 - beta1) * g)  # m ← β₁·m + (1 − β₁)·g",
        "v[name].mul_(beta2).add_((1 - beta2) * (g * g))  # v ← β₂·v + (1 − β₂)·g²",
        "b1t, b2t = power1[name].mul_(beta1), power2[name].mul_(beta2)  # β₁ᵗ, β₂ᵗ",
        "step_size = (torch.full_like(b1t, lr) / (1 - b1t)).to(dtype)  # lr / (1 − β₁ᵗ)",
        "root = (1 - b2t).sqrt().to(dtype)  # √(1 − β₂ᵗ)",
        "p.sub_(step_size * m[name] / (v[name].sqrt() / root + eps))  # p ← p − (lr/(1 − β₁ᵗ))·m / (√v/√(1 − β₂ᵗ) + ε)",
    ]


class Adam:
    name = "adam"
    words = "Adam (adaptive moment estimates)"
    torch_name = "Adam"
    Settings = Settings

    def knobs(self, s: Settings) -> dict[str, float | bool]:
        return knobs(s)

    def counts_steps(self, s: Settings) -> bool:
        return False  # it keeps β₁ᵗ and β₂ᵗ itself

    def plain(self, s: Settings) -> bool:
        return False

    def slots(self, p: Any, s: Any) -> dict[str, Any]:
        return slots(p, s)

    def step(self, p: Any, g: Any, state: dict[str, Any], lr: Any, s: Any, t: Any) -> None:
        if s.on("weight_decay"):
            g = g + s.weight_decay * p  # g ← g + λ·p
        moments_step(p, g, state, lr, s, t)

    def derive(self, slot: str, t: Any, s: Any) -> Any:
        """β₁ᵗ and β₂ᵗ from the step count t, for checkpoints written before they were kept."""
        beta = {"beta1_power": s.beta1, "beta2_power": s.beta2}[slot]
        return (beta.double() if hasattr(beta, "double") else beta) ** t  # βᵗ

    def torch_optimizer(self, params: Any, lr: Any, s: Settings, capturable: bool) -> Any:
        import torch

        # capturable keeps the step count on the GPU, so that a CUDA graph can replay the step;
        # eager CUDA runs use it too, so both engines take the same steps.
        return torch.optim.Adam(params, lr=lr, betas=tuple(s.betas), eps=s.eps, weight_decay=s.weight_decay,
                                amsgrad=s.amsgrad, capturable=capturable)

    def describe(self, s: Settings) -> str:
        extras = []
        if list(s.betas) != Settings().betas:
            extras.append(f"betas {s.betas[0]:g}, {s.betas[1]:g}")
        if s.amsgrad:
            extras.append("amsgrad")
        if s.weight_decay:
            extras.append(f"weight decay {s.weight_decay:g}")
        return ", ".join(extras)

    def formula(self, s: Settings, g: str) -> str:
        decay = f"g = {g} + {s.weight_decay:g}·θ; " if s.weight_decay else ""
        square = "g²" if decay else f"({g})²"
        g = "g" if decay else g
        b1, b2 = s.betas
        return (f"adam: {decay}m ← {b1:g}·m + {1 - b1:g}·{g}, v ← {b2:g}·v + {1 - b2:g}·{square}, "
                f"θ ← θ − lr·m̂/(√v̂ + {s.eps:g}) with m̂, v̂ corrected for their start at 0")

    def stability(self, s: Settings) -> Stability:
        return adaptive("Adam")

    def linear(self, s: Settings) -> bool:
        # The step m̂/(√v̂ + ε) divides each coordinate by its own √v̂, a function of that
        # coordinate's squared gradients: gradients summing to zero give steps that need not.
        return False

    unexported = ("amsgrad",)

    def export_setup(self, lr: float, s: Settings) -> list[str]:
        return export_setup(lr, s)

    def export_update(self, s: Settings, fast: bool) -> list[str]:
        return export_update(s)

    def export_optim(self, lr: float, s: Settings) -> str:
        beta1, beta2 = s.betas
        extras = ""
        if [beta1, beta2] != Settings().betas:
            extras += f", betas=({beta1!r}, {beta2!r})"
        if s.eps != Settings().eps:
            extras += f", eps={s.eps!r}"
        if s.weight_decay:
            extras += f", weight_decay={s.weight_decay!r}"
        return f"torch.optim.Adam(model.parameters(), lr={lr!r}{extras})"


RULE = Adam()
