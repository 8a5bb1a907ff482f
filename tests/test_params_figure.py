"""params.png starts where training started and, where the run can be replayed, shows
every step (the same path as landscape.png); elsewhere it says it joins logged steps."""

import csv
import json
import math
from pathlib import Path

from conftest import CONFIGS, cli

from bpcli.plots.run import figures
from bpcli.rundir.run import read_run


def panel_line(run, column):
    """(xs, ys, label) of the parameter's own line on params.png."""
    fig = dict(figures(read_run(run)))["params"]
    for ax in fig.axes:
        if ax.get_ylabel() == column:
            line = ax.get_lines()[0]
            return list(line.get_xdata()), list(line.get_ydata()), line.get_label()
    raise AssertionError(f"no panel for {column}")


def test_exp2s_params_follow_every_step_from_the_initial_values():
    assert cli("train", CONFIGS / "exp2.yaml", "--out", "run", "-q", "--no-plots", "--device", "cpu").exit_code == 0
    summary = json.loads(Path("run/summary.json").read_text())
    rows = list(csv.DictReader(open("run/data.csv")))
    x, y = [float(r["x"]) for r in rows], [float(r["y"]) for r in rows]
    # Plain gradient descent on the data, in float64, from the initial parameters: b peaks early.
    w, b = summary["initial_params"]["w"][0], summary["initial_params"]["b"][0]
    path = [b]
    for _ in range(3000):
        r = [w * xi + b - yi for xi, yi in zip(x, y)]
        w, b = w - 0.01 * 2 * math.fsum(ri * xi for ri, xi in zip(r, x)) / len(x), b - 0.01 * 2 * math.fsum(r) / len(x)
        path.append(b)
    xs, ys, label = panel_line("run", "b")
    assert xs[0] == 0 and ys[0] == summary["initial_params"]["b"][0]
    assert len(xs) == 3001 and "every step" in label
    assert max(ys) > 1.6  # the peak near step 120 that the logged rows (every 500th) miss
    assert max(ys) == __import__("pytest").approx(max(path), rel=1e-4)


def test_an_mlp_starts_at_its_initial_norms_and_says_it_joins_logged_steps():
    assert cli("train", CONFIGS / "mlp.yaml", "--epochs", "200", "--out", "run", "-q", "--no-plots",
               "--device", "cpu").exit_code == 0
    initial = json.loads(Path("run/summary.json").read_text())["initial_params"]["W2"]
    xs, ys, label = panel_line("run", "norm(W2)")
    assert xs[0] == 0 and ys[0] == __import__("pytest").approx(math.sqrt(sum(v * v for v in initial)), rel=1e-9)
    assert xs[1:] == [float(s) for s in read_run("run").metrics["step"]]
    assert "logged steps" in label
