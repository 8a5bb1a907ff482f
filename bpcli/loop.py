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

from bpcli import interrupts
from bpcli.kinds.base import batch_index


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


class StopRequest:
    """SIGINT and SIGTERM turned into a request to stop after the current step; a second
    signal while the loop steps stops at once (KeyboardInterrupt)."""

    def __init__(self) -> None:
        self.signum: int | None = interrupts.take()
        """The signal that asked to stop, if one did (one during start-up counts: see
        bpcli.interrupts)."""
        self.held = True
        """Whether a signal is only noted, never raised: outside the loop's steps, while a
        run's files are set up or written at its end, where a KeyboardInterrupt could land
        in a half-written file or a half-imported module (Loop.run lifts it while it steps)."""

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None and not self.held:
            raise KeyboardInterrupt  # asked twice: stop now
        self.signum = self.signum or signum


    @contextlib.contextmanager
    def installed(self) -> Iterator[StopRequest]:
        """The handlers for SIGINT and SIGTERM while inside, the previous ones after."""
        # Signal handlers can only be set from the main thread; elsewhere Ctrl-C keeps
        # Python's default behaviour.
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


class Loop:
    """Steps `trainer` from step `start + 1` to `total`, calling the callbacks.

    A signal stops it after the current step: one that came through `stop`, whose handlers
    the caller installed (so that a signal before the first step counts too), or, when no
    `stop` is given and the loop is `stoppable`, one that came while it ran.
    """

    def __init__(self, trainer: Any, total: int, log_every: int, callbacks: list[Callback],
                 start: int = 0, stoppable: bool = True, stop: StopRequest | None = None) -> None:
        self.trainer = trainer
        self.total = total
        self.log_every = log_every
        self.callbacks = callbacks
        self.start = start
        self.stop = stop or StopRequest()
        # Under torchrun the launcher forwards signals to every process, which would each
        # stop at a different step: there a loop is not stoppable and Ctrl-C ends the job.
        self._install = stoppable and stop is None
        self.step = start
        """The last step taken."""
        self.status = "completed"
        """completed, or what ended the loop early: interrupted, diverged, failed."""
        self.seconds = 0.0
        """Time spent in the loop."""

    @property
    def signal(self) -> int | None:
        """The signal that stopped the loop, if one did."""
        return self.stop.signum if self.status == "interrupted" else None

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
        shuffles = self.trainer.shuffle
        stop = self.stop
        started = time.perf_counter()
        stop.held = False  # a second signal while stepping stops at once
        try:
            with stop.installed() if self._install else contextlib.nullcontext():
                for step in range(self.start + 1, self.total + 1):
                    if stop.signum is not None:
                        self.status = "interrupted"
                        break
                    index = batch_index(self.trainer, step) if shuffles else (step - 1) % steps_per_epoch
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
        except KeyboardInterrupt:
            # A second Ctrl-C stops at once, possibly mid-step.
            self.status = "interrupted"
            raise
        except BaseException:
            self.status = "failed"  # never "completed" for a loop that did not run to its end
            raise
        finally:
            stop.held = True  # what follows (a run's final files and figures) is written whole
            self.seconds = time.perf_counter() - started
        return self


class Divergence(Callback):
    """The divergence rule, exact to the step, for every member of a run or a sweep.

    A member has diverged at the first step whose loss is NaN or infinite, or over `factor`
    times its first logged loss (or `first`: for per-sample and mini-batch training, the
    loss of the initial parameters on all the samples, since one batch's loss may be far
    below the data's), or whose update left its parameters infinite or NaN.

    The rule is checked on logged steps; the state after each one where no new member broke
    it is kept (a copy of a few tensors). When a logged step shows a member newly breaking
    it, the steps since the last good state are taken again one by one (the same kernels on
    the same tensors, so the same numbers), checking each, so every member's step does not
    depend on how often the run logs. The other members train on; when every member has
    diverged the loop ends at the step the last one did, and if that step left a loss or a
    parameter not finite, with the state it started from (a single run keeps its last
    finite parameters).
    """

    def __init__(self, factor: float, trainer: Any, start: int = 0,
                 first: float | torch.Tensor | None = None) -> None:
        self.factor = factor
        self.trainer = trainer
        self.first = None if first is None else torch.as_tensor(first, dtype=torch.float64).reshape(-1)
        self.good = (start, copy.deepcopy(trainer.state_dict()))
        """The last logged step at which no new member had diverged, and the state after it."""
        self.at: torch.Tensor | None = None
        """Each member's diverged step, 0 for none, (K,) on the CPU."""
        self.reasons: dict[int, str] = {}
        """Why each diverged member diverged, in words."""
        self.started: dict[int, list[dict[str, Any]]] = {}
        """For each step at which a member diverged, the states that step and the one before it
        started from, latest first (the one before only where it was taken again): what
        bpcli.divergence reads to say why."""
        self.losses: torch.Tensor | None = None
        """The losses of the step the loop stopped at, when every member diverged."""
        self.ended: dict[int, tuple[float, dict[str, torch.Tensor]]] = {}
        """Each diverged member as a run of its own would end: the loss at its step, and its
        parameters after that step, or before it where the step left them not finite."""

    def kept_finite(self) -> bool:
        """Whether every member not known to have diverged has finite parameters (reads the
        device): a checkpoint is never taken of a state that has silently gone bad."""
        params = self.trainer.params()
        members = next(iter(params.values())).shape[0] if params else 1
        known = self.at > 0 if self.at is not None else torch.zeros(members, dtype=torch.bool)
        return bool((member_finite(params, members) | known).all())

    def snapshot(self) -> dict[str, Any]:
        """What a checkpoint keeps of the rule, so that a resumed run or sweep finds the same
        steps: the last good state (which may lie before the checkpoint's step) and the
        members known to have diverged."""
        return {"good_step": self.good[0], "good_state": self.good[1], "first": self.first, "at": self.at,
                "reasons": {str(k): why for k, why in self.reasons.items()},
                "ended": {str(k): [loss, params] for k, (loss, params) in self.ended.items()}}

    def restore(self, snapshot: dict[str, Any]) -> None:
        """The rule as a checkpoint's snapshot left it."""
        self.good = (snapshot["good_step"], snapshot["good_state"])
        self.first, self.at = snapshot["first"], snapshot["at"]
        self.reasons = {int(k): why for k, why in snapshot["reasons"].items()}
        self.ended = {int(k): (loss, params) for k, (loss, params) in snapshot["ended"].items()}

    def on_log(self, loop: Loop, step: int, losses: torch.Tensor) -> None:
        if self.first is None:
            self.first = losses.detach().to(torch.float64).cpu().clone()
        if self.at is None:
            self.at = torch.zeros(losses.shape, dtype=torch.long)
        new = self._breaks(losses, self.trainer.params()) & (self.at == 0)
        if not bool(new.any()):  # reads the device, as a logged row does
            self.good = (step, copy.deepcopy(self.trainer.state_dict()))
            return
        self._search(loop, step, new)
        if bool((self.at > 0).all()):
            loop.halt("diverged")
        else:  # the steps taken again ended where the loop is: that state is the new good one
            self.good = (step, copy.deepcopy(self.trainer.state_dict()))

    def _breaks(self, losses: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Which members break the rule, (K,) on the CPU."""
        current = losses.detach().reshape(-1).to(torch.float64).cpu()
        first = self.first if self.first is not None else current
        grown = (first > 0) & (current > self.factor * first)
        return ~torch.isfinite(current) | grown | ~member_finite(params, current.numel())

    def _search(self, loop: Loop, last: int, new: torch.Tensor) -> None:
        """Take the steps since the last good state again, one by one, up to `last`, giving
        each member that breaks the rule on the way (the `new` ones at the latest) its step
        and reason."""
        assert self.at is not None and self.first is not None
        start, state = self.good
        self.trainer.load_state_dict(state)  # copied into the parameters: `state` stays as it was
        previous: dict[str, Any] | None = None
        for step in range(start + 1, last + 1):
            before = copy.deepcopy(self.trainer.state_dict())
            params_before = {name: p.detach().clone() for name, p in self.trainer.params().items()}
            losses = self.trainer.step(batch_index(self.trainer, step), True).reshape(-1).clone()
            params = self.trainer.params()
            found = self._breaks(losses, params) & (self.at == 0)
            if bool(found.any()):
                values = losses.to(torch.float64).cpu().tolist()
                finite_params = member_finite(params, len(values))
                overflowed = False  # whether a member found here has a loss or parameters not finite
                for k in found.nonzero().reshape(-1).tolist():
                    finite_k = math.isfinite(values[k]) and bool(finite_params[k])
                    overflowed |= not finite_k
                    self.at[k] = step
                    self.reasons[k] = (divergence_reason(values[k], float(self.first[k]), self.factor)
                                       if not math.isfinite(values[k]) or finite_params[k]
                                       else "the update made the parameters infinite or NaN")
                    kept = params if finite_k else params_before
                    self.ended[k] = (values[k], {name: t[k].detach().clone() for name, t in kept.items()})
                self.started[step] = [before] if previous is None else [before, previous]
                if bool((self.at > 0).all()):
                    self.losses = losses
                    if overflowed:
                        self.trainer.load_state_dict(before)  # the last finite parameters
                    loop.step = step
                    return
            previous = before
        if bool((new & (self.at == 0)).any()):
            raise AssertionError("the steps taken again kept to the rule; they were not the same steps")

    def diverged(self) -> dict[int, int]:
        """The step at which each diverged member diverged, by member."""
        if self.at is None:
            return {}
        return {k: at for k, at in enumerate(self.at.tolist()) if at}


def member_finite(tensors: dict[str, torch.Tensor], members: int) -> torch.Tensor:
    """Whether every value of each member's tensors is a finite number, (K,) on the CPU."""
    checks = [torch.isfinite(t.detach().reshape(members, -1)).all(1) for t in tensors.values()]
    return torch.stack(checks).all(0).cpu() if checks else torch.ones(members, dtype=torch.bool)


def finite(tensors: dict[str, torch.Tensor]) -> bool:
    """Whether every value of every tensor is a finite number (reads the device)."""
    return all(bool(torch.isfinite(t).all()) for t in tensors.values())


def divergence_reason(loss: float, first: float, factor: float) -> str:
    """Why a logged loss means the run diverged (the rule of Divergence, in words)."""
    if not math.isfinite(loss):
        return f"the loss became {loss}"
    return f"the loss grew to {loss:.4g}, over {factor:g} times its initial value {first:.4g}"


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
