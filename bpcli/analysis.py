"""What the maths says about a linear least-squares run: its optimum and its largest stable lr.

For the linear kinds the training loss is L(θ) = mean((A·θ − y)²) with A = [x, 1] (or
[x] without a bias). Its minimum has a closed form, and gradient descent on it is a
linear map whose stability depends on the learning rate alone, so both are computed
here exactly (in float64) rather than guessed. So is how fast the run's optimizer
closes in: the Hessian's condition number κ and the linear rate it predicts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from bpcli import schedules
from bpcli.data.dataset import Dataset, model_linear_params
from bpcli.kinds.base import LeastSquares
from bpcli.optimizers import DEFAULT, OPTIMIZERS, Stability, settings_of

if TYPE_CHECKING:
    from bpcli.config.schema import TrainConfig


@dataclass(frozen=True)
class Optimum:
    """The least-squares solution θ* = argmin mean((A·θ − y)²) and its loss.

    `params` and `loss` are in the units the model trains in (standardised, when the data
    are); `original` holds w and b in the data's original units when those differ.
    """

    params: dict[str, list[float]]
    loss: float
    original: dict[str, list[float]] | None = None
    rank: int = 0
    """The design's effective rank: how many of its columns float64 can tell apart."""
    columns: int = 0
    """The design's columns: one per feature, and one for the intercept."""
    condition: float = 1.0
    """κ of the design after centring (with an intercept) and scaling its columns."""
    method: str = "the least-squares solution"
    """What the optimum is, in words: the least-squares solution, the maximum-likelihood one, …"""
    rows: int = 0
    """The distinct rows of inputs the optimum is solved from (0: not counted)."""
    samples: int = 0
    """The rows it is solved from."""

    def flat(self) -> list[float]:
        return [v for values in self.params.values() for v in values]

    @property
    def unique(self) -> bool:
        """Whether the design has full rank, so that this optimum is the only one."""
        return self.rank == self.columns

    def warning(self) -> str | None:
        """What to tell the user when the optimum is not unique (None when it is)."""
        if self.unique:
            return None
        if 0 < self.rows < self.columns:  # too few rows: no column is at fault
            distinct = "" if self.rows == self.samples else f" but {self.rows} distinct row{'s' * (self.rows != 1)}"
            return (f"the data has {self.samples} row{'s' * (self.samples != 1)}{distinct} for {self.columns} "
                    f"parameters, fewer rows than parameters, so every parameter value on a line (a plane) of "
                    "solutions fits it equally well: the least-squares \"optimum\" is one of many and the distance "
                    "to it means little; add rows (data.n, or more of the file) or fit fewer features")
        kappa = "infinite" if not math.isfinite(self.condition) else f"{self.condition:.2g}"
        squares = self.method == "the least-squares solution"
        solution = "least-squares" if squares else "maximum-likelihood"
        why_not = ("since the solve already centres and scales every column" if squares else
                   "it changes no column's dependence on the others")
        return (f"the design has effective rank {self.rank} of {self.columns} columns (condition number "
                f"κ = {kappa}, beyond what float64 resolves), so the {solution} "
                "\"optimum\" is one of many and the distance to it means little; drop a column that the others "
                "determine (a duplicate, a constant beside the intercept, a sum of other columns); standardising "
                f"would not help, {why_not}")


def _design(data: Dataset, bias: bool) -> torch.Tensor:
    x = data.x.to(torch.float64)
    return torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], dim=1) if bias else x


def solve(x: torch.Tensor, y: torch.Tensor, bias: bool) -> tuple[list[float], float, int, float]:
    """Least squares y ≈ x·w (+ b) in float64: w, b (0 without an intercept), the effective
    rank of the design [x, 1] (or [x]) and the condition number κ the solve worked with.

    With an intercept the columns of x and y are centred first, which takes the intercept's
    column out of the problem (b = ȳ − x̄·w); every column is then scaled to at most 1.
    Both change the conditioning, not the solution, and are what lets float64 solve tables
    such as Longley's to 11 or more significant digits (y is scaled too, so that values near
    float64's limit do not overflow on the way). Columns that float64 cannot tell
    apart (singular values below max(N, F)·ε·σ_max) are dropped, giving the minimum-norm
    solution among the many optima of a rank-deficient design.
    """
    x, y = x.to(torch.float64), y.to(torch.float64)
    if bias:  # means as sums of x/N, which cannot overflow where every value fits
        x_mean, y_mean = (x / len(x)).sum(0), (y / len(y)).sum()
        x, y = x - x_mean, y - y_mean
    # Each column scaled by its largest |value| (not its length, whose square may overflow).
    norms = x.abs().amax(dim=0)
    norms = torch.where(norms > 0, norms, torch.ones_like(norms))  # a zero column stays zero
    z = x / norms
    y_scale = float(y.abs().max()) or 1.0
    y = y / y_scale
    # Z = QR: R (F × F) has Z's singular values and turns the solve into R·c = Qᵀy, whatever
    # the number of rows.
    q, r = torch.linalg.qr(z)
    singular = torch.linalg.svdvals(r)
    tolerance = max(z.shape) * torch.finfo(torch.float64).eps * float(singular[0]) if len(singular) else 0.0
    rank = int((singular > tolerance).sum())
    smallest = float(singular[-1]) if len(singular) else 0.0
    condition = float(singular[0]) / smallest if smallest > 0 else math.inf
    rhs = q.T @ y
    if rank == len(singular):
        found = torch.linalg.solve_triangular(r, rhs[:, None], upper=True)[:, 0]
    else:  # the minimum-norm solution, without the singular values float64 cannot resolve
        found = torch.linalg.pinv(r, atol=tolerance) @ rhs
    w = found * y_scale / norms
    b = float(y_mean - x_mean @ w) if bias else 0.0
    return w.tolist(), b, rank + (1 if bias else 0), condition


def optimum(data: Dataset, fit: LeastSquares) -> Optimum:
    """The closed-form optimum (least squares, float64) of a linear kind's training loss,
    solved from the training rows as read (see Dataset.as_read)."""
    x, y = data.as_read()
    w, b, rank, condition = solve(x, y, fit.bias)
    original = {"w": w, **({"b": [b]} if fit.bias else {})}
    params = model_linear_params(data, original)
    # Its loss, as the model measures it: in the model's units, on the data it trains on.
    theta = torch.tensor([v for values in params.values() for v in values], dtype=torch.float64)
    loss = float((_design(data, fit.bias) @ theta - data.y.to(torch.float64)).pow(2).mean())
    columns = x.shape[1] + (1 if fit.bias else 0)
    distinct = len(torch.unique(x.to(torch.float64), dim=0)) if len(x) else 0
    return Optimum(params, loss, original if data.scaling is not None else None, rank, columns, condition,
                   rows=distinct, samples=len(x))


def predict(best: Optimum, x: torch.Tensor) -> torch.Tensor:
    """The optimum's predictions for inputs x (N, F), in float64."""
    x = x.to(torch.float64)
    w = torch.tensor(best.params["w"], dtype=torch.float64)
    b = best.params.get("b", [0.0])[0]
    return x @ w + b


def r2(y: torch.Tensor, predicted: torch.Tensor, centred: bool = True) -> float:
    """The coefficient of determination 1 − SS_res/SS_tot (in float64).

    SS_tot is Σ(y − ȳ)² (centred), or Σy² (uncentred): the definition statistics packages
    use, and NIST certifies, for a model without intercept, whose baseline is ŷ = 0.
    """
    y, predicted = y.to(torch.float64).cpu(), predicted.to(torch.float64).cpu()
    total = float((y - y.mean()).pow(2).sum()) if centred else float(y.pow(2).sum())
    residual = float((y - predicted).pow(2).sum())
    return 1.0 - residual / total if total > 0 else float("nan")


def r2_undefined(y: torch.Tensor, centred: bool = True) -> str | None:
    """Why R² cannot be computed for targets y (its baseline leaves nothing to explain), or None."""
    y = y.to(torch.float64).cpu()
    if centred and len(y) == 1:
        return "one row: R² measures the fit against the spread of y about its mean, and one value has none"
    if centred and float((y - y.mean()).pow(2).sum()) == 0:
        return f"every y is {float(y[0]):g}, so there is no spread about the mean for the fit to explain"
    if not centred and float(y.pow(2).sum()) == 0:
        return "every y is 0, so there is nothing for the fit to explain"
    return None


R2_DEFINITIONS = {
    True: "centred: 1 − Σ(y − ŷ)²/Σ(y − ȳ)²",
    False: "uncentred: 1 − Σ(y − ŷ)²/Σy², for a model without intercept",
}
"""How R² is defined for a model with (True) and without (False) an intercept, as reported."""


def distance(values: list[float], best: Optimum) -> float:
    """The Euclidean distance from parameter values (in params order) to the optimum."""
    try:
        return math.sqrt(sum((v - o) ** 2 for v, o in zip(values, best.flat())))
    except OverflowError:  # squares beyond float64: math.dist scales as it goes
        return math.dist(values, best.flat())


@dataclass(frozen=True)
class StableLR:
    """The largest learning rate for which the run's optimizer converges on this data
    (None where no bound of that form exists: adaptive rules, momentum on single samples)."""

    lr: float | None
    explanation: str
    scope: str = "full batch"
    """What the bound is computed for: `full batch` (a smaller batch has its own curvature,
    so the bound is the full batch's only), `per sample` (one sample a step, in any order),
    or `upper bound` (the lr is sufficient for convergence, not the largest that converges)."""
    curvature: float | None = None
    """The data's own part of the bound's curvature (λ_max of the Hessian, or 2·max xᵢ² per
    sample), without the weight decay the bound adds to it."""
    weight_decay: float = 0.0
    """The weight decay the bound's curvature includes."""


def stable_lr(data: Dataset, fit: LeastSquares, train: TrainConfig | None = None) -> StableLR:
    """The stability bound of the kind's update on this data (full batch or per sample),
    for the optimizer `train` names (plain gradient descent when None): the rule's own
    theory, from the registry."""
    known = theory(train)
    if known.bound is None:
        return StableLR(None, known.reason)
    if _batch(data, fit, train) == 1 and fit.per_sample:
        if not known.per_sample:
            return StableLR(None, known.per_sample_reason)
        return _per_sample_bound(data, (train.weight_decay or 0.0) if train is not None else 0.0)
    eigenvalues = hessian_eigenvalues(data, fit)
    if eigenvalues is None:
        return _overflowing(float(_design(data, fit.bias).abs().max()))
    weight_decay = (train.weight_decay or 0.0) if train is not None else 0.0
    top = float(eigenvalues.max()) + weight_decay
    bound = known.bound(top)
    decay = f" (plus weight_decay {weight_decay:g})" if weight_decay else ""
    caveat = ""
    if not _full_batch(data, fit, train):
        caveat = ("; that is the full-batch bound, and mini-batches, each with its own Hessian, can diverge "
                  "below it")
    return StableLR(
        bound,
        f"{known.how} on this data's mean squared error converges only for lr < {known.formula} = {bound:.6g}, "
        f"where λ_max = {top:.6g} is the largest eigenvalue of the loss's Hessian (2/N)·AᵀA{decay}{caveat}",
        curvature=float(eigenvalues.max()), weight_decay=weight_decay,
    )


def theory(train: TrainConfig | None) -> Stability:
    """What the run's update rule knows of its stability (plain gradient descent for None)."""
    if train is None:
        rule = OPTIMIZERS[DEFAULT]
        return rule.stability(rule.Settings())
    return OPTIMIZERS[train.optimizer].stability(settings_of(train))


def _per_sample_bound(data: Dataset, weight_decay: float = 0.0) -> StableLR:
    # The update on sample i, w ← w − lr·(2·x_i·(w·x_i − y_i) + λ·w), multiplies the error
    # about its fixed point by (1 − 2·lr·(x_i² + λ/2)). One epoch multiplies it by
    # c(lr) = Π_i (1 − 2·lr·(x_i² + λ/2)); the run converges iff |c(lr)| < 1. |c| starts at 1
    # and falls as lr grows from 0, so the bound is the first lr > 0 where |c(lr)| climbs back to 1.
    x = data.x[:, 0].to(torch.float64)
    squares = x * x + weight_decay / 2 if weight_decay else (x * x)[x != 0]
    if not bool(torch.isfinite(squares).all()):
        return _overflowing(float(x.abs().max()))
    squares = squares[squares > 0]  # an x so small that its square is 0 never changes w
    if squares.numel() == 0:
        return StableLR(math.inf, "every x is 0, so the updates never change w", "per sample")
    biggest, smallest = float(squares.max()), float(squares.min())

    def log_c(rates: torch.Tensor) -> torch.Tensor:
        # log |c(lr)| for many learning rates at once, a block of them at a time.
        out = torch.empty_like(rates)
        block = max(1, 2_000_000 // squares.numel())
        for i in range(0, rates.numel(), block):
            r = rates[i : i + block, None]
            out[i : i + block] = torch.log(torch.abs(1 - 2 * r * squares)).sum(1)
        return out

    grid = torch.logspace(math.log10(1e-6 / biggest), math.log10(10.0 / smallest), 4001, dtype=torch.float64)
    values = log_c(grid)
    crossed = torch.nonzero(values[1:] >= 0).flatten()
    if crossed.numel() == 0:
        bound = float(grid[-1])
    else:
        below, above = float(grid[int(crossed[0])]), float(grid[int(crossed[0]) + 1])
        for _ in range(100):  # bisect the crossing
            mid = (below + above) / 2
            if float(log_c(torch.tensor([mid], dtype=torch.float64))[0]) < 0.0:
                below = mid
            else:
                above = mid
        bound = below
    decay = f", with weight_decay λ = {weight_decay:g}" if weight_decay else ""
    squared = "(xᵢ² + λ/2)" if weight_decay else "xᵢ²"
    return StableLR(
        bound,
        f"per-sample SGD on this data converges only for lr < {bound:.6g}: each update "
        f"multiplies the error in w by (1 − 2·lr·{squared}), and beyond that lr one epoch's product "
        f"of these factors exceeds 1 in size (every factor stays below 1 for lr < "
        f"1/max {squared} = {1 / biggest:.6g}{decay}); the product does not depend on the order of the samples, "
        "so this holds for shuffled epochs too",
        "per sample",
        curvature=2 * float((x * x).max()), weight_decay=weight_decay,
    )


def _overflowing(largest: float) -> StableLR:
    """The bound when the data's squares are beyond float64: no learning rate will do."""
    return StableLR(0.0, f"the squares of the data (largest |x| = {largest:.3g}) are beyond what float64 "
                         "holds, so no learning rate makes gradient descent converge")


# --------------------------------------------------------------------------- conditioning


def hessian_eigenvalues(data: Dataset, fit: LeastSquares) -> torch.Tensor | None:
    """The eigenvalues of the full-batch loss's Hessian (2/N)·AᵀA, ascending, in float64
    (None when the data's squares are beyond float64)."""
    a = _design(data, fit.bias)
    # From the singular values of A (λ = (2/N)·σ²) rather than from AᵀA, whose forming
    # squares κ and loses the smallest eigenvalues of an ill-conditioned design to rounding.
    if not bool(torch.isfinite(a).all()):
        return None
    sigma = torch.linalg.svdvals(a)
    eigenvalues = (2 / len(a)) * sigma.flip(0) ** 2
    if not bool(torch.isfinite(eigenvalues).all()):
        return None
    missing = a.shape[1] - len(eigenvalues)  # fewer samples than parameters: the rest are 0
    return torch.cat([torch.zeros(missing, dtype=eigenvalues.dtype), eigenvalues]) if missing > 0 else eigenvalues


def _batch(data: Dataset, fit: LeastSquares, train: TrainConfig | None) -> int:
    """The samples each update sees (batch_size null means the kind's own: 1 or all of them)."""
    samples = len(data.y)
    batch = train.batch_size if train is not None else None
    if batch is None:
        batch = 1 if fit.per_sample else samples
    return min(batch, samples)


def _full_batch(data: Dataset, fit: LeastSquares, train: TrainConfig | None) -> bool:
    """Whether every update sees every training sample."""
    return _batch(data, fit, train) == len(data.y)


def momentum_optimal_rate(condition_number: float) -> float:
    """(√κ − 1)/(√κ + 1): heavy ball's rate at its best lr and μ, lr = 4/(√λ_max + √λ_min)² and
    μ = ((√κ − 1)/(√κ + 1))², against (κ − 1)/(κ + 1) for plain gradient descent at its best lr."""
    root = math.sqrt(condition_number)
    return (root - 1) / (root + 1) if math.isfinite(root) else 1.0


@dataclass(frozen=True)
class Conditioning:
    """The Hessian's spectrum and the linear rate it predicts for the run's optimizer.

    A rate ρ is per step, for the error θ − θ*: ‖θₖ − θ*‖ shrinks like ρᵏ. The loss gap
    L(θₖ) − L* = ½·(θₖ − θ*)ᵀH(θₖ − θ*) is quadratic in that error, so it shrinks like ρ²ᵏ.
    """

    condition_number: float
    """κ = λ_max/λ_min of the Hessian (2/N)·AᵀA (infinite when it is singular)."""
    eigenvalue_min: float
    eigenvalue_max: float
    rate_predicted: float | None
    """The linear rate the run's optimizer and lr give on this Hessian; None where none is predicted."""
    rate_momentum_optimal: float
    """What heavy-ball momentum reaches at its optimal lr and μ: (√κ − 1)/(√κ + 1)."""
    note: str
    """What is and is not predicted for this run, in words."""
    measurable: bool
    """Whether the logged loss's gap to L* measures this run's rate: full batch, no weight decay."""


def conditioning(data: Dataset, fit: LeastSquares, train: TrainConfig) -> Conditioning | None:
    """κ of a least-squares run's Hessian and the rate its optimizer is predicted to converge at
    (None when the data's squares are beyond float64)."""
    eigenvalues = hessian_eigenvalues(data, fit)
    if eigenvalues is None:
        return None
    top, bottom = float(eigenvalues.max()), float(eigenvalues.min())
    # A singular Hessian (collinear features, fewer samples than parameters) has λ_min = 0 up to
    # rounding: κ is infinite, and the parameters along its null space never move, while the loss
    # converges at the rate of the smallest eigenvalue that is not 0.
    # λ comes from σ², and σ is resolved to about ε·σ_max: below that, λ is 0 to rounding.
    floor = top * (len(eigenvalues) * torch.finfo(torch.float64).eps * 100) ** 2
    singular = bottom <= floor
    kappa = math.inf if singular else top / bottom
    weight_decay = train.weight_decay or 0.0
    seen = eigenvalues[eigenvalues > floor] + weight_decay
    lr = train.lr
    full = _full_batch(data, fit, train)
    known = theory(train)
    rate: float | None
    if not full:
        rate = None
        note = ("updates on single samples or mini-batches follow each batch's own Hessian, so no linear rate is "
                "predicted, and the logged loss is the batch's; with a constant lr SGD settles in a noise floor "
                "(of size proportional to lr) unless every sample shares the optimum. κ is the full-batch Hessian's")
    elif known.rate is None:
        rate, note = None, known.rate_note or known.reason
    elif schedules.scheduled(train):
        rate = None
        note = "the lr changes during the run (train.schedule), so no single linear rate is predicted"
    else:
        rate, note = known.rate(seen, lr), known.rate_note
    if full and weight_decay:
        note += (f"; weight_decay {weight_decay:g} adds to every eigenvalue and moves the optimum "
                 "away from the least-squares one, so the observed rate is not measured")
    if singular:
        note += ("; the Hessian is singular, or is to float64's precision (κ infinite): the rate is that of its "
                 "smallest eigenvalue that is not 0")
    # what momentum could reach on the directions that move (all of them unless H is singular)
    best_momentum = momentum_optimal_rate(float(seen.max() / seen.min())) if len(seen) else 1.0
    return Conditioning(kappa, bottom, top, rate, best_momentum, note,
                        measurable=full and not weight_decay)


ROUNDING = 1000
"""A loss gap counts as measured while it exceeds this many times the dtype's rounding of the loss."""


def observed_rate(steps: list[float], losses: list[float], best: float, eps: float) -> float | None:
    """The per-step rate at which a run's error θ − θ* actually shrank, from its logged losses.

    The loss gap gₖ = Lₖ − L* counts up to the last logged step where it exceeds
    ROUNDING·eps·(L* + eps·L₁), and only where it does: a loss computed in a dtype with
    machine epsilon `eps` carries rounding of about eps·L* near the optimum, plus eps²·L₁
    from the residuals' own rounding, squared (L₁, the first loss, has their scale). Over the second half of those steps a
    least-squares line through log gₖ against k has slope log r: r is the gap's geometric mean
    ratio per step ((g_b/g_a)^(1/(b − a)) for a clean geometric decay from step a to b; the fit
    also averages over momentum's oscillations). The gap is quadratic in the error, so the
    error's rate is √r. None when fewer than three logged steps count.
    """
    gaps = [(s, loss - best) for s, loss in zip(steps, losses) if math.isfinite(loss)]
    if not gaps:
        return None
    floor = ROUNDING * eps * (max(best, 0.0) + eps * (best + gaps[0][1]))
    above = [i for i, (_, gap) in enumerate(gaps) if gap > floor]
    measured = [(s, math.log(g)) for s, g in gaps[:above[-1] + 1] if g > floor] if above else []
    if len(measured) < 3:
        return None
    middle = (measured[0][0] + measured[-1][0]) / 2
    tail = [(s, g) for s, g in measured if s >= middle]
    if len(tail) < 2:  # unevenly logged steps: the last two
        tail = measured[-2:]
    mean_s = sum(s for s, _ in tail) / len(tail)
    mean_g = sum(g for _, g in tail) / len(tail)
    slope = sum((s - mean_s) * (g - mean_g) for s, g in tail) / sum((s - mean_s) ** 2 for s, _ in tail)
    return math.exp(slope / 2)
