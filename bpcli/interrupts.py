"""Ctrl-C while a training command starts up: noted, and honoured before the first step.

Starting takes about a second, most of it importing torch. A KeyboardInterrupt raised in
the middle of an import can leave a module half-initialised (numpy, torch), and the run
then fails far from its cause, or trains on as if nothing happened. So the commands that
train call `defer()` first: a SIGINT or SIGTERM that comes before the run installs its own
handlers (bpcli.loop.StopRequest) is recorded here, and the run stops as `interrupted`
before its first step. A second signal stops at once. This module imports nothing heavy.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

pending: int | None = None
"""The signal that came before the run took over, if one did."""


def _note(signum: int, frame: Any) -> None:
    global pending
    if pending is not None:
        raise KeyboardInterrupt  # asked twice: stop now
    pending = signum


def defer() -> None:
    """Record SIGINT and SIGTERM from now on instead of raising (main thread only)."""
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, _note)


def take() -> int | None:
    """The signal recorded so far, if any, which the caller now handles."""
    global pending
    signum, pending = pending, None
    return signum
