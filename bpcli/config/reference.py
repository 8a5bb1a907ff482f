"""The config reference in docs/config.md, generated from the field docstrings and the registries."""

from __future__ import annotations

import json
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from bpcli.config.schema import Experiment, LogConfig, TrainConfig
from bpcli.data import SOURCES

HEAD = ["| key | type | default | description |", "|---|---|---|---|"]


def _type_name(annotation: Any) -> str:
    # Markdown-table-safe: no "|" in the cell.
    if get_origin(annotation) is Annotated:  # constraints are in the description
        return _type_name(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):  # X | None: "X or null"
        parts = [a for a in get_args(annotation) if a is not type(None)]
        nullable = len(parts) < len(get_args(annotation))
        return " or ".join(_type_name(a) for a in parts) + (" or null" if nullable else "")
    if get_origin(annotation) is list:
        return f"list[{_type_name(get_args(annotation)[0])}]"
    if getattr(annotation, "__origin__", None) is Literal:
        return "one of " + ", ".join(f"`{a}`" for a in annotation.__args__)
    text = str(annotation).replace("typing.", "").replace("<class '", "").replace("'>", "")
    return text.replace(" | None", " or null").replace("Optional[", "null or ").replace(" | ", " or ")


def _field_rows(model: type[BaseModel], prefix: str) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        description = " ".join((field.description or "").split())
        value = None if field.is_required() else field.get_default(call_default_factory=True)
        if field.is_required():
            default = "per kind"
        elif isinstance(value, BaseModel):
            default = "see below"
        else:
            default = f"`{json.dumps(value)}`"
        rows.append(f"| `{prefix}{name}` | {_type_name(field.annotation)} | {default} | {description} |")
    return rows


def _top_level(kinds: list[str]) -> list[str]:
    top = [r for r in _field_rows(Experiment, "") if not r.startswith("| `kind`")]
    kind_row = ("| `kind` | one of " + ", ".join(f"`{k}`" for k in kinds)
                + " | required | The experiment kind; see the table of kinds below. |")
    lines = ["#### Top level", "", *HEAD, kind_row]
    lines += [r for r in top if not r.startswith(("| `data`", "| `train`", "| `log`"))]
    return lines + ["| `data`, `model`, `train`, `log` | section | per kind | See below. |", ""]


def _model_sections(kinds: dict[str, Any]) -> list[str]:
    """One table per model section, naming the kinds that use it."""
    users: dict[type[BaseModel], list[str]] = {}
    for name, kind in kinds.items():
        users.setdefault(kind.config.model_fields["model"].annotation, []).append(name)
    lines = []
    for model, names in users.items():
        lines += [f"#### `model` of {', '.join(f'`{n}`' for n in names)}", "", model.__doc__ or "", "", *HEAD]
        lines += [*_field_rows(model, "model."), ""]
    return lines


def _defaults(config: type[Experiment]) -> str:
    parts = []
    for section, values in config.DEFAULTS.items():
        if isinstance(values, dict) and values:
            parts.append(f"{section}: " + ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items()))
        elif not isinstance(values, dict):
            parts.append(f"{section}: {json.dumps(values)}")
    return "; ".join(parts)


def reference_markdown() -> str:
    """The config reference for docs/config.md, generated from the models' field docstrings."""
    from bpcli.kinds import KINDS

    lines = _top_level(list(KINDS))
    for source, entry in SOURCES.items():
        lines += [f"#### `data` with `source: {source}`", "", entry.config.__doc__ or "", "", *HEAD]
        lines += [*_field_rows(entry.config, "data."), ""]
    lines += _model_sections(KINDS)
    lines += ["#### `train`", "", *HEAD, *_field_rows(TrainConfig, "train."), ""]
    lines += ["#### `log`", "", *HEAD, *_field_rows(LogConfig, "log."), ""]
    lines += ["#### Kinds and their defaults", "", "| kind | what it trains | defaults |", "|---|---|---|"]
    for name, kind in KINDS.items():
        lines.append(f"| `{name}` | {kind.config.__doc__} | {_defaults(kind.config)} |")
    return "\n".join(lines) + "\n"
