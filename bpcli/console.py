"""Terminal output of a run: a progress bar on a terminal, plain lines elsewhere, a final table.

On a TTY, rich draws a live progress bar (step, loss, elapsed, ETA). When stdout is a
pipe, a file or CI, the same progress comes out as one plain line per logged step, with
no colour codes or carriage returns, so logs stay readable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


def _fmt(value: Any, digits: int = 6) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


class ConsoleObserver:
    """Reports a run's progress on a console (see bpcli.training.Observer)."""

    def __init__(self, console: Console, title: str) -> None:
        self.console = console
        self.title = title
        self.total = 0
        self._progress: Progress | None = None
        self._task: Any = None

    def on_start(self, total_steps: int, run_dir: Path | None, device: str, start_step: int = 0) -> None:
        self.total = total_steps
        where = f" → {run_dir}" if run_dir else ""
        steps = f"steps {start_step + 1} to {total_steps}" if start_step else f"{total_steps} steps"
        self.console.print(f"{self.title} on {device}: {steps}{where}", soft_wrap=True)
        if self.console.is_terminal:
            self._progress = Progress(
                TextColumn("[bold]training"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("loss {task.fields[loss]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self._task = self._progress.add_task("train", total=total_steps, completed=start_step, loss="…")
            self._progress.start()

    def on_log(self, row: dict[str, float]) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=int(row["step"]), loss=f"{row['loss']:.6g}")
            return
        step, epoch = int(row["step"]), int(row["epoch"])
        rest = "  ".join(f"{k} {_fmt(v)}" for k, v in row.items() if k not in ("step", "epoch"))
        # soft_wrap: one line per step, however narrow the (non-)terminal.
        self.console.print(f"step {step}/{self.total}  epoch {epoch}  {rest}", soft_wrap=True)

    def on_progress(self, step: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=step)

    def close(self) -> None:
        """Stop the live display (safe to call more than once)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def print_result(console: Console, summary: dict[str, Any], run_dir: Path | None) -> None:
    """The end-of-run table: parameters against the truth, loss, predictions, where it went."""
    table = Table(title=f"{summary['kind']}: {summary['status']}", show_header=True)
    table.add_column("")
    table.add_column("value", justify="right")
    table.add_column("true", justify="right")
    true = summary.get("true_params") or {}
    for name, values in (summary.get("params") or {}).items():
        for i, value in enumerate(values):
            label = name if len(values) == 1 else f"{name}[{i}]"
            target = true.get(name)
            table.add_row(label, _fmt(value, 8), _fmt(target) if target is not None else "")
    table.add_row("final loss", _fmt(summary.get("final_loss")), "")
    for p in summary.get("predictions") or []:
        table.add_row(f"ŷ at x = {p['x']:g}", _fmt(p["y_pred"], 8), "")
    table.add_row("steps", f"{summary['steps']} ({summary['epochs']} epochs)", "")
    table.add_row("time", f"{summary.get('train_seconds', 0.0):.2f} s", "")
    table.add_row("device", str(summary["device"]), "")
    if run_dir is not None:
        table.add_row("run directory", str(run_dir), "")
    console.print(table)


def print_verification(console: Console, report: Any) -> None:
    """The outcome of `bpcli rerun --verify`: a verdict line and the first differing step."""
    mark = "[green]reproduces[/green]" if report.matches else "[red]does not reproduce[/red]"
    console.print(f"{report.run_dir}: {mark} ({len(report.compared)} logged losses compared)")
    if not report.matches:
        step, was, now = report.mismatch
        console.print(f"  first difference at step {step}: recorded {was!r}, now {now!r}", soft_wrap=True)
