"""Ctrl-C while a training command starts up: noted, and honoured before the first step.

Starting takes about a second, most of it importing torch. A KeyboardInterrupt raised in
the middle of an import can leave a module half-initialised (numpy, torch), and the run
then fails far from its cause, or trains on as if nothing happened. So the commands that
train call `defer()` first: a SIGINT or SIGTERM that comes before the run installs its own
handlers (bpcli.loop.StopRequest) is recorded here, and the run stops as `interrupted`
before its first step. A second signal is recorded too (never raised mid-import); a third
stops at once. This module imports nothing heavy.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

pending: int | None = None
"""The signal that came before the run took over, if one did."""


received = False
"""Whether a signal came while deferred, even one already handled: an error that follows
one (a module left half imported by a second Ctrl-C) is the interruption's, not a bug."""


stopping = False
"""Whether a KeyboardInterrupt was raised here already: the command is stopping, and a
signal that comes while it does is only noted (a second one, raised in the middle of
that, would end Python itself by the signal, with no word said)."""


_count = 0  # signals noted since defer()


def _note(signum: int, frame: Any) -> None:
    global pending, received, stopping, _count
    received, _count = True, _count + 1
    # A second signal is noted like the first: raised in the middle of an import (torch's
    # takes a second or two) it left modules half made, and the run failed later instead
    # of stopping. A third means it: stop now.
    if _count >= 3 and not stopping:
        stopping = True
        raise KeyboardInterrupt
    pending = pending or signum


def defer() -> None:
    """Record SIGINT and SIGTERM from now on instead of raising (main thread only)."""
    global received, stopping, _count
    received = stopping = False
    _count = 0
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, _note)


def take() -> int | None:
    """The signal recorded so far, if any, which the caller now handles."""
    global pending
    signum, pending = pending, None
    return signum


@contextlib.contextmanager
def holding() -> Iterator[None]:
    """Inside, `check` stops nothing: the files that end a sweep are written whole, and a
    signal then (noted) leaves the sweep as it ended, as for a run (StopRequest.held)."""
    global _holding
    _holding = True
    try:
        yield
    finally:
        _holding = False


_holding = False


def check() -> None:
    """Stop here (KeyboardInterrupt) if a signal was recorded: the commands that write files
    rather than train (plot, animate, compare) call this between files and frames, so a
    signal stops them where no file is half written and no module half imported."""
    global stopping
    if not _holding and take() is not None and not stopping:
        stopping = True
        raise KeyboardInterrupt
