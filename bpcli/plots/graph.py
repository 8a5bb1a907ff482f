"""`bpcli explain`'s picture: a computational graph, nodes by depth, left to right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bpcli.plots.common import figure


def draw_graph(graph: Any, out: Path) -> Path:
    """Draw a computational graph (bpcli.graph.Graph): nodes by depth, left to right."""
    depth: dict[int, int] = {}
    for node in graph.nodes:  # nodes are recorded in evaluation order
        depth[node.id] = 1 + max((depth[i] for i in node.inputs), default=-1)
    columns: dict[int, list[int]] = {}
    for node_id, d in depth.items():
        columns.setdefault(d, []).append(node_id)
    width = max(columns) + 1
    height = max(len(ids) for ids in columns.values())
    fig, axes = figure(size=(max(7.0, 2.6 * width), max(3.5, 1.5 * height + 1)))
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.88)
    ax = axes[0][0]
    ax.set_xlim(-0.6, width - 0.4)
    ax.set_ylim(-height / 2 - 0.2, height / 2 + 0.2)
    ax.axis("off")
    root = graph.nodes[graph.loss].name
    position = {}
    for d, ids in columns.items():
        for row, node_id in enumerate(ids):
            position[node_id] = (d, (height - 1) / 2 - row + (len(ids) - 1) / 2 - (height - 1) / 2)
    colours = {"param": "#ffe9a8", "input": "#d7ecff", "const": "#eeeeee", "op": "#e3f5e1"}
    boxes = {}
    for node in graph.nodes:
        x, y = position[node.id]
        title = node.name if node.op is None else f"{node.name} = {node.expression}"
        text = f"{title}\n{node.value_text}\nd{root}/d{node.name} = {node.grad_text}"
        boxes[node.id] = ax.text(
            x, y, text, ha="center", va="center", fontsize=7.5, zorder=3,
            bbox={"boxstyle": "round", "facecolor": colours.get(node.kind, "white"),
                  "edgecolor": "red" if node.id == graph.loss else "black"},
        )
    fig.canvas.draw()  # lays out the boxes, so arrows can stop at their edges
    for edge in graph.edges:
        (x0, y0), (x1, y1) = position[edge.src], position[edge.dst]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=2,
                    arrowprops={"arrowstyle": "-|>", "color": "#555555", "lw": 1, "shrinkA": 0, "shrinkB": 0,
                                "patchA": boxes[edge.src].get_bbox_patch(),
                                "patchB": boxes[edge.dst].get_bbox_patch()})
        if edge.local_text:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + 0.1, f"∂{graph.nodes[edge.dst].name}/∂{graph.nodes[edge.src].name}"
                    f" = {edge.local_text}", fontsize=7, ha="center", color="tab:purple", zorder=4)
    where = f" (values at sample {graph.sample})" if graph.sample is not None else ""
    ax.set_title(f"Computational graph: {graph.title}{where}\nforward value, d{root}/d(node) by the chain "
                 "rule, and the local derivative on each edge", fontsize=9)
    out = Path(out)
    fig.savefig(out)
    return out
