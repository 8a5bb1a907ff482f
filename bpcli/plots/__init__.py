"""Figures, drawn from run and sweep directories alone: no torch, and matplotlib only in here.

    common          what every figure shares
    run             a run's figures by name (FIGURES), drawn into its directory (draw_plots)
    loss            a run's loss, its gap to the optimum, the lr and accuracy (loss.png)
    fit             a regression's fit and residuals (fit.png, residuals.png)
    params          each parameter's path, or a nonlinear fit step by step (params.png)
    landscape       the loss over a line's parameters, and descent across it (landscape.png)
    classification  a classifier's boundary, confusion matrix and accuracy
    compare         several runs on one figure
    sweep           a sweep's losses and lr figures
    graph           the computational graph of `bpcli explain`
    animate         a run's descent as a GIF, frame by frame (`bpcli animate`)

Importing this package is cheap; matplotlib is imported when a figure is drawn.
"""

from __future__ import annotations

from bpcli.plots.common import FORMATS
from bpcli.plots.compare import compare
from bpcli.plots.graph import draw_graph
from bpcli.plots.run import draw_plots
from bpcli.plots.sweep import draw_sweep

__all__ = ["FORMATS", "compare", "draw_graph", "draw_plots", "draw_sweep"]
