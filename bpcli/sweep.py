"""Sweeps: every combination of a grid of settings, trained at once as one batched model.

Each combination is a *member*: a full config of its own (its data and initial parameters
drawn from its own seed, its own learning rate). The members' trainers are stacked along
the leading member dimension, so one batched step updates all K of them, and each member
ends exactly where a single run with its settings would (to float rounding).

This module runs and resumes a sweep; bpcli.grid says which members a grid makes, and
bpcli.sweep_results what is written of them.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from bpcli import distributed, interrupts
from bpcli.build import build, check_memory, use_threads
from bpcli.config import Experiment, Override, dump_config, read_yaml, validate_config
from bpcli.devices import resolve_device
from bpcli.divergence import explain_members
from bpcli.engines import wrap
from bpcli.errors import BpcliError, RunDirError, RunFailed
from bpcli.grid import expand
from bpcli.kinds import KINDS
from bpcli.kinds.base import whole_data_loss
from bpcli.kinds.tasks import task_of
from bpcli.lifecycle import tensorboard_writer_class
from bpcli.loop import Callback, Divergence, Loop, Progress, Reporter
from bpcli.recording import Checkpoints
from bpcli.rundir import sweep as files
from bpcli.rundir.checkpoint import CHECKPOINT, check_belongs, data_hash, load_checkpoint
from bpcli.rundir.files import claim, create_run_dir, release, timestamp
from bpcli.rundir.sweep import is_sweep_dir
from bpcli.sweep_results import (QUALITY_MEMBERS, SweepResult, aggregate, member_quality, member_results,
                                 write_results, write_tensorboard)


def run_sweep(config: Experiment, grid: dict[str, list[Any]], out: Path | None = None,
              force: bool = False, plots: bool = True, save: bool = True,
              observer: Reporter | None = None) -> SweepResult:
    """Train every member of the grid at once and write the sweep directory (default
    outputs/sweep<N>; nothing with save=False).

    SIGINT or SIGTERM stops the sweep after the current step; the directory then holds
    every member as it was at that step, with status `interrupted`. Under torchrun the
    members are split into contiguous chunks, one per process, each trained as one batch;
    rank 0 gathers the results and writes the directory.
    """
    members = expand(config, grid)
    group = None
    if distributed.launched():
        group, _ = distributed.join(resolve_device(config.device))
    share = -(-len(members) // (1 if group is None else group.world))  # members per process
    check_memory(config, resolve_device(config.device), share)
    use_threads(config, share)  # sweep.json records the count
    writer = group is None or group.rank == 0
    if config.log.tensorboard and save and writer:
        tensorboard_writer_class()  # a missing package is said before training, not after
    directory = None
    try:
        # Made before training, so that an --out that cannot be used is said at once.
        directory = _start_directory(out, force, config, grid, len(members)) if save and writer else None
        first, last = _chunks(len(members), 1 if group is None else group.world)[0 if group is None else group.rank]
        part, save_checkpoint = _train_members(members[first:last], config, observer if writer else None, directory,
                                               stoppable=group is None, grid=grid,
                                               measured=len(members) <= QUALITY_MEMBERS)
        parts = [part] if group is None else distributed.gather(part, group)
        if group is not None:
            distributed.leave()
            group = None
        with interrupts.holding():  # training is over: its files are written whole
            result = _finish(directory, config, grid, members, parts, plots)
            save_checkpoint()
            return result
    except BaseException as exc:
        if group is not None:
            distributed.leave(clean=False)
        if isinstance(exc, OSError) and exc.filename is None and directory is not None:
            exc.filename = str(directory)  # a figure or an event file that failed part-way: name where
        if directory is not None:  # never left saying `running`
            _record_failure(directory, config, grid, len(members), exc)
        raise
    finally:
        if directory is not None:
            release(directory)


def resume_sweep(directory: str | Path, epochs: int | None = None, *, plots: bool = True,
                 observer: Reporter | None = None) -> SweepResult:
    """Continue a sweep from its checkpoint, in its own directory, to `epochs` (or the
    configured number): every member as if the sweep had never stopped."""
    directory = Path(directory)
    if not is_sweep_dir(directory):
        what = "a run directory" if (directory / "summary.json").is_file() else "not a sweep directory (no sweep.json)"
        raise RunDirError(f"{directory}: {what}; `bpcli sweep --resume` continues a sweep, `bpcli train --resume` a run")
    if distributed.launched():
        raise BpcliError("a sweep is resumed in one process; run `bpcli sweep --resume` without torchrun")
    info = files.read_info(directory)
    if info.get("status") == "diverged":
        raise RunDirError(f"{directory}: every member diverged, so resuming would diverge again; run the sweep anew "
                          "(sweep.json's members say why, in summary.csv's divergence column)")
    grid, earlier = _recorded_grid(directory, info)
    overrides = [Override(path="train.epochs", value=epochs, origin=f"--epochs {epochs}")] if epochs else []
    config = validate_config(read_yaml(directory / "config.yaml"), overrides, source=str(directory / "config.yaml"))
    device = resolve_device(config.device)
    files.refuse_links(directory)
    if not (directory / CHECKPOINT).exists() and isinstance(info.get("processes"), int) and info["processes"] > 1:
        raise RunDirError(f"{directory}: trained by {info['processes']} torchrun processes, each holding a share of "
                          "the members, so it has no checkpoint; run the sweep again in one process to resume it")
    claim(directory, elsewhere="copy the sweep directory and resume the copy")  # not under a sweep still running
    began = False
    try:
        checkpoint = load_checkpoint(directory, device)
        if checkpoint.get("grid") != grid_text(grid):
            raise RunDirError(f"{directory}/sweep.json: its grid is not the one {CHECKPOINT} was trained with (edited "
                              "since?); put it back, or run the sweep anew")
        try:
            members = expand(config, grid)
        except BpcliError as exc:
            raise RunDirError(f"{directory}/sweep.json: its grid cannot be swept ({exc}); run the sweep anew") from None
        check_memory(config, device, len(members))
        use_threads(config, len(members))
        if config.log.tensorboard:
            tensorboard_writer_class()
        batch = _stack(members, config, observer, checkpoint, directory)  # checked before a byte is written
        resumed = [*earlier, {"step": checkpoint["step"], "at": timestamp(), "torch_version": torch.__version__}]
        began = True
        files.write_config(directory, dump_config(config))
        files.write_info(directory, {**info, "status": "running", "resumed_from": resumed})
        part, save_checkpoint = _train_members(members, config, observer, directory, stoppable=True, batch=batch,
                                               grid=grid, measured=len(members) <= QUALITY_MEMBERS)
        with interrupts.holding():
            # sweep.json keeps the torch version the sweep began with; resumed_from says which came after
            result = _finish(directory, config, grid, members, [part], plots,
                             {"resumed_from": resumed, "torch_version": info.get("torch_version", torch.__version__)})
            save_checkpoint()
            return result
    except BaseException as exc:
        if began:  # never left saying `running` (or `completed`, if what follows training failed)
            _record_failure(directory, config, grid, len(members), exc)
        raise
    finally:
        release(directory)


def _recorded_grid(directory: Path, info: dict[str, Any]) -> tuple[dict[str, list[Any]], list[Any]]:
    """sweep.json's grid and its earlier resumes, refused in one line if they are not what bpcli writes."""
    grid, resumed = info.get("grid"), info.get("resumed_from", [])
    if not isinstance(grid, dict) or not grid or not all(
            isinstance(values, list) and values for values in grid.values()):
        raise RunDirError(f"{directory}/sweep.json: its grid is damaged (each setting needs a list of values); "
                          "the sweep cannot be resumed, so run it anew")
    if not isinstance(resumed, list):
        raise RunDirError(f"{directory}/sweep.json: resumed_from is damaged (not a list); the sweep cannot be "
                          "resumed, so run it anew")
    return grid, resumed


def _record_failure(directory: Path, config: Experiment, grid: dict[str, list[Any]], members: int,
                    exc: BaseException) -> None:
    """sweep.json for a sweep that stopped on an error (or a second Ctrl-C): what happened."""
    status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    try:
        info = files.read_info(directory)  # what it said: steps, timings, versions, earlier resumes
    except RunDirError:
        info = {}
    info.update({"kind": config.kind, "grid": grid, "members": members, "status": status,
                 "error": {"type": type(exc).__name__, "message": str(exc)}})
    try:
        files.write_info(directory, info)
    except OSError:
        pass  # a full disk: the error itself is what the user sees


def _start_directory(out: Path | None, force: bool, config: Experiment, grid: dict[str, list[Any]],
                     members: int) -> Path:
    """The sweep directory, marked as a running sweep at once (so --force may replace it if cut short)."""
    directory = create_run_dir(out, force=force, prefix="sweep")
    files.write_config(directory, dump_config(config))
    files.write_info(directory, {"kind": config.kind, "grid": grid, "members": members, "status": "running"})
    return directory


def _finish(directory: Path | None, config: Experiment, grid: dict[str, list[Any]],
            members: list[tuple[dict[str, Any], Experiment]], parts: list[dict[str, Any]],
            plots: bool, info: dict[str, Any] | None = None) -> SweepResult:
    """The processes' results joined into one SweepResult, and the sweep directory written."""
    total = max(p["steps"] for p in parts)
    seconds = max(p["seconds"] for p in parts)
    results = [r for p in parts for r in p["results"]]
    steps = [s for s, _ in next((p for p in parts if p["history"]), {"history": []})["history"]]
    history = [(step, [v for p in parts if p["history"] for v in p["history"][i][1]])
               for i, step in enumerate(steps)]
    rows = [{"member": k, **settings, **result} for k, ((settings, _), result) in enumerate(zip(members, results))]
    status = "diverged" if all(r["status"] == "diverged" for r in rows) else parts[0]["status"]
    result = SweepResult(directory, rows, aggregate(rows, grid), seconds, total, status, parts[0]["signal"])
    if directory is None:
        return result
    try:
        write_results(directory, config, grid, result, history, parts[0]["device"], len(parts), info or {})
        if config.log.tensorboard and history:
            write_tensorboard(directory / "tensorboard", grid, rows, history)
        if plots and history:  # a sweep stopped before its first step has no loss to draw
            from bpcli.plots import draw_sweep

            draw_sweep(directory, history=history)
    except (OSError, RunDirError) as exc:  # a full disk, a link where a file goes: the sweep failed, exit 1
        why = str(exc) if isinstance(exc, RunDirError) else f"{exc.filename or directory}: {exc.strerror or exc}"
        kept = (f"`bpcli sweep --resume {directory}` continues from its last checkpoint"
                if (directory / CHECKPOINT).is_file() else "run the sweep again")
        raise RunFailed(f"{why.rstrip('.')} (the sweep trained {total} steps and is recorded as failed; once "
                        f"fixed, {kept})") from None
    return result


def _chunks(count: int, world: int) -> list[tuple[int, int]]:
    """[start, end) member ranges, one per process, as even as can be."""
    base, extra = divmod(count, world)
    bounds, start = [], 0
    for rank in range(world):
        end = start + base + (1 if rank < extra else 0)
        bounds.append((start, end))
        start = end
    return bounds


class SweepLog(Callback):
    """Every member's loss at each logged step, kept on the device until the sweep ends
    (no host synchronisation inside the loop, no Python work per member), and the
    members' median for a console."""

    def __init__(self, reporter: Reporter | None) -> None:
        self.reporter = reporter
        self.steps: list[int] = []
        self.losses: list[torch.Tensor] = []

    def on_log(self, loop: Loop, step: int, losses: torch.Tensor) -> None:
        self.steps.append(step)
        self.losses.append(losses.clone())  # a graph replay overwrites its loss tensor
        if self.reporter is not None:
            self.reporter.on_log(_progress_row(step, loop.epoch(step), losses))

    def snapshot(self) -> dict[str, torch.Tensor]:
        """The losses logged so far, for a checkpoint: steps (S,) and losses (S, K), on the CPU."""
        losses = torch.stack(self.losses).cpu() if self.losses else torch.empty(0)
        return {"steps": torch.tensor(self.steps, dtype=torch.long), "losses": losses}

    def restore(self, snapshot: dict[str, torch.Tensor], device: torch.device, log_every: int) -> None:
        """The losses a checkpoint kept, as if they had been logged by this sweep (without the
        last step of a shorter sweep, which a longer one does not log)."""
        rows = [(step, row) for step, row in zip(snapshot["steps"].tolist(), snapshot["losses"])
                if step == 1 or step % log_every == 0]
        self.steps = [step for step, _ in rows]
        self.losses = [row.to(device) for _, row in rows]

    def history(self) -> list[tuple[int, list[float]]]:
        """[(step, [loss of each member])], empty when no step was logged (a sweep stopped
        before its first); waits for the device."""
        return list(zip(self.steps, torch.stack(self.losses).tolist())) if self.losses else []


def _progress_row(step: int, epoch: int, losses: torch.Tensor) -> dict[str, float]:
    """What a console shows of a logged step: the members' median, lowest and highest finite
    loss, and how many members have none."""
    finite = losses[torch.isfinite(losses)]
    row = {"step": step, "epoch": epoch, "loss": math.nan}
    if finite.numel():
        median, low, high = torch.stack([finite.median(), finite.min(), finite.max()]).tolist()
        row.update(loss=median, min=low, max=high)
    if finite.numel() < losses.numel():
        row["nan_or_inf"] = losses.numel() - finite.numel()  # members left out of the figures above
    return row


@dataclass
class _Batch:
    """A sweep's members stacked into one trainer, with the callbacks that record them,
    ready to train from step `start` + 1."""

    built: list[Any]
    trainer: Any
    device: torch.device
    log: SweepLog
    divergence: Divergence
    start: int = 0

    @functools.cached_property
    def digest(self) -> str:
        """A hash of every member's training data, in member order (for checkpoints only)."""
        return data_hash(torch.cat([b.data.x.reshape(-1) for b in self.built]),
                         torch.cat([b.data.y.reshape(-1) for b in self.built]))


def _stack(members: list[tuple[dict[str, Any], Experiment]], config: Experiment, observer: Reporter | None,
           checkpoint: dict[str, Any] | None = None, directory: Path | None = None) -> _Batch:
    """The members as one batched trainer (from `checkpoint` if given, which is checked
    against them before anything is written)."""
    # device is not a grid key, so every member trains where the base config says. Members
    # are built on the CPU (their own data and initial values, from their own seeds) and
    # the stack moves to the device in one copy per tensor, not one per member.
    device = resolve_device(config.device)
    built = [build(cfg, device=torch.device("cpu")) for _, cfg in members]
    trainer = wrap(KINDS[config.kind].trainer.stack([b.trainer for b in built], device), config.train.engine, device)
    # Per-sample and mini-batch members: the rule measures against the loss on all samples.
    divergence = Divergence(config.train.diverge_factor, trainer,
                            first=None if trainer.batches.full else whole_data_loss(trainer))
    batch = _Batch(built, trainer, device, SweepLog(observer), divergence)
    if checkpoint is not None:
        batch.start = _restore(checkpoint, directory, config, batch)
    return batch


def _train_members(members: list[tuple[dict[str, Any], Experiment]], config: Experiment,
                   observer: Reporter | None = None, directory: Path | None = None,
                   stoppable: bool = False, batch: _Batch | None = None,
                   grid: dict[str, list[Any]] | None = None,
                   measured: bool = True) -> tuple[dict[str, Any], Callable[[], None]]:
    """Train these members as one batched model (`batch`: already stacked); their results
    and logged losses, and what writes the checkpoint of where they ended. In a single
    process (`stoppable`) with a directory, checkpoint.pt is written every
    train.checkpoint_every steps, and at the end by that function once the sweep's files
    are (so that a sweep whose files could not be written resumes from before, not after).
    `measured`: whether each member's accuracy or R² is measured (see QUALITY_MEMBERS)."""
    if not members:
        return {"results": [], "history": [], "seconds": 0.0, "steps": 0, "device": "", "status": "completed",
                "signal": None}, lambda: None
    batch = batch or _stack(members, config, observer)
    trainer, log, divergence = batch.trainer, batch.log, batch.divergence
    total = config.train.epochs * trainer.steps_per_epoch
    saved = directory if stoppable else None  # under torchrun a process holds only its chunk of members
    digest = batch.digest if saved is not None else ""  # hashed only where a checkpoint is written
    checkpoints = Checkpoints(saved, trainer, config, batch.built[0].generator, digest, divergence,
                              extra=lambda: {"losses": log.snapshot(), "grid": grid_text(grid)})
    callbacks: list[Callback] = [divergence, log]  # a step the search moved back from is not logged
    if checkpoints.every:
        callbacks.append(checkpoints)
    if observer is not None:
        callbacks.append(Progress(observer, total))
        observer.on_start(total, directory, str(batch.device), batch.start)
    loop = Loop(trainer, total, config.train.log_every, callbacks, batch.start, stoppable=stoppable).run()
    if loop.status == "diverged":  # every member diverged: the step the last one did is logged, as a run's is
        log.on_log(loop, loop.step, divergence.losses)
    step = loop.step
    # Completed or interrupted: resumable from here (a sweep whose members all diverged is not).
    finish = (lambda: checkpoints.save(step)) if loop.status != "diverged" else (lambda: None)
    history = log.history()
    results = member_results(len(members), trainer, history, divergence, loop.status)
    if divergence.diverged():  # each diverged member told why, as a single run with its settings is
        bounds = [task_of(b.trainer).stable_lr(b.data, b.config.train) if k in divergence.diverged() else None
                  for k, b in enumerate(batch.built)]
        records = explain_members(batch.built, trainer, divergence, batch.start, loop.step, bounds)
        for k, record in records.items():
            results[k]["divergence"] = record["message"]
    if measured:
        for result, quality in zip(results, member_quality(batch.built, trainer, divergence)):
            result.update(quality)
    if not trainer.batches.full:
        for result, loss in zip(results, whole_data_loss(trainer).tolist()):
            result["final_loss_all_samples"] = loss
    return {"results": results,
            "history": history, "seconds": loop.seconds, "steps": loop.step, "device": str(batch.device),
            "status": loop.status, "signal": loop.signal}, finish


def grid_text(grid: dict[str, list[Any]] | None) -> str:
    """A grid as checkpoint.pt keeps it: its JSON, in order (the order of its keys and values
    is the order of the members)."""
    return json.dumps(grid)


def _restore(checkpoint: dict[str, Any], directory: Path | None, config: Experiment, batch: _Batch) -> int:
    """A sweep's checkpoint loaded into its trainer, log and divergence rule; the step it was at."""
    trainer = batch.trainer
    where = Path(directory or ".") / CHECKPOINT
    check_belongs(checkpoint, config, batch.digest, where)
    total = config.train.epochs * trainer.steps_per_epoch
    start = checkpoint["step"]
    if start >= total:
        trained = -(-start // trainer.steps_per_epoch)
        raise RunDirError(f"{directory}: already trained {start} steps ({trained} epochs); "
                          f"pass --epochs with more than {trained} to continue")
    try:
        trainer.load_state_dict(checkpoint["trainer"])
        batch.divergence.restore(checkpoint["divergence"])
        batch.log.restore(checkpoint["losses"], batch.device, config.train.log_every)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as exc:
        why = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise RunDirError(f"{where}: damaged (its state does not fit this sweep: {why}); it cannot be resumed "
                          "from, so run the sweep again") from None
    return start


