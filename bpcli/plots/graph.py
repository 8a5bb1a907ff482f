"""`bpcli explain`'s picture: a computational graph, nodes by depth, left to right.

The picture stays a sensible size whatever the graph. A graph longer than MAX_COLUMNS
columns is folded into bands, one below the other, read like lines of text; where the
layout by depth would stack more than MAX_ROWS nodes in one column, every node moves as
late as its first use allows (a parameter sits beside the operation that uses it); and a
figure that would still be more than MAX_INCHES on a side is scaled down, text and all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bpcli.plots.common import figure

MAX_COLUMNS = 12
"""The most columns of nodes side by side; a longer graph is folded into bands."""
MAX_ROWS = 8
"""The most nodes stacked in one column before nodes are moved next to their first use."""
MAX_INCHES = 36.0
"""The largest side of the figure (about 4,000 pixels in a .png); a larger layout is scaled down to fit."""


def draw_graph(graph: Any, out: Path) -> Path:
    """Draw a computational graph (bpcli.graph.Graph): nodes by depth, left to right."""
    position, width, height = _layout(graph)
    size = (max(7.0, 2.6 * width), max(3.5, 1.5 * height + 1))
    scale = min(1.0, MAX_INCHES / size[0], MAX_INCHES / size[1])  # text and lines shrink with the figure
    fig, axes = figure(size=(size[0] * scale, size[1] * scale))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - min(0.12, 1.6 / size[1]))
    ax = axes[0][0]
    ax.set_xlim(-0.6, width - 0.4)
    ax.set_ylim(-height / 2 - 0.2, height / 2 + 0.2)
    ax.axis("off")
    root = graph.nodes[graph.loss].name
    colours = {"param": "#ffe9a8", "input": "#d7ecff", "const": "#eeeeee", "op": "#e3f5e1"}
    boxes = {}
    for node in graph.nodes:
        x, y = position[node.id]
        title = node.name if node.op is None else f"{node.name} = {node.expression}"
        text = f"{title}\n{node.value_text}\nd{root}/d{node.name} = {node.grad_text}"
        boxes[node.id] = ax.text(
            x, y, text, ha="center", va="center", fontsize=7.5 * scale, zorder=3,
            bbox={"boxstyle": "round", "facecolor": colours.get(node.kind, "white"), "linewidth": scale,
                  "edgecolor": "red" if node.id == graph.loss else "black"},
        )
    fig.canvas.draw()  # lays out the boxes, so arrows can stop at their edges
    for edge in graph.edges:
        (x0, y0), (x1, y1) = position[edge.src], position[edge.dst]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=2,
                    arrowprops={"arrowstyle": "-|>", "color": "#555555", "lw": scale, "shrinkA": 0, "shrinkB": 0,
                                "mutation_scale": 10 * scale,
                                "patchA": boxes[edge.src].get_bbox_patch(),
                                "patchB": boxes[edge.dst].get_bbox_patch()})
        if edge.local_text:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.1, f"∂{graph.nodes[edge.dst].name}/∂{graph.nodes[edge.src].name}"
                    f" = {edge.local_text}", fontsize=7 * scale, ha="center", color="tab:purple", zorder=4)
    where = f" (values at sample {graph.sample})" if graph.sample is not None else ""
    heading = graph.title if len(graph.title) <= 120 else graph.title[:119] + "…"  # a long formula's beginning
    ax.set_title(f"Computational graph: {heading}{where}\nforward value, d{root}/d(node) by the chain "
                 "rule, and the local derivative on each edge", fontsize=9 * scale)
    out = Path(out)
    fig.savefig(out)
    return out


def _layout(graph: Any) -> tuple[dict[int, tuple[float, float]], int, int]:
    """Each node's place (x in columns, y in rows, centred on 0), and the layout's width
    and height: columns folded into bands of at most MAX_COLUMNS, a row apart."""
    column = _columns(graph)
    span = max(column.values()) + 1
    bands = -(-span // MAX_COLUMNS)
    per_band = -(-span // bands)  # as many columns in each band as can be
    cells: dict[tuple[int, int], list[int]] = {}  # (band, column in the band) → its nodes, top to bottom
    for node in graph.nodes:
        cells.setdefault(divmod(column[node.id], per_band), []).append(node.id)
    rows = [max((len(ids) for (b, _), ids in cells.items() if b == band), default=1) for band in range(bands)]
    height = sum(rows) + bands - 1
    position: dict[int, tuple[float, float]] = {}
    top = height / 2
    for band, band_rows in enumerate(rows):
        middle = top - band_rows / 2
        for (b, x), ids in cells.items():
            if b == band:
                for row, node_id in enumerate(ids):
                    position[node_id] = (x, middle + (len(ids) - 1) / 2 - row)
        top -= band_rows + 1
    return position, per_band, height


def _columns(graph: Any) -> dict[int, int]:
    """Each node's column: its depth, the longest path to it from a leaf; or, where that
    stacks more than MAX_ROWS nodes in a column, one before its first use."""
    depth: dict[int, int] = {}
    for node in graph.nodes:  # nodes are recorded in evaluation order
        depth[node.id] = 1 + max((depth[i] for i in node.inputs), default=-1)
    stacked: dict[int, int] = {}
    for d in depth.values():
        stacked[d] = stacked.get(d, 0) + 1
    if max(stacked.values()) <= MAX_ROWS:
        return depth
    uses: dict[int, list[int]] = {}
    for node in graph.nodes:
        for i in node.inputs:
            uses.setdefault(i, []).append(node.id)
    column = dict(depth)
    for node in reversed(graph.nodes):  # every use of a node comes after it
        if node.id in uses:
            column[node.id] = min(column[u] for u in uses[node.id]) - 1
    return column
