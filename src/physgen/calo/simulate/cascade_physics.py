"""Cross sections and stopping powers of the EM cascade Monte Carlo (numpy, table build).

Everything here runs once per engine construction and produces per-material
tables on a common logarithmic energy grid that the compiled kernel
(:mod:`physgen.calo.simulate.cascade_kernel`) interpolates. The physics follows
``../shared/reference/em-showers.md`` section 2:

* pair production: Bethe-Heitler with the Butcher-Messel screening functions
  (phi1, phi2) and the Coulomb correction above 50 MeV; the total cross section is
  the numerical integral of the same differential form the kernel samples, so the
  high-energy mean free path tends to (9/7) X0 and the few-MeV threshold rise is kept;
* Compton scattering: Klein-Nishina on Z free electrons per atom;
* photoelectric absorption: sigma_pe = sigma_KN,atom(E_x) (E_x/E)^p, p = 2.7 below
  and 2.1 above the
  photo/Compton crossover E_x(Z) = 0.467 MeV (Z/74)^1.263 fitted to the Elam
  crossovers (W 467 keV, Si 57 keV; Pb 531 keV vs 557 keV tabulated);
* collision stopping power of e-/e+: Rohrlich-Carlson (ICRU 37) with the
  Sternheimer-Peierls general density-effect correction;
* bremsstrahlung: complete-screening spectrum normalised to E/X0 (Tsai X0), times the
  Bethe-Heitler screening ratio (Butcher-Messel phi1, phi2) that lowers the radiation of
  electrons of a few MeV; photons below ``k_cut`` are a continuous loss, above it discrete;
* ranges: the CSDA range of e-/e+ with the same continuous loss (collision + soft brems),
  and the number of discrete-brems interaction lengths along that range, used by the
  kernel to finish in one step an e+/e- that cannot leave its slab.

Units: MeV, mm, per-mm attenuation coefficients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from physgen.calo.simulate.cascade_kernel import BREMS_RATIO_MAX, GRID_DLN_E, GRID_LN_E0, GRID_N
from physgen.calo.simulate.materials import ELECTRON_MASS_MEV, FINE_STRUCTURE, Material

__all__ = [
    "GRID_DLN_E",
    "GRID_LN_E0",
    "GRID_N",
    "MaterialTables",
    "brems_spectrum",
    "build_tables",
    "collision_stopping_power",
    "density_effect",
    "electron_grid",
    "klein_nishina_per_electron",
    "muon_stopping_power_gcm2",
    "pair_cross_section_per_atom",
    "pair_dsigma_deps",
    "photo_cross_section_per_atom",
    "range_tables",
    "rossi_critical_energy",
]

ME = ELECTRON_MASS_MEV
#: Classical electron radius, mm.
R_E_MM = 2.8179403262e-12
AVOGADRO = 6.02214076e23
#: Photo/Compton crossover model: E_x = 0.467 MeV (Z/74)^1.263, sigma_pe ~ E^-2.7.
PHOTO_EX_W_MEV = 0.467
PHOTO_EX_POWER = 1.263
PHOTO_SLOPE = 2.7
#: Photoelectric slope above the crossover (the E^-3.5 law flattens towards 1/E).
PHOTO_SLOPE_HIGH = 2.1
#: Below 50 MeV (no Coulomb correction in the sampled Bethe-Heitler form) the total
#: pair cross section is multiplied by 1 - 0.335 (aZ)^2 + 3.63 (aZ)^2 exp(-(k - 2 m_e)/1.7 MeV):
#: the Coulomb correction lowers it at 10-50 MeV and raises it near threshold. The
#: coefficients reproduce the tabulated (XCOM, as recalled) Pb pair attenuation at
#: 3/4/6/10/20 MeV to ~5 %; an empirical correction, like Geant4's use of a fitted
#: total cross section together with the Bethe-Heitler sampling.
PAIR_CC_HIGH = 0.335
PAIR_CC_THRESHOLD = 3.63
PAIR_CC_K0_MEV = 1.7


def electron_grid() -> npt.NDArray[np.float64]:
    """The common energy grid (MeV), ``(GRID_N,)``."""
    out: npt.NDArray[np.float64] = np.exp(GRID_LN_E0 + GRID_DLN_E * np.arange(GRID_N))
    return out


def _plasma_energy_ev(mat: Material) -> float:
    return 28.816 * math.sqrt(mat.density * mat.z_over_a)


def density_effect(mat: Material, x: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Sternheimer-Peierls general density-effect correction delta (condensed media).

    Args:
        mat: Material (uses I, density and <Z/A>).
        x: log10(beta gamma), any shape.

    Returns:
        delta, same shape as ``x``.
    """
    xs = np.asarray(x, dtype=np.float64)
    cbar = 1.0 + 2.0 * math.log(mat.mean_excitation_ev / _plasma_energy_ev(mat))
    if mat.mean_excitation_ev < 100.0:
        x1 = 2.0
        x0 = 0.2 if cbar < 3.681 else 0.326 * cbar - 1.0
    else:
        x1 = 3.0
        x0 = 0.2 if cbar < 5.215 else 0.326 * cbar - 1.5
    a = (cbar - 4.6052 * x0) / (x1 - x0) ** 3
    d = np.where(
        xs >= x1, 4.6052 * xs - cbar, 4.6052 * xs - cbar + a * np.clip(x1 - xs, 0, None) ** 3
    )
    return np.where(xs <= x0, 0.0, d)


def collision_stopping_power(
    mat: Material, t_mev: npt.ArrayLike, positron: bool = False
) -> npt.NDArray[np.float64]:
    """Mean collision stopping power of e- or e+ (Rohrlich-Carlson / ICRU 37), MeV/mm.

    Args:
        mat: Material.
        t_mev: Kinetic energy in MeV, any shape.
        positron: Use the Bhabha (e+) term F+ instead of the Moller F-.
    """
    t = np.asarray(t_mev, dtype=np.float64)
    tau = t / ME
    gamma = tau + 1.0
    beta2 = 1.0 - 1.0 / gamma**2
    i_me = mat.mean_excitation_ev * 1e-6 / ME
    if positron:
        y = tau + 2.0
        f = 2 * math.log(2.0) - beta2 / 12.0 * (23.0 + 14.0 / y + 10.0 / y**2 + 4.0 / y**3)
    else:
        f = 1.0 - beta2 + (tau**2 / 8.0 - (2 * tau + 1.0) * math.log(2.0)) / (tau + 1.0) ** 2
    delta = density_effect(mat, np.log10(np.sqrt(tau * (tau + 2.0))))
    bracket = np.log(tau**2 * (tau + 2.0) / (2.0 * i_me**2)) + f - delta
    n_el = mat.electron_density_per_mm3
    out = 2 * math.pi * R_E_MM**2 * ME * n_el / beta2 * bracket
    return np.maximum(out, 1e-6)


def muon_stopping_power_gcm2(mat: Material, beta_gamma: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Bethe mean stopping power of a muon (PDG form), MeV cm^2/g.

    Uses the same I and density-effect model as the electron stopping power; it
    checks the MIP minimum of the ionisation model against the PDG table.
    """
    bg = np.asarray(beta_gamma, dtype=np.float64)
    m_mu = 105.6583755
    gamma = np.sqrt(1.0 + bg**2)
    beta2 = bg**2 / gamma**2
    tmax = 2 * ME * bg**2 / (1 + 2 * gamma * ME / m_mu + (ME / m_mu) ** 2)
    i_mev = mat.mean_excitation_ev * 1e-6
    delta = density_effect(mat, np.log10(bg))
    k = 0.307075
    out: npt.NDArray[np.float64] = (
        k
        * mat.z_over_a
        / beta2
        * (0.5 * np.log(2 * ME * bg**2 * tmax / i_mev**2) - beta2 - delta / 2.0)
    )
    return out


def rossi_critical_energy(mat: Material) -> float:
    """Rossi critical energy (collision loss per X0 = E) from the e- stopping power, MeV."""
    lo, hi = 1.0, 200.0
    for _ in range(80):
        mid = math.sqrt(lo * hi)
        g = float(collision_stopping_power(mat, mid)) * mat.x0_mm - mid
        if g > 0:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def klein_nishina_per_electron(e_mev: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Klein-Nishina total cross section per free electron, mm^2."""
    k = np.asarray(e_mev, dtype=np.float64) / ME
    small = k < 1e-3
    kk = np.where(small, 1e-3, k)
    t1 = (1 + kk) / kk**2 * (2 * (1 + kk) / (1 + 2 * kk) - np.log(1 + 2 * kk) / kk)
    t2 = np.log(1 + 2 * kk) / (2 * kk) - (1 + 3 * kk) / (1 + 2 * kk) ** 2
    sig = 2 * math.pi * R_E_MM**2 * (t1 + t2)
    thomson = 8 * math.pi / 3 * R_E_MM**2
    return np.where(small, thomson * (1 - 2 * k), sig)


def _coulomb_f(z: float) -> float:
    a2 = (FINE_STRUCTURE * z) ** 2
    return a2 * (1.0 / (1.0 + a2) + 0.20206 - 0.0369 * a2 + 0.0083 * a2**2 - 0.002 * a2**3)


def _tsai_xi(z: float) -> float:
    """Ratio L'_rad / (L_rad - f): atomic-electron weight, Z^2 -> Z (Z + xi)."""
    l_rad = math.log(184.15 * z ** (-1.0 / 3.0))
    l_radp = math.log(1194.0 * z ** (-2.0 / 3.0))
    return l_radp / (l_rad - _coulomb_f(z))


def pair_dsigma_deps(z: float, k_mev: float, eps: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Bethe-Heitler pair cross section per atom, d sigma / d eps (mm^2).

    eps = (total energy of one lepton) / k. Butcher-Messel screening functions;
    the Coulomb correction is applied above 50 MeV (as in Geant4's Bethe-Heitler).
    """
    e = np.asarray(eps, dtype=np.float64)
    ccoul = _coulomb_f(z) if k_mev > 50.0 else 0.0
    z13 = z ** (1.0 / 3.0)
    delta = 136.0 / z13 * (ME / k_mev) / np.maximum(e * (1 - e), 1e-30)
    phi1 = np.where(
        delta <= 1, 20.867 - 3.242 * delta + 0.625 * delta**2, 21.12 - 4.184 * np.log(delta + 0.952)
    )
    phi2 = np.where(
        delta <= 1, 20.209 - 1.930 * delta - 0.086 * delta**2, 21.12 - 4.184 * np.log(delta + 0.952)
    )
    lnz3 = math.log(z) / 3.0
    f1 = np.maximum(phi1 / 4.0 - lnz3 - ccoul, 0.0)
    f2 = np.maximum(phi2 / 4.0 - lnz3 - ccoul, 0.0)
    val = (e**2 + (1 - e) ** 2) * f1 + (2.0 / 3.0) * e * (1 - e) * f2
    pref = 4 * FINE_STRUCTURE * R_E_MM**2 * z * (z + _tsai_xi(z))
    out: npt.NDArray[np.float64] = pref * val
    return out


def pair_cross_section_per_atom(z: float, k_mev: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Total Bethe-Heitler pair cross section per atom (mm^2), by integration."""
    ks = np.atleast_1d(np.asarray(k_mev, dtype=np.float64))
    out = np.zeros_like(ks)
    for i, k in enumerate(ks):
        if k <= 2 * ME * 1.0001:
            continue
        e0 = ME / k
        x, w = np.polynomial.legendre.leggauss(64)
        lo, hi = e0, 0.5
        eps = 0.5 * (hi - lo) * x + 0.5 * (hi + lo)
        out[i] = 2.0 * 0.5 * (hi - lo) * np.sum(w * pair_dsigma_deps(z, float(k), eps))
        if k <= 50.0:
            a2 = (FINE_STRUCTURE * z) ** 2
            out[i] *= (
                1.0
                - PAIR_CC_HIGH * a2
                + PAIR_CC_THRESHOLD * a2 * math.exp(-(k - 2 * ME) / PAIR_CC_K0_MEV)
            )
    return out


def photo_cross_section_per_atom(z: float, e_mev: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Photoelectric cross section per atom (mm^2): KN(E_x) Z (E_x/E)^2.7, see module doc."""
    e = np.asarray(e_mev, dtype=np.float64)
    ex = PHOTO_EX_W_MEV * (z / 74.0) ** PHOTO_EX_POWER
    slope = np.where(e < ex, PHOTO_SLOPE, PHOTO_SLOPE_HIGH)
    out: npt.NDArray[np.float64] = z * klein_nishina_per_electron(ex) * (ex / e) ** slope
    return out


def _screen_np(
    delta: npt.NDArray[np.float64],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    phi1 = np.where(
        delta <= 1, 20.867 - 3.242 * delta + 0.625 * delta**2, 21.12 - 4.184 * np.log(delta + 0.952)
    )
    phi2 = np.where(
        delta <= 1, 20.209 - 1.930 * delta - 0.086 * delta**2, 21.12 - 4.184 * np.log(delta + 0.952)
    )
    return phi1, phi2


def brems_screening_ratio(
    z: float, e_total_mev: npt.ArrayLike, k_mev: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Screened Bethe-Heitler brems spectrum / the PDG complete-screening form.

    N(delta) = [1 + (1-y)^2] (phi1/4 - ln Z/3 - f) - 2/3 (1-y) (phi2/4 - ln Z/3 - f),
    y = k/E, delta = 136 m_e Z^-1/3 k / (E (E - k)), divided by
    (4/3 - 4/3 y + y^2)(phi1(0)/4 - ln Z/3 - f). At delta = 0 this keeps Tsai's small
    (1 - y) term that the "A/X0" form drops (ratio up to ~1.025); at finite delta it
    lowers the radiation of electrons of a few MeV (incomplete screening) and the
    spectrum tip. The equal-loss critical energy of Cu comes out at 25.0 MeV (PDG 24.8).
    """
    e = np.asarray(e_total_mev, dtype=np.float64)
    k = np.asarray(k_mev, dtype=np.float64)
    y = np.clip(k / e, 0.0, 1.0 - 1e-12)
    delta = 136.0 * ME / z ** (1.0 / 3.0) * k / (e * np.maximum(e - k, 1e-12))
    c = math.log(z) / 3.0 + _coulomb_f(z)
    p1, p2 = _screen_np(delta)
    q1, _ = _screen_np(np.zeros_like(delta))
    a = 1.0 + (1.0 - y) ** 2
    b = 2.0 / 3.0 * (1.0 - y)
    num = a * np.maximum(p1 / 4.0 - c, 0.0) - b * np.maximum(p2 / 4.0 - c, 0.0)
    den = (a - b) * (q1 / 4.0 - c)
    return np.clip(num / den, 0.0, BREMS_RATIO_MAX)


def brems_spectrum(y: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """y dN/dy per X0 of the complete-screening spectrum: 4/3 - 4/3 y + y^2 (integral 1)."""
    yy = np.asarray(y, dtype=np.float64)
    return 4.0 / 3.0 - 4.0 / 3.0 * yy + yy**2


@dataclass(frozen=True)
class MaterialTables:
    """Per-material tables on :func:`electron_grid` (all ``(n_materials, GRID_N)``).

    Attributes:
        mu_photo, mu_compt, mu_pair: Photon attenuation coefficients, 1/mm.
        dedx_em, dedx_ep: Continuous loss of e-/e+ (collision + brems below k_cut), MeV/mm.
        brems_rate: Discrete brems interactions (k > k_cut) per mm, e- and e+.
        range_em, range_ep: CSDA range of e-/e+ with the continuous loss above, mm
            (integral of dT / (dE/dx) from 0 to T).
        brems_lambda_em, brems_lambda_ep: Mean number of discrete brems interactions of
            an e-/e+ along its remaining range (integral of brems_rate / (dE/dx) dT).
        x0_mm: ``(n_materials,)`` radiation lengths, mm.
        pair_z: ``(n_materials,)`` effective Z for the pair screening functions.
        e_lpm: ``(n_materials,)`` LPM energy (7.7 TeV/cm x X0), MeV.
    """

    mu_photo: npt.NDArray[np.float64]
    mu_compt: npt.NDArray[np.float64]
    mu_pair: npt.NDArray[np.float64]
    dedx_em: npt.NDArray[np.float64]
    dedx_ep: npt.NDArray[np.float64]
    brems_rate: npt.NDArray[np.float64]
    range_em: npt.NDArray[np.float64]
    range_ep: npt.NDArray[np.float64]
    brems_lambda_em: npt.NDArray[np.float64]
    brems_lambda_ep: npt.NDArray[np.float64]
    x0_mm: npt.NDArray[np.float64]
    pair_z: npt.NDArray[np.float64]
    e_lpm: npt.NDArray[np.float64]


def _soft_brems_fraction(yc: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    y = np.minimum(yc, 1.0)
    return 4.0 / 3.0 * y - 2.0 / 3.0 * y**2 + y**3 / 3.0


def _n_discrete_brems(yc: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    y = np.clip(yc, 1e-300, 1.0)
    return 4.0 / 3.0 * np.log(1.0 / y) - 4.0 / 3.0 * (1.0 - y) + 0.5 * (1.0 - y**2)


def range_tables(
    dedx: npt.NDArray[np.float64], rate: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """CSDA range and brems interaction lengths to rest on :func:`electron_grid`.

    Trapezoidal integration in ln T of T / (dE/dx) and T rate / (dE/dx); below the first
    grid point (1 keV) the range is taken as T / (2 dE/dx) (dE/dx ~ 1/T) and no brems.

    Args:
        dedx: ``(..., GRID_N)`` continuous loss, MeV/mm (positive).
        rate: ``(..., GRID_N)`` discrete brems interactions per mm.

    Returns:
        ``(range_mm, brems_lambda)``, both shaped like ``dedx`` and non-decreasing in T.
    """
    grid = electron_grid()
    f_r = grid / dedx
    f_l = grid * rate / dedx
    rng = np.empty_like(f_r)
    lam = np.empty_like(f_l)
    rng[..., 0] = 0.5 * f_r[..., 0]
    lam[..., 0] = 0.0
    rng[..., 1:] = rng[..., :1] + np.cumsum(0.5 * GRID_DLN_E * (f_r[..., 1:] + f_r[..., :-1]), -1)
    lam[..., 1:] = np.cumsum(0.5 * GRID_DLN_E * (f_l[..., 1:] + f_l[..., :-1]), axis=-1)
    return rng, lam


def build_tables(
    materials: tuple[Material, ...], k_cut_mev: float, bremsstrahlung: bool = True
) -> MaterialTables:
    """Build the interpolation tables for a stack's materials.

    Args:
        materials: The distinct materials (index = material id of the kernel).
        k_cut_mev: Brems photon energy cut (MeV): softer photons are a continuous loss.
        bremsstrahlung: False switches radiative losses off (validation of scattering).
    """
    grid = electron_grid()
    n = len(materials)
    shape = (n, GRID_N)
    mu_photo, mu_compt, mu_pair = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    dedx_em, dedx_ep, brems_rate = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    x0 = np.zeros(n)
    pair_z = np.zeros(n)
    e_lpm = np.zeros(n)
    # pair cross sections are smooth: integrate on a coarse grid and interpolate in ln E
    coarse = grid[::10]
    for m, mat in enumerate(materials):
        x0[m] = mat.x0_mm
        e_lpm[m] = 7.7e6 * mat.x0_mm / 10.0
        zsq, zw = 0.0, 0.0
        pair_coarse = np.zeros_like(coarse)
        for el, w in mat.components:
            n_atoms = mat.density * w / el.a * AVOGADRO / 1000.0  # per mm^3
            mu_compt[m] += n_atoms * el.z * klein_nishina_per_electron(grid)
            mu_photo[m] += n_atoms * photo_cross_section_per_atom(el.z, grid)
            pair_coarse += n_atoms * pair_cross_section_per_atom(el.z, coarse)
            zsq += n_atoms * el.z**3
            zw += n_atoms * el.z**2
        mu_pair[m] = np.interp(np.log(grid), np.log(coarse), pair_coarse)
        mu_pair[m][grid <= 2 * ME] = 0.0
        pair_z[m] = zsq / zw
        # brems of an e- of kinetic energy T: y = k/T on the complete-screening spectrum,
        # times the screening ratio (total energy E = T + m_e in delta)
        xg, wg = np.polynomial.legendre.leggauss(48)
        soft = np.zeros(GRID_N)
        rate = np.zeros(GRID_N)
        if bremsstrahlung:
            for j, t_kin in enumerate(grid):
                yc = min(k_cut_mev / t_kin, 1.0)
                ys = 0.5 * yc * (xg + 1.0)
                r = brems_screening_ratio(pair_z[m], t_kin + ME, ys * t_kin)
                soft[j] = t_kin * 0.5 * yc * np.sum(wg * brems_spectrum(ys) * r) / x0[m]
                if yc < 1.0:
                    lny = 0.5 * math.log(yc) * (1.0 - xg)  # ln y from ln yc to 0
                    yy = np.exp(lny)
                    r = brems_screening_ratio(pair_z[m], t_kin + ME, yy * t_kin)
                    rate[j] = 0.5 * (-math.log(yc)) * np.sum(wg * brems_spectrum(yy) * r) / x0[m]
        dedx_em[m] = collision_stopping_power(mat, grid) + soft
        dedx_ep[m] = collision_stopping_power(mat, grid, positron=True) + soft
        brems_rate[m] = rate
    range_em, lambda_em = range_tables(dedx_em, brems_rate)
    range_ep, lambda_ep = range_tables(dedx_ep, brems_rate)
    return MaterialTables(
        mu_photo,
        mu_compt,
        mu_pair,
        dedx_em,
        dedx_ep,
        brems_rate,
        range_em,
        range_ep,
        lambda_em,
        lambda_ep,
        x0,
        pair_z,
        e_lpm,
    )
