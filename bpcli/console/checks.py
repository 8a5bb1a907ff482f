"""Checks a user asks for: `bpcli rerun --verify`'s verdict and `bpcli check`'s gradients
three ways."""

from __future__ import annotations

import math
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from bpcli.console.common import show


def print_verification(console: Console, report: Any) -> None:
    """The outcome of `bpcli rerun --verify`: a verdict line and the first difference."""
    mark = "[green]reproduces[/green]" if report.matches else "[red]does not reproduce[/red]"
    console.print(f"{report.run_dir}: {mark} ({report.rows} logged losses compared, with every other "
                  "recorded column)", soft_wrap=True)
    first = report.mismatch
    if first is None:
        return
    if first.recorded is None or first.now is None:
        where = "metrics.csv lacks it" if first.recorded is None else "the re-run does not log it"
        console.print(f"  first difference at step {first.step}: {where}", soft_wrap=True)
    else:
        console.print(f"  first difference at step {first.step} ({first.column}): recorded {first.recorded!r}, "
                      f"now {first.now!r}", soft_wrap=True)


def _values(values: list[float]) -> str:
    if len(values) == 1:  # six digits, so that the table fits 80 columns; the errors say how far apart
        return f"{values[0]:.6g}"
    return f"|{sum(v * v for v in values if v == v) ** 0.5:.6g}|"


def print_grad_checks(console: Console, checks: list[Any], kind: str) -> None:
    """The table of `bpcli check`: each parameter's gradient three ways, and their errors."""
    from bpcli.gradcheck import TOLERANCE  # imports torch, as the checks themselves did

    table = Table(title=f"{kind}: dL/dθ three ways, in float64", box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0),
                  caption="|g| is the norm of a tensor's gradient; errors are relative")
    for header in ("step", "θ", "manual", "autograd", "finite diff", "err manual", "err f.d."):
        table.add_column(header, justify="left" if header == "θ" else "right", no_wrap=True)
    def error(value: float) -> str:  # NaN: a value was infinite or NaN, so no error is measured
        return f"{value:.1e}" if math.isfinite(value) else "n/c"

    for c in checks:
        verdict = "[green]" if c.ok else "[red]" if c.comparable else "[yellow]"
        table.add_row(
            str(c.step), c.name if len(c.manual) == 1 else f"{c.name} ({len(c.manual)})",
            _values(c.manual), _values(c.autograd), _values(c.finite_difference),
            f"{verdict}{error(c.manual_vs_autograd)}", error(c.fd_vs_autograd),
        )
    show(console, table)
    compared = [c for c in checks if c.comparable]
    tolerance = f"{TOLERANCE:.0e}".replace("e-0", "e-")  # 1e-6, not Python's 1e-06
    lost = next((c for c in checks if not c.comparable), None)
    if lost is not None:
        console.print(f"n/c: not comparable, a gradient is infinite or NaN; from step {lost.step} ({lost.name}) the "
                      "methods cannot be compared", soft_wrap=True)
    if not compared:
        return
    steps = sorted({c.step for c in compared})
    where = f" at steps {steps[0]} to {steps[-1]}" if lost is not None and len(steps) > 1 else \
        f" at step {steps[0]}" if lost is not None else ""
    status = "agree" if all(c.ok for c in compared) else "DISAGREE"
    fd = [c.fd_vs_autograd for c in compared if math.isfinite(c.fd_vs_autograd)]
    differences = f"; finite differences agree to {max(fd):.1e}" if fd else ""
    console.print(f"manual and autograd {status}{where}: worst relative error "
                  f"{max(c.manual_vs_autograd for c in compared):.1e} (tolerance {tolerance}){differences}",
                  soft_wrap=True)
