"""Plots drawn from run directories alone: no torch, and matplotlib only in here.

Figures are built with matplotlib's object API and saved through the Agg canvas, so no
display or GUI backend is ever needed. The loss landscape is recomputed from data.csv
with numpy (which matplotlib brings), so it too needs nothing but the run directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bpcli.runs import RunRecord, read_run

FORMATS = ("png", "svg", "pdf")

# The curves of the `function` data source, by their numpy names (plots never import torch).
_CURVES = ("sin", "cos", "square", "abs", "tanh")


def draw_plots(run_dir: str | Path, fmt: str = "png", processes: int = 1) -> list[Path]:
    """Draw every plot a run supports into its directory; return the files written.

    With processes=2 (what `bpcli plot` asks for), half the figures are drawn in a forked
    child at the same time: drawing is Python-bound, so threads would not help. Forking
    is only safe in a process with a single thread, so anywhere else (or without fork,
    or if the child fails) every figure is drawn here.
    """
    record = read_run(run_dir)
    makers = [_loss_plot, _fit_plot, _params_plot, _landscape_plot, _residuals_plot]
    if processes < 2:
        return _draw(record, makers, fmt)
    _figure()  # import matplotlib (and numpy's threads, if any) once, before forking
    if not _single_threaded():
        return _draw(record, makers, fmt)
    # Shares of about equal cost; the first figure drawn also pays for loading the fonts.
    mine, theirs = [_loss_plot, _fit_plot, _residuals_plot], [_params_plot, _landscape_plot]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: draw its share, report the files, and leave without cleanup
        status = 1
        try:
            os.close(read_end)
            names = "\n".join(str(path) for path in _draw(record, theirs, fmt))
            os.write(write_end, names.encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    written = _draw(record, mine, fmt)
    with os.fdopen(read_end, "rb") as pipe:
        report = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    if status != 0:  # draw the child's share here, where an error reaches the user
        written += _draw(record, theirs, fmt)
    else:
        written += [Path(name) for name in report.splitlines()]
    order = [m.__name__ for m in makers]
    return sorted(written, key=lambda path: order.index(f"_{path.stem}_plot"))


def _single_threaded() -> bool:
    """Whether this process runs one thread (known on Linux only, through /proc)."""
    try:
        return hasattr(os, "fork") and len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def _draw(record: RunRecord, makers: list[Any], fmt: str) -> list[Path]:
    written = []
    for maker in makers:
        name, fig = maker(record)
        if fig is not None:
            path = record.path / f"{name}.{fmt}"
            fig.savefig(path)
            written.append(path)
    return written


def _figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (7, 4.5),
            sharex: bool = False):  # type: ignore[no-untyped-def]
    # Fixed margins rather than a layout engine: constrained layout measured every text
    # and doubled the time `bpcli plot` spends drawing. The left margin, in inches, fits
    # the longest tick labels a log axis writes (3.4×10⁻¹) beside the axis label; stacked
    # panels (rows > 1) get their top and bottom in inches too, so a tall figure wastes none.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=sharex)
    fig.subplots_adjust(left=1.15 / size[0])
    if rows > 1:
        fig.subplots_adjust(top=1 - 0.45 / size[1], bottom=0.55 / size[1], hspace=0.2 if sharex else 0.35)
    return fig, axes


def _title(record: RunRecord, what: str) -> str:
    s = record.summary
    return f"{what} — {s.get('kind')} (lr={s.get('lr')}, seed={s.get('seed')}, {s.get('status')})"


def _positive(steps: list[float], values: list[float]) -> tuple[list[float], list[float]]:
    # A log scale cannot show 0, NaN or infinity: those points are skipped.
    kept = [(s, v) for s, v in zip(steps, values) if 0 < v < float("inf")]
    return ([s for s, _ in kept], [v for _, v in kept]) if kept else ([], [])


def _loss_plot(record: RunRecord) -> tuple[str, Any]:
    fig, axes = _figure()
    ax = axes[0][0]
    steps, losses = record.metrics.get("step", []), record.metrics.get("loss", [])
    xs, ys = _positive(steps, losses)
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
            ax.plot(*_positive(ends, means), color="tab:orange", linewidth=2, label="mean over the epoch")
        if "val_loss" in record.metrics:
            ax.plot(*_positive(steps, record.metrics["val_loss"]), color="tab:red", linewidth=1.5,
                    label="validation loss")
        best = (record.summary.get("optimum") or {}).get("loss")
        if best is not None and best > 0:
            ax.axhline(best, color="green", linestyle=":", label=f"optimum's loss {best:.3g}")
        ax.legend(loc="upper right")
    ax.set_xlabel("step (parameter update)")
    ax.set_ylabel("loss (squared error)")
    ax.set_title(_title(record, "Loss"))
    ax.grid(True, which="both", alpha=0.3)
    return "loss", fig


def _line_label(params: dict[str, Any]) -> str | None:
    w, b = params.get("w"), params.get("b")
    if not isinstance(w, list) or len(w) != 1:
        return None
    return f"fit: ŷ = {w[0]:.4f}·x" + (f" + {b[0]:.4f}" if isinstance(b, list) else "")


def _splits(record: RunRecord) -> list[tuple[str, str, list[float], list[float]]]:
    """(split, colour, targets, predictions) for the training and validation rows present."""
    out = []
    for split, colour in (("train", "tab:blue"), ("val", "tab:orange")):
        rows = [(y, p) for s, y, p in record.fitted or [] if s == split]
        if rows:
            out.append((split, colour, [y for y, _ in rows], [p for _, p in rows]))
    return out


def _predicted_vs_actual(record: RunRecord) -> tuple[str, Any]:
    fig, axes = _figure(size=(6, 5.5))
    ax = axes[0][0]
    for split, colour, ys, ps in _splits(record):
        r2 = (record.summary.get("r2") or {}).get(split)
        label = f"{split} ({len(ys)})" + (f", R² = {r2:.4f}" if r2 is not None else "")
        ax.scatter(ys, ps, s=12, alpha=0.7, color=colour, label=label)
    values = [v for _, y, p in record.fitted or [] for v in (y, p)]
    if values:
        ax.plot([min(values), max(values)], [min(values), max(values)], "k--", linewidth=1, label="ŷ = y")
    units = " (standardised)" if (record.summary.get("scaling") or {}).get("y_std", 1.0) != 1.0 else ""
    ax.set_xlabel(f"actual {record.summary.get('target', 'y')}{units}")
    ax.set_ylabel(f"predicted{units}")
    ax.set_title(_title(record, "Predicted vs actual"))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    return "fit", fig


def _residuals_plot(record: RunRecord) -> tuple[str, Any]:
    if not record.fitted:
        return "residuals", None
    fig, axes = _figure()
    ax = axes[0][0]
    for split, colour, ys, ps in _splits(record):
        ax.scatter(ps, [y - p for y, p in zip(ys, ps)], s=12, alpha=0.7, color=colour, label=split)
    ax.axhline(0.0, color="black", linewidth=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("residual y − ŷ")
    ax.set_title(_title(record, "Residuals"))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    return "residuals", fig


def _fit_plot(record: RunRecord) -> tuple[str, Any]:
    if record.data_x and len(record.data_x[0]) != 1:
        return _predicted_vs_actual(record) if record.fitted else ("fit", None)
    import numpy as np

    summary = record.summary
    xs = [row[0] for row in record.data_x]
    fig, axes = _figure()
    ax = axes[0][0]
    ax.scatter(xs, record.data_y, c="red", s=18, label=f"data ({len(xs)} points)", zorder=3)
    if record.curve is not None:
        label = _line_label(summary.get("params") or {}) or f"fit: the trained {summary.get('kind')}"
        ax.plot(record.curve["x"], record.curve["y_pred"], color="tab:blue", linewidth=2, label=label)
    grid = np.array(record.curve["x"] if record.curve else sorted(xs))
    true = summary.get("true_params") or {}
    if "w" in true:
        tb = true.get("b", 0.0) or 0.0
        label = f"true: y = {true['w']:g}·x" + (f" + {tb:g}" if tb else "")
        ax.plot(grid, true["w"] * grid + tb, "k--", linewidth=1, label=label)
    function = summary.get("true_function")
    if function in _CURVES:
        ax.plot(grid, getattr(np, function)(grid), "k--", linewidth=1, label=f"true: y = {function}(x)")
    for p in summary.get("predictions") or []:
        if p.get("y_pred") is None or isinstance(p["x"], list) or summary.get("scaling"):
            continue  # marked only where the plot's axes are the inputs' own units
        ax.scatter([p["x"]], [p["y_pred"]], marker="x", s=60, color="tab:green", zorder=4)
        ax.annotate(f"ŷ({p['x']:g}) = {p['y_pred']:.8g}", (p["x"], p["y_pred"]),
                    textcoords="offset points", xytext=(-8, 8), ha="right")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(_title(record, "Fit"))
    ax.grid(True, alpha=0.3)
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
    fig, axes = _figure(rows, cols, size=(7 * cols, 1.0 + 1.8 * rows), sharex=True)
    panels = [ax for row in axes for ax in row]
    for ax in panels[len(columns):]:
        ax.set_visible(False)
    steps = record.metrics["step"]
    for ax, column in zip(panels, columns):
        ax.plot(steps, record.metrics[column], color="tab:blue", linewidth=1.5, label=column)
        true = _reference(record.summary, column, "true_params")
        best = _reference(record.summary, column, "optimum")
        if true is not None:
            ax.axhline(true, color="black", linestyle="--", linewidth=1, label=f"true {true:g}")
        if best is not None:
            ax.axhline(best, color="green", linestyle=":", linewidth=1.5, label=f"optimum {best:.6g}")
        ax.set_ylabel(column)
        ax.grid(True, alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    for ax in panels[len(columns) - cols:len(columns)]:  # the lowest panel of each column
        ax.set_xlabel("step")
        ax.xaxis.set_tick_params(labelbottom=True)
    fig.suptitle(_title(record, "Parameters"), y=1 - 0.12 / fig.get_figheight())
    return "params", fig


def _landscape_plot(record: RunRecord) -> tuple[str, Any]:
    """The loss over (w, b), or over w alone, with the path gradient descent took."""
    summary = record.summary
    params, best = summary.get("params") or {}, summary.get("optimum")
    names = [n for n in ("w", "b") if n in params]
    one_value = all(isinstance(params[n], list) and len(params[n]) == 1 for n in names)
    if not best or not names or set(params) != set(names) or not one_value or len(record.data_x[0]) != 1:
        return "landscape", None
    import numpy as np

    x = np.array([row[0] for row in record.data_x])
    y = np.array(record.data_y)
    start = [(summary.get("initial_params") or {}).get(n, [None])[0] for n in names]
    path = [list(record.metrics[n]) for n in names]
    if None not in start:
        path = [[s, *p] for s, p in zip(start, path)]
    opt = [best[n][0] for n in names]
    fig, axes = _figure()
    ax = axes[0][0]
    # The mean squared error of a line needs only five sums of the data:
    # mean((w·x + b − y)²) = w²·⟨x²⟩ + 2wb·⟨x⟩ + b² − 2w·⟨xy⟩ − 2b·⟨y⟩ + ⟨y²⟩,
    # so the surface costs nothing however many samples there are.
    sxx, sx, sxy, sy, syy = (x * x).mean(), x.mean(), (x * y).mean(), y.mean(), (y * y).mean()

    def surface(w: Any, b: Any) -> Any:
        return np.maximum(w * w * sxx + 2 * w * b * sx + b * b - 2 * w * sxy - 2 * b * sy + syy, 0.0)

    if names == ["w"]:
        w_path = np.array(path[0])
        lo, hi = _span(np.append(w_path, opt[0]))
        ws = np.linspace(lo, hi, 400)
        # L(w) = mean over the samples of (w·x − y)²: the loss one epoch descends.
        ax.plot(ws, surface(ws, 0.0), color="tab:blue", label="L(w) = mean((w·x − y)²)")
        losses = surface(w_path, 0.0)
        ax.plot(w_path, losses, ".-", color="tab:orange", markersize=4, linewidth=0.8, label="path of w")
        ax.scatter([w_path[0]], [losses[0]], color="green", s=60, zorder=5, label="start")
        ax.scatter([w_path[-1]], [losses[-1]], color="red", s=60, zorder=5, label="end")
        ax.scatter([opt[0]], [surface(opt[0], 0.0)], marker="*", s=200, color="gold",
                   edgecolor="black", zorder=6, label=f"optimum w* = {opt[0]:.6g}")
        ax.set_xlabel("w")
        ax.set_ylabel("loss")
        ax.set_yscale("symlog", linthresh=1e-3)
    else:
        w_path, b_path = np.array(path[0]), np.array(path[1])
        w_lo, w_hi = _span(np.append(w_path, opt[0]))
        b_lo, b_hi = _span(np.append(b_path, opt[1]))
        W, B = np.meshgrid(np.linspace(w_lo, w_hi, 200), np.linspace(b_lo, b_hi, 200))
        L = surface(W, B)  # a bowl: contours at logarithmic levels
        levels = np.geomspace(max(L.min(), 1e-8), L.max(), 20)
        contours = ax.contour(W, B, L, levels=levels, cmap="viridis", linewidths=0.8)
        fig.colorbar(contours, ax=ax, label="loss", format="%.0e")
        ax.plot(w_path, b_path, ".-", color="tab:orange", markersize=4, linewidth=1, label="path of (w, b)")
        ax.scatter([w_path[0]], [b_path[0]], color="green", s=60, zorder=5, label="start")
        ax.scatter([w_path[-1]], [b_path[-1]], color="red", s=60, zorder=5, label="end")
        ax.scatter([opt[0]], [opt[1]], marker="*", s=200, color="gold", edgecolor="black", zorder=6,
                   label=f"optimum ({opt[0]:.4g}, {opt[1]:.4g})")
        ax.set_xlabel("w")
        ax.set_ylabel("b")
    ax.set_title(_title(record, "Loss landscape"))
    ax.legend(loc="best", fontsize="small")
    ax.grid(True, alpha=0.2)
    return "landscape", fig


def _span(values: Any) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    pad = max(hi - lo, 1e-3) * 0.15
    return lo - pad, hi + pad


# --------------------------------------------------------------------------- compare


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _labels(records: list[RunRecord]) -> list[str]:
    """Each run labelled by the config values that differ between the runs."""
    flats = [_flatten(r.config) for r in records]
    keys = sorted({k for f in flats for k in f})
    differing = [k for k in keys if len({repr(f.get(k)) for f in flats}) > 1]
    if not differing:
        return [str(r.path) for r in records]
    short = {k: k.split(".")[-1] for k in differing}
    return [", ".join(f"{short[k]}={f.get(k)}" for k in differing) for f in flats]


def compare(run_dirs: list[Path], out: Path) -> Path:
    """Overlay the loss curves (and the fitted curves, where comparable) of several runs."""
    from bpcli.errors import BpcliError

    out = Path(out)
    if out.suffix.lstrip(".") not in FORMATS:
        raise BpcliError(f"{out}: give a file ending in .png, .svg or .pdf")
    records = [read_run(d) for d in run_dirs]
    labels = _labels(records)
    comparable_fit = all(r.curve is not None for r in records)
    fig, axes = _figure(1, 2 if comparable_fit else 1, size=(12 if comparable_fit else 7, 4.5))
    ax = axes[0][0]
    for record, label in zip(records, labels):
        ax.plot(*_positive(record.metrics.get("step", []), record.metrics.get("loss", [])),
                linewidth=1.3, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title("Loss")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    if comparable_fit:
        ax = axes[0][1]
        same_data = all(r.data_x == records[0].data_x and r.data_y == records[0].data_y for r in records)
        if same_data:
            ax.scatter([row[0] for row in records[0].data_x], records[0].data_y, c="red", s=12,
                       label="data", zorder=3)
        for record, label in zip(records, labels):
            if not same_data:
                ax.scatter([row[0] for row in record.data_x], record.data_y, s=6, alpha=0.4)
            ax.plot(record.curve["x"], record.curve["y_pred"], linewidth=1.5, label=label)  # type: ignore[index]
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title("Fit" + ("" if same_data else " (each run on its own data)"))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
    try:
        fig.savefig(out)
    except OSError as exc:
        raise BpcliError(f"{out}: cannot write it ({exc.strerror}); choose another --out") from None
    return out


# --------------------------------------------------------------------------- graph


def draw_graph(graph: Any, out: Path) -> Path:
    """Draw a computational graph (bpcli.graph.Graph): nodes by depth, left to right."""
    depth: dict[int, int] = {}
    for node in graph.nodes:  # nodes are recorded in evaluation order
        depth[node.id] = 1 + max((depth[i] for i in node.inputs), default=-1)
    columns: dict[int, list[int]] = {}
    for node_id, d in depth.items():
        columns.setdefault(d, []).append(node_id)
    width = max(columns) + 1
    height = max(len(ids) for ids in columns.values())
    fig, axes = _figure(size=(max(7.0, 2.6 * width), max(3.5, 1.5 * height + 1)))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.88)
    ax = axes[0][0]
    ax.set_xlim(-0.6, width - 0.4)
    ax.set_ylim(-height / 2 - 0.2, height / 2 + 0.2)
    ax.axis("off")
    root = graph.nodes[graph.loss].name
    position = {}
    for d, ids in columns.items():
        for row, node_id in enumerate(ids):
            position[node_id] = (d, (height - 1) / 2 - row + (len(ids) - 1) / 2 - (height - 1) / 2)
    colours = {"param": "#ffe9a8", "input": "#d7ecff", "const": "#eeeeee", "op": "#e3f5e1"}
    boxes = {}
    for node in graph.nodes:
        x, y = position[node.id]
        title = node.name if node.op is None else f"{node.name} = {node.expression}"
        text = f"{title}\n{node.value_text}\nd{root}/d{node.name} = {node.grad_text}"
        boxes[node.id] = ax.text(
            x, y, text, ha="center", va="center", fontsize=7.5, zorder=3,
            bbox={"boxstyle": "round", "facecolor": colours.get(node.kind, "white"),
                  "edgecolor": "red" if node.id == graph.loss else "black"},
        )
    fig.canvas.draw()  # lays out the boxes, so arrows can stop at their edges
    for edge in graph.edges:
        (x0, y0), (x1, y1) = position[edge.src], position[edge.dst]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=2,
                    arrowprops={"arrowstyle": "-|>", "color": "#555555", "lw": 1, "shrinkA": 0, "shrinkB": 0,
                                "patchA": boxes[edge.src].get_bbox_patch(),
                                "patchB": boxes[edge.dst].get_bbox_patch()})
        if edge.local_text:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.1, f"∂{graph.nodes[edge.dst].name}/∂{graph.nodes[edge.src].name}"
                    f" = {edge.local_text}", fontsize=7, ha="center", color="tab:purple", zorder=4)
    where = f" (values at sample {graph.sample})" if graph.sample is not None else ""
    ax.set_title(f"Computational graph: {graph.title}{where}\nforward value, d{root}/d(node) by the chain "
                 "rule, and the local derivative on each edge", fontsize=9)
    out = Path(out)
    fig.savefig(out)
    return out


# --------------------------------------------------------------------------- sweeps


def _read_table(path: Path) -> list[dict[str, str]]:
    import csv

    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


SWEEP_FILES = ("sweep.json", "summary.csv", "aggregates.csv", "metrics.csv")
SWEEP_LINES = 200
"""Up to this many members, losses.png draws every member's curve; beyond, each setting's
median with the band holding the middle 90 % of its members."""


def _sweep_losses(directory: Path, members: int) -> tuple[Any, Any]:
    """The logged steps (S,) and every member's loss at each of them (S, K), from metrics.csv."""
    import numpy as np

    table = np.loadtxt(directory / "metrics.csv", delimiter=",", skiprows=1, ndmin=2)  # step, member, loss
    steps, where = np.unique(table[:, 0], return_inverse=True)
    losses = np.full((len(steps), members), np.nan)
    losses[where, table[:, 1].astype(int)] = table[:, 2]
    return steps, losses


def draw_sweep(directory: str | Path, fmt: str = "png",
               history: list[tuple[int, list[float]]] | None = None) -> list[Path]:
    """losses.png (every member's loss curve, or each setting's median and spread for large
    sweeps) and, when lr varies, lr.png (final loss against lr).

    `history` is what metrics.csv holds, [(step, [loss of each member])]: a sweep that has
    just trained passes it instead of having its file read back.
    """
    import json
    import math
    import warnings

    import numpy as np

    from bpcli.errors import RunDirError

    directory = Path(directory)
    missing = [name for name in SWEEP_FILES if not (directory / name).is_file()]
    if missing:
        raise RunDirError(f"{directory}: not a complete sweep directory (missing {', '.join(missing)}); "
                          "give a directory written by `bpcli sweep`")
    try:
        info = json.loads((directory / "sweep.json").read_text(encoding="utf-8"))
        members = _read_table(directory / "summary.csv")
        if history is None:
            steps, losses = _sweep_losses(directory, len(members))
        else:
            steps, losses = np.array([s for s, _ in history], float), np.array([v for _, v in history], float)
    except (ValueError, IndexError, KeyError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        why = str(exc).split(";")[0]  # numpy's advice after the semicolon is not for our users
        raise RunDirError(f"{directory}: a sweep file is corrupt ({type(exc).__name__}: {why})") from None
    losses[~((losses > 0) & np.isfinite(losses))] = np.nan  # a log scale cannot show them
    varying = [k for k in info["grid"] if k != "seed"]
    colour_key = varying[0] if varying else None
    levels = sorted({m[colour_key] for m in members}, key=lambda v: float(v)) if colour_key else [None]
    fig, axes = _figure()
    ax = axes[0][0]
    from matplotlib import colormaps
    from matplotlib.collections import LineCollection

    cmap = colormaps["viridis"]
    every = len(members) <= SWEEP_LINES
    for i, level in enumerate(levels):
        colour = cmap(i / max(len(levels) - 1, 1)) if colour_key else "tab:blue"
        chosen = [k for k, m in enumerate(members) if colour_key is None or m[colour_key] == level]
        label = f"{colour_key.split('.')[-1]}={level}" if colour_key else None
        curves = losses[:, chosen]
        if every:  # one collection per setting: far faster than one plot() per member
            segments = [np.column_stack([steps, c])[np.isfinite(c)] for c in curves.T]
            ax.add_collection(LineCollection(segments, colors=[colour], alpha=0.6, linewidths=1, label=label))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a step where every member diverged
            low, median, high = np.nanpercentile(curves, [5, 50, 95], axis=1)
        ax.fill_between(steps, low, high, color=colour, alpha=0.25, linewidth=0)
        ax.plot(steps, median, color=colour, linewidth=1.5,
                label=f"{label + ': ' if label else ''}median of {len(chosen)}, band 5–95 %")
    ax.autoscale_view()
    if np.isfinite(losses).any():  # a log scale needs one positive value; all-diverged has none
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.set_title(f"Sweep: {info['members']} {info['kind']} runs trained as one batch")
    ax.grid(True, which="both", alpha=0.3)
    if colour_key or not every:
        ax.legend(fontsize="small", loc="lower left")  # loss curves fall: that corner stays clear
    written = [directory / f"losses.{fmt}"]
    fig.savefig(written[0])

    if "train.lr" in info["grid"]:
        fig, axes = _figure()
        ax = axes[0][0]
        aggregates = _read_table(directory / "aggregates.csv")
        others = [k for k in info["grid"] if k not in ("seed", "train.lr")]
        groups: dict[str, list[tuple[float, float, float]]] = {}
        for a in aggregates:
            mean = float(a["final_loss_mean"]) if a["final_loss_mean"] else math.nan
            std = float(a["final_loss_std"]) if a["final_loss_std"] else 0.0
            name = ", ".join(f"{k.split('.')[-1]}={a[k]}" for k in others) or "mean ± std over seeds"
            groups.setdefault(name, []).append((float(a["train.lr"]), mean, std))
        for name, points in groups.items():
            points.sort()
            xs = [p[0] for p in points if math.isfinite(p[1])]
            ax.errorbar(xs, [p[1] for p in points if math.isfinite(p[1])],
                        yerr=[p[2] for p in points if math.isfinite(p[1])], marker="o", capsize=3, label=name)
            for lr, mean, _ in points:
                if not math.isfinite(mean):
                    ax.axvline(lr, color="red", linestyle=":", linewidth=1)
        ax.set_xscale("log")
        if any(0 < p[1] < math.inf for points in groups.values() for p in points):
            ax.set_yscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel("final training loss")
        ax.set_title("Final loss against learning rate (red: every seed diverged)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize="small")
        written.append(directory / f"lr.{fmt}")
        fig.savefig(written[-1])
    return written
