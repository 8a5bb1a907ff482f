"""`source: moons`, `circles`, `xor`, `gauss`, `spiral`: two classes of points in the plane.

The classic toy sets of classification, drawn by bpcli itself from the run's generator
(data before parameters, as every source), so that a seed reproduces them: moons and
circles as scikit-learn's make_moons and make_circles lay them out, xor, gauss and spiral
as TensorFlow Playground draws them, scaled to about the unit square. Each set has two
features, x1 and x2, and two classes, "0" and "1" (y = 1 is the positive class).

Every set is drawn in the same order: the noise-free points, then Gaussian noise of
standard deviation `noise` on both coordinates (drawn even when noise is 0, so that a
sweep over data.noise moves the same points further along the same directions), then a
shuffle, so that the classes are interleaved rather than in two blocks. A class is decided
by the noise-free point: noise moves points across the boundary, it never relabels them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

from pydantic import Field

from bpcli.errors import DataError
from bpcli.section import Section

if TYPE_CHECKING:
    import torch

    from bpcli.data.dataset import Dataset

MAX_N = 100_000_000
"""The most points a generated set may hold."""

XOR_MARGIN = 0.06
"""How far xor's points are pushed off the axes: Playground pads its square of half-width
5 by 0.3, the same 6 %."""


class MoonsData(Section):
    """Two interleaving half circles (scikit-learn's make_moons), drawn with the run's seed."""

    source: Literal["moons"] = "moons"
    """Where the data comes from: `moons` lays out two half circles and adds noise."""
    n: int = Field(100, ge=2, le=MAX_N)
    """Number of points: n//2 on the upper moon (class 0), the rest on the lower (class 1)."""
    noise: float = Field(0.1, ge=0.0)
    """Standard deviation of the Gaussian noise added to each coordinate (0.1, as in
    micrograd's demo; 0 puts every point on its arc)."""


class CirclesData(Section):
    """Two concentric circles (scikit-learn's make_circles), drawn with the run's seed."""

    source: Literal["circles"] = "circles"
    """Where the data comes from: `circles` lays out two circles and adds noise."""
    n: int = Field(100, ge=2, le=MAX_N)
    """Number of points: n//2 on the outer circle (class 0), the rest on the inner (class 1)."""
    noise: float = Field(0.05, ge=0.0)
    """Standard deviation of the Gaussian noise added to each coordinate."""
    factor: float = Field(0.5, ge=0.0, lt=1.0)
    """Radius of the inner circle; the outer one has radius 1 (scikit-learn's default is 0.8,
    its examples use 0.5)."""


class XorData(Section):
    """Points in a square, of class 1 where x1·x2 > 0 (TensorFlow Playground's xor), drawn with the run's seed."""

    source: Literal["xor"] = "xor"
    """Where the data comes from: `xor` draws points in a square and labels them by quadrant."""
    n: int = Field(200, ge=2, le=MAX_N)
    """Number of points."""
    noise: float = Field(0.05, ge=0.0)
    """Standard deviation of the Gaussian noise added to each coordinate after labelling
    (0: every point lies in the quadrant of its class, at least 0.06 off the axes)."""


class GaussData(Section):
    """Two Gaussian blobs around (−1, −1) and (1, 1) (TensorFlow Playground's), drawn with the run's seed."""

    source: Literal["gauss"] = "gauss"
    """Where the data comes from: `gauss` draws two blobs of points."""
    n: int = Field(100, ge=2, le=MAX_N)
    """Number of points: n//2 around (−1, −1) (class 0), the rest around (1, 1) (class 1)."""
    noise: float = Field(0.5, ge=0.0)
    """Standard deviation of each blob along each coordinate (0 puts every point on its centre)."""


class SpiralData(Section):
    """Two interleaved spirals (TensorFlow Playground's), drawn with the run's seed."""

    source: Literal["spiral"] = "spiral"
    """Where the data comes from: `spiral` lays out two spiral arms and adds noise."""
    n: int = Field(200, ge=2, le=MAX_N)
    """Number of points: n//2 on one arm (class 0), the rest on the other (class 1)."""
    noise: float = Field(0.02, ge=0.0)
    """Standard deviation of the Gaussian noise added to each coordinate (the arms lie about
    0.29 apart, so that 0.05 already blurs the centre)."""


def _halves(n: int) -> tuple[int, int]:
    """How many points each class gets: n//2 for class 0, the rest for class 1 (as scikit-learn)."""
    return n // 2, n - n // 2


def _labels(counts: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """counts[0] zeros then counts[1] ones."""
    import torch

    return torch.cat([torch.zeros(counts[0], dtype=dtype), torch.ones(counts[1], dtype=dtype)])


def _steps(count: int, dtype: torch.dtype) -> torch.Tensor:
    """0, 1/count, …, (count − 1)/count: `count` evenly spaced fractions of a turn, end excluded."""
    import torch

    return torch.arange(count, dtype=dtype) / count


def _drawn(source: str, clean: torch.Tensor, y: torch.Tensor, noise: float,
           generator: torch.Generator, dtype: torch.dtype) -> Dataset:
    """The set: noise added to the noise-free points, shuffled, and checked."""
    import torch

    WORK = torch.float64  # every set is drawn in float64, then rounded to the run's dtype

    from bpcli.data.dataset import Dataset
    from bpcli.data.limits import beyond, check_values, fix

    check_values({"data.noise": noise}, dtype)
    # x = clean + noise·z, z ~ N(0, I): the noise is drawn first, then the order. Every set is
    # drawn in float64 and then rounded to the run's dtype, so that float32 and float64 runs
    # of one seed train on the same points.
    x = clean + noise * torch.randn(clean.shape, dtype=WORK, generator=generator)
    order = torch.randperm(len(y), generator=generator)
    x, y = x[order].to(dtype), y[order].to(dtype)
    finite = torch.isfinite(x).all(1)
    if not bool(finite.all()):
        count = int((~finite).sum())
        raise DataError(f"data: noise·N(0, 1) with data.noise = {noise:g} overflows {beyond(dtype)} at {count} of "
                        f"{len(y)} points of source: {source}; lower data.noise, or {fix(dtype)}")
    ones = int(y.sum())
    if ones in (0, len(y)):
        raise DataError(f"data: all {len(y)} points drawn for source: {source} fall in class {int(ones > 0)}, "
                        "and a classifier needs both classes; draw more points (data.n) or change the seed")
    return Dataset(x, y, None, feature_names=["x1", "x2"], classes=["0", "1"])


def build_moons(cfg: MoonsData, generator: torch.Generator, dtype: torch.dtype) -> Dataset:
    """Two half circles of radius 1, shifted so that each reaches into the other."""
    import torch

    WORK = torch.float64  # every set is drawn in float64, then rounded to the run's dtype

    upper, lower = _halves(cfg.n)
    # Angles evenly spaced over [0, π], both ends included (linspace, as scikit-learn):
    # class 0, the upper moon: (cos t, sin t), on the circle of radius 1 around (0, 0);
    # class 1, the lower moon: (1 − cos t, 1/2 − sin t), on the circle around (1, 1/2).
    t0 = torch.linspace(0, math.pi, upper, dtype=WORK)
    t1 = torch.linspace(0, math.pi, lower, dtype=WORK)
    clean = torch.cat([torch.stack([torch.cos(t0), torch.sin(t0)], 1),
                       torch.stack([1 - torch.cos(t1), 0.5 - torch.sin(t1)], 1)])
    return _drawn("moons", clean, _labels((upper, lower), dtype), cfg.noise, generator, dtype)


def build_circles(cfg: CirclesData, generator: torch.Generator, dtype: torch.dtype) -> Dataset:
    """Two circles around the origin, of radius 1 (class 0) and factor (class 1)."""
    import torch

    WORK = torch.float64  # every set is drawn in float64, then rounded to the run's dtype

    outer, inner = _halves(cfg.n)
    # Angles evenly spaced over a turn, 2π excluded (it would repeat 0): t = 2π·k/count.
    # Class 0: (cos t, sin t), radius 1; class 1: factor·(cos t, sin t), radius factor.
    t0 = 2 * math.pi * _steps(outer, WORK)
    t1 = 2 * math.pi * _steps(inner, WORK)
    clean = torch.cat([torch.stack([torch.cos(t0), torch.sin(t0)], 1),
                       cfg.factor * torch.stack([torch.cos(t1), torch.sin(t1)], 1)])
    return _drawn("circles", clean, _labels((outer, inner), dtype), cfg.noise, generator, dtype)


def build_xor(cfg: XorData, generator: torch.Generator, dtype: torch.dtype) -> Dataset:
    """Points drawn uniformly in a square, labelled by the sign of x1·x2."""
    import torch

    WORK = torch.float64  # every set is drawn in float64, then rounded to the run's dtype

    # u ~ U[−1, 1)², each coordinate then pushed XOR_MARGIN away from 0 (0 counts as
    # negative, as in Playground): x = u + margin·(1 if u > 0 else −1), so |x| ≥ margin.
    u = torch.empty(cfg.n, 2, dtype=WORK).uniform_(-1.0, 1.0, generator=generator)
    clean = u + XOR_MARGIN * torch.where(u > 0, 1.0, -1.0).to(WORK)
    # Class 1 where the signs agree (quadrants I and III): x1·x2 > 0; class 0 where they differ.
    y = (clean[:, 0] * clean[:, 1] > 0).to(WORK)
    return _drawn("xor", clean, y, cfg.noise, generator, dtype)


def build_gauss(cfg: GaussData, generator: torch.Generator, dtype: torch.dtype) -> Dataset:
    """Two blobs: each point is its class's centre plus noise·N(0, I)."""
    import torch

    WORK = torch.float64  # every set is drawn in float64, then rounded to the run's dtype

    low, high = _halves(cfg.n)
    # Class 0 around (−1, −1), class 1 around (1, 1); the noise is the blobs' spread.
    centres = torch.tensor([[-1.0, -1.0], [1.0, 1.0]], dtype=WORK)
    y = _labels((low, high), dtype)
    return _drawn("gauss", centres[y.long()], y, cfg.noise, generator, dtype)


def build_spiral(cfg: SpiralData, generator: torch.Generator, dtype: torch.dtype) -> Dataset:
    """Two spiral arms winding out from the origin, half a turn apart."""
    import torch

    WORK = torch.float64  # every set is drawn in float64, then rounded to the run's dtype

    counts = _halves(cfg.n)
    arms = []
    for count, phase in zip(counts, (math.pi, 0.0)):
        # Playground's spiral, scaled to radius 1: the k-th of `count` points lies at radius
        # r = (k + 1)/count and angle t = 1.75·2π·r + phase, at (r·sin t, r·cos t); 1.75
        # turns per arm, class 1 at phase 0 and class 0 at phase π. Playground starts at
        # r = 0, where both arms would share the origin under two labels; here the first
        # point lies one step out.
        r = _steps(count, WORK) + 1 / count
        t = 1.75 * 2 * math.pi * r + phase
        arms.append(torch.stack([r * torch.sin(t), r * torch.cos(t)], 1))
    return _drawn("spiral", torch.cat(arms), _labels(counts, WORK), cfg.noise, generator, dtype)
