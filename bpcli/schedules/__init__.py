"""Learning-rate schedules, one file each, and the driver that computes every member's lr.

SCHEDULES maps `train.schedule` to a schedule: its lr at update k (k = 0 for the first
update, a monotone function of k) as a function of the base lr and the train section, over
a span of T updates (the run's, less the warm-up), and the torch.optim.lr_scheduler class
it equals (stepped once per update). A linear warm-up of W = `train.warmup` updates
goes in front of any of them:

    lr_k = lr·(k + 1)/(W + 1)       for k < W     (LinearLR from 1/(W + 1) to 1 over W updates)
    lr_k = schedule(k − W)           after, over T = updates − W   (torch's SequentialLR)

The lr is computed on the device from the optimizer's step count and written in place
into one (K,) tensor, so a CUDA graph that captured a step replays the schedule too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from bpcli.errors import BpcliError
from bpcli.schedules import constant, cosine, exponential, linear, step

if TYPE_CHECKING:
    import torch

SCHEDULES: dict[str, Any] = {
    "constant": constant.SCHEDULE,
    "step": step.SCHEDULE,
    "exponential": exponential.SCHEDULE,
    "cosine": cosine.SCHEDULE,
    "linear": linear.SCHEDULE,
}
"""train.schedule → its schedule."""

DEFAULT = "constant"
"""The schedule of a config that names none: the lr never changes (the article's)."""

SETTINGS = ("gamma", "step_size", "lr_end")
"""The train settings a schedule may use (each lists its own in `uses`)."""


def scheduled(train: Any) -> bool:
    """Whether a train section's lr changes during the run."""
    return getattr(train, "schedule", DEFAULT) != DEFAULT or bool(getattr(train, "warmup", 0))


def span(train: Any, updates: int) -> int:
    """The updates the schedule itself spans: the run's, less the warm-up."""
    return updates - train.warmup


def check(train: Any, updates: int) -> None:
    """Refuse a schedule that the run's length cannot hold, in one line."""
    if scheduled(train) and span(train, updates) < 1:
        raise BpcliError(f"train.warmup: {train.warmup} updates leave none of this run's {updates} for the "
                         f"{train.schedule} schedule; use a warm-up shorter than the run, or more epochs")
    refuse = getattr(SCHEDULES[train.schedule], "refuse", None)  # a schedule's own one-line check
    problem = refuse(train) if refuse is not None else None
    if problem:
        raise BpcliError(problem)


def peak(train: Any, updates: int) -> float:
    """The largest lr the schedule reaches over the run: a schedule is monotone, so the larger
    of its first and last update's (a warm-up stays below lr)."""
    if not scheduled(train):
        return train.lr
    import torch

    schedule, length = SCHEDULES[train.schedule], span(train, updates)
    ends = schedule.lr(torch.tensor([0.0, length - 1.0], dtype=torch.float64), train.lr, train, length)
    return float(ends.max())


def describe(train: Any, updates: int) -> str:
    """The schedule in words (`cosine to 0, warm-up 10 updates`); '' for a constant lr."""
    if not scheduled(train):
        return ""
    schedule = SCHEDULES[train.schedule]
    extra = schedule.describe(train, span(train, updates)) if hasattr(schedule, "describe") else ""
    words = train.schedule + (f" {extra}" if extra else "")
    return words + (f", warm-up {train.warmup} updates" if train.warmup else "")


def lr_at(train: Any, updates: int, step: int) -> float:
    """The lr of update `step` (counted from 1), as the driver computes it."""
    if not scheduled(train):
        return train.lr
    import torch

    schedule = Schedule([train], updates, "cpu")
    schedule.advance(torch.tensor([float(step)], dtype=torch.float64))
    return float(schedule.lr[0])


def torch_scheduler(optimizer: Any, train: Any, updates: int) -> Any:
    """The torch.optim.lr_scheduler that this train section's schedule equals."""
    import torch

    main = SCHEDULES[train.schedule].torch_scheduler(optimizer, train, span(train, updates))
    if not train.warmup:
        return main
    warm = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1 / (train.warmup + 1), end_factor=1.0,
                                             total_iters=train.warmup)
    return torch.optim.lr_scheduler.SequentialLR(optimizer, [warm, main], milestones=[train.warmup])


class Schedule:
    """Every member's lr, (K,) in float64 on the device, advanced once per update."""

    @classmethod
    def of(cls, settings: Sequence[Any], updates: int | None, device: Any) -> Schedule | None:
        """The schedule of these members, or None when every member's lr is constant."""
        if not any(scheduled(s) for s in settings):
            return None
        if updates is None:
            raise BpcliError("train.schedule: this kind does not tell its optimizer how many updates the run has; "
                             "use schedule: constant with it")
        for s in settings:
            check(s, updates)
        return cls(settings, updates, device)

    def __init__(self, settings: Sequence[Any], updates: int, device: Any) -> None:
        import torch

        self.lr = torch.tensor([s.lr for s in settings], dtype=torch.float64, device=device)
        """The lr of the last update per member (the base lr before the first)."""
        groups: dict[tuple[Any, ...], list[int]] = {}
        for k, s in enumerate(settings):
            key = (s.schedule, s.warmup, *(getattr(s, name) for name in SETTINGS))
            groups.setdefault(key, []).append(k)
        self._groups = []
        for members in groups.values():
            s = settings[members[0]]
            rows = None if len(groups) == 1 else torch.tensor(members, device=device)
            base = self.lr.clone() if rows is None else self.lr.index_select(0, rows)
            self._groups.append((SCHEDULES[s.schedule], rows, base, s, span(s, updates)))

    def advance(self, t: torch.Tensor) -> None:
        """Set `lr` to each member's lr of update t (t counts from 1; k = t − 1 in the formulas)."""
        import torch

        k = t[:1] - 1
        for schedule, rows, base, s, length in self._groups:
            lr = schedule.lr(k - s.warmup, base, s, length)
            if s.warmup:  # lr·(k + 1)/(W + 1) while k < W
                lr = torch.where(k < s.warmup, base * (k + 1) / (s.warmup + 1), lr)
            if rows is None:
                self.lr.copy_(lr)
            else:
                self.lr.index_copy_(0, rows, lr)
