"""Every figure bpcli draws, for every shipped config and for a diverged, a CSV, a compared
and a swept run, is laid out so that it can be read: no text outside the figure, no two
texts on top of each other, legends inside the canvas, the file written. And what each
figure promises (issue 14, issue 13) is checked where a machine can check it."""

import itertools
import json
import math
import shutil

import pytest
import yaml

from bpcli.grid import parse_grid
from bpcli.lifecycle import train
from bpcli.plots.common import save, sci
from bpcli.plots.compare import compare_figure
from bpcli.plots.landscape import descent
from bpcli.plots.run import figures
from bpcli.plots.sweep import sweep_figures
from bpcli.rundir.run import read_run
from bpcli.sweep import run_sweep
from conftest import CONFIGS, cli, config

SHIPPED = sorted(p.name for p in CONFIGS.glob("*.yaml"))
EPOCHS = 300  # enough for every figure to have something to show, short enough to stay fast

# The runs the figures are drawn from: every shipped config, shortened, and a few that
# walk off the happy path. Trained once for the module (a few seconds in all).
RUNS = {
    **{name: (name, {"train__epochs": EPOCHS}) for name in SHIPPED},
    "diverged": ("exp2.yaml", {"train__lr": 1.5}),
    "noisy": ("exp2.yaml", {"train__epochs": 600, "data__noise": 0.3, "data__true_b": -0.3}),
    "exp2-fast": ("exp2.yaml", {"train__epochs": 600, "train__lr": 0.05}),
    "exp2-start": ("exp2.yaml", {"train__epochs": 600, "model__init_w": 6.0, "model__init_b": -1.0}),
    "exp1-sparse": ("exp1.yaml", {"train__epochs": 20, "train__log_every": 7}),
    "adam": ("exp2.yaml", {"train__epochs": 600, "train__lr": 0.05, "train__optimizer": "adam"}),
    "momentum": ("exp2.yaml", {"train__epochs": 600, "train__lr": 0.05, "train__momentum": 0.9}),
    # Settings that make long titles
    "minibatch": ("exp2.yaml", {"train__epochs": 20, "train__momentum": 0.9, "train__batch_size": 10,
                                "train__log_every": 5}),
    "longley-momentum": ("longley.yaml", {"train__epochs": EPOCHS, "train__momentum": 0.9}),
    "mlp-batches": ("mlp.yaml", {"train__epochs": 30, "train__batch_size": 20, "train__log_every": 10}),
    "csv-adam": ("diabetes.yaml", {"train__epochs": 5, "train__optimizer": "adam", "train__lr": 0.01,
                                   "train__batch_size": 32}),
}

# Every shipped config as it ships, up to FULL epochs (exp3's 30000 to 3000): a legend
# must find its place over the whole run (exp2's last points, exp3's early drop).
FULL = 3000
RUNS.update({f"{name}-full": (name, {"train__epochs": min(FULL, yaml.safe_load((CONFIGS / name).read_text())
                                                            ["train"]["epochs"])}) for name in SHIPPED})

EXPECTED = {
    "exp1.yaml": {"loss", "fit", "params", "landscape"},
    "exp2.yaml": {"loss", "fit", "params", "landscape"},
    "exp3.yaml": {"loss", "fit", "params", "landscape"},
    "mlp.yaml": {"loss", "fit", "params"},
    "diabetes.yaml": {"loss", "fit", "params", "residuals"},
    "diverged": {"loss", "fit", "params", "landscape"},
    "noisy": {"loss", "fit", "params", "landscape"},  # a gap panel, a shallow bowl
    "minibatch": {"loss", "fit", "params", "landscape"},
    "csv-adam": {"loss", "fit", "params", "residuals"},
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    for name, (file, changes) in RUNS.items():
        train(config(file, **changes), root / name, plots=False)
    return root


@pytest.fixture(scope="module")
def drawn(runs):
    """A run's figures by name, drawn once for the module: drawing is most of this file's time."""
    cache = {}

    def draw(name):
        if name not in cache:
            cache[name] = dict(figures(read_run(runs / name)))
        return cache[name]

    return draw


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A sweep in which lr=2 diverges for every seed, and one in which nothing diverges."""
    root = tmp_path_factory.mktemp("sweeps")
    for name, lrs in (("some", "0.1,0.5,2.0"), ("none", "0.01,0.1")):
        grid = parse_grid([f"lr={lrs}", "seed=0:2"])
        run_sweep(config("exp2.yaml", train__epochs=60), grid, out=root / name, plots=False)
    return root


# --------------------------------------------------------------------------- layout


def drawn_texts(fig):
    """Every text the figure shows, with its box in pixels: titles, labels, tick labels that
    are drawn (those inside the view), offsets, legends, notes."""
    from matplotlib.text import Text

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    texts = []
    for text in fig.findobj(Text):
        if not text.get_visible() or not text.get_text().strip():
            continue
        if text.axes is not None and not text.axes.get_visible():
            continue
        texts.append(text)
    ticks = set()
    hidden = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            low, high = sorted(axis.get_view_interval())
            for tick in itertools.chain(axis.get_major_ticks(), axis.get_minor_ticks()):
                for label in (tick.label1, tick.label2):
                    ticks.add(id(label))
                    inside = low - 1e-9 * abs(low) <= tick.get_loc() <= high + 1e-9 * abs(high)
                    if not (inside and tick.get_visible() and label.get_visible()):
                        hidden.add(id(label))
    texts = [t for t in texts if id(t) not in hidden]
    return [(t, t.get_window_extent(renderer)) for t in texts], renderer


def assert_readable(fig, what):
    """No text outside the canvas, no two texts overlapping, every legend on the canvas."""
    texts, renderer = drawn_texts(fig)
    width, height = fig.bbox.width, fig.bbox.height
    assert texts, f"{what}: draws no text at all"
    for text, box in texts:
        assert box.x0 >= -1 and box.y0 >= -1 and box.x1 <= width + 1 and box.y1 <= height + 1, \
            f"{what}: {text.get_text()!r} is outside the figure ({box} on {width:.0f}×{height:.0f})"
    for (a, box_a), (b, box_b) in itertools.combinations(texts, 2):
        overlap_x = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
        overlap_y = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
        assert overlap_x <= 1 or overlap_y <= 1, \
            f"{what}: {a.get_text()!r} and {b.get_text()!r} overlap"
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    for legend in legends:
        box = legend.get_window_extent(renderer)
        assert box.x0 >= -1 and box.y0 >= -1 and box.x1 <= width + 1 and box.y1 <= height + 1, \
            f"{what}: a legend leaves the figure"
    assert_legends_hide_no_data(fig, what, renderer)
    return texts


def drawn_points(ax):
    """Where an axes draws its data, in pixels: each vertex of its lines (a logged step, a
    step of a path, the ends of a horizontal line) and each marker of its scatters, within
    the panel (what lies outside it is not drawn)."""
    import numpy as np
    from matplotlib.collections import PathCollection

    points = []
    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata(), dtype=float)
        if line.get_visible() and len(xy):
            points.append(line.get_transform().transform(xy))
    for collection in ax.collections:
        offsets = np.asarray(collection.get_offsets(), dtype=float)
        if isinstance(collection, PathCollection) and collection.get_visible() and len(offsets):
            points.append(collection.get_offset_transform().transform(offsets))
    if not points:
        return np.empty((0, 2))
    points = np.concatenate(points)
    points = points[np.isfinite(points).all(axis=1)]
    panel = ax.get_window_extent()
    inside = ((points[:, 0] >= panel.x0) & (points[:, 0] <= panel.x1)
              & (points[:, 1] >= panel.y0) & (points[:, 1] <= panel.y1))
    return points[inside]


def assert_legends_hide_no_data(fig, what, renderer=None):
    """No legend's box lies over a drawn point or line vertex of its panel (a figure's own
    legend: of any panel)."""
    renderer = renderer or fig.canvas.get_renderer()
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        legends = ([ax.get_legend()] if ax.get_legend() else []) + list(fig.legends)
        points = drawn_points(ax)
        for legend in legends:
            box = legend.get_window_extent(renderer)
            hidden = [(x, y) for x, y in points if box.x0 < x < box.x1 and box.y0 < y < box.y1]
            assert not hidden, (f"{what}: a legend ({legend.get_texts()[0].get_text()!r}, …) covers "
                                f"{len(hidden)} drawn point(s) of the panel {ax.get_title() or ax.get_ylabel()!r}")


def legend_texts(fig):
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend()] + list(fig.legends)
    return [t.get_text() for legend in legends for t in legend.get_texts()]


@pytest.mark.parametrize("name", list(RUNS))
def test_every_figure_of_every_run_reads_cleanly_and_is_written(runs, drawn, name):
    made = drawn(name)
    assert set(made) == EXPECTED.get(name, set(made))
    for figure_name, fig in made.items():
        assert_readable(fig, f"{name}/{figure_name}")
        out = save(fig, runs / name / f"{figure_name}.png")  # what `bpcli plot` does with each
        assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("name", ["some", "none"])
def test_sweep_figures_read_cleanly(swept, name):
    made = dict(sweep_figures(swept / name))
    assert set(made) == {"losses", "lr"}
    for figure_name, fig in made.items():
        assert_readable(fig, f"sweep {name}/{figure_name}")


def test_the_layout_check_catches_what_it_looks_for():
    # The checks above can fail: text pushed off the canvas and a label on top of a title.
    from bpcli.plots.common import figure

    fig, axes = figure()
    axes[0][0].set_title("a title")
    axes[0][0].text(0.5, 1.02, "on the title", transform=axes[0][0].transAxes, ha="center")
    with pytest.raises(AssertionError, match="overlap"):
        assert_readable(fig, "test")
    fig, axes = figure()
    axes[0][0].set_xlabel("x")
    fig.subplots_adjust(bottom=0.0)
    with pytest.raises(AssertionError, match="outside the figure"):
        assert_readable(fig, "test")
    fig, axes = figure()  # a legend in the corner the data run through
    axes[0][0].plot([0, 1, 2, 3], [0, 1, 2, 3], marker="o", label="data")
    axes[0][0].set_title("a title")
    axes[0][0].legend(loc="upper left")
    assert_readable(fig, "test")
    axes[0][0].legend(loc="upper right")
    with pytest.raises(AssertionError, match="covers 1 drawn point"):
        assert_readable(fig, "test")


# --------------------------------------------------------------------------- loss.png


@pytest.mark.parametrize("name", ["exp2.yaml", "momentum", "exp1.yaml"])
def test_the_optimum_loss_does_not_set_the_loss_axis(runs, drawn, name):
    # momentum reaches float32's floor (1e-13), a few decades above L*: still no gap panel
    record = read_run(runs / name)
    best = record.summary["optimum"]["loss"]
    assert best < 1e-12  # noise-free data: the optimum's loss is rounding
    fig = drawn(name)["loss"]
    ax = fig.axes[0]
    lowest = min(v for v in record.metrics["loss"] if v > 0)
    # The axis follows the curve, not L*: L* is drawn only within a decade below it.
    assert ax.get_ylim()[0] > lowest / 30
    assert any("L*" in t and sci(best, 3) in t for t in legend_texts(fig))
    assert len([a for a in fig.axes if a.get_visible()]) == 1  # L − L* would repeat L: no second panel


@pytest.mark.parametrize("name", ["noisy", "diabetes.yaml"])
def test_where_the_optimum_matters_a_second_panel_shows_the_gap(runs, drawn, name):
    record = read_run(runs / name)
    best = record.summary["optimum"]["loss"]
    fig = drawn(name)["loss"]
    top, gap = fig.axes
    assert gap.get_ylabel() == "L − L*"
    (line,) = [line for line in gap.get_lines() if not line.get_label().startswith("predicted")]
    drawn = dict(zip(line.get_xdata(), line.get_ydata()))
    for step, loss in zip(record.metrics["step"], record.metrics["loss"]):
        if loss - best > 0:
            assert drawn[step] == pytest.approx(loss - best)
    assert top.get_ylim()[0] <= best  # L* is a line on the loss panel, which it no longer stretches


def test_a_narrow_log_axis_is_labelled_with_plain_numbers(drawn):
    fig = drawn("diabetes.yaml")["loss"]
    fig.canvas.draw()
    top = fig.axes[0]
    low, high = top.get_ylim()
    assert math.log10(high / low) < 1
    labels = [t.get_text() for t in top.get_yticklabels() if t.get_text() and low <= t.get_position()[1] <= high]
    assert len(labels) >= 3
    for label in labels:
        float(label.replace("$\\mathdefault{", "").replace("}$", ""))  # 0.5, 0.6, …: no 9×10⁻¹
    assert len(set(labels)) == len(labels)


@pytest.mark.parametrize("low,high", [(0.47901, 0.47906), (3.1e-7, 3.4e-7), (2.0, 9.0)])
def test_a_nearly_flat_loss_gets_ticks_that_tell_apart(low, high):
    # A run that starts at its optimum: the loss moves in its fifth digit.
    from bpcli.plots.common import figure, readable_log_axis

    fig, axes = figure()
    ax = axes[0][0]
    ax.plot([1, 2, 3], [high, (low + high) / 2, low])
    ax.set_yscale("log")
    readable_log_axis(ax)
    fig.canvas.draw()
    shown = [t.get_text() for t in ax.get_yticklabels()
             if t.get_text() and low <= t.get_position()[1] <= high]
    assert len(shown) >= 3 and len(set(shown)) == len(shown)
    assert_readable(fig, "flat loss")


# --------------------------------------------------------------------------- fit.png


def test_fit_legends_write_a_true_minus_and_few_digits(drawn):
    fig = drawn("noisy")["fit"]
    texts = legend_texts(fig)
    true = next(t for t in texts if t.startswith("true"))
    assert true == "true: y = 4·x − 0.3"
    fit = next(t for t in texts if t.startswith("fit"))
    assert "+ −" not in fit and "+ -" not in fit
    for text in texts:
        digits = max(len(run) for run in "".join(c if c.isdigit() else " " for c in text).split() or [""])
        assert digits <= 9, text


def test_predictions_are_named_in_the_legend_not_on_the_title(runs, drawn):
    record = read_run(runs / "exp1.yaml")
    fig = drawn("exp1.yaml")["fit"]
    (prediction,) = record.summary["predictions"]
    assert any(t.startswith("ŷ(4) = ") for t in legend_texts(fig))
    assert not fig.axes[0].texts  # nothing written beside the point, where it met the title
    assert_readable(fig, "exp1/fit")


# --------------------------------------------------------------------------- params.png


@pytest.mark.parametrize("name,panels", [("exp1.yaml", 1), ("exp2.yaml", 2), ("mlp.yaml", 8), ("diabetes.yaml", 11)])
def test_params_has_an_x_label_under_every_column(drawn, name, panels):
    fig = drawn(name)["params"]
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert len(visible) == panels
    columns = {}
    for ax in visible:
        columns.setdefault(round(ax.get_position().x0, 3), []).append(ax)
    for column in columns.values():
        lowest = min(column, key=lambda ax: ax.get_position().y0)
        assert lowest.get_xlabel() == "step"
        assert any(t.get_text() for t in lowest.get_xticklabels())
    assert_readable(fig, f"{name}/params")  # the labels inside the canvas (exp1's fell off it)


def test_a_parameter_that_moves_only_by_rounding_is_drawn_flat_and_says_so(runs, drawn):
    record = read_run(runs / "diabetes.yaml")
    fig = drawn("diabetes.yaml")["params"]
    b = next(ax for ax in fig.axes if ax.get_visible() and ax.get_ylabel() == "b")
    moved = max(record.metrics["b"]) - min(record.metrics["b"])
    assert 0 < moved < 1e-5  # standardised target: the bias only wanders around 0
    largest = max(abs(v) for c in record.metrics if c.startswith("w[") for v in record.metrics[c])
    low, high = b.get_ylim()
    assert high - low >= 1e-3 * largest * 0.999
    assert any("moves only" in t.get_text() for t in b.get_legend().get_texts())
    # A weight that really moves fills its panel as before.
    w = next(ax for ax in fig.axes if ax.get_visible() and ax.get_ylabel() == "w[bmi]")
    assert w.get_ylim()[1] - w.get_ylim()[0] < 2 * (max(record.metrics["w[2]"]) - min(record.metrics["w[2]"]))


# --------------------------------------------------------------------------- landscape.png


def test_the_landscape_path_has_every_step_and_passes_through_every_logged_one(runs):
    record = read_run(runs / "exp2-fast")  # 600 epochs, logged at 1, 500 and 600
    path = descent(record, "red")
    assert path.every_step and len(path.points[0]) == 601
    assert path.points[0][0] == record.summary["initial_params"]["w"][0]
    for step, w, b in zip(record.metrics["step"], record.metrics["w"], record.metrics["b"]):
        assert path.points[0][int(step)] == pytest.approx(w, abs=1e-5)
        assert path.points[1][int(step)] == pytest.approx(b, abs=1e-5)
    fig = dict(figures(record))["landscape"]
    assert any(t.endswith("every step") for t in legend_texts(fig))


def test_a_path_that_cannot_be_replayed_is_drawn_through_its_logged_steps(runs, tmp_path):
    # Another optimizer would not follow plain gradient descent: here the recorded lr is not
    # the one trained with, so the replayed stretches miss the logged values.
    copy = tmp_path / "run"
    shutil.copytree(runs / "exp2-fast", copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary["lr"] = 0.04
    (copy / "summary.json").write_text(json.dumps(summary))
    record = read_run(copy)
    path = descent(record, "red")
    assert not path.every_step
    assert list(path.points[0][1:]) == record.metrics["w"]
    assert any(t.endswith("logged steps") for t in legend_texts(dict(figures(record))["landscape"]))


def test_per_sample_paths_are_replayed_too(runs):
    record = read_run(runs / "exp1-sparse")  # one update per sample, logged every 7th, across epochs
    assert record.metrics["step"][:3] == [1, 7, 14]
    path = descent(record, "red")
    assert path.every_step and len(path.points[0]) == 1 + 3 * 20
    for step, w in zip(record.metrics["step"], record.metrics["w"]):
        assert path.points[0][int(step)] == pytest.approx(w, abs=1e-6)


def test_a_run_logged_at_every_step_is_drawn_from_its_rows(runs):
    record = read_run(runs / "exp1.yaml")  # log_every: 1
    path = descent(record, "red")
    assert path.every_step and list(path.points[0][1:]) == record.metrics["w"]


def test_the_landscape_is_coloured_by_log_loss(drawn):
    from matplotlib.colors import LogNorm
    from matplotlib.contour import ContourSet

    fig = drawn("exp2.yaml")["landscape"]
    (filled,) = [c for c in fig.axes[0].collections if isinstance(c, ContourSet) and c.filled]
    assert isinstance(filled.norm, LogNorm)
    ratios = [b / a for a, b in zip(filled.levels, filled.levels[1:])]
    assert max(ratios) == pytest.approx(min(ratios))  # evenly spaced in log(L)
    assert filled.levels[-1] / filled.levels[0] >= 1e5  # the valley's rings get their own colours


# --------------------------------------------------------------------------- compare


def records(runs, *names):
    return [read_run(runs / name) for name in names]


def test_compare_labels_runs_by_the_settings_that_matter(runs, tmp_path):
    # The two runs differ in lr, but also in log_every and in a whole predict list.
    copy = tmp_path / "other"
    shutil.copytree(runs / "exp2-fast", copy)
    written = yaml.safe_load((copy / "config.yaml").read_text())
    written["train"]["log_every"] = 7
    written["predict"] = [[0.5], [1.5], [2.5]]
    (copy / "config.yaml").write_text(yaml.safe_dump(written))
    fig, notes = compare_figure([read_run(runs / "exp2.yaml"), read_run(copy)])
    texts = legend_texts(fig)
    assert "exp2.yaml · lr=0.01" in texts and "other · lr=0.05" in texts
    assert not any("log_every" in t or "predict" in t for t in texts)
    assert notes == []
    assert_readable(fig, "compare exp2 lr")


def test_compare_of_optimizers_labels_them_and_overlays_their_paths(runs):
    fig, notes = compare_figure(records(runs, "exp2-fast", "adam", "momentum"))
    texts = legend_texts(fig)
    # lr is the same for all three: not in the labels; momentum only where it is on.
    assert {"exp2-fast · optimizer=sgd", "adam · optimizer=adam", "momentum · optimizer=sgd, momentum=0.9"} <= set(texts)
    # Plain gradient descent is replayed step by step; Adam and momentum are not: their
    # paths join their logged steps, and a note says so.
    assert notes == ["descent paths drawn through the logged steps only: adam, momentum"]
    landscape = next(ax for ax in fig.axes if ax.get_title() == "Descent paths")
    lines = {line.get_label().split(" · ")[0]: line for line in landscape.get_lines()}
    assert len(lines["exp2-fast"].get_xdata()) == 601
    assert len(lines["adam"].get_xdata()) == 1 + len(read_run(runs / "adam").metrics["step"])
    assert_readable(fig, "compare optimizers")


def test_compare_reads_runs_from_before_optimizers_as_plain_sgd(runs, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(runs / "exp2-fast", copy)
    written = yaml.safe_load((copy / "config.yaml").read_text())
    for key in ("optimizer", "momentum", "nesterov", "weight_decay", "betas", "eps", "batch_size", "shuffle"):
        written["train"].pop(key, None)
    (copy / "config.yaml").write_text(yaml.safe_dump(written))
    fig, _ = compare_figure([read_run(copy), read_run(runs / "adam")])
    texts = legend_texts(fig)
    assert "old · optimizer=sgd" in texts and "adam · optimizer=adam" in texts


def test_compare_puts_its_legend_outside_the_panels(runs):
    fig, _ = compare_figure(records(runs, "exp2.yaml", "exp2-fast", "exp2-start", "diverged"))
    texts = assert_readable(fig, "compare four runs")
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    for ax in fig.axes:
        panel = ax.get_window_extent(renderer)
        assert box.y1 <= panel.y0 or box.x1 <= panel.x0 or box.x0 >= panel.x1  # beside or below, not on
    assert texts


def test_compare_overlays_the_descent_paths_of_runs_on_the_same_data(runs):
    names = ("exp2.yaml", "exp2-fast", "exp2-start")
    fig, notes = compare_figure(records(runs, *names))
    assert notes == []
    landscape = next(ax for ax in fig.axes if ax.get_title().startswith("Descent paths"))
    paths = [line for line in landscape.get_lines() if line.get_label().split(" · ")[0] in names]
    assert len(paths) == 3
    start = next(line for line in paths if line.get_label().startswith("exp2-start"))
    assert (start.get_xdata()[0], start.get_ydata()[0]) == (6.0, -1.0)  # its own initial values


def test_compare_marks_where_a_run_diverged(runs):
    record = read_run(runs / "diverged")
    fig, _ = compare_figure([read_run(runs / "exp2.yaml"), record])
    step = record.summary["divergence"]["step"]
    assert f"diverged · lr=1.5 (diverged at step {step})" in legend_texts(fig)
    loss = fig.axes[0]
    crosses = [c for c in loss.collections if len(c.get_offsets()) == 1]
    assert [tuple(c.get_offsets()[0]) for c in crosses] == [(step, record.metrics["loss"][-1])]


def test_compare_says_which_panels_it_left_out(runs):
    result = cli("compare", runs / "exp3.yaml", runs / "diabetes.yaml", "--out", "both.png")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "both.png"
    assert "note: no fit panel: diabetes.yaml has 10 input features" in result.stderr
    assert "note: no landscape panel" in result.stderr
    fig, notes = compare_figure(records(runs, "exp3.yaml", "diabetes.yaml"))
    assert len(notes) == 3 and all(note.split(":")[0] in fig._suptitle.get_text() for note in notes)
    assert_readable(fig, "compare exp3 diabetes")


def test_compare_of_runs_on_different_data_says_so(runs):
    fig, notes = compare_figure(records(runs, "exp2.yaml", "exp3.yaml"))
    assert notes == ["no landscape panel: the runs were trained on different data, so on different loss surfaces",
                     "the runs were trained on 2 different data sets: each one's losses in a panel of its own"]
    assert [ax.get_title() for ax in fig.axes if ax.get_title()][:3] == [
        "Loss on synthetic", "Loss on synthetic", "Fit (each run on its own data)"]
    assert_readable(fig, "compare exp2 exp3")


def test_compare_gives_runs_on_different_data_a_loss_panel_each(runs):
    # exp1's 300 per-sample steps under exp2's 3000 were a block of colour on one step axis.
    fig, notes = compare_figure(records(runs, "exp1.yaml-full", "exp2.yaml-full", "exp2-fast"))
    assert any("2 different data sets" in note for note in notes)
    first, second = [ax for ax in fig.axes if ax.get_title().startswith("Loss")]
    assert [len(ax.get_lines()) for ax in (first, second)] == [1, 2]  # exp2's two runs share a panel
    assert first.get_xlim()[1] < 400 < second.get_xlim()[1]  # each on its own steps
    assert_readable(fig, "compare exp1 exp2")


def test_compare_of_runs_with_known_optima_adds_the_gap_on_a_log_axis(runs):
    # Longley: the loss levels off near L*; only L − L* shows that momentum gets further.
    plain, momentum = records(runs, "longley.yaml", "longley-momentum")
    fig, notes = compare_figure([plain, momentum])
    (gap,) = [ax for ax in fig.axes if ax.get_title() == "Gap to the optimum"]
    assert gap.get_yscale() == "log"
    ends = [line.get_ydata()[-1] for line in gap.get_lines()]
    best = plain.summary["optimum"]["loss"]
    assert ends == [pytest.approx(plain.metrics["loss"][-1] - best), pytest.approx(momentum.metrics["loss"][-1] - best)]
    assert ends[1] < ends[0] / 5  # 300 epochs: 0.0006 against 0.0056
    assert_readable(fig, "compare longley")
    # Noise-free data: L* is rounding, L − L* would repeat L: no gap panel.
    fig, _ = compare_figure(records(runs, "exp2.yaml", "exp2-fast"))
    assert not [ax for ax in fig.axes if ax.get_title() == "Gap to the optimum"]


# --------------------------------------------------------------------------- sweep lr.png


def test_the_lr_figure_mentions_divergence_only_when_some_lr_diverged(swept):
    some = dict(sweep_figures(swept / "some"))["lr"]
    none = dict(sweep_figures(swept / "none"))["lr"]
    assert "every seed diverged" in legend_texts(some)
    for fig in (some, none):
        assert "diverged" not in fig.axes[0].get_title()
    assert not any("diverged" in t for t in legend_texts(none))


def test_long_feature_names_are_cut_in_the_middle_and_stay_apart(tmp_path, write_config):
    from bpcli.config import Override, load_config

    names = [f"blood_pressure_measured_at_visit_{i}" for i in range(3)]
    rows = [",".join(names + ["y"])] + [f"{i},{i % 3},{i % 5},{2 * i}" for i in range(12)]
    (tmp_path / "table.csv").write_text("\n".join(rows) + "\n")
    path = write_config("kind: linear-gd\ndata: {source: csv, path: table.csv, target: y, standardize: features}\n"
                        "train: {lr: 0.1, epochs: 20, log_every: 5}\n")
    train(load_config(path, [Override(path="device", value="cpu", origin="test")]), tmp_path / "run", plots=False)
    fig = dict(figures(read_run(tmp_path / "run")))["params"]
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_visible() and ax.get_ylabel() != "b"]
    assert labels == [f"w[blood_p…_visit_{i}]" for i in range(3)]
    assert_readable(fig, "long names/params")


def test_the_losses_figure_marks_members_that_diverged(swept):
    import csv

    members = list(csv.DictReader((swept / "some" / "summary.csv").open()))
    diverged = [m for m in members if m["status"] == "diverged"]
    assert diverged and len(diverged) < len(members)
    fig = dict(sweep_figures(swept / "some"))["losses"]
    crosses = [c for c in fig.axes[0].collections if c.get_offsets().shape[0] and type(c).__name__ == "PathCollection"]
    assert sum(len(c.get_offsets()) for c in crosses) == len(diverged)
    # each cross where its member diverged, and its curve ends there, as its single run does
    marked = sorted(tuple(map(float, xy)) for c in crosses for xy in c.get_offsets())
    assert marked == sorted((float(m["diverged_at_step"]), float(m["final_loss"])) for m in diverged)
    last_steps = [max(x for x, _ in segment) for c in fig.axes[0].collections if type(c).__name__ == "LineCollection"
                  for segment in c.get_segments() if len(segment)]
    assert max(last_steps) == 60 and min(last_steps) <= max(float(m["diverged_at_step"]) for m in diverged)
    assert "diverged (its loss at that step)" in legend_texts(fig)
    assert "diverged (its loss at that step)" not in legend_texts(dict(sweep_figures(swept / "none"))["losses"])


# --------------------------------------------------------------------------- names in any script


def fonts_lack(text):
    """The characters of a text that none of the fonts matplotlib would draw it with has."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    paths = font_manager.fontManager._find_fonts_by_props(text.get_fontproperties())
    covered = set().union(*(FT2Font(str(p)).get_charmap() for p in paths))
    return {c for c in text.get_text() if not c.isspace() and ord(c) not in covered}


def test_chinese_column_names_draw_no_boxes_and_no_warnings(tmp_path, write_config, recwarn):
    # A learner of the Chinese tutorial: a CSV with columns 面积 (area) and 价格 (price).
    import warnings

    from matplotlib.text import Text

    from bpcli.config import Override, load_config

    rows = ["面积,价格"] + [f"{i / 4},{3 * i / 4 + 1 + (i % 3) / 10}" for i in range(30)]
    (tmp_path / "house.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    path = write_config("kind: linear-gd\ndata: {source: csv, path: house.csv, target: 价格}\n"
                        "train: {lr: 0.05, epochs: 50, log_every: 5}\n")
    train(load_config(path, [Override(path="device", value="cpu", origin="test")]), tmp_path / "run", plots=False)
    warnings.simplefilter("always")
    made = dict(figures(read_run(tmp_path / "run")))
    for name, fig in made.items():
        save(fig, tmp_path / "run" / f"{name}.png")
        for text in fig.findobj(Text):
            if text.get_text() and "$" not in text.get_text():
                assert not fonts_lack(text), f"{name}: {text.get_text()!r} has no glyph for {fonts_lack(text)}"
    assert not [w for w in recwarn if "Glyph" in str(w.message)]
    fit = made["fit"].axes[0]
    assert "面积" in fit.get_xlabel() or "feature column" in fit.get_xlabel()  # named by its column, not x
    assert "价格" in fit.get_ylabel() or "target column" in fit.get_ylabel()
    result = cli("plot", tmp_path / "run")  # and nothing on the terminal either
    assert result.exit_code == 0 and "Glyph" not in result.output


# --------------------------------------------------------------------------- an MLP's params.png


def test_an_mlps_params_figure_shows_its_curve_at_a_few_steps_and_keeps_the_norms(runs, drawn):
    # Layer norms mean little to a learner: the fitted curve at a few logged steps does.
    record = read_run(runs / "mlp.yaml-full")
    steps = sorted(set(record.curves["step"]))
    assert steps[0] == 0 and steps[-1] == record.metrics["step"][-1] and 3 <= len(steps) <= 8
    assert set(steps[1:]) <= set(record.metrics["step"])  # logged steps
    final = [y for s, y in zip(record.curves["step"], record.curves["y_pred"]) if s == steps[-1]]
    assert final == pytest.approx(record.curve["y_pred"], rel=1e-6)  # its last curve is fit.png's
    assert len(record.curves["step"]) == 200 * len(steps) and (runs / "mlp.yaml-full/curves.csv").stat().st_size < 60_000
    fig = drawn("mlp.yaml-full")["params"]
    fit = next(ax for ax in fig.axes if ax.get_title() == "The fitted curve, step by step")
    labels = [line.get_label() for line in fit.get_lines()]
    assert labels == ["initial", *(f"after step {int(s)}" for s in steps[1:])]
    assert [ax.get_ylabel() for ax in fig.axes if ax.get_ylabel().startswith("norm(")]  # the norms, smaller
    assert_readable(fig, "mlp/params")


def test_a_mini_batch_mlp_shows_the_whole_datas_loss_beside_a_batchs(runs, drawn):
    record = read_run(runs / "mlp-batches")
    fig = drawn("mlp-batches")["params"]
    loss = next(ax for ax in fig.axes if ax.get_title() == "Loss")
    whole = next(line for line in loss.get_lines() if line.get_label().startswith("loss of the whole data"))
    steps = sorted(set(record.curves["step"]))
    losses = dict(zip(record.curves["step"], record.curves["loss_all_samples"]))
    assert list(whole.get_xdata()) == steps and list(whole.get_ydata()) == [losses[s] for s in steps]
    assert any("one batch's" in line.get_label() for line in loss.get_lines())
    assert_readable(fig, "mlp-batches/params")
    # Full-batch: the logged loss is the whole data's; nothing drawn twice.
    full = next(ax for ax in drawn("mlp.yaml")["params"].axes if ax.get_title() == "Loss")
    assert not [line for line in full.get_lines() if line.get_label().startswith("loss of the whole")]


def test_an_lr_axis_of_hundreds_of_decades_shows_every_learning_rate(tmp_path):
    """matplotlib's log axis cannot span lr=1e-300…1e300 (it drew an empty 1-to-10 axis and
    warned of overflow); beyond 1e±200 the axis is log₁₀(lr), linear."""
    import warnings

    run_sweep(config("exp2.yaml", train__epochs=20), parse_grid(["lr=1e-300,0.1,1e300"]), out=tmp_path / "s",
              plots=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fig = dict(sweep_figures(tmp_path / "s"))["lr"]
        fig.canvas.draw()
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    assert ax.get_xscale() == "linear" and ax.get_xlabel() == "log₁₀ learning rate"
    assert low < -300 < -1 < 300 < high  # the point at 1e-300, the one at 0.1, the line where 1e300 diverged

