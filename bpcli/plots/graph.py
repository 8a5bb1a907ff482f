"""`bpcli explain`'s picture: a computational graph, nodes by depth, left to right.

The layout is measured, in inches, from the text it has to hold: each column is as wide
as its widest box, and the gap before it as wide as the labels on the edges arriving
there. Each leaf (a parameter, the data, a variable) sits just before the operation that
first uses it. A graph wider than PAGE_WIDTH is folded into bands, one below the other,
read like lines of text, cut where no leaf is parted from its use; where the layout by
depth would stack more than MAX_ROWS nodes in one column, every node moves as late as its
first use allows; and a figure that would still be more than MAX_INCHES on a side is
scaled down, text and all.

An edge between neighbouring columns is a straight arrow, labelled in the gap before its
head. An edge that skips columns runs along a lane above its band, and one that goes on
to a later band along the gap below its band, so that no edge crosses a box.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bpcli.plots.common import figure

PAGE_WIDTH = 12.0
"""The widest a band of columns may grow, in inches (a landscape page), before the graph folds."""
MAX_ROWS = 8
"""The most nodes stacked in one column before nodes are moved next to their first use."""
MAX_INCHES = 36.0
"""The largest side of the figure (about 4,000 pixels in a .png); a larger layout is scaled down to fit."""
FONT = 8.0
"""Points: the text in the boxes; edge labels are a point smaller, the title a point larger."""
GAP = 0.45
"""Inches between columns, at least (more where an edge label needs it)."""
ROW_GAP = 0.3
"""Inches between the boxes of a column."""
LANE = 0.16
"""Inches between the lanes of edges that skip columns or bands."""
LANES = 6
"""The most lanes above a band; further edges share them."""
BAND_GAP = 0.3 + 2 * LANE
"""Inches between bands: room for three lanes of the edges that go on to a later band."""
MARGIN = 0.5
"""Inches right of the widest band: where edges that skip a whole band go down."""
BOX_PAD = 0.35
LABEL_PAD = 0.15
"""The padding around a box's text and an edge label's, in font sizes."""
COLOURS = {"param": "#ffe9a8", "input": "#d7ecff", "const": "#eeeeee", "op": "#e3f5e1"}
ROLES = {"param": "parameter", "input": "data", "const": "constant"}


@dataclass
class _Layout:
    """Where everything goes, in inches from the figure's bottom left."""

    position: dict[int, tuple[float, float]]
    """Each node's centre."""
    column: dict[int, int]
    """Each node's column."""
    band: dict[int, int]
    """Each column's band."""
    left: dict[int, float]
    right: dict[int, float]
    """Each column's sides."""
    gap: dict[int, float]
    """The gap before each column."""
    lane: dict[tuple[int, int], float]
    """The height of the lane of each edge that skips columns within its band."""
    band_bottom: list[float]
    width: float
    height: float

    def route(self, src: int, dst: int, lane: int) -> list[tuple[float, float]]:
        """The path of an edge that is not a straight arrow, from the right of src's column
        to the left of dst's: along its lane above the band, or (to a later band) down
        into the gap below src's band, by the right margin past any band between, and
        along the gap above dst's band. `lane` spreads the latter apart."""
        (x0, y0), (x1, y1) = self.position[src], self.position[dst]
        right, left = self.right[self.column[src]] + 0.1, self.left[self.column[dst]] - 0.1
        if (src, dst) in self.lane:
            return [(x0, y0), (right, y0), (right, self.lane[src, dst]), (left, self.lane[src, dst]),
                    (left, y1), (x1, y1)]
        shift = 0.15 + LANE * (lane % 3)
        below = self.band_bottom[self.band[self.column[src]]] - shift
        above = self.band_bottom[self.band[self.column[dst]] - 1] - shift
        path = [(x0, y0), (right + LANE * (lane % 3), y0), (right + LANE * (lane % 3), below)]
        if above < below:  # a band in between
            margin = self.width - MARGIN / 2 + LANE * (lane % 3)
            path += [(margin, below), (margin, above)]
        return path + [(left - LANE * (lane % 3), above), (left - LANE * (lane % 3), y1), (x1, y1)]


def draw_graph(graph: Any, out: Path) -> Path:
    """Draw a computational graph (bpcli.explain.Graph) to `out` (.png, .svg or .pdf)."""
    from bpcli.rundir.files import write_file

    out, fig = Path(out), graph_figure(graph)
    return write_file(out, lambda fh: fig.savefig(fh, format=out.suffix.lstrip(".").lower() or "png"))


def graph_figure(graph: Any) -> Any:
    """The figure of a computational graph: nodes by depth, left to right, every box a text
    of zorder 3, every edge label one of zorder 4, the title of zorder 5."""
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path as Route

    fig, axes = figure(size=(PAGE_WIDTH, 4.0))
    ax = axes[0][0]
    ax.set_position((0.0, 0.0, 1.0, 1.0))
    ax.axis("off")
    root = graph.nodes[graph.loss].name
    boxes = {
        node.id: ax.text(0, 0, _box_text(graph, node, root), ha="center", va="center", fontsize=FONT, zorder=3,
                         bbox={"boxstyle": f"round,pad={BOX_PAD}", "facecolor": COLOURS.get(node.kind, "white"),
                               "edgecolor": "red" if node.id == graph.loss else "black"})
        for node in graph.nodes
    }
    labels = {(e.src, e.dst): ax.text(0, 0, f"∂{graph.nodes[e.dst].name}/∂{graph.nodes[e.src].name}\n= {e.local_text}",
                                      fontsize=FONT - 1, ha="center", va="center", color="#6a3d9a", zorder=4,
                                      bbox={"boxstyle": f"round,pad={LABEL_PAD}", "facecolor": "white",
                                            "edgecolor": "none"})
              for e in graph.edges if e.local is not None}  # the edges whose local derivative is one number
    heading = graph.title if len(graph.title) <= 120 else graph.title[:119] + "…"  # a long formula's beginning
    lines = [f"Computational graph: {heading}",
             f"in each box: the value, and d{root}/d(node) by the chain rule;  on each edge: the local derivative"]
    if graph.sample is not None:
        lines.append(f"where a node holds one value per sample, sample {graph.sample}'s is shown (of {graph.samples})")
    title = ax.text(0, 0, "\n".join(lines), fontsize=FONT + 1, ha="center", va="top", zorder=5)

    renderer = fig.canvas.get_renderer()
    inches = {key: _extent(text, renderer, fig.dpi, BOX_PAD) for key, text in boxes.items()}
    label_widths = {key: _extent(text, renderer, fig.dpi, LABEL_PAD)[0] for key, text in labels.items()}
    title_size = _extent(title, renderer, fig.dpi, 0.0)
    layout = _layout(graph, inches, label_widths, title_size[1] + 0.3)
    width = max(layout.width, title_size[0] + 0.4)
    scale = min(1.0, MAX_INCHES / width, MAX_INCHES / layout.height)  # text and lines shrink with the figure
    fig.set_size_inches(width * scale, layout.height * scale)
    ax.set_xlim(-(width - layout.width) / 2, layout.width + (width - layout.width) / 2)  # centred under the title
    ax.set_ylim(0, layout.height)
    for node_id, box in boxes.items():
        box.set_position(layout.position[node_id])
        box.set_fontsize(FONT * scale)
        box.get_bbox_patch().set_linewidth(scale)
    title.set_position((layout.width / 2, layout.height - 0.15))
    title.set_fontsize((FONT + 1) * scale)
    fig.canvas.draw()  # lays out the boxes, so arrows can stop at their edges

    style = {"arrowstyle": "-|>", "color": "#555555", "lw": scale, "mutation_scale": 10 * scale,
             "shrinkA": 0, "shrinkB": 0}
    folded = 0
    for edge in graph.edges:
        key = (edge.src, edge.dst)
        (x0, y0), (x1, y1) = layout.position[edge.src], layout.position[edge.dst]
        label = labels.get(key)
        straight = key not in layout.lane and layout.band[layout.column[edge.src]] == layout.band[layout.column[edge.dst]]
        if straight:
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=2,
                        arrowprops={**style, "patchA": boxes[edge.src].get_bbox_patch(),
                                    "patchB": boxes[edge.dst].get_bbox_patch()})
            if label is not None:  # on the arrow, in the middle of the gap before dst
                x = layout.left[layout.column[edge.dst]] - layout.gap[layout.column[edge.dst]] / 2
                t = (x - x0) / (x1 - x0) if x > x0 else 0.5
                label.set_position((x0 + t * (x1 - x0), y0 + t * (y1 - y0)))
        else:
            path = layout.route(edge.src, edge.dst, folded)
            folded += key not in layout.lane
            path[0] = (x0 + inches[edge.src][0] / 2, y0)  # from src's box to dst's
            path[-1] = (x1 - inches[edge.dst][0] / 2, y1)
            ax.add_patch(FancyArrowPatch(path=Route(path), zorder=2, **style))
            if label is not None:  # on the lane, just after the turn towards dst
                label.set_text(label.get_text().replace("\n", " "))
                (x, y) = path[-3]
                label.set_position((x + _extent(label, renderer, fig.dpi, LABEL_PAD)[0] / 2, y))
        if label is not None:
            label.set_fontsize((FONT - 1) * scale)
    return fig


def _box_text(graph: Any, node: Any, root: str) -> str:
    """A node's box: its name (and operation, or role), its value, and dL/d(node)."""
    if node.op is not None:
        name = f"{node.name} = {node.expression}"
    else:
        name = node.name if graph.formula and node.kind == "param" else f"{node.name} ({ROLES[node.kind]})"
    value = node.value_text
    marker = f" [sample {graph.sample}]"
    if value.endswith(marker):  # one of the node's values: say whose
        value = f"sample {graph.sample}: {value[: -len(marker)]}"
    if node.grad_text == "—":  # not differentiated: the data, a number inside the loss
        grad = "(no gradient)"
    elif node.grad is None:
        grad = f"d{root}/d{node.name}: {node.grad_text}"
    else:
        grad = f"d{root}/d{node.name} = {node.grad_text.removesuffix(marker)}"
    return f"{name}\n{value}\n{grad}"


def _extent(text: Any, renderer: Any, dpi: float, pad: float) -> tuple[float, float]:
    """A text's width and height in inches, with the padding of its box (`pad` font sizes a side)."""
    bbox = text.get_window_extent(renderer)
    margin = 2 * pad * text.get_fontsize() / 72
    return bbox.width / dpi + margin, bbox.height / dpi + margin


def _layout(graph: Any, box: dict[int, tuple[float, float]], label: dict[tuple[int, int], float],
            top: float) -> _Layout:
    """Each node's centre in inches, the columns folded into bands at most PAGE_WIDTH wide,
    with `top` inches left for the title."""
    column = _columns(graph)
    span = max(column.values()) + 1
    widths = [max((box[n][0] for n, c in column.items() if c == col), default=0.0) for col in range(span)]
    gaps = [GAP] * span  # before each column: room for the labels of the arrows arriving from the one before
    for (src, dst), label_width in label.items():
        if column[dst] == column[src] + 1:
            gaps[column[dst]] = max(gaps[column[dst]], label_width + 0.25)
    leaves = {column[n.id] for n in graph.nodes if not n.inputs}

    def band_width(columns: list[int]) -> float:
        return sum(widths[c] + gaps[c] for c in columns) + MARGIN

    def fold(limit: float) -> tuple[list[list[int]], int]:
        """Bands of as many columns as fit in `limit`, cut after a column without leaves
        (a leaf stays in the band of its use) where there is one; and how many cuts had
        to part a leaf from its use."""
        bands: list[list[int]] = [[]]
        forced = 0
        for c in range(span):
            band = bands[-1]
            if band and band_width(band + [c]) > limit:
                cut = max((i + 1 for i, k in enumerate(band) if k not in leaves), default=0)
                forced += cut == 0
                bands[-1], rest = (band[:cut], band[cut:]) if cut else (band, [])
                bands.append(rest)
            bands[-1].append(c)
        return bands, forced

    # As few bands as PAGE_WIDTH allows, then as even as can be: the narrowest limit that
    # needs no more bands and parts no more leaves from their use (found by bisection).
    bands, forced = fold(PAGE_WIDTH)
    low, high = 0.0, PAGE_WIDTH
    for _ in range(20):
        more, more_forced = fold((low + high) / 2)
        if len(more) > len(bands) or more_forced > forced:
            low = (low + high) / 2
        else:
            high = (low + high) / 2
    bands, _ = fold(high)
    band_of = {c: b for b, columns in enumerate(bands) for c in columns}

    # Edges that skip a column within a band get a lane above it, the shortest lowest.
    skips: list[list[tuple[int, int]]] = [[] for _ in bands]
    for edge in sorted(graph.edges, key=lambda e: column[e.dst] - column[e.src]):
        if column[edge.dst] - column[edge.src] > 1 and band_of[column[edge.src]] == band_of[column[edge.dst]]:
            skips[band_of[column[edge.src]]].append((edge.src, edge.dst))
    lanes = [min(len(s), LANES) * LANE + (0.1 if s else 0.0) for s in skips]
    pitch = [max(box[n][1] for n, c in column.items() if band_of[c] == b) + ROW_GAP for b in range(len(bands))]
    rows = [max(sum(1 for n in column if column[n] == c) for c in columns) for columns in bands]
    height = top + sum(lanes) + sum(r * p for r, p in zip(rows, pitch)) + BAND_GAP * (len(bands) - 1) + 0.1
    position: dict[int, tuple[float, float]] = {}
    left: dict[int, float] = {}
    right: dict[int, float] = {}
    lane: dict[tuple[int, int], float] = {}
    band_bottom = []
    y = height - top
    for b, columns in enumerate(bands):
        y -= lanes[b]
        for k, key in enumerate(skips[b]):
            lane[key] = y + (k % LANES + 0.5) * LANE
        middle = y - rows[b] * pitch[b] / 2
        x = 0.0
        for c in columns:
            left[c] = x + gaps[c]
            right[c] = left[c] + widths[c]
            stacked = [n for n in column if column[n] == c]
            for row, n in enumerate(stacked):
                position[n] = ((left[c] + right[c]) / 2, middle + ((len(stacked) - 1) / 2 - row) * pitch[b])
            x = right[c]
        y -= rows[b] * pitch[b]
        band_bottom.append(y)
        y -= BAND_GAP
    width = max(band_width(columns) for columns in bands)
    return _Layout(position, column, band_of, left, right, dict(enumerate(gaps)), lane, band_bottom, width, height)


def _columns(graph: Any) -> dict[int, int]:
    """Each node's column: its depth, the longest path to it from a leaf, with each leaf
    one column before its first use; or, where that stacks more than MAX_ROWS nodes in a
    column, every node one column before its first use."""
    depth: dict[int, int] = {}
    for node in graph.nodes:  # nodes are recorded in evaluation order
        depth[node.id] = 1 + max((depth[i] for i in node.inputs), default=-1)
    uses: dict[int, list[int]] = {}
    for node in graph.nodes:
        for i in node.inputs:
            uses.setdefault(i, []).append(node.id)
    stacked: dict[int, int] = {}
    for d in depth.values():
        stacked[d] = stacked.get(d, 0) + 1
    crowded = max(stacked.values()) > MAX_ROWS
    column = dict(depth)
    for node in reversed(graph.nodes):  # every use of a node comes after it
        if node.id in uses and (crowded or not node.inputs):
            column[node.id] = min(column[u] for u in uses[node.id]) - 1
    return column
