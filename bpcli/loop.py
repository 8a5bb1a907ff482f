"""The one training loop, shared by single runs (K = 1) and sweeps (K members).

The loop steps a trainer from `start + 1` to `total` and tells its callbacks what
happened; everything else a run does (metrics rows, TensorBoard, checkpoints, the
divergence rule, gradient checks, progress) is a callback, listed by whoever starts the
loop (bpcli.lifecycle for runs, bpcli.sweep for sweeps). A callback overrides any of:

    before_step(loop, step, index)   before the update (gradient checks)
    on_log(loop, step, losses)       a logged step: every member's loss, shape (K,), on the device
    after_step(loop, step)           after every step (periodic checkpoints, progress)

A step is logged when it is the first, a multiple of log_every, or the last: only then
is the loss computed and read, so unlogged steps never wait for the device. A callback
ends the loop with `loop.halt(status)`, before the after_step callbacks of that step.
SIGINT or SIGTERM asks the loop to stop after the current step (status `interrupted`);
a second one stops it at once.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from typing import Any, Iterator, Protocol

import torch


class Callback:
    """One concern of the loop; override the hooks it needs (the loop calls only those)."""

    def before_step(self, loop: Loop, step: int, index: int) -> None:
        """Before the update of `step`, which trains on batch `index` of its epoch."""

    def on_log(self, loop: Loop, step: int, losses: torch.Tensor) -> None:
        """A logged step: `losses` holds every member's loss before the update, shape (K,)."""

    def after_step(self, loop: Loop, step: int) -> None:
        """After the update of `step` (and its on_log, if it was logged)."""


def _overrides(callback: Callback, hook: str) -> bool:
    return getattr(type(callback), hook) is not getattr(Callback, hook)


class Loop:
    """Steps `trainer` from step `start + 1` to `total`, calling the callbacks."""

    def __init__(self, trainer: Any, total: int, log_every: int, callbacks: list[Callback],
                 start: int = 0, stoppable: bool = True) -> None:
        self.trainer = trainer
        self.total = total
        self.log_every = log_every
        self.callbacks = callbacks
        self.start = start
        self.stoppable = stoppable
        """Whether SIGINT/SIGTERM stop the loop after a step (under torchrun they end the job)."""
        self.step = start
        """The last step taken."""
        self.status = "completed"
        """completed, or what ended the loop early: interrupted, diverged."""
        self.signal: int | None = None
        """The signal that stopped the loop, if one did."""
        self.seconds = 0.0
        """Time spent in the loop."""

    def logged(self, step: int) -> bool:
        """Whether `step` is recorded: the first, every log_every-th, and the last."""
        return step == 1 or step % self.log_every == 0 or step == self.total

    def epoch(self, step: int) -> int:
        """The epoch (from 1) that `step` belongs to."""
        return (step - 1) // self.trainer.steps_per_epoch + 1

    def halt(self, status: str) -> None:
        """End the loop after the current step's on_log callbacks, with this status."""
        self.status = status

    def run(self) -> Loop:
        """Train to the end, or until a callback halts the loop or a signal stops it."""
        before = [c.before_step for c in self.callbacks if _overrides(c, "before_step")]
        on_log = [c.on_log for c in self.callbacks if _overrides(c, "on_log")]
        after = [c.after_step for c in self.callbacks if _overrides(c, "after_step")]
        steps_per_epoch = self.trainer.steps_per_epoch
        started = time.perf_counter()
        try:
            with self._signals():
                for step in range(self.start + 1, self.total + 1):
                    index = (step - 1) % steps_per_epoch
                    for hook in before:
                        hook(self, step, index)
                    logged = self.logged(step)
                    loss = self.trainer.step(index, logged)
                    self.step = step
                    if logged:
                        losses = loss.reshape(-1)
                        for hook in on_log:
                            hook(self, step, losses)
                        if self.status != "completed":
                            break
                    for hook in after:
                        hook(self, step)
                    if self.signal is not None:
                        self.status = "interrupted"
                        break
        except KeyboardInterrupt:
            # A second Ctrl-C stops at once, possibly mid-step.
            self.status = "interrupted"
            raise
        finally:
            self.seconds = time.perf_counter() - started
        return self

    def _request_stop(self, signum: int, frame: Any) -> None:
        if self.signal is not None:
            raise KeyboardInterrupt  # asked twice: stop now
        self.signal = signum

    @contextlib.contextmanager
    def _signals(self) -> Iterator[None]:
        # Signal handlers can only be set from the main thread; elsewhere Ctrl-C keeps
        # Python's default behaviour.
        if not self.stoppable or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


class Divergence(Callback):
    """The divergence rule: a member has diverged at the first logged step whose loss is NaN
    or infinite, or over `factor` times its first logged loss.

    Each member's diverged step is kept on the device (`at`, 0 for none), so a sweep never
    waits for it; with `halt` (single runs) the loop ends when member 0 diverges.
    """

    def __init__(self, factor: float, halt: bool, first: float | None = None) -> None:
        self.factor = factor
        self.halt = halt
        self.first = None if first is None else torch.tensor([first], dtype=torch.float64)
        self.at: torch.Tensor | None = None
        self.reason: str | None = None
        """Why member 0 diverged (set when the loop is halted)."""

    def on_log(self, loop: Loop, step: int, losses: torch.Tensor) -> None:
        current = losses.detach().to(torch.float64)
        if self.first is None:
            self.first = current.clone()
        first = self.first.to(current.device)
        if self.at is None:
            self.at = torch.zeros(current.shape, dtype=torch.long, device=current.device)
        bad = ~torch.isfinite(current) | ((first > 0) & (current > self.factor * first))
        self.at = torch.where(bad & (self.at == 0), step, self.at)
        if self.halt and bool(bad[0]):  # reads the device: single runs only
            self.reason = divergence_reason(float(current[0]), float(first[0]), self.factor)
            loop.halt("diverged")

    def diverged(self) -> dict[int, int]:
        """The step at which each diverged member diverged, by member."""
        if self.at is None:
            return {}
        return {k: at for k, at in enumerate(self.at.tolist()) if at}


def divergence_reason(loss: float, first: float, factor: float) -> str:
    """Why a logged loss means the run diverged (the rule of Divergence, in words)."""
    if not math.isfinite(loss):
        return f"the loss became {loss}"
    return f"the loss grew to {loss:.4g}, over {factor:g} times its first value {first:.4g}"


class Reporter(Protocol):
    """What a console (or a notebook) is told while a run trains; see bpcli.console."""

    def on_start(self, total_steps: int, run_dir: Any, device: str, start_step: int = 0) -> None: ...

    def on_log(self, row: dict[str, float]) -> None: ...

    def on_progress(self, step: int) -> None: ...


class Progress(Callback):
    """Moves a reporter's progress display about 500 times a run, without reading the device."""

    def __init__(self, reporter: Reporter, total: int) -> None:
        self.reporter = reporter
        self.every = max(1, total // 500)

    def after_step(self, loop: Loop, step: int) -> None:
        if step % self.every == 0:
            self.reporter.on_progress(step)
