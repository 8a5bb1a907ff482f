"""A sweep's figures: every member's loss curve (or medians and bands), and final loss against lr."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

from bpcli.errors import RunDirError
from bpcli.plots.common import figure, finish, readable_log_axis, save
from bpcli.rundir.sweep import SweepRecord, read_losses, read_sweep

SWEEP_LINES = 200
"""Up to this many members, losses.png draws every member's curve; beyond, each setting's
median with the band holding the middle 90 % of its members."""


def draw_sweep(directory: str | Path, fmt: str = "png",
               history: list[tuple[int, list[float]]] | None = None) -> list[Path]:
    """losses.png (every member's loss curve, or each setting's median and spread for large
    sweeps) and, when lr varies, lr.png (final loss against lr).

    `history` is what metrics.csv holds, [(step, [loss of each member])]: a sweep that has
    just trained passes it instead of having its file read back.
    """
    return [save(fig, Path(directory) / f"{name}.{fmt}") for name, fig in sweep_figures(directory, history)]


def sweep_figures(directory: str | Path,
                  history: list[tuple[int, list[float]]] | None = None) -> list[tuple[str, Any]]:
    """A sweep's figures by name ("losses", and "lr" when lr varies), drawn, not saved."""
    import numpy as np

    record = read_sweep(directory)
    if history is None:
        steps, losses = read_losses(record.path, len(record.members))
    else:
        steps, losses = np.array([s for s, _ in history], float), np.array([v for _, v in history], float)
    try:
        made = [("losses", _losses_figure(record, steps, losses))]
        if "train.lr" in record.info["grid"]:
            made.append(("lr", _lr_figure(record)))
    except (KeyError, ValueError, TypeError) as exc:  # a file that parsed but does not hold a sweep
        raise RunDirError(f"{record.path}: a sweep file is corrupt ({type(exc).__name__}: {exc})") from None
    return made


def _in_order(value: str) -> tuple[int, float, str]:
    """Numbers by value, then words (optimizer names, curves) alphabetically."""
    try:
        return 0, float(value), ""
    except ValueError:
        return 1, 0.0, value


def _losses_figure(record: SweepRecord, steps: Any, losses: Any) -> Any:
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.lines import Line2D

    info, members = record.info, record.members
    losses[~((losses > 0) & np.isfinite(losses))] = np.nan  # a log scale cannot show them
    for k, member in enumerate(members):  # a diverged member ends at its step, as its single run does
        at = _number(member.get("diverged_at_step"))
        if at is not None:
            losses[steps > at, k] = np.nan
    varying = [k for k in info["grid"] if k != "seed"]
    colour_key = varying[0] if varying else None
    levels = sorted({m[colour_key] for m in members}, key=_in_order) if colour_key else [None]
    fig, axes = figure()
    ax = axes[0][0]
    cmap = colormaps["viridis"]
    every = len(members) <= SWEEP_LINES
    crosses = False  # whether a diverged member was marked
    for i, level in enumerate(levels):
        # viridis up to 0.85: its last, palest yellow hardly shows on white
        colour = cmap(0.85 * i / max(len(levels) - 1, 1)) if colour_key else "tab:blue"
        chosen = [k for k, m in enumerate(members) if colour_key is None or m[colour_key] == level]
        label = f"{colour_key.split('.')[-1]}={level}" if colour_key else None
        _draw_members(ax, steps, losses[:, chosen], colour, label, every)
        if every:
            crosses |= _mark_diverged(ax, steps, losses, members,
                                      [k for k in chosen if members[k].get("status") == "diverged"], colour)
    ax.autoscale_view()
    log = bool(np.isfinite(losses).any())  # a log scale needs one positive value; all-diverged has none
    if log:
        ax.set_yscale("log")
    finish(ax, "step", "training loss", f"Sweep: {info['members']} {info['kind']} runs trained as one batch",
           log=log)
    if log:
        readable_log_axis(ax)
    if crosses:
        ax.add_line(Line2D([], [], linestyle="", marker="X", color="black", label="diverged (its loss at that step)"))
    if colour_key or not every or crosses:
        # Loss curves fall: the lower left corner stays clear, unless crosses mark members
        # that diverged at once; then the legend finds the emptiest corner.
        ax.legend(fontsize="small", loc="best" if crosses else "lower left")
    return fig


def _mark_diverged(ax: Any, steps: Any, losses: Any, members: list[dict[str, str]], diverged: list[int],
                   colour: Any) -> bool:
    """A cross where each diverged member diverged: its step and the loss there (summary.csv),
    or its last drawable loss when that is not a positive number (a member whose loss became
    NaN at its first step has nothing to show); whether it drew one."""
    import numpy as np

    points = []
    for k in diverged:
        at, loss = _number(members[k].get("diverged_at_step")), _number(members[k].get("final_loss"))
        if at is not None and loss is not None and 0 < loss < math.inf:
            points.append((at, loss))
            continue
        finite = np.flatnonzero(np.isfinite(losses[:, k]))
        if finite.size:
            points.append((steps[finite[-1]], losses[finite[-1], k]))
    if points:
        ax.scatter(*zip(*points), marker="X", s=50, color=colour, edgecolor="white", linewidth=0.6, zorder=4)
    return bool(points)


def _number(text: str | None) -> float | None:
    """A number of summary.csv, None for an empty cell (or one that is not a number)."""
    try:
        return float(text) if text else None
    except ValueError:
        return None


def _draw_members(ax: Any, steps: Any, curves: Any, colour: Any, label: str | None, every: bool) -> None:
    """One setting's members: each curve (one collection: far faster than one plot() per
    member), or their median and the band holding the middle 90 %."""
    import numpy as np
    from matplotlib.collections import LineCollection

    if every:
        segments = [np.column_stack([steps, c])[np.isfinite(c)] for c in curves.T]
        ax.add_collection(LineCollection(segments, colors=[colour], alpha=0.6, linewidths=1, label=label))
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a step where every member diverged
        low, median, high = np.nanpercentile(curves, [5, 50, 95], axis=1)
    ax.fill_between(steps, low, high, color=colour, alpha=0.25, linewidth=0)
    ax.plot(steps, median, color=colour, linewidth=1.5,
            label=f"{label + ': ' if label else ''}median of {curves.shape[1]}, band 5–95 %")


def _lr_figure(record: SweepRecord) -> Any:
    fig, axes = figure()
    ax = axes[0][0]
    others = [k for k in record.info["grid"] if k not in ("seed", "train.lr")]
    groups: dict[str, list[tuple[float, float, float]]] = {}
    for a in record.aggregates:
        mean = float(a["final_loss_mean"]) if a["final_loss_mean"] else math.nan
        std = float(a["final_loss_std"]) if a["final_loss_std"] else 0.0
        name = ", ".join(f"{k.split('.')[-1]}={a[k]}" for k in others) or "mean ± std over seeds"
        groups.setdefault(name, []).append((float(a["train.lr"]), mean, std))
    # matplotlib's log axis cannot span hundreds of decades (its ticks overflow float64):
    # beyond 1e±200 the lr axis shows log₁₀(lr) on a linear scale instead.
    lrs = [p[0] for points in groups.values() for p in points]
    decades = any(not 1e-200 <= lr <= 1e200 for lr in lrs if lr > 0)
    place = (lambda lr: math.log10(lr) if lr > 0 else -math.inf) if decades else (lambda lr: lr)
    lost = sorted({p[0] for points in groups.values() for p in points if not math.isfinite(p[1])})
    for name, points in groups.items():
        points.sort()
        xs = [place(p[0]) for p in points if math.isfinite(p[1])]
        ax.errorbar(xs, [p[1] for p in points if math.isfinite(p[1])],
                    yerr=[p[2] for p in points if math.isfinite(p[1])], marker="o", capsize=3, label=name)
    for i, lr in enumerate(lost):  # a learning rate at which every seed diverged has no mean to draw
        ax.axvline(place(lr), color="red", linestyle=":", linewidth=1.2,
                   label="every seed diverged" if i == 0 else None)
    if not decades:
        ax.set_xscale("log")
    log = any(0 < p[1] < math.inf for points in groups.values() for p in points)
    if log:
        ax.set_yscale("log")
    finish(ax, "log₁₀ learning rate" if decades else "learning rate", "final training loss",
           "Final loss against learning rate", log=True)
    if log:
        readable_log_axis(ax)
    ax.legend(fontsize="small", loc="best")
    return fig
