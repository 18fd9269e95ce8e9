"""Differentiable pieces of GFlash: the effective medium, the profiles, special functions.

The building blocks of :class:`physgen.diffsim.calorimeter.DiffGFlash`, written in torch so
that every number is a differentiable function of the absorber and active thicknesses:

* :func:`period_medium`: the GFlash mixing rules of
  :func:`physgen.calo.simulate.gflash.effective_medium` (mass-weighted Z, 1/X0, Ec/X0,
  Moliere radius, sampling frequency F_S, e/mip, MIP sampling fraction) for one sampling
  period, absorber + active slab (Grindhammer & Peters, hep-ex/0001020, section 3;
  ``../shared/reference/em-showers.md`` 3.4.2). Par04 (1.4 mm W + 0.3 mm Si): X0_eff
  4.22 mm, Ec_eff 8.23 MeV, R_M 10.9 mm, visible fraction 0.0255.
* :func:`profile_parameters` and :func:`radial_profile`: the sampling-calorimeter
  parametrisation of :meth:`GFlashEngine.profile_parameters` and
  :func:`physgen.calo.simulate.gflash_kernel.radial_parameters`, vectorised over showers.
* :func:`gammainc`: the regularised lower incomplete gamma ``P(a, x)`` with derivatives in
  both arguments (torch's ``torch.special.gammainc`` has none in ``a``, and is off by up to
  4e-10 for a > 10; the values here are scipy's, good to 1e-15). ``dP/dx`` is the
  Gamma pdf; ``dP/da = integral_0^x (ln t - psi(a)) t^(a-1) e^-t / Gamma(a) dt`` is summed
  from the series ``P = sum_n x^(a+n) e^-x / Gamma(a+n+1)`` term by term for ``a < 30``
  (converges for every x; about ``x + 12 sqrt(x)`` terms) and integrated by 128-point
  Gauss-Legendre quadrature over ``a -+ 12 sqrt(a)`` (the pdf is nearly Gaussian there)
  above. Agrees with central finite differences of ``P`` to 1e-6 relative and better
  (tested).
* :func:`gamma_quantile`: the standard Gamma quantile ``x = P^-1(k, u)`` at fixed uniform
  ``u`` (scipy's ``gammaincinv`` forward) with the implicit derivative
  ``dx/dk = -(dP/da)(k, x) / pdf(x; k)``: the sampling fluctuations of GFlash drawn by
  reparameterisation (the exact Gamma, not a Gaussian approximation).
* :func:`hashed_uniforms`: counter-based uniforms (splitmix64 of a per-shower key and a
  counter), so a shower's random numbers do not depend on batching or on how many spots
  other steps have.

Units: lengths in mm, radiation lengths in g/cm^2 for the mixing rules, energies in MeV
except where a name says GeV.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from physgen.calo.simulate.gflash import DEDX_MIN_MEV_CM2_G
from physgen.calo.simulate.materials import ES_MEV, Material, get_material
from physgen.errors import SimulationError

__all__ = [
    "DiffMedium",
    "ProfileTensors",
    "dgammainc_da",
    "gamma_quantile",
    "gammainc",
    "hashed_uniforms",
    "period_medium",
    "profile_parameters",
    "radial_profile",
    "shower_keys",
]

_U64 = np.uint64
_SERIES_MAX_A = 30.0
_GL_NODES = 128


# --------------------------------------------------------------------- effective medium


def _dedx_min(mat: Material) -> float:
    """Minimum ionisation loss, MeV cm^2/g (the table of gflash.py, else 3 <Z/A>)."""
    return DEDX_MIN_MEV_CM2_G.get(mat.name, 3.0 * mat.z_over_a)


@dataclass(frozen=True)
class DiffMedium:
    """One sampling period as a homogeneous medium; every field a 0-d tensor.

    Attributes:
        z: Mass-weighted Z_eff.
        density: Mean density, g/cm^3.
        x0_mm: Radiation length X0_eff, mm.
        ec_mev: Critical energy Ec_eff, MeV.
        rm_mm: Moliere radius R_M,eff, mm.
        period_mm: Absorber + active thickness, mm.
        period_x0: The period's depth in radiation lengths (sum of d_i / X0_i).
        z_passive: Z of the absorber.
        z_active: Z of the active material.
        f_mip: MIP sampling fraction (active share of dE/dx_min).
    """

    z: Tensor
    density: Tensor
    x0_mm: Tensor
    ec_mev: Tensor
    rm_mm: Tensor
    period_mm: Tensor
    period_x0: Tensor
    z_passive: Tensor
    z_active: Tensor
    f_mip: Tensor

    @property
    def sampling_frequency(self) -> Tensor:
        """F_S = X0_eff / (d_active + d_passive)."""
        return self.x0_mm / self.period_mm

    @property
    def e_over_mip(self) -> Tensor:
        """e/mip = 1 / (1 + 0.007 (Z_passive - Z_active))."""
        return 1.0 / (1.0 + 0.007 * (self.z_passive - self.z_active))

    @property
    def visible_fraction(self) -> Tensor:
        """Electron visible fraction e/mip * f_mip (raw active / deposited energy)."""
        return self.e_over_mip * self.f_mip


def period_medium(absorber: str, absorber_mm: Tensor, active: str, active_mm: Tensor) -> DiffMedium:
    """The GFlash mixture of one period (absorber slab, then active slab).

    Same rules and numbers as :func:`physgen.calo.simulate.gflash.effective_medium` on the
    slabs of a regular stack; differentiable in the two thicknesses (0-d tensors, mm).

    Raises:
        SimulationError: Unknown material.
    """
    mats = (get_material(absorber), get_material(active))
    d = (absorber_mm, active_mm)
    mass = [m.density * di for m, di in zip(mats, d)]
    total = mass[0] + mass[1]
    w = [mi / total for mi in mass]
    period = d[0] + d[1]
    density = total / period
    inv_x0 = sum(wi / m.x0_gcm2 for wi, m in zip(w, mats))
    ec_over_x0 = sum(wi * m.critical_energy_mev / m.x0_gcm2 for wi, m in zip(w, mats))
    assert isinstance(inv_x0, Tensor) and isinstance(ec_over_x0, Tensor)
    x0_gcm2 = 1.0 / inv_x0
    dedx = [_dedx_min(m) * mi for m, mi in zip(mats, mass)]
    like = absorber_mm
    return DiffMedium(
        z=w[0] * mats[0].z_eff + w[1] * mats[1].z_eff,
        density=density,
        x0_mm=10.0 * x0_gcm2 / density,
        ec_mev=x0_gcm2 * ec_over_x0,
        rm_mm=10.0 * ES_MEV / ec_over_x0 / density,
        period_mm=period,
        period_x0=d[0] / mats[0].x0_mm + d[1] / mats[1].x0_mm,
        z_passive=torch.full_like(like, mats[0].z_eff),
        z_active=torch.full_like(like, mats[1].z_eff),
        f_mip=dedx[1] / (dedx[0] + dedx[1]),
    )


# ------------------------------------------------------------------- parametrisation


@dataclass(frozen=True)
class ProfileTensors:
    """Per-shower longitudinal parameters (all ``(N,)``).

    Attributes:
        t_max: Individual shower maximum T, X0 (>= 1).
        alpha: Individual shape alpha (>= 1.1).
        beta: (alpha - 1) / T, 1/X0.
        tau_scale: ``(<t>/T)_average / <t>_individual``: depth -> tau of the radial profile.
    """

    t_max: Tensor
    alpha: Tensor
    beta: Tensor
    tau_scale: Tensor


def _inv_sigma(den: Tensor) -> Tensor:
    """1 / den, or 0.5 where den <= 2 (Geant4's guard for small y)."""
    ok = den > 2.0
    return torch.where(ok, 1.0 / torch.where(ok, den, torch.ones_like(den)), 0.5)


def profile_parameters(energy_mev: Tensor, medium: DiffMedium, normal: Tensor) -> ProfileTensors:
    """Draw ``(T, alpha)`` of showers from fixed standard normals (em-showers.md 3.4.2).

    Args:
        energy_mev: Incident energies ``(N,)``, MeV.
        medium: The effective medium.
        normal: ``(N, 2)`` standard normals ``(z1, z2)``; ``ln T`` and ``ln alpha`` are
            ``mean + sigma (sqrt((1+rho)/2) z1 +- sqrt((1-rho)/2) z2)`` as in
            :meth:`GFlashEngine.sample_profile`.

    Raises:
        SimulationError: An energy too low for the parametrisation.
    """
    m = medium
    ln_y = torch.log(energy_mev / m.ec_mev)
    fs, one_m_e = m.sampling_frequency, 1.0 - m.e_over_mip
    t_avg = ln_y - 0.858 - 0.59 / fs - 0.53 * one_m_e
    alpha_avg = 0.21 + (0.492 + 2.38 / m.z) * ln_y - 0.444 / fs
    t_ind = (ln_y - 0.812) - 0.55 / fs - 0.69 * one_m_e
    a_ind = (0.81 + (0.458 + 2.26 / m.z) * ln_y) - 0.476 / fs
    bad = (t_ind <= 0) | (a_ind <= 0) | (t_avg <= 0) | (alpha_avg <= 1)
    if bool(bad.any()):
        e = float(energy_mev[bad].min())
        raise SimulationError(
            f"GFlash: energy {e:g} MeV is too low for the parametrisation "
            f"(E/Ec_eff = {e / float(m.ec_mev):.3g})"
        )
    rho = torch.clamp(0.784 - 0.023 * ln_y, -1.0, 1.0)
    a, b = torch.sqrt((1 + rho) / 2), torch.sqrt((1 - rho) / 2)
    z1, z2 = normal[:, 0], normal[:, 1]
    t_max = torch.exp(torch.log(t_ind) + _inv_sigma(-2.5 + 1.25 * ln_y) * (a * z1 + b * z2))
    alpha = torch.exp(torch.log(a_ind) + _inv_sigma(-0.82 + 0.79 * ln_y) * (a * z1 - b * z2))
    t_max, alpha = torch.clamp(t_max, min=1.0), torch.clamp(alpha, min=1.1)
    beta = (alpha - 1.0) / t_max
    tau_scale = (alpha_avg / (alpha_avg - 1.0)) / (alpha / beta)
    return ProfileTensors(t_max, alpha, beta, tau_scale)


def radial_profile(
    tau: Tensor, ln_e_gev: Tensor, medium: DiffMedium
) -> tuple[Tensor, Tensor, Tensor]:
    """Core radius, tail radius (Moliere radii) and core probability at depths ``tau``.

    The formulas of :func:`~physgen.calo.simulate.gflash_kernel.radial_coefficients` and
    :func:`~physgen.calo.simulate.gflash_kernel.radial_parameters` (same floors and clips);
    ``tau`` and ``ln_e_gev`` broadcast together.
    """
    z, fs, one_m_e = medium.z, medium.sampling_frequency, 1.0 - medium.e_over_mip
    e_tau = torch.exp(-tau)
    r_c = (0.0251 + 0.00319 * ln_e_gev) + (0.1162 - 0.000381 * z) * tau
    r_c = r_c - 0.0203 * one_m_e + 0.0397 / fs * e_tau
    k1, k2, k3, k4 = 0.659 - 0.00309 * z, 0.645, -2.59, 0.3585 + 0.0421 * ln_e_gev
    r_t = k1 * (torch.exp(k3 * (tau - k2)) + torch.exp(k4 * (tau - k2)))
    r_t = r_t - 0.14 * one_m_e - 0.495 / fs * e_tau
    arg = ((0.401 + 0.00187 * z) - tau) / (1.313 - 0.0686 * ln_e_gev)
    p = (2.632 - 0.00094 * z) * torch.exp(arg - torch.exp(arg))
    p = p + one_m_e * (0.348 - 0.642 / fs * torch.exp(-((tau - 1.0) ** 2)))
    return torch.clamp(r_c, min=1e-3), torch.clamp(r_t, min=1e-3), torch.clamp(p, 0.0, 1.0)


# ------------------------------------------------------------------ special functions


def gamma_log_pdf(a: Tensor, x: Tensor) -> Tensor:
    """``ln[x^(a-1) e^-x / Gamma(a)]`` (-inf at x = 0 for a > 1)."""
    return torch.xlogy(a - 1.0, x) - x - torch.lgamma(a)


@functools.lru_cache(maxsize=4)
def _gauss_legendre(n: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    nodes, weights = np.polynomial.legendre.leggauss(n)
    return nodes, weights


def _dp_da_series(a: Tensor, x: Tensor) -> Tensor:
    """dP/da from the series of P, term by term (for a < 30)."""
    lx = torch.log(x.clamp_min(1e-300))
    far = x > a + 20.0 * torch.sqrt(a + 1.0) + 40.0  # Q < 1e-20 there: dP/da = 0
    xs = torch.where(far, torch.zeros_like(x), x)
    n_terms = math.ceil(float(xs.max()) + 12.0 * math.sqrt(float(xs.max())) + 25.0)
    term = torch.exp(a * lx - x - torch.lgamma(a + 1.0))
    psi = torch.special.digamma(a + 1.0)
    total = term * (lx - psi)
    for n in range(1, n_terms + 1):
        term = term * x / (a + n)
        psi = psi + 1.0 / (a + n)
        total = total + term * (lx - psi)
    return torch.where(far | (x <= 0), torch.zeros_like(x), total)


def _dp_da_quadrature(a: Tensor, x: Tensor) -> Tensor:
    """dP/da by Gauss-Legendre quadrature (for large a, where the pdf is nearly Gaussian).

    Left of the mode ``integral_{x - 14 sqrt a}^x``, right of it ``-integral_x^{x + 14 sqrt a}``
    of ``(ln t - psi(a)) pdf(t)`` (the total integral is 0): 14 widths of the pdf on the
    side that matters, and no cancellation in the tails.
    """
    nodes_np, weights_np = _gauss_legendre(_GL_NODES)
    nodes = torch.as_tensor(nodes_np, dtype=x.dtype, device=x.device)
    weights = torch.as_tensor(weights_np, dtype=x.dtype, device=x.device)
    width = 14.0 * torch.sqrt(a)
    left = x <= a
    lo = torch.where(left, torch.clamp(x - width, min=0.0), x)
    hi = torch.where(left, x, x + width)
    half = 0.5 * (hi - lo)
    t = ((lo + half)[..., None] + half[..., None] * nodes).clamp_min(1e-300)
    ai = a[..., None]
    f = torch.exp(gamma_log_pdf(ai, t)) * (torch.log(t) - torch.special.digamma(ai))
    integral = half * (f * weights).sum(-1)
    return torch.where(left, integral, -integral)


def dgammainc_da(a: Tensor, x: Tensor) -> Tensor:
    """``dP(a, x)/da`` of the regularised lower incomplete gamma (same-shape tensors)."""
    out = torch.zeros_like(x)
    small = a < _SERIES_MAX_A
    if bool(small.any()):
        out[small] = _dp_da_series(a[small], x[small])
    if bool((~small).any()):
        out[~small] = _dp_da_quadrature(a[~small], x[~small])
    return out


class _GammaInc(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, a: Tensor, x: Tensor) -> Tensor:
        from scipy.special import gammainc as p_np

        ctx.save_for_backward(a, x)
        p = p_np(a.detach().cpu().numpy(), x.detach().cpu().numpy())
        return torch.as_tensor(p, dtype=x.dtype, device=x.device)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        a, x = ctx.saved_tensors
        ga = gx = None
        if ctx.needs_input_grad[0]:
            ga = grad * dgammainc_da(a, x)
        if ctx.needs_input_grad[1]:
            gx = grad * torch.exp(gamma_log_pdf(a, x))
        return ga, gx


def gammainc(a: Tensor, x: Tensor) -> Tensor:
    """Regularised lower incomplete gamma ``P(a, x)``, differentiable in ``a`` and ``x``.

    Args:
        a: Shape parameter, > 0 (broadcasts with ``x``).
        x: Argument, >= 0.
    """
    shape = torch.broadcast_shapes(a.shape, x.shape)  # type: ignore[no-untyped-call]
    a, x = a.expand(shape), x.expand(shape)
    out: Tensor = _GammaInc.apply(a.contiguous(), x.contiguous())  # type: ignore[no-untyped-call]
    return out


class _GammaQuantile(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, k: Tensor, u: Tensor) -> Tensor:
        from scipy.special import gammainc as p_np
        from scipy.special import gammaincinv, gammaln

        kn, un = np.maximum(k.detach().cpu().numpy(), 1e-300), u.cpu().numpy()
        x0 = gammaincinv(kn, un)  # then one Newton step: scipy's inverse is good to ~1e-9
        with np.errstate(all="ignore"):
            pdf = np.exp((kn - 1.0) * np.log(x0) - x0 - gammaln(kn))
            x1 = x0 - (p_np(kn, x0) - un) / pdf
        good = np.isfinite(x1) & (x1 > 0) & (pdf > 0)
        x_np = np.where(kn > 1e-300, np.where(good, x1, x0), 0.0)
        x = torch.as_tensor(x_np, dtype=k.dtype, device=k.device)
        ctx.save_for_backward(k, x)
        return x

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, None]:
        k, x = ctx.saved_tensors
        ok = (x > 0) & (k > 1e-300)
        ks = torch.where(ok, k, torch.ones_like(k))
        xs = torch.where(ok, x, torch.ones_like(x))
        dxdk = -dgammainc_da(ks, xs) * torch.exp(-gamma_log_pdf(ks, xs))
        dxdk = torch.where(ok & torch.isfinite(dxdk), dxdk, torch.zeros_like(dxdk))
        return grad * dxdk, None


def gamma_quantile(k: Tensor, u: Tensor) -> Tensor:
    """Standard Gamma(k, 1) quantile at fixed uniforms ``u``, differentiable in ``k``.

    ``k`` >= 0 (0 gives 0), ``u`` in (0, 1); same shapes (broadcast here). A Gamma of shape k
    and scale theta is ``theta * gamma_quantile(k, u)``.
    """
    shape = torch.broadcast_shapes(k.shape, u.shape)  # type: ignore[no-untyped-call]
    k, u = k.expand(shape), u.expand(shape)
    out: Tensor = _GammaQuantile.apply(  # type: ignore[no-untyped-call]
        k.contiguous(), u.detach().contiguous()
    )
    return out


# --------------------------------------------------------------------- random numbers


def _splitmix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64 finaliser (wrapping uint64 arithmetic)."""
    with np.errstate(over="ignore"):
        z = np.asarray(x, dtype=np.uint64) + _U64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> _U64(30))) * _U64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> _U64(27))) * _U64(0x94D049BB133111EB)
        out: npt.NDArray[np.uint64] = z ^ (z >> _U64(31))
    return out


def shower_keys(seed: int, n: int, start: int = 0) -> npt.NDArray[np.uint64]:
    """64-bit keys of showers ``start .. start+n-1`` of a run with ``seed``."""
    base = np.random.SeedSequence(int(seed)).generate_state(1, np.uint64)[0]
    idx = np.arange(start, start + n, dtype=np.uint64)
    return _splitmix(np.full(n, base, dtype=np.uint64) ^ _splitmix(idx))


def hashed_uniforms(
    keys: npt.NDArray[np.uint64],
    stream: int,
    step: npt.NDArray[np.int64] | int,
    index: npt.NDArray[np.int64] | int = 0,
) -> npt.NDArray[np.float64]:
    """Uniforms in (0, 1) as a function of (shower key, stream < 256, step < 2^16, index < 2^40).

    Broadcasts ``keys``, ``step`` and ``index``; the same arguments give the same numbers.
    """
    counter = (
        (np.uint64(stream) << _U64(56))
        | (np.asarray(step).astype(np.uint64) << _U64(40))
        | np.asarray(index).astype(np.uint64)
    )
    z = _splitmix(np.asarray(keys, dtype=np.uint64) ^ _splitmix(counter))
    u: npt.NDArray[np.float64] = ((z >> _U64(11)).astype(np.float64) + 0.5) * 2.0**-53
    return u
