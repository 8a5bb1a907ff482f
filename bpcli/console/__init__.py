"""What the terminal shows, one module per thing shown; rich only, never torch at import.

    common     the console itself, number formatting, tables that fit or fall back to lines
    progress   what happens before the first step, the progress bar or plain progress lines
    results    a run's end-of-run table and a classifier's confusion matrices
    checks     `bpcli rerun --verify`'s verdict and `bpcli check`'s gradient table
    graph      `bpcli explain`'s forward pass, chain rule and update
    sweep      a sweep's table of aggregates
"""

from __future__ import annotations

from bpcli.console.checks import print_grad_checks, print_verification
from bpcli.console.common import make_console
from bpcli.console.graph import print_graph
from bpcli.console.progress import PLAIN_LINES, ConsoleObserver, progress, starting
from bpcli.console.results import print_result
from bpcli.console.sweep import print_sweep

__all__ = ["PLAIN_LINES", "ConsoleObserver", "make_console", "print_graph", "print_grad_checks", "print_result",
           "print_sweep", "print_verification", "progress", "starting"]
