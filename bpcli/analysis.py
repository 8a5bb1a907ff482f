"""What the maths says about a linear least-squares run: its optimum and its largest stable lr.

For the linear kinds the training loss is L(θ) = mean((A·θ − y)²) with A = [x, 1] (or
[x] without a bias). Its minimum has a closed form, and gradient descent on it is a
linear map whose stability depends on the learning rate alone, so both are computed
here exactly (in float64) rather than guessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bpcli.data.dataset import Dataset, model_linear_params
from bpcli.kinds.base import LeastSquares


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
        kappa = "infinite" if not math.isfinite(self.condition) else f"{self.condition:.2g}"
        return (f"the design has effective rank {self.rank} of {self.columns} columns (condition number "
                f"κ = {kappa}, beyond what float64 resolves), so the least-squares \"optimum\" is one of "
                "many and the distance to it means little; standardise (data.standardize: features) or "
                "drop a column that the others determine")


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
    return Optimum(params, loss, original if data.scaling is not None else None, rank, columns, condition)


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
    """The largest learning rate for which gradient descent on this data converges."""

    lr: float
    explanation: str


def stable_lr(data: Dataset, fit: LeastSquares) -> StableLR:
    """The stability bound of the kind's update on this data (full batch or per sample)."""
    if fit.per_sample:
        return _per_sample_bound(data)
    a = _design(data, fit.bias)
    # The Hessian of mean((A·θ − y)²) is H = (2/N)·AᵀA, the same everywhere. One step is
    # θ ← θ − lr·H·(θ − θ*), which shrinks every direction iff |1 − lr·λ| < 1 for every
    # eigenvalue λ of H, that is iff lr < 2/λ_max.
    hessian = (2 / len(a)) * a.T @ a
    if not bool(torch.isfinite(hessian).all()):
        return _overflowing(float(a.abs().max()))
    top = float(torch.linalg.eigvalsh(hessian).max())
    bound = 2 / top
    return StableLR(
        bound,
        f"full-batch gradient descent on this data's mean squared error converges only for "
        f"lr < 2/λ_max = {bound:.6g}, where λ_max = {top:.6g} is the largest eigenvalue of the "
        f"loss's Hessian (2/N)·AᵀA",
    )


def _per_sample_bound(data: Dataset) -> StableLR:
    # The update on sample i, w ← w − lr·2·x_i·(w·x_i − y_i), multiplies the error w − w*
    # by (1 − 2·lr·x_i²). One epoch multiplies it by c(lr) = Π_i (1 − 2·lr·x_i²); the run
    # converges iff |c(lr)| < 1. |c| starts at 1 and falls as lr grows from 0, so the bound
    # is the first lr > 0 where |c(lr)| climbs back to 1.
    x = data.x[:, 0].to(torch.float64)
    squares = (x * x)[x != 0]
    if not bool(torch.isfinite(squares).all()):
        return _overflowing(float(x.abs().max()))
    squares = squares[squares > 0]  # an x so small that its square is 0 never changes w
    if squares.numel() == 0:
        return StableLR(math.inf, "every x is 0, so the updates never change w")
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
    return StableLR(
        bound,
        f"per-sample SGD on this data converges only for lr < {bound:.6g}: each update "
        f"multiplies the error in w by (1 − 2·lr·xᵢ²), and beyond that lr one epoch's product "
        f"of these factors exceeds 1 in size (every factor stays below 1 for lr < "
        f"1/max xᵢ² = {1 / biggest:.6g})",
    )


def _overflowing(largest: float) -> StableLR:
    """The bound when the data's squares are beyond float64: no learning rate will do."""
    return StableLR(0.0, f"the squares of the data (largest |x| = {largest:.3g}) are beyond what float64 "
                         "holds, so no learning rate makes gradient descent converge")
