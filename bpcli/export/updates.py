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

def unwritten(train: Any, torch_optim: bool) -> str | None:
    """Why the script cannot write this `train` section's update, or None when it can. The
    script steps the rule by hand (`export_setup`, `export_update`) or, where `torch_optim`,
    with torch.optim's own class (`export_optim`); a rule may lack them, or declare settings
    its text does not write (`unexported`)."""
    needs = ("export_optim",) if torch_optim else ("export_setup", "export_update")
    rule = OPTIMIZERS[train.optimizer]
    missing = [key for key in needs if not hasattr(rule, key)]
    if missing:
        able = [name for name, other in OPTIMIZERS.items() if all(hasattr(other, key) for key in needs)]
        return (f"bpcli exports runs of the optimizers {', '.join(able)}, and this one used {train.optimizer}, whose "
                f"rule has no {' and no '.join(missing)} (its script text, in its file under bpcli/optimizers)")
    s = settings_of(train)
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
