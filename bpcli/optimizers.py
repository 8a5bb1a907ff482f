"""The update rules of torch.optim.SGD and torch.optim.Adam, written out by hand.

Kinds whose update is written by hand (scalar-sgd, linear-gd, mlp, and the batched form of
nn-linear in sweeps) step their parameters with `Optimizer`; nn-linear's single runs use
torch.optim itself, and tests/test_optimizers.py shows the two agree. Every tensor has a
leading member dimension K, and each member may have its own settings (a sweep over
momentum or over sgd/adam is one batched step). The state (velocities, moments, the step
count) is allocated up front and updated in place, so a CUDA graph can capture a step.

With g the gradient and λ the weight decay, per parameter p:

    sgd:   g ← g + λ·p
           v ← μ·v + g                  (momentum μ > 0; v starts at 0, so v₁ = g₁)
           d = g + μ·v if nesterov else v   (d = g without momentum)
           p ← p − lr·d
    adam:  g ← g + λ·p
           m ← β₁·m + (1 − β₁)·g        v ← β₂·v + (1 − β₂)·g²       t ← t + 1
           p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from bpcli.config.schema import TrainConfig

Tensors = dict[str, torch.Tensor]

class Optimizer:
    """One update rule per member, applied in place to a dict of parameters.

    `settings` holds one `train` section per member (a single run has one). Settings that
    are the same for every member stay Python numbers, so a single run's plain SGD step is
    exactly p ← p − lr·g, as before optimizers existed.
    """

    def __init__(self, params: Tensors, settings: Sequence[Any]) -> None:
        first = next(iter(params.values()))
        device, dtype = first.device, first.dtype
        self._shapes = {name: (-1,) + (1,) * (p.dim() - 1) for name, p in params.items()}
        values = {
            "lr": [s.lr for s in settings],
            "momentum": [s.momentum if s.optimizer == "sgd" else 0.0 for s in settings],
            "weight_decay": [s.weight_decay for s in settings],
            "beta1": [s.betas[0] for s in settings],
            "beta2": [s.betas[1] for s in settings],
            "eps": [s.eps for s in settings],
        }
        # A setting shared by all members is a number; one that differs is a (K,) tensor.
        self.settings: dict[str, float | torch.Tensor] = {
            key: v[0] if len(set(v)) == 1 else torch.tensor(v, dtype=dtype, device=device)
            for key, v in values.items()
        }
        adam = [s.optimizer == "adam" for s in settings]
        nesterov = [s.optimizer == "sgd" and s.nesterov for s in settings]
        self.adam = self._mask(adam, device)
        """True (every member), False (none) or a (K,) bool tensor."""
        self.nesterov = self._mask(nesterov, device)
        uses_momentum = any(m > 0 for m in values["momentum"])
        self.state: Tensors = {}
        for name, p in params.items():
            if self.adam is not False:
                self.state[f"{name}.m"] = torch.zeros_like(p)
                self.state[f"{name}.v"] = torch.zeros_like(p)
            if self.adam is not True and uses_momentum:
                self.state[f"{name}.velocity"] = torch.zeros_like(p)
        if self.adam is not False:  # the step count t, on the device so that a graph can advance it
            self.state["t"] = torch.zeros(len(settings), dtype=torch.float64, device=device)
            # Adam's bias corrections are computed in float64, per member, the same way
            # for one member as for many.
            self._float64 = {key: torch.tensor(values[key], dtype=torch.float64, device=device)
                             for key in ("lr", "beta1", "beta2")}
        self.plain = self.adam is False and not uses_momentum and all(w == 0 for w in values["weight_decay"])
        """Plain SGD for every member: p ← p − lr·g and nothing else."""

    @staticmethod
    def _mask(flags: list[bool], device: torch.device) -> bool | torch.Tensor:
        if all(flags):
            return True
        if not any(flags):
            return False
        return torch.tensor(flags, device=device)

    def _setting(self, key: str, name: str) -> float | torch.Tensor:
        """A setting shaped to broadcast against parameter `name`: a number or (K, 1, …)."""
        value = self.settings[key]
        return value.reshape(self._shapes[name]) if isinstance(value, torch.Tensor) else value

    def _select(self, mask: bool | torch.Tensor, name: str, yes: torch.Tensor, no: torch.Tensor) -> torch.Tensor:
        if mask is True:
            return yes
        if mask is False:
            return no
        return torch.where(mask.reshape(self._shapes[name]), yes, no)

    @torch.no_grad()
    def step(self, params: Tensors, grads: Tensors) -> None:
        """Update every parameter in place from its gradient."""
        if self.plain:
            for name, p in params.items():
                p.sub_(self._setting("lr", name) * grads[name])  # p ← p − lr·g
            return
        corrections = self._corrections(next(iter(params.values())).dtype) if self.adam is not False else None
        for name, p in params.items():
            g = grads[name]
            decay = self._setting("weight_decay", name)
            if isinstance(decay, torch.Tensor) or decay != 0.0:
                g = g + decay * p  # g ← g + λ·p
            if self.adam is False:
                lr = self._setting("lr", name)
                if isinstance(lr, torch.Tensor):
                    p.sub_(lr * self._sgd_direction(name, g))  # p ← p − lr·d, one lr per member
                else:
                    p.add_(self._sgd_direction(name, g), alpha=-lr)  # p ← p − lr·d, as torch.optim.SGD writes it
                continue
            step_size, denominator = self._adam_moments(name, g, corrections)
            adam_step = step_size * self.state[f"{name}.m"] / denominator
            if self.adam is not True:  # members differ: each takes its own rule's step
                sgd_step = self._setting("lr", name) * self._sgd_direction(name, g)
                adam_step = self._select(self.adam, name, adam_step, sgd_step)
            p.sub_(adam_step)

    def _sgd_direction(self, name: str, g: torch.Tensor) -> torch.Tensor:
        velocity = self.state.get(f"{name}.velocity")
        if velocity is None:
            return g  # no momentum: d = g
        momentum = self._setting("momentum", name)
        velocity.mul_(momentum).add_(g)  # v ← μ·v + g
        if self.nesterov is False:
            return velocity  # heavy ball: d = v
        look_ahead = g + momentum * velocity  # Nesterov: d = g + μ·v
        return self._select(self.nesterov, name, look_ahead, velocity)

    def _corrections(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """Advance t; return lr/(1 − β₁ᵗ) and √(1 − β₂ᵗ) per member, (K,), computed in
        float64 from the step count kept on the device (where a CUDA graph advances it)."""
        t = self.state["t"]
        t.add_(1)  # t ← t + 1
        beta1, beta2, lr = (self._float64[key] for key in ("beta1", "beta2", "lr"))
        step_size = lr / (1 - torch.pow(beta1, t))  # lr / (1 − β₁ᵗ)
        root = (1 - torch.pow(beta2, t)).sqrt_()  # √(1 − β₂ᵗ)
        return step_size.to(dtype), root.to(dtype)

    def _adam_moments(self, name: str, g: torch.Tensor,
                      corrections: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Update m and v; return lr/(1 − β₁ᵗ) and √v/√(1 − β₂ᵗ) + ε, shaped for `name`."""
        m, v = self.state[f"{name}.m"], self.state[f"{name}.v"]
        beta1, beta2 = self._setting("beta1", name), self._setting("beta2", name)
        m.lerp_(g, 1 - beta1)  # m ← β₁·m + (1 − β₁)·g
        if isinstance(beta2, torch.Tensor):
            v.mul_(beta2).addcmul_((1 - beta2) * g, g)  # v ← β₂·v + (1 − β₂)·g²
        else:
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        shape = self._shapes[name]
        step_size, root = (c.reshape(shape) for c in corrections)
        denominator = (v.sqrt() / root).add_(self._setting("eps", name))
        return step_size, denominator

    def state_dict(self) -> Tensors:
        """The optimizer's state (velocities, moments, step count), copied."""
        return {key: value.detach().clone() for key, value in self.state.items()}

    def load_state_dict(self, state: Tensors) -> None:
        """Restore what state_dict() returned (an empty dict for plain SGD)."""
        missing = set(self.state) - set(state)
        if missing:
            raise KeyError(f"the checkpoint has no optimizer state {sorted(missing)[0]!r}")
        for key, value in self.state.items():
            value.copy_(state[key])


def describe(train: Any) -> str:
    """The optimizer of a `train` section in words: `sgd`, `sgd (momentum 0.9)`, `adam`."""
    extras = []
    if train.optimizer == "sgd" and train.momentum:
        extras.append(f"momentum {train.momentum:g}" + (", nesterov" if train.nesterov else ""))
    if train.optimizer == "adam" and list(train.betas) != TrainConfig.default("betas"):
        extras.append(f"betas {train.betas[0]:g}, {train.betas[1]:g}")
    if train.weight_decay:
        extras.append(f"weight decay {train.weight_decay:g}")
    return train.optimizer + (f" ({', '.join(extras)})" if extras else "")
