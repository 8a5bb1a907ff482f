"""Terminal output of a run: a progress bar on a terminal, plain lines elsewhere, a final table.

On a TTY, rich draws a live progress bar (step, loss, elapsed, ETA). When stdout is a
pipe, a file or CI, the same progress comes out as one plain line per logged step, with
no colour codes or carriage returns, so logs stay readable.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator

from rich import box
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

from bpcli.rundir.run import MAX_LOGGED_VALUES


def make_console() -> Console:
    """The console commands print to: a terminal's own width, or 120 columns in a log."""
    import os
    import sys

    wide = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120
    return Console(highlight=False, width=wide)


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


@contextlib.contextmanager
def progress(console: Console, title: str, quiet: bool = False) -> Iterator[ConsoleObserver | None]:
    """A ConsoleObserver for the duration of a run (None when quiet), its live display
    stopped however the run ends."""
    observer = None if quiet else ConsoleObserver(console, title)
    try:
        yield observer
    finally:
        if observer is not None:
            observer.close()


def print_result(console: Console, summary: dict[str, Any], run_dir: Path | None) -> None:
    """The end-of-run table: parameters against the truth, loss, predictions, where it went."""
    best = summary.get("optimum") or {}
    table = Table(title=f"{summary['kind']}: {summary['status']}", show_header=True,
                  caption=_caption(summary), caption_justify="left")
    # Standardised data: the model's own numbers say so, and the original units stand beside them.
    scaled = bool(summary.get("scaling"))
    units = " (standardised)" if scaled else ""
    table.add_column("")
    table.add_column(f"value{units}", justify="right")
    table.add_column("true", justify="right")
    if best:
        table.add_column(f"optimum{units}", justify="right")
    if scaled:
        table.add_column("value (original units)", justify="right")
        if best:
            table.add_column("optimum (original units)", justify="right")

    def row(label: str, value: str, target: str = "", optimum: str = "", value_original: str = "",
            optimum_original: str = "") -> None:
        cells = [value, target, *([optimum] if best else [])]
        if scaled:
            cells += [value_original, *([optimum_original] if best else [])]
        table.add_row(label, *cells)

    _param_rows(row, summary)
    _fit_rows(row, summary)
    _convergence_rows(row, summary)
    row("steps", f"{summary['steps']} ({summary['epochs']} epochs)")
    row("time", f"{summary.get('train_seconds', 0.0):.2f} s")
    row("device", str(summary["device"]))
    if run_dir is not None:
        row("run directory", str(run_dir))
    console.print(table)
    for warning in summary.get("warnings") or []:
        console.print(f"warning: {warning}", soft_wrap=True)


def _caption(summary: dict[str, Any]) -> str | None:
    """Below the table: which data the optimum solves, and which R² is reported."""
    lines = []
    solved = summary.get("optimum_solved") or {}
    if solved.get("from"):
        lines.append(f"optimum: the least-squares solution of {solved['from']}")
    if summary.get("r2_definition") and summary.get("r2"):
        lines.append(f"R² {summary['r2_definition']}")
    return "\n".join(lines) or None


def _param_rows(row: Callable[..., None], summary: dict[str, Any]) -> None:
    """A row per parameter value (with its feature, true value and optimum), or one with
    the norm of a parameter too large to list, as metrics.csv logs it."""
    true = summary.get("true_params") or {}
    best = summary.get("optimum") or {}
    features = summary.get("features") or []
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
            target = true.get(name) if len(values) == 1 else None
            opt = best.get(name)
            in_units = [_fmt(source[name][i], 8) if source.get(name) else "" for source in (original, best_original)]
            row(label, _fmt(value, 8), _fmt(target) if target is not None else "",
                _fmt(opt[i], 8) if opt else "", *in_units)


def _fit_rows(row: Callable[..., None], summary: dict[str, Any]) -> None:
    """How well the run fits: loss, distance to the optimum, stable lr, predictions, R², checks."""
    best = summary.get("optimum") or {}
    scaling = summary.get("scaling") or {}
    loss = [_fmt(summary.get("final_loss")), "", _fmt(best.get("loss"), 3) if best else ""]
    if scaling and scaling.get("y_std") == 1.0 and scaling.get("y_mean") == 0.0:
        loss = ["", "", "", loss[0], loss[2]]  # only x was standardised: the loss is in y's own units
    row("final loss", *loss)
    if "distance_to_optimum" in summary:
        row("distance to optimum", _fmt(summary["distance_to_optimum"], 3))
    if "stable_lr" in summary:
        bound = summary["stable_lr"]
        row("lr (largest stable)", f"{summary['lr']:g} ({'none of that form' if bound is None else f'{bound:.4g}'})")
    for p in summary.get("predictions") or []:
        x = p["x"]
        at = f"{x:g}" if not isinstance(x, list) else (
            "(" + ", ".join(f"{v:g}" for v in x[:3]) + (", …)" if len(x) > 3 else ")"))
        if scaling:  # asked and answered in the original units
            row(f"ŷ at x = {at}", "", "", "", _fmt(p["y_pred"], 8))
        else:
            row(f"ŷ at x = {at}", _fmt(p["y_pred"], 8))
    r2, best_r2 = summary.get("r2") or {}, summary.get("optimum_r2") or {}
    uncentred = ", uncentred" if (summary.get("r2_definition") or "").startswith("uncentred") else ""
    for split, value in r2.items():
        row(f"R² ({split}{uncentred})", _fmt(value, 5), "", _fmt(best_r2.get(split), 5) if split in best_r2 else "")
    for note in summary.get("data_notes") or []:
        row("data", note)
    if "grad_check" in summary:
        check = summary["grad_check"]
        row("grad check (manual vs autograd)", f"{check['worst_manual_vs_autograd']:.1e}")


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
    if len(values) == 1:
        return f"{values[0]:.8g}"
    return f"|{sum(v * v for v in values if v == v) ** 0.5:.6g}|"


def print_grad_checks(console: Console, checks: list[Any], kind: str) -> None:
    """The table of `bpcli check`: each parameter's gradient three ways, and their errors."""
    from bpcli.gradcheck import TOLERANCE  # imports torch, as the checks themselves did

    table = Table(title=f"{kind}: dL/dθ three ways, in float64", box=box.SIMPLE_HEAD, padding=(0, 1),
                  caption="|g| is the norm of a tensor's gradient; errors are relative")
    for header in ("step", "θ", "manual", "autograd", "finite diff", "err manual", "err f.d."):
        table.add_column(header, justify="left" if header == "θ" else "right", no_wrap=True)
    for c in checks:
        verdict = "[green]" if c.ok else "[red]"
        table.add_row(
            str(c.step), c.name if len(c.manual) == 1 else f"{c.name} ({len(c.manual)})",
            _values(c.manual), _values(c.autograd), _values(c.finite_difference),
            f"{verdict}{c.manual_vs_autograd:.1e}", f"{c.fd_vs_autograd:.1e}",
        )
    console.print(table)
    worst = max(c.manual_vs_autograd for c in checks)
    status = "agree" if all(c.ok for c in checks) else "DISAGREE"
    tolerance = f"{TOLERANCE:.0e}".replace("e-0", "e-")  # 1e-6, not Python's 1e-06
    console.print(f"manual and autograd {status}: worst relative error {worst:.1e} (tolerance {tolerance}); "
                  f"finite differences agree to {max(c.fd_vs_autograd for c in checks):.1e}", soft_wrap=True)


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
    console.print(forward)

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
    console.print(backward)
    if graph.sample is not None:
        console.print(f"Per-sample values are shown for sample {graph.sample} of {graph.samples}; a "
                      "parameter's gradient adds up every sample's share.", soft_wrap=True)
    params = [n for n in nodes if n.kind == "param"]
    for node in params:
        values = node.full_grad or []
        shown = ", ".join(_number(v) for v in values[:4]) + (" …" if len(values) > 4 else "")
        console.print(f"d{root}/d{node.name} = {shown}", soft_wrap=True)
    if graph.update and graph.rule:  # momentum, Adam, weight decay: the optimizer's own step
        heading(f"Update, {graph.rule}")
        update = Table(box=box.SIMPLE_HEAD)
        for header in ("θ", "before", "dL/dθ", "lr", "after"):
            update.add_column(header, justify="left" if header == "θ" else "right")
        for u in graph.update[:16]:
            update.add_row(u["param"], f"{u['before']:.8g}", f"{u['grad']:.8g}", f"{u['lr']:g}", f"{u['after']:.8g}")
        console.print(update)
    elif graph.update:
        heading("Update: θ ← θ − lr·dL/dθ")
        update = Table(box=box.SIMPLE_HEAD)
        for header in ("θ", "before", "dL/dθ", "lr", "after", "training gave"):
            update.add_column(header, justify="left" if header == "θ" else "right")
        for u in graph.update[:16]:
            update.add_row(u["param"], f"{u['before']:.8g}", f"{u['grad']:.8g}", f"{u['lr']:g}",
                           f"{u['before'] - u['lr'] * u['grad']:.8g}", f"{u['after']:.8g}")
        console.print(update)


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
    measures = [k[: -len("_mean")] for k in rows[0] if k.endswith("_mean")][:5]
    table = Table(title=f"{len(result.members)} members, {result.steps} steps each, in {result.seconds:.2f} s",
                  box=box.SIMPLE_HEAD)
    for name in [*settings, "runs", *measures]:
        table.add_column(name.split(".")[-1], justify="right")
    for row in rows:
        cells = [str(row[k]) for k in settings]
        runs = f"{row['members']}" + (f" ({row['diverged']} diverged)" if row["diverged"] else "")
        values = [f"{row[m + '_mean']:.4g} ± {row[m + '_std']:.2g}" for m in measures]
        table.add_row(*cells, runs, *values)
    console.print(table)
    if result.out is not None:
        console.print(f"sweep directory: {result.out}")
