"""The one training loop, shared by every experiment kind, and the run it records.

Usable from a notebook:

    from bpcli import load_config, train
    result = train(load_config("configs/exp2.yaml"))
    result.params, result.run_dir
"""

from __future__ import annotations

import math
import platform
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import torch

from bpcli import __version__
from bpcli.config import ExperimentConfig, dump_config
from bpcli.data import make_dataset
from bpcli.devices import resolve_device
from bpcli.experiments import KINDS, Trainer
from bpcli.runs import (
    MetricsWriter,
    create_run_dir,
    param_columns,
    write_atomic,
    write_data,
    write_summary,
)

DTYPES = {"float32": torch.float32, "float64": torch.float64}


class Observer(Protocol):
    """What the loop reports while it runs (the CLI draws progress from it)."""

    def on_start(self, total_steps: int, run_dir: Path | None, device: str) -> None: ...

    def on_log(self, row: dict[str, float]) -> None: ...

    def on_progress(self, step: int) -> None: ...


@dataclass
class TrainResult:
    """What a run produced: its status, final parameters, logged history and run directory."""

    status: str
    """completed, diverged, or interrupted."""
    run_dir: Path | None
    params: dict[str, list[float]]
    final_loss: float
    steps: int
    history: list[dict[str, float]] = field(repr=False)
    """Every logged row of metrics.csv, as dicts."""
    summary: dict[str, Any] = field(repr=False)
    """The contents of summary.json."""

    @property
    def losses(self) -> list[float]:
        """The logged losses, in step order."""
        return [row["loss"] for row in self.history]


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
    """Train one experiment and write its run directory (unless `save` is False)."""
    device = resolve_device(config.device)
    dtype = DTYPES[config.dtype]
    generator = torch.Generator().manual_seed(config.seed)
    data = make_dataset(config.data, generator, dtype)
    trainer = KINDS[config.kind](config, data, device, generator)

    # Record the device actually used, so config.yaml re-runs the same way.
    resolved = config.model_copy(update={"device": str(device)})
    run_dir = create_run_dir(Path(out) if out else None, force=force) if save else None
    sizes = {name: t[0].numel() for name, t in trainer.parameters().items()}
    columns = param_columns(sizes)
    steps_per_epoch = trainer.steps_per_epoch
    total = config.train.epochs * steps_per_epoch
    summary: dict[str, Any] = {
        "status": "running",
        "kind": config.kind,
        "seed": config.seed,
        "device": str(device),
        "dtype": config.dtype,
        "grad": config.train.grad,
        "lr": config.train.lr,
        "epochs": config.train.epochs,
        "steps": 0,
        "true_params": data.true_params,
        "config_file": config_file,
        "started_at": _now(),
        "bpcli_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }
    metrics = None
    if run_dir is not None:
        write_atomic(run_dir / "config.yaml", dump_config(resolved))
        write_data(run_dir, data.x.tolist(), data.y.tolist())
        write_summary(run_dir, summary)
        metrics = MetricsWriter(run_dir / "metrics.csv", columns)
    if observer is not None:
        observer.on_start(total, run_dir, summary["device"])

    history: list[dict[str, float]] = []
    log_every = config.train.log_every
    progress_every = max(1, total // 500)  # the bar moves smoothly without a sync per step
    status = "completed"
    step = 0
    started = time.perf_counter()
    try:
        for step in range(1, total + 1):
            index = (step - 1) % steps_per_epoch
            loss = trainer.step(index)
            # Reading values back synchronises with the device: only on logged steps.
            if step == 1 or step % log_every == 0 or step == total:
                row = _row(step, (step - 1) // steps_per_epoch + 1, loss, trainer, columns)
                history.append(row)
                if metrics is not None:
                    metrics.write(row)
                if observer is not None:
                    observer.on_log(row)
                if not math.isfinite(row["loss"]):
                    status = "diverged"
                    break
            if observer is not None and step % progress_every == 0:
                observer.on_progress(step)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        seconds = time.perf_counter() - started
        summary.update(
            status=status,
            steps=step,
            train_seconds=seconds,
            finished_at=_now(),
            final_loss=history[-1]["loss"] if history else None,
            params=_named(trainer.parameters()),
            predictions=_predictions(trainer, config, dtype),
        )
        if metrics is not None:
            metrics.close()
        if run_dir is not None:
            write_summary(run_dir, summary)

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
    )


def _row(step: int, epoch: int, loss: torch.Tensor, trainer: Trainer, columns: list[str]) -> dict[str, float]:
    values = [float(v) for t in trainer.parameters().values() for v in t[0].reshape(-1).tolist()]
    grads = [float(v) for t in trainer.gradients().values() for v in t[0].reshape(-1).tolist()]
    return dict(zip(columns, [step, epoch, loss[0].item(), *values, *grads]))


def _named(tensors: dict[str, torch.Tensor]) -> dict[str, list[float]]:
    return {name: [float(v) for v in t[0].reshape(-1).tolist()] for name, t in tensors.items()}


def _predictions(trainer: Trainer, config: ExperimentConfig, dtype: torch.dtype) -> list[dict[str, float]]:
    if not config.predict:
        return []
    x = torch.tensor(config.predict, dtype=dtype).reshape(-1, 1)
    y = trainer.predict(x)[0].tolist()
    return [{"x": xi, "y_pred": yi} for xi, yi in zip(config.predict, y)]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

