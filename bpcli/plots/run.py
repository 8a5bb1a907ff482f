"""The figures of a single run, drawn from its run directory alone (no torch).

Figures are built with matplotlib's object API and saved through the Agg canvas, so no
display or GUI backend is ever needed. The loss landscape is recomputed from data.csv
with numpy (which matplotlib brings), so it too needs nothing but the run directory.

`figures(record)` gives every figure unsaved. A landscape is drawn onto any Axes by
`draw_landscape(ax, landscape(record), [descent(record, colour), …])`, which `bpcli
compare` uses to overlay several runs' paths and `bpcli animate` draws its frames over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from bpcli.plots.common import (SUPERSCRIPT, drawable, figure, finish, number, place_legend, plus, positive,
                                readable, readable_log_axis, save, sci, span, title, title_size)
from bpcli.plots.classification import boundary_plot, classifier, confusion_plot, draw_accuracy, short
from bpcli.rundir.run import RunRecord, read_run


def draw_plots(run_dir: str | Path, fmt: str = "png") -> list[Path]:
    """Draw every plot a run supports into its directory; return the files written."""
    record = read_run(run_dir)
    return [save(fig, record.path / f"{name}.{fmt}") for name, fig in figures(record)]


REGRESSION_FIGURES = ("loss", "fit", "params", "landscape", "residuals")
"""The figures of a run whose summary names no task (runs written before tasks were recorded)."""


def figures(record: RunRecord) -> list[tuple[str, Any]]:
    """Every figure a run supports, drawn, not saved: those its kind's task names in
    summary.json (loss, fit, params, landscape, residuals for a regression), by name."""
    names = (record.summary.get("task") or {}).get("figures") or REGRESSION_FIGURES
    made = [FIGURES[name](record) for name in names if name in FIGURES]
    return [(name, fig) for name, fig in made if fig is not None]


def _loss_plot(record: RunRecord) -> tuple[str, Any]:
    """The loss of each logged step; where the optimum's loss is not negligible next to
    it, a second panel with the gap to the optimum, L − L*, the part that can still go."""
    best = _optimum_loss(record)
    rounding = best is not None and _rounding(record, best)
    gap = best is not None and not rounding and _gap_matters(record, best)
    accuracy = "accuracy" in record.metrics  # a classifier: its accuracy in a panel of its own
    fig, axes = figure(1 + gap + accuracy, 1, size=(7, (7 if gap else 4.5) + 2.6 * accuracy), sharex=True)
    ax = axes[0][0]
    _draw_loss(ax, record, best, rounding)
    heading = title(record, "Loss")
    ax.set_title(heading, fontsize=title_size(heading, fig.get_figwidth()))
    if gap:
        _draw_gap(axes[1][0], record, best)
    _draw_lr(ax, record)
    if accuracy:
        _draw_accuracy(axes[-1][0], record)
    axes[-1][0].set_xlabel("step (parameter update)")
    return "loss", fig


def _draw_lr(ax: Any, record: RunRecord) -> None:
    """The lr a schedule gave each logged update, on a second axis (metrics.csv has an lr
    column only when the lr changes)."""
    xs, ys = drawable(record.metrics.get("step", []), record.metrics.get("lr", []))
    if not ys:
        return
    lr_axis = ax.twinx()
    lr_axis.plot(xs, ys, color="tab:gray", linewidth=1, linestyle="--")
    lr_axis.set_ylabel("learning rate (dashed)", color="tab:gray")
    lr_axis.tick_params(axis="y", colors="tab:gray")
    lr_axis.set_ylim(bottom=0)
    ax.set_zorder(lr_axis.get_zorder() + 1)  # the loss, and its legend, over the lr
    ax.patch.set_visible(False)
def gap_reference(record: RunRecord) -> float | None:
    """L*, where a panel of the gap L − L* shows what the loss axis hides (real or noisy
    data, full-batch losses); None where there is no optimum, or it is rounding."""
    best = _optimum_loss(record)
    if best is None or _rounding(record, best) or not _gap_matters(record, best):
        return None
    return best


def _optimum_loss(record: RunRecord) -> float | None:
    """L*, the loss of the closed-form optimum (linear kinds), when known and finite."""
    best = (record.summary.get("optimum") or {}).get("loss")
    return float(best) if drawable([best])[0] and best >= 0 else None


def _rounding(record: RunRecord, best: float) -> bool:
    """Whether L* is rounding: on noise-free data it is some 1e-15 of the data's scale ⟨y²⟩
    (the loss of ŷ = 0), below anything a run reaches; on noisy or real data it is where
    the loss levels off. 1e-10 of ⟨y²⟩ lies far from both."""
    ys = drawable(record.data_y)[0]
    scale = sum(y * y for y in ys) / len(ys) if ys else 0.0
    return best <= 1e-10 * scale


def _gap_matters(record: RunRecord, best: float) -> bool:
    """Whether a panel of L − L* shows what the loss axis hides: not where the logged
    losses are single batches', which are no gap to the whole data's optimum."""
    summary = record.summary
    if "final_loss_all_samples" in summary or (summary.get("batch_size") or 0) < (summary.get("samples") or {}).get("train", 0):
        return False
    _, losses = positive(record.metrics.get("step", []), record.metrics.get("loss", []))
    return any(v > best for v in losses)


def _draw_loss(ax: Any, record: RunRecord, best: float | None, rounding: bool) -> None:
    """The training (and validation) loss on a log axis, L* (a line unless it is only
    `rounding`), where the run diverged."""
    steps, losses = record.metrics.get("step", []), record.metrics.get("loss", [])
    xs, ys = positive(steps, losses)
    if xs:
        ax.plot(xs, ys, color="tab:blue", linewidth=1.2, marker="o" if len(xs) <= 20 else None,
                label="loss of each logged step")
        ax.set_yscale("log")
        # Per-sample updates see a different sample each step, so the loss zig-zags;
        # the mean over each epoch shows the trend.
        by_epoch: dict[float, list[tuple[float, float]]] = {}
        for step, epoch, loss in zip(steps, record.metrics.get("epoch", []), losses):
            by_epoch.setdefault(epoch, []).append((step, loss))
        if any(len(rows) > 1 for rows in by_epoch.values()):
            ends = [rows[-1][0] for rows in by_epoch.values()]
            means = [sum(v for _, v in rows) / len(rows) for rows in by_epoch.values()]
            ax.plot(*positive(ends, means), color="tab:orange", linewidth=2, label="mean over the epoch")
        if "val_loss" in record.metrics:
            ax.plot(*positive(steps, record.metrics["val_loss"]), color="tab:red", linewidth=1.5,
                    label="validation loss")
        if best is not None:
            # The optimum's loss is drawn only where it is where the loss levels off (noisy
            # or real data); on noise-free data it is rounding (1e-15, 1e-30), below
            # anything the run reaches, and is only named, so that it does not set the axis.
            label = f"optimum's loss L* = {sci(best, 3)}"
            if not rounding:
                ax.axhline(best, color="green", linestyle=":", label=label)
            else:
                ax.plot([], [], " ", label=f"{label} (rounding, below the axis)")
                _predicted_envelope(ax, record, best, xs, ys)  # L* is rounding: the loss is the gap
    diverged = (record.summary.get("divergence") or {}).get("step")
    if diverged is not None:
        ax.axvline(diverged, color="red", linestyle="--", linewidth=1.2, label=f"diverged at step {diverged}")
    if not xs and diverged is None:
        ax.text(0.5, 0.5, "no finite, positive loss logged", transform=ax.transAxes, ha="center", va="center")
    finish(ax, "", _loss_label(record), "", log=bool(xs))
    if xs:
        readable_log_axis(ax)
    if xs or diverged is not None:
        place_legend(ax)


def _loss_label(record: RunRecord) -> str:
    """The loss axis's label: the loss the run's task names (squared error for least squares)."""
    name = (record.summary.get("task") or {}).get("loss")
    return "loss (squared error)" if name in (None, "mean squared error") else f"loss ({name})"


def _draw_accuracy(ax: Any, record: RunRecord) -> None:
    """A classifier's training (and validation) accuracy at each logged step, 0 to 100 %."""
    draw_accuracy(ax, [(record, None, None)])
    place_legend(ax)
    finish(ax, "", "accuracy", "")


def _draw_gap(ax: Any, record: RunRecord, best: float) -> None:
    """The gap to the optimum, L − L*, on a log axis: what the training loss can still lose."""
    steps, losses = record.metrics.get("step", []), record.metrics.get("loss", [])
    xs, gaps = positive(steps, [v - best for v in losses])  # NaN and infinities stay out
    ax.plot(xs, gaps, color="tab:blue", linewidth=1.2, marker="o" if len(xs) <= 20 else None,
            label="training loss − optimum's loss")
    _predicted_envelope(ax, record, best, xs, gaps)
    ax.set_yscale("log")
    finish(ax, "", "L − L*", "", log=True)
    readable_log_axis(ax)
    place_legend(ax)


def _predicted_envelope(ax: Any, record: RunRecord, best: float, steps: list[float], gaps: list[float]) -> None:
    """Beside the gap to the optimum's loss, L − L* (`gaps`, the loss itself where L* is
    rounding), the gap the Hessian predicts, (L₁ − L*)·ρ^(2·(step − 1)): the error θ − θ*
    shrinks by ρ a step and the gap is quadratic in it, hence the power 2. On a log axis the
    two tails run parallel when the prediction holds."""
    rate = (record.summary.get("convergence") or {}).get("rate_predicted")
    if not isinstance(rate, (int, float)) or len(steps) < 2:
        return
    first, last, start = steps[0], steps[-1], gaps[0]
    grid = [first + (last - first) * i / 199 for i in range(200)]
    envelope = [start * rate ** (2 * (s - first)) for s in grid]
    # Within what is drawn: where rounding stops the run (or a diverging one stops), the
    # prediction would only stretch the axis.
    low, high = min(gaps), max(gaps)
    shown = [(s, v) for s, v in zip(grid, envelope) if low <= v <= high]
    if shown:
        ax.plot(*positive(*zip(*shown)), color="black", linestyle="--", linewidth=1,
                label=rf"predicted gap $(L_1 - L^*)\,\rho^{{2(\mathrm{{step}}-1)}}$, ρ = {number(rate, 6)}")


def _line_label(params: dict[str, Any]) -> str | None:
    w, b = params.get("w"), params.get("b")
    if not isinstance(w, list) or len(w) != 1 or number(w[0]) == "—":
        return None
    return f"fit: ŷ = {number(w[0])}·x" + (plus(b[0]) if isinstance(b, list) else "")


def _splits(record: RunRecord) -> list[tuple[str, str, list[float], list[float]]]:
    """(split, colour, targets, predictions) for the training and validation rows present."""
    out = []
    for split, colour in (("train", "tab:blue"), ("val", "tab:orange")):
        ys, ps = drawable(*zip(*[(y, p) for s, y, p in record.fitted or [] if s == split] or [((), ())]))
        if ys:
            out.append((split, colour, ys, ps))
    return out


def _predicted_vs_actual(record: RunRecord) -> tuple[str, Any]:
    fig, axes = figure(size=(6, 5.5))
    ax = axes[0][0]
    for split, colour, ys, ps in _splits(record):
        r2 = (record.summary.get("r2") or {}).get(split)
        label = f"{split} ({len(ys)})" + (f", R² = {number(r2)}" if number(r2) != "—" else "")
        ax.scatter(ys, ps, s=12, alpha=0.7, color=colour, label=label)
    values = [v for _, _, ys, ps in _splits(record) for v in (*ys, *ps)]
    if values:
        ax.plot([min(values), max(values)], [min(values), max(values)], "k--", linewidth=1, label="ŷ = y")
    units = " (standardised)" if (record.summary.get("scaling") or {}).get("y_std", 1.0) != 1.0 else ""
    finish(ax, f"actual {readable(str(record.summary.get('target', 'y')), 'y (the target column)')}{units}",
           f"predicted{units}",
           title(record, "Predicted vs actual"))
    place_legend(ax)
    return "fit", fig


def _residuals_plot(record: RunRecord) -> tuple[str, Any]:
    if not record.fitted:
        return "residuals", None
    fig, axes = figure()
    ax = axes[0][0]
    for split, colour, ys, ps in _splits(record):
        ax.scatter(*drawable(ps, [y - p for y, p in zip(ys, ps)]), s=12, alpha=0.7, color=colour, label=split)
    ax.axhline(0.0, color="black", linewidth=1)
    finish(ax, "predicted", "residual y − ŷ", title(record, "Residuals"))
    place_legend(ax)
    return "residuals", fig


PREDICTION_LABELS = 4
"""fit.png's legend names up to this many predictions; more are marked but only counted."""


def _fit_plot(record: RunRecord) -> tuple[str, Any]:
    if record.data_x and len(record.data_x[0]) != 1:
        return _predicted_vs_actual(record) if record.fitted else ("fit", None)
    import numpy as np

    summary = record.summary
    xs, ys = drawable([row[0] for row in record.data_x], record.data_y)
    fig, axes = figure()
    ax = axes[0][0]
    ax.scatter(xs, ys, c="red", s=18, label=f"data ({len(xs)} points)", zorder=3)
    if record.curve is not None:
        label = _line_label(summary.get("params") or {}) or f"fit: the trained {summary.get('kind')}"
        ax.plot(*drawable(record.curve["x"], record.curve["y_pred"]), color="tab:blue", linewidth=2, label=label)
    grid = np.array(drawable(record.curve["x"])[0] if record.curve else sorted(xs))
    true = summary.get("true_params") or {}
    if number(true.get("w")) != "—":
        tb = true.get("b", 0.0) or 0.0
        label = f"true: y = {number(true['w'])}·x" + (plus(tb) if tb else "")
        with np.errstate(over="ignore", invalid="ignore"):
            ax.plot(*drawable(list(grid), list(true["w"] * grid + tb)), "k--", linewidth=1, label=label)
    function = summary.get("true_function")
    if function is not None:
        # Only a function source's runs name one: the data package, whose config schema costs
        # a noticeable part of `bpcli plot`'s start, is imported for them alone.
        from bpcli.data.function import CURVES

        if function in CURVES:
            ax.plot(grid, getattr(np, function)(grid), "k--", linewidth=1, label=f"true: y = {function}(x)")
    # Predictions are marked only where the plot's axes are the inputs' own units, and can
    # be; their values go in the legend, where no text can land on the title or the data.
    marked = [p for p in summary.get("predictions") or [] if not isinstance(p["x"], list)
              and not summary.get("scaling") and drawable([p["x"]], [p.get("y_pred")])[0]]
    for i, p in enumerate(marked):
        label = f"ŷ({number(p['x'], 6)}) = {number(p['y_pred'], 8)}" if len(marked) <= PREDICTION_LABELS else (
            f"predictions at {len(marked)} inputs (summary.json)" if i == 0 else None)
        ax.scatter([p["x"]], [p["y_pred"]], marker="x", s=60, color="tab:green", zorder=4, label=label)
    x_name, y_name = _axis_names(record)
    finish(ax, x_name, y_name, title(record, "Fit"))
    place_legend(ax)
    return "fit", fig


def _axis_names(record: RunRecord) -> tuple[str, str]:
    """A fit's axes: a CSV run's by its columns (面积, 价格), as far as the figures' fonts
    draw them; x and y for generated data."""
    summary = record.summary
    features, target = summary.get("features") or [], summary.get("target")
    if (record.config.get("data") or {}).get("source") != "csv" or len(features) != 1 or not target:
        return "x", "y"
    units = " (standardised)" if summary.get("scaling") else ""
    return (readable(str(features[0]), "x (the CSV's feature column)") + units,
            readable(str(target), "y (the CSV's target column)") + units)


def value_columns(record: RunRecord) -> list[str]:
    """The parameter columns of metrics.csv: w, b, w[0], W1 (norm)…, not step, loss, gradients, the
    scheduled lr or a task's metrics (accuracy)."""
    skip = {"step", "epoch", "loss", "val_loss", "distance_to_optimum", "lr"}
    for metric in (record.summary.get("task") or {}).get("metrics") or []:  # a classifier's accuracy
        skip |= {metric, f"val_{metric}"}
    return [c for c in record.metrics if c not in skip and not c.startswith("grad_")]


def _reference(summary: dict[str, Any], column: str, key: str) -> float | None:
    """The true or optimal value of a metrics column such as `w`, `w[1]` or `b`."""
    name, _, index = column.partition("[")
    values = (summary.get(key) or {}).get(name)
    if isinstance(values, (int, float)):
        return float(values)
    if isinstance(values, list):
        i = int(index.rstrip("]")) if index else 0
        return values[i] if i < len(values) else None
    return None


PARAM_PANELS = 24
"""params.png draws at most this many values (in two columns beyond six); every one is in metrics.csv."""


def _params_plot(record: RunRecord) -> tuple[str, Any]:
    columns = value_columns(record)[:PARAM_PANELS]
    if not columns:
        return "params", None
    if record.curves is not None and record.curves.get("step"):
        return "params", _curves_plot(record, columns)
    cols = 1 if len(columns) <= 6 else 2
    rows = -(-len(columns) // cols)
    fig, axes = figure(rows, cols, size=(7 * cols, 1.2 + 1.8 * rows), sharex=True)
    panels = [ax for row in axes for ax in row]
    for ax in panels[len(columns):]:
        ax.set_visible(False)
    steps = record.metrics["step"]
    names = _display_names(record, columns)
    # A panel spans at least a thousandth of the run's largest parameter: a value that
    # only wanders by rounding (1e-7) is drawn as the flat line it is, its legend says by
    # how much it moves, instead of rounding noise filling the panel.
    floor = 1e-3 * max((abs(v) for c in columns for v in drawable(record.metrics[c])[0]), default=0.0)
    paths, every_step = _param_paths(record, columns)
    for ax, column in zip(panels, columns):
        values = drawable(*paths[column])
        moved = max(values[1]) - min(values[1]) if values[1] else 0.0
        small = 0 < moved < floor
        label = names[column] + (" (every step)" if every_step else " (logged steps)") + (
            f", moves only {sci(moved)}" if small else "")
        ax.plot(*values, color="tab:blue", linewidth=1.5, label=label,
                marker=None if every_step or len(values[0]) > 60 else ".")
        shown = list(values[1])
        true = _reference(record.summary, column, "true_params")
        best = _reference(record.summary, column, "optimum")
        if drawable([true])[0]:
            ax.axhline(true, color="black", linestyle="--", linewidth=1, label=f"true {sci(true, 6)}")
            shown.append(true)
        if drawable([best])[0]:
            ax.axhline(best, color="green", linestyle=":", linewidth=1.5, label=f"optimum {sci(best, 6)}")
            shown.append(best)
        if floor > 0 and shown and max(shown) - min(shown) < floor:
            middle = (max(shown) + min(shown)) / 2
            ax.set_ylim(middle - floor / 2, middle + floor / 2)
        ax.ticklabel_format(axis="y", useOffset=False, useMathText=True)
        ax.set_ylabel(names[column])
        ax.grid(True, alpha=0.3)
        place_legend(ax, fontsize="small")
    for ax in panels[len(columns) - cols:len(columns)]:  # the lowest panel of each column
        ax.set_xlabel("step")
        ax.xaxis.set_tick_params(labelbottom=True)
    units = " (standardised units)" if record.summary.get("scaling") else ""
    heading = title(record, "Parameters" + units)
    fig.suptitle(heading, y=1 - 0.12 / fig.get_figheight(), fontsize=title_size(heading, fig.get_figwidth()))
    return "params", fig


def _curves_plot(record: RunRecord, columns: list[str]) -> Any:
    """A nonlinear regression's parameters as a learner reads them: the fitted curve at a few
    logged steps over the data (curves.csv), the loss of the whole data at those steps beside
    the logged loss (a batch's, where batches are smaller than the data), and, smaller, the
    norms of its layers, which metrics.csv logs at every logged step."""
    from matplotlib import colormaps
    from matplotlib.gridspec import GridSpec

    curves = record.curves or {}
    whole: dict[float, float] = {}
    by_step: dict[float, tuple[list[float], list[float]]] = {}
    for step, loss, x, y in zip(curves["step"], curves["loss_all_samples"], curves["x"], curves["y_pred"]):
        whole[step] = loss
        gx, gy = by_step.setdefault(step, ([], []))
        gx.append(x)
        gy.append(y)
    rows = -(-len(columns) // 2)
    fig, _ = figure(size=(9, 5.0 + 1.15 * rows))
    fig.clear()
    height = fig.get_figheight()
    grid = GridSpec(2 + rows, 2, figure=fig, height_ratios=[3.4, 0.55, *[1.0] * rows], hspace=0.3, wspace=0.3,
                    left=1.0 / 9, right=0.97, top=1 - 0.75 / height, bottom=0.55 / height)
    fit, loss = fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])
    xs, ys = drawable([row[0] for row in record.data_x], record.data_y)
    fit.scatter(xs, ys, s=8, color="0.6", label="data", zorder=2)
    palette = colormaps["viridis"]
    steps = sorted(by_step)
    for i, step in enumerate(steps):
        last = i == len(steps) - 1
        fit.plot(*drawable(*by_step[step]), color=palette(0.9 * i / max(1, len(steps) - 1)),
                 linewidth=2.2 if last else 1.2, zorder=3,
                 label="initial" if step == 0 else f"after step {int(step)}")
    finish(fit, "x", "y", "The fitted curve, step by step")
    place_legend(fit, fontsize="small", ncols=2)
    _draw_snapshot_losses(loss, record, whole)
    norms = [fig.add_subplot(grid[2 + i // 2, i % 2]) for i in range(len(columns))]
    paths, every_step = _param_paths(record, columns)
    names = _display_names(record, columns)
    joined = " (every step)" if every_step else " (logged steps)"
    for ax, column in zip(norms, columns):
        ax.plot(*drawable(*paths[column]), color="tab:blue", linewidth=1.2, label=names[column] + joined)
        ax.set_ylabel(names[column], fontsize="small")
        ax.tick_params(labelsize="small")
        ax.grid(True, alpha=0.3)
    norms[0].set_title("Each layer's size (L2 norm, at the logged steps)" if not every_step
                       else "Each layer's size (L2 norm)", fontsize="medium", loc="left")
    for ax in norms[-2:]:
        ax.set_xlabel("step", fontsize="small")
    heading = title(record, "Parameters")
    fig.suptitle(heading, y=1 - 0.12 / fig.get_figheight(), fontsize=title_size(heading, fig.get_figwidth()))
    return fig


def _draw_snapshot_losses(ax: Any, record: RunRecord, whole: dict[float, float]) -> None:
    """The logged loss and, for mini-batch or per-sample training (whose logged loss is one
    batch's), the loss of the whole data after each step of the curves."""
    xs, ys = positive(record.metrics.get("step", []), record.metrics.get("loss", []))
    full = (record.summary.get("batch_size") or 0) >= (record.summary.get("samples") or {}).get("train", 0)
    ax.plot(xs, ys, color="tab:blue", linewidth=1.2,
            label="loss of each logged step" + ("" if full else " (one batch's)"))
    if not full:  # full-batch: the logged loss is the whole data's already
        ax.plot(*positive(list(whole), list(whole.values())), color="black", marker="o", linestyle="",
                markersize=4, label="loss of the whole data (at the curves)")
    if xs:
        ax.set_yscale("log")
    finish(ax, "step", _loss_label(record), "Loss", log=bool(xs))
    if xs:
        readable_log_axis(ax)
    place_legend(ax, fontsize="small")


def _initial_values(record: RunRecord) -> dict[str, float]:
    """Each metrics column's value before the first update, from summary.json's initial_params:
    a parameter's values one by one, or its norm where metrics.csv logs a norm."""
    import math

    from bpcli.rundir.run import flat_names

    found: dict[str, float] = {}
    for name, values in (record.summary.get("initial_params") or {}).items():
        if isinstance(values, dict):  # a large tensor, recorded by its norm
            found[f"norm({name})"] = values.get("norm")
            continue
        if not isinstance(values, list) or not values:
            continue
        columns = flat_names(name, len(values))
        if len(columns) == 1 and len(values) > 1:  # logged as its norm
            found[columns[0]] = math.sqrt(math.fsum(v * v for v in values if drawable([v])[0]))
        else:
            found.update(zip(columns, values))
    return {column: value for column, value in found.items() if drawable([value])[0]}


def _param_paths(record: RunRecord, columns: list[str]) -> tuple[dict[str, tuple[list[float], list[float]]], bool]:
    """Each column's path from step 0 (the initial parameters) on: every step, where the run
    can be replayed (as the landscape replays a line's plain gradient descent), else the
    logged steps; and whether it is every step."""
    steps = list(record.metrics["step"])
    path = descent(record, None)
    names = _line_params(record)
    if path is not None and path.every_step:
        every = {name: (list(range(len(values))), list(values)) for name, values in zip(names, path.points)}
        if set(columns) <= set(every):
            return {column: every[column] for column in columns}, True
    start = _initial_values(record)
    out = {}
    for column in columns:
        values = list(record.metrics[column])
        out[column] = ([0.0, *steps], [start[column], *values]) if column in start else (steps, values)
    return out, len(steps) == steps[-1] if steps else False


def _display_names(record: RunRecord, columns: list[str]) -> dict[str, str]:
    """Each column's name on its panel: a weight of CSV data by its feature (w[bmi], not w[2])."""
    features = record.summary.get("features") or []
    csv = (record.config.get("data") or {}).get("source") == "csv"
    names = {}
    for column in columns:
        name, _, index = column.partition("[")
        i = int(index.rstrip("]")) if index.rstrip("]").isdigit() else (0 if not index else None)
        by_feature = csv and name == "w" and i is not None and i < len(features)
        feature = readable(str(features[i]), "") if by_feature else ""  # a name no font here draws: w[0]
        by_feature = by_feature and bool(feature)
        # A long column name is cut in its middle, where names of one table tend to agree:
        # the label runs along a panel less than two inches tall.
        half = FEATURE_NAME // 2
        feature = feature if len(feature) <= FEATURE_NAME else f"{feature[:half - 1]}…{feature[-half:]}"
        names[column] = f"w[{feature}]" if by_feature else column
    names.update(_class_weight_names(record, columns))
    return names


def _class_weight_names(record: RunRecord, columns: list[str]) -> dict[str, str]:
    """A softmax classifier's W[i] as W[class, feature] (W is C rows of F, logged row by row)
    and b[c] as b[class]; nothing for any other run."""
    classes = [short(str(c), 10) for c in (classifier(record) or {}).get("classes") or []]
    features = record.summary.get("features") or []
    features = [short(str(f), 10) for f in features] or [f"x{i}" for i in range(len(record.data_x[0]))]
    weights = [f"W[{i}]" for i in range(len(classes) * len(features))]
    if not classes or not set(weights) <= set(columns):
        return {}
    names = {column: f"W[{classes[i // len(features)]}, {features[i % len(features)]}]"
             for i, column in enumerate(weights)}
    return names | {f"b[{c}]": f"b[{name}]" for c, name in enumerate(classes) if f"b[{c}]" in columns}


FEATURE_NAME = 16
"""The most characters of a feature's name params.png writes (w[blood_p…_at_rest])."""


def _landscape_plot(record: RunRecord) -> tuple[str, Any]:
    """The loss over (w, b), or over w alone, with the path gradient descent took."""
    surface = landscape(record)
    path = descent(record, "tab:red") if surface else None
    if surface is None or path is None or not landscape_drawable(surface, [path]):
        return "landscape", None  # no closed form, a diverged path or data too large to draw a surface over
    fig, axes = figure()
    ax = axes[0][0]
    draw_landscape(ax, surface, [path])
    heading = title(record, "Loss landscape")
    ax.set_title(heading, fontsize=title_size(heading, fig.get_figwidth()))
    place_legend(ax, fontsize="small")
    return "landscape", fig


# --------------------------------------------------------------------------- landscape
# Drawn onto any Axes, so that `bpcli compare` overlays several runs' paths on one
# surface and an animation can draw it frame by frame.


@dataclass
class Surface:
    """The loss of a line ŷ = w·x (+ b) on a run's data, as a function of its parameters."""

    names: list[str]
    """["w", "b"], or ["w"] for a line through the origin."""
    loss: Callable[[Any, Any], Any]
    """L(w, b) on numpy arrays (b is 0.0 for a line through the origin)."""
    optimum: list[float]
    """The closed-form least-squares optimum, one value per name."""


@dataclass
class Descent:
    """One run's path across a Surface: its parameters' values, step by step."""

    label: str
    points: list[Any]
    """One numpy array per name of the Surface, from the initial value on."""
    every_step: bool
    """True when `points` holds every step; False when only the logged ones."""
    colour: Any
    diverged: int | None = None
    """The step at which the run diverged, if it did: its path ends there."""
    width: float = 1.3
    """The line's width: paths that coincide stay visible when the earlier are drawn wider."""


def landscape(record: RunRecord) -> Surface | None:
    """The run's loss surface, or None when its model is not a line of one input with a known optimum."""
    names = _line_params(record)
    if not names:
        return None
    optimum = [record.summary["optimum"][n][0] for n in names]
    return Surface(names, _line_loss(record), optimum)


def draw_landscape(ax: Any, surface: Surface, paths: list[Descent]) -> None:
    """Draw the loss surface (a curve over w, or filled contours over (w, b)) and each
    path across it: its steps, a hollow circle at its start, a dot at its end (a cross
    where it diverged), the optimum as a star, over the paths and the optimum with a margin."""
    import numpy as np
    from matplotlib import patheffects
    from matplotlib.lines import Line2D

    limits = landscape_limits(surface, paths)
    if surface.names == ["w"]:
        _loss_curve(ax, surface, limits[0])
    else:
        _loss_contours(ax, surface, limits)
    # A white edge keeps a path readable on every colour of the surface beneath it.
    for path in paths:
        edge = [patheffects.withStroke(linewidth=path.width + 1.7, foreground="white")]
        xs = path.points[0]
        ys = path.points[1] if len(path.points) > 1 else surface.loss(xs, 0.0)
        xs, ys = _thin(np.asarray(xs), np.asarray(ys))
        many = len(xs) > 100  # a dot at each step while they can be told apart
        # A diverged path is dashed: its steps jump across (and out of) the panel.
        ax.plot(xs, ys, marker=None if many else ".", color=path.colour, markersize=3.5, linewidth=path.width,
                linestyle="--" if path.diverged is not None else "-", path_effects=edge, zorder=4,
                label=path.label)
        ax.scatter([xs[0]], [ys[0]], s=55, facecolor="white", edgecolor=path.colour, linewidth=1.8, zorder=5)
        ax.scatter([xs[-1]], [ys[-1]], s=70 if path.diverged is not None else 45, color=path.colour,
                   marker="X" if path.diverged is not None else "o", edgecolor="white", linewidth=0.8, zorder=5)
    opt_y = surface.optimum[1] if len(surface.optimum) > 1 else surface.loss(np.array(surface.optimum[0]), 0.0)
    where = ", ".join(number(v, 4) for v in surface.optimum)
    ax.scatter([surface.optimum[0]], [opt_y], marker="*", s=220, color="gold", edgecolor="black", zorder=6,
               label=f"optimum ({where})" if len(surface.optimum) > 1 else f"optimum w* = {where}")
    markers = [Line2D([], [], linestyle="", marker="o", markerfacecolor="white", markeredgecolor="black",
                      label="start")]
    if any(p.diverged is None for p in paths):
        markers.append(Line2D([], [], linestyle="", marker="o", color="black", label="end"))
    if any(p.diverged is not None for p in paths):
        markers.append(Line2D([], [], linestyle="", marker="X", color="black", label="where it diverged"))
    for marker in markers:
        ax.add_line(marker)  # empty: seen only in the legend
    ax.set_xlim(*limits[0])
    if len(limits) > 1:
        ax.set_ylim(*limits[1])
    ax.grid(True, alpha=0.2)


def landscape_limits(surface: Surface, paths: list[Descent]) -> list[tuple[float, float]]:
    """The range of each parameter a landscape shows: the paths that did not diverge (all
    of them if none converged) and the optimum, with a margin; a diverged path leaves it."""
    import numpy as np

    kept = [p for p in paths if p.diverged is None] or paths
    return [span(np.concatenate([*(p.points[i] for p in kept), [surface.optimum[i]]]))
            for i in range(len(surface.names))]


def _thin(xs: Any, ys: Any, most: int = 2000) -> tuple[Any, Any]:
    """At most about `most` points of a long path, evenly spaced along its length (where
    it moves fast, many; where it creeps, few), the first and the last kept."""
    import numpy as np

    if len(xs) <= most:
        return xs, ys
    with np.errstate(invalid="ignore", divide="ignore"):
        # Distances in each axis's own units: w and b may differ in scale.
        scale = [np.ptp(v) or 1.0 for v in (xs, ys)]
        length = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(xs) / scale[0], np.diff(ys) / scale[1]))])
    keep = np.unique(np.concatenate([[0, len(xs) - 1],
                                     np.searchsorted(length, np.linspace(0, length[-1], most)).clip(0, len(xs) - 1)]))
    return xs[keep], ys[keep]


def landscape_drawable(surface: Surface, paths: list[Descent]) -> bool:
    """Whether every path, the optimum and the loss along the paths are finite numbers a figure can place."""
    import numpy as np

    if not all(len(p.points[0]) for p in paths):
        return False  # nothing logged and no initial values: no path
    points = [*(v for p in paths for v in p.points), np.array(surface.optimum)]
    with np.errstate(over="ignore", invalid="ignore"):
        values = [surface.loss(p.points[0], p.points[1] if len(p.points) > 1 else 0.0) for p in paths]
        return all(len(drawable(list(v))[0]) == len(v) for v in points) \
            and all(bool(np.isfinite(v).all()) and float(np.max(v)) < 1e300 for v in values)


def _line_params(record: RunRecord) -> list[str]:
    """["w", "b"] or ["w"] for a line ŷ = w·x (+ b) of one input with a known optimum; else []."""
    summary = record.summary
    params, best = summary.get("params") or {}, summary.get("optimum")
    names = [n for n in ("w", "b") if n in params]
    one_value = all(isinstance(params[n], list) and len(params[n]) == 1 for n in names)
    if not best or not names or set(params) != set(names) or not one_value or len(record.data_x[0]) != 1:
        return []
    return names


REPLAYED_STEPS = 200_000
"""The longest run whose path is drawn step by step (see `descent`); longer ones through their logged steps."""


def descent(record: RunRecord, colour: Any, label: str | None = None) -> Descent | None:
    """The path a run's parameters took, from their initial values on; None if not a line's.
    `label` names it in a legend (default: "path of (w, b), every step" or "…, logged steps").

    metrics.csv holds the logged steps only (every 500th in exp2). Between two logged
    steps, plain gradient descent on data.csv is replayed in float64, one step at a time:
    full-batch when the run made one update per epoch, per sample in data order when it
    made one per sample. Where every replayed stretch ends on the next logged values, the
    path is drawn through every step; where one does not (another optimizer, mini-batches,
    momentum), or a value is missing, it is drawn through the logged steps alone.
    """
    import numpy as np

    names = _line_params(record)
    if not names:
        return None
    summary = record.summary
    start = [((summary.get("initial_params") or {}).get(n) or [None])[0] for n in names]
    steps = record.metrics["step"]
    logged = [np.array(record.metrics[n], dtype=float) for n in names]
    diverged = (summary.get("divergence") or {}).get("step")
    path = "path of " + (names[0] if len(names) == 1 else f"({', '.join(names)})")
    if None in start:
        return Descent(label or f"{path}, logged steps", logged, False, colour, diverged)
    points = [np.concatenate([[s], v]) for s, v in zip(start, logged)]
    if all(b - a == 1 for a, b in zip([0, *steps], steps)):  # every step was logged
        return Descent(label or f"{path}, every step", points, True, colour, diverged)
    replayed = _replay(record, names, [0, *steps], np.array(points).T)
    if replayed is None:
        return Descent(label or f"{path}, logged steps", points, False, colour, diverged)
    return Descent(label or f"{path}, every step", list(replayed.T), True, colour, diverged)


def _replay(record: RunRecord, names: list[str], steps: list[float], logged: Any) -> Any:
    """Every step's parameters (one row per step, from step 0), replayed from each logged
    step to the next; None unless every stretch ends on the next logged values."""
    import numpy as np

    lr, epochs = record.summary.get("lr"), record.metrics.get("epoch", [])
    if not isinstance(lr, (int, float)) or not epochs or steps[-1] > REPLAYED_STEPS or steps[-1] < 1:
        return None
    # Plain Python floats: a step is a few multiplications, which numpy would make slower.
    x, y, n = [row[0] for row in record.data_x], list(record.data_y), len(record.data_y)
    bias = 1.0 if len(names) == 2 else 0.0
    if all(s == e for s, e in zip(steps[1:], epochs)):
        # Full batch: dL/dw = 2·mean((w·x + b − y)·x), dL/db = 2·mean(w·x + b − y).
        sxx, sx = math.fsum(v * v for v in x) / n, math.fsum(x) / n
        sxy, sy = math.fsum(u * v for u, v in zip(x, y)) / n, math.fsum(y) / n

        def step(w: float, b: float, _: int) -> tuple[float, float]:
            return w - lr * 2 * (w * sxx + b * sx - sxy), b - lr * 2 * bias * (w * sx + b - sy)
    elif names == ["w"] and all(math.ceil(s / n) == e for s, e in zip(steps[1:], epochs)):
        # One sample per step, in data order: dL/dw = 2·x_i·(w·x_i − y_i).
        def step(w: float, b: float, s: int) -> tuple[float, float]:
            xi, yi = x[(s - 1) % n], y[(s - 1) % n]
            return w - lr * 2 * xi * (w * xi - yi), b
    else:
        return None
    logged = [[float(v) for v in row] + [0.0] * (2 - len(row)) for row in logged]  # (w, b), b = 0 without one
    rows = [tuple(logged[0])]
    for (a, begin), (b_step, end) in zip(zip(steps, logged), zip(steps[1:], logged[1:])):
        w, b = begin
        for s in range(int(a) + 1, int(b_step) + 1):
            w, b = step(w, b, s)
            rows.append((w, b))
        # The run trained in float32 (or float64): a stretch that replays the same
        # updates ends within rounding of the logged values, far closer than it moved.
        moved = max(abs(end[0] - begin[0]), abs(end[1] - begin[1]))
        missed = max(abs(w - end[0]), abs(b - end[1]))
        if not missed <= 1e-3 * moved + 1e-5 * (1 + max(abs(end[0]), abs(end[1]))):
            return None
    return np.array(rows)[:, :len(names)]


def _line_loss(record: RunRecord) -> Callable[[Any, Any], Any]:
    """L(w, b), the mean squared error of the line ŷ = w·x + b on the run's data."""
    import numpy as np

    x = np.array([row[0] for row in record.data_x])
    y = np.array(record.data_y)
    # The mean squared error of a line needs only five sums of the data:
    # mean((w·x + b − y)²) = w²·⟨x²⟩ + 2wb·⟨x⟩ + b² − 2w·⟨xy⟩ − 2b·⟨y⟩ + ⟨y²⟩,
    # so the surface costs nothing however many samples there are.
    with np.errstate(over="ignore", invalid="ignore"):  # data too large for a surface: checked by the caller
        sxx, sx, sxy, sy, syy = (x * x).mean(), x.mean(), (x * y).mean(), y.mean(), (y * y).mean()

    def loss(w: Any, b: Any) -> Any:
        with np.errstate(over="ignore", invalid="ignore"):
            return np.maximum(w * w * sxx + 2 * w * b * sx + b * b - 2 * w * sxy - 2 * b * sy + syy, 0.0)

    return loss


def _loss_curve(ax: Any, surface: Surface, limits: tuple[float, float]) -> None:
    """A line through the origin, ŷ = w·x: the loss curve L(w), a parabola, on a linear axis."""
    import numpy as np

    ws = np.linspace(*limits, 400)
    # L(w) = mean over the samples of (w·x − y)²: the loss one epoch descends.
    curve = surface.loss(ws, 0.0)
    ax.plot(ws, curve, color="0.25", linewidth=1.5, label="L(w) = mean((w·x − y)²)")
    top = float(curve.max()) or 1.0  # 0 only where every point of the data is (0, 0)
    ax.set_ylim(-0.05 * top, 1.08 * top)  # the curve's own range: a diverged path leaves the panel
    ax.set_xlabel("w")
    ax.set_ylabel("loss")


def _loss_contours(ax: Any, surface: Surface, limits: list[tuple[float, float]]) -> None:
    """A line with a bias, ŷ = w·x + b: the loss L(w, b) as filled contours."""
    import numpy as np
    from matplotlib.colors import LogNorm

    W, B = np.meshgrid(np.linspace(*limits[0], 200), np.linspace(*limits[1], 200))
    L = surface.loss(W, B)
    # A bowl whose floor is many decades below its rim: levels spaced evenly in log(L)
    # over six decades below the highest, coloured by log(L) with viridis (perceptually
    # uniform, dark in the valley), so every ring of the valley gets its own colour.
    top = float(L.max())
    low = max(float(L.min()), top * 1e-6)
    levels = np.geomspace(low, top, 19) if top > low > 0 else None
    if levels is None:
        return
    norm = LogNorm(low, top)
    filled = ax.contourf(W, B, L, levels=levels, cmap="viridis", norm=norm, extend="min")
    ax.contour(W, B, L, levels=levels[::3], colors="white", linewidths=0.5, alpha=0.5)
    bar = ax.figure.colorbar(filled, ax=ax, label="loss L(w, b)")
    powers = range(math.floor(math.log10(low)), math.floor(math.log10(top)) + 1)
    if top / low >= 1e3:  # 10ᵏ at every power
        bar.set_ticks([10.0 ** k for k in powers if low <= 10.0 ** k <= top],
                      labels=["10" + str(k).translate(SUPERSCRIPT) for k in powers if low <= 10.0 ** k <= top])
    else:  # a shallow bowl (noisy data): 1, 2 and 5 in each decade, as plain numbers
        ticks = [m * 10.0 ** k for k in powers for m in (1, 2, 5) if low <= m * 10.0 ** k <= top]
        bar.set_ticks(ticks, labels=[sci(t, 2) for t in ticks])
    ax.set_xlabel("w")
    ax.set_ylabel("b")


FIGURES: dict[str, Callable[[RunRecord], tuple[str, Any]]] = {
    "loss": _loss_plot,
    "fit": _fit_plot,
    "params": _params_plot,
    "landscape": _landscape_plot,
    "residuals": _residuals_plot,
    "boundary": boundary_plot,
    "confusion": confusion_plot,
}
"""Every figure by the name a kind's task gives it; each maker returns (name, None) for a
run it cannot draw."""
