"""fit.png and residuals.png: a regression's fitted line or curve over its data, or its
predictions against the targets where it has several inputs, and the residuals."""

from __future__ import annotations

from typing import Any

from bpcli.plots.common import drawable, figure, finish, number, place_legend, plus, readable, title
from bpcli.rundir.run import RunRecord


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


def residuals_plot(record: RunRecord) -> tuple[str, Any]:
    """Each fitted value's residual y − ŷ against the prediction, training and validation rows."""
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


def fit_plot(record: RunRecord) -> tuple[str, Any]:
    """The fit over the data of one input (the true line or curve, predictions marked); with
    several inputs, predicted against actual values."""
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
