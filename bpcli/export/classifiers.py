"""The classifiers' and the MLP's model, loss and gradient as script text (see models.py)."""

from __future__ import annotations

from bpcli.export.models import DATA, Context, Lines, Model, param_lines, size

# The MLP's activations f and their derivatives, in terms of z and a = f(z), as bpcli.kinds.mlp.
_ACTIVATIONS = {
    "tanh": ("torch.tanh(z)", "1 - a * a  # d tanh/dz = 1 − a²"),
    "sigmoid": ("torch.sigmoid(z)", "a * (1 - a)  # d σ/dz = a·(1 − a)"),
    "relu": ("torch.relu(z)", "(z > 0).to(a.dtype)  # d relu/dz = [z > 0]"),
}

# The MLP's output losses on its outputs S (1, N, O), and dL/dS, as bpcli.kinds.mlp.LOSSES.
_LOSSES = {
    "mse": (["return (S[..., 0] - y).pow(2).mean(-1)  # L = mean((ŷ − y)²)"],
            ["residual = S[..., 0] - y",
             "return (2 / residual.shape[-1]) * residual[..., None]  # dL/dŷ = 2(ŷ − y)/N"]),
    "bce": (["s = S[..., 0]  # the logit: P(y = 1) = σ(s)",
             "# L = mean(log(1 + eˢ) − y·s), computed by torch without overflow",
             "return torch.nn.functional.binary_cross_entropy_with_logits(s, y.expand_as(s), "
             "reduction=\"none\").mean(-1)"],
            ["s = S[..., 0]",
             "return ((torch.sigmoid(s) - y) / s.shape[-1])[..., None]  # dL/ds = (σ(s) − y)/N"]),
    "hinge": (["# the max-margin loss with labels t = 2y − 1 = ±1: L = mean(relu(1 − t·s))",
               "return torch.relu(1 - (2 * y - 1) * S[..., 0]).mean(-1)"],
              ["s, t = S[..., 0], 2 * y - 1",
               "inside = (1 - t * s > 0).to(s.dtype)  # the samples within the margin",
               "return (-t * inside / s.shape[-1])[..., None]  # dL/ds = −t·[1 − t·s > 0]/N"]),
    "cross-entropy": (["# L = mean(log Σ_c e^(S_c) − S_y)",
                       "own = S.gather(-1, y.long()[..., None].expand(*S.shape[:-1], 1))[..., 0]",
                       "return (torch.logsumexp(S, -1) - own).mean(-1)"],
                      ["Y = (y.long()[..., None] == torch.arange(S.shape[-1])).to(S.dtype)  # one-hot",
                       "return (torch.softmax(S, -1) - Y) / S.shape[-2]  # dL/dS = (softmax(S) − Y)/N"]),
}


def _indent(lines: Lines) -> Lines:
    return ["    " + line for line in lines]


def mlp(ctx: Context) -> Model:
    """A multi-layer perceptron, its backward pass written layer by layer."""
    model = ctx.config.model
    layers = len(model.hidden) + 1
    sizes = [ctx.features] + [size(ctx.initial[f"b{layer}"]) for layer in range(1, layers + 1)]
    shapes, comments = {}, {}
    for layer in range(1, layers + 1):
        shapes[f"W{layer}"] = (1, sizes[layer], sizes[layer - 1])
        shapes[f"b{layer}"] = (1, sizes[layer])
        comments[f"W{layer}"] = f"layer {layer}'s weights, (1, out, in)"
        comments[f"b{layer}"] = f"layer {layer}'s biases"
    apply, derivative = _ACTIVATIONS[model.activation]
    loss, grad = _LOSSES[model.loss]
    functions = [
        f"LAYERS = {layers}",
        "",
        "",
        "def forward(params, x):",
        '    """The outputs S (1, N, O), and every layer\'s input a and pre-activation z."""',
        "    inputs, pre, a = [], [], x",
        "    for layer in range(1, LAYERS + 1):",
        "        inputs.append(a)",
        "        z = a @ params[f\"W{layer}\"].transpose(-1, -2) + params[f\"b{layer}\"][:, None, :]  # z = a·Wᵀ + b",
        "        pre.append(z)",
        f"        a = {apply} if layer < LAYERS else z  # the output layer is linear",
        "    return a, inputs, pre",
        "",
        "",
        "def output_loss(S, y):",
        *_indent(loss),
        "",
        "",
        "def loss_of(params, x, y):",
        "    return output_loss(forward(params, x)[0], y)",
    ]
    if ctx.manual:
        functions += [
            "",
            "",
            "def output_grad(S, y):",
            *_indent(grad),
            "",
            "",
            "def activation_grad(z, a):",
            f"    return {derivative}",
            "",
            "",
            "def gradients(params, x, y):",
            '    """The loss and its gradient, back-propagated layer by layer."""',
            "    S, inputs, pre = forward(params, x)",
            "    grads = {}",
            "    grad_z = output_grad(S, y)  # the output layer is linear: dL/dz = dL/dS",
            "    for layer in range(LAYERS, 0, -1):",
            "        a_in = inputs[layer - 1]",
            "        # z = a·Wᵀ + b:  dL/dW = (dL/dz)ᵀ·a,  dL/db = Σ_n dL/dz,  dL/da = dL/dz·W",
            "        grads[f\"W{layer}\"] = grad_z.transpose(-1, -2) @ a_in",
            "        grads[f\"b{layer}\"] = grad_z.sum(1)",
            "        if layer > 1:",
            "            grad_a = grad_z @ params[f\"W{layer}\"]",
            "            grad_z = grad_a * activation_grad(pre[layer - 2], a_in)  # dL/dz = dL/da · f'(z)",
            "    return output_loss(S, y), {name: grads[name] for name in params}",
        ]
    return Model(data=DATA, params=param_lines(ctx, shapes, comments), functions=functions)


def logistic(ctx: Context) -> Model:
    """Binary logistic regression σ(w·x + b) on the mean binary cross-entropy."""
    bias = ctx.config.model.bias
    shapes = {"w": (1, ctx.features), **({"b": (1,)} if bias else {})}
    functions = [
        "def softplus(z):",
        "    return z.clamp_min(0) + torch.log1p(torch.exp(-z.abs()))  # log(1 + e^z), without overflow",
        "",
        "",
        "def logits(params, x):",
        "    z = (x * params[\"w\"][:, None, :]).sum(-1)  # z = Σ_f x_f·w_f + b: (1, N)",
        "    return z + params[\"b\"][:, None] if \"b\" in params else z",
        "",
        "",
        "def loss_of(params, x, y):",
        "    z = logits(params, x)",
        *(["    return (softplus(z) - y * z).mean(-1)  # L = mean(softplus(z) − y·z), the binary cross-entropy"]
          if ctx.manual else
          ["    # the binary cross-entropy mean(softplus(z) − y·z), as torch computes it in one fused kernel",
           "    return torch.nn.functional.binary_cross_entropy_with_logits(z, y, reduction=\"none\").mean(-1)"]),
    ]
    if ctx.manual:
        functions += [
            "",
            "",
            "def gradients(params, x, y):",
            '    """The loss and dL/dw, dL/db, derived by hand."""',
            "    z = logits(params, x)",
            "    # dL/dz = (σ(z) − y)/N, so dL/dw = mean((σ(z) − y)·x),  dL/db = mean(σ(z) − y)",
            "    error = torch.sigmoid(z) - y",
            "    grads = {\"w\": (error[..., None] * x).mean(1)}",
            *(["    grads[\"b\"] = error.mean(1)"] if bias else []),
            "    return (softplus(z) - y * z).mean(-1), grads",
        ]
    return Model(data=DATA, params=param_lines(ctx, shapes, {"w": "one weight per feature", "b": "the intercept"}),
                 functions=functions)


def softmax(ctx: Context) -> Model:
    """Multinomial logistic regression softmax(W·x + b) on the mean cross-entropy."""
    bias = ctx.config.model.bias
    classes = size(ctx.initial["W"]) // ctx.features
    shapes = {"W": (1, classes, ctx.features), **({"b": (1, classes)} if bias else {})}
    functions = [
        f"CLASSES = {classes}",
        "",
        "",
        "def logits(params, x):",
        "    z = x @ params[\"W\"].transpose(-1, -2)  # Z = X·Wᵀ + b: every class's logit, (1, N, C)",
        "    return z + params[\"b\"][:, None, :] if \"b\" in params else z",
        "",
        "",
        "def loss_of(params, x, y):",
        "    z = logits(params, x)",
        "    own = z.gather(-1, y.long()[..., None])[..., 0]",
        "    return (torch.logsumexp(z, -1) - own).mean(-1)  # L = mean(logsumexp(z) − z_y)",
    ]
    if ctx.manual:
        functions += [
            "",
            "",
            "def gradients(params, x, y):",
            '    """The loss and dL/dW, dL/db, derived by hand."""',
            "    z = logits(params, x)",
            "    targets = torch.nn.functional.one_hot(y.long(), CLASSES).to(z.dtype)  # Y, (1, N, C)",
            "    loss = (torch.logsumexp(z, -1) - (z * targets).sum(-1)).mean(-1)",
            "    # dL/dZ = (softmax(Z) − Y)/N:  dL/dW = (softmax(Z) − Y)ᵀ·X/N,  dL/db = mean(softmax(Z) − Y)",
            "    error = torch.softmax(z, -1) - targets",
            "    grads = {\"W\": error.transpose(-1, -2) @ x / x.shape[1]}",
            *(["    grads[\"b\"] = error.mean(1)"] if bias else []),
            "    return loss, grads",
        ]
    return Model(data=DATA, params=param_lines(ctx, shapes, {"W": "one row of weights per class", "b": "the biases"}),
                 functions=functions)
