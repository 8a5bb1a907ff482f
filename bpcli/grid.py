"""What a sweep's grid is and which members it makes: `--grid` parsed, every combination
expanded into a validated config of its own, and the grids refused that one batched run
cannot train (a setting that changes shapes, a value given twice, an optimizer setting
a member's rule does not have).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Optional

from pydantic import ValidationError

from bpcli import optimizers, schedules
from bpcli.config import Experiment, Override, load_yaml, with_overrides
from bpcli.errors import BpcliError

# The settings that may differ between members of one batched run: they change the
# numbers (data, initial values, learning rate), never the shapes or the schedule.
GRID_KEYS = {
    "lr": "train.lr", "train.lr": "train.lr", "seed": "seed",
    "data.noise": "data.noise", "data.true_w": "data.true_w", "data.true_b": "data.true_b",
    "data.x_low": "data.x_low", "data.x_high": "data.x_high", "data.fn": "data.fn",
    # the optimizer, its settings (every rule's, from the registry) and the lr schedule
    **{key: f"train.{name}" for name in ("optimizer", *optimizers.setting_names(), "schedule", "warmup",
                                          *schedules.SETTINGS) for key in (name, f"train.{name}")},
}
"""Besides these, any number in a kind's `model` section (an initial value such as
model.init_w) may vary; its sizes (model.hidden) may not."""
MAX_MEMBERS = 1_000_000


def parse_grid(items: list[str]) -> dict[str, list[Any]]:
    """`--grid lr=0.001,0.01` and `--grid seed=0:10` as {"train.lr": [...], "seed": [0, …, 9]}."""
    grid: dict[str, list[Any]] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not text.strip():
            raise BpcliError(f"--grid {item!r}: write key=v1,v2,… or key=start:stop, e.g. --grid lr=0.01,0.1")
        if key not in GRID_KEYS and not key.startswith("model."):
            raise BpcliError(
                f"--grid {key}: not a setting one batched sweep can vary (the members of a batch share "
                f"their shapes, schedule and data); vary one of {', '.join(sorted(set(GRID_KEYS) - {'train.lr'}))} or a number "
                "in the model section (such as model.init_w), or run separate sweeps"
            )
        path = GRID_KEYS.get(key, key)
        if path in grid:
            raise BpcliError(f"--grid {key}: given twice; list all its values in one --grid")
        start, colon, stop = text.partition(":")
        if colon and start.strip().lstrip("-").isdigit() and stop.strip().lstrip("-").isdigit():
            if int(stop) - int(start) > MAX_MEMBERS:  # refused before the list is built
                raise BpcliError(f"--grid {item!r}: {int(stop) - int(start):,} values; at most {MAX_MEMBERS:,} "
                                 "members fit in one sweep")
            values: list[Any] = list(range(int(start), int(stop)))
        else:
            try:
                values = [load_yaml(v) for v in text.split(",")]
            except Exception:
                raise BpcliError(f"--grid {item!r}: a value is not valid YAML") from None
        if not values:
            raise BpcliError(f"--grid {item!r}: the range is empty (stop is exclusive)")
        _refuse_repeats(key, text.split(",") if not colon else [], values)
        grid[path] = values
    if not grid:
        raise BpcliError("give at least one --grid, e.g. --grid lr=0.001,0.01,0.1 --grid seed=0:10")
    return grid


def _refuse_repeats(key: str, written: list[str], values: list[Any]) -> None:
    """Refuse a value listed twice (0.1 and 1e-1, 1 and 1.0 are one value): its members would
    be the same run trained twice, whose spread of 0 would pass for agreement."""
    for i, value in enumerate(values):
        for j in range(i):
            if values[j] == value and isinstance(values[j], bool) == isinstance(value, bool):
                first, second = (written[j].strip(), written[i].strip()) if written else ("", "")
                texts = f" (as {first} and {second})" if first != second else ""
                raise BpcliError(f"--grid {key}: {value!r} is given twice{texts}, so two members would be the "
                                 "same run; list each value once")


def expand(config: Experiment, grid: dict[str, list[Any]]) -> list[tuple[dict[str, Any], Experiment]]:
    """Every combination of the grid, each as (its settings, its validated config)."""
    model = type(config).model_fields["model"].annotation
    for path in (p for p in grid if p.startswith("model.")):
        field = model.model_fields.get(path.split(".", 1)[1])
        if field is None or field.annotation not in (float, Optional[float]):
            valid = [f"model.{n}" for n, f in model.model_fields.items() if f.annotation in (float, Optional[float])]
            raise BpcliError(f"--grid {path}: not a number of this kind's model section that a batched sweep can "
                             f"vary; vary {', '.join(valid) or 'the learning rate or the seed'} instead")
    count = math.prod(len(values) for values in grid.values())
    if count > MAX_MEMBERS:  # refused before the combinations are built
        raise BpcliError(f"the grid has {count:,} combinations; at most {MAX_MEMBERS:,} fit in one sweep")
    _refuse_unused_settings(config, grid)
    combinations = itertools.product(*grid.values())
    # Every combination is validated in full (settings can depend on each other, like
    # x_low < x_high), but straight from the base config's dump: only the sections a grid
    # key touches are copied, so a sweep of 65 536 members validates in about a second.
    # A combination that fails goes through the usual path for its one-line message.
    base = config.model_dump(mode="json")
    members = []
    for values in combinations:
        settings = dict(zip(grid, values))
        raw = dict(base)
        for path, value in settings.items():
            *sections, key = path.split(".")
            node = raw
            for name in sections:
                node[name] = dict(node[name])
                node = node[name]
            node[key] = value
        _own_optimizer_settings(raw, settings)
        try:
            member = type(config).model_validate(raw)
        except ValidationError:
            overrides = [Override(path=k, value=v, origin=f"--grid {k}={v}") for k, v in settings.items()]
            member = with_overrides(config, overrides)  # raises the ConfigError that says why
        members.append((settings, member))
    return members


def _own_optimizer_settings(raw: dict[str, Any], settings: dict[str, Any]) -> None:
    """In a grid over the optimizer, each member keeps only its own rule's settings:
    `--grid optimizer=sgd,adam --momentum 0.9` compares SGD with momentum against Adam (docs/optimizers.md). A
    setting that the grid gives the member itself must be its rule's."""
    if "train.optimizer" not in settings:
        return
    rule = optimizers.OPTIMIZERS.get(settings["train.optimizer"])
    if rule is None:
        return  # validation names the unknown optimizer
    for name in optimizers.setting_names():
        if name in rule.Settings.model_fields:
            continue
        given = settings.get(f"train.{name}")
        if optimizers.given(name, given):
            raise BpcliError(
                f"--grid: the member with optimizer {settings['train.optimizer']} and train.{name}={given} is not a "
                f"run, {name} not being one of its settings; to compare a rule with {name} against "
                f"{settings['train.optimizer']}, give {name} with --set (it then applies to the members that have it)"
            )
        raw["train"] = {**raw["train"], name: None}


def _refuse_unused_settings(config: Experiment, grid: dict[str, list[Any]]) -> None:
    """A setting of the base config that no member's optimizer has is refused, in the words
    and by the rule that refuse it in a single run's config."""
    if "train.optimizer" not in grid:
        return
    values = {name: getattr(config.train, name) for name in optimizers.setting_names()}
    rules = [str(r) for r in dict.fromkeys(grid["train.optimizer"]) if r in optimizers.OPTIMIZERS]
    problem = optimizers.misplaced(rules, values, "this sweep's members use") if rules else None
    if problem:
        raise BpcliError(problem)

