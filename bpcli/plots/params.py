"""params.png: each parameter's path from its initial value (every step where the run can be
replayed), against its true and optimal values; a nonlinear regression's fitted curve step by step."""

from __future__ import annotations

from typing import Any

from bpcli.plots.classification import classifier, short
from bpcli.plots.common import (drawable, figure, finish, place_legend, positive, readable, readable_log_axis, sci,
                                title, title_size)
from bpcli.plots.landscape import descent, line_params
from bpcli.plots.loss import loss_label
from bpcli.rundir.run import RunRecord


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


def params_plot(record: RunRecord) -> tuple[str, Any]:
    """A panel per parameter value with its true and optimal values, or, where curves.csv has
    them, a nonlinear regression's fitted curves."""
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
    finish(ax, "step", loss_label(record), "Loss", log=bool(xs))
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
    names = line_params(record)
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
