"""What a single run records as it trains, as callbacks of the one loop, and what it
writes when it ends.

    RunLog        each logged step as a row: history, metrics.csv, TensorBoard, the console
    Checkpoints   checkpoint.pt every train.checkpoint_every steps (and at the end)
    GradChecks    hand-derived gradients against autograd every train.check_grad_every steps
    write_outputs summary.json, curve.csv and predictions.csv once the loop is over
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch

from bpcli import analysis, schedules
from bpcli.data.dataset import original_linear_params, target_scaled, to_model_units, to_original_units
from bpcli.kinds.base import flat, whole_data_loss
from bpcli.kinds.tasks import task_of
from bpcli.loop import Callback, Divergence, Loop, Reporter
from bpcli.rundir import run as files
from bpcli.rundir.checkpoint import save_checkpoint
from bpcli.rundir.files import record, timestamp

if TYPE_CHECKING:
    from bpcli.config import Experiment
    from bpcli.build import Built

MAX_SUMMARY_VALUES = 1024  # larger tensors are summarised by shape and norm


class RunLog(Callback):
    """Each logged step as a row of metrics.csv: step, epoch, loss, parameters, gradients,
    and the distance to the optimum and the validation loss where the kind has them."""

    def __init__(self, built: Built, trainer: Any, run_dir: Path | None, summary: dict[str, Any],
                 history: list[dict[str, float]], reporter: Reporter | None,
                 tensorboard: Callable[[], Any], start: int = 0) -> None:
        self.trainer = trainer
        self.history = history
        self.reporter = reporter
        self.lr = built.config.train.lr
        sizes = {name: t[0].numel() for name, t in flat(trainer.params()).items()}
        self.columns = files.param_columns(sizes)
        self.task = task_of(trainer)
        train = built.config.train
        found = self.task.optimum(built.data)
        self.best = None if isinstance(found, str) else found
        if isinstance(found, str):  # the maths proves there is none (separable classes): say why
            summary["no_optimum"] = found
            warnings = summary.setdefault("warnings", [])
            if f"optimum: {found}" not in warnings:  # a resumed run's summary has it already
                warnings.append(f"optimum: {found}")
        self.bound = self.task.stable_lr(built.data, train)
        if self.bound is not None:
            summary.update(stable_lr=self.bound.lr, stable_lr_scope=self.bound.scope)
        if self.best is not None:
            self.columns.append("distance_to_optimum")
            summary.update(optimum={**self.best.params, "loss": self.best.loss})
            summary.update(_about_the_optimum(built, self.best))
        self.conditioning = self.task.conditioning(built.data, train)
        summary["convergence"] = _convergence_record(self.conditioning)
        splits = built.data.splits()
        # The rows the task measures at every logged step, moved to the device once.
        self.splits = {split: tuple(t.to(built.device) for t in rows) for split, rows in splits.items()
                       if split == "val" or self.task.logs_training_split}
        self.columns += self.task.columns("val" in splits)
        self.scheduled = schedules.scheduled(train)
        if self.scheduled:  # the lr each logged update used; a constant lr is summary.json's `lr`
            self.columns.append("lr")
        summary["metrics_columns"] = self.columns  # what a reader of metrics.csv checks its header against
        self.snapshots = _Snapshots.of(built, trainer, self.task, run_dir, start) if run_dir is not None else None
        self.metrics = self.board = None
        if run_dir is not None:
            self.metrics = files.MetricsWriter(run_dir / "metrics.csv", self.columns, append=start > 0)
            if built.config.log.tensorboard:
                self.board = _board(tensorboard(), run_dir, start)

    def on_log(self, loop: Loop, step: int, losses: torch.Tensor) -> None:
        if self.snapshots is not None:
            self.snapshots.take(step)
        row = self.row(step, loop.epoch(step), losses)
        self.history.append(row)
        if self.metrics is not None:
            self.metrics.write(row)
        if self.board is not None:
            _to_tensorboard(self.board, row, row.get("lr", self.lr))
        if self.reporter is not None:
            self.reporter.on_log(row)

    def row(self, step: int, epoch: int, losses: torch.Tensor) -> dict[str, float]:
        """The metrics row of a logged step; reading it back waits for the device."""
        params = flat(self.trainer.params())
        values = [v for t in params.values() for v in _logged(t[0])]
        grads = [v for t in flat(self.trainer.gradients()).values() for v in _logged(t[0])]
        extra = []
        if self.best is not None:
            extra.append(analysis.distance([v for t in params.values() for v in t[0].tolist()], self.best))
        extra += self.task.logged(self.trainer, self.splits)
        if self.scheduled:
            extra.append(current_lr(self.trainer))
        return dict(zip(self.columns, [step, epoch, losses[0].item(), *values, *grads, *extra]))

    def close(self) -> None:
        """Close metrics.csv and the TensorBoard writer."""
        if self.metrics is not None:
            self.metrics.close()
        if self.board is not None:
            self.board.close()


def current_lr(trainer: Any) -> float:
    """The lr of the trainer's last update, as its optimizer holds it on the device: bpcli's
    Optimizer keeps a schedule's lr per member, torch.optim in its parameter group."""
    optimizer = trainer.optimizer
    lr = getattr(optimizer, "lr", None)
    if lr is None:
        lr = optimizer.param_groups[0]["lr"]
    return float(lr.reshape(-1)[0]) if isinstance(lr, torch.Tensor) else float(lr)
SNAPSHOTS = 8
"""curves.csv holds a nonlinear regression's fitted curve at up to this many logged steps."""


class _Snapshots:
    """A nonlinear regression's fitted curve (on curve.csv's grid) and the loss of the whole
    data at step 0 and at a few logged steps spread evenly in log(step), where the curve
    changes most; for params.png, which draws them in place of the layers' norms."""

    def __init__(self, built: Built, trainer: Any, grid: torch.Tensor, steps: set[int],
                 taken: list[tuple[int, float, list[float]]]) -> None:
        # The model predicts as curve.csv's does (built.trainer); the loss is the loop's trainer's.
        self.model, self.trainer, self.grid, self.steps = built.trainer, trainer, grid, steps
        self.taken = taken
        if not taken:
            self.take(0)

    @classmethod
    def of(cls, built: Built, trainer: Any, task: Any, run_dir: Path, start: int) -> _Snapshots | None:
        """The snapshots a run takes (a resumed one after those it took before it stopped);
        None unless it fits a curve of one input with no closed form."""
        from bpcli.kinds.tasks import Regression, curve_grid

        if not isinstance(task, Regression) or task.least_squares is not None or built.data.x.shape[1] != 1:
            return None
        config = built.config
        total, every = config.train.epochs * trainer.steps_per_epoch, config.train.log_every
        logged = sorted({1, total, *range(every, total + 1, every)})
        wanted = [round(total ** (i / (SNAPSHOTS - 2))) for i in range(SNAPSHOTS - 1)]  # 1 … total
        steps = {min(logged, key=lambda s: abs(math.log(s) - math.log(w))) for w in wanted}
        shown = [p for p in config.predict if not isinstance(p, list)] if built.data.scaling is None else []
        taken = [t for t in files.read_curves(run_dir) if t[0] <= start] if start else []
        if start and not taken:
            return None  # a run from before curves.csv: no curve of its start to draw from
        return cls(built, trainer, curve_grid(built.data, shown), steps, taken)

    def take(self, step: int) -> None:
        if (step == 0 or step in self.steps) and step not in {t[0] for t in self.taken}:
            from bpcli.kinds.tasks import no_grad_predict

            predicted = no_grad_predict(self.model, self.grid[:, None])
            self.taken.append((step, float(whole_data_loss(self.trainer)[0]), predicted.tolist()))

    def write(self, run_dir: Path) -> None:
        files.write_curves(run_dir, self.grid.tolist(), self.taken)


def _logged(values: torch.Tensor) -> list[float]:
    # Small tensors are logged value by value, large ones (MLP layers) by their L2 norm.
    if values.numel() <= files.MAX_LOGGED_VALUES:
        return [float(v) for v in values.tolist()]
    norm = float(values.norm().item())
    if not math.isfinite(norm):  # finite values whose squares overflow the dtype: measure in float64
        norm = float(values.double().norm().item())
    return [norm]


def _board(writer_class: Any, run_dir: Path, start: int) -> Any:
    """TensorBoard's writer on the run directory; the event file it opens (named by the
    host, the time and the process) is listed in the run's manifest, so --force knows it."""
    before = set(os.listdir(run_dir))
    board = writer_class(log_dir=str(run_dir), purge_step=start + 1 if start else None)
    board.flush()
    record(run_dir, *(name for name in os.listdir(run_dir) if name not in before and not name.startswith(".")))
    return board


def _to_tensorboard(board: Any, row: dict[str, float], lr: float) -> None:
    """One logged row as TensorBoard scalars: loss/…, params/…, grads/…, and the lr."""
    step = int(row["step"])
    for name, value in row.items():
        if name in ("step", "epoch", "lr"):
            continue
        if name.startswith("grad_"):
            tag = f"grads/{name[len('grad_'):]}"
        elif name in ("loss", "val_loss"):
            tag = f"loss/{name}"
        elif name in ("accuracy", "val_accuracy"):
            tag = f"accuracy/{name}"
        elif name == "distance_to_optimum":
            tag = name
        else:
            tag = f"params/{name}"
        board.add_scalar(tag, value, step)
    board.add_scalar("lr", lr, step)


class Checkpoints(Callback):
    """checkpoint.pt every `train.checkpoint_every` steps, and on demand (`save`), for a run
    or a sweep: the trainer's state, the divergence rule's, and what `extra` adds."""

    def __init__(self, directory: Path | None, trainer: Any, config: Experiment, generator: torch.Generator,
                 digest: str, divergence: Divergence, extra: Callable[[], dict[str, Any]] = dict) -> None:
        self.directory = directory
        self.trainer = trainer
        self.generator = generator
        self.config = config
        self.every = config.train.checkpoint_every
        self.digest = digest
        self.divergence = divergence
        self.extra = extra
        self.last = 0
        """The step of the last checkpoint written (0: none)."""

    def after_step(self, loop: Loop, step: int) -> None:
        # Never a state gone bad unnoticed (between logged steps): the last good checkpoint stays.
        if self.every and step % self.every == 0 and step != loop.total and self.divergence.kept_finite():
            self.save(step)

    def save(self, step: int, state: dict[str, Any] | None = None) -> None:
        """Write checkpoint.pt for the state after `step`: the trainer's, or `state` if given
        (nothing without a directory)."""
        if self.directory is not None:
            save_checkpoint(self.directory, step=step,
                            trainer_state=self.trainer.state_dict() if state is None else state,
                            generator=self.generator, config=self.config, data_digest=self.digest,
                            extra={"divergence": self.divergence.snapshot(), **self.extra()})
            self.last = step


class GradChecks(Callback):
    """Every `every` steps, the step's gradient three ways (see bpcli.gradcheck)."""

    def __init__(self, every: int) -> None:
        self.every = every
        self.checks: list[Any] = []

    def before_step(self, loop: Loop, step: int, index: int) -> None:
        if self.every and (step - 1) % self.every == 0:
            from bpcli.gradcheck import compare_gradients

            self.checks += compare_gradients(loop.trainer, index, step)


def final_values(tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Parameters for summary.json: every value, or shape and norm for a large tensor."""
    named: dict[str, Any] = {}
    for name, t in tensors.items():
        values = t.detach()[0]
        if values.numel() <= MAX_SUMMARY_VALUES:
            named[name] = [float(v) for v in values.reshape(-1).tolist()]
        else:
            named[name] = {"shape": list(values.shape), "norm": float(values.norm().item())}
    return named


def write_outputs(built: Built, trainer: Any, config: Experiment, run_dir: Path | None,
                  summary: dict[str, Any], loop: Loop, log: RunLog, checks: list[Any]) -> None:
    """Complete summary.json (and write it with curve.csv and predictions.csv) as the run ends."""
    summary.update(
        status=loop.status,
        steps=loop.step,
        train_seconds=summary.get("train_seconds", 0.0) + loop.seconds,
        finished_at=timestamp(),
        final_loss=log.history[-1]["loss"] if log.history else None,
        params=final_values(trainer.params()),
        predictions=_predictions(built, config),
    )
    if not trainer.batches.full:  # the last step saw one batch; this is the loss of the model on all samples
        summary["final_loss_all_samples"] = float(whole_data_loss(trainer)[0])
    if log.best is not None:
        values = [v for t in flat(trainer.params()).values() for v in t[0].tolist()]
        summary["distance_to_optimum"] = analysis.distance(values, log.best)
    summary.update(log.task.quality(built.trainer, built.data, log.best))
    original = original_linear_params(built.data, summary["params"])
    if original is not None:
        summary["params_original_units"] = original
    if log.best is not None and log.conditioning is not None and log.conditioning.measurable:
        summary["convergence"]["rate_observed"] = analysis.observed_rate(
            [row["step"] for row in log.history], [row["loss"] for row in log.history], log.best.loss,
            torch.finfo(built.data.x.dtype).eps)
    if log.best is not None:
        _below_the_optimum(summary, log.best.loss, torch.finfo(built.data.x.dtype).eps)
    _above_the_start(summary, log.history)
    if built.data.scaling is not None:
        summary["units"] = _units(built.data, summary)
    if checks:
        from bpcli.gradcheck import worst

        summary["grad_check"] = worst(checks)
    if run_dir is not None:
        files.write_summary(run_dir, summary)
        shown = [p for p in config.predict if not isinstance(p, list)] if built.data.scaling is None else []
        log.task.write_files(run_dir, built.trainer, built.data, shown)
        if log.snapshots is not None:
            log.snapshots.write(run_dir)


def _convergence_record(found: analysis.Conditioning | None) -> dict[str, Any]:
    """summary.json's `convergence`: κ, the predicted and observed rates (per step, of the error
    θ − θ*; the loss gap shrinks by their square), every key present, null where it does not apply."""
    record: dict[str, Any] = dict.fromkeys(("condition_number", "eigenvalue_min", "eigenvalue_max",
                                             "rate_predicted", "rate_momentum_optimal", "rate_observed"))
    if found is None:
        record["note"] = ("no closed form: the loss is not a least-squares quadratic (or its Hessian overflows), "
                          "so neither κ nor a rate is predicted")
        return record
    record.update(condition_number=found.condition_number, eigenvalue_min=found.eigenvalue_min,
                  eigenvalue_max=found.eigenvalue_max, rate_predicted=found.rate_predicted,
                  rate_momentum_optimal=found.rate_momentum_optimal, note=found.note)
    return record


def _about_the_optimum(built: Built, best: analysis.Optimum) -> dict[str, Any]:
    """summary.json's account of the closed-form optimum: what it was solved from, how well
    the design determines it, and its parameters in the original units."""
    data = built.data
    steps = ([f"rounding to {built.config.dtype}"] if data.raw is not None and built.config.dtype != "float64" else [])
    steps += ["standardising"] if data.scaling is not None else []
    before = f" before {' and '.join(steps)}" if steps else ""
    about: dict[str, Any] = {"optimum_solved": {
        "method": best.method,
        "from": f"the {len(data.y)} training row{'s' * (len(data.y) != 1)}{' as read' if data.raw is not None else ''}, "
                f"in float64{before}",
        "rank": best.rank, "columns": best.columns, "condition": best.condition,
    }}
    if best.original is not None:
        about["optimum_original_units"] = best.original
    warning = best.warning()
    if warning is not None:
        about["warnings"] = [f"optimum: {warning}"]
    return about


def _above_the_start(summary: dict[str, Any], history: list[dict[str, float]]) -> None:
    """Warn when a run that completed ends with its loss (on all samples) above where it
    started: it did not diverge past train.diverge_factor, but it did not learn either (a
    classifier's cross-entropy can bounce far above its start without ever overflowing)."""
    start = summary.get("initial_loss", history[0]["loss"] if history and history[0]["step"] == 1 else None)
    end = summary.get("final_loss_all_samples", summary.get("final_loss"))
    if summary.get("status") != "completed" or not all(isinstance(v, float) and math.isfinite(v) for v in (start, end)):
        return
    if end <= start:
        return
    lr, bound = summary.get("lr"), summary.get("stable_lr")
    why = (f"the learning rate {lr:g} is above the stable bound {bound:.4g}" if isinstance(bound, float) and lr > bound
           else f"the learning rate {lr:g} is probably too large")
    summary.setdefault("warnings", []).append(
        f"the loss ended above where it started ({start:.6g} at step 1, {end:.6g} at the end): training did not "
        f"converge; {why}; try a smaller one (--lr)")


def _below_the_optimum(summary: dict[str, Any], best: float, eps: float) -> None:
    """Warn when the run's loss on all its samples is clearly below the optimum's: the optimum
    is solved from the data as read, and training sees them rounded to its dtype, which can
    move the minimum (nearly collinear columns) far more than rounding moves a loss."""
    reached = summary.get("final_loss_all_samples", summary.get("final_loss"))
    if not isinstance(reached, float) or not math.isfinite(reached) or reached >= best * (1 - 100 * eps):
        return
    summary.setdefault("warnings", []).append(
        f"the run's loss {reached:.6g} is below the optimum's {best:.6g}: the optimum is solved from the data as "
        f"read, in float64, and training sees them rounded to {summary.get('dtype')}, whose own minimum differs; "
        "the data are too close to collinear for that dtype (set dtype: float64, or drop a near-duplicate column)"
    )


def _units(data: Any, summary: dict[str, Any]) -> dict[str, list[str]]:
    """Which of a run's numbers (those it has) are in standardised units, which in the original ones."""
    loss = ["final_loss", "optimum.loss"]
    standardised = ["params", "initial_params", "optimum", "distance_to_optimum", "stable_lr"]
    original = ["params_original_units", "optimum_original_units", "predictions"]
    if target_scaled(data):
        standardised += loss
    else:
        original += loss
    files: tuple[list[str], list[str]] = (["metrics.csv", "data.csv"], [])
    if data.x.shape[1] == 1:  # one feature: the fitted curve instead of predictions.csv
        files[0].append("curve.csv")
    elif target_scaled(data):
        files[0].append("predictions.csv y_standardised, y_pred_standardised")
        files[1].append("predictions.csv y, y_pred")
    else:
        files[1].append("predictions.csv")
    present = [name for name in standardised + original if name.split(".")[0] in summary]
    return {"standardised": [n for n in standardised if n in present] + files[0],
            "original": [n for n in original if n in present] + files[1]}


def _predictions(built: Built, config: Experiment) -> list[dict[str, Any]]:
    """The trained model's predictions at the configured inputs, in the data's original units."""
    if not config.predict:
        return []
    x = torch.tensor(config.predict, dtype=built.data.x.dtype).reshape(len(config.predict), -1)
    with torch.no_grad():
        out = built.trainer.predict(to_model_units(built.data, x))[0].cpu()
    classes = getattr(task_of(built.trainer), "classes", None)
    if classes is not None:  # a classifier: the most probable class, and every class's probability (or score)
        return [{"x": xi, "y_pred": classes[int(row.argmax())], "p": row.tolist()} for xi, row in zip(config.predict, out)]
    y = to_original_units(built.data, out)
    return [{"x": xi, "y_pred": yi} for xi, yi in zip(config.predict, y.tolist())]
