"""bpcli's benchmark: every workload timed side by side with its baseline, in one run.

    python bench/run.py            # the full set (about a minute on 2 cores)
    python bench/run.py --quick    # fewer repetitions

Timings on shared machines are noisy, so each comparison interleaves the two sides and
reports the median of several rounds as a ratio; absolute times are printed for context
only. Results go to stdout as one table; BENCHMARKS.md records the latest.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn, optim

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bpcli.build import build  # noqa: E402
from bpcli.config import Override, load_config  # noqa: E402
from bpcli.lifecycle import train  # noqa: E402


def _config(name: str, **settings: object):
    """A shipped config on the CPU with dotted-key settings (train__lr=0.1 is train.lr)."""
    overrides = [Override(path="device", value="cpu", origin="bench")]
    overrides += [Override(path=k.replace("__", "."), value=v, origin="bench") for k, v in settings.items()]
    return load_config(ROOT / "configs" / name, overrides)


ADAM = {"train__optimizer": "adam"}
MOMENTUM = {"train__momentum": 0.9}


def article_exp3(steps: int, device: str = "cpu", optimizer: str = "sgd") -> float:
    """The article's experiment-3 loop, as written (moved to `device` as it does); seconds per step.
    optimizer: `sgd` as in the article, `momentum` (0.9) or `adam`."""
    torch.manual_seed(0)
    x = torch.rand([50, 1])
    y = x * 4 + 0.6
    model = nn.Linear(1, 1)
    x, y, model = x.to(device), y.to(device), model.to(device)
    criterion = nn.MSELoss()
    optimizer = {"sgd": lambda p: optim.SGD(p, lr=1e-3), "momentum": lambda p: optim.SGD(p, lr=1e-3, momentum=0.9),
                 "adam": lambda p: optim.Adam(p, lr=1e-3)}[optimizer](model.parameters())
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        out = model(x)
        loss = criterion(y, out)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    _sync(device)
    return (time.perf_counter() - start) / steps


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bpcli_exp3(steps: int, grad: str, **changes: object) -> float:
    """bpcli's own loop on the same experiment (no run directory, logging only at the end)."""
    result = train(_config("exp3.yaml", train__epochs=steps, train__log_every=steps, train__grad=grad, **changes),
                   save=False)
    return result.summary["train_seconds"] / steps


def manual_fast_path(steps: int, n: int = 50, lr: float = 1e-3, **changes: object) -> float:
    """linear-gd with grad: manual (the hand-derived fast path) on exp3-shaped data."""
    cfg = _config("exp2.yaml", data__n=n, train__lr=lr, train__epochs=steps, train__log_every=steps,
                  train__grad="manual", **changes)
    return train(cfg, save=False).summary["train_seconds"] / steps


def eager_nn_linear(steps: int, n: int) -> float:
    """nn-linear with autograd and optim.SGD on n samples."""
    cfg = _config("exp3.yaml", data__n=n, train__epochs=steps, train__log_every=steps)
    return train(cfg, save=False).summary["train_seconds"] / steps


def bare_steps(steps: int) -> float:
    """A bare loop calling the very step bpcli's trainer makes, nothing else around it."""
    trainer = build(_config("exp3.yaml")).trainer
    start = time.perf_counter()
    for _ in range(steps):
        trainer.step(0)
    return (time.perf_counter() - start) / steps


def sweep_step(members: int, steps: int, **changes: object) -> float:
    """Seconds per step of a batched sweep of exp3 with `members` members (learning rates × seeds)."""
    from bpcli.sweep import run_sweep

    cfg = _config("exp3.yaml", **{"train__epochs": steps, "train__log_every": steps, **changes})
    grid = {"train.lr": [1e-3, 1e-2], "seed": list(range(members // 2))}
    result = run_sweep(cfg, grid, save=False)
    return result.seconds / steps


def _cuda_config(name: str, steps: int, engine: str, **changes: object):
    overrides = [Override(path="device", value="cuda", origin="bench"),
                 Override(path="train.epochs", value=steps, origin="bench"),
                 Override(path="train.log_every", value=steps, origin="bench"),
                 Override(path="train.engine", value=engine, origin="bench")]
    overrides += [Override(path=k, value=v, origin="bench") for k, v in changes.items()]
    return load_config(ROOT / "configs" / name, overrides)


def _graph_matches_eager() -> list[Row]:
    """Every kind, autograd and manual: the graph engine's logged losses, parameters and
    gradients against eager's on the same GPU (logged every 50 steps over 500)."""
    rows = []
    for name in ("exp1.yaml", "exp2.yaml", "exp3.yaml", "mlp.yaml"):
        for grad in ("autograd", "manual"):
            runs = [train(_cuda_config(name, 500, engine, **{"train.log_every": 50, "train.grad": grad}),
                          save=False) for engine in ("eager", "graph")]
            same = runs[0].history == runs[1].history
            rows.append((f"{name} {grad}, cuda: graph engine's logged rows vs eager's", "", "",
                         "bit-identical" if same else "DIFFERENT", "bit-identical"))
    return rows


def _sweep_graph_matches_eager() -> list[Row]:
    """A sweep trained under the graph engine against the same sweep eager, and one of
    its members against that member's single run."""
    from bpcli.sweep import run_sweep

    grid = {"train.lr": [1e-3, 1e-2], "seed": [0, 1, 2]}
    eager, graph = (run_sweep(_cuda_config("exp3.yaml", 1000, e), grid, save=False) for e in ("eager", "graph"))
    same = eager.members == graph.members
    single = train(_cuda_config("exp3.yaml", 1000, "graph", **{"train.lr": 1e-2, "seed": 2}), save=False)
    member = next(m for m in graph.members if m["train.lr"] == 1e-2 and m["seed"] == 2)
    gap = max(abs(member[k] - single.history[-1][k]) for k in ("w", "b"))
    return [("sweep of 6 exp3 runs, cuda: graph vs eager members", "", "",
             "bit-identical" if same else "DIFFERENT", "bit-identical"),
            ("a member of that graph sweep vs its single graph run (max |Δparam|)", "", "", f"{gap:.1e}", "≤ 1e-5")]


def _reproduction_on_cuda() -> list[Row]:
    """exp3 as shipped (30 000 epochs), on the GPU with the graph engine, against the article's numbers."""
    overrides = [Override(path="device", value="cuda", origin="bench"),
                 Override(path="train.engine", value="graph", origin="bench")]
    result = train(load_config(ROOT / "configs" / "exp3.yaml", overrides), save=False)
    w, b = result.history[-1]["w"], result.history[-1]["b"]
    gap = max(abs(w - 3.939624071121216), abs(b - 0.6291572451591492))
    return [(f"exp3 on cuda (graph): w = {w:.7f}, b = {b:.7f} vs docs/article.md", "", "", f"{gap:.1e}", "≤ 1e-5")]


def _resume_on_cuda() -> list[Row]:
    """A run stopped halfway and resumed from its checkpoint on the GPU (graph engine, which
    captures again after resuming) against the same run uninterrupted: metrics.csv byte for byte."""
    from bpcli.lifecycle import resume

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in ("exp1.yaml", "exp3.yaml", "mlp.yaml"):
            full = train(_cuda_config(name, 400, "graph", **{"train.log_every": 10}), Path(folder, name, "full"),
                         plots=False)
            half = Path(folder, name, "half")
            train(_cuda_config(name, 200, "graph", **{"train.log_every": 10}), half, plots=False)
            resume(half, epochs=400, plots=False)
            same = (half / "metrics.csv").read_bytes() == (full.run_dir / "metrics.csv").read_bytes()
            rows.append((f"{name} on cuda (graph): 200 epochs + resume to 400 vs 400 at once, metrics.csv", "", "",
                         "byte-identical" if same else "DIFFERENT", "byte-identical"))
    return rows


def _speed_on_cuda(rounds: int, steps: int) -> list[Row]:
    rows = []

    def timed(name: str, engine: str, count: int = steps, **changes: object) -> float:
        result = train(_cuda_config(name, count, engine, **changes), save=False)
        return result.summary["train_seconds"] / count

    graph, article, ratio = median_ratio(lambda: timed("exp3.yaml", "graph"), lambda: article_exp3(steps, "cuda"),
                                         rounds)
    rows.append(("exp3 on cuda, graph engine, over the article's loop", f"{graph * 1e6:.1f} µs",
                 f"{article * 1e6:.1f} µs", f"{1 / ratio:.1f}× faster", "≥ 12×"))
    eager, article, ratio = median_ratio(lambda: timed("exp3.yaml", "eager"), lambda: article_exp3(steps, "cuda"),
                                         rounds)
    rows.append(("exp3 on cuda, eager: bpcli / the article's loop", f"{eager * 1e6:.1f} µs",
                 f"{article * 1e6:.1f} µs", f"{ratio:.3f}×", "(context)"))
    fast, article, ratio = median_ratio(
        lambda: timed("exp2.yaml", "graph", steps * 4, **{"data.n": 50, "train.lr": 1e-3, "train.grad": "manual"}),
        lambda: article_exp3(steps, "cuda"), rounds)
    rows.append(("exp3-shaped linear-gd grad: manual on cuda, graph, over the article's loop",
                 f"{fast * 1e6:.1f} µs", f"{article * 1e6:.1f} µs", f"{1 / ratio:.1f}× faster", "(context)"))
    for label, changes in (("momentum 0.9", {"train.momentum": 0.9}), ("adam", {"train.optimizer": "adam"})):
        name = "adam" if "train.optimizer" in changes else "momentum"
        graph, article, ratio = median_ratio(lambda: timed("exp3.yaml", "graph", **changes),
                                             lambda: article_exp3(steps, "cuda", optimizer=name), rounds)
        rows.append((f"exp3 with {label} on cuda, graph engine, over the article's loop with it",
                     f"{graph * 1e6:.1f} µs", f"{article * 1e6:.1f} µs", f"{1 / ratio:.1f}× faster", "(context)"))
    return rows


def _big_sweep_on_cuda(steps: int) -> list[Row]:
    """A sweep of 65 536 exp3 runs (2 lr × 32 768 seeds) in one graphed step, against one
    run's graphed step, with autograd and with grad: manual."""
    from bpcli.sweep import run_sweep

    grid = {"train.lr": [1e-3, 1e-2], "seed": list(range(32_768))}
    rows = []
    for grad in ("autograd", "manual"):
        started = time.perf_counter()
        big = run_sweep(_cuda_config("exp3.yaml", steps, "graph", **{"train.grad": grad}), grid, save=False)
        setup = time.perf_counter() - started - big.seconds
        single = train(_cuda_config("exp3.yaml", steps, "graph", **{"train.grad": grad}),
                       save=False).summary["train_seconds"]
        big_step, single_step = big.seconds / steps, single / steps
        rows.append((f"sweep of 65 536 exp3 runs on cuda (graph, {grad}): one step / one run's step",
                     f"{big_step * 1e6:.1f} µs", f"{single_step * 1e6:.1f} µs", f"{big_step / single_step:.2f}×",
                     "≤ 6×"))
    rows.append(("  building the 65 536 members (configs, data, parameters)", f"{setup:.1f} s", "", "",
                 "(context)"))
    return rows


Row = tuple[str, str, str, str, str]


def _emit(row: Row) -> None:
    print("  ".join(c for c in row if c), flush=True)


def gpu_rows(rounds: int, steps: int) -> list[Row]:
    """The GPU section. Each check runs on its own: one that fails prints its traceback
    and a FAILED row, and the others still run."""
    import traceback

    rows: list[Row] = []
    sections = [("graph engine vs eager, every kind", _graph_matches_eager),
                ("graph engine in sweeps", _sweep_graph_matches_eager),
                ("exp3 reproduction on cuda", _reproduction_on_cuda),
                ("resume on cuda", _resume_on_cuda),
                ("speed on cuda", lambda: _speed_on_cuda(rounds, steps)),
                ("sweep of 65 536 on cuda", lambda: _big_sweep_on_cuda(steps // 5))]
    for title, section in sections:
        started = time.perf_counter()
        try:
            produced = section()
        except Exception:
            traceback.print_exc()
            produced = [(title, "", "", "FAILED (traceback above)", "")]
        for row in produced:
            _emit(row)
        print(f"[{title}: {time.perf_counter() - started:.1f} s]", flush=True)
        rows += produced
    return rows


def median_ratio(a, b, rounds: int) -> tuple[float, float, float]:
    """Interleave a() and b() for several rounds: median a, median b, median a/b."""
    times_a, times_b, ratios = [], [], []
    for _ in range(rounds):
        ta, tb = a(), b()
        times_a.append(ta)
        times_b.append(tb)
        ratios.append(ta / tb)
    return statistics.median(times_a), statistics.median(times_b), statistics.median(ratios)


def csv_load_seconds(rows: int) -> tuple[float, float]:
    """Seconds to write and to load a rows × 5 CSV through bpcli's data layer."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "big.csv"
        rng = np.random.default_rng(0)
        table = rng.normal(size=(rows, 5))
        np.savetxt(path, table, delimiter=",", header="a,b,c,d,y", comments="", fmt="%.9g")
        config = Path(folder) / "big.yaml"
        config.write_text(f"kind: nn-linear\ndevice: cpu\ndata:\n  path: {path}\n  target: y\n")
        cfg = load_config(config)
        start = time.perf_counter()
        built = build(cfg)
        seconds = time.perf_counter() - start
        assert built.data.x.shape == (rows, 4)
        return seconds, path.stat().st_size / 1e6


def process_seconds(args: list[str], rounds: int) -> float:
    """Median wall time of a whole `python -m bpcli …` process."""
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bpcli", *args], check=True, capture_output=True, cwd=ROOT)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def optimizer_rows(rounds: int, steps: int) -> list[Row]:
    """Momentum and Adam: nn-linear (torch.optim) against the article's loop with the same
    optimizer, the hand-written rules against plain SGD, and a sweep of 256 Adam runs."""
    rows: list[Row] = []
    for label, changes in (("momentum 0.9", MOMENTUM), ("adam", ADAM)):
        name = "momentum" if changes is MOMENTUM else "adam"
        ours, article, ratio = median_ratio(lambda: bpcli_exp3(steps, "autograd", **changes),
                                            lambda: article_exp3(steps, optimizer=name), rounds)
        rows.append((f"exp3 with {label}, CPU: bpcli / the article's loop with the same torch.optim",
                     f"{ours * 1e6:.1f} µs", f"{article * 1e6:.1f} µs", f"{ratio:.3f}×", "≤ 1.1×"))
    for label, changes in (("momentum 0.9", MOMENTUM), ("adam", ADAM)):
        rule, plain, ratio = median_ratio(lambda: manual_fast_path(steps * 4, **changes),
                                          lambda: manual_fast_path(steps * 4), rounds)
        rows.append((f"linear-gd manual fast path, CPU: hand-written {label} / plain SGD step",
                     f"{rule * 1e6:.1f} µs", f"{plain * 1e6:.1f} µs", f"{ratio:.2f}×", "(context)"))
    swept, single, ratio = median_ratio(lambda: sweep_step(256, steps // 2, **ADAM),
                                        lambda: bpcli_exp3(steps // 2, "autograd", **ADAM), rounds)
    rows.append(("sweep of 256 exp3 runs with adam, CPU: one batched step / one run's step", f"{swept * 1e6:.1f} µs",
                 f"{single * 1e6:.1f} µs", f"{ratio:.2f}×", "≤ 3×"))
    return rows


def plain_logistic(steps: int, data, lr: float) -> float:
    """Logistic regression on bpcli's data, the loop written in plain torch: logits, mean
    BCE from logits, backward, a hand-written SGD step; seconds per step."""
    import torch.nn.functional as F

    x, y = data.x, data.y
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    start = time.perf_counter()
    for _ in range(steps):
        loss = F.binary_cross_entropy_with_logits(x @ w + b, y)
        loss.backward()
        with torch.no_grad():
            for p in (w, b):
                p -= lr * p.grad
                p.grad = None
    return (time.perf_counter() - start) / steps


def plain_moons_mlp(steps: int, data, lr: float, weight_decay: float) -> float:
    """micrograd's moons MLP (2-16-16-1, ReLU, hinge loss) in plain torch: nn.Sequential,
    the max-margin loss mean(relu(1 − t·s)), optim.SGD with weight decay; seconds per step."""
    x, t = data.x, 2 * data.y - 1  # labels ±1
    model = nn.Sequential(nn.Linear(2, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 1))
    optimizer = optim.SGD(model.parameters(), lr=lr, weight_decay=weight_decay)
    start = time.perf_counter()
    for _ in range(steps):
        loss = torch.relu(1 - t * model(x)[:, 0]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - start) / steps


def classification_rows(rounds: int, steps: int) -> list[Row]:
    """A logistic step and micrograd's moons MLP step, bpcli's loop against the same loop in
    plain torch on the same data (CPU, eager)."""
    rows: list[Row] = []
    logistic = _config("logistic.yaml", train__epochs=steps, train__log_every=steps)
    data = build(logistic).data
    for grad in ("autograd", "manual"):
        cfg = logistic.model_copy(update={"train": logistic.train.model_copy(update={"grad": grad})})
        ours, plain, ratio = median_ratio(lambda: train(cfg, save=False).summary["train_seconds"] / steps,
                                          lambda: plain_logistic(steps, data, logistic.train.lr), rounds)
        rows.append((f"logistic ({len(data.y)} samples), CPU, grad {grad}: bpcli / the loop in plain torch",
                     f"{ours * 1e6:.1f} µs", f"{plain * 1e6:.1f} µs", f"{ratio:.3f}×", "≤ 1.1×"))
    moons = _config("moons.yaml", train__epochs=steps, train__log_every=steps)
    data = build(moons).data
    for grad in ("autograd", "manual"):
        cfg = moons.model_copy(update={"train": moons.train.model_copy(update={"grad": grad})})
        ours, plain, ratio = median_ratio(
            lambda: train(cfg, save=False).summary["train_seconds"] / steps,
            lambda: plain_moons_mlp(steps, data, moons.train.lr, moons.train.weight_decay), rounds)
        rows.append((f"moons MLP 2-16-16-1 hinge, CPU, grad {grad}: bpcli / the loop in plain torch",
                     f"{ours * 1e6:.1f} µs", f"{plain * 1e6:.1f} µs", f"{ratio:.3f}×", "≤ 1.1×"))
    return rows


def rule_step(name: str, how: str, steps: int, numbers: int = 4096) -> float:
    """Seconds per step of one update rule on one member's `numbers` parameters: bpcli's
    hand-written step (`how` "ours"), or torch.optim's own class on the same tensors with its
    "foreach" or "fused" implementation (a ValueError where the class has none on the CPU)."""
    from bpcli.optimizers import OPTIMIZERS, Optimizer, settings_of

    cfg = _config("exp2.yaml", train__optimizer=name, train__lr=1e-3).train
    p = torch.zeros(1, numbers)
    g = torch.full_like(p, 0.1)
    if how == "ours":
        rule = Optimizer({"p": p}, [cfg])
        step = lambda: rule.step({"p": p}, {"p": g})  # noqa: E731
    else:
        p.requires_grad_(True)
        p.grad = g
        reference = OPTIMIZERS[name].torch_optimizer([p], cfg.lr, settings_of(cfg), capturable=False)
        if how not in reference.defaults:
            raise ValueError(f"torch.optim's {type(reference).__name__} has no {how} implementation")
        for options in (reference.defaults, reference.param_groups[0]):
            options.update(foreach=how == "foreach", fused=how == "fused")
        step = reference.step
    for _ in range(10):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def rule_rows(rounds: int, steps: int) -> list[Row]:
    """Every rule of the registry, hand-written against torch.optim's own (foreach, and fused
    where torch has it on the CPU), on the same tensors."""
    from bpcli.optimizers import OPTIMIZERS

    rows: list[Row] = []
    for name in OPTIMIZERS:
        for how in ("foreach", "fused"):
            try:
                rule_step(name, how, 10)
            except (ValueError, RuntimeError):  # no such implementation of this class on the CPU
                continue
            ours, theirs, ratio = median_ratio(lambda: rule_step(name, "ours", steps),
                                               lambda: rule_step(name, how, steps), rounds)
            rows.append((f"{name} step on 4096 numbers, CPU: bpcli's hand-written / torch.optim's ({how})",
                         f"{ours * 1e6:.1f} µs", f"{theirs * 1e6:.1f} µs", f"{ratio:.2f}×", "(context)"))
    return rows


def sweep_logging_rows(rounds: int, steps: int) -> list[Row]:
    """What logging every step costs a sweep: each logged step reads whether a member newly
    broke the divergence rule and copies the stacked state (for the exact step)."""
    every, rarely, ratio = median_ratio(lambda: sweep_step(256, steps // 2, train__log_every=1),
                                        lambda: sweep_step(256, steps // 2), rounds)
    return [("sweep of 256 exp3 runs, CPU: logging every step / logging once", f"{every * 1e6:.1f} µs",
             f"{rarely * 1e6:.1f} µs", f"{ratio:.2f}×", "(context)")]


def busy_core_rows(rounds: int) -> list[Row]:
    """configs/mlp.yaml with a busy loop on another core, over the MLP alone: small problems run on
    one thread (bpcli.threads), so a busy neighbour costs little."""
    import multiprocessing

    def mlp() -> float:
        return process_seconds(["train", str(ROOT / "configs" / "mlp.yaml"), "--device", "cpu", "--no-plots",
                                "--out", str(ROOT / "outputs" / "bench-mlp"), "--force", "-q"], 1)

    def busy() -> float:
        spinner = multiprocessing.Process(target=_spin, daemon=True)
        spinner.start()
        try:
            return mlp()
        finally:
            spinner.terminate()
            spinner.join()

    loaded, alone, ratio = median_ratio(busy, mlp, rounds)
    return [("configs/mlp.yaml, CPU: with a busy loop on another core / alone", f"{loaded:.2f} s", f"{alone:.2f} s",
             f"{ratio:.2f}×", "≤ 1.3×")]


def _spin() -> None:
    while True:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--gpu-only", action="store_true", help="only the GPU section (needs cuda)")
    parser.add_argument("--classification", action="store_true", help="only the classification rows")
    parser.add_argument("--optimizers", action="store_true",
                        help="only the update rules against torch.optim, a sweep's logging and the busy core")
    args = parser.parse_args()
    rounds, steps = (3, 2000) if args.quick else (7, 5000)
    rows = []
    if args.classification:
        _print(classification_rows(rounds, steps), rounds)
        return
    if args.optimizers:
        _print(rule_rows(rounds, steps) + sweep_logging_rows(rounds, steps) + busy_core_rows(max(1, rounds // 3)),
               rounds)
        return
    if args.gpu_only:  # longer runs: a graphed step is tens of µs, so capture must not count
        rounds, steps = (2, 4000) if args.quick else (3, 10_000)
        _print(gpu_rows(rounds, steps), rounds)
        return

    loop, bare, ratio = median_ratio(lambda: bpcli_exp3(steps, "autograd"), lambda: bare_steps(steps), rounds)
    rows.append(("exp3, CPU, eager: bpcli loop / bare loop of the same step", f"{loop * 1e6:.1f} µs",
                 f"{bare * 1e6:.1f} µs", f"{ratio:.3f}×", "≤ 1.05×"))
    ours, article, ratio = median_ratio(lambda: bpcli_exp3(steps, "autograd"), lambda: article_exp3(steps), rounds)
    rows.append(("exp3, CPU, eager: bpcli / the article's loop", f"{ours * 1e6:.1f} µs",
                 f"{article * 1e6:.1f} µs", f"{ratio:.3f}×", "(context)"))
    manual, article, ratio = median_ratio(lambda: bpcli_exp3(steps, "manual"), lambda: article_exp3(steps), rounds)
    rows.append(("exp3, CPU, nn-linear with grad: manual, over the article's loop", f"{manual * 1e6:.1f} µs",
                 f"{article * 1e6:.1f} µs", f"{1 / ratio:.2f}× faster", "(context)"))
    fast, article, ratio = median_ratio(lambda: manual_fast_path(steps * 4), lambda: article_exp3(steps), rounds)
    rows.append(("exp3-shaped, CPU, linear-gd grad: manual (fast path), over the article's loop",
                 f"{fast * 1e6:.1f} µs", f"{article * 1e6:.1f} µs", f"{1 / ratio:.1f}× faster", "≥ 15×"))
    big = 10_000_000
    fast, eager, ratio = median_ratio(lambda: manual_fast_path(200, n=big, lr=0.01),
                                      lambda: eager_nn_linear(5, n=big), max(1, rounds // 3))
    rows.append(("N = 10⁷ full batch, CPU, manual fast path, over eager nn.Linear + optim.SGD",
                 f"{fast * 1e3:.3f} ms", f"{eager * 1e3:.1f} ms", f"{1 / ratio:.0f}× faster", "≥ 10×"))

    swept, single, ratio = median_ratio(lambda: sweep_step(256, steps // 2), lambda: bpcli_exp3(steps // 2, "autograd"),
                                        rounds)
    rows.append(("sweep of 256 exp3 runs, CPU: one batched step / one run's step", f"{swept * 1e6:.1f} µs",
                 f"{single * 1e6:.1f} µs", f"{ratio:.2f}×", "≤ 3×"))

    rows += optimizer_rows(rounds, steps)
    rows += classification_rows(rounds, steps)
    rows += rule_rows(rounds, steps)
    rows += sweep_logging_rows(rounds, steps)
    rows += busy_core_rows(max(1, rounds // 3))

    seconds, megabytes = csv_load_seconds(200_000 if args.quick else 1_000_000)
    label = f"CSV load, {'2·10⁵' if args.quick else '10⁶'} rows × 5 columns ({megabytes:.0f} MB)"
    rows.append((label, f"{seconds:.2f} s", "", "", "a few seconds"))

    env = dict(os.environ)
    help_seconds = process_seconds(["--help"], rounds)
    rows.append(("`bpcli --help`, whole process", f"{help_seconds:.3f} s", "", "", "≤ 0.2 s"))
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        subprocess.run([sys.executable, "-m", "bpcli", "train", "configs/exp2.yaml", "--out", str(run), "-q",
                        "--no-plots", "--device", "cpu"], check=True, capture_output=True, cwd=ROOT, env=env)
        plot_seconds = process_seconds(["plot", str(run)], rounds)
    rows.append(("`bpcli plot RUN_DIR`, whole process (4 figures)", f"{plot_seconds:.3f} s", "", "", "≤ 1.5 s"))

    if torch.cuda.is_available():
        rows += gpu_rows(rounds, steps)
    _print(rows, rounds)


def _print(rows: list[tuple[str, str, str, str, str]], rounds: int) -> None:
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"
    print(f"bpcli benchmark — {platform.machine()}, {os.cpu_count()} CPUs{gpu}, Python {platform.python_version()}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads; median of {rounds} rounds")
    print()
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    header = ("workload", "bpcli", "baseline", "ratio", "target")
    widths = [max(w, len(h)) for w, h in zip(widths, header)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths)))


if __name__ == "__main__":
    main()
