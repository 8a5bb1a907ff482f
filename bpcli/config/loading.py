"""Reading and writing YAML configs: YAML 1.2 numbers and booleans, keys that are words,
duplicate keys refused, libyaml's C parser when PyYAML has it, and one-line errors."""

from __future__ import annotations

import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml

from bpcli.errors import ConfigError

# PyYAML implements YAML 1.1, whose plain scalars surprise people: 010 is 8 (octal), 1:30 is
# 90 (base 60), yes/no/on/off are booleans, and 1e-3 is a string. Configs are read as YAML
# 1.2 (core schema) reads them instead: 010 is 10, 0o10 is 8, 0x10 is 16, 1:30 and yes are
# strings, true/false are booleans, 1e-3 is a float. Two extensions that cannot be misread
# are kept: _ between digits (1_000) and binary 0b101. Dates stay as in 1.1, so a date
# that does not exist is still reported, not taken for a word.
_DIGITS = r"[0-9](?:_?[0-9])*"
_EXPONENT = r"[eE][-+]?[0-9]+"
_RESOLVERS: list[tuple[str, str, list[str]]] = [
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", list("tTfF")),
    (
        "tag:yaml.org,2002:int",
        rf"^(?:[-+]?{_DIGITS}|0b[01](?:_?[01])*|0o[0-7](?:_?[0-7])*|0x[0-9a-fA-F](?:_?[0-9a-fA-F])*)$",
        list("-+0123456789"),
    ),
    (
        "tag:yaml.org,2002:float",
        rf"^(?:[-+]?(?:{_DIGITS}\.(?:{_DIGITS})?(?:{_EXPONENT})?|\.{_DIGITS}(?:{_EXPONENT})?"
        rf"|{_DIGITS}{_EXPONENT}|\.(?:inf|Inf|INF))|\.(?:nan|NaN|NAN))$",
        list("-+0123456789."),
    ),
    ("tag:yaml.org,2002:merge", r"^<<$", ["<"]),  # recognised only to be refused clearly
]
_TIMESTAMPS = [
    (first, tag, regexp)
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
    for tag, regexp in resolvers
    if tag == "tag:yaml.org,2002:timestamp"
]
_BASES = {"0b": 2, "0o": 8, "0x": 16}


def _construct_int(loader: yaml.constructor.SafeConstructor, node: yaml.ScalarNode) -> int:
    # 010 is ten (YAML 1.2); only 0o10 is octal.
    text = loader.construct_scalar(node).replace("_", "")
    sign = -1 if text.startswith("-") else 1
    digits = text.lstrip("+-")
    base = _BASES.get(digits[:2], 10)
    return sign * int(digits if base == 10 else digits[2:], base)


_KEY_TYPES = {bool: "a boolean", int: "a number", float: "a number", type(None): "null", date: "a date",
              datetime: "a date", bytes: "binary data"}


def _construct_mapping(loader: yaml.constructor.SafeConstructor, node: yaml.MappingNode) -> dict[Any, Any]:
    # Every key of a config names a field, so a key must be a string. This also keeps keys
    # that YAML tells apart but Python does not (1, 1.0 and true are one dict key) from
    # being merged silently.
    mapping: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        mark = key_node.start_mark
        if key_node.tag == "tag:yaml.org,2002:merge":
            raise yaml.constructor.ConstructorError(
                None, None, "merge keys (<<) are not supported; write the keys out", mark
            )
        if not isinstance(key_node, yaml.ScalarNode):
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain word, not a list or mapping", mark
            )
        key = loader.construct_object(key_node)
        if not isinstance(key, str):
            what = _KEY_TYPES.get(type(key), type(key).__name__)
            raise yaml.constructor.ConstructorError(
                None, None,
                f"key {key_node.value or 'null'} is read as {what}, but keys should be strings "
                "naming a field (kind, data, train, lr, ...)",
                mark,
            )
        if key in mapping:
            raise yaml.constructor.ConstructorError(None, None, f"key {key!r} appears twice; keep one", mark)
        mapping[key] = loader.construct_object(value_node)
    return mapping


def _yaml12(base: type) -> type:
    """A subclass of a PyYAML loader or dumper class that resolves plain scalars as above."""
    cls = type(f"Bpcli{base.__name__}", (base,), {"yaml_implicit_resolvers": {}})
    for tag, pattern, first in _RESOLVERS:
        cls.add_implicit_resolver(tag, re.compile(pattern), first)
    for first, tag, regexp in _TIMESTAMPS:
        cls.yaml_implicit_resolvers.setdefault(first, []).append((tag, regexp))
    return cls


def loader_on(base: type) -> type:
    """bpcli's config loader built on a PyYAML safe loader class (the C one or the Python one)."""
    loader = _yaml12(base)
    loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
    loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
    return loader


# libyaml's parser (yaml.CSafeLoader, there when PyYAML was built with libyaml) reads a 5 MB
# config about 3.5 times faster than the pure-Python one; resolving and constructing values
# is the same Python code on both.
_Loader = loader_on(getattr(yaml, "CSafeLoader", yaml.SafeLoader))

# The writer quotes every string that either YAML 1.1 (PyYAML's yaml.safe_load) or bpcli's
# reader would take for something else ("0o10", "1e5", "yes"), so a written config reads
# back the same with both.
_Dumper = _yaml12(getattr(yaml, "CSafeDumper", yaml.SafeDumper))
for _first, _resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items():
    for _tag, _regexp in _resolvers:
        _Dumper.yaml_implicit_resolvers.setdefault(_first, []).insert(0, (_tag, _regexp))


def load_yaml(text: str) -> Any:
    """The value a YAML text holds, read safely (no code runs) as YAML 1.2 reads numbers and
    booleans, with duplicate and non-string keys refused."""
    return yaml.load(text, Loader=_Loader)


def dump_yaml(value: Any) -> str:
    """YAML text for a value, in key order, that load_yaml and yaml.safe_load both read back
    as the same value."""
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, allow_unicode=True)


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
        if "maximum nesting depth" in problem:  # libyaml's limit (1000 levels)
            problem = "nested too deeply to be a config"
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
