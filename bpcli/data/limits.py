"""What a dtype can hold, and one wording for the values that do not fit.

Every number that reaches a tensor is checked here first: a value beyond the dtype's
largest finite number would become ±inf on conversion, and an infinite input does not
fail where it enters but later, as a diverged loss or as an error from the linear-algebra
library. Values that fit but whose squares do not (|v| > √max, about 1.8e19 in float32)
are not refused: whether the loss overflows depends on the parameters too, and a loss
that overflows is the divergence check's to report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bpcli.errors import DataError

if TYPE_CHECKING:
    import torch


def largest(dtype: torch.dtype) -> float:
    """The largest finite number `dtype` holds (3.4e38 for float32, 1.8e308 for float64)."""
    import torch

    return float(torch.finfo(dtype).max)


def name_of(dtype: torch.dtype) -> str:
    """'float32' for torch.float32."""
    return str(dtype).removeprefix("torch.")


def fix(dtype: torch.dtype) -> str:
    """How to make a too-large value fit: a wider dtype if there is one, else rescaling."""
    return "rescale the data" if name_of(dtype) == "float64" else "use dtype: float64 or rescale the data"


def beyond(dtype: torch.dtype) -> str:
    """'float32's range (±3.4e+38)': the limit, for messages."""
    return f"{name_of(dtype)}'s range (±{largest(dtype):.2g})"


def check_values(fields: dict[str, Any], dtype: torch.dtype) -> None:
    """Raise one DataError for the values that `dtype` cannot hold: the first, and how many.

    `fields` maps a field's name to its value: a number, a list of numbers, or None.
    """
    limit = largest(dtype)
    bad = []
    for field, value in fields.items():
        values = value if isinstance(value, list) else [value]
        bad += [(f"{field}[{i}]" if isinstance(value, list) else field, v)
                for i, v in enumerate(values) if v is not None and not abs(v) <= limit]
    if bad:
        where, value = bad[0]
        more = f" (and {len(bad) - 1} more value{'s' if len(bad) > 2 else ''} like it)" if len(bad) > 1 else ""
        raise DataError(f"{where}: {value:g} is beyond {beyond(dtype)}{more}; {fix(dtype)}")
