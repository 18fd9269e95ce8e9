"""An own implementation of the VEGAS adaptive map (separable importance sampling).

The map is a piecewise-linear, per-axis warp ``u -> x`` of the unit cube with ``bins``
increments per axis; training moves the increment edges so that each increment carries
the same share of ``sum (f * jac)^2`` (Lepage 1978), with the usual smoothing and damping
``((1 - d)/ln(1/d))^alpha``. Everything is float64.

A trained map can be *smoothed* (:meth:`VegasMap.smoothed`): the same increments (every
increment keeps its probability ``1/bins``), but joined by a monotone rational-quadratic
spline whose slope at each edge is the geometric mean of the two neighbouring increment
slopes. Its density is continuous, where the classic map's density jumps at every edge
(by large factors where the grid follows a steep fall-off). A flow composed with the
grid has to undo those jumps, which a smooth spline flow can only do approximately; the
residue shows up as a broad weight distribution (lower unweighting efficiency).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from physgen.errors import ConfigError
from physgen.nis.flows import rqs_inverse_fraction

__all__ = ["VegasMap", "train_vegas"]


class VegasMap:
    """Separable adaptive grid on ``[0, 1]^dim``.

    Args:
        dim: Number of axes.
        bins: Increments per axis (>= 2).
        smooth: Join the increments by the monotone spline of :meth:`smoothed` (continuous
            density) instead of straight lines.
    """

    def __init__(self, dim: int, bins: int = 64, smooth: bool = False) -> None:
        if dim < 1:
            raise ConfigError(f"vegas: dim must be >= 1, got {dim}")
        if bins < 2:
            raise ConfigError(f"vegas: bins must be >= 2, got {bins}")
        self.dim = dim
        self.bins = bins
        self.smooth = smooth
        self.edges = torch.linspace(0.0, 1.0, bins + 1, dtype=torch.float64).repeat(dim, 1)

    def smoothed(self) -> VegasMap:
        """A copy with the same increments and a continuous density (see the module doc)."""
        out = VegasMap(self.dim, self.bins, smooth=True)
        out.edges = self.edges.clone()
        return out

    def _spline(self) -> tuple[Tensor, Tensor]:
        """Increment slopes ``dx/du`` ``(dim, bins)`` and knot slopes ``(dim, bins + 1)``."""
        slope = ((self.edges[:, 1:] - self.edges[:, :-1]) * self.bins).clamp(min=1e-300)
        inner = torch.sqrt(slope[:, 1:] * slope[:, :-1])
        knots = torch.cat([slope[:, :1], inner, slope[:, -1:]], dim=1)
        return slope, knots

    def map(self, u: Tensor) -> tuple[Tensor, Tensor]:
        """Push unit-cube points through the grid.

        Args:
            u: Points, shape ``(n, dim)`` in ``[0, 1]``.

        Returns:
            ``(x, jac)``: mapped points ``(n, dim)`` and ``|dx/du|`` with shape ``(n,)``.
        """
        u = u.to(torch.float64)
        scaled = u * self.bins
        idx = scaled.floor().long().clamp(0, self.bins - 1)
        frac = scaled - idx
        widths = self.edges[:, 1:] - self.edges[:, :-1]  # (dim, bins)
        lo = _take(self.edges[:, :-1], idx)
        wd = _take(widths, idx)
        if not self.smooth:
            x = (lo + wd * frac).clamp(0.0, 1.0)
            jac = torch.prod(self.bins * wd, dim=-1)
            return x, jac
        slope, knots = self._spline()
        s, d0, d1 = _take(slope, idx), _take(knots[:, :-1], idx), _take(knots[:, 1:], idx)
        xi1 = frac * (1 - frac)
        den = s + (d1 + d0 - 2 * s) * xi1
        x = (lo + wd * (s * frac * frac + d0 * xi1) / den).clamp(0.0, 1.0)
        num = s * s * (d1 * frac * frac + 2 * s * xi1 + d0 * (1 - frac) ** 2)
        return x, torch.prod(num / (den * den), dim=-1)

    def inverse(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Inverse map: ``u`` with ``map(u) = x`` and ``|dx/du|`` at that point.

        Args:
            x: Points, shape ``(n, dim)`` in ``[0, 1]``.

        Returns:
            ``(u, jac)``: ``(n, dim)`` in ``[0, 1]`` and ``(n,)`` (float64).
        """
        x = x.to(torch.float64)
        i = torch.stack(
            [
                torch.searchsorted(self.edges[a], x[:, a].contiguous(), right=True) - 1
                for a in range(self.dim)
            ],
            dim=1,
        ).clamp(0, self.bins - 1)
        lo = _take(self.edges[:, :-1], i)
        wd = _take(self.edges[:, 1:] - self.edges[:, :-1], i).clamp(min=1e-300)
        if not self.smooth:
            u = (i + (x - lo) / wd) / self.bins
            return u.clamp(0.0, 1.0), torch.prod(self.bins * wd, dim=-1)
        slope, knots = self._spline()
        s, d0, d1 = _take(slope, i), _take(knots[:, :-1], i), _take(knots[:, 1:], i)
        xi = rqs_inverse_fraction((x - lo).clamp(min=0.0), wd, s, d0, d1)
        xi1 = xi * (1 - xi)
        den = s + (d1 + d0 - 2 * s) * xi1
        num = s * s * (d1 * xi * xi + 2 * s * xi1 + d0 * (1 - xi) ** 2)
        u = ((i + xi) / self.bins).clamp(0.0, 1.0)
        return u, torch.prod(num / (den * den), dim=-1)

    def bin_index(self, u: Tensor) -> Tensor:
        """Increment index of each coordinate, shape ``(n, dim)``."""
        return (u * self.bins).floor().long().clamp(0, self.bins - 1)

    def adapt(self, u: Tensor, w2: Tensor, alpha: float = 0.5) -> None:
        """Refine the grid from samples.

        Args:
            u: Unit-cube points that were mapped, shape ``(n, dim)``.
            w2: Squared weights ``(f * jac)^2`` of those points, shape ``(n,)``.
            alpha: Damping exponent (0 = no adaptation).
        """
        idx = self.bin_index(u)
        w2 = w2.to(torch.float64)
        new_edges = torch.empty_like(self.edges)
        for a in range(self.dim):
            d = torch.zeros(self.bins, dtype=torch.float64)
            d.index_add_(0, idx[:, a], w2)
            if not bool(d.sum() > 0):
                new_edges[a] = self.edges[a]
                continue
            # smoothing with neighbours
            sm = d.clone()
            sm[1:-1] = (d[:-2] + 6 * d[1:-1] + d[2:]) / 8
            sm[0] = (7 * d[0] + d[1]) / 8
            sm[-1] = (d[-2] + 7 * d[-1]) / 8
            sm = sm / sm.sum()
            pos = sm > 0
            r = torch.zeros_like(sm)
            r[pos] = ((1 - sm[pos]) / torch.log(1 / sm[pos])) ** alpha
            if not bool(r.sum() > 0):
                new_edges[a] = self.edges[a]
                continue
            new_edges[a] = _redistribute(self.edges[a], r)
        self.edges = new_edges

    def state(self) -> Tensor:
        """The grid edges, shape ``(dim, bins + 1)`` (copy); with :attr:`smooth` they define
        the map completely."""
        return self.edges.clone()


def _take(table: Tensor, idx: Tensor) -> Tensor:
    """``out[n, a] = table[a, idx[n, a]]`` for a per-axis table ``(dim, k)``."""
    return torch.gather(table.expand(idx.shape[0], -1, -1), 2, idx[..., None])[..., 0]


def _redistribute(edges: Tensor, r: Tensor) -> Tensor:
    """New edges such that each new increment holds the same amount of ``r``."""
    bins = r.shape[0]
    cum = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(r, 0)])
    targets = torch.linspace(0.0, float(cum[-1]), bins + 1, dtype=torch.float64)[1:-1]
    j = torch.searchsorted(cum, targets, right=True).clamp(1, bins) - 1
    frac = (targets - cum[j]) / r[j].clamp(min=1e-300)
    inner = edges[j] + frac.clamp(0, 1) * (edges[j + 1] - edges[j])
    out = torch.cat([edges[:1], inner, edges[-1:]])
    # keep strictly increasing
    return torch.cummax(out, 0).values


def train_vegas(
    f: Callable[[Tensor], Tensor],
    dim: int,
    calls: int,
    iterations: int,
    generator: torch.Generator,
    bins: int = 64,
    alpha: float = 0.5,
    anneal_start: float = 1.0,
) -> tuple[VegasMap, int]:
    """Adapt a :class:`VegasMap` to ``|f|``.

    Args:
        f: Integrand on the unit cube (checked values, float64), ``(n, dim) -> (n,)``.
        dim: Dimension.
        calls: Total integrand calls spent on adaptation.
        iterations: Number of adaptation iterations (calls split evenly).
        generator: Random generator (seeded).
        bins: Increments per axis.
        alpha: Damping exponent.
        anneal_start: Exponent ``b`` of the tempered target ``|f|^b`` used in the first
            iteration, raised linearly to 1 at the last: a broad first grid sees every mode
            (at d = 8 a greedy first iteration can lock onto one camel peak). 1 = off.

    Returns:
        The adapted map and the number of integrand calls used.
    """
    vmap = VegasMap(dim, bins)
    if iterations < 1 or calls < iterations:
        return vmap, 0
    n = calls // iterations
    used = 0
    for it in range(iterations):
        u = torch.rand(n, dim, generator=generator, dtype=torch.float64)
        x, jac = vmap.map(u)
        b = 1.0 if iterations == 1 else anneal_start + (1 - anneal_start) * it / (iterations - 1)
        w = f(x).abs() ** b * jac
        used += n
        vmap.adapt(u, w * w, alpha)
    return vmap, used
