"""A run's progress on the console: what happens before the first step, then a progress bar.

On a terminal, a spinner says what bpcli is doing until the first step (loading torch,
building the data and the model), rich draws a live progress bar (step, loss, elapsed,
ETA), and a spinner shows while the run directory is saved. When stdout is a pipe, a file
or CI, the progress comes out as at most PLAIN_LINES + 1 plain lines spread over the run,
with no colour codes or carriage returns, so logs stay short and readable.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Iterator

from rich.console import Console
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.spinner import Spinner

from bpcli.console.common import fmt

PLAIN_LINES = 20
"""Away from a terminal, a run prints a progress line for its first logged step and for the
first logged step in each twentieth of its steps, the last step being the last twentieth's:
at most PLAIN_LINES + 1 lines, whatever train.log_every is."""

PLAIN_VALUES = 6
"""A plain line shows the logged values other than gradients when there are at most this
many; beyond that only the loss and the measures of fit (metrics.csv has every column)."""

_HEADLINE = ("loss", "val_loss", "distance_to_optimum", "min", "max", "nan_or_inf")


class ConsoleObserver:
    """Reports a run's progress on a console (a bpcli.loop.Reporter)."""

    def __init__(self, console: Console, title: str = "") -> None:
        self.console = console
        self.title = title
        """The first words of the line printed when training starts."""
        self.total = 0
        self.start = 0
        self.run_dir: Path | None = None
        self._spinner: Any = None
        self._progress: Progress | None = None
        self._task: Any = None
        self._started = time.perf_counter()
        self._slot = -1  # the twentieth of the run whose plain line was printed last
        # The last logged row, if not printed, and the training time when it was logged: a
        # diverged or interrupted run prints it as it ends, after its files and figures, and
        # its line must say when the step was taken, as the table's training time does.
        self._unprinted: tuple[dict[str, float], float] | None = None

    def stage(self, what: str) -> None:
        """On a terminal, say what bpcli is doing before training starts (a spinner)."""
        if not self.console.is_terminal:
            return
        spinner = Spinner("dots" if self.console.encoding.lower().startswith("utf") else "line", f"{what}…")
        if self._spinner is None:
            self._spinner = Live(spinner, console=self.console, refresh_per_second=12.5, transient=True)
            self._spinner.start(refresh=True)
        else:
            self._spinner.update(spinner, refresh=True)

    def on_start(self, total_steps: int, run_dir: Path | None, device: str, start_step: int = 0) -> None:
        self._stop_spinner()
        self.total, self.start, self.run_dir = total_steps, start_step, run_dir
        self._started = time.perf_counter()
        where = f" → {run_dir}" if run_dir else ""
        steps = (f"steps {start_step + 1} to {total_steps}" if start_step
                 else f"{total_steps} step" + ("s" if total_steps != 1 else ""))
        self.console.print(f"{self.title} on {device}: {steps}{where}", soft_wrap=True)
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(bar_width=self._bar_width(total_steps)),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
            )
            # "starting" until the first step is done (on a GPU: warm-up steps and graph capture)
            self._task = self._progress.add_task("starting", total=total_steps, completed=start_step, loss="…")
            self._progress.start()

    def _bar_width(self, total: int) -> int:
        """Up to 40 columns, leaving the numbers beside the bar room, and the line a few spare
        columns: a full line wraps when Ctrl-C echoes `^C`, and the bar is then drawn twice."""
        beside = 52 + 2 * len(str(total))  # "training", step/total, "loss 1.23456e-05", elapsed, ETA
        return max(10, min(40, self.console.width - beside - 4))

    def on_log(self, row: dict[str, float]) -> None:
        step = int(row["step"])
        if self._progress is not None:
            self._progress.update(self._task, completed=step, loss=f"{row['loss']:.6g}", description="training")
            if step == self.total:  # the bar stays as it ended; the spinner covers saving
                self._stop_progress()
                self.stage(f"saving {self.run_dir}" if self.run_dir else "finishing")
            return
        if self.console.is_terminal:
            return
        slot = (step - self.start) * PLAIN_LINES // max(1, self.total - self.start)
        elapsed = time.perf_counter() - self._started
        if slot > self._slot:
            self._slot = slot
            self._print_line(row, elapsed)
        else:
            self._unprinted = (row, elapsed)

    def on_progress(self, step: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=step)

    def close(self) -> None:
        """Stop the live display, or print the last logged row if it has no line yet (a run
        that diverged or was interrupted); safe to call more than once."""
        self._stop_spinner()
        self._stop_progress()
        if self._unprinted is not None:
            self._print_line(*self._unprinted)

    def _print_line(self, row: dict[str, float], elapsed: float) -> None:
        self._unprinted = None
        values = {k: v for k, v in row.items() if k not in ("step", "epoch") and not k.startswith("grad_")}
        if len(values) > PLAIN_VALUES:
            values = {k: v for k, v in values.items() if k in _HEADLINE}
        shown = "  ".join(f"{k} {fmt(v)}" for k, v in values.items())
        # soft_wrap: one line per step, however narrow the (non-)terminal.
        self.console.print(f"step {int(row['step'])}/{self.total}  epoch {int(row['epoch'])}  {shown}  "
                           f"({elapsed:.1f} s)", soft_wrap=True)

    def _stop_spinner(self) -> None:
        if self._spinner is not None:
            self._spinner.stop()
            self._spinner = None

    def _stop_progress(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


@contextlib.contextmanager
def progress(console: Console, title: str = "", quiet: bool = False) -> Iterator[ConsoleObserver | None]:
    """A ConsoleObserver for the duration of a run (None when quiet), its live display
    stopped however the run ends."""
    observer = None if quiet else ConsoleObserver(console, title)
    try:
        yield observer
    finally:
        if observer is not None:
            observer.close()


def starting(observer: ConsoleObserver | None, what: str, title: str | None = None) -> None:
    """Tell the console what happens before the first step (and, once known, the run's title)."""
    if observer is None:
        return
    if title is not None:
        observer.title = title
    observer.stage(what)
