"""torch.optim.SGD by hand: gradient descent, with heavy-ball or Nesterov momentum.

With g the gradient, λ the weight decay, μ the momentum and d the dampening, per parameter p:

    g ← g + λ·p
    v ← μ·v + (1 − d)·g        (v₁ = g on the first step, as torch.optim.SGD starts it)
    u = g + μ·v if nesterov else v       (u = g without momentum)
    p ← p − lr·u
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from bpcli.optimizers.base import Stability, export_decay, pick
from bpcli.section import Section


class Settings(Section):
    """torch.optim.SGD's settings besides lr."""

    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    """Heavy-ball momentum μ: the velocity v ← μ·v + g replaces g in the update."""
    dampening: float = Field(0.0, ge=0.0, le=1.0)
    """The velocity takes (1 − dampening)·g instead of g (not with nesterov)."""
    nesterov: bool = False
    """Nesterov's look-ahead: the update uses g + μ·v (needs momentum > 0)."""
    weight_decay: float = Field(0.0, ge=0.0)
    """L2 penalty λ added to every gradient as g + λ·p."""

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> Settings:
        if self.nesterov and self.momentum == 0:
            raise ValueError("train.nesterov needs momentum: set train.momentum above 0 (e.g. 0.9), "
                             "or nesterov: false")
        if self.nesterov and self.dampening:
            raise ValueError("train.nesterov needs dampening 0 (as torch.optim.SGD does): remove train.dampening, "
                             "or nesterov: false")
        return self


class SGD:
    name = "sgd"
    words = "stochastic gradient descent"
    torch_name = "SGD"
    Settings = Settings

    def knobs(self, s: Settings) -> dict[str, float | bool]:
        return s.model_dump()

    def counts_steps(self, s: Settings) -> bool:
        return s.dampening != 0

    def plain(self, s: Settings) -> bool:
        return s.momentum == 0 and s.weight_decay == 0

    def slots(self, p: Any, s: Any) -> dict[str, Any]:
        import torch

        return {"velocity": torch.zeros_like(p)} if s.on("momentum") else {}

    def step(self, p: Any, g: Any, state: dict[str, Any], lr: Any, s: Any, t: Any) -> None:
        if s.on("weight_decay"):
            g = g + s.weight_decay * p  # g ← g + λ·p
        v = state.get("velocity")
        if v is not None:
            if s.on("dampening"):
                import torch

                # v ← μ·v + (1 − d)·g, but v₁ = g: torch.optim.SGD starts the buffer at the gradient
                v.copy_(torch.where(t == 1, g, s.momentum * v + (1 - s.dampening) * g))
            else:
                v.mul_(s.momentum).add_(g)  # v ← μ·v + g (v starts at 0, so v₁ = g)
            g = pick(s.nesterov, g + s.momentum * v, v)  # u = g + μ·v (Nesterov) or v (heavy ball)
        p.sub_(lr * g)  # p ← p − lr·u

    def torch_optimizer(self, params: Any, lr: Any, s: Settings, capturable: bool) -> Any:
        import torch

        return torch.optim.SGD(params, lr=lr, **s.model_dump())

    def describe(self, s: Settings) -> str:
        extras = []
        if s.momentum:
            extras.append(f"momentum {s.momentum:g}" + (", nesterov" if s.nesterov else ""))
        if s.dampening:
            extras.append(f"dampening {s.dampening:g}")
        if s.weight_decay:
            extras.append(f"weight decay {s.weight_decay:g}")
        return ", ".join(extras)

    def formula(self, s: Settings, g: str) -> str:
        decay = f"g = {g} + {s.weight_decay:g}·θ; " if s.weight_decay else ""
        g = "g" if decay else g
        if s.momentum:
            step = f"θ ← θ − lr·({g} + {s.momentum:g}·v)" if s.nesterov else "θ ← θ − lr·v"
            gain = f"{1 - s.dampening:g}·" if s.dampening else ""
            return (f"sgd with {'Nesterov ' if s.nesterov else ''}momentum: {decay}v ← {s.momentum:g}·v + "
                    f"{gain}{g}, {step}")
        return f"sgd with weight decay: {decay}θ ← θ − lr·g" if decay else ""

    def stability(self, s: Settings) -> Stability:
        # The Hessian of mean((A·θ − y)²) is H = (2/N)·AᵀA, the same everywhere. One step is
        # θ ← θ − lr·H·(θ − θ*), which shrinks every direction iff |1 − lr·λ| < 1 for every
        # eigenvalue λ of H, that is iff lr < 2/λ_max. Momentum μ makes each direction a
        # two-term recurrence whose roots stay inside the unit circle iff (Jury's test on
        # z² + a₁z + a₀: |a₀| < 1 and |a₁| < 1 + a₀)
        #   heavy ball, z² − (1 + μ − lr·λ)·z + μ:            lr·λ < 2(1 + μ)
        #   Nesterov,   z² − (1 + μ)(1 − lr·λ)·z + μ(1 − lr·λ): lr·λ < 2(1 + μ)/(1 + 2μ)
        # Dampening d scales the gradient's share of v by (1 − d), so lr acts as lr·(1 − d)
        # after the first step, which does not change whether the run converges.
        mu, gain = s.momentum, 1 - s.dampening
        if not mu:
            return Stability(bound=lambda top: 2 / top, formula="2/λ_max", how="full-batch gradient descent",
                             rate=gd_rate, rate_note="gradient descent: max |1 − lr·λ| over the Hessian's eigenvalues",
                             per_sample=True)
        per_sample_reason = ("per-sample SGD with momentum carries its velocity from sample to sample, so no "
                             "closed-form bound is computed")
        if s.nesterov:
            return Stability(bound=lambda top: 2 * (1 + mu) / ((1 + 2 * mu) * top), formula="2(1+μ)/((1+2μ)·λ_max)",
                             how=f"gradient descent with Nesterov momentum μ = {mu:g}",
                             rate=lambda eig, lr: nesterov_rate(eig, lr, mu),
                             rate_note=f"Nesterov momentum μ = {mu:g}: the largest |root| of "
                                       "z² − (1+μ)(1−lr·λ)z + μ(1−lr·λ)",
                             per_sample_reason=per_sample_reason)
        damped = "(1−d)·" if s.dampening else ""
        return Stability(bound=lambda top: 2 * (1 + mu) / (gain * top), formula=f"2(1+μ)/({damped}λ_max)",
                         how=f"gradient descent with heavy-ball momentum μ = {mu:g}"
                             + (f" and dampening d = {s.dampening:g}" if s.dampening else ""),
                         rate=lambda eig, lr: heavy_ball_rate(eig, lr * gain, mu),
                         rate_note=f"heavy-ball momentum μ = {mu:g}: the largest |root| of z² − (1+μ−lr·λ)z + μ"
                                   + (" with lr·(1 − d) for lr" if s.dampening else ""),
                         per_sample_reason=per_sample_reason)

    def linear(self, s: Settings) -> bool:
        # Without weight decay every step is a fixed linear combination of the gradients: the
        # velocity v_t = Σₖ μ^(t−k)·cₖ·gₖ (cₖ = 1, or 1 − d after the first step with dampening),
        # and the step is lr·v or lr·(g + μ·v) (Nesterov), with numbers shared by every coordinate.
        # Weight decay adds λ·p to the gradient, a term that need not sum to zero.
        return s.weight_decay == 0

    unexported = ("dampening",)

    def export_setup(self, lr: float, s: Settings) -> list[str]:
        lines = [f"lr = {lr!r}"]
        if s.weight_decay:
            lines.append(f"weight_decay = {s.weight_decay!r}  # λ")
        if s.momentum:
            lines += [f"momentum = {s.momentum!r}  # μ",
                      "velocity = {name: torch.zeros_like(p) for name, p in params.items()}  # v starts at 0"]
        return lines

    def export_update(self, s: Settings, fast: bool) -> list[str]:
        if self.plain(s):
            return ["p.add_(g, alpha=-lr)  # p ← p − lr·g" if fast else "p.sub_(lr * g)  # p ← p − lr·g"]
        lines = export_decay(s)
        if s.momentum:
            lines += ["v = velocity[name]", "v.mul_(momentum).add_(g)  # v ← μ·v + g"]
            lines.append("d = g + momentum * v  # Nesterov: look ahead, d = g + μ·v" if s.nesterov
                         else "d = v  # heavy ball: d = v")
        else:
            lines.append("d = g")
        return lines + ["p.sub_(lr * d)  # p ← p − lr·d"]

    def export_optim(self, lr: float, s: Settings) -> str:
        extras = "".join(f", {key}={value!r}" for key, value in (
            ("momentum", s.momentum), ("nesterov", s.nesterov), ("weight_decay", s.weight_decay)) if value)
        return f"torch.optim.SGD(model.parameters(), lr={lr!r}{extras})"


RULE = SGD()


def _largest_root(b: Any, c: Any) -> Any:
    """The largest |z| among the roots of z² − b·z + c = 0, for each pair (b, c)."""
    import torch

    root = torch.sqrt((b * b - 4 * c).to(torch.complex128))  # complex when the roots are
    return torch.maximum(((b + root) / 2).abs(), ((b - root) / 2).abs())


def gd_rate(eigenvalues: Any, lr: float) -> float:
    """Plain gradient descent: the error along eigenvector i is multiplied by (1 − lr·λᵢ) every
    step, so the slowest direction shrinks by max |1 − lr·λ| per step."""
    return float((1 - lr * eigenvalues).abs().max())


def heavy_ball_rate(eigenvalues: Any, lr: float, momentum: float) -> float:
    """Heavy ball (v ← μ·v + g, θ ← θ − lr·v): along eigenvector i the error follows
    e' = (1 + μ − lr·λ)·e − μ·e⁻, whose characteristic roots solve z² − (1 + μ − lr·λ)·z + μ = 0;
    the rate is the largest |root| over the eigenvalues."""
    import torch

    b = 1 + momentum - lr * eigenvalues
    return float(_largest_root(b, torch.full_like(b, momentum)).max())


def nesterov_rate(eigenvalues: Any, lr: float, momentum: float) -> float:
    """Nesterov (torch.optim.SGD's form, θ ← θ − lr·(g + μ·v)): the roots of
    z² − (1 + μ)(1 − lr·λ)·z + μ(1 − lr·λ) = 0, the largest |root| over the eigenvalues."""
    t = 1 - lr * eigenvalues
    return float(_largest_root((1 + momentum) * t, momentum * t).max())

