"""The figures of a classifier, drawn from its run directory alone (no torch).

    boundary.png   two features: the predicted probability over the plane (boundary.csv),
                   the decision boundary, every sample coloured by its class, the
                   misclassified ringed, training and validation samples told apart
    confusion.png  how many samples of each class were predicted as each class, per split

A classifier's run says what it is in summary.json's `task` record: its classes, in the
order of predict's columns, and whether those columns are probabilities or scores.
"""

from __future__ import annotations

from typing import Any

from bpcli.plots.common import drawable, figure, finish, number, readable, title, title_size
from bpcli.rundir.run import RunRecord


def classifier(record: RunRecord) -> dict[str, Any] | None:
    """summary.json's task record of a classifier (its classes, …), or None for any other run."""
    task = record.summary.get("task") or {}
    return task if task.get("type") == "classification" and task.get("classes") else None


def percent(value: float) -> str:
    """A share as a reader writes it: 97.5 %, 100 %, '—' when unknown."""
    text = number(100 * value, 3) if isinstance(value, (int, float)) else "—"
    return text if text == "—" else f"{text} %"


def class_colours(count: int) -> list[Any]:
    """Each class's colour: blue and red for two classes (the ends of the probability map),
    tab10's (tab20's beyond ten classes) for more."""
    from matplotlib import colormaps

    if count == 2:
        return ["tab:blue", "tab:red"]
    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return [palette(i % palette.N) for i in range(count)]


def short(name: str, most: int = 18) -> str:
    """A class name for a legend or an axis: cut in its middle beyond `most` characters."""
    name, half = readable(name), most // 2  # a name no font here draws: its code points
    return name if len(name) <= most else f"{name[:half - 1]}…{name[-half:]}"


def margins(p: Any) -> Any:
    """p[…, c] − max over the other classes of p[…, j], for each class c: positive where c is
    the predicted class, 0 on its border. Two classes need only c = 1 (p₁ − p₀ = 0 is P = 0.5)."""
    import numpy as np

    if p.shape[-1] == 2:
        return (p[..., 1] - p[..., 0])[..., None]
    out = np.empty_like(p)
    for c in range(p.shape[-1]):
        out[..., c] = p[..., c] - np.delete(p, c, axis=-1).max(-1)
    return out


# --------------------------------------------------------------------------- boundary.png


def boundary_plot(record: RunRecord) -> tuple[str, Any]:
    """The decision boundary of a two-feature classifier over its samples; None without boundary.csv."""
    import numpy as np

    task = classifier(record)
    grid = record.boundary
    if task is None or grid is None:
        return "boundary", None
    classes = [str(c) for c in task["classes"]]
    columns = [name for name in grid if name.startswith("p[")]
    if len(columns) != len(classes):
        return "boundary", None
    x1, x2 = np.array(grid["x1"]), np.array(grid["x2"])
    side = int(np.argmax(x2 != x2[0])) or len(x2)  # x1 varies fastest: `side` points to a row
    shape = (len(x1) // side, side)
    p = np.stack([np.array(grid[c]).reshape(shape) for c in columns], axis=-1)  # (rows, cols, C)
    if not np.isfinite(p).any():
        return "boundary", None  # a diverged run: nothing to colour
    fig, axes = figure(size=(7.5, 7.2))
    ax = axes[0][0]
    xs, ys = x1[:side], x2[::side]
    extent = [xs[0], xs[-1], ys[0], ys[-1]]
    colours = class_colours(len(classes))
    _draw_map(ax, p, extent, classes, colours, task.get("probabilities", True))
    border = _draw_border(ax, xs, ys, p, classes, task.get("probabilities", True))
    handles = [*_draw_samples(ax, record, classes, colours), border]
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    features = record.summary.get("features") or ["x[0]", "x[1]"]
    scaled = " (standardised)" if (record.summary.get("scaling") or {}).get("x_std") is not None else ""
    finish(ax, f"{short(str(features[0]), 30)}{scaled}", f"{short(str(features[1]), 30)}{scaled}",
           title(record, "Decision boundary"))
    ax.grid(False)
    handles = [h for h in handles if h is not None]
    # The legend under the panel, where it hides no sample; the colour bar's label inside the figure.
    rows = -(-len(handles) // 2)
    fig.subplots_adjust(bottom=(0.75 + 0.23 * rows) / 7.2, right=1 - 0.75 / 7.5)
    fig.legend(handles=handles, loc="lower center", ncols=2, fontsize="small", bbox_to_anchor=(0.5, 0.01),
               frameon=False)
    return "boundary", fig


def _draw_map(ax: Any, p: Any, extent: list[float], classes: list[str], colours: list[Any],
              probabilities: bool) -> None:
    """The plane coloured by the model's output, with a colour bar saying what the colour is."""
    import numpy as np
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LinearSegmentedColormap, Normalize

    # Pixel centres on the grid's points: the image reaches half a cell beyond them.
    dx = (extent[1] - extent[0]) / max(p.shape[1] - 1, 1) / 2
    dy = (extent[3] - extent[2]) / max(p.shape[0] - 1, 1) / 2
    box = [extent[0] - dx, extent[1] + dx, extent[2] - dy, extent[3] + dy]
    if len(classes) == 2:
        light = two_class_map()
        if probabilities:
            value, norm = p[..., 1], Normalize(0.0, 1.0)
            label = f"predicted probability P({short(classes[1])})"
        else:  # scores (a hinge loss): their difference, 0 on the boundary, not a probability
            value = p[..., 1] - p[..., 0]
            top = float(np.nanmax(np.abs(value))) or 1.0
            norm = Normalize(-top, top)
            label = f"score({short(classes[1])}) − score({short(classes[0])})"
        image = ax.imshow(value, origin="lower", extent=box, aspect="auto", cmap=light, norm=norm,
                          interpolation="nearest")
        ax.figure.colorbar(image, ax=ax, label=label, fraction=0.05, pad=0.03)
        return
    ax.imshow(class_shading(p, colours, probabilities), origin="lower", extent=box, aspect="auto",
              interpolation="nearest")
    if probabilities:
        greys = LinearSegmentedColormap.from_list("depth", [(1 - 0.12 * 0.6,) * 3, (1 - 0.62 * 0.6,) * 3])
        shade = ScalarMappable(Normalize(1 / len(classes), 1.0), greys)
        ax.figure.colorbar(shade, ax=ax, fraction=0.05, pad=0.03,
                           label="probability of the most probable class (colour depth)")


def two_class_map() -> Any:
    """Blue (the first class) to red (the second) through white at P = 0.5, lightened so that
    samples in the same two colours stand out on it."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.colors import LinearSegmentedColormap

    base = colormaps["RdBu_r"](np.linspace(0, 1, 256))
    return LinearSegmentedColormap.from_list("light RdBu_r", 1 - 0.45 * (1 - base[:, :3]))  # 55 % white


def class_shading(p: Any, colours: list[Any], probabilities: bool) -> Any:
    """More than two classes: each point of the plane (…, C) as RGB in the colour of its most
    probable class, the deeper the more probable (from 1/C, a guess, to 1, certain)."""
    import numpy as np
    from matplotlib.colors import to_rgb

    best = np.nan_to_num(p, nan=-np.inf).argmax(-1)
    rgb = np.array([to_rgb(c) for c in colours])[best]
    if probabilities:
        chance = 1 / p.shape[-1]
        depth = np.clip((np.nan_to_num(p, nan=chance).max(-1) - chance) / (1 - chance), 0, 1)
    else:
        depth = np.full(best.shape, 0.6)  # scores say which class, not how sure
    depth = 0.12 + 0.5 * depth  # never full colour: the samples stay visible
    return 1 - depth[..., None] * (1 - rgb)


def _draw_border(ax: Any, xs: Any, ys: Any, p: Any, classes: list[str], probabilities: bool) -> Any:
    """The decision boundary (two classes) or the borders between classes' regions; its legend handle."""
    import numpy as np
    from matplotlib.lines import Line2D

    drawn = False
    for margin in np.moveaxis(margins(p), -1, 0):
        finite = margin[np.isfinite(margin)]
        if finite.size and finite.min() < 0 < finite.max():  # the class's region has a border here
            ax.contour(xs, ys, margin, levels=[0.0], colors="black", linewidths=1.6)
            drawn = True
    if not drawn:
        return None
    if len(classes) > 2:
        what = "borders between the predicted classes"
    elif probabilities:
        what = f"decision boundary, P({short(classes[1])}) = 0.5"
    else:
        what = "decision boundary, equal scores"
    return Line2D([], [], color="black", linewidth=1.6, label=what)


def samples(record: RunRecord, classes: list[str]) -> list[tuple[str, list[float], int, int | None]]:
    """(split, features, class, predicted class or None) of every sample the run directory
    places: predictions.csv's rows where they hold the features, else data.csv's (training)
    rows, with the predicted class of the same row of predictions.csv where it has one."""
    index = {name: i for i, name in enumerate(classes)}
    rows = record.classified or []
    if rows and all(r.x is not None and len(r.x) == 2 for r in rows):
        return [(r.split, r.x, index[r.y], index.get(r.y_pred)) for r in rows if r.y in index]
    train = [r for r in rows if r.split == "train"]
    predicted = [index.get(r.y_pred) for r in train] if len(train) == len(record.data_y) else [None] * len(record.data_y)
    return [("train", x, int(y), guess) for x, y, guess in zip(record.data_x, record.data_y, predicted)
            if 0 <= y < len(classes) and y == int(y)]


SPLITS = {"train": ("o", "training"), "val": ("^", "validation")}
"""Each split's marker and name."""


def _draw_samples(ax: Any, record: RunRecord, classes: list[str], colours: list[Any]) -> list[Any]:
    """Every sample in its class's colour, shaped by its split; a ring round each misclassified
    one. The legend handles: the classes, the splits (with their accuracy), the misclassified."""
    from matplotlib.lines import Line2D

    points = samples(record, classes)
    size = max(6.0, min(32.0, 6000 / max(len(points), 1)))
    handles = []
    for c, (name, colour) in enumerate(zip(classes, colours)):
        count = sum(1 for _, _, y, _ in points if y == c)
        handles.append(Line2D([], [], linestyle="", marker="s", markersize=8, color=colour,
                              label=f"class {short(name)} ({count})"))
    accuracy = record.summary.get("accuracy") or {}
    for split, (marker, name) in SPLITS.items():
        mine = [(x, y) for s, x, y, _ in points if s == split]
        if not mine:
            continue
        ax.scatter([x[0] for x, _ in mine], [x[1] for x, _ in mine], c=[colours[y] for _, y in mine],
                   marker=marker, s=size, edgecolor="black", linewidth=0.5, zorder=3)
        right = f", accuracy {percent(accuracy[split])}" if split in accuracy else ""
        handles.append(Line2D([], [], linestyle="", marker=marker, markersize=7, markerfacecolor="0.8",
                              markeredgecolor="black", label=f"{name} samples ({len(mine)}){right}"))
    wrong = [x for _, x, y, guess in points if guess is not None and guess != y]
    if wrong:
        ax.scatter([x[0] for x in wrong], [x[1] for x in wrong], marker="o", s=size * 3.5, facecolor="none",
                   edgecolor="black", linewidth=1.4, zorder=4, label="misclassified")
        handles.append(Line2D([], [], linestyle="", marker="o", markersize=10, markerfacecolor="none",
                              markeredgecolor="black", markeredgewidth=1.4, label=f"misclassified ({len(wrong)})"))
    elif any(guess is not None for *_, guess in points):
        handles.append(Line2D([], [], linestyle="", label="no sample misclassified"))
    return handles


# --------------------------------------------------------------------------- confusion.png


def confusion_plot(record: RunRecord) -> tuple[str, Any]:
    """The confusion matrix of each split (rows: the true class, columns: the predicted one)."""
    import numpy as np

    task = classifier(record)
    matrices = record.summary.get("confusion") or {}
    splits = [s for s in SPLITS if isinstance(matrices.get(s), list)]
    if task is None or not splits:
        return "confusion", None
    classes = [short(str(c), 12) for c in task["classes"]]
    cells = len(classes)
    panel = max(3.4, 0.5 * cells + 1.4)  # inches a side
    longest = max(len(c) for c in classes)
    left = 0.75 + 0.075 * longest  # room for the class names and "true class"
    width = left + panel * len(splits) + 0.55 * (len(splits) - 1) + 0.3
    height = panel + 1.2 + 0.07 * longest
    fig, axes = figure(1, len(splits), size=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - 0.3 / width, bottom=(0.55 + 0.07 * longest) / height,
                        top=1 - 0.7 / height, wspace=0.55 * len(splits) / panel)
    accuracy = record.summary.get("accuracy") or {}
    font = "medium" if cells <= 5 else ("small" if cells <= 10 else "xx-small")
    for i, (ax, split) in enumerate(zip(axes[0], splits)):
        counts = np.array(matrices[split], dtype=float)
        ax.imshow(counts, cmap="Blues", vmin=0, vmax=max(counts.max(), 1), aspect="equal")
        for (row, col), value in np.ndenumerate(counts):
            dark = value > 0.55 * counts.max()
            ax.text(col, row, f"{int(value)}", ha="center", va="center", fontsize=font,
                    color="white" if dark else "black", fontweight="bold" if row == col else "normal")
        slanted = 0.09 * longest > 0.9 * panel / cells  # names wider than their column
        ax.set_xticks(range(cells), classes, rotation=45 if slanted else 0, ha="right" if slanted else "center")
        ax.set_yticks(range(cells), classes if i == 0 else [""] * cells)
        ax.set_xlabel("predicted class")
        if i == 0:
            ax.set_ylabel("true class")
        right = f": accuracy {percent(accuracy[split])}" if split in accuracy else ""
        ax.set_title(f"{SPLITS[split][1]} ({int(counts.sum())} samples){right}", fontsize="medium")
    heading = title(record, "Confusion matrix")
    fig.suptitle(heading, y=1 - 0.12 / height, fontsize=title_size(heading, width))
    return "confusion", fig


# --------------------------------------------------------------------------- accuracy


def draw_accuracy(ax: Any, records: list[tuple[RunRecord, Any, str | None]]) -> None:
    """Training accuracy (solid) and validation accuracy (dashed) per logged step, in %, of
    each (record, colour, label); label None names the lines 'training' and 'validation'."""
    from matplotlib.ticker import FuncFormatter

    for record, colour, label in records:
        steps = record.metrics.get("step", [])
        for column, style, name in (("accuracy", "-", "training accuracy"), ("val_accuracy", "--",
                                                                               "validation accuracy")):
            if column not in record.metrics:
                continue
            xs, ys = drawable(steps, [100 * v for v in record.metrics[column]])
            few = len(xs) <= 20
            own = label if column == "accuracy" else None
            ax.plot(xs, ys, color=colour if label is not None else ("tab:blue" if style == "-" else "tab:red"),
                    linestyle=style, linewidth=1.3, marker="o" if few and label is None else None, markersize=4,
                    label=name if label is None else (own or "_nolegend_"))
    ax.set_ylim(-3, 103)
    ax.set_yticks([0, 25, 50, 75, 100])
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g} %"))
