"""What every update rule provides (a Protocol, not a base class), and what theory says of it.

A rule is one file under bpcli/optimizers holding an object with these attributes, listed
in the registry OPTIMIZERS (bpcli/optimizers/__init__.py). The driver `Optimizer` groups a
sweep's members by rule and calls each rule's `step` on its members' rows, so the rule
sees tensors with a leading member dimension and settings `s` that are either Python values
(shared by its members) or tensors shaped to broadcast against the parameter (one value
per member); `s.on(name)` says, without reading the device, whether a setting is nonzero
for any member. A step must not read the device (no .item(), no `if tensor`), so that a
CUDA graph can capture it. A rule also writes its update as script text for `bpcli export`.
This module imports no torch, so that validating a config stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Protocol

from bpcli.section import Section

if TYPE_CHECKING:
    import torch

    Tensor = torch.Tensor


@dataclass(frozen=True)
class Stability:
    """What a rule's theory says on a quadratic loss whose Hessian has eigenvalues λ.

    `bound(λ_max)` is the largest lr that converges (lr < bound), `formula` how it reads
    (e.g. 2/λ_max) and `how` the method in words; `rate(λ, lr)` the linear rate per step
    of the error θ − θ*, `rate_note` in words. Where theory gives none, they are None and
    `reason` says why. `per_sample` says whether the bound of per-sample training (one
    epoch's product of the factors 1 − 2·lr·xᵢ²) holds, and `per_sample_reason` why not.
    """

    reason: str = ""
    bound: Callable[[float], float] | None = None
    formula: str = ""
    how: str = ""
    rate: Callable[[Any, float], float] | None = None
    rate_note: str = ""
    per_sample: bool = False
    per_sample_reason: str = ""



class Rule(Protocol):
    """One update rule: its settings, its batched step and what it knows about itself."""

    name: str
    """The value of train.optimizer that picks it."""
    words: str
    """Its name in words, for people (e.g. `Adam (adaptive moment estimates)`)."""
    torch_name: str
    """The torch.optim class it equals (e.g. `Adam`)."""
    Settings: type[Section]
    """Its settings besides lr, with torch.optim's names and defaults; field docstrings
    become the train section's reference."""

    def knobs(self, s: Section) -> dict[str, float | bool]:
        """Its settings as scalars, one name each (the driver makes a (K,) tensor of those
        that differ between members)."""

    def counts_steps(self, s: Section) -> bool:
        """Whether its step needs the step count t (bias corrections, lr decay)."""

    def plain(self, s: Section) -> bool:
        """Whether these settings make the step p ← p − lr·g and nothing else."""

    def slots(self, p: Tensor, s: Any) -> dict[str, Tensor]:
        """The state of parameter p (velocities, moments), allocated up front."""

    def step(self, p: Tensor, g: Tensor, state: dict[str, Tensor], lr: Any, s: Any, t: Tensor | None) -> None:
        """Update p in place from its gradient g; `t` is the step count after this step."""

    def torch_optimizer(self, params: Any, lr: Any, s: Section, capturable: bool) -> Any:
        """torch.optim's own class with these settings, on these parameters."""

    def describe(self, s: Section) -> str:
        """The settings that differ from the defaults, in words (`momentum 0.9, nesterov`)."""

    def formula(self, s: Section, g: str) -> str:
        """The update in symbols for explain, g being the gradient's symbol ('' when plain)."""

    def stability(self, s: Section) -> Stability:
        """What theory says of this rule with these settings."""

    def linear(self, s: Section) -> bool:
        """Whether every step is one fixed linear combination of the gradients so far, with the
        same numbers for every coordinate (p ← p − lr·Σₖ aₖ·gₖ). Then parameters whose gradients
        always sum to zero keep their sum where it started: Σ_c Δp_c = −lr·Σₖ aₖ·Σ_c g_k,c = 0
        (softmax's Σ_c W_c, which picks the optimum it approaches)."""

    # What `bpcli export` writes for the rule in run.py, plain PyTorch computing what `step`
    # computes for a single run: the same operations in the same order, so the same rounding.
    # A rule without them trains all the same, and export refuses its runs in one line (a rule
    # that torch.optim lacks has no export_optim, and only nn-linear's scripts need one).

    unexported: tuple[str, ...]
    """Settings its script text does not write: export refuses a run that moves one from its default."""

    def export_setup(self, lr: float, s: Section) -> list[str]:
        """Its settings and state as script lines, after `params` (a dict of tensors) exists."""

    def export_update(self, s: Section, fast: bool) -> list[str]:
        """The update of one parameter `p` (named `name`) from its gradient `g`, inside a loop over
        params.items(); `fast` asks for linear-gd's fast path, whose plain step is p.add_(g, alpha=−lr)."""

    def export_optim(self, lr: float, s: Section) -> str:
        """torch.optim's constructor of the rule with these settings, on `model.parameters()`
        (nn-linear's script steps torch.optim's own class, as its runs do)."""


def pick(mask: Any, yes: Tensor, no: Tensor) -> Tensor:
    """`yes` where the per-member flag is set, `no` elsewhere (mask: a bool or a bool tensor)."""
    if mask is True:
        return yes
    if mask is False:
        return no
    import torch

    return torch.where(mask, yes, no)


def over(numerator: Any, x: Tensor) -> Tensor:
    """numerator / x, divided as tensors whether the numerator is a number or a tensor: torch
    computes number / tensor as number·(1/x), two roundings, which would make a member alone
    (its setting a number) differ from the same member in a batch (a tensor)."""
    if not hasattr(numerator, "dim"):
        import torch

        numerator = torch.full_like(x, numerator)
    return numerator / x


def adaptive(name: str) -> Stability:
    """What theory says of a rule that divides its steps by a running size of the gradient."""
    return Stability(
        reason=f"{name} divides each step by a running size of the gradient, so its steps are about lr long "
               "whatever the curvature, and no bound of the form lr < c/λ_max applies",
        rate_note=f"{name} rescales every coordinate by its own running gradient size, so the Hessian's "
                  "eigenvalues predict no linear rate for it",
    )


def export_decay(s: Any) -> list[str]:
    """The script line of L2 weight decay, when the settings have one."""
    return ["g = g + weight_decay * p  # weight decay: g ← g + λ·p"] if s.weight_decay else []
