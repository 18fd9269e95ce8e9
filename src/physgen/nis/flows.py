"""Rational-quadratic spline coupling flows on the unit hypercube (zuko), one per channel.

Each flow maps a uniform latent on ``[0, 1]^d`` to a density on ``[0, 1]^d`` through
coupling blocks whose element-wise transforms are monotonic rational-quadratic splines
with bound 1/2 (applied to ``x - 1/2``), so the unit cube is mapped onto itself. The
masks follow the "log" scheme: block ``2b`` transforms the coordinates whose index has
bit ``b`` set, conditioned on the others, and block ``2b + 1`` the complement, so every
coordinate conditions every other one after ``2 ceil(log2 d)`` blocks. Dimension 1 is
padded with a dummy uniform coordinate.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import zuko  # type: ignore[import-untyped]
from torch import Tensor, nn

__all__ = [
    "ChannelFlows",
    "ChannelWeightNet",
    "CubeRQS",
    "make_cube_flow",
    "rqs_inverse_fraction",
    "spline_forward",
    "spline_forward_params",
    "spline_inverse",
    "spline_inverse_params",
    "spline_table",
]


_MIN_BIN = 1e-3
_MIN_SLOPE = 1e-3


def spline_table(phi: Tensor, bins: int) -> Tensor:
    """Knot table of rational-quadratic splines of ``[-1/2, 1/2]`` onto itself.

    Args:
        phi: Unconstrained parameters ``(*, 3 bins + 1)``: bin widths, bin heights, knot
            derivatives (the layout of zuko's ``shapes=[(K,), (K,), (K + 1,)]``).
        bins: Number of bins ``K``.

    Returns:
        ``(*, 3, K + 1)``: x knots, y knots and knot slopes.
    """
    k = bins
    v = phi[..., : 2 * k].reshape(*phi.shape[:-1], 2, k)
    # softmax, cumulated and normalised by its last entry; written out because
    # torch.softmax (and amax) are slow on one CPU thread for rows this short. The clamp
    # only guards exp against overflow (softmax is shift invariant; |v| < 30 in practice).
    c = torch.nn.functional.pad(torch.cumsum(torch.exp(v.clamp(-30.0, 30.0)), -1), (1, 0))
    floor = _MIN_BIN * torch.arange(k + 1, dtype=phi.dtype) - 0.5
    knots = c / c[..., -1:] * (1 - _MIN_BIN * k) + floor
    dk = _MIN_SLOPE + torch.nn.functional.softplus(phi[..., 2 * k :] + 0.5413248546129181)
    return torch.cat([knots, dk.unsqueeze(-2)], dim=-2)


def _segment(table: Tensor, v: Tensor, row: int) -> tuple[Tensor, ...]:
    """Bin of ``v`` among the knots of ``table[..., row, :]``; its end points and slopes."""
    k = (v.unsqueeze(-1) >= table[..., row, 1:-1]).sum(-1, keepdim=True)
    idx = k.unsqueeze(-2).expand(*k.shape[:-1], 3, 1)
    lo = table.gather(-1, idx).squeeze(-1)
    hi = table.gather(-1, idx + 1).squeeze(-1)
    x0, y0, d0 = lo.unbind(-1)
    x1, y1, d1 = hi.unbind(-1)
    return x0, x1 - x0, y0, y1 - y0, d0, d1


def _rqs_ladj(s: Tensor, xi: Tensor, d0: Tensor, d1: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    xi1 = xi * (1 - xi)
    den = s + (d1 + d0 - 2 * s) * xi1
    num = s * s * (d1 * xi * xi + 2 * s * xi1 + d0 * (1 - xi) ** 2)
    return xi1, den, torch.log(num) - 2 * torch.log(den)


def rqs_inverse_fraction(dy: Tensor, h: Tensor, s: Tensor, d0: Tensor, d1: Tensor) -> Tensor:
    """Position ``xi`` in ``[0, 1]`` within one rational-quadratic bin that maps to ``dy``.

    The root of the bin's quadratic (Durkan et al. 2019, eq. 6-8) in the numerically
    stable form ``2c / (-b - sqrt(b^2 - 4ac))``; ``dy = 0`` gives 0.

    Args:
        dy: Height above the bin's lower knot (any shape).
        h: Bin height; ``s`` its mean slope ``h / w``; ``d0``, ``d1`` the knot slopes.
    """
    t = d1 + d0 - 2 * s
    a = h * (s - d0) + dy * t
    b = h * d0 - dy * t
    c = -s * dy
    disc = (b * b - 4 * a * c).clamp(min=0.0)
    return ((2 * c) / (-b - torch.sqrt(disc))).nan_to_num(0.0).clamp(0.0, 1.0)


def spline_forward(table: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
    """Spline map ``x -> y`` and ``log |dy/dx|`` (both shaped like ``x``; ``table`` from
    :func:`spline_table` with one extra trailing ``(3, K + 1)``)."""
    x = x.clamp(-0.5, 0.5)
    x0, w, y0, h, d0, d1 = _segment(table, x, 0)
    s = h / w
    xi = (x - x0) / w
    xi1, den, ladj = _rqs_ladj(s, xi, d0, d1)
    return y0 + h * (s * xi * xi + d0 * xi1) / den, ladj


def spline_inverse(table: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Inverse map ``y -> x`` and the *forward* ``log |dy/dx|`` at ``x`` (one pass)."""
    y = y.clamp(-0.5, 0.5)
    x0, w, y0, h, d0, d1 = _segment(table, y, 1)
    s = h / w
    xi = rqs_inverse_fraction(y - y0, h, s, d0, d1)
    return x0 + xi * w, _rqs_ladj(s, xi, d0, d1)[2]


def _bin_knots(
    phi: Tensor, e: Tensor, cs: Tensor, total: Tensor, kk: Tensor, k: int
) -> tuple[Tensor, ...]:
    """Knots of bin ``kk`` (``(*, 1)``) of the spline with parameters ``phi``.

    ``e`` are the exponentiated bin logits ``(*, 2, K)`` (widths, heights), ``cs`` their
    cumulative sums and ``total`` ``(*, 2)`` the row sums. Returns ``(p_k, q_k, x0, y0, w,
    h, dsel, d0, d1)``: the softmax mass below the bin and of the bin ``(*, 2)``, the
    bin's lower corner, width and height, the raw slope parameters of its two knots
    ``(*, 2)`` and the slopes.
    """
    a = 1.0 - _MIN_BIN * k
    idx2 = kk.unsqueeze(-2).expand(*kk.shape[:-1], 2, 1)
    q_k = e.gather(-1, idx2).squeeze(-1) / total
    p_k = cs.gather(-1, idx2).squeeze(-1) / total - q_k
    lo = a * p_k + (_MIN_BIN * kk.to(phi.dtype) - 0.5)
    width = a * q_k + _MIN_BIN
    x0, y0 = lo.unbind(-1)
    w, h = width.unbind(-1)
    dsel = phi[..., 2 * k :].gather(-1, torch.cat([kk, kk + 1], -1)) + 0.5413248546129181
    d0, d1 = (_MIN_SLOPE + torch.nn.functional.softplus(dsel)).unbind(-1)
    return p_k, q_k, x0, y0, w, h, dsel, d0, d1


class _SplineFromParams(torch.autograd.Function):
    """:func:`spline_forward` of :func:`spline_table` in one node, with a hand-written backward.

    Only the bin that holds each point enters its value, so the forward gathers the two
    knots it needs instead of building the whole table, and the backward writes the
    gradient of the parameters in closed form (softmax-cumsum and softplus Jacobians)
    with a handful of bin-sized operations. Letting autograd trace the ~40 small
    element-wise operations instead costs about twice as much on one CPU thread. The
    clamp of the bin logits to +-30 (overflow guard) is passed straight through.
    """

    @staticmethod
    def forward(ctx: Any, phi: Tensor, x: Tensor, bins: int) -> tuple[Tensor, Tensor]:
        k = bins
        a = 1.0 - _MIN_BIN * k
        e = torch.exp(phi[..., : 2 * k].reshape(*phi.shape[:-1], 2, k).clamp(-30.0, 30.0))
        cs = torch.cumsum(e, -1)
        total = cs[..., -1]  # (*, 2)
        inside = (x >= -0.5) & (x <= 0.5)
        xc = x.clamp(-0.5, 0.5)
        # inner x knots a cs_j / S + M (j + 1) - 1/2 <= x  <=>  cs_j <= (x + 1/2 - M (j + 1)) S / a
        ar = torch.arange(1, k, dtype=phi.dtype)
        rhs = (xc + 0.5).unsqueeze(-1) - _MIN_BIN * ar
        kk = (cs[..., 0, :-1] * a <= rhs * total[..., :1]).sum(-1, keepdim=True)  # bin, (*, 1)
        p_k, q_k, x0, y0, w, h, dsel, d0, d1 = _bin_knots(phi, e, cs, total, kk, k)
        s = h / w
        xi = (xc - x0) / w
        xi1 = xi * (1 - xi)
        c = d0 + d1 - 2 * s
        den = s + c * xi1
        big_a = s * xi * xi + d0 * xi1
        big_b = d1 * xi * xi + 2 * s * xi1 + d0 * (1 - xi) ** 2
        y = y0 + h * big_a / den
        ladj = 2 * torch.log(s) + torch.log(big_b) - 2 * torch.log(den)
        ctx.bins = k
        ctx.save_for_backward(
            e, total, kk, p_k, q_k, dsel, inside, s, xi, xi1, c, den, big_a, big_b, w, h, d0, d1
        )
        return y, ladj

    @staticmethod
    def backward(ctx: Any, gy: Tensor, gl: Tensor) -> tuple[Tensor, Tensor, None]:
        (e, total, kk, p_k, q_k, dsel, inside, s, xi, xi1, c, den, big_a, big_b, w, h, d0, d1) = (
            ctx.saved_tensors
        )
        k = ctx.bins
        a = 1.0 - _MIN_BIN * k
        one_2xi = 1 - 2 * xi
        ghd = gy * h / den  # d y / d A
        ghd2 = ghd * big_a / den  # - d y / d den
        g_s = (
            ghd * xi * xi
            - ghd2 * (1 - 2 * xi1)
            + gl * (2 / s + 2 * xi1 / big_b - 2 * (1 - 2 * xi1) / den)
        )
        g_xi = (
            ghd * (2 * s * xi + d0 * one_2xi)
            - ghd2 * c * one_2xi
            + gl * (2 * (d1 * xi + s * one_2xi - d0 * (1 - xi)) / big_b - 2 * c * one_2xi / den)
        )
        g_d0 = (ghd - ghd2) * xi1 + gl * ((1 - xi) ** 2 / big_b - 2 * xi1 / den)
        g_d1 = -ghd2 * xi1 + gl * (xi * xi / big_b - 2 * xi1 / den)
        g_h = gy * big_a / den + g_s / w
        g_w = -(g_s * s + g_xi * xi) / w
        g_x0 = -g_xi / w
        g_x = torch.where(inside, g_xi / w, torch.zeros_like(g_xi))
        # row 0: x0 = a P_k + const, w = a q_k + M; row 1: y0, h likewise; P_k = sum_{i<k} q_i,
        # q = e / S: d/dv_i = q_i (g_lo [i < k] + g_wd [i = k] - (g_lo P_k + g_wd q_k)) a
        g_lo = torch.stack([g_x0, gy], -1) * (a / total)
        g_wd = torch.stack([g_w, g_h], -1) * (a / total)
        const = g_lo * p_k + g_wd * q_k
        before = torch.arange(k) < kk.unsqueeze(-1)  # (*, 1, K)
        g_v = e * torch.where(before, (g_lo - const).unsqueeze(-1), -const.unsqueeze(-1))
        idx2 = kk.unsqueeze(-2).expand(*kk.shape[:-1], 2, 1)
        g_v.scatter_add_(-1, idx2, (e.gather(-1, idx2).squeeze(-1) * g_wd).unsqueeze(-1))
        g_d = torch.zeros(*kk.shape[:-1], k + 1, dtype=e.dtype)
        g_d.scatter_add_(
            -1, torch.cat([kk, kk + 1], -1), torch.stack([g_d0, g_d1], -1) * torch.sigmoid(dsel)
        )
        return torch.cat([g_v.flatten(-2), g_d], -1), g_x, None


def spline_forward_params(phi: Tensor, x: Tensor, bins: int) -> tuple[Tensor, Tensor]:
    """``spline_forward(spline_table(phi, bins), x)`` as one autograd node (faster backward)."""
    y, ladj = _SplineFromParams.apply(phi, x, bins)  # type: ignore[no-untyped-call]
    return y, ladj


def spline_inverse_params(phi: Tensor, y: Tensor, bins: int) -> tuple[Tensor, Tensor]:
    """``spline_inverse(spline_table(phi, bins), y)`` computing only the knots it needs."""
    k = bins
    a = 1.0 - _MIN_BIN * k
    e = torch.exp(phi[..., : 2 * k].reshape(*phi.shape[:-1], 2, k).clamp(-30.0, 30.0))
    cs = torch.cumsum(e, -1)
    total = cs[..., -1]  # (*, 2)
    yc = y.clamp(-0.5, 0.5)
    inner = a * (cs[..., 1, :-1] / total[..., 1:]) + (
        _MIN_BIN * torch.arange(1, k, dtype=phi.dtype) - 0.5
    )
    kk = (yc.unsqueeze(-1) >= inner).sum(-1, keepdim=True)
    _, _, x0, y0, w, h, _, d0, d1 = _bin_knots(phi, e, cs, total, kk, k)
    s = h / w
    xi = rqs_inverse_fraction(yc - y0, h, s, d0, d1)
    return x0 + xi * w, _rqs_ladj(s, xi, d0, d1)[2]


class CubeRQS(torch.distributions.Transform):
    """Monotonic rational-quadratic spline (Durkan et al. 2019) of ``[-1/2, 1/2]`` onto itself.

    Own implementation (zuko's spline has fixed end slopes and a slow softmax on one CPU
    thread for small bin counts). All knot derivatives, including the two end points, are
    learned. The flows below call :func:`spline_forward` / :func:`spline_inverse` directly;
    this class is the same spline as a torch ``Transform`` (the univariate of zuko's
    coupling blocks).

    Args:
        widths: Unconstrained bin widths, shape ``(*, K)``.
        heights: Unconstrained bin heights, shape ``(*, K)``.
        derivatives: Unconstrained knot derivatives, shape ``(*, K + 1)``.
    """

    domain = torch.distributions.constraints.real
    codomain = torch.distributions.constraints.real
    bijective = True
    sign = +1

    def __init__(self, widths: Tensor, heights: Tensor, derivatives: Tensor) -> None:
        super().__init__()
        self.table = spline_table(torch.cat([widths, heights, derivatives], -1), widths.shape[-1])

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Forward map and ``log |dy/dx|``, both shaped like ``x``."""
        return spline_forward(self.table, x)

    def _call(self, x: Tensor) -> Tensor:
        return self.call_and_ladj(x)[0]

    def _inverse(self, y: Tensor) -> Tensor:
        return spline_inverse(self.table, y)[0]

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return self.call_and_ladj(x)[1]


def _coupling_masks(dim: int) -> list[Tensor]:
    """Boolean masks (True = transformed) of the log coupling scheme."""
    nbits = max(1, math.ceil(math.log2(dim)))
    masks = []
    for b in range(nbits):
        m = torch.tensor([(i >> b) & 1 == 1 for i in range(dim)])
        if m.all() or (~m).all():
            continue
        masks.extend([m, ~m])
    return masks


def make_cube_flow(dim: int, bins: int = 10, hidden: tuple[int, ...] = (64, 64)) -> zuko.flows.Flow:
    """Build a spline coupling flow on ``[-1/2, 1/2]^dim`` with a uniform base.

    Args:
        dim: Number of coordinates (>= 2).
        bins: Spline bins per coordinate.
        hidden: Hidden layer sizes of each coupling network.

    Returns:
        A zuko lazy flow; ``flow().log_prob(z)`` for ``z`` of shape ``(n, dim)``.
    """
    transforms = [
        zuko.flows.GeneralCouplingTransform(
            features=dim,
            mask=~mask,  # zuko's mask marks the conditioning coordinates
            univariate=CubeRQS,
            shapes=[(bins,), (bins,), (bins + 1,)],
            hidden_features=hidden,
        )
        for mask in _coupling_masks(dim)
    ]
    base = zuko.flows.UnconditionalDistribution(
        zuko.distributions.BoxUniform,
        torch.full((dim,), -0.5),
        torch.full((dim,), 0.5),
        buffer=True,
    )
    return zuko.flows.Flow(transforms, base)


class ChannelFlows(nn.Module):
    """Independent cube flows, one per channel.

    The flows are zuko coupling blocks (:func:`make_cube_flow`), but density and sampling
    run through them here in one pass each: zuko's ``rsample_and_log_prob`` evaluates
    every coupling network twice (once for the inverse, once more for its Jacobian), and
    its lazy transform objects cost more Python time than the arithmetic at these sizes.

    Args:
        dim: Dimension of the unit cube.
        n_channels: Number of channels.
        bins: Spline bins.
        hidden: Hidden layer sizes.
    """

    def __init__(
        self, dim: int, n_channels: int, bins: int = 10, hidden: tuple[int, ...] = (64, 64)
    ) -> None:
        super().__init__()
        self.dim = dim
        self.flow_dim = max(dim, 2)
        self.bins = bins
        self.flows = nn.ModuleList(
            [make_cube_flow(self.flow_dim, bins, hidden) for _ in range(n_channels)]
        )
        # Coordinates are carried in the order "conditioning, then transformed" of the
        # current block; one gather per block moves them to the next block's order.
        blocks = [
            [int(i) for i in (~m).nonzero()] + [int(i) for i in m.nonzero()]
            for m in _coupling_masks(self.flow_dim)
        ]
        self._n_cond = [int((~m).sum()) for m in _coupling_masks(self.flow_dim)]
        self._fwd_order = _reorders(list(range(self.flow_dim)), blocks)
        self._inv_order = _reorders(list(range(self.flow_dim)), blocks[::-1])

    def _params(self, channel: int, block: int, cond: Tensor) -> Tensor:
        """Spline parameters ``(n, n_moved, 3 bins + 1)`` of one coupling block."""
        flow: Any = self.flows[channel]
        t = flow.transform.transforms[block]  # a zuko GeneralCouplingTransform
        phi: Tensor = t.hyper(cond)
        return phi.reshape(cond.shape[0], -1, t.total)

    @torch.no_grad()
    def sample(self, n: int, channel: int) -> tuple[Tensor, Tensor]:
        """Draw ``n`` points of one channel.

        Returns:
            ``(z, log_q)``: points ``(n, flow_dim)`` in ``(0, 1)`` (float32) and their log
            densities ``(n,)`` (float64).
        """
        v = torch.rand(n, self.flow_dim) - 0.5  # uniform base on the centred cube
        log_q = torch.zeros(n)
        n_blocks = len(self._n_cond)
        for j, b in enumerate(reversed(range(n_blocks))):
            v = v[:, self._inv_order[j]]
            nc = self._n_cond[b]
            phi = self._params(channel, b, v[:, :nc])
            x, ladj = spline_inverse_params(phi, v[:, nc:], self.bins)
            log_q = log_q + ladj.sum(-1)
            v = torch.cat([v[:, :nc], x], -1)
        v = v[:, self._inv_order[-1]]
        return (v + 0.5).clamp(1e-7, 1 - 1e-7), log_q.to(torch.float64)

    def log_prob(self, z: Tensor, channel: int) -> Tensor:
        """Log density of points ``z`` (shape ``(n, flow_dim)`` in the unit cube); shape ``(n,)``."""
        v = z - 0.5
        log_q = torch.zeros(z.shape[0], dtype=z.dtype)
        for b, nc in enumerate(self._n_cond):
            v = v[:, self._fwd_order[b]]
            phi = self._params(channel, b, v[:, :nc])
            y, ladj = spline_forward_params(phi, v[:, nc:], self.bins)
            log_q = log_q + ladj.sum(-1)
            v = torch.cat([v[:, :nc], y], -1)
        return log_q


def _reorders(start: list[int], orders: list[list[int]]) -> list[Tensor]:
    """Gather indices taking coordinates from one order to the next (and back at the end)."""
    out, cur = [], start
    for order in [*orders, start]:
        out.append(torch.tensor([cur.index(j) for j in order]))
        cur = order
    return out


class ChannelWeightNet(nn.Module):
    """Learned correction of prior channel weights: ``alpha = prior exp(g(y)) / norm``.

    The last layer starts at zero, so training starts from the prior weights.

    Args:
        dim: Dimension of the common point ``y``.
        n_channels: Number of channels.
        hidden: Hidden units.
    """

    def __init__(self, dim: int, n_channels: int, hidden: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, hidden),
            nn.SiLU(),
            nn.Linear(hidden, hidden),
            nn.SiLU(),
            nn.Linear(hidden, n_channels),
        )
        last = self.net[-1]
        assert isinstance(last, nn.Linear)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(self, y: Tensor, prior: Tensor) -> Tensor:
        """Channel weights ``(n, n_channels)`` (float64) from points ``y`` and priors."""
        corr = self.net(y.to(torch.float32)).to(torch.float64)
        logits = torch.log(prior.clamp(min=1e-300)) + corr
        return torch.softmax(logits, dim=-1)
