"""On a CUDA GPU: the graph engine trains exactly as eager does, in runs, sweeps and resumes.

The graph engine replays the kernels eager training launches, so its numbers are not
close to eager's but equal to them. Skipped without CUDA; its speed is in bench/run.py.
"""

import signal

import pytest
import torch

from bpcli.lifecycle import resume, train
from bpcli.sweep import run_sweep
from conftest import InterruptAt, config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

# Epochs for a few hundred steps of each shipped kind (exp1 takes three steps an epoch).
SHORT = {"exp1.yaml": 100, "exp2.yaml": 300, "exp3.yaml": 300, "mlp.yaml": 300,
         "logistic.yaml": 300, "softmax.yaml": 300, "moons.yaml": 100, "xor.yaml": 300}


def on_cuda(name, engine, **changes):
    """A shipped config on the GPU under `engine` (graph or eager), with dotted changes."""
    return config(name, device="cuda", train__engine=engine, **changes)


@pytest.mark.parametrize("grad", ["autograd", "manual"])
@pytest.mark.parametrize("name", sorted(SHORT))
def test_the_graph_engine_logs_exactly_the_rows_eager_logs(name, grad):
    runs = {engine: train(on_cuda(name, engine, train__epochs=SHORT[name], train__log_every=10, train__grad=grad),
                          save=False)
            for engine in ("eager", "graph")}
    assert runs["graph"].summary["engine"] == "graph" and runs["eager"].summary["engine"] == "eager"
    assert len(runs["graph"].history) > 10
    assert runs["graph"].history == runs["eager"].history  # losses, parameters, gradients: bit for bit


@pytest.mark.parametrize("grad", ["autograd", "manual"])
def test_a_graphed_sweep_equals_the_eager_sweep_and_each_single_graphed_run(grad):
    grid = {"train.lr": [1e-3, 1e-2], "seed": [0, 1, 2]}
    changes = dict(train__epochs=300, train__log_every=20, train__grad=grad)
    eager = run_sweep(on_cuda("exp3.yaml", "eager", **changes), grid, save=False)
    graph = run_sweep(on_cuda("exp3.yaml", "graph", **changes), grid, save=False)
    assert len(graph.members) == 6
    assert graph.members == eager.members
    for member in graph.members:
        single = train(on_cuda("exp3.yaml", "graph", train__lr=member["train.lr"], seed=member["seed"], **changes),
                       save=False)
        assert member["final_loss"] == pytest.approx(single.final_loss, rel=1e-5, abs=1e-9)
        for name in ("w", "b"):
            assert member[name] == pytest.approx(single.params[name][0], abs=1e-5), name


def test_exp3_on_cuda_reproduces_the_published_numbers():
    # configs/exp3.yaml as shipped (30 000 epochs); w and b from docs/article.md
    result = train(on_cuda("exp3.yaml", "graph"), save=False)
    assert result.summary["engine"] == "graph" and result.steps == 30_000
    assert result.params["w"][0] == pytest.approx(3.939624071121216, abs=1e-5)
    assert result.params["b"][0] == pytest.approx(0.6291572451591492, abs=1e-5)


@pytest.mark.parametrize("name,epochs,stop_at", [("exp1.yaml", 100, 160),  # mid-epoch: one graph per sample
                                                 ("exp3.yaml", 400, 200), ("mlp.yaml", 400, 200)])
def test_a_graphed_run_stopped_halfway_resumes_to_the_uninterrupted_metrics(tmp_path, name, epochs, stop_at):
    cfg = on_cuda(name, "graph", train__epochs=epochs, train__log_every=10)
    whole = train(cfg, tmp_path / "whole", plots=False)

    stopped = train(cfg, tmp_path / "cut", plots=False, observer=InterruptAt(stop_at))
    assert stopped.status == "interrupted" and stopped.signal == signal.SIGINT and stopped.steps == stop_at

    resumed = resume(tmp_path / "cut", plots=False)  # captures its graphs again after loading the checkpoint
    assert resumed.status == "completed" and resumed.summary["engine"] == "graph"
    assert resumed.params == whole.params
    assert (tmp_path / "cut/metrics.csv").read_bytes() == (tmp_path / "whole/metrics.csv").read_bytes()


OPTIMIZERS = [
    {"train__momentum": 0.9},
    {"train__momentum": 0.9, "train__nesterov": True, "train__weight_decay": 0.01},
    {"train__optimizer": "adam"},
    {"train__optimizer": "adam", "train__batch_size": 16},  # shuffled mini-batches: the order is rewritten each epoch
    {"train__momentum": 0.5, "train__batch_size": 7, "train__shuffle": False},
    {"train__momentum": 0.5, "train__dampening": 0.2},
    {"train__optimizer": "adamw", "train__amsgrad": True},
    {"train__optimizer": "rmsprop", "train__lr": 0.001, "train__momentum": 0.5, "train__centered": True},
    {"train__optimizer": "adagrad", "train__lr_decay": 0.01},
    # a schedule's lr lives in a device tensor that the captured step rewrites in place
    {"train__schedule": "cosine", "train__warmup": 10, "train__momentum": 0.9},
    {"train__schedule": "linear", "train__optimizer": "adam"},
]


@pytest.mark.parametrize("changes", OPTIMIZERS, ids=lambda c: ",".join(f"{k[7:]}={v}" for k, v in c.items()))
@pytest.mark.parametrize("name,grad", [("exp2.yaml", "manual"), ("exp2.yaml", "autograd"), ("exp3.yaml", "autograd"),
                                       ("mlp.yaml", "manual")])
def test_the_graph_engine_steps_every_optimizer_as_eager_does(name, grad, changes):
    if "train__schedule" in changes and name == "exp3.yaml":
        pytest.skip("a single nn-linear run steps torch.optim, whose tensor lr is read on the host: refused by design")
    runs = {engine: train(on_cuda(name, engine, train__epochs=60, train__log_every=5, train__grad=grad, **changes),
                          save=False)
            for engine in ("eager", "graph")}
    assert runs["graph"].summary["engine"] == "graph"
    assert runs["graph"].history == runs["eager"].history


@pytest.mark.parametrize("changes", [{"train__optimizer": "adam", "train__lr": 50.0},
                                     {"train__momentum": 0.9, "train__lr": 2.0}])
def test_a_graphed_run_finds_the_same_divergence_as_eager(changes):
    # The search for the exact step reloads the last good state: torch.optim's new state
    # tensors must not be left behind by captured graphs.
    runs = {engine: train(on_cuda("exp3.yaml", engine, train__epochs=2000, train__log_every=100, **changes),
                          save=False)
            for engine in ("eager", "graph")}
    assert runs["eager"].status == "diverged"
    assert runs["graph"].summary["divergence"]["step"] == runs["eager"].summary["divergence"]["step"]
    assert runs["graph"].history == runs["eager"].history
