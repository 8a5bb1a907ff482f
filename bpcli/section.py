"""The base of every config section: strict, frozen, and documented field by field."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A config section. Unknown keys are errors, values are not coerced, and the
    docstring under each field becomes its description (and the config reference in docs/config.md)."""

    # strict: "0.01" (a string) is not a number and `true` is not an integer;
    # an int is still accepted where a float is expected.
    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        allow_inf_nan=False,
        frozen=True,
        use_attribute_docstrings=True,
    )
