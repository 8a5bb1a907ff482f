"""`bpcli check`: the hand-derived gradients against autograd and finite differences."""

from __future__ import annotations

from typing import Annotated

import typer

from bpcli.cli.options import ConfigArg, Device, Lr, Seed, Set


def check(
    config: ConfigArg,
    steps: Annotated[int, typer.Option("--steps", min=1, max=10_000, help="How many training steps to check.")] = 5,
    lr: Lr = None,
    seed: Seed = None,
    device: Device = None,
    set_: Set = None,
) -> None:
    """Compare bpcli's hand-derived gradients with autograd's and finite differences (float64).

    For each of the first --steps steps of training, every parameter's gradient is computed
    three ways at the same point. Exits 1, naming the parameter and step, if manual and
    autograd disagree by more than 1e-6 (relative).
    """
    from bpcli.config import from_flags, load_config
    from bpcli.console import make_console, print_grad_checks
    from bpcli.errors import RunFailed
    from bpcli.gradcheck import TOLERANCE, check_steps
    from bpcli.lifecycle import build

    cfg = load_config(config, from_flags(set_, lr=lr, seed=seed, device=device))
    checks = check_steps(build(cfg).trainer, steps)
    print_grad_checks(make_console(), checks, cfg.kind)
    bad = next((c for c in checks if not c.ok), None)
    if bad is not None:
        raise RunFailed(
            f"the hand-derived gradient of {bad.name} disagrees with autograd at step {bad.step} "
            f"(relative error {bad.manual_vs_autograd:.2e} > {TOLERANCE:g})"
        )
