"""The figures of a single run, drawn from its run directory alone (no torch): every figure
by name, and `draw_plots`, which saves those a run's task names.

Figures are built with matplotlib's object API and saved through the Agg canvas, so no
display or GUI backend is ever needed. `figures(record)` gives every figure unsaved; each
family is a module of its own (loss, fit, params, landscape, classification).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from bpcli.plots.classification import boundary_plot, confusion_plot
from bpcli.plots.common import save
from bpcli.plots.fit import fit_plot, residuals_plot
from bpcli.plots.landscape import landscape_plot
from bpcli.plots.loss import loss_plot
from bpcli.plots.params import params_plot
from bpcli.rundir.run import RunRecord, read_run


def draw_plots(run_dir: str | Path, fmt: str = "png") -> list[Path]:
    """Draw every plot a run supports into its directory; return the files written."""
    record = read_run(run_dir)
    return [save(fig, record.path / f"{name}.{fmt}") for name, fig in figures(record)]


REGRESSION_FIGURES = ("loss", "fit", "params", "landscape", "residuals")
"""The figures of a run whose summary names no task (runs written before tasks were recorded)."""


def figures(record: RunRecord) -> list[tuple[str, Any]]:
    """Every figure a run supports, drawn, not saved: those its kind's task names in
    summary.json (loss, fit, params, landscape, residuals for a regression), by name."""
    names = (record.summary.get("task") or {}).get("figures") or REGRESSION_FIGURES
    made = [FIGURES[name](record) for name in names if name in FIGURES]
    return [(name, fig) for name, fig in made if fig is not None]


FIGURES: dict[str, Callable[[RunRecord], tuple[str, Any]]] = {
    "loss": loss_plot,
    "fit": fit_plot,
    "params": params_plot,
    "landscape": landscape_plot,
    "residuals": residuals_plot,
    "boundary": boundary_plot,
    "confusion": confusion_plot,
}
"""Every figure by the name a kind's task gives it; each maker returns (name, None) for a
run it cannot draw."""
