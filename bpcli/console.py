"""Terminal output of a run: what happens before the first step, a progress bar, a final table.

On a terminal, a spinner says what bpcli is doing until the first step (loading torch,
building the data and the model), rich draws a live progress bar (step, loss, elapsed,
ETA), and a spinner shows while the run directory is saved. When stdout is a pipe, a file
or CI, the progress comes out as at most PLAIN_LINES + 1 plain lines spread over the run,
with no colour codes or carriage returns, so logs stay short and readable.
"""

from __future__ import annotations

import math

import contextlib
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from rich import box
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
from rich.table import Table
from rich.text import Text

from bpcli.optimizers import DEFAULT
from bpcli.rundir.run import MAX_LOGGED_VALUES
from bpcli.symbols import plain


class _Console(Console):
    """A rich Console that spells bpcli's symbols in ASCII before laying text out, on a
    terminal that cannot show them (so `θ` becomes `theta` and the table grows to fit)."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(plain(text, self.encoding), **kwargs)


def make_console() -> Console:
    """The console commands print to: a terminal's own width, or 120 columns in a log."""
    import os
    import sys

    wide = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120
    return _Console(highlight=False, width=wide)


def _fmt(value: Any, digits: int = 6) -> str:
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


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
        shown = "  ".join(f"{k} {_fmt(v)}" for k, v in values.items())
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


RESULT_COLUMNS = ("value", "true", "optimum", "value, data units", "optimum, data units")
"""The columns of the end-of-run table after the row's name, in order; one that no row
fills is left out (an MLP has no true values, CSV data neither, and only standardised
data have original units beside the model's own)."""


def print_result(console: Console, summary: dict[str, Any], run_dir: Path | None) -> None:
    """The end-of-run table: parameters against the truth, loss, predictions, where it went."""
    rows: list[tuple[str, dict[str, str]]] = []

    def row(label: str, value: str, true: str = "", optimum: str = "", value_original: str = "",
            optimum_original: str = "") -> None:
        rows.append((label, dict(zip(RESULT_COLUMNS, (value, true, optimum, value_original, optimum_original)))))

    _param_rows(row, summary)
    _fit_rows(row, summary)
    _convergence_rows(row, summary)
    row("steps", _steps(summary))
    row("time", f"{summary.get('train_seconds', 0.0):.2f} s")
    row("device", str(summary["device"]))
    if run_dir is not None:
        row("run directory", str(run_dir))
    columns = [c for c in RESULT_COLUMNS if c == "value" or any(cells[c] for _, cells in rows)]
    title, caption = f"{summary['kind']}: {summary['status']}", _caption(summary)
    table = Table(title=title, show_header=True, caption=caption, caption_justify="left")
    table.add_column("")
    for column in columns:
        table.add_column(column, justify="right")
    for label, cells in rows:
        table.add_row(label, *(cells[c] for c in columns))
    if _fits(console, table):
        console.print(table)
    else:  # one line per row, the value first: "w: 3.99 (true: 4; optimum: 3.98)"
        console.print(title, soft_wrap=True)
        for label, cells in rows:
            beside = "; ".join(f"{c}: {cells[c]}" for c in columns[1:] if cells[c])
            console.print(f"{label}: {cells['value']}" + (f" ({beside})" if beside else ""), soft_wrap=True)
        if caption:
            console.print(caption, soft_wrap=True)
    _print_confusion(console, summary)
    for warning in summary.get("warnings") or []:
        console.print(f"warning: {warning}", soft_wrap=True)


MAX_CONFUSION_CLASSES = 10
"""A classifier's confusion matrix is printed for at most this many classes (summary.json has it always)."""


def _print_confusion(console: Console, summary: dict[str, Any]) -> None:
    """A classifier's confusion matrices, rows the true class and columns the predicted one."""
    classes = (summary.get("task") or {}).get("classes") or []
    if not classes or len(classes) > MAX_CONFUSION_CLASSES:
        return
    for split, counts in (summary.get("confusion") or {}).items():
        # The title on a line of its own: a table's title wraps to the table's width.
        console.print(f"confusion matrix ({split}): true class down, predicted class across", soft_wrap=True)
        table = Table(box=box.SIMPLE_HEAD)
        table.add_column("")
        for name in classes:
            table.add_column(str(name), justify="right")
        for name, line in zip(classes, counts):
            table.add_row(str(name), *(str(n) for n in line))
        if _fits(console, table):
            console.print(table)
            continue
        console.print(f"confusion ({split}): each true class, then the count predicted as each class", soft_wrap=True)
        for name, line in zip(classes, counts):
            console.print(f"{name}: " + ", ".join(f"{predicted} {n}" for predicted, n in zip(classes, line)),
                          soft_wrap=True)


def _fits(console: Console, table: Table) -> bool:
    """Whether a table fits the console with every cell on one line (its widest rendering)."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update_width(1_000_000), table).maximum <= console.width


def _show(console: Console, table: Table) -> None:
    """Print a table, or, where it would not fit with every cell on one line, one line per
    row, `first cell: header value; …`, so that no number is wrapped or cut (the terminal
    wraps a long line; nothing is dropped)."""
    if _fits(console, table):
        console.print(table)
        return
    if table.title:
        console.print(table.title, soft_wrap=True)
    headers = [str(column.header) for column in table.columns]
    for row in zip(*(list(column.cells) for column in table.columns)):
        cells = [cell if isinstance(cell, str) else getattr(cell, "plain", str(cell)) for cell in row]
        rest = "; ".join(f"{h}: {v}" if h else v for h, v in zip(headers[1:], cells[1:]) if v)
        first = f"{headers[0]} {cells[0]}" if headers[0] and cells[0] else cells[0]
        console.print(f"{first}: {rest}" if first else rest, soft_wrap=True)
    if table.caption:
        console.print(table.caption, soft_wrap=True)


def _steps(summary: dict[str, Any]) -> str:
    """`3000 (3000 epochs)`; a run that stopped early says how far it got, `109184 (in epoch
    36395 of 100000)`."""
    steps, epochs = summary["steps"], summary["epochs"]
    batch, samples = summary.get("batch_size"), (summary.get("samples") or {}).get("train")
    if summary.get("status") == "completed" or not batch or not samples:
        return f"{steps} ({epochs} epochs)"
    per_epoch = -(-samples // batch)
    return f"{steps} (in epoch {max(1, -(-steps // per_epoch))} of {epochs})"


def _caption(summary: dict[str, Any]) -> str | None:
    """Below the table: which data the optimum solves, and which R² is reported."""
    lines = []
    if summary.get("scaling"):  # the model's own numbers are standardised; the data's units stand beside them
        named = "value, optimum" if summary.get("optimum") else "value"
        beside = summary.get("params_original_units") or summary.get("optimum_original_units")
        lines.append(f"{named}: in standardised units, as the model trains"
                     + ("; data units: as in the data file" if beside else ""))
    solved = summary.get("optimum_solved") or {}
    if solved.get("from"):
        lines.append(f"optimum: {solved.get('method', 'the least-squares solution')} of {solved['from']}")
    if summary.get("r2_definition") and summary.get("r2"):
        lines.append(f"R² {summary['r2_definition']}")
    return "\n".join(lines) or None


def _param_rows(row: Callable[..., None], summary: dict[str, Any]) -> None:
    """A row per parameter value (with its feature, true value and optimum), or one with
    the norm of a parameter too large to list, as metrics.csv logs it."""
    true = summary.get("true_params") or {}
    best = summary.get("optimum") or {}
    features = summary.get("features") or []
    classes = (summary.get("task") or {}).get("classes") or []
    original = summary.get("params_original_units") or {}
    best_original = summary.get("optimum_original_units") or {}
    for name, values in (summary.get("params") or {}).items():
        if isinstance(values, dict):  # a large tensor, summarised in summary.json already
            row(f"|{name}| (norm)", _fmt(values["norm"], 8))
            continue
        if len(values) > MAX_LOGGED_VALUES:
            row(f"|{name}| (norm of {len(values)})", _fmt(sum(v * v for v in values) ** 0.5, 8))
            continue
        for i, value in enumerate(values):
            label = name if len(values) == 1 else f"{name}[{i}]"
            if name == "w" and len(features) == len(values) > 1:
                label += f" ({features[i]})"
            elif classes and len(values) == len(classes) * len(features) and name == "W":  # a row per class
                label = f"W[{classes[i // len(features)]}, {features[i % len(features)]}]"
            elif classes and len(values) == len(classes) > 1 and name == "b":
                label = f"b[{classes[i]}]"
            target = true.get(name) if len(values) == 1 else None
            opt = best.get(name)
            in_units = [_fmt(source[name][i], 8) if source.get(name) else "" for source in (original, best_original)]
            row(label, _fmt(value, 8), _fmt(target) if target is not None else "",
                _fmt(opt[i], 8) if opt else "", *in_units)


def _fit_rows(row: Callable[..., None], summary: dict[str, Any]) -> None:
    """How well the run fits: loss, distance to the optimum, stable lr, predictions, R², checks."""
    best = summary.get("optimum") or {}
    scaling = summary.get("scaling") or {}
    # Both to the same digits: rounded to 3, the optimum's loss once read 0.479 beside a trained 0.478849.
    # (A classifier's loss has no units: it is a cross-entropy of class probabilities.)
    classifies = (summary.get("task") or {}).get("type") == "classification"
    y_units = bool(scaling) and scaling.get("y_std") == 1.0 and scaling.get("y_mean") == 0.0 and not classifies
    batch, samples = summary.get("batch_size"), (summary.get("samples") or {}).get("train")

    def loss_row(label: str, value: Any, optimum: str = "") -> None:
        if y_units:  # only x was standardised: the loss is in y's own units
            row(label, "", "", "", _fmt(value), optimum)
        else:
            row(label, _fmt(value), "", optimum)

    optimum = _fmt(best.get("loss")) if best else ""
    every = summary.get("final_loss_all_samples")
    if every is not None:  # per-sample or mini-batch: the last step saw one batch; the optimum is the whole data's
        loss_row("final loss (last sample)" if batch == 1 else "final loss (last batch)",
                 summary.get("final_loss"))
        loss_row(f"loss on all {samples} samples" if samples else "loss on all samples", every, optimum)
    else:
        loss_row("final loss", summary.get("final_loss"), optimum)
    if "distance_to_optimum" in summary:
        row("distance to optimum", _fmt(summary["distance_to_optimum"], 3))
    mini = batch not in (None, 1) and batch != samples
    if summary.get("optimizer") not in (None, DEFAULT) or mini:  # the default rule on the full batch goes unsaid
        shuffled = ", shuffled" if summary.get("shuffle") else ""
        size = f"batches of {batch}{shuffled}" if mini else ("one sample a step" if batch == 1 else "full batch")
        row("optimizer", f"{summary.get('optimizer')}, {size}")
    if summary.get("schedule"):
        row("lr schedule", summary["schedule"])
    if "stable_lr" in summary:
        bound = summary["stable_lr"]
        peak = summary.get("lr_peak", summary["lr"])  # a schedule's largest lr is what the bound is checked against
        lr = f"{summary['lr']:g}" + (f", up to {peak:g}" if peak != summary["lr"] else "")
        row(_bound_label(summary), f"{lr} ({'none of that form' if bound is None else f'{bound:.4g}'})")
    for p in summary.get("predictions") or []:
        x = p["x"]
        at = f"{x:g}" if not isinstance(x, list) else (
            "(" + ", ".join(f"{v:g}" for v in x[:3]) + (", …)" if len(x) > 3 else ")"))
        if isinstance(p["y_pred"], str):  # a classifier: the class, and how sure it is
            sure = max(p.get("p") or [float("nan")])
            word = "p" if (summary.get("task") or {}).get("probabilities", True) else "score"
            row(f"class at x = {at}", f"{p['y_pred']} ({word} {_fmt(sure, 4)})")
        elif scaling:  # asked and answered in the original units
            row(f"ŷ at x = {at}", "", "", "", _fmt(p["y_pred"], 8))
        else:
            row(f"ŷ at x = {at}", _fmt(p["y_pred"], 8))
    r2, best_r2 = summary.get("r2") or {}, summary.get("optimum_r2") or {}
    uncentred = ", uncentred" if (summary.get("r2_definition") or "").startswith("uncentred") else ""
    undefined = summary.get("r2_undefined") or {}
    for split, value in r2.items():
        if split in undefined:  # NaN in memory, null in summary.json: say why rather than "nan"
            row(f"R² ({split}{uncentred})", f"undefined: {undefined[split]}")
            continue
        row(f"R² ({split}{uncentred})", _fmt(value, 5), "", _fmt(best_r2.get(split), 5) if split in best_r2 else "")
    for split, value in (summary.get("accuracy") or {}).items():
        counts = (summary.get("confusion") or {}).get(split) or []
        right, total = sum(counts[i][i] for i in range(len(counts))), sum(map(sum, counts))
        row(f"accuracy ({split})", f"{value:.2%}" + (f" ({right}/{total})" if total else ""))
    for note in summary.get("data_notes") or []:
        row("data", note)
    if "grad_check" in summary:
        check = summary["grad_check"]
        worst, lost = check.get("worst_manual_vs_autograd"), check.get("not_comparable_from")
        text = f"{worst:.1e}" if isinstance(worst, float) else ""
        if lost:
            text += (", then " if text else "") + f"not comparable from step {lost['step']} (infinite or NaN)"
        row("grad check (manual vs autograd)", text)


def _bound_label(summary: dict[str, Any]) -> str:
    """How the stable-lr row is named: the bound is the run's own only when it was computed for
    the batches the run takes (a full-batch bound says nothing exact of smaller batches)."""
    scope = summary.get("stable_lr_scope", "full batch")
    if scope == "upper bound":
        return "lr (stable below)"
    batch, samples = summary.get("batch_size"), (summary.get("samples") or {}).get("train")
    if scope == "per sample":
        return "lr (largest stable)" if batch == 1 else "lr (per-sample bound)"
    return "lr (full-batch bound)" if batch and samples and batch < samples else "lr (largest stable)"


def _convergence_rows(row: Callable[..., None], summary: dict[str, Any]) -> None:
    """κ of the Hessian and the rates ρ per step, predicted and observed (least-squares kinds)."""
    found = summary.get("convergence") or {}
    if found.get("eigenvalue_max") is None:
        return
    kappa = found.get("condition_number")
    row("condition number κ", "infinite (singular)" if kappa is None or kappa == float("inf") else _fmt(kappa, 5))
    predicted, observed = found.get("rate_predicted"), found.get("rate_observed")
    row("rate ρ, predicted", "none" if predicted is None else _rate(predicted))
    row("rate ρ, observed", "—" if observed is None else _rate(observed))
    if predicted is not None or observed is not None:  # full batch: momentum's best is comparable
        row("ρ at best momentum", _rate(found["rate_momentum_optimal"]))


def _rate(value: float) -> str:
    """A rate per step; one within 10⁻⁵ of 1 as 1 − its distance, which six digits would round away."""
    return f"1 − {1 - value:.3g}" if 0.99999 < value < 1 else _fmt(value, 6)


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
    _show(console, table)
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


def print_graph(console: Console, graph: Any) -> None:
    """`bpcli explain`: the forward pass, the chain rule with numbers, and the update."""
    from rich.markup import escape
    from rich.text import Text

    def heading(text: str) -> None:  # a line of its own: a table's title would wrap with its width
        console.print(Text(text, style="bold"), soft_wrap=True)

    nodes = graph.nodes
    root = nodes[graph.loss].name
    leaf_words = {"param": "variable" if graph.formula else "parameter", "input": "data", "const": "constant"}
    heading(f"Forward pass: {graph.title}")
    forward = Table(box=box.SIMPLE_HEAD)
    for header in ("node", "operation", "value", f"d{root}/d(node)"):
        forward.add_column(header, justify="left" if header in ("node", "operation") else "right")
    for node in nodes:
        forward.add_row(node.name, node.expression if node.op is not None else leaf_words[node.kind],
                        escape(node.value_text), node.grad_text)  # "[sample 0]" is not markup
    _show(console, forward)

    heading(f"Backward pass: the chain rule, from {root} back to the {'variables' if graph.formula else 'parameters'}")
    backward = Table(box=box.SIMPLE_HEAD)
    for header in ("gradient", "= upstream × local", "= value"):
        backward.add_column(header, justify="left" if header == "gradient" else "right")
    # From the loss back, each node once its gradient is complete: after its earliest use.
    shares = {n.id: sorted((e for e in graph.edges if e.src == n.id and e.local_text), key=lambda e: -e.dst)
              for n in nodes}
    for node in sorted((n for n in nodes if shares[n.id]), key=lambda n: (-shares[n.id][-1].dst, -n.id)):
        for edge in shares[node.id]:
            dst = nodes[edge.dst]
            chain = f"d{root}/d{node.name} ⟵ d{root}/d{dst.name} · ∂{dst.name}/∂{node.name}"
            if edge.contribution is None:  # a tensor's gradient: the local derivative is a matrix or a vector
                partial = edge.local_text.replace("∂", f"∂{dst.name}/∂{node.name}", 1)
                backward.add_row(chain, partial, node.grad_text)
            else:
                backward.add_row(chain, f"{_number(dst.grad)} × {_number(edge.local)}", _number(edge.contribution))
        if len(shares[node.id]) > 1:  # a node used more than once: its gradient adds up every use's share
            parts = [e.contribution for e in shares[node.id]]
            total = "" if None in parts else _sum(parts)
            backward.add_row(f"d{root}/d{node.name} = the sum of its {len(parts)} shares", total,
                             node.grad_text, style="bold")
    _show(console, backward)
    if graph.sample is not None:
        console.print(f"Per-sample values are shown for sample {graph.sample} of {graph.samples}; a "
                      "parameter's gradient adds up every sample's share.", soft_wrap=True)
    params = [n for n in nodes if n.kind == "param"]
    for node in params:
        values = node.full_grad or []
        shown = ", ".join(_number(v) for v in values[:4]) + (" …" if len(values) > 4 else "")
        console.print(f"d{root}/d{node.name} = {shown}", soft_wrap=True)
    if graph.update and graph.rule:  # another rule, momentum, weight decay, a schedule: the optimizer's own step
        heading(f"Update, {graph.rule}")
        # The rule's direction d is not the gradient (a velocity, Adam's scaled moment, a decayed
        # gradient): it is shown as the step taken, so that before − lr·d = after adds up.
        update = Table(box=box.SIMPLE_HEAD)
        for header in ("θ", "before", "dL/dθ", "lr", "d", "after"):
            update.add_column(header, justify="left" if header == "θ" else "right")
        for u in graph.update[:16]:
            direction = (u["before"] - u["after"]) / u["lr"] if u["lr"] else float("nan")
            update.add_row(u["param"], f"{u['before']:.8g}", f"{u['grad']:.8g}", f"{u['lr']:g}", f"{direction:.8g}",
                           f"{u['after']:.8g}")
        _show(console, update)
        console.print("d: the direction the rule stepped in, (before − after)/lr, so that after = before − lr·d "
                      "(for plain gradient descent d = dL/dθ)", soft_wrap=True)
    elif graph.update:
        heading("Update: θ ← θ − lr·dL/dθ")
        update = Table(box=box.SIMPLE_HEAD)
        for header in ("θ", "before", "dL/dθ", "lr", "after", "training gave"):
            update.add_column(header, justify="left" if header == "θ" else "right")
        for u in graph.update[:16]:
            update.add_row(u["param"], f"{u['before']:.8g}", f"{u['grad']:.8g}", f"{u['lr']:g}",
                           f"{u['before'] - u['lr'] * u['grad']:.8g}", f"{u['after']:.8g}")
        _show(console, update)


def _number(value: float) -> str:
    """A number of the explain tables: 6 significant digits, and 0 rather than -0."""
    return f"{value + 0.0:.6g}"


def _sum(parts: list[float]) -> str:
    """Shares written as a sum, `40 + 30 − 8 − 16`."""
    text = _number(parts[0])
    for part in parts[1:]:
        text += f" − {_number(-part)}" if part < 0 else f" + {_number(part)}"
    return text


def print_sweep(console: Console, result: Any) -> None:
    """The sweep's aggregates: per setting, mean ± std over seeds of the final loss and parameters."""
    rows = result.aggregates
    settings = [k for k in rows[0] if not k.endswith(("_mean", "_std")) and k not in ("members", "diverged")]
    measures = [k[: -len("_mean")] for k in rows[0] if k.endswith("_mean")]
    # A few parameter values are worth a column each; an MLP's hundreds are not (and one weight
    # averaged over seeds means little, as hidden units come out in any order).
    params = [m for m in measures if m != "final_loss"]
    shown = [m for m in measures if m == "final_loss"] + (params if len(params) <= 4 else [])
    table = Table(title=f"{len(result.members)} members, {result.steps} steps each, in {result.seconds:.2f} s",
                  box=box.SIMPLE_HEAD)
    left_out = shown != measures
    measures = shown
    for name in [*settings, "runs", *measures]:
        table.add_column(name.split(".")[-1], justify="right")
    for row in rows:
        cells = [str(row[k]) for k in settings]
        runs = f"{row['members']}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "")
        # One member's value has no spread to show (its "std" of 0 would claim a certainty).
        averaged = row["members"] - row["diverged"]
        values = [f"{row[m + '_mean']:.4g}" + (f" ± {row[m + '_std']:.2g}" if averaged > 1 else "")
                  for m in measures]
        table.add_row(*cells, runs, *values)
    _show(console, table)
    diverged = sorted((m for m in result.members if m.get("divergence")), key=lambda m: m["diverged_at_step"])
    if diverged:  # the first to diverge, told why as its single run would be; the others in summary.csv
        first = diverged[0]
        grid = ", ".join(f"{k.split('.')[-1]}={first[k]}" for k in first if "." in k or k == "seed")
        others = (f" ({len(diverged) - 1} more diverged: summary.csv's divergence column says why)"
                  if len(diverged) > 1 else "")
        console.print(f"member {first['member']} ({grid}): {first['divergence']}{others}", soft_wrap=True)
    if result.out is not None:
        more = " (its aggregates.csv has every parameter's mean and std)" if left_out else ""
        console.print(f"sweep directory: {result.out}{more}", soft_wrap=True)
