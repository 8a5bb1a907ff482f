"""A run from beginning to end: set up, the loop, and what is written when it ends.

    train(config)       a new run, from step 1, into a new run directory
    resume(run_dir)     a run continued from its checkpoint, in its own directory
    rerun(run_dir)      a recorded config trained again, into a new directory

Usable from a notebook:

    from bpcli import load_config, train
    result = train(load_config("configs/exp2.yaml"))
    result.params, result.run_dir

A run stops cleanly on Ctrl-C or SIGTERM: the current step finishes, everything logged
is on disk, a checkpoint is written, and `resume(run_dir)` continues it bit for bit.
The config is built into tensors by bpcli.build; `bpcli rerun --verify` is bpcli.verify.
"""

from __future__ import annotations

import contextlib
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from bpcli import distributed, engines, schedules
from bpcli.build import Built, build, membership, use_threads
from bpcli.config import Experiment, Override, dump_config, read_yaml, validate_config
from bpcli.data.dataset import Dataset
from bpcli.divergence import explain_members
from bpcli.errors import BpcliError, DataError, RunDirError, RunFailed
from bpcli.kinds.base import whole_data_loss
from bpcli.optimizers import describe
from bpcli.loop import Divergence, Loop, Progress, Reporter, StopRequest
from bpcli.rundir import run as files
from bpcli.rundir.checkpoint import CHECKPOINT, check_belongs, data_hash, load_checkpoint
from bpcli.rundir.files import bpcli_version, claim, create_run_dir, release, timestamp
from bpcli.rundir.sweep import is_sweep_dir
from bpcli.kinds.tasks import MAX_DATA_ROWS, sample_rows, task_of
from bpcli.recording import Checkpoints, GradChecks, RunLog, final_values, write_outputs


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

# --------------------------------------------------------------------------- train


def train(
    config: Experiment,
    out: str | Path | None = None,
    *,
    force: bool = False,
    save: bool = True,
    plots: bool = True,
    observer: Reporter | None = None,
    config_file: str | None = None,
) -> TrainResult:
    """Train one experiment from the start and write its run directory (unless `save` is False).

    Under torchrun every process calls this; rank 0 alone writes and plots.
    """
    threads = use_threads(config)
    built = build(config, join=distributed.launched())
    with membership(built):
        if not built.writes:
            save, plots, observer = False, False, None
        _check_predict(config, built.data)
        engine = engines.choose(config.train.engine, built.device, built.trainer.steps_per_epoch,
                                distributed=built.group is not None,
                                not_graphable=getattr(built.trainer, "not_graphable", None))  # before writing
        if config.log.tensorboard and save:
            tensorboard_writer_class()
        # Record the device actually used, so config.yaml re-runs the same way.
        resolved = config.model_copy(update={"device": str(built.device)})
        # From here on a signal stops the run after the current step, even before the first:
        # a run directory is never left saying `running`.
        with StopRequest().installed() as stop:
            run_dir = create_run_dir(Path(out) if out else None, force=force) if save else None
            with _held(run_dir):
                summary = {**_new_summary(built, engine, config_file), **threads}
                if run_dir is not None:
                    _write_start(run_dir, resolved, built.data, summary)
                return train_built(built, resolved, run_dir, summary, [], plots, observer, stop=stop)


@contextlib.contextmanager
def _held(run_dir: Path | None) -> Iterator[None]:
    """Release this process's hold on a run directory (see rundir.files.claim) when the run ends."""
    try:
        yield
    finally:
        if run_dir is not None:
            release(run_dir)


def _new_summary(built: Built, engine: str, config_file: str | None) -> dict[str, Any]:
    """summary.json as a run starts: what it trains, on what, and with which versions."""
    config, data = built.config, built.data
    return {
        "status": "running",
        "kind": config.kind,
        "seed": config.seed,
        "device": str(built.device),
        "dtype": config.dtype,
        "grad": config.train.grad,
        "engine": engine,
        "lr": config.train.lr,
        "optimizer": describe(config.train),
        **_schedule_record(config.train, config.train.epochs * built.trainer.steps_per_epoch),
        # under torchrun a trainer holds its shard; a full batch is every sample
        "batch_size": len(data.y) if built.trainer.batches.full else built.trainer.batches.size,
        "shuffle": built.trainer.batches.shuffle,
        "epochs": config.train.epochs,
        "steps": 0,
        "true_params": data.true_params,
        "true_function": data.true_function,
        "features": data.feature_names,
        "target": data.target_name,
        "task": task_of(built.trainer).record(),
        "samples": {"train": len(data.y), "val": 0 if data.y_val is None else len(data.y_val)},
        "data_notes": data.notes,
        "scaling": data.scaling,
        "processes": 1 if built.group is None else built.group.world,
        "initial_params": final_values(built.trainer.params()),
        "config_file": config_file,
        "started_at": timestamp(),
        "train_seconds": 0.0,
        "bpcli_version": bpcli_version(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }


def _schedule_record(train: Any, updates: int) -> dict[str, Any]:
    """summary.json's words for an lr schedule and the largest lr it reaches (nothing for a constant lr)."""
    if not schedules.scheduled(train):
        return {}
    return {"schedule": schedules.describe(train, updates), "lr_peak": schedules.peak(train, updates)}


def _write_start(run_dir: Path, config: Experiment, data: Dataset, summary: dict[str, Any]) -> None:
    """What a run directory holds before the first step: config, data, summary."""
    files.write_config(run_dir, dump_config(config))
    rows = sample_rows(len(data.y))
    x, y = (data.x, data.y) if rows is None else (data.x[rows], data.y[rows])
    if rows is not None:
        summary["data_csv_rows"] = {"written": MAX_DATA_ROWS, "of": len(data.y)}
    files.write_data(run_dir, x.tolist(), y.tolist())
    if data.scaling is not None:
        files.write_preprocessing(run_dir, data.scaling)
    files.write_summary(run_dir, summary)


def _check_predict(config: Experiment, data: Dataset) -> None:
    features = data.x.shape[1]
    for point in config.predict:
        size = len(point) if isinstance(point, list) else 1
        if size != features:
            raise DataError(
                f"predict: {point!r} has {size} value(s) but the data has {features} feature(s) "
                f"({', '.join(data.feature_names)}); give one number per feature"
            )


# --------------------------------------------------------------------------- the loop


def train_built(built: Built, config: Experiment, run_dir: Path | None, summary: dict[str, Any],
                history: list[dict[str, float]], plots: bool, observer: Reporter | None,
                start: int = 0, stop: StopRequest | None = None, rule: dict[str, Any] | None = None) -> TrainResult:
    """The loop from step `start` + 1 to the end, with its callbacks, then the final files
    (`rule`: the divergence rule's state from the checkpoint resumed from)."""
    trainer = engines.wrap(built.trainer, config.train.engine, built.device, distributed=built.group is not None)
    total = config.train.epochs * trainer.steps_per_epoch
    log = RunLog(built, trainer, run_dir, summary, history, observer, tensorboard_writer_class, start)
    if run_dir is not None and start == 0:  # what the run knows before its first step: columns, optimum, bound
        files.write_summary(run_dir, summary)
    first = history[0]["loss"] if history else None
    if not trainer.batches.full:  # one batch's loss is no yardstick: the whole data's at the start is
        if start == 0:
            summary["initial_loss"] = float(whole_data_loss(trainer)[0])
        first = summary.get("initial_loss", first)
    divergence = Divergence(config.train.diverge_factor, trainer, start, first)
    if rule is not None:
        divergence.restore(rule)
    digest = data_hash(built.data.x, built.data.y) if run_dir is not None else ""
    checkpoints = Checkpoints(run_dir, trainer, config, built.generator, digest, divergence)
    grad_checks = GradChecks(config.train.check_grad_every)
    # The callbacks this run needs, in the order they see a step.
    callbacks = [c for c, needed in ((grad_checks, grad_checks.every), (divergence, True), (log, True),
                                     (checkpoints, checkpoints.every)) if needed]
    if observer is not None:
        callbacks.append(Progress(observer, total))
        observer.on_start(total, run_dir, str(built.device), start)
    loop = Loop(trainer, total, config.train.log_every, callbacks, start, stop=stop)
    with _recorded_failure(loop, summary, run_dir, checkpoints):
        try:
            loop.run()  # a signal after it is noted only (StopRequest.held): the final files are written whole
            if loop.status == "diverged":  # the step it stopped at is logged here, after the search
                log.on_log(loop, loop.step, divergence.losses)
                if checkpoints.last >= loop.step:  # written on the way to divergence: keep the last good state
                    checkpoints.save(*divergence.good)
                summary["divergence"] = explain_members([built], trainer, divergence, start, loop.step,
                                                        [log.bound])[0]
            else:  # completed or interrupted: resumable from here
                checkpoints.save(loop.step)
        finally:
            log.close()
            write_outputs(built, trainer, config, run_dir, summary, loop, log, grad_checks.checks)
        if run_dir is not None and start > 0:
            _remove_animation(run_dir)
        if run_dir is not None and plots:
            _draw_plots(run_dir, summary, loop, resumed=start > 0)
    return TrainResult(status=loop.status, run_dir=run_dir, params=summary["params"],
                       final_loss=summary["final_loss"], steps=loop.step, history=history,
                       summary=summary, signal=loop.signal)


def _remove_animation(run_dir: Path) -> None:
    """A resumed run's descent.gif ends where the run stopped before: it is removed (drawing
    it again takes as long as `bpcli animate`, which the user may run when they want it)."""
    gif = run_dir / "descent.gif"
    if gif.is_file() or gif.is_symlink():
        gif.unlink()


def _figure_formats(run_dir: Path) -> list[str]:
    """The formats the run's figures are in: png, and svg or pdf where `bpcli plot --format`
    drew some (a resumed run redraws those too, or they would show the run before it)."""
    from bpcli.plots import FORMATS
    from bpcli.plots.run import FIGURES

    return ["png", *(fmt for fmt in FORMATS if fmt != "png"
                     and any((run_dir / f"{name}.{fmt}").is_file() for name in FIGURES))]


def _draw_plots(run_dir: Path, summary: dict[str, Any], loop: Loop, resumed: bool = False) -> None:
    """The run's figures (a resumed run's in every format it had); one that cannot be written
    (a full disk, a link where a figure goes) leaves the run `failed`, exit 1, as any file
    the run cannot write."""
    from bpcli.plots import draw_plots  # matplotlib only when plotting

    try:
        for fmt in _figure_formats(run_dir) if resumed else ["png"]:
            draw_plots(run_dir, fmt)
    except (OSError, RunDirError) as exc:
        why = str(exc) if isinstance(exc, RunDirError) else f"{exc.filename or run_dir}: {exc.strerror or exc}"
        loop.status = "failed"
        summary.update(status="failed", error={"step": loop.step, "type": type(exc).__name__, "message": why})
        with contextlib.suppress(OSError, BpcliError):  # a full disk may refuse this too
            files.write_summary(run_dir, summary)
        raise RunFailed(f"{why.rstrip('.')} (the run trained {loop.step} steps, is recorded as failed, and its "
                        f"checkpoint is intact; once fixed, `bpcli plot {run_dir}` draws the figures)") from None


@contextlib.contextmanager
def _recorded_failure(loop: Loop, summary: dict[str, Any], run_dir: Path | None,
                      checkpoints: Checkpoints) -> Iterator[None]:
    """A run that raises is recorded as `failed`, with its error, in summary.json (as far as
    the disk allows); a file that cannot be written becomes one line and exit 1."""
    try:
        yield
    except (KeyboardInterrupt, BpcliError):
        raise
    except Exception as exc:
        loop.status = "failed"
        summary.update(status="failed", error={"step": loop.step, "type": type(exc).__name__, "message": str(exc)})
        if run_dir is not None:
            with contextlib.suppress(OSError):  # a full disk may refuse this too: the error below still says why
                files.write_summary(run_dir, summary)
        if isinstance(exc, OSError):
            where = exc.filename or run_dir or "a file"
            kept = f"; its checkpoint at step {checkpoints.last} is intact" if checkpoints.last else ""
            raise RunFailed(f"{where}: cannot be written ({exc.strerror or exc}); the run stopped at step "
                            f"{loop.step} and is recorded as failed{kept}") from exc
        raise


def tensorboard_writer_class() -> Any:
    """torch.utils.tensorboard.SummaryWriter, or a clear error if tensorboard is not installed."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise BpcliError(
            "log.tensorboard needs the tensorboard package: pip install 'bpcli[tensorboard]' "
            "(or set log.tensorboard: false)"
        ) from None
    return SummaryWriter


# --------------------------------------------------------------------------- resume, rerun


def _recorded_config(run_dir: Path, overrides: list[Override] | None = None) -> Experiment:
    """The config a run directory was trained with; a RunDirError if it is not a run directory."""
    config_path = run_dir / "config.yaml"
    if not run_dir.exists():
        raise RunDirError(f"{run_dir}: no such run directory; give one written by `bpcli train`")
    files.refuse_sweep(run_dir)
    if not run_dir.is_dir() or not config_path.is_file():
        raise RunDirError(f"{run_dir}: not a run directory (no config.yaml); give one written by `bpcli train`")
    return validate_config(read_yaml(config_path), overrides or [], source=str(config_path))


def resume(
    run_dir: str | Path,
    epochs: int | None = None,
    *,
    plots: bool = True,
    observer: Reporter | None = None,
) -> TrainResult:
    """Continue a run from its checkpoint, in its own directory, to `epochs` (or the configured number)."""
    run_dir = Path(run_dir)
    if is_sweep_dir(run_dir):
        raise RunDirError(f"{run_dir}: is a sweep directory; continue it with `bpcli sweep --resume {run_dir}`")
    overrides = [Override(path="train.epochs", value=epochs, origin=f"--epochs {epochs}")] if epochs else []
    config = _recorded_config(run_dir, overrides)
    summary = files.read_summary(run_dir)
    files.read_run(run_dir)  # every file the resumed run appends to or draws from, checked before a byte is written
    divergence = summary.get("divergence")
    if summary.get("status") == "diverged" and isinstance(divergence, dict):
        raise RunDirError(f"{run_dir}: diverged at step {divergence.get('step')}, so resuming would diverge "
                          "again; train it anew with a smaller learning rate (--lr)")
    summary.update(use_threads(config))
    built = build(config, join=distributed.launched())
    with membership(built):
        if not built.writes:  # other ranks of a torchrun job train alongside rank 0 and write nothing
            start, history, rule = _restore(built, run_dir, summary, write=False)
            return train_built(built, config, None, summary, history, False, None, start, rule=rule)
        # before anything is read: a run being written is not resumed under it
        claim(run_dir, elsewhere="copy the run directory and resume the copy")
        with _held(run_dir), StopRequest().installed() as stop:
            start, history, rule = _restore(built, run_dir, summary, write=True)
            files.write_config(run_dir, dump_config(config))
            summary.update(status="running", epochs=config.train.epochs)
            summary.setdefault("resumed_from", []).append(
                {"step": start, "at": timestamp(), "torch_version": torch.__version__})
            files.write_summary(run_dir, summary)
            return train_built(built, config, run_dir, summary, history, plots, observer, start, stop, rule)


def _restore(built: Built, run_dir: Path, summary: dict[str, Any],
             write: bool) -> tuple[int, list[dict[str, float]], dict[str, Any] | None]:
    """The checkpoint's state loaded into the trainer: the step it was at, the logged rows up
    to it, and the divergence rule's state (None in a checkpoint from before it was kept)."""
    config = built.config
    payload = load_checkpoint(run_dir, built.device)
    check_belongs(payload, config, data_hash(built.data.x, built.data.y), run_dir / CHECKPOINT)
    start = payload["step"]
    if start >= config.train.epochs * built.trainer.steps_per_epoch:
        trained = -(-start // built.trainer.steps_per_epoch)
        raise RunDirError(
            f"{run_dir}: already trained {start} steps ({trained} epochs); "
            f"pass --epochs with more than {trained} to continue"
        )
    try:
        built.trainer.load_state_dict(payload["trainer"])
        built.generator.set_state(payload["generator_state"].cpu())
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise RunDirError(f"{run_dir / CHECKPOINT}: damaged (its state does not fit this run: {why}); "
                          "it cannot be resumed from, so train the run again") from None
    rows = files.truncate_metrics(run_dir / "metrics.csv", start, config.train.log_every, write=write,
                                  summary=summary)
    return start, rows, payload.get("divergence")


def rerun(run_dir: str | Path, out: str | Path | None = None, *, force: bool = False,
          observer: Reporter | None = None) -> TrainResult:
    """Train a run directory's recorded config again, into a new run directory (`force`:
    replacing the bpcli run already in `out`)."""
    run_dir = Path(run_dir)
    config = _recorded_config(run_dir)
    return train(config, out, force=force, observer=observer, config_file=str(run_dir / "config.yaml"))

