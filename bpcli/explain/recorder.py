"""The recorder: a loss's computational graph, noted from the real computation, with its gradients.

`operation_recorder` notes every torch operation while a loss is computed; `build_graph`
turns the notes into nodes and edges, and asks autograd for the gradient arriving at every
node and the local derivative on every edge. The result is plain numbers and strings,
ready for the terminal or for bpcli.plots.draw_graph.

A graph stays bounded whatever the loss: it is shown at the level of the torch operations
the loss calls (a matrix product is one node, however wide), tensors are shown by their
shape and norm, and only a parameter's first SHOWN_VALUES values are listed; a graph of
more than MAX_OPERATIONS operations is refused, since nobody can read it. Its numbers are
shown as computed, NaN and infinity included.

torch is imported only where a graph is computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from bpcli.errors import BpcliError

if TYPE_CHECKING:
    import torch

MAX_OPERATIONS = 200
"""The most operations a graph may have: a graph of more than that cannot be read, in the
tables or the picture."""
SHOWN_VALUES = 16
"""How many of a parameter's values its gradient and its update list; the rest are
summarised by the tensor's norm."""

# How recorded operations are shown. Shape-only operations (indexing, views) are not
# nodes of their own: their output is the same values as their input.
OP_SYMBOLS = {
    "mul": "×", "__mul__": "×", "__rmul__": "×", "add": "+", "__add__": "+", "__radd__": "+",
    "sub": "−", "__sub__": "−", "__rsub__": "−", "div": "÷", "__truediv__": "÷", "__rtruediv__": "÷",
    "__rdiv__": "÷", "pow": "^", "__pow__": "^", "__rpow__": "^", "neg": "−", "__neg__": "−", "matmul": "@",
    "__matmul__": "@", "mean": "mean", "sum": "sum", "linear": "linear", "mse_loss": "mse_loss",
    "tanh": "tanh", "sigmoid": "sigmoid", "relu": "relu", "exp": "exp", "log": "log", "sin": "sin",
    "cos": "cos", "sqrt": "sqrt", "abs": "abs", "square": "square", "log1p": "log1p", "logsumexp": "logsumexp",
    "clamp_min": "max", "softmax": "softmax", "log_softmax": "log_softmax",
}
WRITTEN_AS = {"sum": "sum({0})", "mean": "mean({0})", "mse_loss": "mean(({0} − {1})^2)", "linear": "{0} @ {1}ᵀ + {2}"}
"""Operations shown as a learner writes them rather than as torch calls them (the axis of
a sum or mean is left out; the shapes in the table say what is summed), by torch's name;
{0}, {1}, … are the operands."""
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
    """For parameters, the gradient's values: all of them, or the first SHOWN_VALUES of a
    larger tensor (grad_text gives its norm)."""


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
    """For a training step: w ← w − lr·dL/dw with before/after values, for each parameter's
    first SHOWN_VALUES values."""
    rule: str = ""
    """The update rule of that step, when it is not plain gradient descent (e.g. momentum)."""
    formula: bool = False
    """Whether this is the graph of an --expr formula, whose leaves are its variables."""


@dataclass
class Call:
    """A torch function called while the loss was computed, as the recorder noted it."""

    name: str
    func: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    out: Any

    def operands(self) -> tuple[Any, ...]:
        return self.args + tuple(self.kwargs.values())


def operation_recorder() -> Any:
    """A torch function mode that notes, while it is active, every torch function whose
    result is differentiable, with its arguments and result (`.calls`: Call tuples).

    It stops the computation with a BpcliError once it has seen more than MAX_OPERATIONS
    operations other than shape-only ones, so a loss too large to show is never recorded whole.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    class Recorder(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[Call] = []
            self.operations = 0

        def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
                               kwargs: dict[str, Any] | None = None) -> Any:
            out = func(*args, **(kwargs or {}))
            name = getattr(func, "__name__", str(func))
            if isinstance(out, torch.Tensor) and out.requires_grad:
                self.calls.append(Call(name, func, tuple(args), dict(kwargs or {}), out))
                self.operations += name not in SHAPE_OPS
                if self.operations > MAX_OPERATIONS:
                    raise BpcliError(f"the loss takes more than {MAX_OPERATIONS} operations; explain shows "
                                     f"graphs of at most {MAX_OPERATIONS} (a larger one cannot be read): "
                                     "explain a smaller model")
            return out

    return Recorder()


def _tensors(values: tuple[Any, ...]) -> list[Any]:
    flat: list[Any] = []
    for v in values:
        if isinstance(v, (list, tuple)):
            flat += _tensors(tuple(v))
        else:
            flat.append(v)
    return flat


def number_text(v: float) -> str:
    """A number as the graph shows it, to six significant digits."""
    return f"{v:.6g}"


def _element(t: torch.Tensor, samples: int, sample: int | None) -> torch.Tensor | None:
    """The element of `t` that is shown: itself if it is one number, else the shown sample's."""
    # numel() first: reshaping a large tensor that is a transposed view would copy it.
    if t.numel() == 1:
        return t.reshape(-1)[0]
    if sample is not None and t.numel() == samples:
        return t.reshape(-1)[sample]
    return None


def _pick(t: torch.Tensor, samples: int, sample: int | None, shape: bool = True) -> tuple[float | None, str]:
    """A tensor's shown element and its text; where no element is shown, its shape (unless
    `shape` is False: a gradient has its node's shape) and its norm."""
    t = t.detach()
    element = _element(t, samples, sample)
    if element is None:
        norm = f"norm {number_text(float(t.norm()))}"
        return None, f"{shape_text(t.shape)}, {norm}" if shape else norm
    v = float(element)
    return v, number_text(v) if t.numel() == 1 else f"{number_text(v)} [sample {sample}]"


def _shown_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A tensor's shape as the reader thinks of it: without the leading member dimension
    (K = 1 here) that bpcli's batched kinds give every tensor."""
    return tuple(shape[1:]) if len(shape) > 1 and shape[0] == 1 else tuple(shape)


def shape_text(shape: tuple[int, ...]) -> str:
    """A shape as a reader writes it, without the member dimension: `200×16`, or `10 values`."""
    shape = _shown_shape(shape)
    return f"{shape[0]} values" if len(shape) == 1 else "×".join(str(n) for n in shape)


def first_values(t: torch.Tensor, count: int = SHOWN_VALUES) -> list[float]:
    """A tensor's first `count` values, in row-major order, as numbers."""
    # Row by row: flattening a transposed view (a weight's gradient) would copy all of it.
    t = t.detach()
    if t.dim() <= 1:
        return [float(v) for v in t.reshape(-1)[:count].tolist()]
    values: list[float] = []
    for row in t:
        values += first_values(row, count - len(values))
        if len(values) == count:
            break
    return values


class _Builder:
    """A graph being built: its nodes so far, the tensor behind each, and which node a tensor's values are."""

    def __init__(self, samples: int, sample: int | None) -> None:
        self.samples, self.sample = samples, sample
        self.nodes: list[Node] = []
        self.tensors: list[torch.Tensor] = []
        self.of: dict[int, int] = {}  # id(tensor) → node id
        self.transposed: set[int] = set()  # ids of tensors that are a node's values transposed
        self.calls: dict[int, Call] = {}  # node id → the call that computed it

    def add(self, name: str, kind: str, op: str | None, inputs: list[int], t: torch.Tensor) -> int:
        value, text = _pick(t, self.samples, self.sample)
        self.nodes.append(Node(len(self.nodes), name, kind, op, inputs, _shown_shape(t.shape), value, None,
                               text, "—"))
        self.tensors.append(t)
        self.of[id(t)] = len(self.nodes) - 1
        return len(self.nodes) - 1

    def operand(self, t: torch.Tensor) -> tuple[int, str]:
        """The node a tensor argument is, and how it is written; a tensor not seen before
        (made inside the loss) becomes a constant."""
        if id(t) not in self.of:
            self.add(number_text(float(t.reshape(-1)[0])) if t.numel() == 1 else "const", "const", None, [], t)
        node_id = self.of[id(t)]
        return node_id, self.nodes[node_id].name + ("ᵀ" if id(t) in self.transposed else "")


def build_graph(calls: list[Call], leaves: dict[str, tuple[str, torch.Tensor]],
           loss: torch.Tensor, samples: int, sample: int | None, title: str,
           written: dict[int, tuple[str, str]] | None = None) -> tuple[Graph, dict[int, torch.Tensor]]:
    """The graph of `loss`: the leaves, then each recorded operation as a node, with the
    gradient at every node and the local derivative on every edge (one per operand, however
    often the operation uses it); and each node's whole gradient, by node id (the leaves
    come first, in the order given). `written` gives, by id of an operation's result, its
    name and expression where the caller knows how they were written."""
    builder = _Builder(samples, sample)
    for tensor_name, (kind, t) in leaves.items():
        builder.add(tensor_name, kind, None, [], t)
    _add_operations(builder, calls, written or {})
    if id(loss) not in builder.of:
        raise BpcliError("the loss was not computed from the recorded operations; nothing to explain")
    loss_id = builder.of[id(loss)]
    builder.nodes[loss_id].name = "L"
    full = _gradients_at_nodes(builder, loss)
    edges = [_edge(builder, src, node.id, full) for node in builder.nodes for src in dict.fromkeys(node.inputs)]
    return Graph(builder.nodes, edges, loss_id, sample, samples, title), full


def _add_operations(builder: _Builder, calls: list[Call], written: dict[int, tuple[str, str]]) -> None:
    """Each recorded operation as a node v1, v2, … (or as `written` names it), except
    shape-only ones, which stay the node whose values they show."""
    counter = 0
    for call in calls:
        if _same_values(builder, call.name, call.operands(), call.out):
            continue
        counter += 1
        node_name, expression = written.get(id(call.out), (f"v{counter}", ""))
        _add_operation(builder, node_name, call, expression)


def _same_values(builder: _Builder, name: str, args: tuple[Any, ...], out: torch.Tensor) -> bool:
    """Whether this is a shape-only operation on one node's values; if so its output is that node."""
    import torch

    known = [a for a in _tensors(args) if isinstance(a, torch.Tensor) and id(a) in builder.of]
    if name not in SHAPE_OPS or len(known) != 1 or known[0].numel() != out.numel():
        return False
    builder.of[id(out)] = builder.of[id(known[0])]  # the same values, seen through another shape
    if name in ("transpose", "t", "T", "mT"):
        builder.transposed.add(id(out))
    return True


def _add_operation(builder: _Builder, node_name: str, call: Call, expression: str = "") -> None:
    """One operation as a node, with its expression in terms of its operands, e.g. `v1 − y`
    (or `expression`, if given)."""
    import torch

    name = call.name
    inputs, operands = [], []
    for a in _tensors(call.operands()):
        if isinstance(a, torch.Tensor):
            node_id, written = builder.operand(a)
            inputs.append(node_id)
            operands.append(written)
        elif isinstance(a, (int, float)) and not isinstance(a, bool):
            operands.append(number_text(float(a)))
    symbol = OP_SYMBOLS.get(name, name)
    if name.startswith("__r") and len(operands) == 2:
        operands.reverse()  # 3 * a arrives as a.__rmul__(3)
    node_id = builder.add(node_name, "op", symbol, inputs, call.out)
    builder.calls[node_id] = call
    tensors = [builder.nodes[i].name for i in inputs]
    if not expression and name in WRITTEN_AS and (name != "linear" or len(tensors) == 3):
        expression = WRITTEN_AS[name].format(*tensors)
    elif not expression and symbol in ("×", "+", "−", "÷", "^", "@") and len(operands) == 2:
        expression = f" {symbol} ".join(operands)
    elif not expression:
        expression = f"{symbol}({', '.join(operands)})"
    builder.nodes[node_id].expression = expression


def _gradients_at_nodes(builder: _Builder, loss: torch.Tensor) -> dict[int, torch.Tensor]:
    """The gradient arriving at every node, dL/d(node), by autograd on the recorded graph;
    shown on each node, and kept whole for the parameters."""
    import torch

    wanted = [i for i, t in enumerate(builder.tensors) if t.requires_grad]
    grads = torch.autograd.grad(loss, [builder.tensors[i] for i in wanted], retain_graph=True, allow_unused=True)
    full: dict[int, torch.Tensor] = {}
    for i, g in zip(wanted, grads):
        g = torch.zeros_like(builder.tensors[i]) if g is None else g
        full[i] = g
        node = builder.nodes[i]
        node.grad, node.grad_text = _pick(g, builder.samples, builder.sample, shape=False)
        if node.kind == "param":
            node.full_grad = first_values(g)
    return full


def _edge(builder: _Builder, src: int, dst: int, full: dict[int, torch.Tensor]) -> Edge:
    """The local derivative ∂dst/∂src at the shown element, where both are single numbers there.

    It is the operation's own partial derivative, its other operands held fixed: the call
    is run again on copies of its operands cut off from the graph. (Autograd on the recorded
    graph would give the total derivative, wrong wherever an operand also depends on src,
    as in z·x with z computed from x.) An operation that uses src twice, z·z, gets the sum, 2z.
    """
    import torch

    if not builder.tensors[src].requires_grad:
        return Edge(src, dst, None, "", None)
    call = builder.calls[dst]
    copies: dict[int, torch.Tensor] = {}  # id of an operand → its copy

    def cut(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return type(value)(cut(v) for v in value)
        if not isinstance(value, torch.Tensor) or not value.requires_grad:
            return value
        if id(value) not in copies:
            copies[id(value)] = value.detach().requires_grad_(True)
        return copies[id(value)]

    with torch.enable_grad():
        out = call.func(*cut(call.args), **{key: cut(v) for key, v in call.kwargs.items()})
    samples, sample = builder.samples, builder.sample
    element = _element(out, samples, sample)
    if element is None:
        return Edge(src, dst, None, "∂ is a matrix", None)
    mine = [copy for i, copy in copies.items() if builder.of.get(i) == src]  # src itself, or a view of it
    grads = torch.autograd.grad(element, mine, allow_unused=True)
    parts = [_element(torch.zeros_like(c) if g is None else g, samples, sample) for g, c in zip(grads, mine)]
    if any(p is None for p in parts):
        return Edge(src, dst, None, "∂ is a vector", None)
    local = sum(float(p) for p in parts)
    upstream = _element(full[dst], samples, sample)
    contribution = float(upstream) * local if upstream is not None else None
    return Edge(src, dst, local, number_text(local), contribution)
