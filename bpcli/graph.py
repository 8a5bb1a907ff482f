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
infinite or NaN at the given values is refused with the operation named, e.g.
"1/0: division by zero". A training step's graph, on the other hand, is shown as training
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


def _recorder() -> Any:
    """A torch function mode that notes, while it is active, every torch function whose
    result is differentiable, with its arguments and result (`.calls`).

    It stops the computation with a BpcliError once it has seen more than MAX_OPERATIONS
    operations other than shape-only ones, so a loss too large to show is never recorded whole.
    """
    import torch
    from torch.overrides import TorchFunctionMode

    class Recorder(TorchFunctionMode):
        def __init__(self) -> None:
            super().__init__()
            self.calls: list[tuple[str, tuple[Any, ...], Any]] = []
            self.operations = 0

        def __torch_function__(self, func: Callable[..., Any], types: Any, args: tuple[Any, ...] = (),
                               kwargs: dict[str, Any] | None = None) -> Any:
            out = func(*args, **(kwargs or {}))
            name = getattr(func, "__name__", str(func))
            if isinstance(out, torch.Tensor) and out.requires_grad:
                self.calls.append((name, tuple(args) + tuple((kwargs or {}).values()), out))
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


def _pick(t: torch.Tensor, samples: int, sample: int | None) -> tuple[float | None, str]:
    """A tensor's shown element and its text; its shape and norm where no element is shown."""
    t = t.detach()
    element = _element(t, samples, sample)
    if element is None:
        return None, f"{tuple(t.shape)}, |·| = {_fmt(float(t.norm()))}"
    v = float(element)
    return v, _fmt(v) if t.numel() == 1 else f"{_fmt(v)} [sample {sample}]"


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
           loss: torch.Tensor, samples: int, sample: int | None, title: str) -> tuple[Graph, dict[int, torch.Tensor]]:
    """The graph of `loss`: the leaves, then each recorded operation as a node, with the
    gradient at every node and the local derivative on every edge; and each node's whole
    gradient, by node id (the leaves come first, in the order given)."""
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
    return Graph(builder.nodes, edges, loss_id, sample, samples, title), full


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
    import torch

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
    import torch

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
    import torch

    wanted = [i for i, t in enumerate(builder.tensors) if t.requires_grad]
    grads = torch.autograd.grad(loss, [builder.tensors[i] for i in wanted], retain_graph=True, allow_unused=True)
    full: dict[int, torch.Tensor] = {}
    for i, g in zip(wanted, grads):
        g = torch.zeros_like(builder.tensors[i]) if g is None else g
        full[i] = g
        node = builder.nodes[i]
        node.grad, node.grad_text = _pick(g, builder.samples, builder.sample)
        if node.kind == "param":
            node.full_grad = _first_values(g)
    return full


def _edge(src: int, dst: int, tensors: list[torch.Tensor], full: dict[int, torch.Tensor],
          samples: int, sample: int | None) -> Edge:
    """The local derivative ∂dst/∂src at the shown element, where both are single numbers there."""
    import torch

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
    with _recorder() as recorder:
        loss = trainer.loss(params, batch)
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

    For per-sample kinds `sample` picks the step that trains on that sample (when no step
    is given); for full-batch kinds it picks whose values are shown.
    """
    from bpcli.kinds.base import batch_index
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
        trainer.step(batch_index(trainer, earlier))
    index = batch_index(trainer, step)
    title = f"{config.kind}, step {step}" + (f" (sample {index})" if per_sample else "")
    return explain_step(trainer, index, None if per_sample else sample, config.train.lr, title)


# --------------------------------------------------------------------------- expressions

_FUNCTIONS = ("sin", "cos", "tanh", "exp", "log", "sqrt", "abs", "sigmoid", "relu")
"""The functions a formula may call, on one argument each: torch's functions of these names."""
_BINARY: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", lambda a, b: a + b), ast.Sub: ("-", lambda a, b: a - b), ast.Mult: ("*", lambda a, b: a * b),
    ast.Div: ("/", lambda a, b: a / b), ast.Pow: ("**", lambda a, b: a ** b),
}
_BEYOND_FLOAT64 = "beyond float64's range (±1.8e308)"


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
    """The graph of a formula such as 3*(a + b*c), or J = 3*(a + b*c), at the given values, in float64.

    Before anything is computed the formula's size is bounded (MAX_FORMULA_LENGTH characters,
    MAX_OPERATIONS operations) and its constant parts are computed in float64, each checked.
    Then, at the given values, every operation must give a finite number with a finite
    derivative: the first that does not is named in the error.
    """
    if len(expression) > MAX_FORMULA_LENGTH:
        raise BpcliError(f"--expr: the formula has {len(expression):,} characters; explain takes at most "
                         f"{MAX_FORMULA_LENGTH:,} (and {MAX_OPERATIONS} operations: a larger graph cannot be "
                         "read); explain a part of it")
    root, expression = _split_root(expression)
    tree = _parse_formula(expression)
    folded: dict[int, float] = {}
    _fold(tree, expression, folded)
    variables = _variables(tree, values, expression)
    if not variables:
        raise BpcliError(f"--expr {_shown(expression)}: the formula does not depend on any variable")

    import torch

    leaves = {name: ("param", torch.tensor(values[name], dtype=torch.float64, requires_grad=True))
              for name in variables}
    steps: list[_Step] = []
    with _recorder() as recorder:
        result = _evaluate(tree, leaves, folded, steps, expression)
    at = " at " + ", ".join(f"{name}={values[name]:g}" for name in leaves)
    _check_values(steps, at, expression)
    _check_gradients(steps, result, leaves, at, expression, root)
    graph, _ = _build(recorder.calls, leaves, result, 1, None, f"{root} = {expression}")
    graph.nodes[graph.loss].name = root
    return graph


def _shown(expression: str) -> str:
    """The formula as an error message quotes it: whole if it is short, else its beginning."""
    return repr(expression if len(expression) <= 60 else expression[:57] + "…")


def _split_root(expression: str) -> tuple[str, str]:
    """The name of the formula's result (`J` in J = 3*(a + b*c), else L) and the formula."""
    name, sep, rest = expression.partition("=")
    if sep and name.strip().isidentifier() and not rest.startswith("="):
        return name.strip(), rest.strip()
    return "L", expression


def _parse_formula(expression: str) -> ast.Expression:
    """The formula's syntax tree, once every part of it is something _evaluate knows and
    it has at most MAX_OPERATIONS operations."""
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, ValueError) as exc:  # Python 3.11 and older raise ValueError for a null byte
        message = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        raise BpcliError(f"--expr {_shown(expression)}: not a formula ({message}); write e.g. '3*(a + b*c)'") from None
    allowed = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Call, ast.Load,
               ast.USub, ast.UAdd, *_BINARY)
    operations = 0
    for n in ast.walk(tree):
        bad_call = isinstance(n, ast.Call) and not (
            isinstance(n.func, ast.Name) and n.func.id in _FUNCTIONS and len(n.args) == 1 and not n.keywords)
        bad_constant = isinstance(n, ast.Constant) and (
            not isinstance(n.value, (int, float)) or isinstance(n.value, bool))
        if not isinstance(n, allowed) or bad_call or bad_constant:
            raise BpcliError(
                f"--expr {_shown(expression)}: only numbers, variables, + − × ÷ ** and "
                f"{', '.join(_FUNCTIONS)} are allowed"
            )
        operations += isinstance(n, (ast.BinOp, ast.UnaryOp, ast.Call))
    if operations > MAX_OPERATIONS:
        raise BpcliError(f"--expr: the formula has {operations:,} operations; explain shows at most "
                         f"{MAX_OPERATIONS} (a larger graph cannot be read); explain a part of it")
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
        raise BpcliError(f"--at {', '.join(unused)}: not in the formula {_shown(expression)}")
    return variables


def _fold(node: ast.AST, expression: str, folded: dict[int, float]) -> float | None:
    """The value of a part of the formula made of numbers, + − × ÷ and ** alone, in float64
    (kept in `folded` by id of the part), or None for a part with a variable or a function.

    Numbers are floats from the start, so 9**9**9 is 9.0**387420489.0, refused at once as
    beyond float64 rather than computed digit by digit as a Python integer. Functions of
    numbers are left to torch, like the rest of the formula.
    """
    value: float | None = None
    if isinstance(node, ast.Expression):
        return _fold(node.body, expression, folded)
    if isinstance(node, ast.Constant):
        value = _number(node, expression)
    elif isinstance(node, ast.BinOp):
        left, right = _fold(node.left, expression, folded), _fold(node.right, expression, folded)
        if left is not None and right is not None:
            value = _constant_operation(node, left, right, expression)
    elif isinstance(node, ast.UnaryOp):
        operand = _fold(node.operand, expression, folded)
        if operand is not None:
            value = -operand if isinstance(node.op, ast.USub) else operand
    elif isinstance(node, ast.Call):
        _fold(node.args[0], expression, folded)
    if value is not None:
        folded[id(node)] = value
    return value


def _number(node: ast.Constant, expression: str) -> float:
    """A number written in the formula, as a float64; one that does not fit is refused."""
    try:
        value = float(node.value)
    except OverflowError:  # an integer with more than 308 digits
        value = math.inf
    if not math.isfinite(value):
        text = ast.get_source_segment(expression, node) or str(node.value)
        raise BpcliError(f"--expr {_shown(expression)}: the number {text[:20]}{'…' if len(text) > 20 else ''} "
                         f"is {_BEYOND_FLOAT64}")
    return value


def _constant_operation(node: ast.BinOp, left: float, right: float, expression: str) -> float:
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
        text = ast.get_source_segment(expression, node) or ast.unparse(node)
        raise BpcliError(f"--expr {_shown(expression)}: {text}: {problem}")
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


def _evaluate(node: ast.AST, leaves: dict[str, tuple[str, torch.Tensor]], folded: dict[int, float],
              steps: list[_Step], expression: str) -> Any:
    """The value of a formula that _parse_formula accepted, its constant parts taken from
    `folded` and the rest computed with torch operations, each noted in `steps`."""
    import torch

    if id(node) in folded:
        return folded[id(node)]
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, leaves, folded, steps, expression)
    if isinstance(node, ast.Name):
        return leaves[node.id][1]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.UAdd):
        return _evaluate(node.operand, leaves, folded, steps, expression)
    if isinstance(node, ast.BinOp):
        parts = [node.left, node.right]
        op, operation = _BINARY[type(node.op)]
        operands = [_evaluate(part, leaves, folded, steps, expression) for part in parts]
        out = operation(*operands)
    elif isinstance(node, ast.UnaryOp):  # minus
        parts, op = [node.operand], "neg"
        operands = [_evaluate(node.operand, leaves, folded, steps, expression)]
        out = -operands[0]
    else:  # a call of one of _FUNCTIONS on one argument: the only other kind of node allowed
        parts, op = list(node.args), node.func.id
        operands = [_evaluate(node.args[0], leaves, folded, steps, expression)]
        argument = operands[0]
        if not isinstance(argument, torch.Tensor):
            argument = torch.tensor(float(argument), dtype=torch.float64)
        out = getattr(torch, op)(argument)
    texts = [ast.get_source_segment(expression, part) or ast.unparse(part) for part in parts]
    steps.append(_Step(ast.get_source_segment(expression, node) or ast.unparse(node), op, operands, texts, out))
    return out


def _check_values(steps: list[_Step], at: str, expression: str) -> None:
    """Refuse a formula with an infinite or NaN value at the given values (`at`), naming the
    first operation, in the order they are computed, that gives one."""
    for step in steps:
        value = float(step.out.detach())
        if not math.isfinite(value):
            where = at if step.out.requires_grad else ""
            raise BpcliError(f"--expr {_shown(expression)}: {step.text}: {_why(step, value)}{where}")


def _check_gradients(steps: list[_Step], result: torch.Tensor, leaves: dict[str, tuple[str, torch.Tensor]],
                     at: str, expression: str, root: str) -> None:
    """Refuse a formula whose gradient is infinite or NaN at the given values (`at`), naming
    the first operation whose own derivative is, or else the variable."""
    import torch

    tensors = [t for _, t in leaves.values()]
    grads = torch.autograd.grad(result, tensors, retain_graph=True, allow_unused=True)
    if all(g is None or math.isfinite(float(g)) for g in grads):
        return
    # Every value is finite, so some operation's own derivative is not (sqrt at 0), or the
    # chain rule's product of finite ones overflows.
    for step in steps:
        for operand, text in zip(step.operands, step.operand_texts):
            if isinstance(operand, torch.Tensor) and operand.requires_grad:
                (local,) = torch.autograd.grad(step.out, operand, retain_graph=True)
                if not math.isfinite(float(local)):
                    raise BpcliError(f"--expr {_shown(expression)}: {step.text}: its derivative with respect to "
                                     f"{text} is {float(local)}{at}; explain it where it is differentiable")
    name = next(n for n, g in zip(leaves, grads) if g is not None and not math.isfinite(float(g)))
    raise BpcliError(f"--expr {_shown(expression)}: d{root}/d{name} is {_BEYOND_FLOAT64}{at}")


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
