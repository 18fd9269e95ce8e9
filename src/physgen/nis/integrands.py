"""Integrands on the unit hypercube: the protocol, input checks and the toy built-ins.

An integrand is a batched function ``f(x)`` of points ``x`` with shape ``(n, dim)``
in ``[0, 1]^dim`` (float64) that returns ``n`` float64 values. A multi-channel
integrand additionally knows ``n_channels`` analytic mappings from the unit cube
to its own unit cube (with Jacobians) and prior channel weights, as MadGraph
builds them from Feynman diagrams (single-diagram enhancement).

Physics processes (:mod:`physgen.nis.processes`) are multi-channel integrands that
also turn a point into four-momenta for event files.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from physgen.errors import ConfigError, PhysgenError

__all__ = [
    "BreitWigner",
    "Camel",
    "DrellYanLike",
    "Integrand",
    "IntegrandError",
    "MultiChannelIntegrand",
    "Polynomial",
    "Ring",
    "SingleChannel",
    "evaluate_checked",
    "wrap_function",
]


class IntegrandError(PhysgenError):
    """An integrand returned values of the wrong shape, NaN/inf or unexpected negatives."""


@runtime_checkable
class Integrand(Protocol):
    """A batched function on the unit hypercube.

    Attributes:
        name: Short name used in messages and result files.
        dim: Number of integration variables.
        exact: Exact (or high-statistics reference) value of the integral, if known.
        exact_error: Uncertainty of ``exact`` (0 for an analytic value).
        unit: Unit of the integral (``"1"`` for toys, ``"pb"`` for cross sections).
    """

    name: str
    dim: int
    exact: float | None
    exact_error: float
    unit: str

    def __call__(self, x: Tensor) -> Tensor:
        """Evaluate ``f`` on points ``x`` of shape ``(n, dim)``; returns shape ``(n,)``."""
        ...


class MultiChannelIntegrand:
    """Base class of integrands with analytic channel mappings and prior channel weights.

    ``__call__(y)`` is the integrand on the common unit cube ``y``. Channel ``c`` maps
    a unit-cube point ``x`` to ``y = map_c(x)`` with Jacobian ``|dy/dx|``, and the
    multi-channel decomposition is ``I = sum_c int alpha_c(y) f(y) dy`` with the prior
    weights ``alpha_c(y)`` summing to one.
    """

    name: str = "multichannel"
    dim: int = 1
    n_channels: int = 1
    exact: float | None = None
    exact_error: float = 0.0
    unit: str = "1"

    def __call__(self, y: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def channel_map(self, x: Tensor, channel: int) -> tuple[Tensor, Tensor]:
        """Map unit-cube points of one channel to the common cube.

        Args:
            x: Points, shape ``(n, dim)``, float64 in ``[0, 1]``.
            channel: Channel index in ``[0, n_channels)``.

        Returns:
            ``(y, jac)``: mapped points ``(n, dim)`` and ``|dy/dx|`` with shape ``(n,)``.
        """
        return x, torch.ones(x.shape[0], dtype=x.dtype)

    def prior(self, y: Tensor) -> Tensor:
        """Prior channel weights ``alpha_c(y)``, shape ``(n, n_channels)``, rows summing to 1."""
        return torch.full((y.shape[0], self.n_channels), 1.0 / self.n_channels, dtype=y.dtype)


class SingleChannel(MultiChannelIntegrand):
    """View of a plain integrand as a one-channel integrand with the identity mapping."""

    def __init__(self, integrand: Integrand) -> None:
        self.inner = integrand
        self.name = integrand.name
        self.dim = integrand.dim
        self.n_channels = 1
        self.exact = integrand.exact
        self.exact_error = integrand.exact_error
        self.unit = integrand.unit

    def __call__(self, y: Tensor) -> Tensor:
        return self.inner(y)


class _FunctionIntegrand:
    """A user callable wrapped into the :class:`Integrand` protocol."""

    def __init__(self, fn: Callable[[Tensor], Tensor], dim: int, name: str) -> None:
        self.fn = fn
        self.dim = dim
        self.name = name
        self.exact: float | None = None
        self.exact_error = 0.0
        self.unit = "1"

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x)


def wrap_function(fn: Callable[[Tensor], Tensor], dim: int, name: str = "function") -> Integrand:
    """Wrap a batched callable ``x (n, dim) -> f (n,)`` as an :class:`Integrand`."""
    if dim < 1:
        raise ConfigError(f"dim must be >= 1, got {dim}")
    return _FunctionIntegrand(fn, dim, name)


def evaluate_checked(
    f: Callable[[Tensor], Tensor], x: Tensor, name: str, allow_negative: bool = False
) -> Tensor:
    """Call an integrand and check its output.

    Args:
        f: The integrand.
        x: Points, shape ``(n, dim)`` float64.
        name: Integrand name for messages.
        allow_negative: Accept negative values (signed weights) instead of refusing them.

    Returns:
        Values, shape ``(n,)`` float64.

    Raises:
        IntegrandError: Wrong type/shape, NaN or inf, or negative values when not allowed.
    """
    try:
        out = f(x)
    except (IndexError, RuntimeError, ValueError) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise IntegrandError(
            f"integrand '{name}' failed on input of shape {tuple(x.shape)} "
            f"(dimension mismatch?): {msg}"
        ) from exc
    if not isinstance(out, Tensor):
        raise IntegrandError(
            f"integrand '{name}' must return a torch.Tensor, got {type(out).__name__}"
        )
    n = x.shape[0]
    if out.shape != (n,):
        raise IntegrandError(
            f"integrand '{name}' returned shape {tuple(out.shape)}, expected ({n},) for input "
            f"of shape {tuple(x.shape)}"
        )
    out = out.to(torch.float64)
    bad = ~torch.isfinite(out)
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0, 0])
        raise IntegrandError(
            f"integrand '{name}' returned {int(bad.sum())} non-finite values (NaN/inf), first "
            f"at x={[round(v, 6) for v in x[i].tolist()]}"
        )
    if not allow_negative and bool((out < 0).any()):
        raise IntegrandError(
            f"integrand '{name}' returned {int((out < 0).sum())} negative values (min "
            f"{float(out.min()):.4g}); negative weights must be requested explicitly with "
            "allow_negative=True (--allow-negative)"
        )
    return out


# --------------------------------------------------------------------------- toys


class Camel:
    """Two Gaussians on the diagonal at 1/3 and 2/3 (i-flow convention, ``a = 0.1``).

    ``f(x) = 1/2 (a sqrt(pi))^-d [exp(-|x - 1/3|^2/a^2) + exp(-|x - 2/3|^2/a^2)]``;
    exact integral ``[(erf(2/(3a)) + erf(1/(3a)))/2]^d``.
    """

    unit = "1"
    exact_error = 0.0

    def __init__(self, dim: int = 2, width: float = 0.1) -> None:
        if dim < 1:
            raise ConfigError(f"camel: dim must be >= 1, got {dim}")
        self.dim = dim
        self.width = width
        self.name = f"camel{dim}"
        self.exact: float | None = (
            0.5 * (math.erf(2.0 / (3.0 * width)) + math.erf(1.0 / (3.0 * width)))
        ) ** dim
        self._norm = 0.5 * (width * math.sqrt(math.pi)) ** (-dim)

    def __call__(self, x: Tensor) -> Tensor:
        a2 = self.width**2
        d1 = ((x - 1.0 / 3.0) ** 2).sum(-1) / a2
        d2 = ((x - 2.0 / 3.0) ** 2).sum(-1) / a2
        return self._norm * (torch.exp(-d1) + torch.exp(-d2))


class Ring:
    """Gaussian annulus in the first two coordinates (flat in the others).

    ``f(x) = N exp(-(r - r0)^2 / (2 w^2))`` with ``r`` the distance of ``(x1, x2)`` from
    ``(1/2, 1/2)``, ``r0 = 0.25``, ``w = 0.04``, normalised so that the integral over the
    plane is 1; the part outside the unit square is below 1e-9, so ``exact = 1``.
    """

    unit = "1"
    exact_error = 1e-9

    def __init__(self, dim: int = 2, radius: float = 0.25, width: float = 0.04) -> None:
        if dim < 2:
            raise ConfigError(f"ring: dim must be >= 2, got {dim}")
        self.dim = dim
        self.name = f"ring{dim}"
        self.radius = radius
        self.width = width
        r0, w = radius, width
        plane = (
            2
            * math.pi
            * (
                w * w * math.exp(-(r0 * r0) / (2 * w * w))
                + r0 * w * math.sqrt(math.pi / 2) * (1 + math.erf(r0 / (w * math.sqrt(2))))
            )
        )
        self._norm = 1.0 / plane
        self.exact: float | None = 1.0

    def __call__(self, x: Tensor) -> Tensor:
        r = torch.sqrt((x[:, 0] - 0.5) ** 2 + (x[:, 1] - 0.5) ** 2)
        return self._norm * torch.exp(-((r - self.radius) ** 2) / (2 * self.width**2))


class Polynomial:
    """``f(x) = prod_i 6 x_i (1 - x_i)``; exact integral 1 in any dimension."""

    unit = "1"
    exact_error = 0.0

    def __init__(self, dim: int = 2) -> None:
        if dim < 1:
            raise ConfigError(f"polynomial: dim must be >= 1, got {dim}")
        self.dim = dim
        self.name = f"polynomial{dim}"
        self.exact: float | None = 1.0

    def __call__(self, x: Tensor) -> Tensor:
        return torch.prod(6.0 * x * (1.0 - x), dim=-1)


class BreitWigner:
    """Breit-Wigner peak ``(G/2pi) / ((x1 - M)^2 + G^2/4)`` in ``x1`` (flat in the others).

    Defaults ``M = 0.5``, ``G = 0.01``; exact integral
    ``[atan(2(1 - M)/G) + atan(2M/G)] / pi``.
    """

    unit = "1"
    exact_error = 0.0

    def __init__(self, dim: int = 1, mass: float = 0.5, gamma: float = 0.01) -> None:
        if dim < 1:
            raise ConfigError(f"breit-wigner: dim must be >= 1, got {dim}")
        self.dim = dim
        self.name = f"breit-wigner{dim}"
        self.mass = mass
        self.gamma = gamma
        self.exact: float | None = (
            math.atan(2 * (1 - mass) / gamma) + math.atan(2 * mass / gamma)
        ) / math.pi

    def __call__(self, x: Tensor) -> Tensor:
        g = self.gamma
        return (g / (2 * math.pi)) / ((x[:, 0] - self.mass) ** 2 + g * g / 4)


# --------------------------------------------------------------------- Drell-Yan-like

_MZ, _GZ = 91.1876, 2.4952
_MP, _GP = 400.0, 4.0
_SQRT_S_HADRON = 13000.0
_S_MIN, _S_MAX = 60.0**2, 600.0**2
_DY_RAW_REFERENCE = 0.02300763
_DY_RAW_REFERENCE_ERR = 7e-8


def _bw_map(x: Tensor, mass: float, width: float) -> tuple[Tensor, Tensor]:
    """Arctan Breit-Wigner mapping of ``x`` in [0,1] to ``s`` in ``[S_MIN, S_MAX]``.

    Returns ``(s, ds/dx)`` in GeV^2; float64 throughout (float32 is too coarse near the ends).
    """
    mg = mass * width
    lo = math.atan((_S_MIN - mass * mass) / mg)
    hi = math.atan((_S_MAX - mass * mass) / mg)
    t = lo + (hi - lo) * x
    s = mass * mass + mg * torch.tan(t)
    ds = (hi - lo) * mg / torch.cos(t) ** 2
    return s, ds


def _bw_density(s: Tensor, mass: float, width: float) -> Tensor:
    """Inverse of ``ds/dx`` of :func:`_bw_map` as a function of ``s`` (for the prior)."""
    mg = mass * width
    return 1.0 / ((s - mass * mass) ** 2 + mg * mg)


class DrellYanLike(MultiChannelIntegrand):
    """Drell-Yan-like toy ``q q -> gamma/Z/Z' -> l l`` in 3 variables, normalised to 1.

    ``y1`` -> ``s = m_ll^2`` flat in ``[60^2, 600^2]`` GeV^2; ``y2`` -> ``cos theta`` in
    ``[-1, 1]``; ``y3`` -> pair rapidity over ``|Y| < -ln(tau)/2``, ``tau = s/S``,
    ``sqrt(S) = 13`` TeV. ``f = [1/s + 0.02 s/BW_Z + 0.08 s/BW_Z'] (1 + c^2 + 0.4 c)
    pdf(x_a) pdf(x_b) J`` (``J`` includes ``d tau = ds / S``), ``pdf(x) = x^-1.1 (1 - x)^5``,
    divided by the reference raw
    integral 0.02300763(7) (VEGAS, 8e7 calls). Channels (``n_channels = 3``): photon (log
    mapping of ``s``), Z and Z' (arctan Breit-Wigner mappings); prior weights are the
    single-diagram-enhancement fractions of the three terms. ``n_channels = 1`` keeps only
    the flat mapping.
    """

    unit = "1"

    def __init__(self, n_channels: int = 3) -> None:
        if n_channels not in (1, 3):
            raise ConfigError(f"drell-yan: channels must be 1 or 3, got {n_channels}")
        self.dim = 3
        self.n_channels = n_channels
        self.name = "dy3" if n_channels == 1 else "dy3-mc"
        self.exact = 1.0
        self.exact_error = _DY_RAW_REFERENCE_ERR / _DY_RAW_REFERENCE

    def _terms(self, s: Tensor) -> Tensor:
        t1 = 1.0 / s
        t2 = 0.02 * s / ((s - _MZ**2) ** 2 + (_MZ * _GZ) ** 2)
        t3 = 0.08 * s / ((s - _MP**2) ** 2 + (_MP * _GP) ** 2)
        return torch.stack([t1, t2, t3], dim=-1)

    def __call__(self, y: Tensor) -> Tensor:
        s = _S_MIN + (_S_MAX - _S_MIN) * y[:, 0]
        c = 2.0 * y[:, 1] - 1.0
        tau = s / _SQRT_S_HADRON**2
        ymax = -0.5 * torch.log(tau)
        rap = (2.0 * y[:, 2] - 1.0) * ymax
        sq = torch.sqrt(tau)
        xa, xb = sq * torch.exp(rap), sq * torch.exp(-rap)
        inside = (xa < 1.0) & (xb < 1.0)
        xa_c, xb_c = xa.clamp(max=1.0 - 1e-15), xb.clamp(max=1.0 - 1e-15)
        pdf = xa_c**-1.1 * (1 - xa_c) ** 5 * xb_c**-1.1 * (1 - xb_c) ** 5
        jac = (_S_MAX - _S_MIN) / _SQRT_S_HADRON**2 * 2.0 * (2.0 * ymax)
        f = self._terms(s).sum(-1) * (1 + c * c + 0.4 * c) * pdf * jac
        return torch.where(inside, f, torch.zeros_like(f)) / _DY_RAW_REFERENCE

    def channel_map(self, x: Tensor, channel: int) -> tuple[Tensor, Tensor]:
        if self.n_channels == 1 or channel < 0:
            return x, torch.ones(x.shape[0], dtype=x.dtype)
        if channel == 0:
            ratio = _S_MAX / _S_MIN
            s = _S_MIN * ratio ** x[:, 0]
            ds = s * math.log(ratio)
        elif channel == 1:
            s, ds = _bw_map(x[:, 0], _MZ, _GZ)
        elif channel == 2:
            s, ds = _bw_map(x[:, 0], _MP, _GP)
        else:
            raise ConfigError(f"drell-yan: channel {channel} out of range [0, 3)")
        y0 = ((s - _S_MIN) / (_S_MAX - _S_MIN)).clamp(0.0, 1.0)
        y = torch.cat([y0[:, None], x[:, 1:]], dim=1)
        return y, ds / (_S_MAX - _S_MIN)

    def prior(self, y: Tensor) -> Tensor:
        if self.n_channels == 1:
            return torch.ones(y.shape[0], 1, dtype=y.dtype)
        s = _S_MIN + (_S_MAX - _S_MIN) * y[:, 0]
        t = self._terms(s)
        return t / t.sum(-1, keepdim=True)
