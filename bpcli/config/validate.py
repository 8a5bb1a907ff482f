"""Loading, overriding and validating configs: every problem collected, raised once.

The kind named in a config picks its class from the registry in bpcli.kinds, so a kind
registered there (even at run time) validates like the shipped ones.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import ValidationError

import bpcli.kinds
from bpcli.config.loading import dump_yaml, read_yaml
from bpcli.config.messages import describe, unknown_kind
from bpcli.config.overrides import Override, apply
from bpcli.config.schema import SECTION_ORDER, Experiment
from bpcli.errors import ConfigError


def load_config(path: str | Path, overrides: list[Override] | None = None) -> Experiment:
    """Read, override and validate a config file; a ConfigError lists every problem."""
    raw = read_yaml(path)
    config = validate_config(raw, overrides or [], source=str(path))
    data = config.data
    if data.source == "csv" and not Path(data.path).is_absolute():
        # A data file is found next to the config that names it, wherever bpcli runs.
        located = (Path(path).parent / data.path).resolve()
        config = config.model_copy(update={"data": data.model_copy(update={"path": str(located)})})
    return config


def validate_config(
    raw: dict[str, Any], overrides: list[Override] | None = None, source: str = "<config>"
) -> Experiment:
    """Validate a raw config mapping after applying overrides; raise one ConfigError."""
    try:
        raw = copy.deepcopy(raw)
    except RecursionError:  # libyaml reads up to 1000 levels; Python's recursion stops sooner
        raise ConfigError(source, ["nested too deeply to be a config"]) from None
    problems = [p for o in overrides or [] if (p := apply(raw, o)) is not None]
    if problems:
        raise ConfigError(source, problems)

    kinds = bpcli.kinds.KINDS
    kind = raw.get("kind")
    entry = kinds.get(kind) if isinstance(kind, str) else None
    if entry is None:
        raise ConfigError(source, [unknown_kind(kind, list(kinds))])
    try:
        return entry.config.model_validate(raw)
    except ValidationError as exc:
        lines = [describe(err, entry.config, overrides or []) for err in _union_errors(exc.errors())]
        raise ConfigError(source, list(dict.fromkeys(lines))) from None  # each problem once


def _union_errors(errors: list[Any]) -> list[Any]:
    """The errors of one member of each union a value fits none of (predict: a list of
    numbers, or of lists): the member that objects least to the value's types, so that
    [.nan] is "not a finite number" from the list of numbers, not "not a list" from the
    list of lists; other errors as they are."""
    def split(err: Any) -> tuple[tuple[Any, ...], str | None]:
        loc = err["loc"]
        at = next((i for i, p in enumerate(loc) if isinstance(p, str) and p.startswith("list[")), None)
        return (tuple(loc[:at]), loc[at]) if at is not None else (tuple(loc), None)

    members: dict[tuple[Any, ...], dict[str, list[Any]]] = {}
    for err in errors:
        union, member = split(err)
        if member is not None:
            members.setdefault(union, {}).setdefault(member, []).append(err)
    chosen = {union: min(found.values(), key=lambda errs: (sum(e["type"].endswith("_type") for e in errs), len(errs)))
              for union, found in members.items()}
    return [err for err in errors if split(err)[1] is None or any(err is e for e in chosen[split(err)[0]])]


def with_overrides(config: Experiment, overrides: list[Override]) -> Experiment:
    """A copy of a validated config with overrides applied and validated again."""
    return validate_config(config.model_dump(mode="json"), overrides, source="<config>")


def dump_config(config: Experiment) -> str:
    """The config as YAML, sections in reading order, ready to be saved or printed."""
    raw = config.model_dump(mode="json")
    ordered = {key: raw[key] for key in SECTION_ORDER if key in raw}
    return dump_yaml(ordered)
