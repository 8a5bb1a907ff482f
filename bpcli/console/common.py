"""What every screen of bpcli shares: the console it prints to, number formatting, and tables
that fall back to one line per row where they would not fit."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from bpcli.symbols import plain


class _Console(Console):
    """A rich Console that spells bpcli's symbols in ASCII before laying text out, on a
    terminal that cannot show them (so `θ` becomes `theta` and the table grows to fit)."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(plain(text, self.encoding), **kwargs)


def make_console() -> Console:
    """The console commands print to: a terminal's own width, or 120 columns in a log."""
    import os
    import sys

    wide = None if sys.stdout.isatty() or "COLUMNS" in os.environ else 120
    return _Console(highlight=False, width=wide)


def fmt(value: Any, digits: int = 6) -> str:
    """A number to `digits` significant digits; anything else as str() writes it."""
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def fits(console: Console, table: Table) -> bool:
    """Whether a table fits the console with every cell on one line (its widest rendering)."""
    from rich.measure import Measurement

    return Measurement.get(console, console.options.update_width(1_000_000), table).maximum <= console.width


def show(console: Console, table: Table) -> None:
    """Print a table, or, where it would not fit with every cell on one line, one line per
    row, `first cell: header value; …`, so that no number is wrapped or cut (the terminal
    wraps a long line; nothing is dropped)."""
    if fits(console, table):
        console.print(table)
        return
    if table.title:
        console.print(table.title, soft_wrap=True)
    headers = [str(column.header) for column in table.columns]
    for row in zip(*(list(column.cells) for column in table.columns)):
        cells = [cell if isinstance(cell, str) else getattr(cell, "plain", str(cell)) for cell in row]
        rest = "; ".join(f"{h}: {v}" if h else v for h, v in zip(headers[1:], cells[1:]) if v)
        first = f"{headers[0]} {cells[0]}" if headers[0] and cells[0] else cells[0]
        console.print(f"{first}: {rest}" if first else rest, soft_wrap=True)
    if table.caption:
        console.print(table.caption, soft_wrap=True)
