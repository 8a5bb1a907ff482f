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
    """Compare bpcli's hand-derived gradients with autograd's and finite differences (float64),
    and its hand-written update rule with torch.optim's.

    For each of the first --steps steps of training, every parameter's gradient is computed
    three ways at the same point. Exits 1, naming the parameter and step, if manual and
    autograd disagree by more than 1e-6 (relative), or if the configured optimizer's
    hand-written update (and lr schedule), fed the same gradients, differs from torch.optim's by more
    than 1e-10 (relative, float64). Infinite or NaN gradients are not comparable, never agreement:
    exits 1 naming the first step that has one.
    """
    from bpcli.config import from_flags, load_config
    from bpcli.console import make_console, print_grad_checks
    from bpcli.errors import RunFailed
    from bpcli.gradcheck import TOLERANCE, UPDATE_TOLERANCE, check_training, check_update
    from bpcli.build import build

    cfg = load_config(config, from_flags(set_, lr=lr, seed=seed, device=device))
    trainer = build(cfg).trainer
    start = {name: p.detach().clone() for name, p in trainer.params().items()}
    checks, gradients = check_training(trainer, steps)
    update = check_update(cfg.train, start, gradients, cfg.train.epochs * trainer.steps_per_epoch)
    console = make_console()
    print_grad_checks(console, checks, cfg.kind)
    of = f" of {update.given}" if update.steps < update.given else ""
    console.print(f"update rule {update.optimizer}: bpcli's vs torch.optim's on the same {update.steps}{of} "
                  f"gradients, worst relative difference {update.difference:.1e} (float64)"
                  + (" (the rest are not comparable: infinite or NaN)" if of else ""),
                  highlight=False, soft_wrap=True)
    bad = next((c for c in checks if c.disagrees), None)
    if bad is not None:
        raise RunFailed(
            f"the hand-derived gradient of {bad.name} disagrees with autograd at step {bad.step} "
            f"(relative error {bad.manual_vs_autograd:.2e} > {TOLERANCE:g})"
        )
    if not update.ok:
        raise RunFailed(f"bpcli's {update.optimizer} update differs from torch.optim's by "
                        f"{update.difference:.2e} (relative) > {UPDATE_TOLERANCE:g}")
    lost = next((c for c in checks if not c.comparable), None)
    if lost is not None:
        values = f"manual {_first(lost.manual)}, autograd {_first(lost.autograd)}"
        advice = f"check fewer steps (--steps {lost.step - 1})" if lost.step > 1 else "check another point"
        raise RunFailed(
            f"the gradient of {lost.name} at step {lost.step} is not finite ({values}), so the methods are not "
            f"comparable from there, neither agreeing nor disagreeing; {advice}, or train with a smaller --lr "
            "so that the steps stay finite")


def _first(values: list[float]) -> str:
    """The first value of a gradient that is not finite, as a message shows it."""
    shown = next((v for v in values if v != v or v in (float("inf"), float("-inf"))), values[0])
    return f"{shown:g}"
