"""`bpcli compare`: several runs on one figure: their losses, fitted curves and descent paths,
and the accuracy of classifiers.

Each run keeps one colour in every panel, and one legend under the panels names it by
the few settings that tell the runs apart. A panel that cannot be drawn for these runs
is left out with a note saying why, in the figure and in what `compare` returns.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from bpcli.errors import BpcliError
from bpcli.plots.classification import classifier, draw_accuracy
from bpcli.optimizers import DEFAULT
from bpcli.plots.common import FORMATS, drawable, finish, glyphs, positive, readable_log_axis, save, setting
from bpcli.plots.landscape import descent, draw_landscape, landscape, landscape_drawable
from bpcli.plots.loss import gap_reference
from bpcli.rundir.run import RunRecord, read_run

KEY_SETTINGS = ("kind", "train.optimizer", "train.lr", "train.momentum", "train.batch_size", "seed", "data")
"""The settings a run is labelled by when they differ between the runs, in this order."""

DEFAULTS = {"train.optimizer": DEFAULT, "train.momentum": 0.0}
"""What a run whose config predates a key trained with (plain SGD, no momentum)."""

UNUSED = {"train.momentum": 0.0}
"""Values that mean a setting is off: left out of a run's label (no `momentum=0` beside a rule without it)."""

NEVER_LABELS = ("predict", "device", "train.log_every", "train.engine", "train.checkpoint_every",
                "train.check_grad_every", "train.diverge_factor", "log.")
"""Settings that do not change what a run learns (or are too long to read in a legend)."""

LABEL_LENGTH = 60
"""A label longer than this is cut, with '…'."""


def compare(run_dirs: list[Path], out: Path) -> tuple[Path, list[str]]:
    """Draw several runs on one figure; return the file written and its notes (see compare_figure)."""
    out = Path(out)
    if out.suffix.lstrip(".") not in FORMATS:
        raise BpcliError(f"{out}: give a file ending in .png, .svg or .pdf")
    fig, notes = compare_figure([read_run(d) for d in run_dirs])
    return save(fig, out, elsewhere="choose another --out"), notes


def compare_figure(records: list[RunRecord]) -> tuple[Any, list[str]]:
    """The figure of `bpcli compare`, and its notes: the panels left out, and why; the runs
    whose descent path joins only their logged steps."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    glyphs()  # an installed CJK font joins the font list before the first text is made
    labels = _labels(records)
    # Ten distinct colours; up to twenty from a palette of pairs; beyond that they repeat.
    palette = colormaps["tab10" if len(records) <= 10 else "tab20"]
    colours = [palette(i % palette.N) for i in range(len(records))]
    notes: list[str] = []
    classifiers = [r for r in records if classifier(r)]
    if len(classifiers) == len(records):
        # Classifiers have neither a fitted curve nor a least-squares landscape: one note, not two.
        fit_skipped, surface, paths = "classifiers", None, []
        notes.append("no fit or landscape panel: the runs are classifiers; see each run's boundary.png or "
                     "confusion.png")
    else:
        fit_skipped = _fit_skipped(records)
        if fit_skipped:
            notes.append(f"no fit panel: {fit_skipped}")
        surface, paths, skipped = _shared_landscape(records, labels, colours)
        if skipped:
            notes.append(f"no landscape panel: {skipped}")
    # Runs on different data share no step axis (exp1's 300 per-sample steps under exp2's
    # 3000 would be a block of colour): each data set's runs get a loss panel of their own.
    groups = _data_groups(records)
    if len(groups) > 1:
        notes.append(f"the runs were trained on {len(groups)} different data sets: each one's losses in a "
                     "panel of its own")
    # Where every run knows its optimum and the loss levels off above it (real or noisy
    # data), L − L* on a log axis shows what the loss axis hides (momentum on Longley).
    bests = [gap_reference(r) for r in records]
    gap = all(b is not None for b in bests)
    panels = len(groups) + gap + bool(classifiers) + (not fit_skipped) + (surface is not None)

    # Constrained layout places the legend under the panels, whatever its size; `bpcli
    # compare` draws one figure, so the time it costs is not noticed.
    width = max(5.2 * panels, 7.0)
    fig = Figure(figsize=(width, 5.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(1, panels, squeeze=False)[0])
    diverged = False
    for group in groups:
        shown = [(records[i], labels[i], colours[i]) for i in group]
        heading = "Loss" if len(groups) == 1 else f"Loss on {_data_name(records[group[0]].config)}"
        diverged = _loss_panel(axes.pop(0), *map(list, zip(*shown)), heading=heading) or diverged
    if gap:
        _gap_panel(axes.pop(0), records, colours, bests)
    if classifiers:
        _accuracy_panel(axes.pop(0), records, labels, colours)
    if not fit_skipped:
        _fit_panel(axes.pop(0), records, labels, colours)
    if surface is not None:
        ax = axes.pop(0)
        draw_landscape(ax, surface, paths)
        ax.set_title("Descent paths")
        joined = [r.path.name for r, p in zip(records, paths) if not p.every_step]
        if joined:
            notes.append(f"descent paths drawn through the logged steps only: {', '.join(joined)}")
    if diverged:
        fig.axes[0].add_line(Line2D([], [], linestyle="", marker="X", color="black", label="where it diverged"))
    handles: dict[str, Any] = {}
    for ax in fig.axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(label, handle)
    # As many legend columns as the widest label lets fit side by side (a small font's
    # character is about 0.07 inch wide, a handle and the gap 0.6 inch).
    column = 0.6 + 0.07 * max(len(label) for label in handles)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", fontsize="small",
               ncols=max(1, min(3, len(handles), int(width // column))))
    lines = [textwrap.fill(note, int(width / 0.085)) for note in notes]  # a medium character: about 0.085 inch
    fig.suptitle("\n".join([f"Comparing {len(records)} runs", *lines]), fontsize="medium")
    return fig, notes


def _data_groups(records: list[RunRecord]) -> list[list[int]]:
    """The runs' indices grouped by the data they trained on, in the order they first come."""
    groups: list[list[int]] = []
    for i, record in enumerate(records):
        same = next((g for g in groups if records[g[0]].data_x == record.data_x
                     and records[g[0]].data_y == record.data_y), None)
        if same is None:
            groups.append([i])
        else:
            same.append(i)
    return groups


def _gap_panel(ax: Any, records: list[RunRecord], colours: list[str], bests: list[float]) -> None:
    """Each run's gap to its own optimum's loss, L − L*, on a log axis: how much it can still lose."""
    for record, colour, best in zip(records, colours, bests):
        steps, losses = record.metrics.get("step", []), record.metrics.get("loss", [])
        ax.plot(*positive(steps, [v - best for v in losses]), linewidth=1.3, color=colour)
    ax.set_yscale("log")
    finish(ax, "step", "L − L* (training loss − optimum's)", "Gap to the optimum", log=True)
    readable_log_axis(ax)


def _loss_panel(ax: Any, records: list[RunRecord], labels: list[str], colours: list[str],
                heading: str = "Loss") -> bool:
    """Every run's loss; a cross where a run diverged. True when one did."""
    diverged_any, log = False, False
    for record, label, colour in zip(records, labels, colours):
        steps, losses = positive(record.metrics.get("step", []), record.metrics.get("loss", []))
        ax.plot(steps, losses, linewidth=1.3, color=colour, label=label)
        log = log or bool(steps)
        diverged = (record.summary.get("divergence") or {}).get("step")
        if diverged is not None and steps:  # where a diverged run stopped: its last drawable loss
            ax.scatter([steps[-1]], [losses[-1]], marker="X", s=70, color=colour, edgecolor="white", zorder=4)
            diverged_any = True
    if log:
        ax.set_yscale("log")
    finish(ax, "step", "training loss", heading, log=log)
    if log:
        readable_log_axis(ax)
    return diverged_any


def _accuracy_panel(ax: Any, records: list[RunRecord], labels: list[str], colours: list[str]) -> None:
    """Every classifier's training accuracy (solid) and validation accuracy (dashed), in %."""
    from matplotlib.lines import Line2D

    shown = [(r, colour, label) for r, label, colour in zip(records, labels, colours) if classifier(r)]
    draw_accuracy(ax, shown)
    if any("val_accuracy" in r.metrics for r, _, _ in shown):  # the line styles, once for every run
        ax.add_line(Line2D([], [], color="black", linestyle="-", label="training accuracy"))
        ax.add_line(Line2D([], [], color="black", linestyle="--", label="validation accuracy"))
    finish(ax, "step", "accuracy", "Accuracy")


def _fit_panel(ax: Any, records: list[RunRecord], labels: list[str], colours: list[str]) -> None:
    same_data = all(r.data_x == records[0].data_x and r.data_y == records[0].data_y for r in records)
    if same_data:
        ax.scatter(*drawable([row[0] for row in records[0].data_x], records[0].data_y), c="0.35", s=10,
                   label="data", zorder=3)
    for record, label, colour in zip(records, labels, colours):
        if not same_data:
            ax.scatter(*drawable([row[0] for row in record.data_x], record.data_y), s=6, alpha=0.4, color=colour)
        curve = record.curve or {}
        ax.plot(*drawable(curve["x"], curve["y_pred"]), linewidth=1.5, color=colour, label=label)
    # The panel spans the data and the runs that did not diverge: a diverged run's line,
    # hundreds of units off, would flatten everything else; it leaves the panel instead.
    # When every run diverged, the panel spans them all.
    converged = [r for r in records if not r.summary.get("divergence")]
    kept = [v for r in records for v in drawable(r.data_y)[0]]
    kept += [v for r in converged for v in drawable((r.curve or {})["y_pred"])[0]]
    if converged and kept:
        low, high = min(kept), max(kept)
        margin = max(high - low, 1e-9 * max(abs(low), abs(high)), 1e-12) * 0.08
        ax.set_ylim(low - margin, high + margin)
    finish(ax, "x", "y", "Fit" + ("" if same_data else " (each run on its own data)"))


def _fit_skipped(records: list[RunRecord]) -> str | None:
    """Why the runs' fitted curves cannot share a panel, or None when they can."""
    for record in records:
        if classifier(record):
            return f"{record.path.name} is a classifier; see its own boundary.png or confusion.png"
        if record.curve is None:
            features = len(record.data_x[0]) if record.data_x else 0
            why = f"has {features} input features" if features > 1 else "has no fitted curve (curve.csv)"
            return f"{record.path.name} {why}; see its own fit.png"
    return None


def _shared_landscape(records: list[RunRecord], labels: list[str], colours: list[str]) -> tuple[Any, list, str | None]:
    """The loss surface the runs share and each one's path across it; or why there is none."""
    surfaces = [landscape(r) for r in records]
    if any(s is None for s in surfaces):
        name = records[surfaces.index(None)].path.name
        if records[surfaces.index(None)].summary.get("status") == "running":
            return None, [], (f"{name} is still training: its final values, and so its path's end, are written "
                              "when it ends (compare it again then)")
        if classifier(records[surfaces.index(None)]):
            return None, [], f"{name} is a classifier, whose loss has no least-squares surface to draw"
        return None, [], (f"{name} is not a line ŷ = w·x (+ b) of one input with a known optimum, "
                          "the only model whose loss surface bpcli draws")
    if any(s.names != surfaces[0].names for s in surfaces):
        return None, [], "the runs fit different models (w alone, w and b)"
    if any(r.data_x != records[0].data_x or r.data_y != records[0].data_y for r in records):
        return None, [], "the runs were trained on different data, so on different loss surfaces"
    paths = [descent(r, colour, label) for r, colour, label in zip(records, colours, labels)]
    for i, path in enumerate(paths):  # runs that take the same path (only lr differs) stay visible
        path.width = 1.3 + min(3.0, 3.0 * (len(paths) - 1 - i) / max(len(paths) - 1, 1))
    empty = [r.path.name for r, p in zip(records, paths) if not len(p.points[0])]
    if empty:
        return None, [], f"no step of {', '.join(empty)} was logged"
    if not landscape_drawable(surfaces[0], paths):
        return None, [], "a path or the surface holds values too large to draw"
    return surfaces[0], paths, None


# --------------------------------------------------------------------------- labels


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _data_name(config: dict[str, Any]) -> str:
    """The data a run trained on, in a word: the CSV file, the curve, or the source."""
    data = config.get("data") or {}
    source = data.get("source", "?")
    if source == "csv":
        return Path(str(data.get("path", "?"))).name
    if source == "function":
        return f"{data.get('fn', '?')}(x)"
    return str(source)


def _labels(records: list[RunRecord]) -> list[str]:
    """Each run named by its directory and the settings that differ between the runs: the
    key ones (lr, seed, optimizer, kind, data, …) first; others only where those leave two
    runs alike."""
    flats = []
    for record in records:
        flat = {**DEFAULTS, **_flatten(record.config)}
        flat["data"] = _data_name(record.config)
        flats.append(flat)

    def differs(key: str) -> bool:
        return len({repr(f.get(key)) for f in flats}) > 1

    keys = [k for k in KEY_SETTINGS if differs(k)]
    if len({tuple(repr(f.get(k)) for k in keys) for f in flats}) < len(flats):
        others = sorted({k for f in flats for k in f} - set(keys) - set(KEY_SETTINGS))
        keys += [k for k in others if differs(k) and not k.startswith(NEVER_LABELS)
                 and all(not isinstance(f.get(k), (list, dict)) for f in flats)]
    labels = []
    for record, flat in zip(records, flats):
        parts = [f"{k.split('.')[-1]}={setting(flat[k])}" for k in keys
                 if flat.get(k) is not None and (k not in UNUSED or flat[k] != UNUSED[k])]
        label = " · ".join([record.path.name or str(record.path), ", ".join(parts)]) if parts else str(record.path)
        label = label if len(label) <= LABEL_LENGTH else label[:LABEL_LENGTH - 1] + "…"
        diverged = (record.summary.get("divergence") or {}).get("step")
        labels.append(label + (f" (diverged at step {diverged})" if diverged is not None else ""))
    return labels
