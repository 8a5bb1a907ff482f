"""The computational graph of a loss, recorded from the real computation, with its gradients.

`explain_step` runs a kind's own loss function (the one training differentiates) under a
recorder that notes every torch operation, then asks autograd for the gradient arriving
at every node and the local derivative on every edge. `explain_expression` does the same
for a formula such as 3*(a + b*c). The result is plain numbers and strings, ready for the
terminal or for bpcli.plots.draw_graph.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch.overrides import TorchFunctionMode

from bpcli.errors import BpcliError

# How recorded operations are shown. Shape-only operations (indexing, views) are not
# nodes of their own: their output is the same values as their input.
OP_SYMBOLS = {
    "mul": "×", "__mul__": "×", "__rmul__": "×", "add": "+", "__add__": "+", "__radd__": "+",
    "sub": "−", "__sub__": "−", "__rsub__": "−", "div": "÷", "__truediv__": "÷", "__rtruediv__": "÷",
    "pow": "^", "__pow__": "^", "__rpow__": "^", "neg": "−", "__neg__": "−", "matmul": "@",
    "__matmul__": "@", "mean": "mean", "sum": "sum", "linear": "linear", "mse_loss": "mse_loss",
    "tanh": "tanh", "sigmoid": "sigmoid", "relu": "relu", "exp": "exp", "log": "log", "sin": "sin",
    "cos": "cos", "sqrt": "sqrt", "abs": "abs", "square": "square",
}
SHAPE_OPS = {"__getitem__", "view", "reshape", "transpose", "unsqueeze", "squeeze", "expand",
             "contiguous", "flatten", "permute", "t", "T", "mT", "expand_as", "view_as"}


@dataclass
class Node:
    """One value in the graph: a parameter, an input, a constant, or an operation's result."""

    id: int
    name: str
    kind: str  # "param", "input", "const" or "op"
    op: str | None
    inputs: list[int]
    shape: tuple[int, ...]
    value: float | None
    """The value itself if there is one, or the shown sample's element."""
    grad: float | None
    """dL/d(node) at the same element, if the node lies on a path from a parameter."""
    value_text: str
    grad_text: str
    expression: str = ""
    """How the node is computed from its operands, e.g. `v1 − y`."""
    full_grad: list[float] | None = None
    """The whole gradient, for parameters."""


@dataclass
class Edge:
    """An input flowing into an operation, with the local derivative ∂(op)/∂(input)."""

    src: int
    dst: int
    local: float | None
    local_text: str
    contribution: float | None
    """dL/d(dst) · ∂dst/∂src at the shown element: this edge's share of dL/d(src)."""


@dataclass
class Graph:
    """A recorded computational graph of a loss."""

    nodes: list[Node]
    edges: list[Edge]
    loss: int
    sample: int | None
    samples: int
    title: str
    update: list[dict[str, Any]] = field(default_factory=list)
    """For a training step: each parameter's w ← w − lr·dL/dw with before/after values."""


class _Recorder(TorchFunctionMode):
    """Notes every torch function called while active, with its arguments and result."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, tuple[Any, ...], Any]] = []

    def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        name = getattr(func, "__name__", str(func))
        if isinstance(out, torch.Tensor) and out.requires_grad:
            self.calls.append((name, tuple(args) + tuple((kwargs or {}).values()), out))
        return out


def _tensors(values: tuple[Any, ...]) -> list[Any]:
    flat: list[Any] = []
    for v in values:
        if isinstance(v, (list, tuple)):
            flat += _tensors(tuple(v))
        else:
            flat.append(v)
    return flat


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def _element(t: torch.Tensor, samples: int, sample: int | None) -> torch.Tensor | None:
    """The element of `t` that is shown: itself if it is one number, else the shown sample's."""
    flat_t = t.reshape(-1)
    if flat_t.numel() == 1:
        return flat_t[0]
    if sample is not None and flat_t.numel() == samples:
        return flat_t[sample]
    return None


def _pick(t: torch.Tensor, samples: int, sample: int | None) -> tuple[float | None, str]:
    """A tensor's shown element and its text; its shape and norm where no element is shown."""
    flat_t = t.detach().reshape(-1)
    element = _element(flat_t, samples, sample)
    if element is None:
        return None, f"{tuple(t.shape)}, |·| = {_fmt(float(flat_t.norm()))}"
    v = float(element)
    return v, _fmt(v) if flat_t.numel() == 1 else f"{_fmt(v)} [sample {sample}]"


class _Builder:
    """A graph being built: its nodes so far, the tensor behind each, and which node a tensor's values are."""

    def __init__(self, samples: int, sample: int | None) -> None:
        self.samples, self.sample = samples, sample
        self.nodes: list[Node] = []
        self.tensors: list[torch.Tensor] = []
        self.of: dict[int, int] = {}  # id(tensor) → node id
        self.transposed: set[int] = set()  # ids of tensors that are a node's values transposed

    def add(self, name: str, kind: str, op: str | None, inputs: list[int], t: torch.Tensor) -> int:
        value, text = _pick(t, self.samples, self.sample)
        self.nodes.append(Node(len(self.nodes), name, kind, op, inputs, tuple(t.shape), value, None, text, "—"))
        self.tensors.append(t)
        self.of[id(t)] = len(self.nodes) - 1
        return len(self.nodes) - 1

    def operand(self, t: torch.Tensor) -> tuple[int, str]:
        """The node a tensor argument is, and how it is written; a tensor not seen before
        (made inside the loss) becomes a constant."""
        if id(t) not in self.of:
            self.add(_fmt(float(t.reshape(-1)[0])) if t.numel() == 1 else "const", "const", None, [], t)
        node_id = self.of[id(t)]
        return node_id, self.nodes[node_id].name + ("ᵀ" if id(t) in self.transposed else "")


def _build(calls: list[tuple[str, tuple[Any, ...], Any]], leaves: dict[str, tuple[str, torch.Tensor]],
           loss: torch.Tensor, samples: int, sample: int | None, title: str) -> Graph:
    """The graph of `loss`: the leaves, then each recorded operation as a node, with the
    gradient at every node and the local derivative on every edge."""
    builder = _Builder(samples, sample)
    for tensor_name, (kind, t) in leaves.items():
        builder.add(tensor_name, kind, None, [], t)
    _add_operations(builder, calls)
    if id(loss) not in builder.of:
        raise BpcliError("the loss was not computed from the recorded operations; nothing to explain")
    loss_id = builder.of[id(loss)]
    builder.nodes[loss_id].name = "L"
    full = _gradients_at_nodes(builder, loss)
    edges = [_edge(src, node.id, builder.tensors, full, samples, sample)
             for node in builder.nodes for src in node.inputs]
    return Graph(builder.nodes, edges, loss_id, sample, samples, title)


def _add_operations(builder: _Builder, calls: list[tuple[str, tuple[Any, ...], Any]]) -> None:
    """Each recorded operation as a node v1, v2, …, except shape-only ones, which stay the
    node whose values they show."""
    counter = 0
    for name, args, out in calls:
        if _same_values(builder, name, args, out):
            continue
        counter += 1
        _add_operation(builder, f"v{counter}", name, args, out)


def _same_values(builder: _Builder, name: str, args: tuple[Any, ...], out: torch.Tensor) -> bool:
    """Whether this is a shape-only operation on one node's values; if so its output is that node."""
    known = [a for a in _tensors(args) if isinstance(a, torch.Tensor) and id(a) in builder.of]
    if name not in SHAPE_OPS or len(known) != 1 or known[0].numel() != out.numel():
        return False
    builder.of[id(out)] = builder.of[id(known[0])]  # the same values, seen through another shape
    if name in ("transpose", "t", "T", "mT"):
        builder.transposed.add(id(out))
    return True


def _add_operation(builder: _Builder, node_name: str, name: str, args: tuple[Any, ...],
                   out: torch.Tensor) -> None:
    """One operation as a node, with its expression in terms of its operands, e.g. `v1 − y`."""
    inputs, operands = [], []
    for a in _tensors(args):
        if isinstance(a, torch.Tensor):
            node_id, written = builder.operand(a)
            inputs.append(node_id)
            operands.append(written)
        elif isinstance(a, (int, float)) and not isinstance(a, bool):
            operands.append(_fmt(float(a)))
    symbol = OP_SYMBOLS.get(name, name)
    if name.startswith("__r") and len(operands) == 2:
        operands.reverse()  # 3 * a arrives as a.__rmul__(3)
    node_id = builder.add(node_name, "op", symbol, inputs, out)
    infix = symbol in ("×", "+", "−", "÷", "^", "@") and len(operands) == 2
    builder.nodes[node_id].expression = (f" {symbol} ".join(operands) if infix
                                         else f"{symbol}({', '.join(operands)})")


def _gradients_at_nodes(builder: _Builder, loss: torch.Tensor) -> dict[int, torch.Tensor]:
    """The gradient arriving at every node, dL/d(node), by autograd on the recorded graph;
    shown on each node, and kept whole for the parameters."""
    wanted = [i for i, t in enumerate(builder.tensors) if t.requires_grad]
    grads = torch.autograd.grad(loss, [builder.tensors[i] for i in wanted], retain_graph=True, allow_unused=True)
    full: dict[int, torch.Tensor] = {}
    for i, g in zip(wanted, grads):
        g = torch.zeros_like(builder.tensors[i]) if g is None else g
        full[i] = g
        node = builder.nodes[i]
        node.grad, node.grad_text = _pick(g, builder.samples, builder.sample)
        if node.kind == "param":
            node.full_grad = [float(v) for v in g.detach().reshape(-1).tolist()]
    return full


def _edge(src: int, dst: int, tensors: list[torch.Tensor], full: dict[int, torch.Tensor],
          samples: int, sample: int | None) -> Edge:
    """The local derivative ∂dst/∂src at the shown element, where both are single numbers there."""
    s, d = tensors[src], tensors[dst]
    if not s.requires_grad:
        return Edge(src, dst, None, "", None)
    out = _element(d, samples, sample)
    if out is None:
        return Edge(src, dst, None, "∂ is a matrix", None)
    (local_all,) = torch.autograd.grad(out, s, retain_graph=True, allow_unused=True)
    local_all = torch.zeros_like(s) if local_all is None else local_all
    local = _element(local_all, samples, sample)
    if local is None:
        return Edge(src, dst, None, "∂ is a vector", None)
    upstream = _element(full[dst], samples, sample)
    contribution = float(upstream * local) if upstream is not None else None
    return Edge(src, dst, float(local), _fmt(float(local)), contribution)


# --------------------------------------------------------------------------- training steps


def explain_step(trainer: Any, index: int, sample: int | None, lr: float, title: str) -> Graph:
    """The graph of the loss at the training step on batch `index`, then the step itself, for the update."""
    batch = trainer.batch(index)
    samples = batch["y"].numel()
    if sample is not None and samples > 1 and not 0 <= sample < samples:
        raise BpcliError(f"--sample {sample} is out of range: this data has samples 0 to {samples - 1}")
    shown = sample if samples > 1 else None
    if samples > 1 and shown is None:
        shown = 0
    params = {name: p.detach().clone().requires_grad_(True) for name, p in trainer.params().items()}
    leaves: dict[str, tuple[str, torch.Tensor]] = {name: ("param", p) for name, p in params.items()}
    leaves.update({name: ("input", t) for name, t in batch.items()})
    with _Recorder() as recorder:
        loss = trainer.loss(params, batch)
    total = loss.sum()  # one member: the sum is the loss itself
    graph = _build(recorder.calls, leaves, loss, samples, shown, title)
    before = {name: p.detach().reshape(-1).tolist() for name, p in params.items()}
    grads = dict(zip(params, torch.autograd.grad(total, list(params.values()))))
    trainer.step(index)
    after = {name: p.detach().reshape(-1).tolist() for name, p in trainer.params().items()}
    used = {name: g.detach().reshape(-1).tolist() for name, g in trainer.gradients().items()}
    for name in params:
        for i, (b, a) in enumerate(zip(before[name], after[name])):
            g = grads[name].reshape(-1)[i].item()
            graph.update.append({
                "param": name if len(before[name]) == 1 else f"{name}[{i}]",
                "before": b, "grad": g, "lr": lr, "after": a,
                "training_grad": used[name][i],
            })
    return graph


def explain_config(config: Any, step: int | None = None, sample: int | None = None) -> Graph:
    """The graph of a config's training step `step` (default 1), trained up to it first.

    For per-sample kinds `sample` picks the step that trains on that sample (when no step
    is given); for full-batch kinds it picks whose values are shown.
    """
    from bpcli.lifecycle import build

    trainer = build(config).trainer
    per_sample = trainer.steps_per_epoch > 1
    if per_sample and sample is not None:
        if sample >= trainer.steps_per_epoch:
            raise BpcliError(f"--sample {sample} is out of range: this data has samples 0 to "
                             f"{trainer.steps_per_epoch - 1}")
        if step is None:
            step = sample + 1
    step = step or 1
    total = config.train.epochs * trainer.steps_per_epoch
    if step > total:
        raise BpcliError(f"--step {step} is beyond this config's {total} steps; raise train.epochs")
    for earlier in range(1, step):
        trainer.step((earlier - 1) % trainer.steps_per_epoch)
    index = (step - 1) % trainer.steps_per_epoch
    title = f"{config.kind}, step {step}" + (f" (sample {index})" if per_sample else "")
    return explain_step(trainer, index, None if per_sample else sample, config.train.lr, title)


# --------------------------------------------------------------------------- expressions

_FUNCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sin": torch.sin, "cos": torch.cos, "tanh": torch.tanh, "exp": torch.exp, "log": torch.log,
    "sqrt": torch.sqrt, "abs": torch.abs, "sigmoid": torch.sigmoid, "relu": torch.relu,
}
_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: a ** b,
}


def parse_assignments(items: list[str]) -> dict[str, float]:
    """`a=1` strings as a mapping of variable names to numbers."""
    values: dict[str, float] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if name in values:
            raise BpcliError(f"--at {name}: given twice ({values[name]:g} and {text.strip()}); give it once")
        try:
            if not sep or not name.isidentifier():
                raise ValueError
            values[name] = float(text)
        except ValueError:
            raise BpcliError(f"--at {item!r}: write name=number, e.g. --at a=2") from None
        if not math.isfinite(values[name]):
            raise BpcliError(f"--at {item!r}: the value must be a finite number")
    return values


def explain_expression(expression: str, values: dict[str, float]) -> Graph:
    """The graph of a formula such as 3*(a + b*c), or J = 3*(a + b*c), at the given values, in float64."""
    root, expression = _split_root(expression)
    tree = _parse_formula(expression)
    variables = _variables(tree, values, expression)
    leaves = {name: ("param", torch.tensor(values[name], dtype=torch.float64, requires_grad=True))
              for name in variables}
    with _Recorder() as recorder:
        result = _evaluate(tree, leaves)
    if not isinstance(result, torch.Tensor) or not result.requires_grad:
        raise BpcliError(f"--expr {expression!r}: the formula does not depend on any variable")
    graph = _build(recorder.calls, leaves, result, 1, None, f"{root} = {expression}")
    graph.nodes[graph.loss].name = root
    return graph


def _split_root(expression: str) -> tuple[str, str]:
    """The name of the formula's result (`J` in J = 3*(a + b*c), else L) and the formula."""
    name, sep, rest = expression.partition("=")
    if sep and name.strip().isidentifier() and not rest.startswith("="):
        return name.strip(), rest.strip()
    return "L", expression


def _parse_formula(expression: str) -> ast.Expression:
    """The formula's syntax tree, once every part of it is something _evaluate knows."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise BpcliError(f"--expr {expression!r}: not a formula ({exc.msg}); write e.g. '3*(a + b*c)'") from None
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Call, ast.Load,
               ast.USub, ast.UAdd, *_BINARY)
    for n in ast.walk(tree):
        bad_call = isinstance(n, ast.Call) and not (
            isinstance(n.func, ast.Name) and n.func.id in _FUNCTIONS and len(n.args) == 1 and not n.keywords)
        bad_constant = isinstance(n, ast.Constant) and (
            not isinstance(n.value, (int, float)) or isinstance(n.value, bool))
        if not isinstance(n, allowed) or bad_call or bad_constant:
            raise BpcliError(
                f"--expr {expression!r}: only numbers, variables, + − × ÷ ** and "
                f"{', '.join(_FUNCTIONS)} are allowed"
            )
    return tree


def _variables(tree: ast.Expression, values: dict[str, float], expression: str) -> list[str]:
    """The formula's variables (names other than the functions called), each of which has a value."""
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    variables = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and id(n) not in called})
    missing = [v for v in variables if v not in values]
    if missing:
        raise BpcliError(f"--expr: no value for {', '.join(missing)}; add " + " ".join(f"--at {m}=..." for m in missing))
    unused = sorted(set(values) - set(variables))
    if unused:
        raise BpcliError(f"--at {', '.join(unused)}: not in the formula {expression!r}")
    return variables


def _evaluate(node: ast.AST, leaves: dict[str, tuple[str, torch.Tensor]]) -> Any:
    """The value of a formula that _parse_formula accepted, computed with torch operations."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, leaves)
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.Name):
        return leaves[node.id][1]
    if isinstance(node, ast.BinOp):
        return _BINARY[type(node.op)](_evaluate(node.left, leaves), _evaluate(node.right, leaves))
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand, leaves)
        return -operand if isinstance(node.op, ast.USub) else operand
    # A call of one of _FUNCTIONS on one argument: the only other kind of node allowed.
    argument = _evaluate(node.args[0], leaves)
    if not isinstance(argument, torch.Tensor):
        argument = torch.tensor(float(argument), dtype=torch.float64)
    return _FUNCTIONS[node.func.id](argument)
