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

import torch
import zuko  # type: ignore[import-untyped]
from torch import Tensor, nn

__all__ = ["ChannelFlows", "ChannelWeightNet", "CubeRQS", "make_cube_flow"]


_MIN_BIN = 1e-3
_MIN_SLOPE = 1e-3


class CubeRQS(torch.distributions.Transform):
    """Monotonic rational-quadratic spline (Durkan et al. 2019) of ``[-1/2, 1/2]`` onto itself.

    Own implementation (the softmax of zuko's version is slow on one CPU thread for
    small bin counts). All knot derivatives, including the two end points, are learned.

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
        k = widths.shape[-1]
        w = _MIN_BIN + (1 - _MIN_BIN * k) * _softmax(widths)
        h = _MIN_BIN + (1 - _MIN_BIN * k) * _softmax(heights)
        zero = torch.zeros_like(w[..., :1])
        self.xk = torch.cat([zero, torch.cumsum(w, -1)], -1) - 0.5
        self.yk = torch.cat([zero, torch.cumsum(h, -1)], -1) - 0.5
        self.xk[..., -1] = 0.5
        self.yk[..., -1] = 0.5
        self.dk = _MIN_SLOPE + torch.nn.functional.softplus(derivatives + 0.5413248546129181)

    def _bin(self, knots: Tensor, v: Tensor) -> tuple[Tensor, ...]:
        k = torch.searchsorted(knots, v[..., None].contiguous()).clamp(1, knots.shape[-1] - 1) - 1
        x0 = self.xk.gather(-1, k)[..., 0]
        x1 = self.xk.gather(-1, k + 1)[..., 0]
        y0 = self.yk.gather(-1, k)[..., 0]
        y1 = self.yk.gather(-1, k + 1)[..., 0]
        d0 = self.dk.gather(-1, k)[..., 0]
        d1 = self.dk.gather(-1, k + 1)[..., 0]
        return x0, x1 - x0, y0, y1 - y0, d0, d1

    def call_and_ladj(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Forward map and ``log |dy/dx|``, both shaped like ``x``."""
        x = x.clamp(-0.5, 0.5)
        x0, w, y0, h, d0, d1 = self._bin(self.xk, x)
        s = h / w
        xi = (x - x0) / w
        xi1 = xi * (1 - xi)
        den = s + (d1 + d0 - 2 * s) * xi1
        y = y0 + h * (s * xi * xi + d0 * xi1) / den
        num = s * s * (d1 * xi * xi + 2 * s * xi1 + d0 * (1 - xi) ** 2)
        return y, torch.log(num) - 2 * torch.log(den)

    def _call(self, x: Tensor) -> Tensor:
        return self.call_and_ladj(x)[0]

    def _inverse(self, y: Tensor) -> Tensor:
        y = y.clamp(-0.5, 0.5)
        x0, w, y0, h, d0, d1 = self._bin(self.yk, y)
        s = h / w
        dy = y - y0
        t = d1 + d0 - 2 * s
        a = h * (s - d0) + dy * t
        b = h * d0 - dy * t
        c = -s * dy
        disc = (b * b - 4 * a * c).clamp(min=0.0)
        xi = (2 * c) / (-b - torch.sqrt(disc))
        return x0 + xi.clamp(0.0, 1.0) * w

    def log_abs_det_jacobian(self, x: Tensor, y: Tensor) -> Tensor:
        return self.call_and_ladj(x)[1]


def _softmax(v: Tensor) -> Tensor:
    e = torch.exp(v - v.amax(-1, keepdim=True))
    return e / e.sum(-1, keepdim=True)


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
        self.flows = nn.ModuleList(
            [make_cube_flow(self.flow_dim, bins, hidden) for _ in range(n_channels)]
        )

    @torch.no_grad()
    def sample(self, n: int, channel: int) -> tuple[Tensor, Tensor]:
        """Draw ``n`` points of one channel.

        Returns:
            ``(z, log_q)``: points ``(n, flow_dim)`` in ``(0, 1)`` (float32) and their log
            densities ``(n,)`` (float64).
        """
        dist = self.flows[channel]()
        z, log_q = dist.rsample_and_log_prob((n,))
        z = (z + 0.5).clamp(1e-7, 1 - 1e-7)
        return z, log_q.to(torch.float64)

    def log_prob(self, z: Tensor, channel: int) -> Tensor:
        """Log density of points ``z`` (shape ``(n, flow_dim)`` in the unit cube); shape ``(n,)``."""
        out: Tensor = self.flows[channel]().log_prob(z - 0.5)
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
