"""The one training loop, shared by every experiment kind, and the run it records.

Usable from a notebook:

    from bpcli import load_config, train
    result = train(load_config("configs/exp2.yaml"))
    result.params, result.run_dir

A run stops cleanly on Ctrl-C or SIGTERM: the current step finishes, everything logged
is on disk, a checkpoint is written, and `resume(run_dir)` continues it bit for bit.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import platform
import signal
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Protocol

import torch

from bpcli import __version__, analysis, distributed, engines
from bpcli.checkpoints import CHECKPOINT, check_belongs, data_hash, load_checkpoint, save_checkpoint
from bpcli.config import ExperimentConfig, Override, dump_config, read_yaml, validate_config
from bpcli.data import DataError, Dataset, make_dataset, original_linear_params, to_model_units, to_original_units
from bpcli.devices import resolve_device
from bpcli.errors import BpcliError, RunDirError
from bpcli.experiments import KINDS, Trainer, flat
from bpcli.runs import (
    MAX_LOGGED_VALUES,
    MetricsWriter,
    create_run_dir,
    param_columns,
    write_atomic,
    write_curve,
    write_data,
    write_summary,
)

DTYPES = {"float32": torch.float32, "float64": torch.float64}
MAX_SUMMARY_VALUES = 1024  # larger tensors are summarised by shape and norm


class Observer(Protocol):
    """What the loop reports while it runs (the CLI draws progress from it)."""

    def on_start(self, total_steps: int, run_dir: Path | None, device: str, start_step: int = 0) -> None: ...

    def on_log(self, row: dict[str, float]) -> None: ...

    def on_progress(self, step: int) -> None: ...


@dataclass
class TrainResult:
    """What a run produced: its status, final parameters, logged history and run directory."""

    status: str
    """completed, diverged, or interrupted."""
    run_dir: Path | None
    params: dict[str, list[float]]
    final_loss: float | None
    steps: int
    history: list[dict[str, float]] = field(repr=False)
    """Every logged row of metrics.csv, as dicts."""
    summary: dict[str, Any] = field(repr=False)
    """The contents of summary.json."""
    signal: int | None = None
    """The signal that interrupted the run (SIGINT or SIGTERM), if one did."""

    @property
    def losses(self) -> list[float]:
        """The logged losses, in step order."""
        return [row["loss"] for row in self.history]


@dataclass
class _Built:
    """A config turned into tensors: the device, the generator, the data and the trainer."""

    config: ExperimentConfig
    device: torch.device
    generator: torch.Generator
    data: Dataset
    trainer: Trainer

    group: Any = None
    """This process's place in a torchrun job, if it is one."""

    @classmethod
    def from_config(cls, config: ExperimentConfig, join: bool = False, device: torch.device | None = None) -> _Built:
        """Build on the config's device, or on `device` when given (a sweep builds its
        members on the CPU and moves them together)."""
        device = resolve_device(config.device) if device is None else device
        group = None
        if join:
            group, device = distributed.join(device)
        generator = torch.Generator().manual_seed(config.seed)
        data = make_dataset(config.data, generator, DTYPES[config.dtype])
        if group is None:
            return cls(config, device, generator, data, KINDS[config.kind](config, data, device, generator))
        # Every rank drew the whole data (and draws the same parameters next); each trains
        # on its own rows.
        part, group = distributed.shard(data, group)
        trainer = KINDS[config.kind](config, part, device, generator)
        trainer.distribute(group)
        return cls(config, device, generator, data, trainer, group)


@contextlib.contextmanager
def _membership(built: _Built) -> Iterator[None]:
    """Leave the torchrun job (if this is one) when training ends, cleanly or not."""
    if built.group is None:
        yield
        return
    try:
        yield
    except BaseException:
        distributed.leave(clean=False)
        raise
    distributed.leave()


def build(config: ExperimentConfig) -> _Built:
    """Turn a config into its device, generator, data and trainer, without training."""
    return _Built.from_config(config)


def train(
    config: ExperimentConfig,
    out: str | Path | None = None,
    *,
    force: bool = False,
    save: bool = True,
    plots: bool = True,
    observer: Observer | None = None,
    config_file: str | None = None,
) -> TrainResult:
    """Train one experiment from the start and write its run directory (unless `save` is False).

    Under torchrun every process calls this; rank 0 alone writes and plots.
    """
    built = _Built.from_config(config, join=distributed.launched())
    with _membership(built):
        return _train(built, config, out, force, save, plots, observer, config_file)


def _train(built: _Built, config: ExperimentConfig, out: str | Path | None, force: bool, save: bool,
           plots: bool, observer: Observer | None, config_file: str | None) -> TrainResult:
    if built.group is not None and built.group.rank != 0:
        save, plots, observer = False, False, None
    _check_predict(config, built.data)
    engine = engines.choose(config.train.engine, built.device, built.trainer.steps_per_epoch,
                            distributed=built.group is not None)  # before writing
    if config.log.tensorboard and save:
        _tensorboard_writer_class()
    # Record the device actually used, so config.yaml re-runs the same way.
    resolved = config.model_copy(update={"device": str(built.device)})
    run_dir = create_run_dir(Path(out) if out else None, force=force) if save else None
    summary: dict[str, Any] = {
        "status": "running",
        "kind": config.kind,
        "seed": config.seed,
        "device": str(built.device),
        "dtype": config.dtype,
        "grad": config.train.grad,
        "engine": engine,
        "lr": config.train.lr,
        "epochs": config.train.epochs,
        "steps": 0,
        "true_params": built.data.true_params,
        "true_function": built.data.true_function,
        "features": built.data.feature_names,
        "target": built.data.target_name,
        "samples": {"train": len(built.data.y), "val": 0 if built.data.y_val is None else len(built.data.y_val)},
        "data_notes": built.data.notes,
        "scaling": built.data.scaling,
        "processes": 1 if built.group is None else built.group.world,
        "initial_params": _named(built.trainer.params()),
        "config_file": config_file,
        "started_at": _now(),
        "train_seconds": 0.0,
        "bpcli_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }
    if run_dir is not None:
        write_atomic(run_dir / "config.yaml", dump_config(resolved))
        _write_data_sample(run_dir, built.data, summary)
        if built.data.scaling is not None:
            write_atomic(run_dir / "preprocessing.json", json.dumps(built.data.scaling, indent=2) + "\n")
        write_summary(run_dir, summary)
    return _run(built, resolved, run_dir, summary, [], 0, plots, observer)


def resume(
    run_dir: str | Path,
    epochs: int | None = None,
    *,
    plots: bool = True,
    observer: Observer | None = None,
) -> TrainResult:
    """Continue a run from its checkpoint, in its own directory, to `epochs` (or the configured number)."""
    run_dir = Path(run_dir)
    config_path = run_dir / "config.yaml"
    if not run_dir.is_dir() or not config_path.is_file():
        raise RunDirError(f"{run_dir}: not a run directory (no config.yaml); give one written by `bpcli train`")
    overrides = [Override(path="train.epochs", value=epochs, origin=f"--epochs {epochs}")] if epochs else []
    config = validate_config(read_yaml(config_path), overrides, source=str(config_path))
    summary = _read_summary(run_dir)
    built = _Built.from_config(config, join=distributed.launched())
    with _membership(built):
        return _resume(built, config, run_dir, summary, plots, observer)


def _resume(built: _Built, config: ExperimentConfig, run_dir: Path, summary: dict[str, Any],
            plots: bool, observer: Observer | None) -> TrainResult:
    config_path = run_dir / "config.yaml"
    writer = built.group is None or built.group.rank == 0
    payload = load_checkpoint(run_dir, built.device)
    check_belongs(payload, config, data_hash(built.data.x, built.data.y), run_dir / CHECKPOINT)

    start = payload["step"]
    total = config.train.epochs * built.trainer.steps_per_epoch
    if start >= total:
        raise RunDirError(
            f"{run_dir}: already trained {start} steps ({summary.get('epochs')} epochs); "
            f"pass --epochs with more than {config.train.epochs} to continue"
        )
    built.trainer.load_state_dict(payload["trainer"])
    built.generator.set_state(payload["generator_state"].cpu())
    history = _truncate_metrics(run_dir / "metrics.csv", start, write=writer)
    if not writer:  # other ranks of a torchrun job train alongside rank 0 and write nothing
        return _run(built, config, None, summary, history, start, False, None)
    write_atomic(config_path, dump_config(config))
    summary.update(status="running", epochs=config.train.epochs)
    summary.setdefault("resumed_from", []).append({"step": start, "at": _now()})
    write_summary(run_dir, summary)
    return _run(built, config, run_dir, summary, history, start, plots, observer)


def _run(
    built: _Built,
    config: ExperimentConfig,
    run_dir: Path | None,
    summary: dict[str, Any],
    history: list[dict[str, float]],
    start: int,
    plots: bool,
    observer: Observer | None,
) -> TrainResult:
    """The training loop from step `start` + 1 to the end, with logging and checkpoints."""
    trainer = engines.wrap(built.trainer, config.train.engine, built.device, distributed=built.group is not None)
    sizes = {name: t[0].numel() for name, t in flat(trainer.params()).items()}
    columns = param_columns(sizes)
    fit = trainer.least_squares
    best = analysis.optimum(built.data, fit) if fit is not None else None
    bound = analysis.stable_lr(built.data, fit) if fit is not None else None
    if best is not None and bound is not None:
        columns.append("distance_to_optimum")
        summary.update(optimum={**best.params, "loss": best.loss}, stable_lr=bound.lr)
    validation = _validation_set(built)
    if validation is not None:
        columns.append("val_loss")
    steps_per_epoch = trainer.steps_per_epoch
    total = config.train.epochs * steps_per_epoch
    log_every = config.train.log_every
    checkpoint_every = config.train.checkpoint_every
    check_every = config.train.check_grad_every
    grad_checks: list[Any] = []
    progress_every = max(1, total // 500)  # the bar moves smoothly without a sync per step
    digest = data_hash(built.data.x, built.data.y)
    metrics = None
    board = None
    if run_dir is not None:
        metrics = MetricsWriter(run_dir / "metrics.csv", columns, append=start > 0)
        if config.log.tensorboard:
            board = _tensorboard_writer_class()(log_dir=str(run_dir), purge_step=start + 1 if start else None)
    if observer is not None:
        observer.on_start(total, run_dir, str(built.device), start)

    def checkpoint(step: int) -> None:
        if run_dir is not None:
            save_checkpoint(run_dir, step=step, trainer_state=trainer.state_dict(),
                            generator=built.generator, config=config, data_digest=digest)

    stop = _StopRequest()
    status = "completed"
    first_loss = history[0]["loss"] if history else None
    step = start
    started = time.perf_counter()
    try:
        with stop.on_signals():
            for step in range(start + 1, total + 1):
                index = (step - 1) % steps_per_epoch
                if check_every and (step - 1) % check_every == 0:
                    from bpcli.gradcheck import compare_gradients

                    grad_checks += compare_gradients(trainer, index, step)
                logged = step == 1 or step % log_every == 0 or step == total
                loss = trainer.step(index, logged)
                # Reading values back synchronises with the device: only on logged steps.
                if logged:
                    row = _row(step, (step - 1) // steps_per_epoch + 1, loss, trainer, columns, best, validation)
                    history.append(row)
                    if metrics is not None:
                        metrics.write(row)
                    if board is not None:
                        _to_tensorboard(board, row, config.train.lr)
                    if observer is not None:
                        observer.on_log(row)
                    first_loss = row["loss"] if first_loss is None else first_loss
                    reason = _divergence(row["loss"], first_loss, config.train.diverge_factor)
                    if reason is not None:
                        status = "diverged"
                        summary["divergence"] = _explain_divergence(config, step, reason, bound)
                        break
                if checkpoint_every and step % checkpoint_every == 0 and step != total:
                    checkpoint(step)
                if observer is not None and step % progress_every == 0:
                    observer.on_progress(step)
                if stop.signum is not None:
                    status = "interrupted"
                    break
        if status in ("completed", "interrupted"):
            checkpoint(step)
    except KeyboardInterrupt:
        # A second Ctrl-C stops at once, possibly mid-step: the last checkpoint stays as
        # it was, and resuming starts from it.
        status = "interrupted"
        raise
    finally:
        summary.update(
            status=status,
            steps=step,
            train_seconds=summary.get("train_seconds", 0.0) + time.perf_counter() - started,
            finished_at=_now(),
            final_loss=history[-1]["loss"] if history else None,
            params=_named(trainer.params()),
            predictions=_predictions(built, config),
        )
        if best is not None:
            values = [v for t in flat(trainer.params()).values() for v in t[0].tolist()]
            summary["distance_to_optimum"] = analysis.distance(values, best)
        summary.update(_fit_quality(built, best, summary["params"]))
        if grad_checks:
            from bpcli.gradcheck import worst

            summary["grad_check"] = worst(grad_checks)
        if metrics is not None:
            metrics.close()
        if board is not None:
            board.close()
        if run_dir is not None:
            write_summary(run_dir, summary)
            _write_curve(run_dir, built, config)
            _write_fitted(run_dir, built)

    if run_dir is not None and plots:
        from bpcli.plots import draw_plots  # matplotlib only when plotting

        draw_plots(run_dir)
    return TrainResult(
        status=status,
        run_dir=run_dir,
        params=summary["params"],
        final_loss=summary["final_loss"],
        steps=step,
        history=history,
        summary=summary,
        signal=stop.signum,
    )


class _StopRequest:
    """Turns SIGINT and SIGTERM into a request to stop after the current step."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt  # asked twice: stop now
        self.signum = signum

    @contextlib.contextmanager
    def on_signals(self) -> Iterator[None]:
        # Signal handlers can only be set from the main thread; elsewhere Ctrl-C keeps
        # Python's default behaviour.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _tensorboard_writer_class() -> Any:
    """torch.utils.tensorboard.SummaryWriter, or a clear error if tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise BpcliError(
            "log.tensorboard needs the tensorboard package: pip install 'bpcli[tensorboard]' "
            "(or set log.tensorboard: false)"
        ) from None
    return SummaryWriter


def _to_tensorboard(board: Any, row: dict[str, float], lr: float) -> None:
    """One logged row as TensorBoard scalars: loss/…, params/…, grads/…, and the lr."""
    step = int(row["step"])
    for name, value in row.items():
        if name in ("step", "epoch"):
            continue
        if name.startswith("grad_"):
            tag = f"grads/{name[len('grad_'):]}"
        elif name in ("loss", "val_loss"):
            tag = f"loss/{name}"
        elif name == "distance_to_optimum":
            tag = name
        else:
            tag = f"params/{name}"
        board.add_scalar(tag, value, step)
    board.add_scalar("lr", lr, step)


def _divergence(loss: float, first: float, factor: float) -> str | None:
    """Why a logged loss means the run diverged, or None if it did not."""
    if not math.isfinite(loss):
        return f"the loss became {loss}"
    if first > 0 and loss > factor * first:
        return f"the loss grew to {loss:.4g}, over {factor:g} times its first value {first:.4g}"
    return None


def _explain_divergence(config: ExperimentConfig, step: int, reason: str,
                        bound: analysis.StableLR | None) -> dict[str, Any]:
    """The divergence record for summary.json, with the learning rate that would have worked."""
    lr = config.train.lr
    record: dict[str, Any] = {"step": step, "reason": reason, "lr": lr}
    message = f"training diverged at step {step}: {reason}."
    if bound is not None:
        record["stable_lr"] = bound.lr
        message += f" The learning rate {lr:g} is too large: {bound.explanation}. Try --lr {bound.lr / 2:.3g}."
    else:
        message += f" Try a smaller learning rate than {lr:g} (--lr)."
    record["message"] = message
    return record


def _logged(values: torch.Tensor) -> list[float]:
    # Small tensors are logged value by value, large ones (MLP layers) by their L2 norm.
    if values.numel() <= MAX_LOGGED_VALUES:
        return [float(v) for v in values.tolist()]
    return [float(values.norm().item())]


def _row(step: int, epoch: int, loss: torch.Tensor, trainer: Trainer, columns: list[str],
         best: analysis.Optimum | None, validation: tuple[torch.Tensor, torch.Tensor] | None) -> dict[str, float]:
    params = flat(trainer.params())
    values = [v for t in params.values() for v in _logged(t[0])]
    grads = [v for t in flat(trainer.gradients()).values() for v in _logged(t[0])]
    extra = []
    if best is not None:
        extra.append(analysis.distance([v for t in params.values() for v in t[0].tolist()], best))
    if validation is not None:
        with torch.no_grad():
            extra.append(float((trainer.predict(validation[0])[0] - validation[1]).pow(2).mean().item()))
    return dict(zip(columns, [step, epoch, loss.reshape(-1)[0].item(), *values, *grads, *extra]))


def _validation_set(built: _Built) -> tuple[torch.Tensor, torch.Tensor] | None:
    data = built.data
    if data.x_val is None or data.y_val is None:
        return None
    return data.x_val.to(built.device), data.y_val.to(built.device)


def _fit_quality(built: _Built, best: analysis.Optimum | None, params: dict[str, Any]) -> dict[str, Any]:
    """R² of the trained model (and of the closed-form optimum) on training and validation data."""
    data = built.data
    splits = {"train": (data.x, data.y)}
    if data.x_val is not None and data.y_val is not None:
        splits["val"] = (data.x_val, data.y_val)
    quality: dict[str, Any] = {"r2": {}}
    with torch.no_grad():
        for split, (x, y) in splits.items():
            predicted = built.trainer.predict(x)[0].cpu()
            if torch.isfinite(predicted).all():
                quality["r2"][split] = analysis.r2(y, predicted)
            if best is not None:
                quality.setdefault("optimum_r2", {})[split] = analysis.r2(y, analysis.predict(best, x))
    original = original_linear_params(data, params)
    if original is not None:
        quality["params_original_units"] = original
    return quality


def _write_fitted(run_dir: Path, built: _Built) -> None:
    """predictions.csv: every sample's target and prediction, for the predicted-vs-actual plot."""
    data = built.data
    if data.x.shape[1] == 1:
        return  # one feature: the fit plot shows the curve itself
    rows = ["split,y,y_pred"]
    splits = [("train", data.x, data.y)]
    if data.x_val is not None and data.y_val is not None:
        splits.append(("val", data.x_val, data.y_val))
    with torch.no_grad():
        for split, x, y in splits:
            sample = _sample_rows(len(y))
            x, y = (x, y) if sample is None else (x[sample], y[sample])
            predicted = built.trainer.predict(x)[0].cpu().tolist()
            rows += [f"{split},{a!r},{b!r}" for a, b in zip(y.tolist(), predicted)]
    write_atomic(run_dir / "predictions.csv", "\n".join(rows) + "\n")


MAX_DATA_ROWS = 100_000  # data.csv and predictions.csv keep at most this many rows


def _sample_rows(n: int) -> torch.Tensor | None:
    """Evenly spaced row indices when n is over MAX_DATA_ROWS (no random draw), else None."""
    return torch.linspace(0, n - 1, MAX_DATA_ROWS).long() if n > MAX_DATA_ROWS else None


def _write_data_sample(run_dir: Path, data: Dataset, summary: dict[str, Any]) -> None:
    """data.csv: the training data, or an evenly spaced sample of it for very large data."""
    rows = _sample_rows(len(data.y))
    x, y = (data.x, data.y) if rows is None else (data.x[rows], data.y[rows])
    if rows is not None:
        summary["data_csv_rows"] = {"written": MAX_DATA_ROWS, "of": len(data.y)}
    write_data(run_dir, x.tolist(), y.tolist())


def _check_predict(config: ExperimentConfig, data: Dataset) -> None:
    features = data.x.shape[1]
    for point in config.predict:
        size = len(point) if isinstance(point, list) else 1
        if size != features:
            raise DataError(
                f"predict: {point!r} has {size} value(s) but the data has {features} feature(s) "
                f"({', '.join(data.feature_names)}); give one number per feature"
            )


def _named(tensors: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Final parameters for summary.json: every value, or shape and norm for a large tensor."""
    named: dict[str, Any] = {}
    for name, t in tensors.items():
        values = t.detach()[0]
        if values.numel() <= MAX_SUMMARY_VALUES:
            named[name] = [float(v) for v in values.reshape(-1).tolist()]
        else:
            named[name] = {"shape": list(values.shape), "norm": float(values.norm().item())}
    return named


def _write_curve(run_dir: Path, built: _Built, config: ExperimentConfig) -> None:
    """curve.csv: the model's predictions on a grid across the data, for the fit plot."""
    x = built.data.x
    if x.shape[1] != 1:
        return
    shown = [p for p in config.predict if not isinstance(p, list)] if built.data.scaling is None else []
    low, high = min([float(x.min()), *shown]), max([float(x.max()), *shown])
    grid = torch.linspace(low, high, 200, dtype=x.dtype)
    with torch.no_grad():
        y = built.trainer.predict(grid[:, None])[0].cpu()
    write_curve(run_dir, grid.tolist(), y.tolist())


def _predictions(built: _Built, config: ExperimentConfig) -> list[dict[str, Any]]:
    """The trained model's predictions at the configured inputs, in the data's original units."""
    if not config.predict:
        return []
    x = torch.tensor(config.predict, dtype=DTYPES[config.dtype]).reshape(len(config.predict), -1)
    with torch.no_grad():
        y = to_original_units(built.data, built.trainer.predict(to_model_units(built.data, x))[0].cpu())
    return [{"x": xi, "y_pred": yi} for xi, yi in zip(config.predict, y.tolist())]


@dataclass
class Verification:
    """The outcome of re-running a recorded config and comparing its logged losses."""

    run_dir: Path
    compared: list[tuple[int, float, float]]
    """(step, recorded loss, re-computed loss) for every compared step."""
    recorded: dict[str, Any]
    """torch version and device the run was recorded with."""
    current: dict[str, Any]
    """torch version and device of the re-run."""

    @property
    def mismatch(self) -> tuple[int, float, float] | None:
        """The first step whose loss differs, if any."""
        return next((c for c in self.compared if c[1] != c[2]), None)

    @property
    def matches(self) -> bool:
        return self.mismatch is None

    def explanation(self) -> str:
        """One line on what differs and what may explain it."""
        if self.mismatch is None:
            return f"{self.run_dir}: all {len(self.compared)} logged losses reproduce bit for bit"
        step, was, now = self.mismatch
        envs = (
            f"recorded with torch {self.recorded['torch_version']} on {self.recorded['device']}, "
            f"re-run with torch {self.current['torch_version']} on {self.current['device']}"
        )
        same = self.recorded == self.current
        why = "the same setup, so something else changed" if same else "results are bit-identical only on the same setup"
        return f"{self.run_dir}: the loss at step {step} was {was!r} and is now {now!r} ({envs}; {why})"


def verify_run(run_dir: str | Path, steps: int | None = None) -> Verification:
    """Re-run a run directory's config in memory and compare the first `steps` logged losses."""
    from bpcli.runs import read_run

    run_dir = Path(run_dir)
    record = read_run(run_dir)
    config = validate_config(record.config, source=str(run_dir / "config.yaml"))
    recorded = list(zip(map(int, record.metrics.get("step", [])), record.metrics.get("loss", [])))
    recorded = recorded[:steps] if steps else recorded
    if not recorded:
        raise RunDirError(f"{run_dir}/metrics.csv: no logged steps to compare")
    built = _Built.from_config(config)
    last = recorded[-1][0]
    epochs = -(-last // built.trainer.steps_per_epoch)  # just enough epochs to reach it
    short = config.model_copy(update={"train": config.train.model_copy(update={"epochs": epochs})})
    result = _run(built, short, None, {}, [], 0, False, None)
    now = {int(row["step"]): row["loss"] for row in result.history}
    return Verification(
        run_dir=run_dir,
        compared=[(step, loss, now.get(step, math.nan)) for step, loss in recorded],
        recorded={"torch_version": record.summary.get("torch_version"), "device": record.summary.get("device")},
        current={"torch_version": torch.__version__, "device": str(built.device)},
    )


def _read_summary(run_dir: Path) -> dict[str, Any]:
    try:
        summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RunDirError(f"{run_dir}/summary.json: missing or corrupt ({type(exc).__name__})") from None
    if not isinstance(summary, dict):
        raise RunDirError(f"{run_dir}/summary.json: corrupt (not a mapping)")
    return summary


def _truncate_metrics(path: Path, step: int, write: bool = True) -> list[dict[str, float]]:
    """Keep metrics.csv's rows up to `step` (rows after the checkpoint will be logged again)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        raise RunDirError(f"{path}: missing or unreadable; the run cannot be resumed") from None
    lines = text.splitlines(keepends=True)
    if not lines:
        raise RunDirError(f"{path}: empty; the run cannot be resumed")
    kept, history = [lines[0]], []
    header = next(csv.reader(io.StringIO(lines[0])))
    for line in lines[1:]:
        if not line.endswith("\n"):
            break  # a row torn by a hard kill: it will be logged again
        cells = next(csv.reader(io.StringIO(line)))
        try:
            row: dict[str, float] = dict(zip(header, map(float, cells)))
            row.update(step=int(row["step"]), epoch=int(row["epoch"]))
        except (ValueError, KeyError):
            raise RunDirError(f"{path}: corrupt row {line.strip()!r}; the run cannot be resumed") from None
        if row["step"] > step:
            break
        kept.append(line)
        history.append(row)
    if write:
        write_atomic(path, "".join(kept))
    return history


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
