"""Each kind's model, loss and gradient as script text: one function per kind, in a
registry keyed by kind name.

The text repeats the arithmetic of the kind's trainer in bpcli.kinds (the same operations
on tensors of the same shapes), so the script rounds as the run did. Tensors keep bpcli's
leading dimension of 1 (bpcli trains a stack of K runs in one step; a single run is K = 1)
wherever dropping it could change the order in which a sum adds up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

Lines = list[str]


@dataclass
class Context:
    """What a kind's text is written from."""

    config: Any
    """The run's validated config."""
    features: int
    """Input columns of data.csv."""
    initial: dict[str, Any]
    """summary.json's initial_params: values, or {shape, norm} for a large tensor."""
    fast: bool = False
    """linear-gd's full-batch fast path with hand-derived gradients."""
    loaded: list[str] = field(default_factory=list)
    """Parameters too large for literals, read from run_init.pt (filled in as they are written)."""

    @property
    def manual(self) -> bool:
        return self.config.train.grad == "manual"


@dataclass
class Model:
    """A kind as script text."""

    data: Lines
    """x and y from the lists `inputs` and `targets` read from data.csv."""
    params: Lines
    """The initial parameters, as `params` (a dict by name)."""
    functions: Lines
    """loss_of(params, x, y), and gradients(params, x, y) for hand-derived gradients."""
    step: Lines | None = None
    """A step of the kind's own (else the shared one: gradients or backward, then update)."""
    per_sample_scalar: bool = False
    """One sample per step is a number x, not a batch of one."""
    member_dim: bool = True
    """Whether x and y carry the leading member dimension (nn-linear's do not)."""


def floats(values: list[float], indent: int = 4) -> str:
    """A list literal of floats written with every digit, wrapped at about 100 columns."""
    lines, line = [], ""
    for text in (repr(float(v)) for v in values):
        if line and len(line) + len(text) > 96 - indent:
            lines.append(line.rstrip())
            line = ""
        line += text + ", "
    lines.append(line.rstrip().rstrip(","))
    if len(lines) == 1:
        return f"[{lines[0]}]"
    return "[\n" + "".join(" " * indent + text + "\n" for text in lines) + "]"


def size(entry: Any) -> int:
    """The number of values of a summary.json parameter entry."""
    if isinstance(entry, dict):
        count = 1
        for n in entry["shape"]:
            count *= n
        return count
    return len(entry)


def tensor(ctx: Context, name: str, shape: tuple[int, ...]) -> str:
    """An initial parameter: its values as a literal, or run_init.pt's for a large tensor."""
    entry = ctx.initial[name]
    dims = ", ".join(map(str, shape))
    if isinstance(entry, dict):
        ctx.loaded.append(name)
        return f'init["{name}"].reshape({dims}).to(dtype)'
    return f"torch.tensor({floats(entry)}, dtype=dtype).reshape({dims})"


def param_lines(ctx: Context, shapes: dict[str, tuple[int, ...]], comments: dict[str, str]) -> Lines:
    grad = ".requires_grad_()" if not ctx.manual else ""
    lines = [f"{name} = {tensor(ctx, name, shape)}{grad}  # {comments[name]}" for name, shape in shapes.items()]
    return lines + ["params = {" + ", ".join(f'"{n}": {n}' for n in shapes) + "}"]


DATA = [
    "# The leading 1 is bpcli's run dimension (it can train many runs in one step); keeping it",
    "# keeps every sum adding up in bpcli's order, so the numbers match to the last digit.",
    "x = torch.tensor(inputs, dtype=dtype)[None]  # (1, N, F): one row per sample",
    "y = torch.tensor(targets, dtype=dtype)[None]  # (1, N)",
]


def scalar_sgd(ctx: Context) -> Model:
    """Experiment 1: y = w·x, one sample per step unless batch_size says otherwise."""
    per_sample = (ctx.config.train.batch_size or 1) == 1
    functions = [
        "def loss_of(params, x, y):",
        "    w = params[\"w\"]",
        "    if x.dim() == 1:  # one sample: x and y are numbers",
        "        return (x * w - y).pow(2)  # L = (x·w − y)²",
        "    return (x * w[:, None] - y).pow(2).mean(-1)  # L = mean((x·w − y)²) over the batch",
    ]
    if ctx.manual:
        functions += [
            "",
            "",
            "def gradients(params, x, y):",
            '    """The loss and dL/dw, derived by hand."""',
            "    w = params[\"w\"]",
            "    if x.dim() == 1:",
            "        residual = w * x - y  # ŷ − y, with ŷ = w·x",
            "        # dL/dw = dL/dŷ · dŷ/dw = 2·(w·x − y)·x",
            "        return residual.pow(2), {\"w\": 2 * x * residual}",
            "    residual = w[:, None] * x - y",
            "    # over a batch the loss is the mean, and so is its gradient: dL/dw = mean(2·(w·x − y)·x)",
            "    return residual.pow(2).mean(-1), {\"w\": (2 * x * residual).mean(-1)}",
        ]
    return Model(
        data=["x = torch.tensor([row[0] for row in inputs], dtype=dtype)[None]  # (1, N)",
              "y = torch.tensor(targets, dtype=dtype)[None]  # (1, N)"],
        params=param_lines(ctx, {"w": (1,)}, {"w": "the one weight of y = w·x"}),
        functions=functions,
        per_sample_scalar=per_sample,
    )


def _linear_forward(ctx: Context) -> Lines:
    return [
        "def forward(params, x):",
        "    # ŷ = Σ_f x_f·w_f + b, for every sample: (1, N)",
        "    out = (x * params[\"w\"][:, None, :]).sum(-1)",
        "    return out + params[\"b\"][:, None] if \"b\" in params else out",
        "",
        "",
        "def loss_of(params, x, y):",
        "    return (forward(params, x) - y).pow(2).mean(-1)  # L = mean((ŷ − y)²)",
    ]


def linear_gd(ctx: Context) -> Model:
    """Experiment 2: y = w·x + b by gradient descent."""
    bias = ctx.config.model.bias
    features = ctx.features
    shapes = {"w": (1, features), **({"b": (1,)} if bias else {})}
    functions = _linear_forward(ctx)
    if ctx.fast:
        return _linear_fast(ctx, bias, features, functions)
    if ctx.manual:
        functions += [
            "",
            "",
            "def gradients(params, x, y):",
            '    """The loss and dL/dw, dL/db, derived by hand."""',
            "    residual = forward(params, x) - y  # r = ŷ − y",
            "    # dL/dw = 2·mean(r·x),  dL/db = 2·mean(r)",
            "    grads = {\"w\": (2 * residual[..., None] * x).mean(1)}",
            *(["    grads[\"b\"] = (2 * residual).mean(1)"] if bias else []),
            "    return residual.pow(2).mean(-1), grads",
        ]
    return Model(data=DATA, params=param_lines(ctx, shapes, {"w": "one weight per feature", "b": "the intercept"}),
                 functions=functions)


def _linear_fast(ctx: Context, bias: bool, features: int, functions: Lines) -> Model:
    values = list(ctx.initial["w"]) + (list(ctx.initial["b"]) if bias else [])
    params = [
        f"theta = torch.tensor({floats(values)}, dtype=dtype).reshape(1, {features + int(bias)})"
        + "  # θ = (w, b)",
        "theta_row = theta[:, None, :]  # the same numbers, shaped for the batched multiply",
        f"params = {{\"w\": theta[:, :{features}]" + (f", \"b\": theta[:, {features}]}}" if bias else "}"),
    ]
    functions += [
        "",
        "",
        "# With A = [x, 1], the loss is mean((A·θ − y)²) and its gradient dL/dθ = (2/N)·Aᵀ(A·θ − y)",
        "# = S·θ − c, where S = (2/N)·AᵀA and c = (2/N)·Aᵀy depend on the data alone: computed once,",
        "# in float64, they make each step one small multiply-add, whatever N.",
        f"A = torch.cat([x, torch.ones_like(x[..., :{int(bias)}])], dim=-1).to(torch.float64)",
        "S = ((2 / N) * A.transpose(1, 2) @ A).to(dtype)",
        "c = ((2 / N) * (A.transpose(1, 2) @ y.to(torch.float64)[..., None])).to(dtype).transpose(1, 2)",
    ]
    step = [
        "with torch.no_grad():",
        "    loss = loss_of(params, xb, yb)  # the loss before the update",
        "gradient = torch.baddbmm(c, theta_row, S, beta=-1)  # dL/dθ = θ·S − c (S is symmetric)",
        "update({\"θ\": theta_row}, {\"θ\": gradient})",
    ]
    return Model(data=DATA, params=params, functions=functions, step=step)


def nn_linear(ctx: Context) -> Model:
    """Experiment 3: nn.Linear with nn.MSELoss and torch.optim."""
    from bpcli.export.updates import torch_optim

    bias = ctx.config.model.bias
    features = ctx.features
    params = [
        f"model = torch.nn.Linear({features}, 1, bias={bias}, dtype=dtype)",
        "with torch.no_grad():  # the run's initial parameters",
        f"    model.weight.copy_({tensor(ctx, 'w', (1, features))})",
        *([f"    model.bias.copy_({tensor(ctx, 'b', (1,))})"] if bias else []),
        "criterion = torch.nn.MSELoss()",
        f"optimizer = {torch_optim(ctx.config.train)}",
        "params = {\"w\": model.weight" + (", \"b\": model.bias}" if bias else "}"),
    ]
    if ctx.manual:
        functions = [
            "def gradients(params, x, y):",
            '    """The loss and dL/dw, dL/db, derived by hand."""',
            "    w, b = params[\"w\"].detach(), params.get(\"b\")",
            "    residual = torch.nn.functional.linear(x, w, None if b is None else b.detach()) - y  # r = X·wᵀ + b − y",
            "    scaled = (2 / residual.shape[0]) * residual  # dL/dr = 2r/N",
            "    # dL/dw = (dL/dr)ᵀ·X,  dL/db = Σ dL/dr",
            "    grads = {\"w\": scaled.T @ x}",
            *(["    grads[\"b\"] = scaled.sum(0)"] if bias else []),
            "    return residual.pow(2).mean(), grads",
        ]
        step = ["loss, grads = gradients(params, xb, yb)",
                "for name, p in params.items():",
                "    p.grad = grads[name]",
                "optimizer.step()  # torch.optim's update from these gradients"]
    else:
        functions = []
        step = ["out = model(xb)",
                "loss = criterion(yb, out)  # the article's argument order; MSE is symmetric",
                "optimizer.zero_grad()",
                "loss.backward()",
                "optimizer.step()"]
    return Model(
        data=["x = torch.tensor(inputs, dtype=dtype)  # (N, F)",
              "y = torch.tensor(targets, dtype=dtype)[:, None]  # (N, 1), the shape nn.Linear produces"],
        params=params, functions=functions, step=step, member_dim=False,
    )


from bpcli.export.classifiers import logistic, mlp, softmax  # noqa: E402  (they use the helpers above)

MODELS: dict[str, Callable[[Context], Model]] = {
    "scalar-sgd": scalar_sgd,
    "linear-gd": linear_gd,
    "nn-linear": nn_linear,
    "mlp": mlp,
    "logistic": logistic,
    "softmax": softmax,
}
"""Every kind that can be exported, by name."""
