"""descent.gif: a run's descent, frame by frame, drawn from its run directory alone (no torch).

Each frame shows the state after one logged step: on the left the fitted line over the
data, on the right the parameters on the loss landscape (contours of L(w, b), or the
curve L(w) for y = w·x) with the path taken so far. A linear model of several features
has no landscape to draw: its frames show predicted against actual values beside the
loss against the step. A linear classifier of two features (logistic, softmax) shows its
decision boundary moving over the data, the probability map beneath it and the samples
it misclassifies ringed, beside its loss. The parameters come from metrics.csv, so the
animation is as fine as the run's logging (train.log_every).

Frames are rendered with matplotlib's Agg canvas and written as a GIF with Pillow, which
matplotlib already needs. All frames share one palette, so Pillow stores each frame as
the rectangle that changed since the previous one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bpcli import interrupts
from bpcli import schedules
from bpcli.errors import RunDirError
from bpcli.optimizers import describe
from bpcli.plots import run as run_plots
from bpcli.plots.classification import classifier
from bpcli.plots.common import DRAWABLE, figure, number, plus, positive, span
from bpcli.rundir.files import check_figure_out, unwritable, write_file
from bpcli.rundir.run import RunRecord, read_run

FRAMES = 60
"""Default number of frames; a run logged more often is sampled (see pick_frames)."""
MAX_FRAMES = 300
FPS = 12
"""Default frames per second."""
MAX_FPS = 50  # GIF delays are in hundredths of a second, and viewers slow down anything faster
HOLD_LAST = 2.0
"""Seconds the last frame stays on screen before the GIF starts over."""
SIZE = (10.0, 5.0)  # inches: two panels side by side, the landscape's legend below its panel
DPI = 80  # 800 × 400 pixels: small files, text still readable



@dataclass
class Animation:
    """What `animate` wrote: the file, how many frames it holds, the last step they show,
    and notes for the user (a diverged or unfinished run, sparse logging)."""

    path: Path
    frames: int
    first_step: int
    """0 when the first frame shows the initial parameters."""
    last_step: int
    notes: list[str] = field(default_factory=list)


def animate(run_dir: str | Path, out: str | Path | None = None, frames: int = FRAMES, fps: float = FPS,
            force: bool = False) -> Animation:
    """Write the run's descent as an animated GIF (default: RUN_DIR/descent.gif)."""
    if not 2 <= frames <= MAX_FRAMES:
        raise RunDirError(f"--frames {frames}: must be between 2 and {MAX_FRAMES}")
    if not 0 < fps <= MAX_FPS:
        raise RunDirError(f"--fps {number(fps)}: must be above 0 and at most {MAX_FPS}")
    record = read_run(run_dir)
    path = Path(out) if out is not None else record.path / "descent.gif"
    check_figure_out(path, force, ("gif",), create_folder=False)
    model = _classifier_columns(record) if classifier(record) else None
    columns = model.columns if model is not None else _shape(record)
    states, notes = _states(record, columns)
    chosen = [states[i] for i in pick_frames(len(states), frames)]
    notes += _logging_hint(record, len(states), frames)
    images = _render(record, columns, states, chosen, model)
    _write_gif(images, path, fps)
    return Animation(path, len(images), int(chosen[0]["step"]), int(chosen[-1]["step"]), notes)


def pick_frames(count: int, frames: int) -> list[int]:
    """Indices of `min(count, frames)` of `count` states, first and last included, spaced
    logarithmically: descent moves fastest at the start, so early states get more frames."""
    if count <= frames:
        return list(range(count))
    picked: list[int] = []
    for k in range(frames):
        target = round(count ** (k / (frames - 1))) - 1  # 0 … count−1, geometric over 1 … count
        lowest = picked[-1] + 1 if picked else 0  # every frame a new state …
        highest = count - (frames - k)  # … leaving one for each frame still to come
        picked.append(min(max(target, lowest), highest))
    return picked


# --------------------------------------------------------------------------- the states


def _shape(record: RunRecord) -> list[str]:
    """The parameter columns of a line ŷ = w·x (+ b): ["w"], ["w", "b"], or one weight per
    feature then "b"; a RunDirError, in one line, for any other model."""
    columns = run_plots.value_columns(record)
    features = len(record.data_x[0]) if record.data_x else 0
    weights = ["w"] if features == 1 else [f"w[{i}]" for i in range(features)]
    if columns in (weights, weights + ["b"]) and features:
        return columns
    kind = record.summary.get("kind", "?")
    names = ", ".join(columns[:4]) + (", …" if len(columns) > 4 else "")
    raise RunDirError(
        f"{record.path}: animate redraws a line y = w·x (+ b) from its logged weights (scalar-sgd, linear-gd, "
        f"nn-linear runs), and this {kind} run logs {names}; see its loss.png instead"
    )


@dataclass
class LinearClassifier:
    """Where a logistic or softmax run of two features logs its parameters in metrics.csv."""

    columns: list[str]
    weights: list[str]
    """w[0], w[1] (logistic: z = w·x + b) or W[0] … W[2C − 1] (softmax: W is C rows of 2)."""
    biases: list[str]
    """b (logistic) or b[0] … b[C − 1] (softmax); none for a model without a bias."""
    classes: int

    @property
    def logistic(self) -> bool:
        return self.weights == ["w[0]", "w[1]"]


def _classifier_columns(record: RunRecord) -> LinearClassifier:
    """The parameter columns of a linear classifier of two features; a RunDirError, in one
    line, for any other classifier (an MLP logs its layers' norms, not a boundary's weights)."""
    features = len(record.data_x[0]) if record.data_x else 0
    if features != 2:
        raise RunDirError(f"{record.path}: animate draws a classifier's decision boundary over two features, and "
                          f"this run has {features}; see its confusion.png and loss.png instead")
    columns = run_plots.value_columns(record)
    count = len(classifier(record)["classes"])
    softmax = ([f"W[{i}]" for i in range(2 * count)], [f"b[{c}]" for c in range(count)])
    for weights, biases in ([(["w[0]", "w[1]"], ["b"])] if count == 2 else []) + [softmax]:
        if columns in (weights, weights + biases):
            return LinearClassifier(columns, weights, biases if columns != weights else [], count)
    names = ", ".join(columns[:4]) + (", …" if len(columns) > 4 else "")
    raise RunDirError(
        f"{record.path}: animate redraws a linear classifier's boundary from its logged weights (logistic, "
        f"softmax runs), and this {record.summary.get('kind', '?')} run logs {names}; see its boundary.png instead"
    )


def _states(record: RunRecord, columns: list[str]) -> tuple[list[dict[str, float]], list[str]]:
    """Every drawable state of the run in step order: the initial parameters (step 0, where
    recorded), then each logged row up to the last one whose values are finite."""
    if not record.metrics["step"]:
        raise RunDirError(f"{record.path}: metrics.csv holds no logged step yet; wait for the run to log one")
    rows = [dict(zip(record.metrics, values)) for values in zip(*record.metrics.values())]
    initial = _initial(record, columns)
    if initial is not None:
        rows.insert(0, {"step": 0.0, "epoch": 0.0, **initial})
    states = []
    for row in rows:
        if not all(isinstance(row[c], float) and abs(row[c]) < DRAWABLE for c in columns):
            break  # NaN, infinite or beyond any axis: the run diverged here
        states.append(row)
    status = record.summary.get("status")
    if not states:
        raise RunDirError(f"{record.path}: no logged step has finite parameters, so there is nothing to draw; "
                          "train it again with a smaller learning rate")
    notes = []
    diverged = (record.summary.get("divergence") or {}).get("step")
    if status == "diverged" or len(states) < len(rows):
        where = f" at step {diverged}" if diverged is not None else ""
        notes.append(f"the run diverged{where}; the animation ends at step {int(states[-1]['step'])}, "
                     "the last one whose parameters are finite")
    elif status == "running":
        notes.append(f"the run is still running (or was killed before it could record its end); animated the "
                     f"{len(states)} states logged so far, up to step {int(states[-1]['step'])}")
    elif status != "completed":
        notes.append(f"the run stopped early ({status}); the animation ends at step {int(states[-1]['step'])}")
    return states, notes


def _initial(record: RunRecord, columns: list[str]) -> dict[str, float] | None:
    """The parameters before the first update, from summary.json, under their column names."""
    initial = record.summary.get("initial_params") or {}
    values = [v for name in ("w", "W", "b") if isinstance(initial.get(name), list) for v in initial[name]]
    if len(values) != len(columns) or not all(isinstance(v, (int, float)) for v in values):
        return None
    return {c: float(v) for c, v in zip(columns, values)}


def _logging_hint(record: RunRecord, count: int, frames: int) -> list[str]:
    steps = int(record.metrics["step"][-1])
    if 2 * count >= frames or steps < 2 * count or record.summary.get("status") == "running":
        return []
    every = max(1, steps // 1000)
    return [f"only {count} states were logged over {steps} steps, so the animation is coarse; "
            f"for a smoother one train again with --log-every {every}"]


# --------------------------------------------------------------------------- the frames


def _render(record: RunRecord, columns: list[str], states: list[dict[str, float]],
            chosen: list[dict[str, float]], model: LinearClassifier | None = None) -> list[Any]:
    """One image per chosen state. Everything that stays put (axes, data, contours, legends)
    is drawn once; each frame redraws only what moves over a copy of it (blitting), which
    makes a frame about ten times cheaper than drawing the whole figure."""
    from PIL import Image

    fig, axes = figure(1, 2, size=SIZE)
    fig.set_dpi(DPI)
    fig.subplots_adjust(left=0.07, right=0.97, bottom=0.22, top=0.83, wspace=0.3)
    fit_ax, descent_ax = axes[0]
    if model is not None:
        fig.subplots_adjust(wspace=0.42)  # the colour bar's label clear of the loss axis's
        fit: Any = _Boundary(fit_ax, record, model)
        descent: Any = _LossCurve(descent_ax, record, str(classifier(record).get("loss", "")))
    else:
        fit = _LineFit(fit_ax, record) if len(columns) <= 2 and columns[0] == "w" else _PredictedFit(fit_ax, record)
        missing = _Landscape.missing(record, columns, states)
        descent = _LossCurve(descent_ax, record, missing) if missing else _Landscape(descent_ax, record, columns,
                                                                                     states)
    fig.suptitle(_heading(record), y=0.97)
    status = fig.text(0.5, 0.9, "", ha="center", fontsize="medium")
    moving = [*fit.moving, *descent.moving, status]
    for artist in moving:
        artist.set_animated(True)
    canvas = fig.canvas
    canvas.draw()
    background = canvas.copy_from_bbox(fig.bbox)
    diverged = (record.summary.get("divergence") or {}).get("step")
    images = []
    for i, state in enumerate(chosen):
        interrupts.check()  # Ctrl-C stops the drawing between two frames
        canvas.restore_region(background)
        fit.show(state)
        status.set_text(descent.show(state))
        if i == len(chosen) - 1 and diverged is not None:
            status.set_text(f"{status.get_text()}   diverged at step {diverged}")
            status.set_color("red")
        for artist in moving:
            fig.draw_artist(artist)
        images.append(Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB"))
    return images


def _heading(record: RunRecord) -> str:
    """What was trained and how: the kind, the learning rate, the optimizer and the batch size
    where the config names them, the seed."""
    s, train = record.summary, record.config.get("train") or {}
    parts = [f"lr {number(s.get('lr'))}"]
    if train.get("optimizer"):
        parts.append(describe(train))  # the rule and its settings, in the rule's own words
    if train.get("schedule", schedules.DEFAULT) != schedules.DEFAULT:
        parts.append(f"{train['schedule']} lr schedule")
    if train.get("batch_size"):
        parts.append(f"batches of {train['batch_size']}")
    parts.append(f"seed {s.get('seed')}")
    return f"Gradient descent — {s.get('kind')}, " + ", ".join(parts)


def _step_text(state: dict[str, float]) -> str:
    step = int(state["step"])
    return "start (before the first update)" if step == 0 else f"step {step} (epoch {int(state['epoch'])})"


POINTS = 2000
"""The most samples a frame draws (an even selection of them); more only blur together."""


def _sample(count: int) -> Any:
    import numpy as np

    return np.linspace(0, count - 1, min(count, POINTS)).round().astype(int)


def _points(record: RunRecord, what: str, shown: int) -> str:
    # data.csv keeps an even sample of very large data: say how many points the run had.
    count = (record.summary.get("data_csv_rows") or {}).get("of") or len(record.data_y)
    return f"{what} ({count} points)" if shown == count else f"{what} ({shown} of {count} points)"


def _scaled(record: RunRecord, key: str) -> str:
    """' (standardised)' for the data standardised before training (so are the axes)."""
    return " (standardised)" if (record.summary.get("scaling") or {}).get(key, 1.0) != 1.0 else ""


class _LineFit:
    """One input: the data, the true line, and the fitted line ŷ = w·x (+ b) of the frame's step."""

    def __init__(self, ax: Any, record: RunRecord) -> None:
        import numpy as np

        xs = np.array([row[0] for row in record.data_x])
        ys = np.array(record.data_y)
        shown = _sample(len(ys))
        ax.scatter(xs[shown], ys[shown], c="red", s=14 if len(shown) <= 200 else 3,
                   label=_points(record, "data", len(shown)), zorder=3)
        self.grid = np.array(span(xs))
        true = record.summary.get("true_params") or {}
        lo, hi = span(ys)
        if number(true.get("w")) != "—":
            tb = true.get("b") or 0.0
            ax.plot(self.grid, true["w"] * self.grid + tb, "k--", linewidth=1,
                    label=f"true: y = {number(true['w'])}·x" + (plus(tb) if tb else ""))
        ax.set_xlim(*self.grid)
        ax.set_ylim(lo - 0.25 * (hi - lo), hi + 0.25 * (hi - lo))
        (self.line,) = ax.plot([], [], color="tab:blue", linewidth=2, label="fit")
        ax.legend(loc="upper left", fontsize="small")
        ax.set_title(" ", fontsize="medium")
        self.equation = ax.title
        self.moving = [self.line, self.equation]
        (feature,), target = record.summary.get("features") or ["x"], record.summary.get("target") or "y"
        ax.set_xlabel(f"{feature}{_scaled(record, 'x_std')}")
        ax.set_ylabel(f"{target}{_scaled(record, 'y_std')}")
        ax.grid(True, alpha=0.3)

    def show(self, state: dict[str, float]) -> None:
        w, b = state["w"], state.get("b", 0.0)
        self.line.set_data(self.grid, w * self.grid + b)
        self.equation.set_text(f"fit: ŷ = {number(w)}·x" + (plus(b) if "b" in state else ""))


class _PredictedFit:
    """Several inputs: each sample's prediction X·w + b against its target, with ŷ = y."""

    def __init__(self, ax: Any, record: RunRecord) -> None:
        import numpy as np

        shown = _sample(len(record.data_y))
        self.x = np.array(record.data_x)[shown]
        self.y = np.array(record.data_y)[shown]
        self.weights = [f"w[{i}]" for i in range(self.x.shape[1])]
        lo, hi = span(self.y)
        ax.plot([lo, hi], [lo, hi], "k--", linewidth=1, label="ŷ = y")
        self.points = ax.scatter(self.y, self.y, s=10, alpha=0.6, color="tab:blue",
                                 label=_points(record, "samples", len(self.y)))
        self.moving = [self.points]
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        scaled = _scaled(record, "y_std")
        ax.set_xlabel(f"actual {record.summary.get('target', 'y')}{scaled}")
        ax.set_ylabel(f"predicted{scaled}")
        ax.set_title("predictions X·w + b", fontsize="medium")
        ax.legend(loc="upper left", fontsize="small")
        ax.grid(True, alpha=0.3)

    def show(self, state: dict[str, float]) -> None:
        import numpy as np

        predicted = self.x @ np.array([state[c] for c in self.weights]) + state.get("b", 0.0)
        self.points.set_offsets(np.column_stack([self.y, predicted]))


class _Boundary:
    """A linear classifier of two features: the probability map and the decision boundary of
    the frame's step over the training samples, those it misclassifies ringed."""

    SIDE = 100  # grid points a side: the boundary is straight (logistic) or a few straight pieces

    def __init__(self, ax: Any, record: RunRecord, model: LinearClassifier) -> None:
        import numpy as np
        from matplotlib.colors import Normalize
        from matplotlib.lines import Line2D

        from bpcli.plots import classification as drawing

        task = classifier(record)
        self.model, names = model, [str(c) for c in task["classes"]]
        x = np.array(record.data_x)
        y = np.array(record.data_y).astype(int)
        grid = record.boundary  # the plane boundary.png shows, else the data's own span
        lows = [min(grid["x1"]), min(grid["x2"])] if grid else [span(x[:, 0])[0], span(x[:, 1])[0]]
        highs = [max(grid["x1"]), max(grid["x2"])] if grid else [span(x[:, 0])[1], span(x[:, 1])[1]]
        self.xs, self.ys = (np.linspace(lo, hi, self.SIDE) for lo, hi in zip(lows, highs))
        self.plane = np.column_stack([a.ravel() for a in np.meshgrid(self.xs, self.ys)])
        self.colours = drawing.class_colours(len(names))
        extent = [lows[0], highs[0], lows[1], highs[1]]
        if len(names) == 2:
            self.image = ax.imshow(np.full((self.SIDE, self.SIDE), 0.5), origin="lower", extent=extent,
                                   aspect="auto", cmap=drawing.two_class_map(), norm=Normalize(0, 1))
            ax.figure.colorbar(self.image, ax=ax, fraction=0.05, pad=0.02, label=f"P({drawing.short(names[1])})")
        else:
            self.image = ax.imshow(np.ones((self.SIDE, self.SIDE, 3)), origin="lower", extent=extent, aspect="auto")
        shown = _sample(len(y))
        self.x, self.y = x[shown], y[shown]
        size = 22 if len(shown) <= 200 else 5
        # Redrawn with the frame (not left in the background): the map, drawn over the background, would hide them.
        self.points = ax.scatter(self.x[:, 0], self.x[:, 1], c=[self.colours[c] for c in self.y], s=size,
                                 edgecolor="black", linewidth=0.5, zorder=3)
        self.rings = ax.scatter([], [], s=size * 3.5, facecolor="none", edgecolor="black", linewidth=1.3, zorder=4)
        (self.border,) = ax.plot([], [], color="black", linewidth=1.8, zorder=5)
        ax.set_xlim(lows[0], highs[0])
        ax.set_ylim(lows[1], highs[1])
        features = record.summary.get("features") or ["x[0]", "x[1]"]
        ax.set_xlabel(f"{drawing.short(str(features[0]), 30)}{_scaled(record, 'x_std')}")
        ax.set_ylabel(f"{drawing.short(str(features[1]), 30)}{_scaled(record, 'x_std')}")
        handles = [Line2D([], [], linestyle="", marker="o", markersize=6, color=colour, markeredgecolor="black",
                          label=drawing.short(name)) for name, colour in zip(names, self.colours)]
        handles += [Line2D([], [], color="black", linewidth=1.8, label="decision boundary"),
                    Line2D([], [], linestyle="", marker="o", markersize=9, markerfacecolor="none",
                           markeredgecolor="black", label="misclassified")]
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=min(len(handles), 5),
                  fontsize="x-small", frameon=False)
        ax.set_title(" ", fontsize="medium")
        self.accuracy = ax.title
        self.moving = [self.image, self.points, self.rings, self.border, self.accuracy]

    @staticmethod
    def probabilities(model: LinearClassifier, state: dict[str, float], points: Any) -> Any:
        """Each class's probability at `points` (M, 2) for the parameters of `state`: (M, C)."""
        import numpy as np

        w = np.array([state[c] for c in model.weights])
        b = np.array([state[c] for c in model.biases]) if model.biases else 0.0
        with np.errstate(over="ignore", invalid="ignore"):
            if model.logistic:  # P(second class) = σ(w·x + b) = exp(−log(1 + e^(−z)))
                positive = np.exp(-np.logaddexp(0.0, -(points @ w + b)))
                return np.column_stack([1 - positive, positive])
            z = points @ w.reshape(model.classes, 2).T + b  # softmax(W·x + b), shifted by its largest z
            e = np.exp(z - z.max(-1, keepdims=True))
            return e / e.sum(-1, keepdims=True)

    def show(self, state: dict[str, float]) -> None:
        import numpy as np
        from contourpy import contour_generator

        from bpcli.plots import classification as drawing

        p = self.probabilities(self.model, state, self.plane).reshape(self.SIDE, self.SIDE, -1)
        self.image.set_data(p[..., 1] if p.shape[-1] == 2 else drawing.class_shading(p, self.colours, True))
        # The boundary: where a class's probability meets the largest of the others (P = 0.5
        # for two), as one line with NaN between its pieces.
        pieces = []
        for margin in np.moveaxis(drawing.margins(p), -1, 0):
            if np.isfinite(margin).all() and margin.min() < 0 < margin.max():
                pieces += [np.vstack([line, [np.nan, np.nan]]) for line in
                           contour_generator(self.xs, self.ys, margin).lines(0.0)]
        line = np.vstack(pieces) if pieces else np.empty((0, 2))
        self.border.set_data(line[:, 0], line[:, 1])
        predicted = self.probabilities(self.model, state, self.x).argmax(-1)
        wrong = predicted != self.y
        self.rings.set_offsets(self.x[wrong] if wrong.any() else np.empty((0, 2)))
        self.accuracy.set_text(f"training accuracy {drawing.percent(1 - wrong.mean())}")


class _Landscape:
    """The parameters on the loss landscape that landscape.png draws, with the path so far."""

    @staticmethod
    def missing(record: RunRecord, columns: list[str], states: list[dict[str, float]]) -> str:
        """Why there is no landscape to draw, or "" when there is one."""
        if columns not in (["w"], ["w", "b"]):
            return "no landscape over several inputs"
        surface = run_plots.landscape(record)
        if surface is None:
            return "no landscape until the run ends"  # a run still going has not recorded its optimum
        if not run_plots.landscape_drawable(surface, [_whole_path(record, columns, states)]):
            return "no landscape: values too large to draw one"
        return ""

    def __init__(self, ax: Any, record: RunRecord, columns: list[str], states: list[dict[str, float]]) -> None:
        # The whole path and the optimum, as landscape.png draws them, stay in the background;
        # the path walked so far and where the parameters are now are drawn over them.
        surface = run_plots.landscape(record)
        self.loss, self.columns = surface.loss, columns
        whole = _whole_path(record, columns, states)
        run_plots.draw_landscape(ax, surface, [whole])
        path = whole.points
        (self.trail,) = ax.plot([], [], color="black", linewidth=1.8, zorder=7, label="path so far")
        (self.now,) = ax.plot([], [], "o", color="black", markerfacecolor="white", markersize=9,
                              markeredgewidth=2, zorder=8, label="now")
        # Below the panel: inside, it would hide part of the path.
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, fontsize="x-small", frameon=False)
        self.path, self.steps = path, [s["step"] for s in states]
        self.moving = [self.trail, self.now]

    def show(self, state: dict[str, float]) -> str:
        w, b = state["w"], state.get("b", 0.0)
        walked = self.steps.index(state["step"]) + 1
        if self.columns == ["w"]:
            ws = self.path[0][:walked]
            self.trail.set_data(ws, self.loss(ws, 0.0))
            self.now.set_data([w], [self.loss(w, 0.0)])
        else:
            self.trail.set_data(self.path[0][:walked], self.path[1][:walked])
            self.now.set_data([w], [b])
        return f"{_step_text(state)}:  L = {number(float(self.loss(w, b)))}"


def _whole_path(record: RunRecord, columns: list[str], states: list[dict[str, float]]) -> Any:
    """The path through the animated states, drawn faintly behind the path so far."""
    diverged = (record.summary.get("divergence") or {}).get("step")
    return run_plots.Descent("whole path", _path(states, columns), False, "tab:red", diverged)


def _path(states: list[dict[str, float]], columns: list[str]) -> list[Any]:
    """Each parameter's values along the states, as numpy arrays."""
    import numpy as np

    return [np.array([s[c] for s in states]) for c in columns]


class _LossCurve:
    """No landscape: the logged loss against the step, with the frame's step marked."""

    def __init__(self, ax: Any, record: RunRecord, why: str) -> None:
        steps, losses = positive(record.metrics["step"], record.metrics["loss"])
        ax.plot(steps, losses, color="tab:blue", linewidth=1, alpha=0.35, label="loss of each logged step")
        (self.trail,) = ax.plot([], [], color="tab:blue", linewidth=2)
        (self.now,) = ax.plot([], [], "o", color="black", markerfacecolor="white", markersize=8,
                              markeredgewidth=2, label="now")
        self.steps, self.losses = steps, losses
        self.moving = [self.trail, self.now]
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("step (log scale)")
        ax.set_ylabel("loss")
        ax.set_title(f"loss ({why})", fontsize="medium")
        ax.legend(loc="upper right", fontsize="small")
        ax.grid(True, which="both", alpha=0.3)

    def show(self, state: dict[str, float]) -> str:
        kept = [i for i, s in enumerate(self.steps) if s <= state["step"]]
        self.trail.set_data([self.steps[i] for i in kept], [self.losses[i] for i in kept])
        if kept:
            self.now.set_data([self.steps[kept[-1]]], [self.losses[kept[-1]]])
            return f"{_step_text(state)}:  loss {number(self.losses[kept[-1]])}"
        self.now.set_data([], [])
        return _step_text(state)


# --------------------------------------------------------------------------- the file


def _write_gif(images: list[Any], path: Path, fps: float) -> None:
    """Write the frames with one shared palette; the last frame is held a while."""
    from PIL import Image

    # The palette comes from the first and last frames together, which between them hold
    # every colour the figure uses.
    first, last = images[0], images[-1]
    both = Image.new("RGB", (first.width, first.height * 2))
    both.paste(first, (0, 0))
    both.paste(last, (0, first.height))
    palette = both.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    frames = [image.quantize(palette=palette, dither=Image.Dither.NONE) for image in images]
    delay = round(1000 / fps)
    durations = [delay] * (len(frames) - 1) + [max(delay, int(HOLD_LAST * 1000))]
    try:
        write_file(path, lambda fh: frames[0].save(fh, format="GIF", save_all=True, append_images=frames[1:],
                                                   duration=durations, loop=0, disposal=1))
    except OSError as exc:
        raise unwritable(path, exc, "choose another --out") from None
