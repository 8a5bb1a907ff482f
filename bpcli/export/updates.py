"""The update rules as script text: one entry per optimizer, keyed by its name.

Each rule writes the lines that set up its state and the lines that update one
parameter `p` from its gradient `g`, exactly as bpcli.optimizers.Optimizer computes them
for a single run (the same operations in the same order, so the same rounding); and the
torch.optim constructor nn-linear uses. When optimizers become a registry of one file per
rule, each entry below moves into its rule's file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

Lines = list[str]


@dataclass(frozen=True)
class Rule:
    """An optimizer as script text."""

    setup: Callable[[Any], Lines]
    """Its settings and state, after `params` exists."""
    before: Callable[[Any], Lines]
    """What is computed once per step, before the parameters are updated."""
    update: Callable[[Any, bool], Lines]
    """The update of one parameter `p` from its gradient `g` (inside a loop over params);
    the flag asks for linear-gd's fast path, whose plain step is p.add_(g, alpha=−lr)."""
    torch_optim: Callable[[Any], str]
    """The torch.optim constructor of the same rule, for `model.parameters()`."""


def _plain_sgd(train: Any) -> bool:
    return train.momentum == 0 and train.weight_decay == 0


def _decay(train: Any) -> Lines:
    return ["g = g + weight_decay * p  # weight decay: g ← g + λ·p"] if train.weight_decay else []


def _sgd_setup(train: Any) -> Lines:
    lines = [f"lr = {train.lr!r}"]
    if train.weight_decay:
        lines.append(f"weight_decay = {train.weight_decay!r}  # λ")
    if train.momentum:
        lines += [f"momentum = {train.momentum!r}  # μ",
                  "velocity = {name: torch.zeros_like(p) for name, p in params.items()}  # v starts at 0"]
    return lines


def _sgd_update(train: Any, fast: bool) -> Lines:
    if _plain_sgd(train):
        return ["p.add_(g, alpha=-lr)  # p ← p − lr·g" if fast else "p.sub_(lr * g)  # p ← p − lr·g"]
    lines = _decay(train)
    if train.momentum:
        lines += ["v = velocity[name]", "v.mul_(momentum).add_(g)  # v ← μ·v + g"]
        lines.append("d = g + momentum * v  # Nesterov: look ahead, d = g + μ·v" if train.nesterov
                     else "d = v  # heavy ball: d = v")
    else:
        lines.append("d = g")
    return lines + ["p.sub_(lr * d)  # p ← p − lr·d"]


def _sgd_optim(train: Any) -> str:
    extras = "".join(f", {key}={value!r}" for key, value in (
        ("momentum", train.momentum), ("nesterov", train.nesterov), ("weight_decay", train.weight_decay)) if value)
    return f"torch.optim.SGD(model.parameters(), lr={train.lr!r}{extras})"


def _adam_setup(train: Any) -> Lines:
    beta1, beta2 = train.betas
    return [
        f"lr, beta1, beta2, eps = {train.lr!r}, {beta1!r}, {beta2!r}, {train.eps!r}",
        *([f"weight_decay = {train.weight_decay!r}  # λ"] if train.weight_decay else []),
        "m = {name: torch.zeros_like(p) for name, p in params.items()}  # first moment",
        "v = {name: torch.zeros_like(p) for name, p in params.items()}  # second moment",
        "# β₁ᵗ and β₂ᵗ in float64, kept by one multiplication a step, as bpcli keeps them",
        "power1 = {name: torch.ones((1,) + (1,) * (p.dim() - 1), dtype=torch.float64) for name, p in params.items()}",
        "power2 = {name: torch.ones((1,) + (1,) * (p.dim() - 1), dtype=torch.float64) for name, p in params.items()}",
    ]


def _adam_before(train: Any) -> Lines:
    return []


def _adam_update(train: Any, fast: bool) -> Lines:
    return [
        *_decay(train),
        "m[name].mul_(beta1).add_((1 - beta1) * g)  # m ← β₁·m + (1 − β₁)·g",
        "v[name].mul_(beta2).add_((1 - beta2) * (g * g))  # v ← β₂·v + (1 − β₂)·g²",
        "b1t, b2t = power1[name].mul_(beta1), power2[name].mul_(beta2)  # β₁ᵗ, β₂ᵗ",
        "step_size = (torch.full_like(b1t, lr) / (1 - b1t)).to(dtype)  # lr / (1 − β₁ᵗ)",
        "root = (1 - b2t).sqrt().to(dtype)  # √(1 − β₂ᵗ)",
        "p.sub_(step_size * m[name] / (v[name].sqrt() / root + eps))  # p ← p − (lr/(1 − β₁ᵗ))·m / (√v/√(1 − β₂ᵗ) + ε)",
    ]


def _adam_optim(train: Any) -> str:
    beta1, beta2 = train.betas
    extras = ""
    if (beta1, beta2) != (0.9, 0.999):
        extras += f", betas=({beta1!r}, {beta2!r})"
    if train.eps != 1e-8:
        extras += f", eps={train.eps!r}"
    if train.weight_decay:
        extras += f", weight_decay={train.weight_decay!r}"
    return f"torch.optim.Adam(model.parameters(), lr={train.lr!r}{extras})"


def _adamw_setup(train: Any) -> Lines:
    return [line for line in _adam_setup(train) if not line.startswith("weight_decay")] + (
        [f"weight_decay = {train.weight_decay!r}  # λ, decoupled from the gradient"] if train.weight_decay else [])


def _adamw_update(train: Any, fast: bool) -> Lines:
    decay = ["p.mul_(1 - lr * weight_decay)  # decoupled weight decay: p ← p·(1 − lr·λ)"] if train.weight_decay else []
    return decay + [line for line in _adam_update(train.model_copy(update={"weight_decay": 0.0}), fast)]


def _adamw_optim(train: Any) -> str:
    beta1, beta2 = train.betas
    return (f"torch.optim.AdamW(model.parameters(), lr={train.lr!r}, betas=({beta1!r}, {beta2!r}), eps={train.eps!r}, "
            f"weight_decay={train.weight_decay!r})")


def _rmsprop_setup(train: Any) -> Lines:
    lines = [f"lr, alpha, eps = {train.lr!r}, {train.alpha!r}, {train.eps!r}",
             *([f"weight_decay = {train.weight_decay!r}  # λ"] if train.weight_decay else []),
             "square_avg = {name: torch.zeros_like(p) for name, p in params.items()}  # v, the mean of g²"]
    if train.centered:
        lines.append("grad_avg = {name: torch.zeros_like(p) for name, p in params.items()}  # a, the mean of g")
    if train.momentum:
        lines += [f"momentum = {train.momentum!r}  # μ",
                  "buffer = {name: torch.zeros_like(p) for name, p in params.items()}"]
    return lines


def _rmsprop_update(train: Any, fast: bool) -> Lines:
    lines = [*_decay(train), "sq = square_avg[name]", "sq.mul_(alpha).add_((1 - alpha) * (g * g))  # v ← α·v + (1 − α)·g²"]
    if train.centered:
        lines += ["a = grad_avg[name]", "a.mul_(alpha).add_((1 - alpha) * g)  # a ← α·a + (1 − α)·g",
                  "size = (sq - a * a).sqrt() + eps  # s = √(v − a²) + ε"]
    else:
        lines.append("size = sq.sqrt() + eps  # s = √v + ε")
    if train.momentum:
        return lines + ["b = buffer[name]", "b.mul_(momentum).add_(g / size)  # b ← μ·b + g/s",
                        "p.sub_(lr * b)  # p ← p − lr·b"]
    return lines + ["p.sub_(lr * (g / size))  # p ← p − lr·g/s"]


def _rmsprop_optim(train: Any) -> str:
    return (f"torch.optim.RMSprop(model.parameters(), lr={train.lr!r}, alpha={train.alpha!r}, eps={train.eps!r}, "
            f"weight_decay={train.weight_decay!r}, momentum={train.momentum!r}, centered={train.centered!r})")


def _adagrad_setup(train: Any) -> Lines:
    return [f"lr, eps = {train.lr!r}, {train.eps!r}",
            *([f"weight_decay = {train.weight_decay!r}  # λ"] if train.weight_decay else []),
            f"total = {{name: torch.zeros_like(p) + {train.initial_accumulator_value!r} for name, p in params.items()}}"
            "  # S, the sum of g²"]


def _adagrad_update(train: Any, fast: bool) -> Lines:
    return [*_decay(train), "total[name].add_(g * g)  # S ← S + g²",
            "p.sub_(lr * (g / (total[name].sqrt() + eps)))  # p ← p − lr·g/(√S + ε)"]


def _adagrad_optim(train: Any) -> str:
    return (f"torch.optim.Adagrad(model.parameters(), lr={train.lr!r}, eps={train.eps!r}, "
            f"weight_decay={train.weight_decay!r}, initial_accumulator_value={train.initial_accumulator_value!r})")


RULES: dict[str, Rule] = {
    "sgd": Rule(_sgd_setup, lambda train: [], _sgd_update, _sgd_optim),
    "adam": Rule(_adam_setup, _adam_before, _adam_update, _adam_optim),
    "adamw": Rule(_adamw_setup, _adam_before, _adamw_update, _adamw_optim),
    "rmsprop": Rule(_rmsprop_setup, lambda train: [], _rmsprop_update, _rmsprop_optim),
    "adagrad": Rule(_adagrad_setup, lambda train: [], _adagrad_update, _adagrad_optim),
}
"""Settings a rule's text does not write (they are refused by export, in one line): {rule: (setting, default)}."""
UNWRITTEN = {"adagrad": ("lr_decay", 0.0), "adam": ("amsgrad", False), "adamw": ("amsgrad", False),
             "sgd": ("dampening", 0.0)}


def update_function(train: Any, fast: bool = False) -> Lines:
    """`def update(params, grads)`: the run's optimizer, in place, without autograd."""
    rule = RULES[train.optimizer]
    body = [*rule.before(train), "for name, p in params.items():", "    g = grads[name]",
            *("    " + line for line in rule.update(train, fast))]
    return ["def update(params, grads):",
            '    """One step of the optimizer, in place."""',
            "    with torch.no_grad():",
            *("        " + line for line in body)]


def setup_lines(train: Any) -> Lines:
    """The optimizer's settings and state."""
    return RULES[train.optimizer].setup(train)


def torch_optim(train: Any) -> str:
    """The torch.optim constructor of the run's optimizer."""
    return RULES[train.optimizer].torch_optim(train)
