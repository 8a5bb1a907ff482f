"""What the maths says about a linear classifier: its maximum-likelihood optimum and a stable lr.

`logistic` and `softmax` minimise a mean cross-entropy of the logits z = A·θ (A = [x, 1],
or [x] without a bias). It has no closed form, but it is convex, so Newton's method (IRLS)
finds its minimum in a handful of float64 steps, where there is one. There is none when
the classes are linearly separable: a θ that puts every sample on its own side can be
scaled up without end, driving the loss toward 0, so the weights grow without bound and
no finite optimum exists. This module says which case a dataset is, as analysis.py does
for least squares, and bounds the loss's curvature for a stable learning rate.

Everything is solved from the training rows as read (Dataset.as_read), in float64, and
given in the units the model trains in (standardised, when the data are).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from bpcli.analysis import Optimum, StableLR
from bpcli.data.dataset import Dataset, target_scaled

if TYPE_CHECKING:
    from bpcli.config.schema import TrainConfig

METHOD = "the maximum-likelihood solution (Newton's method)"
MAX_ITERATIONS = 100
"""Newton's method converges quadratically once close; this many steps without converging
means the loss keeps falling along a direction without end (see _newton)."""
FLAT = 1e-10
"""The smallest curvature, relative to the data's, of a finite optimum (see _newton)."""
MAX_UNKNOWNS = 2000
"""The largest (C − 1)·(F + 1) solved for: the Hessian has that many rows."""
SEPARABLE = ("the classes are linearly separable: some weights classify every training sample correctly, so "
             "scaling them up lowers the loss toward 0 without end; no finite optimum exists, and "
             "training drives the weights to grow without bound as the loss falls (the run is not diverging: its "
             "loss falls)")


def design(x: torch.Tensor, bias: bool) -> torch.Tensor:
    """A = [x, 1] (or x without a bias), in float64."""
    x = x.to(torch.float64)
    return torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1) if bias else x


def _logits(a: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Every class's logit, (N, C): class 0's is fixed at 0, the others are A·θ_cᵀ."""
    return torch.cat([torch.zeros(len(a), 1, dtype=a.dtype), a @ theta.T], dim=1)


def _loss(a: torch.Tensor, labels: torch.Tensor, theta: torch.Tensor) -> float:
    """mean(logsumexp(z) − z_y): the mean cross-entropy (for two classes, the binary one)."""
    z = _logits(a, theta)
    return float((torch.logsumexp(z, 1) - z.gather(1, labels[:, None])[:, 0]).mean())


def _separates(a: torch.Tensor, labels: torch.Tensor, theta: torch.Tensor) -> bool:
    """Whether θ puts every sample strictly on its own class's side: z_y > z_c for every c ≠ y.

    Such a θ is a certificate of separability (the loss along t·θ falls to 0 as t grows).
    The margin must clear the rounding of the logits, so that float64 noise is never taken
    for a separating hyperplane."""
    z = _logits(a, theta)
    own = z.gather(1, labels[:, None])[:, 0]
    others = z.scatter(1, labels[:, None], -math.inf).amax(1)
    rounding = 1e-12 * (1 + float(z.abs().max()))
    return bool((own - others > rounding).all())


def _hessian(a: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """The Hessian of the mean cross-entropy in the free rows θ_1 … θ_{C−1}:
    H[(c,i),(e,j)] = (1/N)·Σ_n p_nc·(δ_ce − p_ne)·a_ni·a_nj, block by block."""
    n, d = a.shape
    m = p.shape[1]
    blocks = torch.empty(m, d, m, d, dtype=a.dtype)
    for c in range(m):
        for e in range(c, m):
            weight = p[:, c] * ((1.0 if c == e else 0.0) - p[:, e])  # (N,)
            block = (a * weight[:, None]).T @ a / n
            blocks[c, :, e, :] = block
            blocks[e, :, c, :] = block.T
    return blocks.reshape(m * d, m * d)


def _whitened(a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """B = A·T with BᵀB/N = I on the columns float64 can tell apart, and T (D, r).

    Newton's method is affine invariant, so its iterates in B's coordinates are A's mapped
    by T; but there the Hessian's eigenvalues are the loss's curvature relative to the
    data's, in [0, 1/2], which tells a finite optimum from one that runs off (see _newton).
    θ_A = θ_B·Tᵀ lies in A's row space: with collinear columns, the minimum-norm optimum.
    """
    n = len(a)
    _, sigma, vh = torch.linalg.svd(a, full_matrices=False)
    tolerance = max(a.shape) * torch.finfo(torch.float64).eps * float(sigma[0]) if len(sigma) else 0.0
    kept = int((sigma > tolerance).sum())
    t = vh[:kept].T / sigma[:kept] * math.sqrt(n)
    return a @ t, t


def _newton(a: torch.Tensor, labels: torch.Tensor, classes: int) -> tuple[torch.Tensor | None, str]:
    """The free rows θ (C − 1, D) of the optimum with class 0's row fixed at 0, by damped
    Newton steps from θ = 0; or None, with why, where no finite optimum exists.

    Separability is detected three ways. (1) An iterate that separates the classes (see
    _separates) is a certificate. (2) Where Newton's method settles, the curvature of the
    loss along every direction the data determine is measured relative to the data's own
    (the whitened Hessian's smallest eigenvalue, at most 1/2): below FLAT it means that
    every sample that direction depends on is fitted with a probability within about FLAT
    of certainty, which happens when the weights have run off along a direction that
    separates some classes with samples on the boundary (quasi-complete separation), where
    the loss's change is below float64's resolution and Newton's steps seem to settle.
    (3) A run of MAX_ITERATIONS steps without settling means the same.
    """
    a, back = _whitened(a)
    n, d = a.shape
    m = classes - 1
    targets = torch.nn.functional.one_hot(labels, classes).to(torch.float64)[:, 1:]  # (N, C − 1)
    theta = torch.zeros(m, d, dtype=torch.float64)
    loss = _loss(a, labels, theta)
    polished = 0
    running_off = ("no finite optimum: the loss keeps falling along a direction without end, as it does when some "
                   "classes are separated from the others with samples on the boundary (quasi-complete "
                   "separation): the weights grow without bound as training goes on")
    for _ in range(MAX_ITERATIONS):
        p = torch.softmax(_logits(a, theta), dim=1)[:, 1:]
        gradient = ((p - targets).T @ a / n).reshape(-1)  # dL/dθ_c = Bᵀ(p_c − y_c)/N
        hessian = _hessian(a, p)
        step = torch.linalg.pinv(hessian, hermitian=True, rtol=1e-13) @ gradient  # H·δ = g
        decrement = float(gradient @ step)  # λ² = gᵀH⁻¹g: twice the loss Newton's model expects to shed
        if decrement <= 1e-28 * max(1.0, loss) or polished == 3:  # settled, to float64's resolution
            if float(torch.linalg.eigvalsh(hessian)[0]) < FLAT:
                return None, running_off
            return theta @ back.T, ""
        if decrement < 1e-20 * max(1.0, loss):
            # The loss changes below its own rounding, so a line search cannot see the step;
            # this close, Newton's quadratic model is exact and a few full steps finish the job.
            theta, polished = theta - step.reshape(m, d), polished + 1
            continue
        t = 1.0
        while True:  # backtracking until the loss falls as Newton's model says it should (Armijo)
            trial = theta - t * step.reshape(m, d)
            trial_loss = _loss(a, labels, trial)
            if trial_loss <= loss - 1e-4 * t * decrement or t < 1e-10:
                break
            t /= 2
        theta, loss = trial, trial_loss
        if _separates(a, labels, theta):
            return None, SEPARABLE
    return None, running_off


def _condition(a: torch.Tensor, theta: torch.Tensor, labels: torch.Tensor) -> float:
    """κ of the Hessian of the mean cross-entropy at θ (class 0's row fixed), in A's units."""
    p = torch.softmax(_logits(a, theta[1:]), dim=1)[:, 1:]
    eigenvalues = torch.linalg.eigvalsh(_hessian(a, p))
    top = float(eigenvalues[-1])
    return top / float(eigenvalues[0]) if float(eigenvalues[0]) > top * len(eigenvalues) * 1e-15 else math.inf


def _to_model_units(data: Dataset, theta: torch.Tensor, bias: bool) -> torch.Tensor:
    """Each class's (w, b), solved in the data's original units, in the standardised units
    the model trains in: z = w·x + b = Σ_j w_j·σ_j·(x_j − μ_j)/σ_j + (b + Σ_j w_j·μ_j)."""
    if data.scaling is None:
        return theta
    mean = torch.tensor(data.scaling["x_mean"], dtype=torch.float64)
    std = torch.tensor(data.scaling["x_std"], dtype=torch.float64)
    features = len(mean)
    out = theta.clone()
    out[:, :features] = theta[:, :features] * std
    if bias:
        out[:, features] = theta[:, features] + theta[:, :features] @ mean
    return out


def solve(data: Dataset, classes: int, bias: bool) -> tuple[torch.Tensor | None, str, int, int, float]:
    """Every class's row θ_c = (w_c, b_c), (C, D), of a maximum-likelihood optimum with
    class 0's row at 0, in the model's units, solved in float64 from the training rows as
    read; or None and why there is none. Also the design's rank, its columns and κ."""
    if target_scaled(data):
        return None, ("the target is standardised (data.standardize: all), so its values are no longer class "
                      "labels; use data.standardize: features"), 0, 0, math.inf
    x, y = data.as_read()
    a = design(x, bias)
    labels = y.round().long()
    columns = a.shape[1]
    rank = int(torch.linalg.matrix_rank(a)) if len(a) else 0
    missing = sorted(set(range(classes)) - set(labels.tolist()))
    if missing:
        return None, (f"class {missing[0]} has no training sample, so its logit is pushed down without end "
                      "and no finite optimum exists"), rank, columns, math.inf
    if (classes - 1) * columns > MAX_UNKNOWNS:
        return None, (f"not solved: {(classes - 1) * columns} unknowns make a Hessian beyond the {MAX_UNKNOWNS} "
                      "rows solved here"), rank, columns, math.inf
    free, why = _newton(a, labels, classes)
    if free is None:
        return None, why, rank, columns, math.inf
    theta = torch.cat([torch.zeros(1, columns, dtype=torch.float64), free])
    return _to_model_units(data, theta, bias), "", rank, columns, _condition(a, theta, labels)


def mean_cross_entropy(data: Dataset, theta: torch.Tensor, bias: bool) -> float:
    """The mean cross-entropy of every class's row θ_c on the data the model trains on, in float64."""
    z = design(data.x, bias) @ theta.T
    labels = data.y.to(torch.float64).round().long()
    return float((torch.logsumexp(z, 1) - z.gather(1, labels[:, None])[:, 0]).mean())


def solve_original(data: Dataset, theta: torch.Tensor, bias: bool) -> dict[str, list[float]]:
    """Model-unit rows back in the original units: w_j/σ_j and b − Σ_j w_j·μ_j/σ_j."""
    mean = torch.tensor(data.scaling["x_mean"], dtype=torch.float64)
    std = torch.tensor(data.scaling["x_std"], dtype=torch.float64)
    features = len(mean)
    w = theta[:, :features] / std
    out = {"w": w.reshape(-1).tolist()}
    if bias:
        out["b"] = (theta[:, features] - w @ mean).tolist()
    return out


def logistic_optimum(data: Dataset, bias: bool) -> Optimum | str:
    """The maximum-likelihood (w, b) of binary logistic regression, or why none exists."""
    theta, why, rank, columns, condition = solve(data, 2, bias)
    if theta is None:
        return why
    row = theta[1:]  # class 1's logit minus class 0's: the logistic model's z = w·x + b
    features = data.x.shape[1]
    params = {"w": row[0, :features].tolist(), **({"b": [float(row[0, features])]} if bias else {})}
    loss = mean_cross_entropy(data, theta, bias)
    original = solve_original(data, row, bias) if data.scaling is not None else None
    return Optimum(params, loss, original, rank, columns, condition, METHOD)


def softmax_optimum(data: Dataset, classes: int, bias: bool, sums: torch.Tensor) -> Optimum | str:
    """The maximum-likelihood (W, b) of softmax regression that gradient descent approaches
    from a start whose rows sum to `sums` (Σ_c θ_c, shape (D,)), or why none exists.

    Adding one vector v to every class's row changes no probability, so the optima form a
    line θ* + 1·vᵀ, and the Hessian is singular along it. Newton's method solves with class
    0's row fixed at 0; then v is chosen so that Σ_c θ_c equals the start's: every gradient
    step keeps that sum, since Σ_c dL/dθ_c = Aᵀ·Σ_c (p_c − y_c)/N = 0, so it is the one
    optimum that gradient descent (plain or with momentum) converges to.
    """
    theta, why, rank, columns, condition = solve(data, classes, bias)
    if theta is None:
        return why
    theta = theta + (sums.to(torch.float64) - theta.sum(0)) / classes
    features = data.x.shape[1]
    params = {"W": theta[:, :features].reshape(-1).tolist(), **({"b": theta[:, features].tolist()} if bias else {})}
    loss = mean_cross_entropy(data, theta, bias)
    original = solve_original(data, theta, bias) if data.scaling is not None else None
    if original is not None:
        original = {"W": original["w"], **({"b": original["b"]} if bias else {})}
    method = (f"{METHOD}, the one of the equivalent optima (any vector added to every class's row) whose rows "
              "sum to the start's, which gradient descent keeps")
    # κ is of the Hessian with class 0's row fixed: the full one is singular along the line of optima.
    return Optimum(params, loss, original, rank, columns, condition, method)


# --------------------------------------------------------------------------- stable lr


def stable_lr(data: Dataset, bias: bool, train: TrainConfig, curvature: float, loss: str) -> StableLR:
    """A learning rate below which full-batch gradient descent on a mean cross-entropy
    converges, from an upper bound on its Hessian: H ≼ curvature·AᵀA/N everywhere.

    logistic: H = Aᵀ·diag(σ(z)(1 − σ(z)))·A/N and σ(1 − σ) ≤ 1/4, so curvature = 1/4.
    softmax: H = (1/N)·Σ_n (diag(p_n) − p_n·p_nᵀ) ⊗ a_n·a_nᵀ; by Gershgorin every eigenvalue
    of diag(p) − p·pᵀ is at most max_c [p_c − p_c² + p_c·Σ_{e≠c} p_e] = max_c 2p_c(1 − p_c)
    ≤ 1/2, so H ≼ (1/2)·I ⊗ AᵀA/N and curvature = 1/2 (Böhning 1992 gives the same 1/2).
    A function whose Hessian is at most L everywhere (L-smooth) decreases under gradient
    descent for every lr < 2/L; that is sufficient, not the largest lr that converges,
    since the true curvature σ(1 − σ) is below 1/4 except where z = 0.
    """
    from bpcli.analysis import theory

    rule = theory(train)  # what the update rule knows of its stability, from the optimizer registry
    if rule.bound is None:
        return StableLR(None, rule.reason, "upper bound")
    weight_decay = train.weight_decay or 0.0
    a = design(data.x, bias)
    top = curvature * float(torch.linalg.svdvals(a)[0]) ** 2 / len(a) + weight_decay
    if not math.isfinite(top) or top <= 0:
        return StableLR(None, "the data's squares are beyond float64, so no bound is computed", "upper bound")
    # The rule's bound for a quadratic whose Hessian has largest eigenvalue L; beyond plain
    # gradient descent (momentum) it holds near the optimum, where the loss is its quadratic model.
    bound, formula = rule.bound(top), rule.formula.replace("λ_max", "L")
    how = rule.how if formula == "2/L" else f"{rule.how} (near the optimum, where the loss is close to its quadratic model)"
    decay = f" (plus weight_decay {weight_decay:g})" if weight_decay else ""
    caveat = ""
    if train.batch_size is not None and train.batch_size < len(a):
        caveat = "; that is the full batch's bound, and mini-batches, each with its own curvature, can diverge below it"
    share = {0.25: "1/4", 0.5: "1/2"}.get(curvature, f"{curvature:g}")
    return StableLR(
        bound,
        f"{how} on this data's {loss} converges for lr < {formula} = {bound:.6g}, where L = {top:.6g} = "
        f"{share}·λ_max(AᵀA)/N{decay} is an upper bound on the loss's curvature (the Hessian's largest "
        f"eigenvalue) everywhere: a sufficient bound, not the largest lr that converges{caveat}",
        "upper bound",
    )

