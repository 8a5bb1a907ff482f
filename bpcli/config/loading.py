"""Reading YAML configs: a safe loader that refuses duplicate keys, and one-line errors."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from bpcli.errors import ConfigError


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key given twice in one mapping."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if not isinstance(key, (str, int, float, bool, type(None))):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain word, not a list or mapping", key_node.start_mark
            )
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice; keep one", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)
# YAML 1.1 (PyYAML) reads 1e-3 as a string; learning rates are written that way, so
# numbers in exponent form without a dot are floats here, as in YAML 1.2.
_UniqueKeyLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(text: str) -> Any:
    """The value a YAML text holds, read safely (no code runs) with duplicate keys refused."""
    return yaml.load(text, Loader=_UniqueKeyLoader)


def _read_text(path: Path) -> str:
    name = str(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(name, ["no such file; check the path (configs live in configs/)"]) from None
    except IsADirectoryError:
        raise ConfigError(name, ["is a directory; give the path of a YAML config file"]) from None
    except PermissionError:
        raise ConfigError(name, ["cannot be read (permission denied)"]) from None
    except UnicodeDecodeError:
        raise ConfigError(name, ["is not a UTF-8 text file; give a YAML config file"]) from None
    except OSError as exc:
        raise ConfigError(name, [f"cannot be read ({exc.strerror or exc})"]) from None


def _parse(name: str, text: str) -> Any:
    try:
        return load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = exc.problem or exc.context or "malformed YAML"
        raise ConfigError(name, [f"{where}{problem}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError(name, [f"malformed YAML ({exc})"]) from None
    except RecursionError:
        raise ConfigError(name, ["nested too deeply to be a config"]) from None
    except ValueError as exc:  # e.g. a date that does not exist, 2020-13-45
        raise ConfigError(name, [f"a value cannot be read ({exc})"]) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    """The YAML mapping in a config file, or a ConfigError saying why there is none."""
    path = Path(path)
    raw = _parse(str(path), _read_text(path))
    if raw is None:
        from bpcli.kinds import KINDS

        raise ConfigError(str(path), [f"is empty; a config needs at least `kind:` (one of {', '.join(KINDS)})"])
    if not isinstance(raw, dict):
        raise ConfigError(
            str(path),
            [f"must be a mapping of keys (kind, data, train, ...), not a {_yaml_type(raw)}"],
        )
    return raw


def _yaml_type(value: Any) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(
        type(value), type(value).__name__
    )
