"""`bpcli compare`: several runs' loss and fitted curves on one figure."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bpcli.errors import BpcliError
from bpcli.plots.common import FORMATS, drawable, figure, finish, positive, save
from bpcli.rundir.run import RunRecord, read_run


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
    out = Path(out)
    if out.suffix.lstrip(".") not in FORMATS:
        raise BpcliError(f"{out}: give a file ending in .png, .svg or .pdf")
    records = [read_run(d) for d in run_dirs]
    labels = _labels(records)
    comparable_fit = all(r.curve is not None for r in records)
    fig, axes = figure(1, 2 if comparable_fit else 1, size=(12 if comparable_fit else 7, 4.5))
    ax = axes[0][0]
    for record, label in zip(records, labels):
        steps, losses = positive(record.metrics.get("step", []), record.metrics.get("loss", []))
        line, = ax.plot(steps, losses, linewidth=1.3, label=label)
        diverged = (record.summary.get("divergence") or {}).get("step")
        if diverged is not None and steps:  # where a diverged run stopped: its last drawable loss
            ax.scatter([steps[-1]], [losses[-1]], marker="X", s=70, color=line.get_color(), zorder=4,
                       label=f"{label}: diverged at step {diverged}")
    ax.set_yscale("log")
    finish(ax, "step", "training loss", "Loss", log=True)
    ax.legend(fontsize="small")
    if comparable_fit:
        ax = axes[0][1]
        same_data = all(r.data_x == records[0].data_x and r.data_y == records[0].data_y for r in records)
        if same_data:
            ax.scatter(*drawable([row[0] for row in records[0].data_x], records[0].data_y), c="red", s=12,
                       label="data", zorder=3)
        for record, label in zip(records, labels):
            if not same_data:
                ax.scatter(*drawable([row[0] for row in record.data_x], record.data_y), s=6, alpha=0.4)
            curve = record.curve or {}
            ax.plot(*drawable(curve["x"], curve["y_pred"]), linewidth=1.5, label=label)
        finish(ax, "x", "y", "Fit" + ("" if same_data else " (each run on its own data)"))
        ax.legend(fontsize="small")
    return save(fig, out)
