"""`bpcli explain`: the computational graph with every number, from the real computation."""

from pathlib import Path

import pytest

from bpcli.explain import explain_expression, explain_step
from bpcli.build import build
from conftest import CONFIGS, cli, config


def graph_for(name, step=1, sample=None, **changes):
    cfg = config(name, **changes)
    trainer = build(cfg).trainer
    for earlier in range(1, step):
        trainer.step((earlier - 1) % trainer.steps_per_epoch)
    index = (step - 1) % trainer.steps_per_epoch
    return explain_step(trainer, index, sample, cfg.train.lr, name)


def by_name(graph):
    return {node.name: node for node in graph.nodes}


def test_the_articles_graph_for_y_equals_w_x():
    # x = 1, w = 1, y = 2: ŷ = 1, residual −1, loss 1, dL/dw = −2, then w ← 1 − 0.01·(−2).
    graph = graph_for("exp1.yaml")
    nodes = by_name(graph)
    assert (nodes["x"].value, nodes["w"].value, nodes["y"].value) == (1.0, 1.0, 2.0)
    assert nodes["v1"].expression == "x × w" and nodes["v1"].value == 1.0
    assert nodes["v2"].expression == "v1 − y" and nodes["v2"].value == -1.0
    assert nodes["L"].value == 1.0 and nodes["L"].grad == 1.0
    assert nodes["v2"].grad == -2.0 and nodes["v1"].grad == -2.0 and nodes["w"].grad == -2.0
    locals_ = {(graph.nodes[e.src].name, graph.nodes[e.dst].name): e.local for e in graph.edges}
    assert locals_[("v2", "L")] == -2.0 and locals_[("v1", "v2")] == 1.0 and locals_[("w", "v1")] == 1.0
    (update,) = graph.update
    assert update["before"] == 1.0 and update["grad"] == -2.0
    assert update["after"] == pytest.approx(1.02, abs=1e-7) and update["training_grad"] == -2.0


@pytest.mark.parametrize("a,b,c", [(1.0, 2.0, 3.0), (5.0, -1.5, 4.0)])
def test_the_articles_partial_derivative_exercise(a, b, c):
    graph = explain_expression("J = 3*(a + b*c)", {"a": a, "b": b, "c": c})
    nodes = by_name(graph)
    assert nodes["J"].value == pytest.approx(3 * (a + b * c))
    assert (nodes["a"].grad, nodes["b"].grad, nodes["c"].grad) == pytest.approx((3, 3 * c, 3 * b))


@pytest.mark.parametrize("name,step,sample", [("exp1.yaml", 5, None), ("exp2.yaml", 1, 7),
                                              ("exp3.yaml", 3, 0), ("mlp.yaml", 2, None)])
def test_the_graphs_gradients_are_the_ones_training_uses(name, step, sample):
    graph = graph_for(name, step, sample)
    assert graph.update
    for u in graph.update:
        assert u["grad"] == pytest.approx(u["training_grad"], rel=1e-5, abs=1e-9)
        assert u["after"] == pytest.approx(u["before"] - u["lr"] * u["grad"], rel=1e-6, abs=1e-9)
    params = [n for n in graph.nodes if n.kind == "param"]
    assert params and all(n.full_grad for n in params)


def test_chain_rule_contributions_add_up_to_the_gradient():
    # In exp1 every value is one number: each edge's share is upstream × local, and the
    # gradient at a node is the sum of its shares.
    graph = graph_for("exp1.yaml", step=2)
    for node in graph.nodes:
        shares = [e.contribution for e in graph.edges if e.src == node.id and e.contribution is not None]
        if shares:
            assert sum(shares) == pytest.approx(node.grad)


def test_explain_command_prints_the_graph_and_draws_it():
    result = cli("explain", CONFIGS / "exp1.yaml", "--out", "g.png")
    assert result.exit_code == 0, result.output
    assert "v2 ^ 2" in result.stdout and "dL/dw = -2" in result.stdout
    assert "1.02" in result.stdout
    assert Path("g.png").read_bytes()[:4] == b"\x89PNG"


def test_explain_expression_command():
    result = cli("explain", "--expr", "J = 3*(a + b*c)", "--at", "a=1", "--at", "b=2", "--at", "c=3",
                 "--out", "j.svg")
    assert result.exit_code == 0, result.output
    assert "dJ/da = 3" in result.stdout and "dJ/db = 9" in result.stdout and "dJ/dc = 6" in result.stdout
    assert Path("j.svg").is_file()


@pytest.mark.parametrize(
    "args,expected",
    [
        (["--expr", "3*(a +"], "not a formula"),
        (["--expr", "a*b", "--at", "a=1"], "no value for b"),
        (["--expr", "a*2", "--at", "a=1", "--at", "z=2"], "--at z: not in the formula"),
        (["--expr", "__import__('os')", "--at", "a=1"], "only numbers, variables"),
        (["--expr", "a", "--at", "a=x"], "write name=number"),
        (["--expr", "a", "--at", "a=nan"], "finite number"),
        ([CONFIGS / "exp2.yaml", "--sample", "100"], "--sample 100 is out of range"),
        ([CONFIGS / "exp1.yaml", "--sample", "3"], "--sample 3 is out of range"),
        ([CONFIGS / "exp2.yaml", "--step", "5000"], "--step 5000 is beyond"),
        ([CONFIGS / "exp2.yaml", "--out", "graph.txt"], "give a file ending in .png"),
        ([], "give a config"),
    ],
)
def test_explain_bad_input(args, expected):
    result = cli("explain", *args)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr and "Traceback" not in result.output


def test_explain_shows_the_direction_momentum_steps_in_so_the_update_adds_up():
    from bpcli.explain import explain_config
    from conftest import config

    steps = [explain_config(config("exp2.yaml", train__momentum=0.9), step=s) for s in (1, 2)]
    g1, g2 = ({u["param"]: u["grad"] for u in graph.update} for graph in steps)
    for graph, velocity in zip(steps, (g1, {k: 0.9 * g1[k] + g2[k] for k in g1})):  # v₁ = g₁, v₂ = μ·v₁ + g₂
        for u in graph.update:
            d = (u["before"] - u["after"]) / u["lr"]
            assert d == pytest.approx(velocity[u["param"]], rel=1e-4)
    result = cli("explain", CONFIGS / "exp2.yaml", "--set", "train.momentum=0.9", "--step", "2")
    assert result.exit_code == 0 and "after = before − lr·d" in " ".join(result.stdout.split())
    header = next(line for line in result.stdout.splitlines() if "before" in line and "after" in line)
    assert header.split() == ["θ", "before", "dL/dθ", "lr", "d", "after"]
