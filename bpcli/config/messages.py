"""The wording of config errors: one line per problem, saying where, what, and how to fix it."""

from __future__ import annotations

import difflib
import reprlib
from typing import Any

from pydantic import BaseModel

from bpcli.config.overrides import Override
from bpcli.data import SOURCE_CHOICES, SOURCES, source_of


def unknown_kind(kind: Any, kinds: list[str]) -> str:
    """The problem with a missing or unknown `kind`, with the closest known one."""
    if kind is None:
        return f"kind: missing; add `kind:` (one of {', '.join(kinds)})"
    suggestion = difflib.get_close_matches(str(kind), kinds, n=1, cutoff=0.5)
    hint = f" (did you mean '{suggestion[0]}'?)" if suggestion else ""
    return f"kind: unknown kind {kind!r}{hint}; choose one of " + ", ".join(kinds)


def _clean_loc(loc: tuple[Any, ...]) -> list[Any]:
    # A discriminated union puts the chosen tag into the error location
    # (data.synthetic.n); the user wrote data.n.
    out: list[Any] = []
    for part in loc:
        if out and out[-1] == "data" and part in SOURCES:
            continue
        if isinstance(part, str) and part.startswith("list["):
            continue  # a union member's name (predict: list[float] | list[list[float]])
        out.append(part)
    return out


def _dotted(parts: list[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def describe(err: dict[str, Any], cls: type[BaseModel], overrides: list[Override]) -> str:
    """One line for one pydantic error: where, what, and how to fix it."""
    where = _dotted(_clean_loc(err["loc"]))
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        message = _unknown_key(list(err["loc"]), cls)
    elif kind == "missing":
        message = "required, but missing"
    elif kind == "data_source":
        message = f"must be {SOURCE_CHOICES} (got {_short(source_of(value))})"
        where = "data.source"
    elif kind == "dtype_range":  # the message names the value; the context, where it is
        message = err["msg"]
        where = err["ctx"]["where"]
    elif kind == "string_pattern_mismatch":  # never show the user the regular expression
        accepted = _ACCEPTED.get(where, "of the form this field takes (see the config reference, docs/config.md)")
        message = f"{_short(value)} is not {accepted}"
    else:
        message = err["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        message = message[0].lower() + message[1:]
        if not isinstance(value, dict):
            message += f" (got {_short(value)})"
    origin = _origin(where, overrides)
    return f"{where}: {message}{origin}" if where else f"{message}{origin}"


# What a field checked by a regular expression accepts, in words.
_ACCEPTED = {
    "device": "a device bpcli knows; use auto (cuda, then mps, then cpu), cpu, cuda, cuda:N (N = 0, 1, …) "
              "or mps",
}

_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 2, 40, 40


def _short(value: Any) -> str:
    # Bounded, however large or self-referencing the value is.
    return _REPR.repr(value)


def _origin(where: str, overrides: list[Override]) -> str:
    for o in reversed(overrides):
        if where == o.path or where.startswith(o.path + ".") or o.path.startswith(where + "."):
            return f" (from {o.origin})"
    return ""


def _section_fields(cls: type[BaseModel], parts: list[Any]) -> dict[str, Any] | None:
    """The fields of the section at `parts` (a pydantic error location) inside `cls`."""
    model: Any = cls
    for i, part in enumerate(parts):
        if i > 0 and parts[i - 1] == "data" and part in SOURCES:
            model = SOURCES[part].config
            continue
        field = model.model_fields.get(part) if model is not None else None
        annotation = getattr(field, "annotation", None)
        is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
        model = annotation if is_model else None
        if model is None and part != "data":
            return None
    return model.model_fields if model is not None else None


def _unknown_key(loc: list[Any], cls: type[BaseModel]) -> str:
    key = str(loc[-1])
    fields = _section_fields(cls, loc[:-1]) or {}
    valid = [f for f in fields if f != "kind"]
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean '{close[0]}'?)"
    here = _dotted(_clean_loc(tuple(loc)))
    if loc[:1] == ["data"] and len(loc) >= 2:
        owners = [name for name, source in SOURCES.items() if key in source.config.model_fields]
        if owners:  # a key of another data source: say which, rather than suggest the key itself
            return (f"not a key of this data source; it belongs to source: {' or '.join(owners)} "
                    f"(set data.source, or remove {here})")
    elsewhere = _where_else(key, cls)
    if elsewhere and elsewhere != here:
        return f"unknown key here (did you mean '{elsewhere}'?)"
    return "unknown key; valid keys here: " + ", ".join(valid)


def _where_else(key: str, cls: type[BaseModel]) -> str | None:
    """The dotted path of a field named `key` in another section, if there is one."""
    sections = {name: f.annotation for name, f in cls.model_fields.items()}
    for name, annotation in sections.items():
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if key in annotation.model_fields:
                return f"{name}.{key}"
    for source in SOURCES.values():
        if key in source.config.model_fields:
            return f"data.{key}"
    if key in cls.model_fields:
        return key
    return None
