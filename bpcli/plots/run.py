"""The figures of a single run, drawn from its run directory alone (no torch).

Figures are built with matplotlib's object API and saved through the Agg canvas, so no
display or GUI backend is ever needed. The loss landscape is recomputed from data.csv
with numpy (which matplotlib brings), so it too needs nothing but the run directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from bpcli.plots.common import drawable, figure, finish, number, plus, positive, save, span, title
from bpcli.rundir.run import RunRecord, read_run


def draw_plots(run_dir: str | Path, fmt: str = "png") -> list[Path]:
    """Draw every plot a run supports into its directory; return the files written."""
    record = read_run(run_dir)
    return _draw(record, [_loss_plot, _fit_plot, _params_plot, _landscape_plot, _residuals_plot], fmt)


def _draw(record: RunRecord, makers: list[Any], fmt: str) -> list[Path]:
    written = []
    for maker in makers:
        name, fig = maker(record)
        if fig is not None:
            path = record.path / f"{name}.{fmt}"
            written.append(save(fig, path))
    return written


def _loss_plot(record: RunRecord) -> tuple[str, Any]:
    fig, axes = figure()
    ax = axes[0][0]
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
        best = (record.summary.get("optimum") or {}).get("loss")
        if best is not None and best > 0:
            ax.axhline(best, color="green", linestyle=":", label=f"optimum's loss {best:.3g}")
        _predicted_envelope(ax, record, xs, ys)
    diverged = (record.summary.get("divergence") or {}).get("step")
    if diverged is not None:
        ax.axvline(diverged, color="red", linestyle="--", linewidth=1.2, label=f"diverged at step {diverged}")
    if xs or diverged is not None:
        ax.legend(loc="upper right")
    finish(ax, "step (parameter update)", "loss (squared error)", title(record, "Loss"), log=bool(xs))
    return "loss", fig


def _predicted_envelope(ax: Any, record: RunRecord, steps: list[float], losses: list[float]) -> None:
    """The gap to the optimum's loss, L − L*, and the gap the Hessian predicts,
    (L₁ − L*)·ρ^(2·(step − 1)): the error θ − θ* shrinks by ρ a step and the gap is quadratic
    in it, hence the power 2. On a log axis the two tails run parallel when the prediction holds."""
    best = (record.summary.get("optimum") or {}).get("loss")
    if not isinstance(best, (int, float)) or len(steps) < 2:
        return
    gaps = positive(steps, [loss - best for loss in losses])
    if gaps[0] and best > min(losses) / 100:  # else the gap is the loss itself, already drawn
        ax.plot(*gaps, color="tab:purple", linewidth=1.2, label="gap to the optimum's loss, L − L*")
    rate = (record.summary.get("convergence") or {}).get("rate_predicted")
    if not isinstance(rate, (int, float)):
        return
    first, last, start = steps[0], steps[-1], losses[0] - best
    grid = [first + (last - first) * i / 199 for i in range(200)]
    envelope = [start * rate ** (2 * (s - first)) for s in grid]
    # Within a decade of what is drawn: where rounding stops the run (or a diverging one
    # stops), the prediction would only stretch the axis.
    low, high = min(losses + gaps[1]), max(losses)
    shown = [(s, v) for s, v in zip(grid, envelope) if low / 10 <= v <= high * 10]
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
    finish(ax, f"actual {record.summary.get('target', 'y')}{units}", f"predicted{units}",
           title(record, "Predicted vs actual"))
    ax.legend(loc="best")
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
    ax.legend(loc="best")
    return "residuals", fig


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
    for p in summary.get("predictions") or []:
        if isinstance(p["x"], list) or summary.get("scaling") or not drawable([p["x"]], [p.get("y_pred")])[0]:
            continue  # marked only where the plot's axes are the inputs' own units, and can be
        ax.scatter([p["x"]], [p["y_pred"]], marker="x", s=60, color="tab:green", zorder=4)
        ax.annotate(f"ŷ({number(p['x'], 6)}) = {number(p['y_pred'], 8)}", (p["x"], p["y_pred"]),
                    textcoords="offset points", xytext=(-8, 8), ha="right")
    finish(ax, "x", "y", title(record, "Fit"))
    ax.legend(loc="best")
    return "fit", fig


def _value_columns(record: RunRecord) -> list[str]:
    skip = {"step", "epoch", "loss", "val_loss", "distance_to_optimum"}
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
    columns = _value_columns(record)[:PARAM_PANELS]
    if not columns:
        return "params", None
    cols = 1 if len(columns) <= 6 else 2
    rows = -(-len(columns) // cols)
    fig, axes = figure(rows, cols, size=(7 * cols, 1.0 + 1.8 * rows), sharex=True)
    panels = [ax for row in axes for ax in row]
    for ax in panels[len(columns):]:
        ax.set_visible(False)
    steps = record.metrics["step"]
    for ax, column in zip(panels, columns):
        ax.plot(*drawable(steps, record.metrics[column]), color="tab:blue", linewidth=1.5, label=column)
        true = _reference(record.summary, column, "true_params")
        best = _reference(record.summary, column, "optimum")
        if drawable([true])[0]:
            ax.axhline(true, color="black", linestyle="--", linewidth=1, label=f"true {number(true, 6)}")
        if drawable([best])[0]:
            ax.axhline(best, color="green", linestyle=":", linewidth=1.5, label=f"optimum {number(best, 6)}")
        ax.set_ylabel(column)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    for ax in panels[len(columns) - cols:len(columns)]:  # the lowest panel of each column
        ax.set_xlabel("step")
        ax.xaxis.set_tick_params(labelbottom=True)
    fig.suptitle(title(record, "Parameters"), y=1 - 0.12 / fig.get_figheight())
    return "params", fig


def _landscape_plot(record: RunRecord) -> tuple[str, Any]:
    """The loss over (w, b), or over w alone, with the path gradient descent took."""
    names = _line_params(record)
    if not names:
        return "landscape", None
    path, optimum = _descent(record, names)
    loss = _line_loss(record)
    if not _landscape_drawable(loss, path, optimum):
        return "landscape", None  # a diverged path or data too large to draw a surface over
    fig, axes = figure()
    ax = axes[0][0]
    if names == ["w"]:
        _loss_curve(ax, loss, path[0], optimum[0])
    else:
        _loss_contours(ax, loss, path, optimum)
    ax.set_title(title(record, "Loss landscape"))
    ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.2)
    return "landscape", fig


def _landscape_drawable(loss: Callable[[Any, Any], Any], path: list[Any], optimum: list[float]) -> bool:
    import numpy as np

    points = [*path, np.array(optimum)]
    with np.errstate(over="ignore", invalid="ignore"):
        values = loss(path[0], path[1] if len(path) > 1 else 0.0)
        return all(len(drawable(list(p))[0]) == len(p) for p in points) and bool(np.isfinite(values).all()) \
            and float(np.max(values)) < 1e300


def _line_params(record: RunRecord) -> list[str]:
    """["w", "b"] or ["w"] for a line ŷ = w·x (+ b) of one input with a known optimum; else []."""
    summary = record.summary
    params, best = summary.get("params") or {}, summary.get("optimum")
    names = [n for n in ("w", "b") if n in params]
    one_value = all(isinstance(params[n], list) and len(params[n]) == 1 for n in names)
    if not best or not names or set(params) != set(names) or not one_value or len(record.data_x[0]) != 1:
        return []
    return names


def _descent(record: RunRecord, names: list[str]) -> tuple[list[Any], list[float]]:
    """Each parameter's values along the descent (from its initial value, where recorded),
    and its optimum."""
    import numpy as np

    summary = record.summary
    start = [(summary.get("initial_params") or {}).get(n, [None])[0] for n in names]
    path = [list(record.metrics[n]) for n in names]
    if None not in start:
        path = [[s, *p] for s, p in zip(start, path)]
    return [np.array(p) for p in path], [summary["optimum"][n][0] for n in names]


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


def _loss_curve(ax: Any, loss: Callable[[Any, Any], Any], w_path: Any, w_opt: float) -> None:
    """A line through the origin, ŷ = w·x: the loss curve L(w) and the steps taken along it."""
    import numpy as np

    lo, hi = span(np.append(w_path, w_opt))
    ws = np.linspace(lo, hi, 400)
    # L(w) = mean over the samples of (w·x − y)²: the loss one epoch descends.
    ax.plot(ws, loss(ws, 0.0), color="tab:blue", label="L(w) = mean((w·x − y)²)")
    losses = loss(w_path, 0.0)
    ax.plot(w_path, losses, ".-", color="tab:orange", markersize=4, linewidth=0.8, label="path of w")
    ax.scatter([w_path[0]], [losses[0]], color="green", s=60, zorder=5, label="start")
    ax.scatter([w_path[-1]], [losses[-1]], color="red", s=60, zorder=5, label="end")
    ax.scatter([w_opt], [loss(w_opt, 0.0)], marker="*", s=200, color="gold",
               edgecolor="black", zorder=6, label=f"optimum w* = {w_opt:.6g}")
    ax.set_xlabel("w")
    ax.set_ylabel("loss")
    ax.set_yscale("symlog", linthresh=1e-3)


def _loss_contours(ax: Any, loss: Callable[[Any, Any], Any], path: list[Any], opt: list[float]) -> None:
    """A line with a bias, ŷ = w·x + b: contours of L(w, b) and the path (w, b) took across them."""
    import numpy as np

    w_path, b_path = path
    w_lo, w_hi = span(np.append(w_path, opt[0]))
    b_lo, b_hi = span(np.append(b_path, opt[1]))
    W, B = np.meshgrid(np.linspace(w_lo, w_hi, 200), np.linspace(b_lo, b_hi, 200))
    L = loss(W, B)  # a bowl: contours at logarithmic levels
    levels = np.geomspace(max(L.min(), 1e-8), L.max(), 20)
    contours = ax.contour(W, B, L, levels=levels, cmap="viridis", linewidths=0.8)
    ax.figure.colorbar(contours, ax=ax, label="loss", format="%.0e")
    ax.plot(w_path, b_path, ".-", color="tab:orange", markersize=4, linewidth=1, label="path of (w, b)")
    ax.scatter([w_path[0]], [b_path[0]], color="green", s=60, zorder=5, label="start")
    ax.scatter([w_path[-1]], [b_path[-1]], color="red", s=60, zorder=5, label="end")
    ax.scatter([opt[0]], [opt[1]], marker="*", s=200, color="gold", edgecolor="black", zorder=6,
               label=f"optimum ({opt[0]:.4g}, {opt[1]:.4g})")
    ax.set_xlabel("w")
    ax.set_ylabel("b")
