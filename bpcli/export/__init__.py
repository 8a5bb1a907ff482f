"""`bpcli export`: a run written out as a plain PyTorch script, run.py, that reproduces its
logged numbers without bpcli.

The script is put together from parts: the data (read from the run's data.csv), the model
with its loss and gradient (bpcli.export.models, one entry per kind), the update rule
(bpcli.export.updates, which asks each optimizer's rule for its text), the loop, and the prints.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bpcli.errors import RunDirError
from bpcli.export.models import MODELS, Context, Model
from bpcli.export.updates import setup_lines, unwritten, update_function

Lines = list[str]


def export_run(run_dir: str | Path, force: bool = False) -> Path:
    """Write RUN/run.py (and RUN/run_init.pt for large initial tensors); return run.py's path."""
    from bpcli.config.loading import read_yaml
    from bpcli.config.validate import validate_config
    from bpcli.rundir.files import write_text
    from bpcli.rundir.run import read_summary, refuse_sweep

    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise RunDirError(f"{run_dir}: no such run directory; give one written by `bpcli train`")
    refuse_sweep(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise RunDirError(f"{run_dir}: not a run directory (no config.yaml); give one written by `bpcli train`")
    raw = read_yaml(run_dir / "config.yaml")
    kind = raw.get("kind")
    if kind not in MODELS:
        raise RunDirError(f"{run_dir}: bpcli cannot export kind {kind!r} (it exports {', '.join(MODELS)}); "
                          "write its script by hand")
    summary = read_summary(run_dir)
    if not (run_dir / "data.csv").is_file():
        raise RunDirError(f"{run_dir}: has no data.csv, which the script reads; export a run directory "
                          "written by `bpcli train`")
    if "data_csv_rows" in summary:
        rows = summary["data_csv_rows"]
        raise RunDirError(f"{run_dir}: data.csv holds {rows['written']} of the {rows['of']} training rows, so no "
                          "script can reproduce the run from it; train on fewer rows to export it")
    if not summary.get("initial_params"):
        raise RunDirError(f"{run_dir}: summary.json has no initial_params (a run from before bpcli recorded "
                          "them); train it again to export it")
    target = run_dir / "run.py"
    if target.exists() and not force:
        raise RunDirError(f"{target}: exists; pass --force to replace it")
    config = validate_config(raw, source=str(run_dir / "config.yaml"))
    _refuse_unwritten(run_dir, config)
    ctx = _context(config, summary, run_dir)
    text = script(ctx, run_dir.name, summary)
    if ctx.loaded:
        _write_init(run_dir, config, ctx.loaded)
    write_text(target, text)
    return target


def _refuse_unwritten(run_dir: Path, config: Any) -> None:
    """Refuse, in one line, a run whose update the script text cannot write yet: an optimizer
    whose rule has no script text or a setting it does not write, or a learning-rate schedule."""
    from bpcli import schedules

    train = config.train
    problem = unwritten(train, torch_optim=_steps_torch_optim(config))
    if problem is not None:
        raise RunDirError(f"{run_dir}: {problem}")
    if schedules.scheduled(train):
        raise RunDirError(f"{run_dir}: bpcli does not yet export a run with an lr schedule "
                          f"(train.schedule: {train.schedule}); export one with a constant lr")


def _steps_torch_optim(config: Any) -> bool:
    """Whether the script steps torch.optim's own class, made with the model, rather than the rule by hand."""
    return config.kind == "nn-linear"


def _context(config: Any, summary: dict[str, Any], run_dir: Path) -> Context:
    with open(run_dir / "data.csv", encoding="utf-8") as f:
        features = len(f.readline().split(",")) - 1
    samples = summary["samples"]["train"]
    full = summary["batch_size"] >= samples
    fast = config.kind == "linear-gd" and config.train.grad == "manual" and full
    return Context(config=config, features=features, initial=summary["initial_params"], fast=fast)


def _write_init(run_dir: Path, config: Any, names: list[str]) -> None:
    """run_init.pt: the initial values of tensors summary.json keeps only as a norm, from
    bpcli's own build of the run (the same seed draws the same values)."""
    import torch

    from bpcli.build import build
    from bpcli.rundir.files import write_file

    built = build(config, device=torch.device("cpu"))
    params = built.trainer.params()
    values = {name: params[name].detach()[0].clone() for name in names}
    write_file(run_dir / "run_init.pt", lambda f: torch.save(values, f))


def script(ctx: Context, name: str, summary: dict[str, Any]) -> str:
    """run.py's text."""
    model = MODELS[ctx.config.kind](ctx)
    parts = [
        _header(ctx, name, summary),
        _data(ctx, model),
        ["# ---------------------------------------------------------------- the model",
         *model.params, *(["", "", *model.functions] if model.functions else [])],
        _optimizer(ctx, model),
        _loop(ctx, model, summary),
        _prints(model),
    ]
    return "\n".join(line for part in parts if part for line in [*part, "", ""]).rstrip() + "\n"


def _header(ctx: Context, name: str, summary: dict[str, Any]) -> Lines:
    config = ctx.config
    notes = []
    if summary.get("device", "cpu") != "cpu":
        notes.append(f"The run trained on {summary['device']}; this script runs on the CPU, whose rounding may "
                     "differ in the last digits.")
    if summary.get("processes", 1) > 1:
        notes.append("The run was shared among torchrun processes, which add their gradients in another order: "
                     "expect the same numbers to about the last digits, not bit for bit.")
    if summary.get("status", "completed") != "completed":
        notes.append(f"The run ended {summary.get('status')} after {summary.get('steps')} steps; this script "
                     "trains every configured epoch, so its numbers agree with the run's only up to that step.")
    if ctx.loaded:
        notes.append(f"The initial {', '.join(ctx.loaded)} (too large to write here) are read from run_init.pt, "
                     "which bpcli export wrote beside this script.")
    lines = [
        f'"""{name}: a {config.kind} run of bpcli, written out as a plain PyTorch script.',
        "",
        "Run it from the run directory:  python run.py",
        "It reads data.csv (the training rows as the model saw them), starts from the run's initial",
        "parameters, and prints the step and the loss at every step the run logged, then the final",
        "parameters with every digit: the numbers of metrics.csv and summary.json, bit for bit.",
        *(["", *notes] if notes else []),
        '"""',
        "",
        "import csv",
        "",
        "import torch",
        "",
        f"dtype = torch.{config.dtype}",
    ]
    if ctx.loaded:
        lines.append('init = torch.load("run_init.pt")  # the large initial tensors')
    return lines


def _data(ctx: Context, model: Model) -> Lines:
    standardised = getattr(ctx.config.data, "standardize", "none") != "none"
    return [
        "# ---------------------------------------------------------------- the data",
        "# data.csv: one row per training sample, the inputs then the target"
        + (" (standardised, as the model saw them)" if standardised else ""),
        'with open("data.csv", newline="") as f:',
        "    rows = [[float(v) for v in row] for row in list(csv.reader(f))[1:]]",
        "inputs = [row[:-1] for row in rows]",
        "targets = [row[-1] for row in rows]",
        *model.data,
        f"N = {'x.shape[1]' if model.member_dim else 'x.shape[0]'}  # samples",
    ]


def _optimizer(ctx: Context, model: Model) -> Lines:
    if _steps_torch_optim(ctx.config):  # torch.optim itself, made with the model
        return []
    train = ctx.config.train
    params = "{\"θ\": theta_row}" if ctx.fast else "params"
    setup = [line.replace("params.items()", f"{params}.items()") for line in setup_lines(train)]
    return ["# ---------------------------------------------------------------- the update rule",
            f"# the optimizer: {summary_optimizer(train)}", *setup, "", "", *update_function(train, fast=ctx.fast)]


def summary_optimizer(train: Any) -> str:
    from bpcli.optimizers import describe

    return describe(train)


def _loop(ctx: Context, model: Model, summary: dict[str, Any]) -> Lines:
    train = ctx.config.train
    size, shuffle = summary["batch_size"], summary["shuffle"]
    samples = summary["samples"]["train"]
    lines = ["# ---------------------------------------------------------------- training",
             f"epochs, log_every = {train.epochs}, {train.log_every}"]
    step = model.step or _shared_step(ctx)
    if size >= samples and not shuffle:
        return lines + [
            "for step in range(1, epochs + 1):  # one step per pass over the data",
            "    xb, yb = x, y  # the full batch",
            *("    " + line for line in step),
            "    if step == 1 or step % log_every == 0 or step == epochs:",
            "        print(f\"step {step}  loss {loss.item()!r}\")",
        ]
    rows = "x[:, chosen], y[:, chosen]" if model.member_dim else "x[chosen], y[chosen]"
    lines += [
        f"batch_size, seed = {size}, {ctx.config.seed}" if shuffle else f"batch_size = {size}",
        "steps_per_epoch = -(-N // batch_size)",
        "total = epochs * steps_per_epoch",
        "step = 0",
        "for epoch in range(1, epochs + 1):",
    ]
    if shuffle:
        lines += ["    # a new order each epoch: randperm(N) from a generator seeded with the seed and the epoch",
                  "    generator = torch.Generator().manual_seed((seed * 1_000_003 + epoch) % 2**64)",
                  "    order = torch.randperm(N, generator=generator)"]
    lines += ["    for index in range(steps_per_epoch):", "        step += 1"]
    if model.per_sample_scalar:  # x[:, i] of (1, N): one sample's numbers, shape (1,)
        chosen = "order[index]" if shuffle else "index"
        lines.append(f"        xb, yb = x[:, {chosen}], y[:, {chosen}]  # one sample: numbers, as in the article")
    else:
        chosen = "order[index * batch_size:(index + 1) * batch_size]" if shuffle else \
            "slice(index * batch_size, (index + 1) * batch_size)"
        lines += [f"        chosen = {chosen}", f"        xb, yb = {rows}"]
    return lines + [
        *("        " + line for line in step),
        "        if step == 1 or step % log_every == 0 or step == total:",
        "            print(f\"step {step}  loss {loss.item()!r}\")",
    ]


def _shared_step(ctx: Context) -> Lines:
    if ctx.manual:
        return ["loss, grads = gradients(params, xb, yb)  # the loss before the update, and its gradient",
                "update(params, grads)"]
    return ["loss = loss_of(params, xb, yb)",
            "for p in params.values():",
            "    p.grad = None",
            "loss.sum().backward()  # autograd: dL/dp for every parameter (loss holds one number, shape (1,))",
            "update(params, {name: p.grad for name, p in params.items()})"]


def _prints(model: Model) -> Lines:
    return ["# the final parameters, every digit",
            "for name, p in params.items():",
            "    print(name, \"=\", p.detach().reshape(-1).tolist())"]


def read_printed(text: str) -> tuple[dict[int, float], dict[str, list[float]]]:
    """The logged losses and final parameters a script printed (for tests and checks)."""
    losses, params = {}, {}
    for line in text.splitlines():
        if line.startswith("step "):
            _, step, _, loss = line.split()
            losses[int(step)] = float(loss)
        elif " = [" in line:
            name, values = line.split(" = ", 1)
            params[name] = json.loads(values.replace("nan", "NaN").replace("inf", "Infinity"))
    return losses, params
