"""What every figure shares: a figure made without a display, labels and grid, titles, log-scale helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bpcli.rundir.run import RunRecord

FORMATS = ("png", "svg", "pdf")
"""The file formats figures can be saved in."""


def figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (7, 4.5),
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


def save(fig: Any, path: Path) -> Path:
    """Write a figure; a RunDirError, in one line, when the file cannot be written."""
    from bpcli.errors import RunDirError

    try:
        fig.savefig(path)
    except OSError as exc:
        raise RunDirError(f"{path}: cannot be written ({exc.strerror or exc}); make its folder writable "
                          "(or free some space), or copy the run directory elsewhere") from None
    return path


def finish(ax: Any, xlabel: str, ylabel: str, heading: str, *, log: bool = False) -> None:
    """Name a panel's axes, title it and draw the light grid every figure shares.

    `log`: an axis is logarithmic, so its minor ticks (2×, 3×, … within each decade) get
    grid lines too. The legend is left to each figure: where it goes, and whether there is
    one, depends on what that figure draws.
    """
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(heading)
    ax.grid(True, which="both" if log else "major", alpha=0.3)


def title(record: RunRecord, what: str) -> str:
    s = record.summary
    return f"{what} — {s.get('kind')} (lr={s.get('lr')}, seed={s.get('seed')}, {s.get('status')})"


def positive(steps: list[float], values: list[float]) -> tuple[list[float], list[float]]:
    # A log scale cannot show 0, NaN or infinity: those points are skipped, and so are
    # values so far out that the axis's margins would overflow (see DRAWABLE).
    kept = [(s, v) for s, v in zip(steps, values) if 1 / DRAWABLE < v < DRAWABLE]
    return ([s for s, _ in kept], [v for _, v in kept]) if kept else ([], [])


def span(values: Any) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    pad = max(hi - lo, 1e-3) * 0.15
    return lo - pad, hi + pad


DRAWABLE = 1e200
"""Values beyond this size (or, on a log scale, below its inverse) are not drawn: the
margins matplotlib adds around them, in decades on a log axis, would overflow float64.
NaN and infinities are never drawn."""


def drawable(*columns: Any) -> list[list[float]]:
    """The columns with only the rows in which every value is a finite number matplotlib
    can place (a diverged run's NaN, inf and huge values are left out)."""
    def ok(v: Any) -> bool:
        return isinstance(v, (int, float)) and abs(v) < DRAWABLE  # False for NaN, inf and None

    rows = [row for row in zip(*columns) if all(ok(v) for v in row)]
    return [list(column) for column in zip(*rows)] if rows else [[] for _ in columns]


def number(value: Any, digits: int = 4) -> str:
    """A value for a legend: a few significant digits, a true minus sign, '—' when unknown."""
    if not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        return "—"
    return f"{value:.{digits}g}".replace("-", "−")


def plus(value: float, digits: int = 4) -> str:
    """A term added to an expression: ' + 0.6' or ' − 0.3'."""
    text = number(value, digits)
    return f" − {text[1:]}" if text.startswith("−") else f" + {text}"
