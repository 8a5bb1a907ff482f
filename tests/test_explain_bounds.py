"""`bpcli explain` stays bounded: formulas too large or beyond float64 are refused at once,
and a wide MLP is explained layer by layer, in seconds, with a picture of sensible size."""

import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bpcli.errors import BpcliError
from bpcli.explain import MAX_OPERATIONS, SHOWN_VALUES, explain_expression, explain_step
from conftest import cli

ROOT = Path(__file__).resolve().parents[1]
SECONDS = 5.0  # generous for a loaded machine: each of these answers in well under a second


def refused(result, expected):
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr


def png_size(path):
    width, height = struct.unpack(">II", Path(path).read_bytes()[16:24])
    return width, height


@pytest.mark.parametrize(
    "formula,expected",
    [
        ("1/0", "1/0: division by zero"),
        ("0**-1", "0**-1: division by zero"),
        ("10.0**400", "10.0**400: about 10^400 in size, beyond float64"),
        ("2**10000", "2**10000: about 10^3010 in size"),
        ("9**9**9", "9**9**9: about 10^369693100 in size"),  # as a Python integer it would never finish
        ("a**(9**9**9)", "9**9**9: about 10^369693100"),
        ("1e200*1e200*a", "1e200*1e200: beyond float64"),
        ("1e999*a", "the number 1e999 is beyond float64"),
        ("1" + "0" * 400 + "*a", "the number 10000000000000000000… is beyond float64"),
        ("(-8)**(1/3)*a", "(-8)**(1/3): not a real number"),
        ("+".join(["a"] * 20_000), f"explain takes at most 2,000 (and {MAX_OPERATIONS} operations"),
        ("+".join(["a"] * 300), f"the formula has 299 operations; explain shows at most {MAX_OPERATIONS}"),
        ("-" * 1500 + "a", "explain shows at most"),
        ("(" * 300 + "a" + ")" * 300, "not a formula (too many nested parentheses)"),
    ],
)
def test_formulas_too_large_or_beyond_float64_are_refused_before_computing(formula, expected):
    # A fresh process, as a user runs it, so that a formula that never finishes fails the
    # test instead of hanging it; these are refused before torch is even imported.
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "bpcli", "explain", "--expr", formula, "--at", "a=2"],
                            capture_output=True, text=True, timeout=30, cwd=os.getcwd(),
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert time.monotonic() - start < SECONDS
    refused(result, expected)
    assert not Path("graph.png").exists()


@pytest.mark.parametrize(
    "formula,at,expected",
    [
        ("a/0", ["a=1"], "a/0: division by zero at a=1"),
        ("a/b", ["a=1", "b=0"], "a/b: division by zero at a=1, b=0"),
        ("J = a**-1", ["a=0"], "a**-1: 0 to a negative power: division by zero at a=0"),
        ("log(a) + 1", ["a=0"], "log(a): the log of 0 is −infinity at a=0"),
        ("sqrt(-1 - a)", ["a=0"], "sqrt(-1 - a): not a real number (NaN) at a=0"),
        ("exp(a)", ["a=1000"], "exp(a): beyond float64's range (±1.8e308) at a=1000"),
        ("a*a", ["a=1e200"], "a*a: beyond float64's range (±1.8e308) at a=1e+200"),
        ("exp(1000)*a", ["a=1"], "exp(1000): beyond float64's range"),
        ("sqrt(a)", ["a=0"], "sqrt(a): its derivative with respect to a is inf at a=0"),
        ("3*sqrt(a*a)", ["a=0"], "sqrt(a*a): its derivative with respect to a*a is inf at a=0"),
        ("2**-10000", [], "the formula does not depend on any variable"),
    ],
)
def test_infinite_or_nan_values_and_derivatives_name_the_operation(formula, at, expected):
    start = time.monotonic()
    result = cli("explain", "--expr", formula, *[a for v in at for a in ("--at", v)])
    assert time.monotonic() - start < SECONDS
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: --expr '") and expected in line
    assert "Traceback" not in result.output and not Path("graph.png").exists()


def test_finite_formulas_near_the_edges_are_still_explained():
    graph = explain_expression("J = a**0.5 + 2**-10000*b + 10.0**300*c", {"a": 4.0, "b": 1.0, "c": 1e-300})
    nodes = {n.name: n for n in graph.nodes}
    assert nodes["J"].value == pytest.approx(3.0)
    assert (nodes["a"].grad, nodes["b"].grad, nodes["c"].grad) == pytest.approx((0.25, 0.0, 1e300))
    # Integers are read as float64: 2**3 is 8, written as 8 in the graph, where it was written.
    graph = explain_expression("2**3*a", {"a": 1.0})
    assert graph.nodes[graph.loss].value == 8.0 and graph.nodes[graph.loss].expression == "8 × a"


def test_a_formula_at_the_limit_is_drawn_within_a_bounded_picture():
    formula = "+".join(["a"] * (MAX_OPERATIONS + 1))  # 200 additions
    result = cli("explain", "--expr", formula, "--at", "a=1", "--out", "chain.png")
    assert result.exit_code == 0, result.output
    assert f"dL/da = {MAX_OPERATIONS + 1}" in result.stdout
    width, height = png_size("chain.png")  # folded into bands and scaled: at most 36 inches a side
    assert width <= 4000 and height <= 4000


class _ManyOperations:
    """A trainer whose loss takes more operations than a graph can show."""

    steps_per_epoch = 1

    def __init__(self):
        self.w = torch.ones(1, 1, dtype=torch.float64)

    def batch(self, index):
        return {"x": torch.ones(1, 1, dtype=torch.float64), "y": torch.zeros(1, 1, dtype=torch.float64)}

    def params(self):
        return {"w": self.w}

    def loss(self, params, batch):
        z = batch["x"] * params["w"]
        for _ in range(10 * MAX_OPERATIONS):
            z = z * 1.0
        return (z - batch["y"]).pow(2).mean(-1)


def test_a_loss_with_too_many_operations_is_refused_while_it_is_recorded():
    with pytest.raises(BpcliError, match=f"more than {MAX_OPERATIONS} operations"):
        explain_step(_ManyOperations(), 0, None, 0.1, "many")


def test_a_wide_mlp_is_explained_layer_by_layer_in_seconds(write_config):
    # One node per matrix product, bias and activation, values as shapes and norms; the
    # update and gradients list a parameter's first values, not a million of them.
    wide = write_config("kind: mlp\nmodel:\n  hidden: [1024, 1024]\n", "wide.yaml")
    start = time.monotonic()
    result = cli("explain", wide, "--out", "wide.png")
    assert time.monotonic() - start < 60  # about 3 s on two loaded cores; it used to take over 5 minutes
    assert result.exit_code == 0, result.output
    # Shapes as the reader thinks of them: 200 samples by 1024 units, no member dimension.
    assert "v3 @ W2ᵀ" in result.stdout and "200×1024, norm " in result.stdout and "(1, " not in result.stdout
    assert "dL/dW2 = " in result.stdout and "W1[15]" in result.stdout and "W1[16]" not in result.stdout
    width, height = png_size("wide.png")  # the same 19 nodes as for [16, 16]: a page, not a poster
    assert width <= 1400 and height <= 1100


def test_a_deep_mlps_graph_is_bounded_and_its_picture_folded(tmp_path):
    from bpcli.explain import explain_config
    from bpcli.plots import draw_graph
    from conftest import config

    graph = explain_config(config("mlp.yaml", model__hidden=[256] * 8))
    assert sum(n.kind == "op" for n in graph.nodes) == 3 * 9 - 1 + 3  # product, bias, tanh a layer
    params = [n for n in graph.nodes if n.kind == "param"]
    assert len(params) == 18 and all(len(n.full_grad) <= SHOWN_VALUES for n in params)
    assert len(graph.update) <= SHOWN_VALUES * len(params)
    for u in graph.update:
        assert u["grad"] == pytest.approx(u["training_grad"], rel=1e-4, abs=1e-7)
    width, height = png_size(draw_graph(graph, tmp_path / "deep.png"))
    assert width <= 1400 and height <= 4000  # 28 columns folded into bands of a page's width, a layer each
