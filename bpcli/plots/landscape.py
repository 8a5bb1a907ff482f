"""landscape.png: the loss of a line ŷ = w·x (+ b) over its parameters, with the path gradient
descent took, the steps between logged ones replayed in float64.

The loss landscape is recomputed from data.csv with numpy (which matplotlib brings), so it
needs nothing but the run directory. It is drawn onto any Axes by `draw_landscape(ax,
landscape(record), [descent(record, colour), …])`, which `bpcli compare` uses to overlay
several runs' paths on one surface and `bpcli animate` draws its frames over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from bpcli.plots.common import SUPERSCRIPT, drawable, figure, number, place_legend, sci, span, title, title_size
from bpcli.rundir.run import RunRecord


def landscape_plot(record: RunRecord) -> tuple[str, Any]:
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
    names = line_params(record)
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


def line_params(record: RunRecord) -> list[str]:
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

    names = line_params(record)
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
