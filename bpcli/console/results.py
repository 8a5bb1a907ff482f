"""The end-of-run table: parameters against the truth and the optimum, the loss and the
measures of fit, convergence, where the run went; and a classifier's confusion matrices."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from rich import box
from rich.console import Console
from rich.table import Table

from bpcli.console.common import fits, fmt
from bpcli.optimizers import DEFAULT
from bpcli.rundir.run import MAX_LOGGED_VALUES


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
    if fits(console, table):
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
        if fits(console, table):
            console.print(table)
            continue
        console.print(f"confusion ({split}): each true class, then the count predicted as each class", soft_wrap=True)
        for name, line in zip(classes, counts):
            console.print(f"{name}: " + ", ".join(f"{predicted} {n}" for predicted, n in zip(classes, line)),
                          soft_wrap=True)


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
            row(f"|{name}| (norm)", fmt(values["norm"], 8))
            continue
        if len(values) > MAX_LOGGED_VALUES:
            row(f"|{name}| (norm of {len(values)})", fmt(sum(v * v for v in values) ** 0.5, 8))
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
            in_units = [fmt(source[name][i], 8) if source.get(name) else "" for source in (original, best_original)]
            row(label, fmt(value, 8), fmt(target) if target is not None else "",
                fmt(opt[i], 8) if opt else "", *in_units)


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
            row(label, "", "", "", fmt(value), optimum)
        else:
            row(label, fmt(value), "", optimum)

    optimum = fmt(best.get("loss")) if best else ""
    every = summary.get("final_loss_all_samples")
    if every is not None:  # per-sample or mini-batch: the last step saw one batch; the optimum is the whole data's
        loss_row("final loss (last sample)" if batch == 1 else "final loss (last batch)",
                 summary.get("final_loss"))
        loss_row(f"loss on all {samples} samples" if samples else "loss on all samples", every, optimum)
    else:
        loss_row("final loss", summary.get("final_loss"), optimum)
    if "distance_to_optimum" in summary:
        row("distance to optimum", fmt(summary["distance_to_optimum"], 3))
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
            row(f"class at x = {at}", f"{p['y_pred']} ({word} {fmt(sure, 4)})")
        elif scaling:  # asked and answered in the original units
            row(f"ŷ at x = {at}", "", "", "", fmt(p["y_pred"], 8))
        else:
            row(f"ŷ at x = {at}", fmt(p["y_pred"], 8))
    r2, best_r2 = summary.get("r2") or {}, summary.get("optimum_r2") or {}
    uncentred = ", uncentred" if (summary.get("r2_definition") or "").startswith("uncentred") else ""
    undefined = summary.get("r2_undefined") or {}
    for split, value in r2.items():
        if split in undefined:  # NaN in memory, null in summary.json: say why rather than "nan"
            row(f"R² ({split}{uncentred})", f"undefined: {undefined[split]}")
            continue
        row(f"R² ({split}{uncentred})", fmt(value, 5), "", fmt(best_r2.get(split), 5) if split in best_r2 else "")
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
    row("condition number κ", "infinite (singular)" if kappa is None or kappa == float("inf") else fmt(kappa, 5))
    predicted, observed = found.get("rate_predicted"), found.get("rate_observed")
    row("rate ρ, predicted", "none" if predicted is None else _rate(predicted))
    row("rate ρ, observed", "—" if observed is None else _rate(observed))
    if predicted is not None or observed is not None:  # full batch: momentum's best is comparable
        row("ρ at best momentum", _rate(found["rate_momentum_optimal"]))


def _rate(value: float) -> str:
    """A rate per step; one within 10⁻⁵ of 1 as 1 − its distance, which six digits would round away."""
    return f"1 − {1 - value:.3g}" if 0.99999 < value < 1 else fmt(value, 6)
