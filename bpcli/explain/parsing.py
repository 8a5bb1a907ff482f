"""The --expr language: a formula, or a program of named steps, parsed and checked before
anything is computed.

A formula is one step, `J = 3*(a + b*c)` (or just `3*(a + b*c)`, whose result is L). A
program is steps separated by `;`, `v = b*c; u = a + v; J = 3*u`: each step names its
result, later steps use the name, and the last step's result is the one differentiated.
A step's result is one node, however many steps use it, so its gradient adds up the
share arriving through every use (autograd does the adding).

A program is bounded before it is parsed (MAX_FORMULA_LENGTH characters) and once it is
(MAX_OPERATIONS operations), and every constant part of it is computed here, in float64,
so 9**9**9 is refused as beyond float64 at once rather than computed as a Python integer.
Nothing here imports torch, so a formula's mistakes are reported without waiting for it.
"""

from __future__ import annotations

import ast
import math
import sys
from dataclasses import dataclass
from typing import Any, Callable

from bpcli.errors import BpcliError
from bpcli.explain.recorder import MAX_OPERATIONS

MAX_FORMULA_LENGTH = 2000
"""The longest --expr formula, in characters; checked before the formula is parsed."""
FUNCTIONS = ("sin", "cos", "tanh", "exp", "log", "sqrt", "abs", "sigmoid", "relu")
"""The functions a formula may call, on one argument each: torch's functions of these names."""
BINARY: dict[type, tuple[str, Callable[[Any, Any], Any]]] = {
    ast.Add: ("+", lambda a, b: a + b), ast.Sub: ("-", lambda a, b: a - b), ast.Mult: ("*", lambda a, b: a * b),
    ast.Div: ("/", lambda a, b: a / b), ast.Pow: ("**", lambda a, b: a ** b),
}
"""The operators a formula may use, by ast type: the symbol it writes, and the operation."""
BEYOND_FLOAT64 = "beyond float64's range (±1.8e308)"
"""How an error message says that a number does not fit in float64."""
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
        if name in FUNCTIONS:
            raise BpcliError(f"--at {name}: {name} is a function; give your variable another name")
    return values


@dataclass
class Statement:
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


def read_program(program: str, values: dict[str, float]) -> tuple[list[Statement], dict[int, float], list[str]]:
    """A program's steps, the values of its constant parts (by id of the part) and its
    variables, sorted, once its size is bounded, its constant parts are finite in float64
    and its names make sense (see _check_names) with the --at `values`."""
    if len(program) > MAX_FORMULA_LENGTH:
        raise BpcliError(f"--expr: the formula has {len(program):,} characters; explain takes at most "
                         f"{MAX_FORMULA_LENGTH:,} (and {MAX_OPERATIONS} operations: a larger graph cannot be "
                         "read); explain a part of it")
    statements = _parse_program(program)
    folded: dict[int, float] = {}
    for statement in statements:
        _fold(statement.tree, statement, folded)
    return statements, folded, _check_names(statements, values)


def quoted(text: str) -> str:
    """A formula or step as an error message quotes it: whole if it is short, else its beginning."""
    return repr(text if len(text) <= 60 else text[:57] + "…")


def _parse_program(program: str) -> list[Statement]:
    """The program's steps, split at `;` (one `;` at the very end is allowed), each parsed,
    once every part of them is something explain_expression computes and together they have
    at most MAX_OPERATIONS operations."""
    parts = program.split(";")
    if len(parts) > 1 and not parts[-1].strip():
        parts.pop()
    statements, operations = [], 0
    for number, part in enumerate(parts, 1):
        source = part.strip()
        label = quoted(source) if len(parts) == 1 else f"step {number} {quoted(source)}"
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


def _parse_step(number: int, source: str, label: str, last: bool) -> Statement:
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
        if name in FUNCTIONS:
            raise BpcliError(f"--expr {label}: {name} is a function; give the step another name")
    elif not isinstance(statement, ast.Expr):
        raise BpcliError(f"--expr {label}: write each step as NAME = formula, e.g. {_EXAMPLE}")
    elif not last:
        raise BpcliError(f"--expr {label}: the step has no name; write NAME = {source} "
                         "(only the last step may go without one)")
    tree = statement.value
    allowed = (ast.BinOp, ast.UnaryOp, ast.Name, ast.Constant, ast.Call, ast.Load, ast.USub, ast.UAdd, *BINARY)
    for n in ast.walk(tree):
        bad_call = isinstance(n, ast.Call) and not (
            isinstance(n.func, ast.Name) and n.func.id in FUNCTIONS and len(n.args) == 1 and not n.keywords)
        bad_constant = isinstance(n, ast.Constant) and (
            not isinstance(n.value, (int, float)) or isinstance(n.value, bool))
        if not isinstance(n, allowed) or bad_call or bad_constant:
            raise BpcliError(f"--expr {label}: only numbers, variables, + − × ÷ ** and "
                             f"{', '.join(FUNCTIONS)} are allowed")
    return Statement(number, name, source, tree, label)


def _check_names(statements: list[Statement], values: dict[str, float]) -> list[str]:
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
            if name in FUNCTIONS:
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


def _cycle(statements: list[Statement], step: Statement, name: str) -> list[str]:
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


def _fold(node: ast.AST, statement: Statement, folded: dict[int, float]) -> float | None:
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


def _number(node: ast.Constant, statement: Statement) -> float:
    """A number written in the formula, as a float64; one that does not fit is refused."""
    try:
        value = float(node.value)
    except OverflowError:  # an integer with more than 308 digits
        value = math.inf
    if not math.isfinite(value):
        text = ast.get_source_segment(statement.source, node) or str(node.value)
        raise BpcliError(f"--expr {statement.label}: the number {text[:20]}{'…' if len(text) > 20 else ''} "
                         f"is {BEYOND_FLOAT64}")
    return value


def _constant_operation(node: ast.BinOp, left: float, right: float, statement: Statement) -> float:
    """left (op) right for two numbers, in float64, or a one-line error naming the operation."""
    symbol, operation = BINARY[type(node.op)]
    problem, value = "", math.nan
    size = right * math.log10(abs(left)) if symbol == "**" and left != 0 else 0.0
    if size > math.log10(sys.float_info.max):  # |left|**right = 10**size: bounded before computing it
        problem = (f"about 10^{size:.0f} in size, " if size < 1e15 else "") + BEYOND_FLOAT64
    else:
        try:
            value = operation(left, right)
        except ZeroDivisionError:  # x/0, and 0 to a negative power
            problem = "division by zero"
        except OverflowError:
            problem = BEYOND_FLOAT64
        else:
            if isinstance(value, complex):  # a negative number to a fractional power
                problem = "not a real number"
            elif not math.isfinite(value):
                problem = BEYOND_FLOAT64
    if problem:
        text = ast.get_source_segment(statement.source, node) or ast.unparse(node)
        raise BpcliError(f"--expr {statement.label}: {text}: {problem}")
    return value

