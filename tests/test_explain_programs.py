"""`bpcli explain --expr` with programs of named steps: the article's names, one node per
step however often it is used, gradients that add up every use (checked against
torch.autograd on programs written out here by hand), and one clear line for a bad program."""

import random

import pytest
import torch

from bpcli.explain import MAX_OPERATIONS, explain_expression
from conftest import cli

ARTICLE = "v = b*c; u = a + v; J = 3*u"
MICROGRAD = "z = 2*x + 2 + x; q = relu(z) + z*x; y = relu(z*z) + q + q*x"


def by_name(graph):
    nodes = {}
    for node in graph.nodes:
        assert node.name not in nodes, f"two nodes are called {node.name}"
        nodes[node.name] = node
    return nodes


# Each program beside the same computation written in torch by hand: the oracle. It
# returns the value of every named step, so that dOUT/d(step) can be checked too.
def article(a, b, c):
    v = b * c
    u = a + v
    return {"v": v, "u": u, "J": 3 * u}


def micrograd(x):
    z = 2 * x + 2 + x
    q = torch.relu(z) + z * x
    return {"z": z, "q": q, "y": torch.relu(z * z) + q + q * x}


def smooth(a, b):
    p = a * b
    h = torch.tanh(p) + p / b
    g = torch.exp(-h * h) * torch.sin(p)
    return {"p": p, "h": h, "g": g, "out": torch.log(1 + g * g) + h * a}


def tangled(s, t):
    m = s * s + t
    n = m * m - m / t + sigmoid_(s)
    k = torch.sqrt(n * n + 1) * m - torch.cos(m * n) * s
    return {"m": m, "n": n, "k": k}


def sigmoid_(v):
    return 1 / (1 + torch.exp(-v))


PROGRAMS = [
    (ARTICLE, article),
    (MICROGRAD, micrograd),
    ("p = a*b; h = tanh(p) + p/b; g = exp(-h*h)*sin(p); out = log(1 + g*g) + h*a", smooth),
    ("m = s*s + t; n = m*m - m/t + sigmoid(s); k = sqrt(n*n + 1)*m - cos(m*n)*s", tangled),
]


def drawn(seed, names):
    """Values away from 0 (some programs divide by them), signs and sizes varied by seed."""
    rng = random.Random(seed)
    return {name: rng.choice([-1, 1]) * rng.uniform(0.3, 2.5) for name in names}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("program,oracle", PROGRAMS, ids=["article", "micrograd", "smooth", "tangled"])
def test_gradients_of_every_step_match_autograd(program, oracle, seed):
    names = list(oracle.__code__.co_varnames[: oracle.__code__.co_argcount])
    values = drawn(seed, names)
    inputs = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True) for n, v in values.items()}
    steps = oracle(**inputs)
    out = list(steps.values())[-1]
    expected = torch.autograd.grad(out, [*inputs.values(), *steps.values()])
    graph = explain_expression(program, values)
    nodes = by_name(graph)
    for name, grad in zip([*inputs, *steps], expected):
        assert nodes[name].grad == pytest.approx(float(grad), rel=1e-12, abs=1e-12), name
    for name, value in steps.items():
        assert nodes[name].value == pytest.approx(value.item(), rel=1e-12, abs=1e-12), name


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("program,oracle", PROGRAMS, ids=["article", "micrograd", "smooth", "tangled"])
def test_every_nodes_gradient_is_the_sum_of_its_shares(program, oracle, seed):
    # The chain rule as the backward table shows it: each edge's share is upstream × the
    # operation's own partial derivative, and a node's gradient adds up its shares.
    names = list(oracle.__code__.co_varnames[: oracle.__code__.co_argcount])
    graph = explain_expression(program, drawn(seed, names))
    for node in graph.nodes:
        shares = [e.contribution for e in graph.edges if e.src == node.id]
        if node.id != graph.loss:
            assert shares and sum(shares) == pytest.approx(node.grad, rel=1e-12, abs=1e-12), node.name


@pytest.mark.parametrize("x", [-4.0, 3.0, -0.5, 1.25])
def test_the_local_derivative_holds_the_other_operand_fixed(x):
    # v4 = z × x with z computed from x: the edge x → v4 carries ∂v4/∂x = z, not the total
    # derivative z + x·dz/dx; and z·z, one operand used twice, carries 2z.
    graph = explain_expression(MICROGRAD, {"x": x})
    nodes = by_name(graph)
    z = 3 * x + 2
    local = {(graph.nodes[e.src].name, graph.nodes[e.dst].name): e.local for e in graph.edges}
    product = next(n for n in graph.nodes if n.expression == "z × x")
    square = next(n for n in graph.nodes if n.expression == "z × z")
    assert local["x", product.name] == pytest.approx(z) and local["z", product.name] == pytest.approx(x)
    assert local["z", square.name] == pytest.approx(2 * z)
    assert sum(1 for e in graph.edges if e.dst == square.id) == 1
    assert nodes["z"].value == pytest.approx(z)


def test_the_articles_worked_example_keeps_its_names():
    # The classic values the README and docs/article.md show: a = 5, b = 3, c = 2.
    graph = explain_expression(ARTICLE, {"a": 5.0, "b": 3.0, "c": 2.0})
    nodes = by_name(graph)
    assert [n.name for n in graph.nodes] == ["a", "b", "c", "v", "u", "J"]
    assert (nodes["v"].expression, nodes["u"].expression, nodes["J"].expression) == ("b × c", "a + v", "3 × u")
    assert (nodes["v"].value, nodes["u"].value, nodes["J"].value) == (6.0, 11.0, 33.0)
    assert (nodes["a"].grad, nodes["b"].grad, nodes["c"].grad) == (3.0, 6.0, 9.0)
    assert graph.title == ARTICLE


def test_micrograds_example_is_a_small_graph_with_its_known_answer():
    # micrograd's test_sanity_check: at x = -4, y = -20 and dy/dx = 46.
    graph = explain_expression(MICROGRAD, {"x": -4.0})
    nodes = by_name(graph)
    assert nodes["y"].value == -20.0 and nodes["x"].grad == 46.0
    # One node per operation written (3 + 3 + 5) and the variable: z and q are not copied per use.
    assert len(graph.nodes) == 12 and sum(n.kind == "op" for n in graph.nodes) == 11
    assert len([e for e in graph.edges if graph.nodes[e.src].name == "z"]) == 3
    assert len([e for e in graph.edges if graph.nodes[e.src].name == "x"]) == 4


def test_a_reused_step_keeps_the_graph_small_where_the_formula_would_explode():
    # d1 = x + x, d2 = d1 + d1, …: written out as one formula, d30 would take 2^30 additions.
    steps = ["d1 = x + x"] + [f"d{i} = d{i - 1} + d{i - 1}" for i in range(2, 31)]
    graph = explain_expression("; ".join(steps), {"x": 0.5})
    nodes = by_name(graph)
    assert len(graph.nodes) == 31 and nodes["d30"].value == 2.0 ** 29
    assert nodes["x"].grad == 2.0 ** 30 and nodes["d15"].grad == 2.0 ** 15


def test_unnamed_parts_are_numbered_around_the_programs_own_names():
    graph = explain_expression("v1 = a*b + a; v3 = v1*v1 - b; L2 = v3/a", {"a": 2.0, "b": 3.0})
    names = [n.name for n in graph.nodes]
    assert len(names) == len(set(names))
    assert names == ["a", "b", "v2", "v1", "v4", "v3", "L2"]
    assert by_name(graph)["L2"].value == pytest.approx(((2 * 3 + 2) ** 2 - 3) / 2)


def test_a_formula_shows_numbers_where_they_were_written():
    graph = explain_expression("J = 3*(a - 2) / -b", {"a": 1.0, "b": 4.0})
    expressions = [n.expression for n in graph.nodes if n.kind == "op"]
    assert expressions[0] == "a − 2" and expressions[1] == "3 × v1"
    assert expressions[2] == "−b" and expressions[3] == "v2 ÷ v3"
    assert graph.nodes[graph.loss].value == pytest.approx(0.75)


def test_the_command_prints_the_programs_names_and_the_sums_of_shares():
    result = cli("explain", "--expr", MICROGRAD, "--at", "x=-4", "--out", "m.png")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert f"Forward pass: {MICROGRAD}" in lines  # the heading on one line, however long
    assert any(line.split()[:3] == ["z", "v2", "+"] for line in lines)
    assert "dy/dx = the sum of its 4 shares" in result.stdout and "40 + 30 − 8 − 16" in result.stdout
    assert "dy/dx = 46" in lines and "-0 " not in result.stdout


# ------------------------------------------------------------------ bad programs


@pytest.mark.parametrize(
    "program,at,expected",
    [
        ("v = b*c; J = 3*(a + v + w)", ["a=1", "b=2", "c=3"], "--expr: no value for w; add --at w=..."),
        ("v = b*c; v = a + v; J = 3*v", ["a=1", "b=2", "c=3"], "step 2 'v = a + v': the step uses v, the name"),
        ("v = b*c; u = a*2; u = a + v; J = 3*u", ["a=1", "b=2", "c=3"],
         "step 3 'u = a + v': u is already defined by step 2; give each step its own name"),
        ("v = b*c;; J = 3*v", ["b=2", "c=3"], "--expr: step 2 is empty"),
        ("v = b*c; ; J = 3*v", ["b=2", "c=3"], "--expr: step 2 is empty"),
        ("; J = 3*a", ["a=1"], "--expr: step 1 is empty"),
        (";", [], "--expr: the formula is empty"),
        ("  ", [], "--expr: the formula is empty"),
        ("u = u + a; J = 3*u", ["a=1"], "step 1 'u = u + a': the step uses u, the name it defines"),
        ("J = 3*u; u = a + v; v = b*c", ["a=1", "b=2", "c=3"], "step 1 'J = 3*u': uses u before step 2 defines it"),
        ("exp = a*b; J = exp + 1", ["a=1", "b=2"], "step 1 'exp = a*b': exp is a function; give the step"),
        ("J = sin*2 + a", ["a=1"], "sin is a function; call it, e.g. sin(a)"),
        ("J = 2*a", ["a=1", "relu=2"], "--at relu: relu is a function"),
        ("b*c; J = 3*a", ["a=1", "b=2", "c=3"], "step 1 'b*c': the step has no name; write NAME = b*c"),
        ("v = b*c; u = a*a; J = 3*u", ["a=1", "b=2", "c=3"], "step 1 'v = b*c': no later step uses v"),
        ("k = 2*3; J = k*a", ["a=1"], "step 1 'k = 2*3': the formula does not depend on any variable; write its"),
        ("u = a; J = 3*u", ["a=1"], "step 1 'u = a': the step computes nothing, it only repeats a; use a itself"),
        ("J = +a", ["a=1"], "'J = +a': the formula computes nothing from a"),
        ("v = b*c; J = 3*v", ["b=2", "c=3", "v=1"], "--at v: v is computed by step 1; remove --at v"),
        ("v, u = b, c; J = v*u", ["b=2", "c=3"], "step 1 'v, u = b, c': write each step as NAME = formula"),
        ("v = u = b*c; J = 3*v", ["b=2", "c=3"], "write each step as NAME = formula"),
        ("v += b; J = 3*v", ["b=2"], "write each step as NAME = formula"),
        ("v = b*c\nJ = 3*v", ["b=2", "c=3"], "holds 2 steps; separate steps with `;`"),
        ("v = b*c; J = 3*(v +", ["b=2", "c=3"], "step 2 'J = 3*(v +': not a formula"),
        ("v = b*c; J = v(b)", ["b=2", "c=3"], "step 2 'J = v(b)': only numbers, variables"),
        ("v = b*c; J = v/(b - 2)", ["b=2", "c=3"], "step 2 'J = v/(b - 2)': v/(b - 2): division by zero at b=2, c=3"),
        ("v = 1e999*b; J = v", ["b=2"], "step 1 'v = 1e999*b': the number 1e999 is beyond float64"),
        ("v = b*c; J = 3*v", ["b=2", "c=3", "d=4"], "--at d: not in the program"),
        ("L = a*b; L*2", ["a=1", "b=2"], "step 2 'L*2': a last step without a name has its result called L"),
        ("L*2", ["L=3"], "'L*2': a last step without a name has its result called L, and the program already"),
    ],
)
def test_a_bad_program_is_one_clear_line(program, at, expected):
    result = cli("explain", "--expr", program, *[a for v in at for a in ("--at", v)])
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert expected in line, line
    assert "Traceback" not in result.output and result.stdout == ""


def test_a_programs_operations_are_bounded_in_all():
    # Each step is small, but together they pass the limit.
    steps = [f"s{i} = " + ("s%d" % (i - 1) if i else "a") + " + a*a" for i in range(MAX_OPERATIONS // 2 + 1)]
    result = cli("explain", "--expr", "; ".join(steps), "--at", "a=1")
    assert result.exit_code == 2 and f"explain shows at most {MAX_OPERATIONS}" in result.stderr
    fits = "; ".join(steps[: MAX_OPERATIONS // 2])
    assert len(explain_expression(fits, {"a": 1.0}).nodes) == MAX_OPERATIONS + 1


def test_a_trailing_semicolon_is_allowed():
    graph = explain_expression(ARTICLE + ";", {"a": 1.0, "b": 2.0, "c": 3.0})
    assert graph.nodes[graph.loss].name == "J" and graph.nodes[graph.loss].value == 21.0


@pytest.mark.parametrize("flag", [["--step", "2"], ["--sample", "0"], ["--lr", "0.1"], ["--seed", "3"],
                                  ["--device", "cpu"], ["--set", "data.n=3"]])
def test_a_config_flag_with_expr_is_refused_not_ignored(flag):
    result = cli("explain", "--expr", ARTICLE, "--at", "a=1", "--at", "b=2", "--at", "c=3", *flag)
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.strip() == f"error: {flag[0]}: for a config's training step; --expr takes its values from --at"
