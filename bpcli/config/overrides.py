"""Overrides: changes to a loaded config from `--set key=value` and the named flags."""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict

from bpcli.config.loading import load_yaml
from bpcli.errors import ConfigError
from bpcli.flags import OVERRIDE_FLAGS, keyword


class Override(BaseModel):
    """One change to a loaded config: a dotted key, its new value, and the flag that set it."""

    model_config = ConfigDict(frozen=True)

    path: str
    value: Any
    origin: str


FLAGS: dict[str, str] = {flag: row.path for flag, row in OVERRIDE_FLAGS.items()}
"""The named flags and the config field each one sets (from bpcli.flags.OVERRIDE_FLAGS);
they win over --set."""


def parse_set(assignment: str) -> Override:
    """An Override from a `--set dotted.key=value` string; the value is parsed as YAML."""
    key, sep, text = assignment.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(
            "--set", [f"{assignment!r} is not key=value; write e.g. --set train.lr=0.05"]
        )
    try:
        value = load_yaml(text) if text.strip() else None
    except yaml.constructor.ConstructorError as exc:  # valid YAML, but not a config's (a key 1:, a tag)
        raise ConfigError("--set", [f"{assignment!r}: {exc.problem}"]) from None
    except (yaml.YAMLError, RecursionError, ValueError):
        raise ConfigError("--set", [f"{assignment!r}: the value is not valid YAML"]) from None
    return Override(path=key, value=value, origin=f"--set {assignment}")


def from_flags(sets: list[str] | None = None, **flags: Any) -> list[Override]:
    """The command line's overrides in the order they apply: every --set, then the named
    flags given (each by its parameter name, bpcli.flags.keyword: lr=, log_every=, …)."""
    overrides = [parse_set(s) for s in sets or []]
    for flag, path in FLAGS.items():
        value = flags.pop(keyword(flag), None)
        value = getattr(value, "value", value)  # an Enum choice gives its value
        if value is not None:
            overrides.append(Override(path=path, value=value, origin=f"{flag} {value}"))
    if flags:
        raise TypeError(f"not a flag of FLAGS: {', '.join(flags)}")
    return overrides


def apply(raw: dict[str, Any], override: Override) -> str | None:
    """Apply one override to a raw config in place; a problem message if it cannot go."""
    parts = override.path.split(".")
    node = raw
    for i, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            where = ".".join(parts[: i + 1])
            return f"{override.path}: cannot set it, {where} is not a section (from {override.origin})"
        node = child
    node[parts[-1]] = override.value
    return None
