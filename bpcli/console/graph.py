"""`bpcli explain` on the console: the forward pass, the chain rule with its numbers, the update."""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

from bpcli.console.common import show


def print_graph(console: Console, graph: Any) -> None:
    """`bpcli explain`: the forward pass, the chain rule with numbers, and the update."""
    from rich.markup import escape
    from rich.text import Text

    def heading(text: str) -> None:  # a line of its own: a table's title would wrap with its width
        console.print(Text(text, style="bold"), soft_wrap=True)

    nodes = graph.nodes
    root = nodes[graph.loss].name
    leaf_words = {"param": "variable" if graph.formula else "parameter", "input": "data", "const": "constant"}
    heading(f"Forward pass: {graph.title}")
    forward = Table(box=box.SIMPLE_HEAD)
    for header in ("node", "operation", "value", f"d{root}/d(node)"):
        forward.add_column(header, justify="left" if header in ("node", "operation") else "right")
    for node in nodes:
        forward.add_row(node.name, node.expression if node.op is not None else leaf_words[node.kind],
                        escape(node.value_text), node.grad_text)  # "[sample 0]" is not markup
    show(console, forward)

    heading(f"Backward pass: the chain rule, from {root} back to the {'variables' if graph.formula else 'parameters'}")
    backward = Table(box=box.SIMPLE_HEAD)
    for header in ("gradient", "= upstream × local", "= value"):
        backward.add_column(header, justify="left" if header == "gradient" else "right")
    # From the loss back, each node once its gradient is complete: after its earliest use.
    shares = {n.id: sorted((e for e in graph.edges if e.src == n.id and e.local_text), key=lambda e: -e.dst)
              for n in nodes}
    for node in sorted((n for n in nodes if shares[n.id]), key=lambda n: (-shares[n.id][-1].dst, -n.id)):
        for edge in shares[node.id]:
            dst = nodes[edge.dst]
            chain = f"d{root}/d{node.name} ⟵ d{root}/d{dst.name} · ∂{dst.name}/∂{node.name}"
            if edge.contribution is None:  # a tensor's gradient: the local derivative is a matrix or a vector
                partial = edge.local_text.replace("∂", f"∂{dst.name}/∂{node.name}", 1)
                backward.add_row(chain, partial, node.grad_text)
            else:
                backward.add_row(chain, f"{_number(dst.grad)} × {_number(edge.local)}", _number(edge.contribution))
        if len(shares[node.id]) > 1:  # a node used more than once: its gradient adds up every use's share
            parts = [e.contribution for e in shares[node.id]]
            total = "" if None in parts else _sum(parts)
            backward.add_row(f"d{root}/d{node.name} = the sum of its {len(parts)} shares", total,
                             node.grad_text, style="bold")
    show(console, backward)
    if graph.sample is not None:
        console.print(f"Per-sample values are shown for sample {graph.sample} of {graph.samples}; a "
                      "parameter's gradient adds up every sample's share.", soft_wrap=True)
    params = [n for n in nodes if n.kind == "param"]
    for node in params:
        values = node.full_grad or []
        shown = ", ".join(_number(v) for v in values[:4]) + (" …" if len(values) > 4 else "")
        console.print(f"d{root}/d{node.name} = {shown}", soft_wrap=True)
    if graph.update and graph.rule:  # another rule, momentum, weight decay, a schedule: the optimizer's own step
        heading(f"Update, {graph.rule}")
        # The rule's direction d is not the gradient (a velocity, Adam's scaled moment, a decayed
        # gradient): it is shown as the step taken, so that before − lr·d = after adds up.
        update = Table(box=box.SIMPLE_HEAD)
        for header in ("θ", "before", "dL/dθ", "lr", "d", "after"):
            update.add_column(header, justify="left" if header == "θ" else "right")
        for u in graph.update[:16]:
            direction = (u["before"] - u["after"]) / u["lr"] if u["lr"] else float("nan")
            update.add_row(u["param"], f"{u['before']:.8g}", f"{u['grad']:.8g}", f"{u['lr']:g}", f"{direction:.8g}",
                           f"{u['after']:.8g}")
        show(console, update)
        console.print("d: the direction the rule stepped in, (before − after)/lr, so that after = before − lr·d "
                      "(for plain gradient descent d = dL/dθ)", soft_wrap=True)
    elif graph.update:
        heading("Update: θ ← θ − lr·dL/dθ")
        update = Table(box=box.SIMPLE_HEAD)
        for header in ("θ", "before", "dL/dθ", "lr", "after", "training gave"):
            update.add_column(header, justify="left" if header == "θ" else "right")
        for u in graph.update[:16]:
            update.add_row(u["param"], f"{u['before']:.8g}", f"{u['grad']:.8g}", f"{u['lr']:g}",
                           f"{u['before'] - u['lr'] * u['grad']:.8g}", f"{u['after']:.8g}")
        show(console, update)


def _number(value: float) -> str:
    """A number of the explain tables: 6 significant digits, and 0 rather than -0."""
    return f"{value + 0.0:.6g}"


def _sum(parts: list[float]) -> str:
    """Shares written as a sum, `40 + 30 − 8 − 16`."""
    text = _number(parts[0])
    for part in parts[1:]:
        text += f" − {_number(-part)}" if part < 0 else f" + {_number(part)}"
    return text
