"""Experiment configs: typed, validated and documented.

    schema      the fields every kind shares (top level, `train`, `log`)
    loading     reading YAML safely
    overrides   `--set key=value` and the named flags (the FLAGS table)
    messages    the wording of errors
    validate    load, override, validate, dump
    reference   the config reference of docs/config.md

A kind's own `model` section lives in its file under bpcli/kinds, a data source's
section under bpcli/data; all of them derive from bpcli.section.Section. Everything else in bpcli receives a validated config and
never re-checks raw dicts.
"""

from __future__ import annotations

from bpcli.config.loading import load_yaml, read_yaml
from bpcli.config.overrides import FLAGS, Override, from_flags, parse_set
from bpcli.config.reference import reference_markdown
from bpcli.config.schema import Experiment, LogConfig, TrainConfig
from bpcli.config.validate import dump_config, load_config, validate_config, with_overrides
from bpcli.errors import ConfigError

__all__ = [
    "FLAGS", "ConfigError", "Experiment", "LogConfig", "Override", "TrainConfig", "dump_config",
    "from_flags", "load_config", "load_yaml", "parse_set", "read_yaml", "reference_markdown",
    "validate_config", "with_overrides",
]
