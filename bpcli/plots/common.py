"""What every figure shares: a figure made without a display, labels and grid, titles, log-scale helpers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bpcli import schedules
from bpcli.optimizers import DEFAULT, describe
from bpcli.rundir.run import RunRecord

FORMATS = ("png", "svg", "pdf")
"""The file formats figures can be saved in."""


def figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = (7, 4.5),
            sharex: bool = False):  # type: ignore[no-untyped-def]
    # Fixed margins rather than a layout engine: constrained layout measured every text
    # and doubled the time `bpcli plot` spends drawing. The margins are in inches, so a
    # short or a tall figure keeps room for its title, its tick labels and its axis labels:
    # the left one fits the longest tick labels a log axis writes (3.4×10⁻¹) beside the
    # axis label, the bottom one the tick labels and the x label under the lowest panel.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    glyphs()  # an installed CJK font joins the font list before the first text is made
    fig = Figure(figsize=size, dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False, sharex=sharex)
    fig.subplots_adjust(left=1.15 / size[0], top=1 - 0.45 / size[1], bottom=0.6 / size[1],
                        hspace=(0.2 if sharex else 0.35) if rows > 1 else None)
    return fig, axes


def save(fig: Any, path: Path, elsewhere: str = "copy the run directory elsewhere") -> Path:
    """Write a figure (see bpcli.rundir.files.write_file); a RunDirError, in one line, when
    the file cannot be written (`elsewhere`: the last way out the message offers)."""
    from bpcli import interrupts
    from bpcli.rundir.files import unwritable, write_file

    interrupts.check()  # a Ctrl-C noted while the figure was drawn stops here, before it is written
    drawable_texts(fig)
    try:
        return write_file(path, lambda fh: fig.savefig(fh, format=path.suffix.lstrip(".").lower()))
    except OSError as exc:
        raise unwritable(path, exc, elsewhere) from None


def finish(ax: Any, xlabel: str, ylabel: str, heading: str, *, log: bool = False) -> None:
    """Name a panel's axes, title it and draw the light grid every figure shares.

    `log`: an axis is logarithmic, so its minor ticks (2×, 3×, … within each decade) get
    grid lines too. The legend is left to each figure: where it goes, and whether there is
    one, depends on what that figure draws.
    """
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(heading, fontsize=title_size(heading, ax.figure.get_figwidth()))
    ax.grid(True, which="both" if log else "major", alpha=0.3)


def title(record: RunRecord, what: str) -> str:
    """A figure's title: what it shows, the kind, and the settings that shape the descent."""
    s, train = record.summary, record.config.get("train") or {}
    words = describe(train)  # the default rule's name goes unsaid (`momentum 0.9`); another rule's is said
    words = words[len(DEFAULT) + 2:-1] if words.startswith(f"{DEFAULT} (") else "" if words == DEFAULT else words
    rule = [words] if words else []
    rule += [train["schedule"] + " schedule"] if train.get("schedule", schedules.DEFAULT) != schedules.DEFAULT else []
    rule += [f"batch_size={train['batch_size']}"] if train.get("batch_size") else []
    settings = ", ".join([*rule, f"lr={setting(s.get('lr'))}", f"seed={s.get('seed')}", str(s.get("status"))])
    return f"{what} — {s.get('kind')} ({settings})"


def title_size(text: str, width: float) -> str:
    """The largest font in which a title fits across a figure `width` inches wide (a
    character of a large font is about 0.085 inch wide, of a medium one 0.071): a run's
    settings (optimizer, momentum, batch size) can make its title long."""
    longest = max((len(line) for line in text.splitlines()), default=0)
    for size, inches in (("large", 0.085), ("medium", 0.071)):
        if longest * inches <= 0.92 * width:
            return size
    return "small"


def setting(value: Any) -> str:
    """A config value as a label shows it: numbers to 6 significant digits, text as it is."""
    if isinstance(value, float):
        return number(value, 6)
    return str(value)


def positive(steps: list[float], values: list[float]) -> tuple[list[float], list[float]]:
    # A log scale cannot show 0, NaN or infinity: those points are skipped, and so are
    # values so far out that the axis's margins would overflow (see DRAWABLE).
    kept = [(s, v) for s, v in zip(steps, values) if 1 / DRAWABLE < v < DRAWABLE]
    return ([s for s, _ in kept], [v for _, v in kept]) if kept else ([], [])


def span(values: Any) -> tuple[float, float]:
    lo, hi = float(values.min()), float(values.max())
    pad = max(hi - lo, 1e-3) * 0.15
    return lo - pad, hi + pad


DRAWABLE = 1e200
"""Values beyond this size (or, on a log scale, below its inverse) are not drawn: the
margins matplotlib adds around them, in decades on a log axis, would overflow float64.
NaN and infinities are never drawn."""


def drawable(*columns: Any) -> list[list[float]]:
    """The columns with only the rows in which every value is a finite number matplotlib
    can place (a diverged run's NaN, inf and huge values are left out)."""
    def ok(v: Any) -> bool:
        return isinstance(v, (int, float)) and abs(v) < DRAWABLE  # False for NaN, inf and None

    rows = [row for row in zip(*columns) if all(ok(v) for v in row)]
    return [list(column) for column in zip(*rows)] if rows else [[] for _ in columns]


def number(value: Any, digits: int = 4) -> str:
    """A value for a legend: a few significant digits, a true minus sign, '—' when unknown."""
    if not isinstance(value, (int, float)) or value != value or abs(value) == float("inf"):
        return "—"
    return f"{value:.{digits}g}".replace("-", "−")


SUPERSCRIPT = str.maketrans("0123456789-", "⁰¹²³⁴⁵⁶⁷⁸⁹⁻")
"""Digits and the minus sign as superscripts: "10" + str(k).translate(SUPERSCRIPT) writes 10ᵏ."""


def sci(value: Any, digits: int = 2) -> str:
    """A value that may be tiny or huge, as a reader writes it: 0.479, 1.8×10⁻³⁰, '—' when unknown."""
    text = number(value, digits)
    if text == "—" or value == 0 or (1e-3 <= abs(value) < 1e5 and "e" not in text):
        return text
    mantissa, exponent = f"{value:.{digits - 1}e}".split("e")
    power = "10" + str(int(exponent)).translate(SUPERSCRIPT)
    mantissa = mantissa.rstrip("0").rstrip(".").replace("-", "−")
    return power if mantissa == "1" else ("−" + power if mantissa == "−1" else f"{mantissa}×{power}")


def readable_log_axis(ax: Any) -> None:
    """Tick labels of a logarithmic y axis that read as numbers (0.5, 0.6, … or 0.01, 0.02,
    0.05, …) where it spans fewer than three decades; matplotlib would write 9×10⁻¹.

    Call it once the panel holds everything it draws: the ticks follow its limits.
    """
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter, ScalarFormatter

    lo, hi = ax.get_ylim()
    if not (0 < lo < hi < math.inf):
        return
    decades = math.log10(hi / lo)
    if decades >= 3:
        return  # 10⁻³, 10⁻², … read well
    if decades < 1:
        # Evenly spaced ticks, with as many digits as tell them apart (0.47901, 0.47902, …).
        ax.yaxis.set_major_locator(MaxNLocator(nbins=6))
        ax.yaxis.set_major_formatter(ScalarFormatter(useOffset=False, useMathText=True))
    else:
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: sci(v, 3) if v > 0 else ""))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(lo, hi)


def plus(value: float, digits: int = 4) -> str:
    """A term added to an expression: ' + 0.6' or ' − 0.3'."""
    text = number(value, digits)
    return f" − {text[1:]}" if text.startswith("−") else f" + {text}"


LEGEND_PLACES = ("best", "upper right", "upper left", "lower left", "lower right", "center right", "center left",
                 "upper center", "lower center")
"""Where place_legend tries a panel's legend, in this order."""


def place_legend(ax: Any, **options: Any) -> Any:
    """The panel's legend where it hides none of the drawn data: matplotlib's choice where
    its box holds no point or line vertex, else the first of LEGEND_PLACES whose box holds
    none and no line crosses it, else the first that holds none; where every place holds one, the panel grows a strip of room above its
    data (a fifth of its height, up to three times) and the legend is placed again.

    matplotlib's loc="best" only weighs the places and may settle on one that hides a few
    points (exp2's last logged steps, exp3's early drop). Call it once the panel holds
    everything it draws: the places follow its limits.
    """
    drawable_texts(ax.figure)  # measured as they will be drawn
    renderer = ax.figure.canvas.get_renderer()
    for _ in range(4):
        ax.get_xlim(), ax.get_ylim()  # the limits autoscaling chose, before pixels are measured
        points, paths = _drawn(ax)
        clear = None
        for place in LEGEND_PLACES:
            legend = ax.legend(loc=place, **options)
            box = legend.get_window_extent(renderer)
            if any(box.x0 < x < box.x1 and box.y0 < y < box.y1 for x, y in points):
                continue
            if place == "best" or not any(path.intersects_bbox(box, filled=False) for path in paths):
                return legend
            clear = clear or place
        if clear is not None:
            return ax.legend(loc=clear, **options)
        _room_above(ax)
    return ax.legend(loc="best", **options)


def _drawn(ax: Any) -> tuple[list[tuple[float, float]], list[Any]]:
    """A panel's drawn data in pixels: every vertex of its lines and marker of its scatters,
    within the panel; and its lines as paths."""
    import numpy as np
    from matplotlib.collections import PathCollection

    chunks, paths = [], []
    for line in ax.get_lines():
        xy = np.asarray(line.get_xydata(), dtype=float)
        if line.get_visible() and len(xy):
            chunks.append(line.get_transform().transform(xy))
            if line.get_linestyle() not in ("None", "", " ", "none"):
                paths.append(line.get_transform().transform_path(line.get_path()))
    for collection in ax.collections:
        offsets = np.asarray(collection.get_offsets(), dtype=float)
        if isinstance(collection, PathCollection) and collection.get_visible() and len(offsets):
            chunks.append(collection.get_offset_transform().transform(offsets))
    if not chunks:
        return [], paths
    points = np.concatenate(chunks)
    panel = ax.get_window_extent()
    keep = np.isfinite(points).all(axis=1)
    keep &= (points[:, 0] >= panel.x0) & (points[:, 0] <= panel.x1) & (points[:, 1] >= panel.y0) \
        & (points[:, 1] <= panel.y1)
    return [tuple(p) for p in points[keep]], paths


def _room_above(ax: Any) -> None:
    """Raise the panel's top by a fifth of its height (in decades on a log axis)."""
    import math

    low, high = ax.get_ylim()
    if ax.get_yscale() == "log" and 0 < low < high < math.inf:
        ax.set_yscale("log")  # matplotlib's ticks again: readable_log_axis chose them for the narrower span
        ax.set_ylim(low, high * (high / low) ** 0.25)
        readable_log_axis(ax)
    else:
        ax.set_ylim(low, high + 0.25 * (high - low))


# --------------------------------------------------------------------------- fonts
# Names from a CSV header may be in any script (面积, 价格 from the Chinese tutorial). matplotlib
# draws a character its font lacks as a box and warns. Where a CJK font is installed, it
# joins the font family after DejaVu Sans (whose glyphs come first, so other figures are
# unchanged) and matplotlib falls back to it glyph by glyph; a name that no installed font
# can draw is written another way (its position, w[0]; or its code points, \u9762).

CJK_FONTS = ("Noto Sans CJK", "Noto Serif CJK", "Noto Sans SC", "Noto Sans TC", "Noto Sans JP", "Noto Sans KR",
             "Source Han Sans", "Source Han Serif", "WenQuanYi", "Droid Sans Fallback", "AR PL", "SimHei",
             "SimSun", "Microsoft YaHei", "PingFang", "Hiragino", "Heiti", "Arial Unicode")
"""Families that hold the CJK ideographs, in the order they are preferred."""

_glyphs: set[int] | None = None


def glyphs() -> set[int]:
    """The code points the figures' fonts can draw (DejaVu Sans's and an installed CJK
    font's); the first call adds the CJK fonts found to matplotlib's font.family, after
    the sans-serif fonts."""
    global _glyphs
    if _glyphs is None:
        import matplotlib
        from matplotlib import font_manager
        from matplotlib.ft2font import FT2Font

        fonts = font_manager.fontManager.ttflist
        cjk = [f for family in CJK_FONTS for f in fonts if f.name.startswith(family)]
        names = list(dict.fromkeys(f.name for f in cjk))
        covered: set[int] = set()
        for path in [font_manager.findfont("DejaVu Sans"), *dict.fromkeys(f.fname for f in cjk)]:
            try:
                covered |= set(FT2Font(path).get_charmap())
            except (OSError, RuntimeError, ValueError):
                continue
        if names:
            # matplotlib falls back glyph by glyph along font.family (not within one generic
            # family's list); Simplified Chinese first, the tutorial's.
            names.sort(key=lambda n: " SC" not in n)
            family = [n for n in matplotlib.rcParams["font.family"] if n not in names]
            matplotlib.rcParams["font.family"] = [*family, *names]
        _glyphs = covered
    return _glyphs


def can_draw(text: str) -> bool:
    """Whether every character of `text` has a glyph in the figures' fonts."""
    covered = glyphs()
    return all(ord(c) in covered or c.isspace() for c in text)


def readable(name: str, fallback: str | None = None) -> str:
    """`name` where the figures' fonts draw it; else `fallback`, or its characters that
    cannot be drawn as code points (\\u9762): never boxes, never matplotlib's warnings."""
    if can_draw(name):
        return name
    if fallback is not None:
        return fallback
    covered = glyphs()
    return "".join(c if ord(c) in covered or c.isspace() else f"\\u{ord(c):04x}" for c in name)


def drawable_texts(fig: Any) -> None:
    """Every text of the figure written with glyphs its fonts have (see `readable`), for the
    names no figure chose a readable stand-in for (a run directory's, a file's)."""
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        content = text.get_text()
        if content and "$" not in content and not can_draw(content):
            text.set_text(readable(content))
