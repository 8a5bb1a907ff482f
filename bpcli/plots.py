"""Plots drawn from a run directory alone: no torch, and matplotlib only in here.

Figures are built with matplotlib's object API and saved through the Agg canvas, so no
display or GUI backend is ever needed.
"""

from __future__ import annotations

from pathlib import Path

from bpcli.runs import RunRecord, read_run

FORMATS = ("png", "svg", "pdf")


def draw_plots(run_dir: str | Path, fmt: str = "png") -> list[Path]:
    """Draw loss and fit plots into the run directory; return the files written."""
    record = read_run(run_dir)
    written = [_loss_plot(record, fmt)]
    fit = _fit_plot(record, fmt)
    if fit is not None:
        written.append(fit)
    return written


def _figure():  # type: ignore[no-untyped-def]
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _title(record: RunRecord, what: str) -> str:
    s = record.summary
    return f"{what} — {s.get('kind')} (lr={s.get('lr')}, seed={s.get('seed')}, {s.get('status')})"


def _loss_plot(record: RunRecord, fmt: str) -> Path:
    fig, ax = _figure()
    steps = record.metrics.get("step", [])
    losses = record.metrics.get("loss", [])
    # A log scale cannot show a loss of exactly 0 (or a NaN): those points are skipped.
    points = [(s, v) for s, v in zip(steps, losses) if v > 0 and v == v and v != float("inf")]
    if points:
        xs, ys = zip(*points)
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
            ax.plot(ends, means, color="tab:orange", linewidth=2, label="mean over the epoch")
            ax.legend(loc="upper right")
    ax.set_xlabel("step (parameter update)")
    ax.set_ylabel("training loss (squared error)")
    ax.set_title(_title(record, "Loss"))
    ax.grid(True, which="both", alpha=0.3)
    path = record.path / f"loss.{fmt}"
    fig.savefig(path)
    return path


def _fit_plot(record: RunRecord, fmt: str) -> Path | None:
    if not record.data_x or len(record.data_x[0]) != 1:
        return None  # a line in the plane needs exactly one feature
    params = record.summary.get("params") or {}
    w = (params.get("w") or [None])[0]
    b = (params.get("b") or [0.0])[0]
    xs = [row[0] for row in record.data_x]
    predictions = record.summary.get("predictions") or []
    lo = min(xs + [p["x"] for p in predictions])
    hi = max(xs + [p["x"] for p in predictions])
    span = [lo - 0.02 * (hi - lo), hi + 0.02 * (hi - lo)]

    fig, ax = _figure()
    ax.scatter(xs, record.data_y, c="red", s=18, label=f"data ({len(xs)} points)", zorder=3)
    if w is not None:
        label = f"fit: ŷ = {w:.4f}·x" + (f" + {b:.4f}" if "b" in params else "")
        ax.plot(span, [w * x + b for x in span], color="tab:blue", linewidth=2, label=label)
    true = record.summary.get("true_params") or {}
    if "w" in true:
        tb = true.get("b", 0.0)
        label = f"true: y = {true['w']:g}·x" + (f" + {tb:g}" if tb else "")
        ax.plot(span, [true["w"] * x + tb for x in span], "k--", linewidth=1, label=label)
    for p in predictions:
        if p.get("y_pred") is None:
            continue
        ax.scatter([p["x"]], [p["y_pred"]], marker="x", s=60, color="tab:green", zorder=4)
        ax.annotate(
            f"ŷ({p['x']:g}) = {p['y_pred']:.8g}",
            (p["x"], p["y_pred"]),
            textcoords="offset points",
            xytext=(-8, 8),
            ha="right",
        )
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(_title(record, "Fit"))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left")
    path = record.path / f"fit.{fmt}"
    fig.savefig(path)
    return path
