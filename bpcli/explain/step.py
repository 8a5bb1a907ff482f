"""A training step explained: the graph of a config's loss at one step, then the step's update.

`explain_config` builds a config's trainer and trains it up to the step; `explain_step`
records the kind's own loss function (the one training differentiates), then takes the
step and lists each parameter's values before and after it. A step's graph is shown as
training computed it, NaN and infinity included: that is what a diverged step looks like.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bpcli import schedules
from bpcli.errors import BpcliError
from bpcli.explain.recorder import Graph, build_graph, first_values, operation_recorder

if TYPE_CHECKING:
    import torch


def explain_step(trainer: Any, index: int, sample: int | None, lr: float, title: str) -> Graph:
    """The graph of the loss at the training step on batch `index`, then the step itself, for the update."""
    batch = trainer.batch(index)
    samples = batch["y"].numel()
    if sample is not None and samples > 1 and not 0 <= sample < samples:
        raise BpcliError(f"--sample {sample} is out of range: this data has samples 0 to {samples - 1}")
    shown = sample if samples > 1 else None
    if samples > 1 and shown is None:
        shown = 0
    params = {name: p.detach().clone().requires_grad_(True) for name, p in trainer.params().items()}
    leaves: dict[str, tuple[str, torch.Tensor]] = {name: ("param", p) for name, p in params.items()}
    leaves.update({name: ("input", t) for name, t in batch.items()})
    # A kind may give its loss as a learner writes it (logistic: σ, then the log-loss), equal to the loss it trains on.
    written_loss = getattr(trainer, "explained_loss", trainer.loss)
    with operation_recorder() as recorder:
        loss = written_loss(params, batch)
    graph, full = build_graph(recorder.calls, leaves, loss, samples, shown, title)
    # The parameters are the first leaves: their gradients are the ones the update uses
    # (one member, so the loss is one number). Only the first SHOWN_VALUES of each are
    # listed, and the recorded computation is let go before the step allocates its own.
    grads = {name: first_values(full[i]) for i, name in enumerate(params)}
    before = {name: first_values(p) for name, p in params.items()}
    sizes = {name: p.numel() for name, p in params.items()}
    del recorder, loss, full, leaves, params
    trainer.step(index)
    after = {name: first_values(p) for name, p in trainer.params().items()}
    used = {name: first_values(g) for name, g in trainer.gradients().items()}
    for name, size in sizes.items():
        for i, (b, g, a, t) in enumerate(zip(before[name], grads[name], after[name], used[name])):
            graph.update.append({
                "param": name if size == 1 else f"{name}[{i}]",
                "before": b, "grad": g, "lr": lr, "after": a, "training_grad": t,
            })
    return graph


def explain_config(config: Any, step: int | None = None, sample: int | None = None) -> Graph:
    """The graph of a config's training step `step` (default 1), trained up to it first.

    For per-sample training `sample` picks the step of the first epoch that trains on that
    sample (when no step is given); for full-batch and mini-batch training it picks whose
    values are shown, by its place in the step's batch.
    """
    from bpcli.kinds.base import batch_index
    from bpcli.build import build

    trainer = build(config).trainer
    per_sample = trainer.batches.size == 1  # one sample per step
    mini_batches = not per_sample and trainer.steps_per_epoch > 1
    if per_sample and sample is not None:
        if sample >= trainer.steps_per_epoch:
            raise BpcliError(f"--sample {sample} is out of range: this data has samples 0 to "
                             f"{trainer.steps_per_epoch - 1}")
        if step is None:  # the step of epoch 1 that trains on it (shuffled: where the order put it)
            order = trainer.batches.order[0].tolist() if trainer.shuffle else None  # epoch 1's, drawn when made
            step = (order.index(sample) if order else sample) + 1
    step = step or 1
    total = config.train.epochs * trainer.steps_per_epoch
    if step > total:
        raise BpcliError(f"--step {step} is beyond this config's {total} steps; raise train.epochs")
    if mini_batches and sample is not None:
        # Batch i of an epoch holds samples i·B … i·B + B − 1: B of them, but the last batch
        # holds the remainder, N − i·B.
        index, size = (step - 1) % trainer.steps_per_epoch, trainer.batches.size
        held = min(size, trainer.batches.samples - index * size)
        if sample >= held:
            short = f" (the last of its epoch, the remainder of {trainer.batches.samples} samples in batches of " \
                    f"{size})" if held < size else ""
            raise BpcliError(f"--sample {sample} is out of range: --sample is a place in the step's batch, and step "
                             f"{step}'s batch{short} has {held} sample{'s' if held != 1 else ''}, 0 to {held - 1}")
    for earlier in range(1, step):
        trainer.step(batch_index(trainer, earlier))
    index = batch_index(trainer, step)
    shown = int(trainer.batches.order[0, index]) if per_sample and trainer.shuffle else index
    title = f"{config.kind}, step {step}" + (f" (sample {shown})" if per_sample else "")
    if mini_batches:
        title += f" (batch {index + 1} of {trainer.steps_per_epoch} in epoch {(step - 1) // trainer.steps_per_epoch + 1})"
    lr = schedules.lr_at(config.train, total, step)  # the lr of this step, where a schedule changes it
    graph = explain_step(trainer, index, None if per_sample else sample, lr, title)
    graph.rule = _update_rule(config.train, total)
    return graph


def _update_rule(train: Any, updates: int) -> str:
    """The update of a step in symbols, when it is more than θ ← θ − lr·dL/dθ (the rule's own
    words), and the lr schedule, where there is one."""
    from bpcli.optimizers import OPTIMIZERS, settings_of

    rule = OPTIMIZERS[train.optimizer].formula(settings_of(train), "dL/dθ")
    schedule = schedules.describe(train, updates)
    return "; ".join(part for part in (rule, f"lr schedule {schedule}" if schedule else "") if part)

