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
ends the loop with `loop.halt(status)`; the callbacks after it are not called for that
step. SIGINT or SIGTERM asks the loop to stop after the current step (status
`interrupted`); a second one stops it at once. An exception ends it as `failed`.
"""

from __future__ import annotations

import contextlib
import copy
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
        """End the loop with this status: the callbacks after this one are not called."""
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
        except BaseException:
            self.status = "failed"  # never "completed" for a loop that did not run to its end
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
    waits for it; its other members train on.
    """

    def __init__(self, factor: float, first: float | None = None) -> None:
        self.factor = factor
        self.first = None if first is None else torch.tensor([first], dtype=torch.float64)
        self.at: torch.Tensor | None = None

    def check(self, step: int, losses: torch.Tensor) -> torch.Tensor:
        """Which members' losses break the rule at this step, (K,) on the device; `at` is updated."""
        current = losses.detach().to(torch.float64)
        if self.first is None:
            self.first = current.clone()
        first = self.first.to(current.device)
        if self.at is None:
            self.at = torch.zeros(current.shape, dtype=torch.long, device=current.device)
        bad = ~torch.isfinite(current) | ((first > 0) & (current > self.factor * first))
        self.at = torch.where(bad & (self.at == 0), step, self.at)
        return bad

    def on_log(self, loop: Loop, step: int, losses: torch.Tensor) -> None:
        self.check(step, losses)

    def diverged(self) -> dict[int, int]:
        """The step at which each diverged member diverged, by member."""
        if self.at is None:
            return {}
        return {k: at for k, at in enumerate(self.at.tolist()) if at}


class StopAtDivergence(Divergence):
    """The divergence rule for a single run: the loop ends at the step that breaks it.

    A loss that grew too much is seen on a logged step. A loss or parameter that stopped
    being finite is found at the very step it happened: the state after each good logged
    step is kept (a copy of a few tensors), and when a logged step is not finite the steps
    since the last good one are taken again one by one (the same kernels, so the same
    numbers) until the first that is not. The run then stops there with the parameters
    that step started from, the last finite ones.
    """

    def __init__(self, factor: float, trainer: Any, start: int, first: float | None = None) -> None:
        super().__init__(factor, first)
        self.trainer = trainer
        self.good = (start, copy.deepcopy(trainer.state_dict()))
        self.losses: torch.Tensor | None = None
        """The losses of the step the run stopped at."""
        self.reason: str | None = None
        """Why the run diverged, in words."""

    def on_log(self, loop: Loop, step: int, losses: torch.Tensor) -> None:
        bad = bool(self.check(step, losses)[0])  # reads the device, as the step's row does
        finite = math.isfinite(float(losses[0])) and self._finite_params()
        if not bad and finite:
            self.good = (step, copy.deepcopy(self.trainer.state_dict()))
            return
        if finite:  # a finite loss that grew too much
            first = float(self.first[0]) if self.first is not None else math.nan
            self.reason = divergence_reason(float(losses[0]), first, self.factor)
        else:
            step, losses = self._first_not_finite(loop)
            loss = float(losses[0])
            self.reason = (f"the loss became {loss}" if not math.isfinite(loss)
                           else "the update made the parameters infinite or NaN")
        self.losses = losses
        loop.step = step
        loop.halt("diverged")

    def _finite_params(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.trainer.params().values())

    def _first_not_finite(self, loop: Loop) -> tuple[int, torch.Tensor]:
        """Take the steps since the last good state again, one by one, up to the first whose
        loss or new parameters are not finite; leave the trainer as that step found it."""
        start, state = self.good
        self.trainer.load_state_dict(copy.deepcopy(state))
        for step in range(start + 1, loop.total + 1):
            before = copy.deepcopy(self.trainer.state_dict())
            losses = self.trainer.step((step - 1) % self.trainer.steps_per_epoch, True).reshape(-1).clone()
            if not (math.isfinite(float(losses[0])) and self._finite_params()):
                self.trainer.load_state_dict(before)
                return step, losses
        raise AssertionError("the steps taken again stayed finite; they were not the same steps")


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
