"""The computational graph of a loss, recorded from the real computation, with its gradients.

`explain_step` runs a kind's own loss function (the one training differentiates) under a
recorder that notes every torch operation, then asks autograd for the gradient arriving
at every node and the local derivative on every edge. `explain_expression` does the same
for a formula such as 3*(a + b*c). The result is plain numbers and strings, ready for the
terminal or for bpcli.plots.draw_graph.

Both stay bounded whatever they are given. A graph is shown at the level of the torch
operations the loss calls (a matrix product is one node, however wide), tensors are shown
by their shape and norm, and only a parameter's first SHOWN_VALUES values are listed; a
graph of more than MAX_OPERATIONS operations is refused, since nobody can read it. A
formula is checked before anything is computed: its length, its number of operations, and
every constant part of it, in float64 (so 9**9**9 is refused as beyond float64 at once
rather than computed as a Python integer). A formula whose value, or whose derivative, is
infinite, NaN or undefined at the given values is refused with the operation named, e.g.
"1/0: division by zero", or abs(x) at x=0, whose corner has no slope. A training step's graph, on the other hand, is shown as training
computed it, NaN and infinity included: that is what a diverged step looks like.

torch is imported only where a graph is computed, so a formula's mistakes are reported
without waiting for it.
"""

from __future__ import annotations

import ast
import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from bpcli import schedules
from bpcli.errors import BpcliError

if TYPE_CHECKING:
    import torch

MAX_OPERATIONS = 200
"""The most operations a graph may have: a graph of more than that cannot be read, in the
tables or the picture."""
MAX_FORMULA_LENGTH = 2000
"""The longest --expr formula, in characters; checked before the formula is parsed."""
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


def _recorder() -> Any:
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


def _fmt(v: float) -> str:
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
        norm = f"norm {_fmt(float(t.norm()))}"
        return None, f"{shape_text(t.shape)}, {norm}" if shape else norm
    v = float(element)
    return v, _fmt(v) if t.numel() == 1 else f"{_fmt(v)} [sample {sample}]"


def _shown_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """A tensor's shape as the reader thinks of it: without the leading member dimension
    (K = 1 here) that bpcli's batched kinds give every tensor."""
    return tuple(shape[1:]) if len(shape) > 1 and shape[0] == 1 else tuple(shape)


def shape_text(shape: tuple[int, ...]) -> str:
    """A shape as a reader writes it, without the member dimension: `200×16`, or `10 values`."""
    shape = _shown_shape(shape)
    return f"{shape[0]} values" if len(shape) == 1 else "×".join(str(n) for n in shape)


def _first_values(t: torch.Tensor, count: int = SHOWN_VALUES) -> list[float]:
    """A tensor's first `count` values, in row-major order, as numbers."""
    # Row by row: flattening a transposed view (a weight's gradient) would copy all of it.
    t = t.detach()
    if t.dim() <= 1:
        return [float(v) for v in t.reshape(-1)[:count].tolist()]
    values: list[float] = []
    for row in t:
        values += _first_values(row, count - len(values))
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
            self.add(_fmt(float(t.reshape(-1)[0])) if t.numel() == 1 else "const", "const", None, [], t)
        node_id = self.of[id(t)]
        return node_id, self.nodes[node_id].name + ("ᵀ" if id(t) in self.transposed else "")


def _build(calls: list[Call], leaves: dict[str, tuple[str, torch.Tensor]],
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
            operands.append(_fmt(float(a)))
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
            node.full_grad = _first_values(g)
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
    return Edge(src, dst, local, _fmt(local), contribution)


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
    # A kind may give its loss as a learner writes it (logistic: σ, then the log-loss), equal to the loss it trains on.
    written_loss = getattr(trainer, "explained_loss", trainer.loss)
    with _recorder() as recorder:
        loss = written_loss(params, batch)
    graph, full = _build(recorder.calls, leaves, loss, samples, shown, title)
    # The parameters are the first leaves: their gradients are the ones the update uses
    # (one member, so the loss is one number). Only the first SHOWN_VALUES of each are
    # listed, and the recorded computation is let go before the step allocates its own.
    grads = {name: _first_values(full[i]) for i, name in enumerate(params)}
    before = {name: _first_values(p) for name, p in params.items()}
    sizes = {name: p.numel() for name, p in params.items()}
    del recorder, loss, full, leaves, params
    trainer.step(index)
    after = {name: _first_values(p) for name, p in trainer.params().items()}
    used = {name: _first_values(g) for name, g in trainer.gradients().items()}
    for name, size in sizes.items():
        for i, (b, g, a, t) in enumerate(zip(before[name], grads[name], after[name], used[name])):
            graph.update.append({
                "param": name if size == 1 else f"{name}[{i}]",
                "before": b, "grad": g, "lr": lr, "after": a, "training_grad": t,
            })
    return graph


def explain_config(config: Any, step: int | None = None, sample: int | None = None) -> Graph:
    """The graph of a config's training step `step` (default 1), trained up to it first.

    For per-sample training `sample` picks the step of the first epoch that trains on that
    sample (when no step is given); for full-batch and mini-batch training it picks whose
    values are shown, by its place in the step's batch.
    """
    from bpcli.kinds.base import batch_index
    from bpcli.lifecycle import build

    trainer = build(config).trainer
    per_sample = trainer.batches.size == 1  # one sample per step
    mini_batches = not per_sample and trainer.steps_per_epoch > 1
    if per_sample and sample is not None:
        if sample >= trainer.steps_per_epoch:
            raise BpcliError(f"--sample {sample} is out of range: this data has samples 0 to "
                             f"{trainer.steps_per_epoch - 1}")
        if step is None:  # the step of epoch 1 that trains on it (shuffled: where the order put it)
            order = trainer.batches.order[0].tolist() if trainer.shuffle else None  # epoch 1's, drawn when made
            step = (order.index(sample) if order else sample) + 1
    step = step or 1
    total = config.train.epochs * trainer.steps_per_epoch
    if step > total:
        raise BpcliError(f"--step {step} is beyond this config's {total} steps; raise train.epochs")
    if mini_batches and sample is not None:
        # Batch i of an epoch holds samples i·B … i·B + B − 1: B of them, but the last batch
        # holds the remainder, N − i·B.
        index, size = (step - 1) % trainer.steps_per_epoch, trainer.batches.size
        held = min(size, trainer.batches.samples - index * size)
        if sample >= held:
            short = f" (the last of its epoch, the remainder of {trainer.batches.samples} samples in batches of " \
                    f"{size})" if held < size else ""
            raise BpcliError(f"--sample {sample} is out of range: --sample is a place in the step's batch, and step "
                             f"{step}'s batch{short} has {held} sample{'s' if held != 1 else ''}, 0 to {held - 1}")
    for earlier in range(1, step):
        trainer.step(batch_index(trainer, earlier))
    index = batch_index(trainer, step)
    shown = int(trainer.batches.order[0, index]) if per_sample and trainer.shuffle else index
    title = f"{config.kind}, step {step}" + (f" (sample {shown})" if per_sample else "")
    if mini_batches:
        title += f" (batch {index + 1} of {trainer.steps_per_epoch} in epoch {(step - 1) // trainer.steps_per_epoch + 1})"
    lr = schedules.lr_at(config.train, total, step)  # the lr of this step, where a schedule changes it
    graph = explain_step(trainer, index, None if per_sample else sample, lr, title)
    graph.rule = _update_rule(config.train, total)
    return graph


def _update_rule(train: Any, updates: int) -> str:
    """The update of a step in symbols, when it is more than θ ← θ − lr·dL/dθ (the rule's own
    words), and the lr schedule, where there is one."""
    from bpcli.optimizers import OPTIMIZERS, settings_of

    rule = OPTIMIZERS[train.optimizer].formula(settings_of(train), "dL/dθ")
    schedule = schedules.describe(train, updates)
    return "; ".join(part for part in (rule, f"lr schedule {schedule}" if schedule else "") if part)


# --------------------------------------------------------------------------- formulas and programs
#
# A formula is one step, `J = 3*(a + b*c)` (or just `3*(a + b*c)`, whose result is L). A
# program is steps separated by `;`, `v = b*c; u = a + v; J = 3*u`: each step names its
# result, later steps use the name, and the last step's result is the one differentiated.
# A step's result is one node, however many steps use it, so its gradient adds up the
# share arriving through every use (autograd does the adding).

_FUNCTIONS = ("sin", "cos", "tanh", "exp", "log", "sqrt", "abs", "sigmoid", "relu")
"""The functions a formula may call, on one argument each: torch's functions of these names."""
_BINARY: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", lambda a, b: a + b), ast.Sub: ("-", lambda a, b: a - b), ast.Mult: ("*", lambda a, b: a * b),
    ast.Div: ("/", lambda a, b: a / b), ast.Pow: ("**", lambda a, b: a ** b),
}
_WRITTEN = {"+": "+", "-": "−", "*": "×", "/": "÷", "**": "^"}
"""How the graph writes a formula's operations, as it writes a training step's."""
_BEYOND_FLOAT64 = "beyond float64's range (±1.8e308)"
_EXAMPLE = "'v = b*c; u = a + v; J = 3*u'"


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
        if name in _FUNCTIONS:
            raise BpcliError(f"--at {name}: {name} is a function; give your variable another name")
    return values


@dataclass
class _Statement:
    """One step of a program, `name = formula`; only the last may go without a name."""

    number: int
    name: str | None
    source: str
    """The step as written; the positions in `tree` are positions in it."""
    tree: ast.expr
    """The formula, the right-hand side."""
    label: str
    """How error messages name the step: 'v = b*c', or step 2 'v = b*c' in a longer program."""

    @property
    def formula(self) -> str:
        return ast.get_source_segment(self.source, self.tree) or ast.unparse(self.tree)

    def uses(self) -> list[str]:
        """The names the formula reads (not the functions it calls), in the order written."""
        called = {id(n.func) for n in ast.walk(self.tree) if isinstance(n, ast.Call)}
        names = sorted((n for n in ast.walk(self.tree) if isinstance(n, ast.Name) and id(n) not in called),
                       key=lambda n: (n.lineno, n.col_offset))
        return list(dict.fromkeys(n.id for n in names))


def explain_expression(program: str, values: dict[str, float]) -> Graph:
    """The graph of a formula, 3*(a + b*c) or J = 3*(a + b*c), or of a program of named
    steps, v = b*c; u = a + v; J = 3*u, at the given values, in float64.

    Before anything is computed the program's size is bounded (MAX_FORMULA_LENGTH characters,
    MAX_OPERATIONS operations), its names are checked (see _check_names) and its constant
    parts are computed in float64, each checked. Then, at the given values, every operation
    must give a finite number with a finite derivative: the first that does not is named in
    the error. A step's result is one node, shared by every step that uses it.
    """
    if len(program) > MAX_FORMULA_LENGTH:
        raise BpcliError(f"--expr: the formula has {len(program):,} characters; explain takes at most "
                         f"{MAX_FORMULA_LENGTH:,} (and {MAX_OPERATIONS} operations: a larger graph cannot be "
                         "read); explain a part of it")
    statements = _parse_program(program)
    root = statements[-1].name or "L"
    folded: dict[int, float] = {}
    for statement in statements:
        _fold(statement.tree, statement, folded)
    variables = _check_names(statements, values)

    import torch

    leaves = {name: ("param", torch.tensor(values[name], dtype=torch.float64, requires_grad=True))
              for name in variables}
    known = {name: t for name, (_, t) in leaves.items()}  # every name's value so far: variables, then steps
    steps: list[_Step] = []
    with _recorder() as recorder:
        for statement in statements:
            known[statement.name or root] = _evaluate(statement.tree, known, folded, steps, statement)
    result = known[root]
    at = " at " + ", ".join(f"{name}={values[name]:g}" for name in leaves)
    _check_values(steps, at)
    label = statements[0].label if len(statements) == 1 else _shown(program)
    _check_gradients(steps, result, leaves, at, label, root)
    title = "; ".join(f"{s.name or root} = {s.formula}" for s in statements)
    named = {id(known[s.name or root]): s.name or root for s in statements}
    graph, _ = _build(recorder.calls, leaves, result, 1, None, title, _as_written(steps, named, leaves))
    graph.nodes[graph.loss].name = root
    graph.formula = True
    return graph


def _shown(text: str) -> str:
    """A formula or step as an error message quotes it: whole if it is short, else its beginning."""
    return repr(text if len(text) <= 60 else text[:57] + "…")


def _parse_program(program: str) -> list[_Statement]:
    """The program's steps, split at `;` (one `;` at the very end is allowed), each parsed,
    once every part of them is something _evaluate knows and together they have at most
    MAX_OPERATIONS operations."""
    parts = program.split(";")
    if len(parts) > 1 and not parts[-1].strip():
        parts.pop()
    statements, operations = [], 0
    for number, part in enumerate(parts, 1):
        source = part.strip()
        label = _shown(source) if len(parts) == 1 else f"step {number} {_shown(source)}"
        if not source:
            raise BpcliError(f"--expr: step {number} is empty (two `;` in a row?); write a step such as "
                             f"'v = b*c' between the `;`" if len(parts) > 1 else
                             f"--expr: the formula is empty; write e.g. '3*(a + b*c)' or {_EXAMPLE}")
        statement = _parse_step(number, source, label, last=number == len(parts))
        statements.append(statement)
        operations += sum(isinstance(n, (ast.BinOp, ast.UnaryOp, ast.Call)) for n in ast.walk(statement.tree))
    if operations > MAX_OPERATIONS:
        raise BpcliError(f"--expr: the formula has {operations:,} operations; explain shows at most "
                         f"{MAX_OPERATIONS} (a larger graph cannot be read); explain a part of it")
    return statements


def _parse_step(number: int, source: str, label: str, last: bool) -> _Statement:
    """One step, `name = formula` (or a bare formula, if it is the last step)."""
    try:
        body = ast.parse(source, mode="exec").body
    except (SyntaxError, ValueError) as exc:  # Python 3.11 and older raise ValueError for a null byte
        message = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        raise BpcliError(f"--expr {label}: not a formula ({message}); write e.g. '3*(a + b*c)' or {_EXAMPLE}") from None
    if len(body) != 1:
        raise BpcliError(f"--expr {label}: holds {len(body) or 'no'} steps; separate steps with `;`")
    (statement,) = body
    name = None
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1 and isinstance(statement.targets[0], ast.Name):
        name = statement.targets[0].id
        if name in _FUNCTIONS:
            raise BpcliError(f"--expr {label}: {name} is a function; give the step another name")
    elif not isinstance(statement, ast.Expr):
        raise BpcliError(f"--expr {label}: write each step as NAME = formula, e.g. {_EXAMPLE}")
    elif not last:
        raise BpcliError(f"--expr {label}: the step has no name; write NAME = {source} "
                         "(only the last step may go without one)")
    tree = statement.value
    allowed = (ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Call, ast.Load, ast.USub, ast.UAdd, *_BINARY)
    for n in ast.walk(tree):
        bad_call = isinstance(n, ast.Call) and not (
            isinstance(n.func, ast.Name) and n.func.id in _FUNCTIONS and len(n.args) == 1 and not n.keywords)
        bad_constant = isinstance(n, ast.Constant) and (
            not isinstance(n.value, (int, float)) or isinstance(n.value, bool))
        if not isinstance(n, allowed) or bad_call or bad_constant:
            raise BpcliError(f"--expr {label}: only numbers, variables, + − × ÷ ** and "
                             f"{', '.join(_FUNCTIONS)} are allowed")
    return _Statement(number, name, source, tree, label)


def _check_names(statements: list[_Statement], values: dict[str, float]) -> list[str]:
    """The program's variables, sorted, once its names make sense.

    Each step gives its result a new name (not a variable's, not a function's), uses only
    names defined by earlier steps or given with --at (never its own), depends on at least
    one of them, computes something (not just another name for one), and all but the last
    are used by a later step. Every variable has a value and every value is used.
    """
    defined: dict[str, int] = {}  # a step's name → its number
    later = {s.name: s.number for s in reversed(statements) if s.name}
    read: set[str] = set()
    last = statements[-1]
    if last.name is None and ("L" in later or "L" in values or "L" in last.uses()):
        raise BpcliError(f"--expr {last.label}: a last step without a name has its result called L, and the "
                         f"program already uses L; name the result, e.g. 'J = {last.source}'")
    for s in statements:
        used = s.uses()
        for name in used:
            if name == s.name:
                raise BpcliError(f"--expr {s.label}: the step uses {name}, the name it defines; give its result "
                                 f"a new name, e.g. {name}2 = …, and use that from then on")
            if name in _FUNCTIONS:
                raise BpcliError(f"--expr {s.label}: {name} is a function; call it, e.g. {name}(a)")
            if name not in defined and later.get(name, 0) > s.number:
                cycle = _cycle(statements, s, name)
                if cycle:
                    raise BpcliError(f"--expr {s.label}: its steps form a cycle, {' → '.join(cycle)} (each uses "
                                     "the next), so no order computes them; compute one of them from the variables "
                                     "given with --at or from earlier steps")
                raise BpcliError(f"--expr {s.label}: uses {name} before step {later[name]} defines it; "
                                 f"put that step first")
        if s.name in defined:
            raise BpcliError(f"--expr {s.label}: {s.name} is already defined by step {defined[s.name]}; "
                             "give each step its own name")
        if s.name in values:
            raise BpcliError(f"--at {s.name}: {s.name} is computed by step {s.number}; remove --at {s.name}, "
                             "or give the step another name")
        if not used:
            advice = (f"; write its value where {s.name} is used, or give {s.name} a value with --at"
                      if s is not statements[-1] else "")
            raise BpcliError(f"--expr {s.label}: the formula does not depend on any variable{advice}")
        inner = s.tree
        while isinstance(inner, ast.UnaryOp) and isinstance(inner.op, ast.UAdd):
            inner = inner.operand
        if isinstance(inner, ast.Name):
            raise BpcliError(f"--expr {s.label}: the step computes nothing, it only repeats {inner.id}; "
                             f"use {inner.id} itself" if s.name and s is not statements[-1] else
                             f"--expr {s.label}: the formula computes nothing from {inner.id}; explain one with an "
                             f"operation, e.g. 'J = 3*{inner.id}'")
        read.update(used)
        if s.name:
            defined[s.name] = s.number
    for s in statements[:-1]:
        if s.name not in read:
            raise BpcliError(f"--expr {s.label}: no later step uses {s.name}; use it, or remove the step")
    variables = sorted(read - set(defined))
    missing = [v for v in variables if v not in values]
    if missing:
        raise BpcliError(f"--expr: no value for {', '.join(missing)}; add " + " ".join(f"--at {m}=..." for m in missing))
    unused = sorted(set(values) - set(variables))
    if unused:
        where = f"the formula {statements[0].label}" if len(statements) == 1 else "the program"
        raise BpcliError(f"--at {', '.join(unused)}: not in {where}")
    return variables


def _cycle(statements: list[_Statement], step: _Statement, name: str) -> list[str]:
    """The names around a cycle through `step`, which uses `name` (a later step's result):
    [a, b, a] for a = b; b = a. Empty when following what each step uses never comes back
    to `step`, so that moving a step earlier fixes the program."""
    uses = {s.name: s.uses() for s in statements if s.name}
    path, seen = [step.name, name], {name}
    stack = [(name, iter(uses.get(name, [])))]
    while stack:
        current, following = stack[-1]
        nxt = next(following, None)
        if nxt is None:
            stack.pop()
            path.pop()
        elif nxt == step.name:
            return [str(n) for n in path + [nxt]]
        elif nxt in uses and nxt not in seen:
            seen.add(nxt)
            path.append(nxt)
            stack.append((nxt, iter(uses[nxt])))
    return []


def _fold(node: ast.AST, statement: _Statement, folded: dict[int, float]) -> float | None:
    """The value of a part of a formula made of numbers, + − × ÷ and ** alone, in float64
    (kept in `folded` by id of the part), or None for a part with a name or a function.

    Numbers are floats from the start, so 9**9**9 is 9.0**387420489.0, refused at once as
    beyond float64 rather than computed digit by digit as a Python integer. Functions of
    numbers are left to torch, like the rest of the formula.
    """
    value: float | None = None
    if isinstance(node, ast.Constant):
        value = _number(node, statement)
    elif isinstance(node, ast.BinOp):
        left, right = _fold(node.left, statement, folded), _fold(node.right, statement, folded)
        if left is not None and right is not None:
            value = _constant_operation(node, left, right, statement)
    elif isinstance(node, ast.UnaryOp):
        operand = _fold(node.operand, statement, folded)
        if operand is not None:
            value = -operand if isinstance(node.op, ast.USub) else operand
    elif isinstance(node, ast.Call):
        _fold(node.args[0], statement, folded)
    if value is not None:
        folded[id(node)] = value
    return value


def _number(node: ast.Constant, statement: _Statement) -> float:
    """A number written in the formula, as a float64; one that does not fit is refused."""
    try:
        value = float(node.value)
    except OverflowError:  # an integer with more than 308 digits
        value = math.inf
    if not math.isfinite(value):
        text = ast.get_source_segment(statement.source, node) or str(node.value)
        raise BpcliError(f"--expr {statement.label}: the number {text[:20]}{'…' if len(text) > 20 else ''} "
                         f"is {_BEYOND_FLOAT64}")
    return value


def _constant_operation(node: ast.BinOp, left: float, right: float, statement: _Statement) -> float:
    """left (op) right for two numbers, in float64, or a one-line error naming the operation."""
    symbol, operation = _BINARY[type(node.op)]
    problem, value = "", math.nan
    size = right * math.log10(abs(left)) if symbol == "**" and left != 0 else 0.0
    if size > math.log10(sys.float_info.max):  # |left|**right = 10**size: bounded before computing it
        problem = (f"about 10^{size:.0f} in size, " if size < 1e15 else "") + _BEYOND_FLOAT64
    else:
        try:
            value = operation(left, right)
        except ZeroDivisionError:  # x/0, and 0 to a negative power
            problem = "division by zero"
        except OverflowError:
            problem = _BEYOND_FLOAT64
        else:
            if isinstance(value, complex):  # a negative number to a fractional power
                problem = "not a real number"
            elif not math.isfinite(value):
                problem = _BEYOND_FLOAT64
    if problem:
        text = ast.get_source_segment(statement.source, node) or ast.unparse(node)
        raise BpcliError(f"--expr {statement.label}: {text}: {problem}")
    return value


@dataclass
class _Step:
    """One operation of a formula as torch computed it, kept to check its value and derivative."""

    text: str
    """The part of the formula, as written, e.g. `a/b`."""
    op: str
    """+, -, *, /, **, neg, or a function's name."""
    operands: list[Any]
    """Numbers or tensors."""
    operand_texts: list[str]
    out: torch.Tensor
    label: str
    """The step of the program it belongs to, as error messages name it."""


def _evaluate(node: ast.AST, known: dict[str, torch.Tensor], folded: dict[int, float], steps: list[_Step],
              statement: _Statement) -> Any:
    """The value of a formula that _parse_step accepted, its constant parts taken from
    `folded`, its names from `known` (variables and earlier steps' results) and the rest
    computed with torch operations, each noted in `steps`."""
    import torch

    if id(node) in folded:
        return folded[id(node)]
    if isinstance(node, ast.Name):
        return known[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
        return _evaluate(node.operand, known, folded, steps, statement)
    if isinstance(node, ast.BinOp):
        parts = [node.left, node.right]
        op, operation = _BINARY[type(node.op)]
        operands = [_evaluate(part, known, folded, steps, statement) for part in parts]
        out = operation(*operands)
    elif isinstance(node, ast.UnaryOp):  # minus
        parts, op = [node.operand], "neg"
        operands = [_evaluate(node.operand, known, folded, steps, statement)]
        out = -operands[0]
    else:  # a call of one of _FUNCTIONS on one argument: the only other kind of node allowed
        parts, op = list(node.args), node.func.id
        operands = [_evaluate(node.args[0], known, folded, steps, statement)]
        argument = operands[0]
        if not isinstance(argument, torch.Tensor):
            argument = torch.tensor(float(argument), dtype=torch.float64)
        out = getattr(torch, op)(argument)
    texts = [ast.get_source_segment(statement.source, part) or ast.unparse(part) for part in parts]
    text = ast.get_source_segment(statement.source, node) or ast.unparse(node)
    steps.append(_Step(text, op, operands, texts, out, statement.label))
    return out


def _as_written(steps: list[_Step], named: dict[int, str], leaves: dict[str, tuple[str, torch.Tensor]]
                ) -> dict[int, tuple[str, str]]:
    """Each operation's node name and expression, by id of its result, in the order the
    formula writes its operands (3*u is `3 × u`, not torch's `u × 3`): a step's result
    takes the step's name (`named`), the other operations v1, v2, … (skipping names the
    program uses)."""
    import torch

    names = {id(t): name for name, (_, t) in leaves.items()}
    taken = set(leaves) | set(named.values())
    written: dict[int, tuple[str, str]] = {}
    counter = 0
    for step in steps:
        if not step.out.requires_grad:  # a function of numbers alone, e.g. sin(2): a constant
            continue
        name = named.get(id(step.out))
        if name is None:
            counter += 1
            while f"v{counter}" in taken:
                counter += 1
            name = f"v{counter}"
        names[id(step.out)] = name
        operands = []
        for operand in step.operands:
            if isinstance(operand, torch.Tensor) and id(operand) in names:
                operands.append(names[id(operand)])
            else:
                number = float(operand)
                operands.append(f"({_fmt(number)})" if number < 0 else _fmt(number))
        if step.op in _WRITTEN:
            expression = f" {_WRITTEN[step.op]} ".join(operands)
        elif step.op == "neg":
            expression = f"−{operands[0]}"
        else:
            expression = f"{step.op}({operands[0]})"
        written[id(step.out)] = (name, expression)
    return written


def _check_values(steps: list[_Step], at: str) -> None:
    """Refuse a formula with an infinite or NaN value at the given values (`at`), naming the
    first operation, in the order they are computed, that gives one."""
    for step in steps:
        value = float(step.out.detach())
        if not math.isfinite(value):
            where = at if step.out.requires_grad else ""
            raise BpcliError(f"--expr {step.label}: {step.text}: {_why(step, value)}{where}")


def _check_gradients(steps: list[_Step], result: torch.Tensor, leaves: dict[str, tuple[str, torch.Tensor]],
                     at: str, label: str, root: str) -> None:
    """Refuse a formula whose gradient is infinite, NaN or undefined at the given values
    (`at`), naming the first operation whose own derivative is, or else the variable.

    autograd's answer is not enough: where a derivative does not exist it returns a number
    all the same (0 for abs and relu at 0, 0 for both partials of a**b at a = b = 0), so each
    operation's partials are also checked against the points where they are undefined."""
    import torch

    for step in steps:
        for position, (operand, text) in enumerate(zip(step.operands, step.operand_texts)):
            if isinstance(operand, torch.Tensor) and operand.requires_grad:
                (local,) = torch.autograd.grad(step.out, operand, retain_graph=True)
                if not math.isfinite(float(local)):
                    raise BpcliError(f"--expr {step.label}: {step.text}: its derivative with respect to "
                                     f"{text} is {float(local)}{at}; explain it where it is differentiable")
                undefined = _undefined_partial(step, position)
                if undefined:
                    raise BpcliError(f"--expr {step.label}: {step.text}: its derivative with respect to {text} "
                                     f"is undefined{at}: {undefined}; explain it where it is differentiable")
    tensors = [t for _, t in leaves.values()]
    grads = torch.autograd.grad(result, tensors, retain_graph=True, allow_unused=True)
    if all(g is None or math.isfinite(float(g)) for g in grads):
        return
    # Every operation's own derivative is finite: the chain rule's product of them overflows.
    name = next(n for n, g in zip(leaves, grads) if g is not None and not math.isfinite(float(g)))
    raise BpcliError(f"--expr {label}: d{root}/d{name} is {_BEYOND_FLOAT64}{at}")


def _undefined_partial(step: _Step, position: int) -> str:
    """Why the partial derivative of an operation with respect to its operand `position` does
    not exist at its operands' values, where autograd gives a finite number; '' where it exists.

    + − × ÷, exp, sin, cos, tanh and sigmoid are differentiable wherever their value is finite
    (÷ by 0 and log of 0 are refused as values). sqrt at 0 and a power below 1 of 0 have an
    infinite slope, which autograd reports itself. What is left: corners, jumps and the edge
    of a fractional power's domain."""
    numbers = [float(x.detach()) if hasattr(x, "detach") else float(x) for x in step.operands]
    if step.op == "abs" and numbers[0] == 0:
        return "abs has a corner at 0, slope −1 to its left and 1 to its right"
    if step.op == "relu" and numbers[0] == 0:
        return "relu has a corner at 0, slope 0 to its left and 1 to its right"
    if step.op != "**":
        return ""
    base, exponent = numbers
    if position == 1 and base == 0 and exponent == 0:
        # ∂(a^b)/∂b = a^b·ln a; at a = 0, 0^b is 1 at b = 0, 0 for b > 0 and infinite for b < 0.
        b = step.operand_texts[1]
        return f"0**{b} is 1 at {b} = 0 but 0 for every {b} > 0 (and infinite below 0), a jump"
    if position == 0 and base == 0 and exponent != int(exponent):
        # ∂(a^p)/∂a = p·a^(p−1); a fractional power p is defined for a ≥ 0 only, so at 0 the
        # slope exists from the right alone (0 for p > 1; p < 1 is infinite, caught above).
        return (f"a fractional power (here {exponent:g}) is defined only for values ≥ 0, so at 0 it has a slope "
                "from the right alone")
    return ""


def _why(step: _Step, value: float) -> str:
    """Why an operation whose operands are finite numbers gives `value`, infinite or NaN."""
    numbers = [float(x.detach()) if hasattr(x, "detach") else float(x) for x in step.operands]
    if step.op == "/" and numbers[1] == 0:
        return "division by zero"
    if step.op == "**" and numbers[0] == 0 and numbers[1] < 0:
        return "0 to a negative power: division by zero"
    if step.op == "log" and numbers[0] == 0:
        return "the log of 0 is −infinity"
    if math.isnan(value):
        return "not a real number (NaN)"
    return _BEYOND_FLOAT64
