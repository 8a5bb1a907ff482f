"""loss.png: the loss of each logged step, the gap to the optimum's loss where it matters,
the gap the Hessian predicts, the scheduled lr and a classifier's accuracy."""

from __future__ import annotations

from typing import Any

from bpcli.plots.classification import draw_accuracy
from bpcli.plots.common import (drawable, figure, finish, number, place_legend, positive, readable_log_axis, sci,
                                title, title_size)
from bpcli.rundir.run import RunRecord


def loss_plot(record: RunRecord) -> tuple[str, Any]:
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
    finish(ax, "", loss_label(record), "", log=bool(xs))
    if xs:
        readable_log_axis(ax)
    if xs or diverged is not None:
        place_legend(ax)


def loss_label(record: RunRecord) -> str:
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
