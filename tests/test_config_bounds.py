"""Every bounded config field refuses a value just outside its bound, in one line naming it.

The table is built from the schema itself: every field of every section that a shipped
config reaches (its kind's model, its data source's section, train, the top level), with
the bounds pydantic enforces (ge, gt, le, lt), on the field or on the items of a list. A
new bounded field is covered without touching this file.
"""

from __future__ import annotations

import math
import typing

import annotated_types
import pytest
from pydantic import BaseModel

from conftest import CONFIGS, cli, config

SHIPPED = sorted(p.name for p in CONFIGS.glob("*.yaml"))


def _bounds(info):
    """(kind, limit) for each bound of a field's metadata: ('ge', 0.0), ('lt', 1.0), …"""
    for item in info.metadata:
        for kind, cls in (("ge", annotated_types.Ge), ("gt", annotated_types.Gt), ("le", annotated_types.Le),
                          ("lt", annotated_types.Lt)):
            if isinstance(item, cls):
                yield kind, getattr(item, kind)


def _number_type(annotation):
    """int or float, the number type a field (or an Optional of it) holds."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)] or [annotation]
    return int if int in args else float


def _outside(kind, limit, number):
    """The nearest value on the wrong side of a bound."""
    if number is int:
        return {"ge": limit - 1, "gt": limit, "le": limit + 1, "lt": limit}[kind]
    return {"ge": math.nextafter(limit, -math.inf), "gt": limit, "le": math.nextafter(limit, math.inf),
            "lt": limit}[kind]


def _item_bounds(annotation):
    """The bounds on the items of a list[Annotated[number, Field(...)]] field (or an Optional one:
    a rule's setting that is null until the rule's default fills it), and the item type."""
    lists = [a for a in (annotation, *typing.get_args(annotation)) if typing.get_origin(a) is list]
    args = typing.get_args(lists[0]) if lists else ()
    item = args[0] if len(args) == 1 else None
    parts = typing.get_args(item) if typing.get_origin(item) is typing.Annotated else ()
    found = [b for meta in parts[1:] if hasattr(meta, "metadata") for b in _bounds(meta)]
    return found, (_number_type(parts[0]) if parts else float)


def _cases():
    cases, seen = [], set()
    for name in SHIPPED:
        loaded = config(name)

        def walk(section, prefix):
            for field, info in type(section).model_fields.items():
                value = getattr(section, field)
                path = f"{prefix}{field}"
                if isinstance(value, BaseModel):
                    walk(value, path + ".")
                    continue
                number = _number_type(info.annotation)
                for kind, limit in _bounds(info):
                    key = (type(section).__name__, path, kind)
                    if key not in seen:
                        seen.add(key)
                        cases.append(pytest.param(name, path, _outside(kind, limit, number), f"{kind} {limit}",
                                                  id=f"{name}:{path}:{kind}"))
                found, item = _item_bounds(info.annotation)
                for kind, limit in found:
                    key = (type(section).__name__, path, "item " + kind)
                    if key not in seen and isinstance(value, list) and value:
                        seen.add(key)
                        bad = [_outside(kind, limit, item), *value[1:]]
                        cases.append(pytest.param(name, path, bad, f"item {kind} {limit}",
                                                  id=f"{name}:{path}[0]:{kind}"))

        walk(loaded, "")
    return cases


CASES = _cases()


# The bounds that the maths needs, pinned: the table above follows the schema, so a bound
# moved in the schema (momentum allowed to reach 1) is caught here.
PINNED = {
    ("train.momentum", "lt 1.0"), ("train.momentum", "ge 0.0"), ("train.betas", "item lt 1.0"),
    ("train.betas", "item ge 0.0"), ("train.eps", "gt 0.0"), ("data.val_fraction", "le 0.9"),
    ("data.val_fraction", "ge 0.0"), ("train.diverge_factor", "gt 1.0"), ("train.lr", "gt 0.0"),
    ("train.weight_decay", "ge 0.0"), ("seed", "ge 0"), ("data.n", "ge 1"), ("model.hidden", "item ge 1"),
    ("train.batch_size", "ge 1"), ("train.epochs", "ge 1"), ("train.log_every", "ge 1"),
}


def test_the_table_covers_the_fields_the_issue_names_with_their_bounds():
    found = {(case.values[1], case.values[3]) for case in CASES}
    assert PINNED <= found, sorted(PINNED - found)


@pytest.mark.parametrize("name,path,value,bound", CASES)
def test_a_value_just_outside_a_bound_is_refused_in_one_line(name, path, value, bound):
    result = cli("config", CONFIGS / name, "--set", f"{path}={value!r}".replace("'", ""))
    assert result.exit_code == 2, (bound, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and path.split(".")[-1] in lines[0], (bound, lines)
    assert "unexpected" not in lines[0]
