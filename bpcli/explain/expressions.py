"""A formula explained: an --expr program computed with torch at the --at values, as a graph.

The program is parsed and checked first (bpcli.explain.parsing), then computed in float64
under the recorder, one torch operation per operation of the formula. A formula whose
value, or whose derivative, is infinite, NaN or undefined at the given values is refused
with the operation named, e.g. "1/0: division by zero", or abs(x) at x=0, whose corner has
no slope. The graph's nodes are named, and its operations written, as the program writes them.
"""

from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bpcli.errors import BpcliError
from bpcli.explain.parsing import BEYOND_FLOAT64, BINARY, Statement, quoted, read_program
from bpcli.explain.recorder import Graph, build_graph, number_text, operation_recorder

if TYPE_CHECKING:
    import torch

_WRITTEN = {"+": "+", "-": "−", "*": "×", "/": "÷", "**": "^"}
"""How the graph writes a formula's operations, as it writes a training step's."""


def explain_expression(program: str, values: dict[str, float]) -> Graph:
    """The graph of a formula, 3*(a + b*c) or J = 3*(a + b*c), or of a program of named
    steps, v = b*c; u = a + v; J = 3*u, at the given values, in float64.

    Before anything is computed the program's size is bounded (MAX_FORMULA_LENGTH characters,
    MAX_OPERATIONS operations), its names are checked (see bpcli.explain.parsing) and its constant
    parts are computed in float64, each checked. Then, at the given values, every operation
    must give a finite number with a finite derivative: the first that does not is named in
    the error. A step's result is one node, shared by every step that uses it.
    """
    statements, folded, variables = read_program(program, values)
    root = statements[-1].name or "L"

    import torch

    leaves = {name: ("param", torch.tensor(values[name], dtype=torch.float64, requires_grad=True))
              for name in variables}
    known = {name: t for name, (_, t) in leaves.items()}  # every name's value so far: variables, then steps
    steps: list[_Step] = []
    with operation_recorder() as recorder:
        for statement in statements:
            known[statement.name or root] = _evaluate(statement.tree, known, folded, steps, statement)
    result = known[root]
    at = " at " + ", ".join(f"{name}={values[name]:g}" for name in leaves)
    _check_values(steps, at)
    label = statements[0].label if len(statements) == 1 else quoted(program)
    _check_gradients(steps, result, leaves, at, label, root)
    title = "; ".join(f"{s.name or root} = {s.formula}" for s in statements)
    named = {id(known[s.name or root]): s.name or root for s in statements}
    graph, _ = build_graph(recorder.calls, leaves, result, 1, None, title, _as_written(steps, named, leaves))
    graph.nodes[graph.loss].name = root
    graph.formula = True
    return graph


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
              statement: Statement) -> Any:
    """The value of a formula that read_program accepted, its constant parts taken from
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
        op, operation = BINARY[type(node.op)]
        operands = [_evaluate(part, known, folded, steps, statement) for part in parts]
        out = operation(*operands)
    elif isinstance(node, ast.UnaryOp):  # minus
        parts, op = [node.operand], "neg"
        operands = [_evaluate(node.operand, known, folded, steps, statement)]
        out = -operands[0]
    else:  # a call of one of FUNCTIONS on one argument: the only other kind of node allowed
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
                operands.append(f"({number_text(number)})" if number < 0 else number_text(number))
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
    raise BpcliError(f"--expr {label}: d{root}/d{name} is {BEYOND_FLOAT64}{at}")


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
    return BEYOND_FLOAT64
