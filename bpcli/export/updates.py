"""The run's update rule as script text, asked of its rule in the optimizer registry.

Each rule writes, in its own file under bpcli/optimizers (`export_setup`, `export_update`,
`export_optim`), the lines that set up its state and the lines that update one parameter `p`
from its gradient `g`, exactly as bpcli.optimizers.Optimizer computes them for a single run
(the same operations in the same order, so the same rounding); and the torch.optim
constructor nn-linear uses. This module puts them in place and refuses, in one line, a run
whose update a rule's text does not write.
"""

from __future__ import annotations

from typing import Any

from bpcli.optimizers import OPTIMIZERS, settings_of

Lines = list[str]

EXPORT = ("export_setup", "export_update", "export_optim")
"""What a rule provides for its runs to be exported (see bpcli.optimizers.base.Rule)."""


def exported() -> list[str]:
    """The rules whose runs export can write, in registry order."""
    return [name for name, rule in OPTIMIZERS.items() if all(hasattr(rule, key) for key in EXPORT)]


def unwritten(train: Any) -> str | None:
    """Why the script cannot write this `train` section's update (a rule without script text,
    or a setting its text does not write), or None when it can."""
    if train.optimizer not in exported():
        return (f"bpcli exports runs of the optimizers {', '.join(exported())}, and this one used {train.optimizer} "
                f"(a rule added to bpcli's registry needs its script text: {', '.join(EXPORT)} in its file "
                "under bpcli/optimizers)")
    rule, s = OPTIMIZERS[train.optimizer], settings_of(train)
    for key in getattr(rule, "unexported", ()):
        default = rule.Settings.model_fields[key].get_default(call_default_factory=True)
        if getattr(s, key) != default:
            return (f"bpcli does not yet export {train.optimizer} with train.{key} set; "
                    f"export a run with {key} left at {default!r}")
    return None


def update_function(train: Any, fast: bool = False) -> Lines:
    """`def update(params, grads)`: the run's optimizer, in place, without autograd."""
    update = OPTIMIZERS[train.optimizer].export_update(settings_of(train), fast)
    body = ["for name, p in params.items():", "    g = grads[name]", *("    " + line for line in update)]
    return ["def update(params, grads):",
            '    """One step of the optimizer, in place."""',
            "    with torch.no_grad():",
            *("        " + line for line in body)]


def setup_lines(train: Any) -> Lines:
    """The optimizer's settings and state."""
    return OPTIMIZERS[train.optimizer].export_setup(train.lr, settings_of(train))


def torch_optim(train: Any) -> str:
    """The torch.optim constructor of the run's optimizer."""
    return OPTIMIZERS[train.optimizer].export_optim(train.lr, settings_of(train))
