"""What a kind's outputs mean: numbers fitted by least squares, or the classes of a classifier.

A trainer's task is what the modules that serve every kind ask, instead of assuming a
mean squared error and R²: the loss's name, the quality metrics and how they are
measured, the extra columns of metrics.csv, the files a finished run writes besides the
common ones, the figures that draw it, and what the maths says about its optimum and its
largest stable learning rate. A kind declares its task (`task_of` gives a trainer's);
recording, the results table and the plots read it, the plots through the `task` record
in summary.json, so they never import torch.

    Regression      mean squared error, R², the fitted curve or predicted-vs-actual
    Classification  a cross-entropy (or hinge) loss, accuracy and the confusion matrix,
                    the decision boundary of two-feature data
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

import torch

from bpcli.data.dataset import target_scaled, to_original_units
from bpcli.kinds.base import LeastSquares, Tensors

if TYPE_CHECKING:
    from bpcli.analysis import Conditioning, Optimum, StableLR
    from bpcli.data.dataset import Dataset

MAX_DATA_ROWS = 100_000  # data.csv and predictions.csv keep at most this many rows
BOUNDARY_GRID = 120  # boundary.csv: the plane between the data's extremes, this many points a side


def sample_rows(n: int) -> torch.Tensor | None:
    """Evenly spaced row indices when n is over MAX_DATA_ROWS (no random draw), else None."""
    return torch.linspace(0, n - 1, MAX_DATA_ROWS).long() if n > MAX_DATA_ROWS else None


class Task(Protocol):
    """What a trainer's outputs mean, for the modules that serve every kind."""

    name: str
    """`regression` or `classification`."""
    loss_name: str
    """The training loss in words, e.g. "mean squared error"."""
    metrics: tuple[str, ...]
    """The quality metrics summary.json reports per split (e.g. r2, accuracy)."""
    figures: tuple[str, ...]
    """The figures of a run, by name, in the order they are drawn (see bpcli.plots.run)."""

    def record(self) -> dict[str, Any]:
        """summary.json's `task`: everything above, and the classes of a classifier."""
        ...

    logs_training_split: bool
    """Whether `logged` measures the whole training split at every logged step."""

    def columns(self, validation: bool) -> list[str]:
        """The columns metrics.csv logs after the parameters and gradients."""
        ...

    def logged(self, trainer: Any, splits: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
        """The values of `columns` at the trainer's current parameters; `splits` holds the
        validation rows (and the training rows, if the task logs them) on the trainer's device."""
        ...

    def optimum(self, data: Dataset) -> Optimum | str | None:
        """The optimum of the training loss solved from the data as read, where the maths gives
        one; a str says why the maths proves there is none (None: nothing is known)."""
        ...

    def stable_lr(self, data: Dataset, train: Any) -> StableLR | None:
        """The largest learning rate at which the configured optimizer converges, where known."""
        ...

    def conditioning(self, data: Dataset, train: Any) -> Conditioning | None:
        """κ of the loss's Hessian and the rate it predicts, where the loss is a quadratic."""
        ...

    def quality(self, trainer: Any, data: Dataset, best: Optimum | None) -> dict[str, Any]:
        """summary.json's quality metrics of the trained model (and of the optimum) per split."""
        ...

    def write_files(self, run_dir: Path, trainer: Any, data: Dataset, predict_grid: list[float]) -> None:
        """The files a finished run writes for its figures (curve.csv, predictions.csv, …)."""
        ...


def task_of(trainer: Any) -> Task:
    """A trainer's task: the one its kind declares, else least-squares regression."""
    declared = getattr(trainer, "task", None)
    return declared if declared is not None else Regression(getattr(trainer, "least_squares", None))


def no_grad_predict(trainer: Any, x: torch.Tensor) -> torch.Tensor:
    """The first member's predictions for inputs x, on the CPU."""
    with torch.no_grad():
        return trainer.predict(x)[0].cpu()


# --------------------------------------------------------------------------- regression


@dataclass(frozen=True)
class Regression:
    """Least squares, or any loss whose prediction is a number compared with y by its square."""

    least_squares: LeastSquares | None
    """Set for linear least-squares kinds (closed-form optimum, stability bound, κ)."""
    name: str = "regression"
    loss_name: str = "mean squared error"
    metrics: tuple[str, ...] = ("r2",)
    figures: tuple[str, ...] = ("loss", "fit", "params", "landscape", "residuals")
    logs_training_split: bool = False

    def record(self) -> dict[str, Any]:
        return {"type": self.name, "loss": self.loss_name, "metrics": list(self.metrics),
                "figures": list(self.figures)}

    def columns(self, validation: bool) -> list[str]:
        return ["val_loss"] if validation else []

    def logged(self, trainer: Any, splits: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
        if "val" not in splits:
            return []
        x, y = splits["val"]
        with torch.no_grad():  # mean((ŷ − y)²) on the held-out rows
            return [float((trainer.predict(x)[0] - y).pow(2).mean().item())]

    def optimum(self, data: Dataset) -> Optimum | None:
        from bpcli import analysis

        return analysis.optimum(data, self.least_squares) if self.least_squares is not None else None

    def stable_lr(self, data: Dataset, train: Any) -> StableLR | None:
        from bpcli import analysis

        return analysis.stable_lr(data, self.least_squares, train) if self.least_squares is not None else None

    def conditioning(self, data: Dataset, train: Any) -> Conditioning | None:
        from bpcli import analysis

        return analysis.conditioning(data, self.least_squares, train) if self.least_squares is not None else None

    def quality(self, trainer: Any, data: Dataset, best: Optimum | None) -> dict[str, Any]:
        """R² of the trained model (and of the closed-form optimum) on training and validation data."""
        from bpcli import analysis

        centred = self.least_squares is None or self.least_squares.bias  # no intercept: measured against ŷ = 0
        quality: dict[str, Any] = {"r2": {}, "r2_definition": analysis.R2_DEFINITIONS[centred]}
        for split, (x, y) in data.splits().items():
            predicted = no_grad_predict(trainer, x)
            if torch.isfinite(predicted).all():
                quality["r2"][split] = analysis.r2(y, predicted, centred)
            undefined = analysis.r2_undefined(y, centred)
            if undefined:
                quality.setdefault("r2_undefined", {})[split] = undefined
            if best is not None:
                quality.setdefault("optimum_r2", {})[split] = analysis.r2(y, analysis.predict(best, x), centred)
        return quality

    def write_files(self, run_dir: Path, trainer: Any, data: Dataset, predict_grid: list[float]) -> None:
        if data.x.shape[1] == 1:
            _write_curve(run_dir, trainer, data, predict_grid)
        else:
            _write_fitted(run_dir, trainer, data)


def _write_fitted(run_dir: Path, trainer: Any, data: Dataset) -> None:
    """predictions.csv: every sample's target and prediction, for the predicted-vs-actual plot."""
    from bpcli.rundir import run as files

    rows = []
    scaled = target_scaled(data)
    for split, (x, y) in data.splits().items():
        sample = sample_rows(len(y))
        x, y = (x, y) if sample is None else (x[sample], y[sample])
        predicted = no_grad_predict(trainer, x)
        columns = [y.tolist(), predicted.tolist()]
        if scaled:  # the same in the target's original units: y as read, ŷ computed in float64
            y_read = data.as_read(split)[1]
            columns += [(y_read if sample is None else y_read[sample]).tolist(),
                        to_original_units(data, predicted.to(torch.float64)).tolist()]
        rows.append((split, *columns))
    files.write_predictions(run_dir, rows, original_units=scaled)


def _write_curve(run_dir: Path, trainer: Any, data: Dataset, shown: list[float]) -> None:
    """curve.csv: the model's predictions on a grid across the data (and the inputs it is
    asked to predict at), for the fit plot."""
    from bpcli.rundir import run as files

    grid = curve_grid(data, shown)
    files.write_curve(run_dir, grid.tolist(), no_grad_predict(trainer, grid[:, None]).tolist())


def curve_grid(data: Dataset, shown: list[float], points: int = 200) -> torch.Tensor:
    """The inputs curve.csv (and curves.csv) predict at: evenly across the data and the
    inputs the run is asked to predict at."""
    x = data.x
    low, high = min([float(x.min()), *shown]), max([float(x.max()), *shown])
    return torch.linspace(low, high, points, dtype=x.dtype)


# --------------------------------------------------------------------------- classification


@dataclass(frozen=True)
class Classification:
    """A classifier: y holds each sample's class index 0 … C − 1 (as a float of the run's
    dtype), and the trainer's `predict(x)` gives every class's probability, (K, M, C).

    A kind whose outputs are scores rather than probabilities (a hinge loss) says so with
    `probabilities=False`; its predict still gives C values per sample whose largest is the
    predicted class. `optimum` and `stable_lr` are the kind's own maths, where it has any.
    """

    classes: tuple[str, ...]
    loss_name: str
    probabilities: bool = True
    solve: Callable[[Dataset], Optimum | str | None] | None = None
    """The optimum of the training loss (e.g. Newton's method for logistic regression), or
    why none exists (e.g. "the classes are linearly separable: …")."""
    bound: Callable[[Dataset, Any], StableLR | None] | None = None
    """The stable-lr bound of the configured optimizer on this data, where one is known."""
    name: str = "classification"
    metrics: tuple[str, ...] = ("accuracy",)
    figures: tuple[str, ...] = ("loss", "boundary", "confusion", "params")
    logs_training_split: bool = True
    extra: dict[str, Any] = field(default_factory=dict)
    """More for summary.json's `task` (e.g. what an optimum means for this kind)."""

    def record(self) -> dict[str, Any]:
        return {"type": self.name, "loss": self.loss_name, "metrics": list(self.metrics),
                "figures": list(self.figures), "classes": list(self.classes),
                "probabilities": self.probabilities, **self.extra}

    def columns(self, validation: bool) -> list[str]:
        return ["accuracy"] + (["val_loss", "val_accuracy"] if validation else [])

    def logged(self, trainer: Any, splits: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> list[float]:
        with torch.no_grad():
            values = [accuracy(trainer.predict(splits["train"][0])[0], splits["train"][1])]
            if "val" in splits:
                x, y = splits["val"]
                loss = trainer.loss(trainer.params(), {"x": x[None], "y": y[None]})[0]  # the training loss's own formula
                values += [float(loss.item()), accuracy(trainer.predict(x)[0], y)]
        return values

    def optimum(self, data: Dataset) -> Optimum | str | None:
        return self.solve(data) if self.solve is not None else None

    def stable_lr(self, data: Dataset, train: Any) -> StableLR | None:
        return self.bound(data, train) if self.bound is not None else None

    def conditioning(self, data: Dataset, train: Any) -> Conditioning | None:
        return None

    def quality(self, trainer: Any, data: Dataset, best: Optimum | None) -> dict[str, Any]:
        """Accuracy and the confusion matrix (rows: true class, columns: predicted) per split."""
        quality: dict[str, Any] = {"accuracy": {}, "confusion": {}}
        for split, (x, y) in data.splits().items():
            scores = no_grad_predict(trainer, x)
            if torch.isfinite(scores).all():
                quality["accuracy"][split] = accuracy(scores, y)
                quality["confusion"][split] = confusion(scores, y, len(self.classes))
        return quality

    def write_files(self, run_dir: Path, trainer: Any, data: Dataset, predict_grid: list[float]) -> None:
        _write_classified(run_dir, trainer, data, self.classes)
        if data.x.shape[1] == 2:
            _write_boundary(run_dir, trainer, data, self.classes)


def accuracy(scores: torch.Tensor, y: torch.Tensor) -> float:
    """The share of samples whose most probable class is their own: scores (M, C), y (M,)."""
    with torch.no_grad():
        predicted = scores.argmax(-1).to(y.device)
        return float((predicted == y.long()).to(torch.float64).mean().item()) if len(y) else float("nan")


def confusion(scores: torch.Tensor, y: torch.Tensor, classes: int) -> list[list[int]]:
    """counts[true][predicted]: how many samples of each class were predicted as each class."""
    predicted = scores.argmax(-1).cpu()
    counts = torch.zeros(classes, classes, dtype=torch.long)
    counts.index_put_((y.long().cpu(), predicted), torch.ones_like(predicted), accumulate=True)
    return counts.tolist()


def _write_classified(run_dir: Path, trainer: Any, data: Dataset, classes: tuple[str, ...]) -> None:
    """predictions.csv: every sample's class, predicted class and each class's probability,
    then its features (named as in data.csv), which place validation samples on the boundary figure."""
    from bpcli.rundir.files import write_text

    features = data.x.shape[1]
    names = ["x"] if features == 1 else [f"x[{i}]" for i in range(features)]
    lines = [",".join(["split", "y", "y_pred", *(f"p[{name}]" for name in classes), *names])]
    for split, (x, y) in data.splits().items():
        sample = sample_rows(len(y))
        x, y = (x, y) if sample is None else (x[sample], y[sample])
        scores = no_grad_predict(trainer, x)
        for label, row, point in zip(y.long().tolist(), scores.tolist(), x.tolist()):
            best = max(range(len(row)), key=row.__getitem__)
            lines.append(",".join([split, _csv_cell(classes[label]), _csv_cell(classes[best]), *map(repr, row),
                                   *map(repr, point)]))
    write_text(run_dir / "predictions.csv", "\n".join(lines) + "\n")


def _csv_cell(text: str) -> str:
    """A class name as one CSV cell (quoted when it holds a comma, a quote or a line break)."""
    if any(c in text for c in ',"\n\r'):
        return '"' + text.replace('"', '""') + '"'
    return text


def _write_boundary(run_dir: Path, trainer: Any, data: Dataset, classes: tuple[str, ...]) -> None:
    """boundary.csv: each class's probability on a grid over the plane of two features, a
    margin around every sample (training and validation), for the decision-boundary figure."""
    from bpcli.rundir.files import write_text

    points = torch.cat([x for x, _ in data.splits().values()]).to(torch.float64)
    low, high = points.min(0).values, points.max(0).values
    margin = (high - low).clamp_min(1e-12) * 0.1
    axes = [torch.linspace(float(low[i] - margin[i]), float(high[i] + margin[i]), BOUNDARY_GRID, dtype=torch.float64)
            for i in range(2)]
    x1, x2 = torch.meshgrid(axes[0], axes[1], indexing="xy")
    grid = torch.stack([x1.reshape(-1), x2.reshape(-1)], dim=1)
    scores = no_grad_predict(trainer, grid.to(data.x.dtype))
    lines = [",".join(["x1", "x2", *(f"p[{name}]" for name in classes)])]
    lines += [",".join(map(repr, [*point, *row])) for point, row in zip(grid.tolist(), scores.tolist())]
    write_text(run_dir / "boundary.csv", "\n".join(lines) + "\n")


def class_names(data: Dataset) -> tuple[str, ...]:
    """The classes of classification data, in the order of their indices in y: the data's
    own names, or (for data that names none) the indices 0 … C − 1 that y holds."""
    from bpcli.errors import DataError

    named = getattr(data, "classes", None)
    if named:
        return tuple(named)
    values = sorted(set(data.y.tolist()))
    if any(v != int(v) or v < 0 for v in values):
        raise DataError(f"data: a classifier's target holds class indices 0, 1, …, but it has the value "
                        f"{next(v for v in values if v != int(v) or v < 0):g}; give each sample its class's index")
    return tuple(str(c) for c in range(int(max(values, default=-1)) + 1))


def one_hot(y: torch.Tensor, classes: int, dtype: torch.dtype) -> torch.Tensor:
    """Y with Y[…, c] = 1 where y = c: (…,) class indices give (…, C)."""
    return torch.nn.functional.one_hot(y.long(), classes).to(dtype)


__all__ = ["Classification", "Regression", "Task", "Tensors", "accuracy", "class_names", "confusion", "one_hot",
           "task_of"]
