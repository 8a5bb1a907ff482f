"""Optimizers and batches: the hand-written rules equal torch.optim's, equal settings give
equal results, and mini-batches visit every sample once per epoch in a seeded order."""

import csv
import inspect
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import bpcli.optimizers.sgd
from bpcli.build import build
from bpcli.config.schema import TrainConfig
from bpcli.kinds.base import Batches, batch_index, epoch_order
from bpcli.lifecycle import resume, train
from bpcli.optimizers import OPTIMIZERS, Optimizer, Stability, describe, settings_of
from bpcli.section import Section
from conftest import CONFIGS, InterruptAt, cli, config
from test_export import export_and_compare


def settings(optimizer="sgd", lr=0.05, **changes):
    """A validated train section: the rule's own settings, its defaults filled in."""
    return TrainConfig(optimizer=optimizer, lr=lr, epochs=500, log_every=1, grad="manual", **changes)


def torch_optimizer(params, s):
    """torch.optim's class for the rule, written out here rather than asked of the registry."""
    classes = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
               "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad}
    cls = classes[s.optimizer]
    names = inspect.signature(cls).parameters
    own = {k: getattr(s, k) for k in names if k not in ("params", "lr") and getattr(s, k, None) is not None}
    own = {k: tuple(v) if isinstance(v, list) else v for k, v in own.items()}
    return cls(params, lr=s.lr, **own)


def gradient(p):
    """A gradient that depends on where the parameters are, so that the paths feed back."""
    return torch.sin(3 * p) + 0.5 * p - 0.2


RULES = [
    settings(),
    settings(lr=0.3, weight_decay=0.1),
    settings(momentum=0.5),
    settings(lr=0.01, momentum=0.99),
    settings(momentum=0.9, nesterov=True),
    settings(lr=0.2, momentum=0.7, nesterov=True, weight_decay=0.05),
    settings(momentum=0.6, dampening=0.4),
    settings("adam", lr=0.01),
    settings("adam", lr=0.3, betas=[0.5, 0.9], eps=1e-3),
    settings("adam", lr=0.05, betas=[0.0, 0.0], weight_decay=0.2),
    settings("adam", lr=1e-4, betas=[0.95, 0.9999], eps=1e-12),
    settings("adam", lr=0.02, amsgrad=True),
    settings("adamw", lr=0.01),
    settings("adamw", lr=0.1, weight_decay=0.3, betas=[0.8, 0.99], amsgrad=True),
    settings("adamw", lr=0.05, weight_decay=0.0),
    settings("rmsprop", lr=0.01),
    settings("rmsprop", lr=0.003, alpha=0.9, eps=1e-6, weight_decay=0.1),
    settings("rmsprop", lr=0.002, momentum=0.8),
    settings("rmsprop", lr=0.001, centered=True, momentum=0.5),
    settings("adagrad", lr=0.1),
    settings("adagrad", lr=0.3, lr_decay=0.01, initial_accumulator_value=0.5),
    settings("adagrad", lr=0.05, weight_decay=0.1, eps=1e-6),
]


def name_of(s):
    return describe(s).replace(" ", "")


@pytest.mark.parametrize("s", RULES, ids=name_of)
def test_each_hand_written_rule_equals_torch_optim_on_the_same_gradients(s):
    generator = torch.Generator().manual_seed(7)
    start = {"w": torch.randn(1, 4, 3, generator=generator, dtype=torch.float64),
             "b": torch.randn(1, 3, generator=generator, dtype=torch.float64)}
    ours = {name: p.clone() for name, p in start.items()}
    theirs = {name: p.clone().requires_grad_(True) for name, p in start.items()}
    rule, reference = Optimizer(ours, [s]), torch_optimizer(list(theirs.values()), s)
    for _ in range(500):
        grads = {name: gradient(p) for name, p in ours.items()}  # the same gradients for both
        rule.step(ours, grads)
        for name, p in theirs.items():
            p.grad = grads[name].clone()
        reference.step()
    for name in start:
        moved = (ours[name] - start[name]).abs().max()
        assert moved > 1e-3  # the rule did something
        assert torch.allclose(ours[name], theirs[name].detach(), rtol=0, atol=1e-12), name


def test_every_rule_of_the_registry_is_tested_against_torch():
    assert {s.optimizer for s in RULES} == set(OPTIMIZERS)


MIXED = [RULES[0], RULES[2], RULES[5], RULES[6], RULES[7], RULES[8], RULES[11], RULES[13], RULES[16], RULES[18],
         RULES[20], RULES[21], RULES[7]]


def test_members_with_their_own_rules_step_in_one_batch_exactly_as_their_single_runs():
    generator = torch.Generator().manual_seed(3)
    start = torch.randn(len(MIXED), 5, generator=generator, dtype=torch.float64)
    together = {"p": start.clone()}
    alone = [{"p": start[k : k + 1].clone()} for k in range(len(MIXED))]
    batched = Optimizer(together, MIXED)
    singles = [Optimizer(a, [s]) for a, s in zip(alone, MIXED)]
    for _ in range(200):
        # each row's gradient as its single run computes it (sin is vectorised differently on 5 and 65 values)
        rows = torch.cat([gradient(together["p"][k : k + 1]) for k in range(len(MIXED))])
        batched.step(together, {"p": rows})  # one step call for every rule
        for a, single in zip(alone, singles):
            single.step(a, {"p": gradient(a["p"])})
    for k, a in enumerate(alone):
        assert torch.equal(together["p"][k], a["p"][0]), describe(MIXED[k])


def test_members_of_one_rule_with_settings_of_their_own_step_as_their_single_runs():
    members = [RULES[2], RULES[3], RULES[4], RULES[6]]  # momentum, nesterov and dampening per member
    generator = torch.Generator().manual_seed(5)
    start = torch.randn(len(members), 5, generator=generator, dtype=torch.float64)
    together = {"p": start.clone()}
    alone = [{"p": start[k : k + 1].clone()} for k in range(len(members))]
    batched = Optimizer(together, members)
    singles = [Optimizer(a, [s]) for a, s in zip(alone, members)]
    for _ in range(200):
        batched.step(together, {"p": gradient(together["p"])})
        for a, single in zip(alone, singles):
            single.step(a, {"p": gradient(a["p"])})
    for k, a in enumerate(alone):
        assert torch.allclose(together["p"][k], a["p"][0], rtol=0, atol=1e-13), describe(members[k])


@pytest.mark.parametrize("s", RULES, ids=name_of)
def test_a_rule_keeps_the_sum_of_parameters_whose_gradients_sum_to_zero_when_it_says_it_is_linear(s):
    # softmax's gradients sum to zero over the classes; a linear rule keeps Σ_c W_c where it started
    generator = torch.Generator().manual_seed(11)
    start = torch.randn(1, 4, 3, generator=generator, dtype=torch.float64)  # (K, C, F)
    ours = {"W": start.clone()}
    rule = Optimizer(ours, [s])
    for _ in range(200):
        g = gradient(ours["W"])
        rule.step(ours, {"W": g - g.mean(1, keepdim=True)})  # Σ_c g_c = 0
    drift = (ours["W"].sum(1) - start.sum(1)).abs().max()
    assert (ours["W"] - start).abs().max() > 1e-3
    if OPTIMIZERS[s.optimizer].linear(settings_of(s)):
        assert drift < 1e-12
    else:
        assert drift > 1e-6


def test_softmax_says_when_its_optimizer_does_not_keep_the_sum_of_the_classes_rows():
    kept = train(config("softmax.yaml", dtype="float64", train__epochs=40, train__momentum=0.9), "kept", plots=False)
    moved = train(config("softmax.yaml", dtype="float64", train__epochs=40, train__optimizer="rmsprop",
                         train__lr=0.05), "moved", plots=False)

    def sums(run, key):  # Σ_c W_c, from W's C rows of F values
        values = torch.tensor(run.summary[key]["W"], dtype=torch.float64)
        return values.reshape(-1, 4).sum(0)

    assert torch.allclose(sums(kept, "params"), sums(kept, "initial_params"), rtol=0, atol=1e-12)
    assert "optimum_note" not in kept.summary["task"]
    assert not torch.allclose(sums(moved, "params"), sums(moved, "initial_params"), rtol=0, atol=1e-6)
    assert moved.summary["task"]["optimum_note"].startswith("rmsprop does not keep Σ_c W_c at its start")


def rows(run):
    with open(Path(run) / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("name,base,changes", [
    ("exp1.yaml", {}, {"train.batch_size": 1, "train.shuffle": False}),  # per-sample SGD in data order is exp1
    ("exp2.yaml", {}, {"train.batch_size": 100}),  # the full batch is exp2
    ("exp2.yaml", {"train.grad": "manual"}, {"train.batch_size": 100}),
    ("exp3.yaml", {"train.epochs": 3000}, {"train.batch_size": 50}),
    ("exp2.yaml", {}, {"train.momentum": 0.0, "train.weight_decay": 0.0, "train.optimizer": "sgd"}),
])
def test_equal_settings_give_the_article_run_bit_for_bit(name, base, changes):
    def run(out, values):
        sets = [arg for key, value in values.items() for arg in ("--set", f"{key}={json.dumps(value)}")]
        result = cli("train", CONFIGS / name, "--device", "cpu", "--no-plots", "--out", out, "-q", *sets)
        assert result.exit_code == 0, result.output

    run("article", base)
    run("same", {**base, **changes})
    assert rows("same") == rows("article")


def test_per_sample_linear_gd_is_the_textbook_loop():
    # batch_size 1 in data order: one update of (w, b) per sample, as a textbook writes it.
    cfg = config("exp2.yaml", train__batch_size=1, train__shuffle=False, train__epochs=3, dtype="float64")
    built = build(cfg)
    x, y = built.data.x[:, 0].tolist(), built.data.y.tolist()
    w, b = (float(built.trainer.params()[name].detach().reshape(-1)[0]) for name in ("w", "b"))
    for _ in range(3):
        for xi, yi in zip(x, y):
            r = w * xi + b - yi  # r = ŷ − y
            w, b = w - cfg.train.lr * 2 * r * xi, b - cfg.train.lr * 2 * r
    run = train(cfg, "per-sample", plots=False)
    assert run.params["w"][0] == pytest.approx(w, rel=1e-12)
    assert run.params["b"][0] == pytest.approx(b, rel=1e-12)


def rows_of(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_shuffled_epoch_visits_every_sample_once_in_a_seeded_order():
    x = torch.arange(10.0)[None, :, None].repeat(2, 1, 1)  # two members, samples numbered 0 … 9
    batches = Batches(x, x[..., 0], size=3, shuffle=True, seeds=[5, 6])
    assert batches.steps_per_epoch == 4  # 3 + 3 + 3 + 1
    seen = {}
    for epoch in (1, 2):
        batches.start_epoch(epoch)
        taken = torch.cat([batches(i)["x"][..., 0] for i in range(4)], dim=1)
        assert all(sorted(t.tolist()) == list(range(10)) for t in taken)  # each sample once
        assert torch.equal(batches(0)["x"][..., 0], batches(0)["y"])  # x and y stay paired
        seen[epoch] = taken
    assert not torch.equal(seen[1], seen[2])  # a new order every epoch
    assert not torch.equal(seen[1][0], seen[1][1])  # and per seed
    assert torch.equal(seen[1][0], epoch_order(5, 1, 10).float())  # the same order for any K


def test_mini_batches_are_seeded_and_differ_between_seeds():
    changes = {"train__batch_size": 16, "train__epochs": 20}
    one = train(config("mlp.yaml", **changes), "one", plots=False)
    again = train(config("mlp.yaml", **changes), "again", plots=False)
    other = train(config("mlp.yaml", seed=1, **changes), "other", plots=False)
    assert one.losses == again.losses
    assert one.losses != other.losses
    assert json.loads(Path("one/summary.json").read_text())["steps"] == 20 * math.ceil(200 / 16)


def test_a_batch_larger_than_the_data_is_refused():
    result = cli("train", CONFIGS / "exp2.yaml", "--set", "train.batch_size=101", "--out", "big")
    assert result.exit_code == 2
    assert "train.batch_size: 101 is more than the 100 samples" in result.stderr
    assert not Path("big").exists()


@pytest.mark.parametrize("name,grid,extra", [
    ("exp2.yaml", ["--grid", "train.momentum=0,0.5,0.9"], []),
    ("exp2.yaml", ["--grid", "optimizer=sgd,adam", "--grid", "lr=0.01,0.1"], ["--set", "train.grad=manual"]),
    ("exp3.yaml", ["--grid", "optimizer=sgd,adam"], ["--epochs", "300", "--set", "train.weight_decay=0.01"]),
    ("exp1.yaml", ["--grid", "momentum=0,0.9", "--grid", "seed=0:2"], ["--set", "train.nesterov=false"]),
    ("mlp.yaml", ["--grid", "optimizer=sgd,adam"], ["--epochs", "50", "--set", "train.batch_size=50"]),
])
def test_optimizer_settings_sweep_each_member_as_its_single_run(name, grid, extra):
    result = cli("sweep", CONFIGS / name, "--device", "cpu", *grid, *extra, "--out", "sweep", "-q")
    assert result.exit_code == 0, result.output
    keys = [arg.split("=")[0] for arg in grid[1::2]]
    for member in rows_of("sweep/summary.csv"):
        sets = []
        for key in keys:
            column = next(c for c in member if c.endswith(key) or c == key)
            flag = "--seed" if column == "seed" else "--set"
            value = member[column] if column == "seed" else f"{column if '.' in column else 'train.' + column}={member[column]}"
            sets += [flag, value]
        out = f"single{member['member']}"
        single = cli("train", CONFIGS / name, "--device", "cpu", *extra, *sets, "--out", out, "-q", "--no-plots")
        assert single.exit_code == 0, single.output
        final = json.loads(Path(out, "summary.json").read_text())["final_loss"]
        assert float(member["final_loss"]) == pytest.approx(final, rel=1e-4, abs=1e-9), member


def test_check_compares_the_update_rule_and_catches_a_wrong_one(monkeypatch):
    args = ["check", CONFIGS / "exp2.yaml", "--set", "train.momentum=0.9", "--steps", "8"]
    result = cli(*args)
    assert result.exit_code == 0, result.output
    assert "update rule sgd (momentum 0.9)" in result.stdout
    # a velocity that forgets to decay: v ← v + g instead of μ·v + g
    def forgetful(self, p, g, state, lr, s, t):
        p.sub_(lr * state["velocity"].add_(g))

    monkeypatch.setattr(bpcli.optimizers.sgd.SGD, "step", forgetful)
    broken = cli(*args)
    assert broken.exit_code == 1
    assert "update differs from torch.optim's" in broken.stderr


def test_the_optimizer_state_is_in_the_checkpoint():
    train(config("exp2.yaml", train__optimizer="adam", train__epochs=10), "run", plots=False)
    saved = torch.load("run/checkpoint.pt", weights_only=True)
    state = json.dumps(sorted(_keys(saved)))
    assert "w.m" in state and "w.v" in state and "w.beta1_power" in state  # β₁ᵗ, kept as Adam's step count


def _keys(tree, prefix=""):
    if isinstance(tree, dict):
        return [k for key, value in tree.items() for k in [str(key), *_keys(value)]]
    return []


def test_batch_index_draws_the_order_of_the_epoch_a_step_is_in():
    trainer = build(config("exp2.yaml", train__batch_size=30)).trainer
    assert trainer.steps_per_epoch == 4 and trainer.shuffle
    assert batch_index(trainer, 6) == 1 and trainer.batches.epoch == 2
    assert torch.equal(trainer.batches.order[0], epoch_order(0, 2, 100).to(trainer.batches.order.device))


def test_explain_shows_the_step_the_optimizer_takes():
    from bpcli.explain import explain_config

    cfg = config("exp2.yaml", train__momentum=0.9, train__batch_size=25, dtype="float64")
    first, second = explain_config(cfg, step=1), explain_config(cfg, step=2)
    assert "momentum: v ← 0.9·v + dL/dθ, θ ← θ − lr·v" in second.rule
    assert "batch 2 of 4 in epoch 1" in second.title
    for one, two in zip(first.update, second.update):
        velocity = 0.9 * one["grad"] + two["grad"]  # v₂ = μ·g₁ + g₂ (v₁ = g₁)
        assert two["after"] == pytest.approx(two["before"] - cfg.train.lr * velocity, rel=1e-12)
    assert explain_config(config("exp2.yaml")).rule == ""  # plain gradient descent keeps its own table


def test_one_small_batch_loss_is_not_the_yardstick_of_divergence(write_config):
    # Started at a near-perfect fit, the first sample's loss is ~1e-6; later samples' losses
    # of ~1 are no divergence: the rule measures against the loss on all samples.
    path = write_config("kind: linear-gd\ndevice: cpu\ndata:\n  source: inline\n  x: [1, 2, 3, 4]\n"
                        "  y: [4.601, 8.6, 13.6, 16]\nmodel:\n  init_w: 4\n  init_b: 0.6\n"
                        "train:\n  lr: 0.001\n  batch_size: 1\n  shuffle: false\n  log_every: 1\n")
    result = cli("train", path, "--out", "small", "--no-plots", "-q")
    assert result.exit_code == 0, result.output
    summary = json.loads(Path("small/summary.json").read_text())
    assert summary["status"] == "completed"
    assert summary["initial_loss"] == pytest.approx(((4.6 - 4.601) ** 2 + 0 + 1 + 0.36) / 4, rel=1e-5)
    # a learning rate far too large still diverges, measured against that loss
    assert cli("train", path, "--lr", "5", "--out", "big", "--no-plots", "-q").exit_code == 1


@pytest.mark.parametrize("size", [1, 7, 32, 199])
def test_a_mini_batch_run_reports_its_loss_on_every_sample(size):
    run = train(config("mlp.yaml", train__batch_size=size, train__epochs=3, dtype="float64"), "mb", plots=False)
    summary = run.summary
    built = build(config("mlp.yaml", dtype="float64"))
    trainer = built.trainer
    with torch.no_grad():
        for name, p in trainer.params().items():
            p.copy_(torch.tensor(summary["params"][name], dtype=torch.float64).reshape(p.shape))
        expected = float(trainer.loss(trainer.params(), trainer.full_batch())[0])
    assert summary["final_loss_all_samples"] == pytest.approx(expected, rel=1e-9)
    assert summary["batch_size"] == size and summary["shuffle"] is True and summary["optimizer"] == "sgd"
    assert "final_loss_all_samples" not in train(config("mlp.yaml", train__epochs=3), "full", plots=False).summary


def test_the_run_records_its_optimizer_and_the_table_names_it():
    result = cli("train", CONFIGS / "exp2.yaml", "--optimizer", "sgd", "--momentum", "0.9", "--batch-size", "25",
                 "--epochs", "20", "--out", "named", "--no-plots")
    assert result.exit_code == 0, result.output
    summary = json.loads(Path("named/summary.json").read_text())
    assert summary["optimizer"] == "sgd (momentum 0.9)" and summary["batch_size"] == 25
    assert "sgd (momentum 0.9), batches of 25, shuffled" in result.stdout
    assert "loss on all 100 samples" in result.stdout and "final loss (last batch)" in result.stdout


def test_an_adam_eps_the_dtype_rounds_to_zero_is_refused():
    result = cli("train", CONFIGS / "exp1.yaml", "--optimizer", "adam", "--set", "train.eps=1e-300", "--out", "e")
    assert result.exit_code == 2 and "train.eps: 1e-300 is below the smallest normal float32" in result.stderr
    fine = cli("config", CONFIGS / "exp1.yaml", "--optimizer", "adam", "--set", "train.eps=1e-300",
               "--set", "dtype=float64")
    assert fine.exit_code == 0, fine.output


def test_explain_sample_follows_the_shuffled_order():
    from bpcli.explain import explain_config

    cfg = config("exp1.yaml", train__batch_size=1, train__shuffle=True)
    order = epoch_order(cfg.seed, 1, 3).tolist()
    for sample in range(3):
        graph = explain_config(cfg, sample=sample)
        assert graph.title.endswith(f"step {order.index(sample) + 1} (sample {sample})")
        x = next(n for n in graph.nodes if n.name == "x")
        assert x.value == [1.0, 2.0, 3.0][sample]


def test_a_sweep_over_the_optimizer_gives_each_member_its_own_settings():
    result = cli("sweep", CONFIGS / "exp2.yaml", "--grid", "optimizer=sgd,adam", "--momentum", "0.9",
                 "--set", "train.lr=0.05", "--epochs", "100", "--out", "mixed", "-q")
    assert result.exit_code == 0, result.output
    members = {m["train.optimizer"]: m for m in rows_of("mixed/summary.csv")}
    for name, flags in (("sgd", ["--momentum", "0.9"]), ("adam", [])):
        single = cli("train", CONFIGS / "exp2.yaml", "--optimizer", name, *flags, "--set", "train.lr=0.05",
                     "--epochs", "100", "--out", name, "--no-plots", "-q")
        assert single.exit_code == 0, single.output
        final = json.loads(Path(name, "summary.json").read_text())["final_loss"]
        assert float(members[name]["final_loss"]) == pytest.approx(final, rel=1e-5, abs=1e-12)
    crossed = cli("sweep", CONFIGS / "exp2.yaml", "--grid", "optimizer=sgd,adam", "--grid", "momentum=0,0.9")
    assert crossed.exit_code == 2
    assert "the member with optimizer adam and train.momentum=0.9 is not a run" in crossed.stderr


def test_a_mini_batch_divergence_names_the_batches_not_the_dtype():
    result = cli("train", CONFIGS / "longley.yaml", "--batch-size", "1", "--lr", "0.2", "--epochs", "500",
                 "--out", "small", "--no-plots")
    assert result.exit_code == 1
    assert "With one sample a step follows its own batch's curvature" in result.stderr
    assert "outgrew" not in result.stderr and "float64" not in result.stderr
    assert "lr (full-batch bound)" in cli("train", CONFIGS / "longley.yaml", "--batch-size", "4", "--lr", "0.01",
                                          "--epochs", "5", "--out", "four", "--no-plots").stdout


def test_a_run_below_the_optimum_says_the_rounded_data_have_another_minimum(tmp_path):
    import numpy as np

    rng = np.random.default_rng(3)
    a = rng.uniform(1, 2, 40)
    twin = a + 1e-9 * rng.standard_normal(40)  # equal to a once rounded to float32
    c = rng.uniform(0, 1, 40)
    y = 1.5 * a + 0.3 * c + 0.05 * rng.standard_normal(40)
    rows = "\n".join(",".join(repr(float(v)) for v in row) for row in zip(a, twin, c, y))
    (tmp_path / "near.csv").write_text("a,twin,c,y\n" + rows + "\n")
    (tmp_path / "near.yaml").write_text("kind: linear-gd\ndevice: cpu\ndata:\n  source: csv\n  path: near.csv\n"
                                        "  target: y\n  standardize: none\n  val_fraction: 0\n"
                                        "train:\n  lr: 0.1\n  epochs: 3000\n  log_every: 500\n  grad: manual\n")
    result = cli("train", tmp_path / "near.yaml", "--out", "near", "--no-plots")
    assert result.exit_code == 0, result.output
    summary = json.loads(Path("near/summary.json").read_text())
    assert summary["final_loss"] < summary["optimum"]["loss"]
    assert any("is below the optimum's" in w for w in summary["warnings"])
    as_read = cli("train", tmp_path / "near.yaml", "--set", "dtype=float64", "--out", "wide", "--no-plots")
    assert not any("below the optimum" in w for w in json.loads(Path("wide/summary.json").read_text()).get("warnings", []))
    assert as_read.exit_code == 0


# --------------------------------------------------------------------------- the registry


class SignSGDSettings(Section):
    """signSGD has no settings besides lr."""


class TorchSignSGD(torch.optim.Optimizer):
    """The reference: p ← p − lr·sign(g), as a torch.optim class."""

    def __init__(self, params, lr):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                p.sub_(group["lr"] * torch.sign(p.grad))


class SignSGD:
    """A throw-away rule, one file's worth of code: p ← p − lr·sign(g)."""

    name = "signsgd"
    words = "signSGD (steps of the gradient's sign)"
    torch_name = "SignSGD"
    Settings = SignSGDSettings

    def knobs(self, s):
        return {"none": 0.0}

    def counts_steps(self, s):
        return False

    def plain(self, s):
        return False

    def slots(self, p, s):
        return {}

    def step(self, p, g, state, lr, s, t):
        p.sub_(lr * torch.sign(g))  # p ← p − lr·sign(g)

    def torch_optimizer(self, params, lr, s, capturable):
        return TorchSignSGD(params, lr)

    def describe(self, s):
        return ""

    def formula(self, s, g):
        return f"signsgd: θ ← θ − lr·sign({g})"

    def stability(self, s):
        return Stability(reason="signSGD's steps are lr long whatever the gradient, so no bound of that form applies")

    def linear(self, s):
        return False  # sign(g) is not linear in g

    unexported = ()

    def export_setup(self, lr, s):
        return [f"lr = {lr!r}"]

    def export_update(self, s, fast):
        return ["p.sub_(lr * torch.sign(g))  # p ← p − lr·sign(g)"]

    # no export_optim: torch.optim has no signSGD for nn-linear's script to step


@pytest.fixture
def signsgd(monkeypatch):
    monkeypatch.setitem(OPTIMIZERS, "signsgd", SignSGD())  # the one registry line


def test_a_new_rule_is_one_file_and_one_registry_line(signsgd, tmp_path):
    changes = {"train__optimizer": "signsgd", "train__lr": 0.01, "train__epochs": 300, "train__log_every": 1}
    # it trains, with the words and theory it gives
    whole = train(config("exp2.yaml", **changes), tmp_path / "whole", plots=False)
    assert whole.status == "completed" and whole.summary["optimizer"] == "signsgd"
    assert whole.losses[-1] < whole.losses[0] / 10
    assert whole.summary["stable_lr"] is None
    # it resumes bit for bit
    cut = train(config("exp2.yaml", **changes), tmp_path / "cut", plots=False, observer=InterruptAt(111))
    assert cut.status == "interrupted"
    assert resume(tmp_path / "cut", plots=False).params == whole.params
    # it sweeps beside the others, one batched run, each member its single run
    result = cli("sweep", CONFIGS / "exp2.yaml", "--grid", "optimizer=sgd,signsgd,adam", "--set", "train.lr=0.01",
                 "--epochs", "300", "--out", tmp_path / "sweep", "-q")
    assert result.exit_code == 0, result.output
    member = next(m for m in rows_of(tmp_path / "sweep/summary.csv") if m["train.optimizer"] == "signsgd")
    assert float(member["final_loss"]) == pytest.approx(whole.final_loss, rel=1e-6)
    # it is checked against its torch.optim class, and explain shows its step
    check = cli("check", CONFIGS / "exp2.yaml", "--set", "train.optimizer=signsgd", "--steps", "5")
    assert check.exit_code == 0, check.output
    assert "update rule signsgd" in check.stdout
    explained = cli("explain", CONFIGS / "exp2.yaml", "--set", "train.optimizer=signsgd", "--step", "2")
    assert explained.exit_code == 0, explained.output
    assert "signsgd: θ ← θ − lr·sign(dL/dθ)" in explained.stdout
    # export writes its script text, which reproduces the run bit for bit without bpcli
    export_and_compare(tmp_path / "whole")
    # and refuses in one line a run that needs torch.optim's own class, which signSGD lacks
    assert train(config("exp3.yaml", **changes), tmp_path / "nn", plots=False).status == "completed"
    refused = cli("export", tmp_path / "nn")
    assert refused.exit_code == 2 and len(refused.stderr.strip().splitlines()) == 1, refused.output
    assert "signsgd, whose rule has no export_optim" in refused.stderr


def test_a_setting_no_member_can_use_is_refused_alike_by_train_and_sweep():
    single = cli("train", CONFIGS / "exp2.yaml", "--optimizer", "adam", "--momentum", "0.9", "--out", "t")
    swept = cli("sweep", CONFIGS / "exp2.yaml", "--grid", "optimizer=adam,adagrad", "--momentum", "0.9", "--out", "s")
    assert single.exit_code == swept.exit_code == 2
    said = "train.momentum is a setting of optimizer sgd and rmsprop, and"
    assert said in single.stderr and said in swept.stderr
    assert "or set train.optimizer: sgd" in single.stderr and "or set train.optimizer: sgd" in swept.stderr
    assert not Path("t").exists() and not Path("s").exists()
    # a grid where one rule can use it gives it to that rule's members only
    fine = cli("sweep", CONFIGS / "exp2.yaml", "--grid", "optimizer=adamw,rmsprop", "--momentum", "0.5",
               "--epochs", "20", "--out", "mixed", "-q")
    assert fine.exit_code == 0, fine.output
    config_of = {m["train.optimizer"]: m for m in rows_of("mixed/summary.csv")}
    assert set(config_of) == {"adamw", "rmsprop"}


@pytest.mark.parametrize("name", sorted(set(OPTIMIZERS) - {"sgd"}))
def test_resume_after_an_interrupt_is_bit_identical_for_each_rule(tmp_path, name):
    cfg = config("exp3.yaml", train__optimizer=name, train__lr=0.01, train__epochs=120, train__log_every=3,
                 train__batch_size=16)
    whole = train(cfg, tmp_path / "whole", plots=False)
    stopped = train(cfg, tmp_path / "cut", plots=False, observer=InterruptAt(201))
    assert stopped.status == "interrupted"
    resumed = resume(tmp_path / "cut", plots=False)
    assert resumed.params == whole.params
    assert (tmp_path / "cut/metrics.csv").read_bytes() == (tmp_path / "whole/metrics.csv").read_bytes()


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_nn_linear_trains_with_torch_optims_own_class_for_each_rule(name):
    from bpcli.kinds.nn_linear import NNLinear

    built = build(config("exp3.yaml", train__optimizer=name, train__epochs=5))
    assert isinstance(built.trainer, NNLinear)
    assert type(built.trainer.optimizer).__name__ == OPTIMIZERS[name].torch_name
    assert type(built.trainer.optimizer).__module__.startswith("torch.optim")


# --------------------------------------------------------------------------- names

BPCLI = Path(__file__).resolve().parent.parent / "bpcli"

METHOD = "stochastic gradient descent, the article's per-sample and mini-batch training, whatever train.optimizer is"
ALLOWED = [
    ("analysis.py", "per-sample SGD on this data", METHOD),
    ("analysis.py", "with a constant lr SGD settles", METHOD),
    ("config/schema.py", "(plain SGD: p ← p − lr·dL/dp)", "the lr's docstring: what a step of the default rule is"),
    ("config/schema.py", "1 is per-sample SGD", METHOD),
    ("config/schema.py", "is mini-batch SGD", METHOD),
    ("kinds/base.py", "One update per sample (SGD)", METHOD),
    ("kinds/scalar_sgd.py", "per-sample SGD", METHOD + " (the kind's own name)"),
    ("kinds/nn_linear.py", "(optim.SGD in the article)", "the article's own code"),
    ("kinds/nn_linear.py", "torch.optim's SGD and Adagrad read a tensor lr",
     "a comment on why every scheduled single nn-linear run is refused a CUDA graph; no code asks the rule"),
    ("plots/compare.py", "(plain SGD, no momentum)", "a docstring on DEFAULTS, which asks the registry's DEFAULT"),
    ("divergence.py", "for plain SGD; momentum and", "the module docstring's example of an update rule"),
    ("divergence.py", "Adam transform g + λ·θ first", "the module docstring's example of an update rule"),
    ("console/graph.py", "Adam's scaled moment", "a comment's example of a direction that is not the gradient"),
    ("gradcheck.py", "`sgd (momentum 0.9, nesterov)`", "a docstring's example of optimizers.describe's words"),
    ("grid.py", "`--grid optimizer=sgd,adam --momentum 0.9`", "a docstring's example of a grid over the optimizer"),
]
"""(file under bpcli/, text on the line, why) for each rule's name that may stay outside bpcli/optimizers."""


def test_no_module_outside_the_registry_names_a_rule():
    import re

    names = "|".join(sorted(OPTIMIZERS, key=len, reverse=True))
    # A rule's name as a word of its own: scalar-sgd (a kind) and scalar_sgd (its module) are not one.
    word = re.compile(rf"(?<![\w-])({names})(?![\w-])", re.IGNORECASE)
    found = []
    for path in sorted(BPCLI.rglob("*.py")):
        where = path.relative_to(BPCLI).as_posix()
        if where.startswith("optimizers/"):
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if word.search(line) and not any(where == file and text in line for file, text, _ in ALLOWED):
                found.append(f"bpcli/{where}:{number}: {line.strip()}")
    assert not found, ("a rule's name outside bpcli/optimizers (ask the registry: OPTIMIZERS, DEFAULT or a method "
                       "of the rule, or list it in ALLOWED with a reason):\n" + "\n".join(found))
