"""A classifier's figures (issue 18): boundary.png over two features, confusion.png, the
accuracy panel of loss.png, compare's accuracy panel and animate's moving boundary. The
runs come from a throw-away linear classifier written here (logistic for two classes,
softmax for more), trained on small CSV tables, so that every file is the one a real
classification run writes."""

import csv
import json
import math
import random
import shutil
from typing import Any, ClassVar, Literal

import pytest
import torch
from test_figures import assert_readable, legend_texts

from bpcli.config import Experiment, Override, load_config
from bpcli.errors import RunDirError
from bpcli.kinds import Kind, register, unregister
from bpcli.kinds.base import HandWrittenSGD, uniform
from bpcli.kinds.tasks import Classification
from bpcli.lifecycle import train
from bpcli.plots.animate import animate
from bpcli.plots.common import save
from bpcli.plots.compare import compare_figure
from bpcli.plots.run import figures
from bpcli.rundir.run import read_run
from bpcli.section import Section
from conftest import cli

# --------------------------------------------------------------------------- the kind


class ToyModel(Section):
    """The names of the classes y = 0, 1, …"""

    classes: list[str] = ["no", "yes"]
    """One name per class, in the order of y's values."""


class ToyConfig(Experiment):
    """A linear classifier: logistic regression for two classes, softmax for more."""

    kind: Literal["toy-classifier"]
    """The experiment kind."""
    model: ToyModel
    """The classes."""

    DEFAULTS: ClassVar[dict[str, Any]] = {"model": {}, "train": {"lr": 0.5, "epochs": 100, "log_every": 5,
                                                                 "grad": "manual"}}


class ToyClassifier(HandWrittenSGD):
    least_squares = None

    def __init__(self, cfg, data, device, generator):
        classes, features = tuple(cfg.model.classes), data.x.shape[1]
        self.binary = len(classes) == 2
        self.task = Classification(classes, "binary cross-entropy" if self.binary else "softmax cross-entropy")
        shape = (1, features) if self.binary else (1, len(classes), features)
        w = uniform(shape, generator, data.x.dtype) - 0.5
        b = torch.zeros((1,) if self.binary else (1, len(classes)), dtype=data.x.dtype)
        self._manual = cfg.train.grad == "manual"
        self._params = {"w" if self.binary else "W": w.to(device), "b": b.to(device)}
        self._grads = {n: torch.zeros_like(p) for n, p in self._params.items()}
        self.x, self.y = data.x.to(device)[None], data.y.to(device)[None]
        self._train_with(cfg)

    def _logits(self, params, x):
        if self.binary:  # z = w·x + b, (K, N)
            return (x * params["w"][:, None, :]).sum(-1) + params["b"][:, None]
        return torch.einsum("knf,kcf->knc", x, params["W"]) + params["b"][:, None, :]  # Z = X·Wᵀ + b, (K, N, C)

    def loss(self, params, batch):
        z, y = self._logits(params, batch["x"]), batch["y"]
        if self.binary:  # mean(log(1 + e^z) − y·z)
            return (torch.nn.functional.softplus(z) - y * z).mean(-1)
        return (torch.logsumexp(z, -1) - z.gather(-1, y.long()[..., None])[..., 0]).mean(-1)

    def manual_backward(self, params, batch):
        params = {n: p.detach() for n, p in params.items()}
        x, y = batch["x"], batch["y"]
        z = self._logits(params, x)
        if self.binary:
            r = torch.sigmoid(z) - y  # dL/dz = σ(z) − y; dL/dw = mean(r·x), dL/db = mean(r)
            return self.loss(params, batch), {"w": (r[..., None] * x).mean(1), "b": r.mean(1)}
        r = torch.softmax(z, -1) - torch.nn.functional.one_hot(y.long(), z.shape[-1]).to(z.dtype)
        # dL/dW = Rᵀ·X / N, dL/db = mean(R)
        return self.loss(params, batch), {"W": torch.einsum("knc,knf->kcf", r, x) / x.shape[1], "b": r.mean(1)}

    def predict(self, x):
        params = {n: p.detach() for n, p in self._params.items()}
        z = self._logits(params, x.to(self.x.device)[None])
        if self.binary:
            p = torch.sigmoid(z)
            return torch.stack([1 - p, p], -1)
        return torch.softmax(z, -1)


KIND = Kind("toy-classifier", ToyConfig, ToyClassifier)

# --------------------------------------------------------------------------- the runs


def blobs(classes, features, per_class, spread, seed=0):
    """Rows of `features` numbers around one centre per class, overlapping enough that a
    line misclassifies a few; the label last."""
    draw = random.Random(seed)
    centres = [[2.0 * math.cos(2 * math.pi * c / classes + f) for f in range(features)] for c in range(classes)]
    rows = [[*(centre[f] + draw.gauss(0, spread) for f in range(features)), c]
            for c, centre in enumerate(centres) for _ in range(per_class)]
    draw.shuffle(rows)
    return rows


RUNS = {
    # name: (classes, feature names, rows per class, val_fraction, epochs)
    "binary": (["no", "yes"], ["length", "width"], 40, 0.25, 100),
    "three": (["apple", "pear", "plum"], ["sweetness", "acidity"], 30, 0.2, 100),
    "three-d": (["apple", "pear", "plum"], ["sweetness", "acidity", "weight"], 30, 0.2, 60),
    "no-val": (["no", "yes"], ["length", "width"], 40, 0.0, 40),
    "binary-fast": (["no", "yes"], ["length", "width"], 40, 0.25, 100),
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("classifiers")
    register(KIND)
    try:
        for name, (classes, features, per_class, val, epochs) in RUNS.items():
            table = root / f"{name}.csv"
            with table.open("w", newline="") as fh:
                csv.writer(fh).writerows([[*features, "label"],
                                          *blobs(len(classes), len(features), per_class, spread=1.1)])
            lr = 2.0 if name.endswith("fast") else 0.5
            text = {"kind": "toy-classifier", "device": "cpu", "model": {"classes": classes},
                    "data": {"source": "csv", "path": str(table), "target": "label", "val_fraction": val},
                    "train": {"lr": lr, "epochs": epochs, "log_every": 5, "grad": "manual"}}
            path = root / f"{name}.yaml"
            path.write_text(json.dumps(text))
            train(load_config(path, [Override(path="device", value="cpu", origin="test")]), root / name, plots=False)
    finally:
        unregister("toy-classifier")
    return root


def misclassified_rows(run):
    """How many rows of predictions.csv have a predicted class other than their own, read here."""
    with (run / "predictions.csv").open(newline="") as fh:
        return sum(1 for row in csv.DictReader(fh) if row["y"] != row["y_pred"])


def figure_of(run, name):
    return dict(figures(read_run(run))).get(name)


# --------------------------------------------------------------------------- which figures


@pytest.mark.parametrize("name,expected", [
    ("binary", {"loss", "boundary", "confusion", "params"}),
    ("three", {"loss", "boundary", "confusion", "params"}),
    ("three-d", {"loss", "confusion", "params"}),
    ("no-val", {"loss", "boundary", "confusion", "params"}),
])
def test_a_classifier_draws_its_figures_and_each_reads_cleanly(runs, name, expected):
    made = dict(figures(read_run(runs / name)))
    assert set(made) == expected
    assert (runs / name / "boundary.csv").exists() == ("boundary" in expected)
    for figure_name, fig in made.items():
        assert_readable(fig, f"{name}/{figure_name}")
        assert save(fig, runs / name / f"{figure_name}.png").read_bytes()[:4] == b"\x89PNG"


def test_bpcli_plot_writes_boundary_for_two_features_and_confusion_for_three(runs):
    for name in ("binary", "three-d"):
        result = cli("plot", runs / name)
        assert result.exit_code == 0, result.output
    assert (runs / "binary" / "boundary.png").is_file() and (runs / "binary" / "confusion.png").is_file()
    assert not (runs / "three-d" / "boundary.png").exists() and (runs / "three-d" / "confusion.png").is_file()


# --------------------------------------------------------------------------- boundary.png


@pytest.mark.parametrize("name", ["binary", "three", "binary-fast"])
def test_every_misclassified_sample_is_ringed(runs, name):
    wrong = misclassified_rows(runs / name)
    assert wrong > 0  # the blobs overlap: the test means something
    fig = figure_of(runs / name, "boundary")
    (rings,) = [c for c in fig.axes[0].collections if c.get_label() == "misclassified"]
    assert len(rings.get_offsets()) == wrong
    assert f"misclassified ({wrong})" in legend_texts(fig)


def test_samples_are_coloured_by_their_class_and_shaped_by_their_split(runs):
    from matplotlib.colors import to_rgba

    record = read_run(runs / "binary")
    fig = figure_of(runs / "binary", "boundary")
    points = [c for c in fig.axes[0].collections if c.get_label() != "misclassified"
              and type(c).__name__ == "PathCollection"]
    assert len(points) == 2  # training circles, validation triangles
    colours = {"no": to_rgba("tab:blue"), "yes": to_rgba("tab:red")}
    by_split = {"train": [], "val": []}
    for row in record.classified:
        by_split[row.split].append((tuple(row.x), colours[row.y]))
    for collection, split in zip(points, ("train", "val")):
        drawn = list(zip(map(tuple, collection.get_offsets()), map(tuple, collection.get_facecolors())))
        assert drawn == by_split[split]
    texts = legend_texts(fig)
    assert "class no (40)" in texts and "class yes (40)" in texts
    accuracy = record.summary["accuracy"]
    assert f"training samples (60), accuracy {100 * accuracy['train']:.3g} %" in texts
    assert f"validation samples (20), accuracy {100 * accuracy['val']:.3g} %" in texts
    assert any(t.startswith("decision boundary, P(yes) = 0.5") for t in texts)


def test_the_binary_map_is_the_probability_of_the_positive_class(runs):
    record = read_run(runs / "binary")
    fig = figure_of(runs / "binary", "boundary")
    (image,) = fig.axes[0].get_images()
    assert image.norm.vmin == 0 and image.norm.vmax == 1
    assert image.get_array().ravel().tolist() == pytest.approx(record.boundary["p[yes]"])
    bar = fig.axes[1]
    assert bar.get_ylabel() == "predicted probability P(yes)"
    assert fig.axes[0].get_xlabel() == "length" and fig.axes[0].get_ylabel() == "width"


def test_three_classes_are_coloured_by_the_most_probable_class(runs):
    import numpy as np
    from matplotlib.colors import to_rgb

    record = read_run(runs / "three")
    fig = figure_of(runs / "three", "boundary")
    (image,) = fig.axes[0].get_images()
    pixels = np.asarray(image.get_array())
    p = np.stack([record.boundary[f"p[{c}]"] for c in ("apple", "pear", "plum")], -1).reshape(120, 120, 3)
    best = p.argmax(-1)
    palette = np.array([to_rgb(f"tab:{c}") for c in ("blue", "orange", "green")])
    # A pixel is its class's colour mixed with white: the class's colour is the nearest direction.
    tint = 1 - pixels
    nearest = np.array([[np.argmax([(t @ (1 - c)) / np.linalg.norm(1 - c) / max(np.linalg.norm(t), 1e-12)
                                     for c in palette]) for t in row] for row in tint[::10, ::10]])
    assert (nearest == best[::10, ::10]).mean() > 0.98
    assert "borders between the predicted classes" in legend_texts(fig)


# --------------------------------------------------------------------------- confusion.png


def test_the_confusion_matrix_writes_every_count_and_names_the_classes(runs):
    record = read_run(runs / "three-d")
    fig = figure_of(runs / "three-d", "confusion")
    train_ax, val_ax = fig.axes
    for ax, split in ((train_ax, "train"), (val_ax, "val")):
        counts = record.summary["confusion"][split]
        written = sorted((round(t.get_position()[1]), round(t.get_position()[0]), int(t.get_text())) for t in ax.texts)
        assert written == [(r, c, counts[r][c]) for r in range(3) for c in range(3)]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["apple", "pear", "plum"]
        name, total = {"train": ("training", 72), "val": ("validation", 18)}[split]
        assert ax.get_title() == f"{name} ({total} samples): accuracy {100 * record.summary['accuracy'][split]:.3g} %"
    assert [t.get_text() for t in train_ax.get_yticklabels()] == ["apple", "pear", "plum"]


def test_a_run_without_validation_has_one_confusion_panel(runs):
    fig = figure_of(runs / "no-val", "confusion")
    assert len(fig.axes) == 1 and fig.axes[0].get_title().startswith("training (80 samples)")


# --------------------------------------------------------------------------- loss.png


def test_loss_png_has_an_accuracy_panel_and_names_the_loss(runs):
    record = read_run(runs / "binary")
    fig = figure_of(runs / "binary", "loss")
    loss, accuracy = [ax for ax in fig.axes if ax.get_visible()]
    assert loss.get_ylabel() == "loss (binary cross-entropy)"
    assert accuracy.get_ylabel() == "accuracy" and accuracy.get_ylim() == (-3, 103)
    lines = {line.get_label(): line for line in accuracy.get_lines()}
    assert list(lines["training accuracy"].get_ydata()) == pytest.approx([100 * v for v in record.metrics["accuracy"]])
    assert list(lines["validation accuracy"].get_ydata()) == pytest.approx(
        [100 * v for v in record.metrics["val_accuracy"]])
    params = figure_of(runs / "binary", "params")
    assert {ax.get_ylabel() for ax in params.axes if ax.get_visible()} == {"w[length]", "w[width]", "b"}  # by feature


def test_a_regression_loss_keeps_its_label(runs, tmp_path):
    from bpcli.plots.loss import loss_label

    assert loss_label(read_run(runs / "three")) == "loss (softmax cross-entropy)"
    copy = tmp_path / "old"
    shutil.copytree(runs / "binary", copy)
    summary = json.loads((copy / "summary.json").read_text())
    summary.pop("task")
    (copy / "summary.json").write_text(json.dumps(summary))
    assert loss_label(read_run(copy)) == "loss (squared error)"


# --------------------------------------------------------------------------- compare


def test_compare_overlays_the_accuracy_of_classifiers(runs):
    records = [read_run(runs / name) for name in ("binary", "binary-fast")]
    fig, notes = compare_figure(records)
    (panel,) = [ax for ax in fig.axes if ax.get_title() == "Accuracy"]
    solid = [line for line in panel.get_lines() if line.get_linestyle() == "-" and len(line.get_xdata())]
    assert len(solid) == 2
    for line, record in zip(solid, records):
        assert list(line.get_ydata()) == pytest.approx([100 * v for v in record.metrics["accuracy"]])
    assert not any(ax.get_title().startswith(("Fit", "Descent")) for ax in fig.axes)
    assert notes == ["no fit or landscape panel: the runs are classifiers; see each run's boundary.png or "
                     "confusion.png"]
    assert_readable(fig, "compare classifiers")


# --------------------------------------------------------------------------- animate


@pytest.mark.parametrize("name", ["binary", "three"])
def test_animate_moves_the_boundary_of_a_linear_classifier(runs, name, tmp_path):
    from PIL import Image

    made = animate(runs / name, tmp_path / f"{name}.gif", frames=12)
    assert made.frames == 12 and made.first_step == 0
    with Image.open(made.path) as gif:
        assert gif.n_frames == 12


@pytest.mark.parametrize("name,classes", [("binary", ["no", "yes"]), ("three", ["apple", "pear", "plum"])])
def test_animate_draws_the_boundary_the_logged_weights_give(runs, name, classes):
    import numpy as np

    from bpcli.plots.animate import _Boundary, _classifier_columns

    record = read_run(runs / name)
    model = _classifier_columns(record)
    last = {c: record.metrics[c][-1] for c in record.metrics}  # the last step is logged: the trained weights
    grid = np.column_stack([record.boundary["x1"], record.boundary["x2"]])
    p = _Boundary.probabilities(model, last, grid)
    for c, class_name in enumerate(classes):  # what the trained model wrote to boundary.csv
        assert p[:, c] == pytest.approx(np.array(record.boundary[f"p[{class_name}]"]), abs=1e-5)


def test_animate_refuses_a_classifier_it_cannot_redraw_in_one_line(runs, tmp_path):
    copy = tmp_path / "mlp"
    shutil.copytree(runs / "binary", copy)
    text = (copy / "metrics.csv").read_text().replace("w[0],w[1],b", "norm(W1),norm(b1),W2", 1)
    (copy / "metrics.csv").write_text(text)
    summary = json.loads((copy / "summary.json").read_text())  # the columns an MLP's run records
    summary["metrics_columns"] = text.splitlines()[0].split(",")
    (copy / "summary.json").write_text(json.dumps(summary))
    with pytest.raises(RunDirError) as refused:
        animate(copy, tmp_path / "a.gif")
    assert "\n" not in str(refused.value) and "norm(W1)" in str(refused.value)
    with pytest.raises(RunDirError, match="two features"):
        animate(runs / "three-d", tmp_path / "b.gif")


# --------------------------------------------------------------------------- reading


def test_damaged_classifier_files_are_named_in_one_line(runs, tmp_path):
    copy = tmp_path / "broken"
    shutil.copytree(runs / "binary", copy)
    lines = (copy / "predictions.csv").read_text().splitlines()
    (copy / "predictions.csv").write_text("\n".join(lines[:3] + [lines[3] + ",extra"]) + "\n")
    with pytest.raises(RunDirError, match="predictions.csv: is corrupt") as refused:
        read_run(copy)
    assert "\n" not in str(refused.value)
    shutil.copy(runs / "binary" / "predictions.csv", copy / "predictions.csv")
    grid = (copy / "boundary.csv").read_text().splitlines()
    (copy / "boundary.csv").write_text("\n".join(grid[:-7]) + "\n")  # no longer a whole grid
    with pytest.raises(RunDirError, match="boundary.csv: is not a grid"):
        read_run(copy)


def copy_run(runs, name, tmp_path):
    copy = tmp_path / name
    shutil.copytree(runs / name, copy)
    return copy


def edit_summary(run, change):
    summary = json.loads((run / "summary.json").read_text())
    change(summary)
    (run / "summary.json").write_text(json.dumps(summary))


def test_scores_are_not_called_probabilities(runs, tmp_path):
    # A hinge-loss classifier gives scores: the map is their difference, 0 on the boundary.
    run = copy_run(runs, "binary", tmp_path)
    edit_summary(run, lambda s: s["task"].update(probabilities=False))
    fig = figure_of(run, "boundary")
    assert fig.axes[1].get_ylabel() == "score(yes) − score(no)"
    (image,) = fig.axes[0].get_images()
    assert image.norm.vmin == -image.norm.vmax
    assert "decision boundary, equal scores" in legend_texts(fig)
    assert not any("P(" in t for t in legend_texts(fig))
    assert_readable(fig, "scores/boundary")


def test_without_features_in_predictions_the_training_samples_are_drawn_from_data_csv(runs, tmp_path):
    # predictions.csv as first written (no x columns): the training rows are data.csv's, in
    # the same order; the validation rows cannot be placed and are left out.
    run = copy_run(runs, "binary", tmp_path)
    with (run / "predictions.csv").open(newline="") as fh:
        rows = [row[:5] for row in csv.reader(fh)]
    with (run / "predictions.csv").open("w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    wrong_in_training = sum(1 for row in rows[1:] if row[0] == "train" and row[1] != row[2])
    fig = figure_of(run, "boundary")
    rings = [c for c in fig.axes[0].collections if c.get_label() == "misclassified"]
    assert sum(len(c.get_offsets()) for c in rings) == wrong_in_training
    texts = legend_texts(fig)
    assert any(t.startswith("training samples (60)") for t in texts)
    assert not any(t.startswith("validation samples") for t in texts)


def test_a_diverged_classifier_draws_what_it_can(runs, tmp_path):
    run = copy_run(runs, "binary", tmp_path)
    lines = (run / "boundary.csv").read_text().splitlines()
    (run / "boundary.csv").write_text("\n".join([lines[0]] + [",".join(line.split(",")[:2] + ["nan", "nan"])
                                                              for line in lines[1:]]) + "\n")
    edit_summary(run, lambda s: (s.pop("confusion"), s.update(status="diverged")))
    made = dict(figures(read_run(run)))
    assert set(made) == {"loss", "params"}


def test_softmax_weights_are_named_by_class_and_feature(runs):
    fig = figure_of(runs / "three", "params")
    labels = [ax.get_ylabel() for ax in fig.axes if ax.get_visible()]
    # W is 3 rows (classes) of 2 (features), logged row by row as W[0] … W[5]
    assert labels == ["W[apple, sweetness]", "W[apple, acidity]", "W[pear, sweetness]", "W[pear, acidity]",
                      "W[plum, sweetness]", "W[plum, acidity]", "b[apple]", "b[pear]", "b[plum]"]
    assert_readable(fig, "three/params")


def test_a_classifier_with_an_optimum_gets_gap_and_accuracy_panels(runs, tmp_path):
    # logistic regression on data that are not separable has a maximum-likelihood optimum
    # (Newton's method): its loss L* sets a gap panel, and accuracy still has its own.
    run = copy_run(runs, "binary", tmp_path)
    record = read_run(run)
    final = record.metrics["loss"][-1]
    edit_summary(run, lambda s: s.update(optimum={"loss": 0.8 * final, "w": [1.0, 1.0], "b": [0.0]}))
    fig = figure_of(run, "loss")
    loss, gap, accuracy = [ax for ax in fig.axes if ax.get_visible()]
    assert gap.get_ylabel() == "L − L*" and accuracy.get_ylabel() == "accuracy"
    assert accuracy.get_xlabel() == "step (parameter update)"
    assert_readable(fig, "optimum/loss")


def test_compare_of_a_classifier_with_a_regression_says_why_panels_are_missing(runs, tmp_path):
    from conftest import config

    train(config("exp2.yaml", train__epochs=30), tmp_path / "line", plots=False)
    fig, notes = compare_figure([read_run(tmp_path / "line"), read_run(runs / "binary")])
    assert notes == ["no fit panel: binary is a classifier; see its own boundary.png or confusion.png",
                     "no landscape panel: binary is a classifier, whose loss has no least-squares surface to draw",
                     "the runs were trained on 2 different data sets: each one's losses in a panel of its own"]
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "Loss on synthetic" and titles[1].startswith("Loss on ") and titles[2:] == ["Accuracy"]
    assert_readable(fig, "compare classifier and line")
