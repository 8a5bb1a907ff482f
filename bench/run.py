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

from bpcli.config import Override, load_config  # noqa: E402
from bpcli.training import build, train  # noqa: E402


def _config(name: str, **settings: object):
    """A shipped config on the CPU with dotted-key settings (train__lr=0.1 is train.lr)."""
    overrides = [Override(path="device", value="cpu", origin="bench")]
    overrides += [Override(path=k.replace("__", "."), value=v, origin="bench") for k, v in settings.items()]
    return load_config(ROOT / "configs" / name, overrides)


def article_exp3(steps: int, device: str = "cpu") -> float:
    """The article's experiment-3 loop, as written (moved to `device` as it does); seconds per step."""
    torch.manual_seed(0)
    x = torch.rand([50, 1])
    y = x * 4 + 0.6
    model = nn.Linear(1, 1)
    x, y, model = x.to(device), y.to(device), model.to(device)
    criterion = nn.MSELoss()
    optimizer = optim.SGD(model.parameters(), lr=1e-3)
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


def bpcli_exp3(steps: int, grad: str) -> float:
    """bpcli's own loop on the same experiment (no run directory, logging only at the end)."""
    result = train(_config("exp3.yaml", train__epochs=steps, train__log_every=steps, train__grad=grad), save=False)
    return result.summary["train_seconds"] / steps


def manual_fast_path(steps: int, n: int = 50, lr: float = 1e-3) -> float:
    """linear-gd with grad: manual (the hand-derived fast path) on exp3-shaped data."""
    cfg = _config("exp2.yaml", data__n=n, train__lr=lr, train__epochs=steps, train__log_every=steps,
                  train__grad="manual")
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


def sweep_step(members: int, steps: int) -> float:
    """Seconds per step of a batched sweep of exp3 with `members` members (learning rates × seeds)."""
    from bpcli.sweep import run_sweep

    cfg = _config("exp3.yaml", train__epochs=steps, train__log_every=steps)
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


def gpu_rows(rounds: int, steps: int) -> list[tuple[str, str, str, str, str]]:
    """The GPU section: graph engine against eager and the article, and a huge sweep."""
    from bpcli.sweep import run_sweep

    rows = []
    for name in ("exp1.yaml", "exp2.yaml", "exp3.yaml", "mlp.yaml"):
        eager = train(_cuda_config(name, 500, "eager"), save=False)
        graph = train(_cuda_config(name, 500, "graph"), save=False)
        same = eager.params == graph.params and eager.losses == graph.losses
        rows.append((f"{name} on cuda: graph engine's parameters and losses vs eager", "", "",
                     "bit-identical" if same else "DIFFERENT", "bit-identical"))

    def timed(engine: str) -> float:
        result = train(_cuda_config("exp3.yaml", steps, engine), save=False)
        return result.summary["train_seconds"] / steps

    graph, article, ratio = median_ratio(lambda: timed("graph"), lambda: article_exp3(steps, "cuda"), rounds)
    rows.append(("exp3 on cuda, graph engine, over the article's loop", f"{graph * 1e6:.1f} µs",
                 f"{article * 1e6:.1f} µs", f"{1 / ratio:.1f}× faster", "≥ 12×"))
    eager, article, ratio = median_ratio(lambda: timed("eager"), lambda: article_exp3(steps, "cuda"), rounds)
    rows.append(("exp3 on cuda, eager: bpcli / the article's loop", f"{eager * 1e6:.1f} µs",
                 f"{article * 1e6:.1f} µs", f"{ratio:.3f}×", "(context)"))

    def sweep(members: int) -> float:
        cfg = _cuda_config("exp3.yaml", steps, "graph")
        return run_sweep(cfg, {"train.lr": [1e-3, 1e-2], "seed": list(range(members // 2))},
                         save=False).seconds / steps

    big, single, ratio = median_ratio(lambda: sweep(65_536), lambda: sweep(2), max(1, rounds // 2))
    rows.append(("sweep of 65 536 exp3 runs on cuda (graph): one step / a 2-run sweep's step",
                 f"{big * 1e6:.1f} µs", f"{single * 1e6:.1f} µs", f"{ratio:.2f}×", "≤ 6×"))
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--gpu-only", action="store_true", help="only the GPU section (needs cuda)")
    args = parser.parse_args()
    rounds, steps = (3, 2000) if args.quick else (7, 5000)
    rows = []
    if args.gpu_only:
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
    rows.append(("`bpcli plot RUN_DIR`, whole process (4 figures)", f"{plot_seconds:.3f} s", "", "", "≤ 0.8 s"))

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
