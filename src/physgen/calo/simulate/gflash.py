"""GFlash: parametrised electromagnetic showers (Grindhammer & Peters, hep-ex/0001020).

The fast engine of ``physgen simulate``. A shower is drawn in three steps:

1. **Individual longitudinal profile.** ``(ln T, ln alpha)`` are correlated
   Gaussians whose means, widths and correlation depend on ``y = E / Ec_eff``
   (sampling-calorimeter parametrisation); the energy profile is the Gamma pdf
   ``f(t) = (beta t)^(alpha-1) beta exp(-beta t) / Gamma(alpha)`` with
   ``beta = (alpha - 1) / T`` and ``t`` in radiation lengths.
2. **Longitudinal steps.** The stack is walked in steps of at most one X0 that
   also stop at every readout-layer boundary; step ``[t1, t2)`` receives
   ``E [P(alpha, beta t2) - P(alpha, beta t1)]`` (regularised incomplete gamma),
   smeared by a Gamma distribution of variance ``c_s^2 E_step`` (E in GeV) that
   models the sampling fluctuations.
3. **Spots.** Each step's energy is split into equal-energy spots, their number
   following the spot profile (``N_S = 10.3 / c_s E^0.959``, Gamma with
   ``T_S = T (0.813 + 0.0019 Z)``, ``alpha_S = alpha (0.844 + 0.0026 Z)``). A spot
   lies at a uniform depth inside its step, at a radius drawn from the two-component
   (core + tail) radial profile ``r = R sqrt(u / (1 - u))`` in Moliere radii and a
   uniform azimuth; its energy goes to the readout layer of its step.

Photons first travel an exponential conversion depth of mean 9/7 X0.

Units and conventions (``../shared/reference/em-showers.md`` section 3.4): energies
in GeV inside the parametrisation, critical energies in MeV from the PDG table of
each material (mixed with the GFlash mass-weighted rules, which reproduce the worked
Par04 numbers: X0_eff 4.22 mm, Ec_eff 8.23 MeV, R_M,eff 10.9 mm), radiation lengths
in g/cm^2 for the mixing rules. Depth is measured in *local* radiation lengths,
``t(z) = integral dz / X0(z)``, which equals ``z / X0_eff`` at every period boundary of
a regular stack and handles dead material naturally.

Energy scale (calibration): GFlash parametrises the deposited energy of the whole
(effective) medium. The engine deposits ``E_spot * f_vis`` where
``f_vis = e/mip * f_mip`` is the electron visible fraction of the readout layer
(``e/mip = 1 / (1 + 0.007 (Z_passive - Z_active))``, ``f_mip`` the MIP sampling
fraction from dE/dx_min), so :meth:`GFlashEngine.simulate_one` returns *raw
active-material* energies on the same scale as the cascade engine, and
:attr:`GFlashEngine.sampling_fraction` is ``f_vis`` of the calorimeter section
(0.0255 for Par04). Dividing by it gives calibrated showers with
``E_tot / E_inc ~ 1`` minus geometric leakage (~1.5 % outside the 41.85 mm
readout of datasets 2/3). Readout layers without absorber (a LAr presampler)
have ``f_vis = 1``; dead slabs outside any readout layer absorb their share.

Deviations from the Geant4 code (its unit slips, em-showers.md 3.4.4) are
deliberate: Ec from g/cm^2 quantities, sampling smear in GeV, spot count from
the paper's sampling formula. Guards as in Geant4: sigma(ln T), sigma(ln alpha)
<= 0.5, T >= 1, alpha >= 1.1.

Example:
    >>> from physgen.calo.simulate.detector import get_detector
    >>> eng = GFlashEngine(get_detector("par04", geometry="2"))
    >>> round(eng.medium.x0_mm, 2), round(eng.sampling_fraction, 4)
    (4.22, 0.0255)
    >>> eng.simulate_one("electron", 10_000.0, seed=1).shape
    (6480,)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.calo.simulate.detector import Detector, Slab
from physgen.calo.simulate.gflash_kernel import (
    deposit_spots,
    radial_coefficients,
    radial_parameters,
    radial_table,
)
from physgen.calo.simulate.materials import ES_MEV, get_material
from physgen.calo.simulate.voxelise import voxel_table
from physgen.errors import SimulationError

__all__ = [
    "DEDX_MIN_MEV_CM2_G",
    "EffectiveMedium",
    "GFlashEngine",
    "ProfileParameters",
    "Spots",
    "effective_medium",
]

FloatArray = npt.NDArray[np.float64]

#: Minimum ionisation loss per material (PDG), MeV cm^2/g, for the MIP sampling fraction.
DEDX_MIN_MEV_CM2_G = {
    "W": 1.145,
    "Pb": 1.122,
    "Fe": 1.451,
    "Cu": 1.403,
    "Si": 1.664,
    "LAr": 1.508,
    "PbWO4": 1.229,
    "Scint": 1.956,
}

#: Mean photon conversion depth in radiation lengths (PDG).
CONVERSION_DEPTH_X0 = 9.0 / 7.0
#: Geant4's default sampling term (GeV^1/2); also the floor of the default c_s here.
DEFAULT_SAMPLING_TERM = 0.11
#: Depth (X0) of the calorimeter section whose mixture defines the effective medium.
SECTION_DEPTH_X0 = 20.0


def _dedx_min(name: str) -> float:
    mat = get_material(name)
    if mat.name in DEDX_MIN_MEV_CM2_G:
        return DEDX_MIN_MEV_CM2_G[mat.name]
    return 3.0 * mat.z_over_a  # rough Bethe minimum for materials not tabulated


@dataclass(frozen=True)
class EffectiveMedium:
    """A sampling structure as one homogeneous medium (GFlash mixing rules).

    Attributes:
        z: Mass-weighted atomic number Z_eff.
        a: Mass-weighted molar mass A_eff, g/mol.
        density: Mean density, g/cm^3.
        x0_gcm2: Radiation length, g/cm^2 (1/X0 = sum w_i / X0_i).
        x0_mm: Radiation length, mm.
        ec_mev: Critical energy Ec_eff = X0_eff sum w_i Ec_i / X0_i, MeV.
        rm_mm: Moliere radius Es / sum(w_i Ec_i / X0_i) / density, mm.
        period_mm: Thickness of one sampling period (passive + active), mm.
        z_passive: Mass-weighted Z of the passive slabs (= z if none).
        z_active: Mass-weighted Z of the active slabs (= z if none).
        f_mip: MIP sampling fraction (active share of the minimum-ionisation loss).
    """

    z: float
    a: float
    density: float
    x0_gcm2: float
    x0_mm: float
    ec_mev: float
    rm_mm: float
    period_mm: float
    z_passive: float
    z_active: float
    f_mip: float

    @property
    def sampling_frequency(self) -> float:
        """F_S = X0_eff / (d_active + d_passive)."""
        return self.x0_mm / self.period_mm

    @property
    def e_over_mip(self) -> float:
        """e/mip = 1 / (1 + 0.007 (Z_passive - Z_active)) (GFlash)."""
        return 1.0 / (1.0 + 0.007 * (self.z_passive - self.z_active))

    @property
    def visible_fraction(self) -> float:
        """Electron visible fraction f_vis = e/mip * f_mip."""
        return self.e_over_mip * self.f_mip


def effective_medium(slabs: tuple[Slab, ...] | list[Slab]) -> EffectiveMedium:
    """Mix slabs into an :class:`EffectiveMedium` (mass-weighted GFlash rules).

    Raises:
        SimulationError: If ``slabs`` is empty.
    """
    if not slabs:
        raise SimulationError("GFlash: cannot build an effective medium from no slabs")
    mats = [get_material(s.material) for s in slabs]
    mass = np.array([m.density * s.thickness_mm for m, s in zip(mats, slabs)])
    w = mass / mass.sum()
    z = float(sum(wi * m.z_eff for wi, m in zip(w, mats)))
    a = float(sum(wi * m.a_eff for wi, m in zip(w, mats)))
    depth = float(sum(s.thickness_mm for s in slabs))
    density = float(mass.sum() / depth)
    x0_gcm2 = 1.0 / float(sum(wi / m.x0_gcm2 for wi, m in zip(w, mats)))
    ec_over_x0 = float(sum(wi * m.critical_energy_mev / m.x0_gcm2 for wi, m in zip(w, mats)))
    n_active = sum(1 for s in slabs if s.active)

    def z_of(sel: list[bool]) -> float:
        ws = w[np.array(sel)]
        if ws.size == 0 or ws.sum() <= 0:
            return z
        zs = np.array([m.z_eff for m, k in zip(mats, sel) if k])
        return float((ws * zs).sum() / ws.sum())

    dedx = np.array([_dedx_min(m.name) for m in mats]) * mass
    act = np.array([s.active for s in slabs])
    f_mip = float(dedx[act].sum() / dedx.sum()) if act.any() else 0.0
    return EffectiveMedium(
        z=z,
        a=a,
        density=density,
        x0_gcm2=x0_gcm2,
        x0_mm=10.0 * x0_gcm2 / density,
        ec_mev=x0_gcm2 * ec_over_x0,
        rm_mm=10.0 * ES_MEV / ec_over_x0 / density,
        period_mm=depth / max(n_active, 1),
        z_passive=z_of([not s.active for s in slabs]),
        z_active=z_of([bool(s.active) for s in slabs]),
        f_mip=f_mip,
    )


@dataclass(frozen=True)
class ProfileParameters:
    """Longitudinal-profile parameters of the sampling parametrisation at one energy.

    Attributes:
        ln_y: ln(E / Ec_eff).
        t_avg: Average-profile shower maximum T_sam, X0.
        alpha_avg: Average-profile shape alpha_sam.
        beta_avg: (alpha_avg - 1) / t_avg, 1/X0.
        mean_ln_t: <ln T> of individual showers.
        mean_ln_alpha: <ln alpha> of individual showers.
        sigma_ln_t: sigma(ln T) (capped at 0.5).
        sigma_ln_alpha: sigma(ln alpha) (capped at 0.5).
        rho: Correlation of ln T and ln alpha.
    """

    ln_y: float
    t_avg: float
    alpha_avg: float
    beta_avg: float
    mean_ln_t: float
    mean_ln_alpha: float
    sigma_ln_t: float
    sigma_ln_alpha: float
    rho: float


@dataclass(frozen=True)
class Spots:
    """The energy spots of one shower (before the visible-fraction weighting).

    Attributes:
        t: Depth, local radiation lengths from the front face.
        r_mm: Radius from the shower axis, mm.
        phi: Azimuth in [-pi, pi) (the ``atan2(y, x)`` convention of the readout), rad.
        energy_mev: Spot energy (full deposited energy), MeV.
        layer: Readout-layer index (into ``geometry.relevant_layers``), -1 for none.
        visible_fraction: Fraction of the spot energy seen by the active material.
        leaked_mev: Energy beyond the back of the stack (not in any spot), MeV.
    """

    t: FloatArray
    r_mm: FloatArray
    phi: FloatArray
    energy_mev: FloatArray
    layer: npt.NDArray[np.int64]
    visible_fraction: FloatArray
    leaked_mev: float

    @property
    def x_mm(self) -> FloatArray:
        """x = r cos(phi), mm."""
        return self.r_mm * np.cos(self.phi)

    @property
    def y_mm(self) -> FloatArray:
        """y = r sin(phi), mm."""
        return self.r_mm * np.sin(self.phi)


@dataclass
class _ShowerPlan:
    """One shower after steps 1-2: per-step depths, layers and spot counts (see ``_plan``)."""

    rng: np.random.Generator
    e_gev: float
    t_start: float
    tau_scale: float
    lo: FloatArray
    width: FloatArray
    layer: npt.NDArray[np.int64]
    visible_fraction: FloatArray
    spot_energy_mev: FloatArray
    n_spots: npt.NDArray[np.int64]
    leaked_mev: float

    def uniforms(self) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
        """Depth, core/tail, radius and azimuth uniforms of all spots, drawn in that order."""
        m = int(self.n_spots.sum())
        return self.rng.random(m), self.rng.random(m), self.rng.random(m), self.rng.random(m)


def _inv_sigma(denominator: float) -> float:
    """1 / denominator, capped at 0.5 (Geant4's guard for small y)."""
    return 1.0 / denominator if denominator > 2.0 else 0.5


class GFlashEngine:
    """Grindhammer-Peters parametrised showers in a detector's sampling stack.

    Args:
        detector: The stack and readout geometry.
        sampling_term: c_s in GeV^1/2 for the sampling fluctuations and spot count;
            default ``max(0.11, Wigmans estimate 0.027 sqrt(d_active[mm] / f_mip))``.
        visible_fraction: Override the calorimeter section's visible fraction (e.g. with
            the cascade engine's measured constant, to put both raw outputs on one
            scale); every readout layer's fraction is scaled by the same factor.
            Default ``e/mip * f_mip`` of the section.
        section_depth_x0: Depth of readout material (X0) whose mixture defines the
            effective medium (rounded up to whole sampling periods).

    Attributes:
        name: ``"gflash"``.
        medium: The :class:`EffectiveMedium` of the calorimeter section.
        sampling_fraction: Raw-to-deposited calibration constant (= ``medium.visible_fraction``).
    """

    name = "gflash"

    def __init__(
        self,
        detector: Detector,
        *,
        sampling_term: float | None = None,
        visible_fraction: float | None = None,
        section_depth_x0: float = SECTION_DEPTH_X0,
    ) -> None:
        self.detector = detector
        slabs = detector.slabs
        x0 = np.array([get_material(s.material).x0_mm for s in slabs])
        thick = np.array([s.thickness_mm for s in slabs])
        t_edges = np.concatenate([[0.0], np.cumsum(thick / x0)])  # depth in local X0

        section: list[Slab] = []
        depth = 0.0
        for s, tx in zip(slabs, thick / x0):
            if s.readout_layer is None:
                continue
            if depth >= section_depth_x0 and section and section[-1].active:
                break
            section.append(s)
            depth += float(tx)
        if not any(s.active for s in section):
            raise SimulationError(f"GFlash: detector {detector.name!r} has no active slab")
        self.medium = effective_medium(section)
        d_active = float(np.mean([s.thickness_mm for s in section if s.active]))
        if sampling_term is None:
            wigmans = 0.027 * math.sqrt(d_active / max(self.medium.f_mip, 1e-9))
            sampling_term = max(DEFAULT_SAMPLING_TERM, wigmans)
        if not 0.01 <= sampling_term <= 1.0:  # the spot count grows as 1/c_s
            raise SimulationError(
                f"GFlash: sampling_term must be in [0.01, 1] GeV^1/2, got {sampling_term}"
            )
        self.sampling_term = float(sampling_term)
        self.sampling_fraction = float(self.medium.visible_fraction)
        vis_scale = 1.0
        if visible_fraction is not None:
            if not 0.0 < visible_fraction <= 1.0:
                raise SimulationError(
                    f"GFlash: visible_fraction must be in (0, 1], got {visible_fraction}"
                )
            vis_scale = visible_fraction / self.sampling_fraction
            self.sampling_fraction = float(visible_fraction)

        # Segments: maximal runs of slabs with the same readout layer; each gets its
        # own visible fraction and is cut into steps of at most one X0.
        layer_index = {layer.id: i for i, layer in enumerate(detector.geometry.relevant_layers)}
        edges: list[float] = [0.0]
        step_layer: list[int] = []
        step_vis: list[float] = []
        i = 0
        while i < len(slabs):
            j = i
            while j + 1 < len(slabs) and slabs[j + 1].readout_layer == slabs[i].readout_layer:
                j += 1
            seg = slabs[i : j + 1]
            rid = slabs[i].readout_layer
            lay = layer_index[rid] if rid is not None else -1
            if lay >= 0 and any(s.active for s in seg):
                if all(s.active for s in seg):
                    vis = 1.0
                else:
                    vis = effective_medium(seg).visible_fraction
            else:
                lay, vis = -1, 0.0
            t0, t1 = float(t_edges[i]), float(t_edges[j + 1])
            n_steps = max(1, math.ceil((t1 - t0) / 1.0 - 1e-9))
            for k in range(1, n_steps + 1):
                edges.append(t0 + (t1 - t0) * k / n_steps)
                step_layer.append(lay)
                step_vis.append(vis)
            i = j + 1
        self._step_edges = np.array(edges)
        self._step_layer = np.array(step_layer, dtype=np.int64)
        self._step_vis = np.minimum(np.array(step_vis) * vis_scale, 1.0)
        self._table = voxel_table(detector.geometry)
        self.n_voxels = int(self._table.n_voxels)

    # -- parametrisation ---------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The engine's resolved configuration (for provenance)."""
        return {
            "engine": self.name,
            "sampling_term_gev_sqrt": self.sampling_term,
            "sampling_fraction": self.sampling_fraction,
            "medium": asdict(self.medium),
        }

    def profile_parameters(self, energy_mev: float) -> ProfileParameters:
        """Average and fluctuated longitudinal parameters at ``energy_mev`` (em-showers.md 3.4.2)."""
        m = self.medium
        ln_y = math.log(energy_mev / m.ec_mev)
        fs = m.sampling_frequency
        one_m_e = 1.0 - m.e_over_mip
        t_hom = ln_y - 0.858
        alpha_hom = 0.21 + (0.492 + 2.38 / m.z) * ln_y
        t_avg = t_hom - 0.59 / fs - 0.53 * one_m_e
        alpha_avg = alpha_hom - 0.444 / fs
        t_ind = (ln_y - 0.812) - 0.55 / fs - 0.69 * one_m_e
        a_ind = (0.81 + (0.458 + 2.26 / m.z) * ln_y) - 0.476 / fs
        if t_ind <= 0 or a_ind <= 0 or t_avg <= 0 or alpha_avg <= 1:
            raise SimulationError(
                f"GFlash: energy {energy_mev:g} MeV is too low for the parametrisation "
                f"(E/Ec_eff = {math.exp(ln_y):.3g})"
            )
        return ProfileParameters(
            ln_y=ln_y,
            t_avg=t_avg,
            alpha_avg=alpha_avg,
            beta_avg=(alpha_avg - 1.0) / t_avg,
            mean_ln_t=math.log(t_ind),
            mean_ln_alpha=math.log(a_ind),
            sigma_ln_t=_inv_sigma(-2.5 + 1.25 * ln_y),
            sigma_ln_alpha=_inv_sigma(-0.82 + 0.79 * ln_y),
            rho=0.784 - 0.023 * ln_y,
        )

    def validate(self, particle: str, energies_mev: npt.ArrayLike) -> None:
        """Raise :class:`SimulationError` if GFlash cannot simulate this request."""
        if particle not in ("electron", "positron", "photon"):
            raise SimulationError(
                f"--particle: GFlash simulates electron, positron or photon, not {particle!r}"
            )
        e = np.asarray(energies_mev, dtype=np.float64)
        if e.size:
            self.profile_parameters(float(e.min()))

    def sample_profile(self, energy_mev: float, rng: np.random.Generator) -> tuple[float, float]:
        """Draw one shower's ``(T, alpha)`` from the correlated log-normal."""
        p = self.profile_parameters(energy_mev)
        z1, z2 = rng.standard_normal(2)
        rho = min(max(p.rho, -1.0), 1.0)
        a, b = math.sqrt((1 + rho) / 2), math.sqrt((1 - rho) / 2)
        t = math.exp(p.mean_ln_t + p.sigma_ln_t * (a * z1 + b * z2))
        alpha = math.exp(p.mean_ln_alpha + p.sigma_ln_alpha * (a * z1 - b * z2))
        return max(t, 1.0), max(alpha, 1.1)

    def _radial(
        self, tau: FloatArray, energy_gev: float
    ) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Core radius, tail radius (Moliere radii) and core probability at depths ``tau``."""
        return radial_parameters(tau, self._radial_coefficients(energy_gev))

    def _radial_coefficients(self, energy_gev: float) -> FloatArray:
        m = self.medium
        return radial_coefficients(energy_gev, m.z, m.sampling_frequency, m.e_over_mip)

    # -- generation --------------------------------------------------------------------

    def _plan(self, particle: str, energy_mev: float, seed: int) -> _ShowerPlan | None:
        """Steps 1-2 of the module doc for one shower: the profile and the spot counts.

        Returns None when a photon converts behind the stack. Draws from ``rng`` in a
        fixed order; the spot positions are drawn afterwards by the caller.
        """
        from scipy.special import gammainc

        if particle not in ("electron", "positron", "photon"):
            raise SimulationError(
                f"--particle: GFlash simulates electron, positron or photon, not {particle!r}"
            )
        rng = np.random.default_rng(seed)
        e_gev = energy_mev / 1e3
        t_shape, alpha = self.sample_profile(energy_mev, rng)
        beta = (alpha - 1.0) / t_shape
        avg = self.profile_parameters(energy_mev)
        tau_scale = (avg.alpha_avg / (avg.alpha_avg - 1.0)) / (alpha / beta)
        t_start = rng.exponential(CONVERSION_DEPTH_X0) if particle == "photon" else 0.0

        edges = self._step_edges
        t_end = float(edges[-1])
        if t_start >= t_end:
            return None
        first = int(np.searchsorted(edges, t_start, side="right")) - 1
        lo = np.concatenate([[t_start], edges[first + 1 : -1]])
        hi = edges[first + 1 :]

        # Energy and spot fractions per step (relative depth from the shower start).
        frac = np.diff(gammainc(alpha, beta * np.concatenate([[0.0], hi - t_start])))
        leaked_frac = max(0.0, 1.0 - float(gammainc(alpha, beta * (t_end - t_start))))
        c_s = self.sampling_term
        step_gev = e_gev * frac
        smeared = rng.gamma(np.maximum(step_gev, 0.0) / c_s**2, c_s**2)
        alpha_s = alpha * (0.844 + 0.0026 * self.medium.z)
        t_s = t_shape * (0.813 + 0.0019 * self.medium.z)
        beta_s = (alpha_s - 1.0) / t_s
        n_total = 10.3 / c_s * e_gev**0.959
        spot_frac = np.diff(gammainc(alpha_s, beta_s * np.concatenate([[0.0], hi - t_start])))
        n_spots = np.rint(n_total * spot_frac).astype(np.int64)
        n_spots = np.where(smeared > 0, np.maximum(n_spots, 1), 0)
        return _ShowerPlan(
            rng=rng,
            e_gev=e_gev,
            t_start=t_start,
            tau_scale=tau_scale,
            lo=lo,
            width=hi - lo,
            layer=self._step_layer[first:],
            visible_fraction=self._step_vis[first:],
            spot_energy_mev=smeared * 1e3 / np.maximum(n_spots, 1),
            n_spots=n_spots,
            leaked_mev=energy_mev * leaked_frac,
        )

    def simulate_spots(self, particle: str, energy_mev: float, seed: int) -> Spots:
        """Generate one shower as energy spots (full deposited energy, before f_vis).

        The spot-level view of :meth:`simulate_one` (same seed, same random numbers; the
        radial profile exact here, interpolated there), vectorised
        with numpy: for inspecting and testing the parametrisation.

        Args:
            particle: ``"electron"``, ``"positron"`` or ``"photon"``.
            energy_mev: Incident energy, MeV.
            seed: Non-negative integer seed; the same seed gives the same shower.
        """
        plan = self._plan(particle, energy_mev, seed)
        if plan is None:
            empty = np.zeros(0)
            return Spots(empty, empty, empty, empty, np.zeros(0, np.int64), empty, energy_mev)
        step_of_spot = np.repeat(np.arange(plan.n_spots.size), plan.n_spots)
        u_t, u_comp, u_r, u_phi = plan.uniforms()
        t = plan.lo[step_of_spot] + plan.width[step_of_spot] * u_t
        tau = (t - plan.t_start) * plan.tau_scale  # t_rel / <t>_ind * (<t>/T)_avg
        r_c, r_t, p_core = self._radial(tau, plan.e_gev)
        radius = np.where(u_comp < p_core, r_c, r_t) * self.medium.rm_mm
        u_r = np.minimum(u_r, 1.0 - 1e-12)
        r = radius * np.sqrt(u_r / (1.0 - u_r))
        phi = 2.0 * np.pi * u_phi - np.pi
        return Spots(
            t=t,
            r_mm=r,
            phi=phi,
            energy_mev=plan.spot_energy_mev[step_of_spot],
            layer=plan.layer[step_of_spot],
            visible_fraction=plan.visible_fraction[step_of_spot],
            leaked_mev=plan.leaked_mev,
        )

    def simulate_one(self, particle: str, energy_mev: float, seed: int) -> FloatArray:
        """One shower as raw active-material voxel energies (MeV), ``(n_voxels,)`` float64.

        The spots of :meth:`simulate_spots`, placed and scored by a compiled kernel
        (:func:`~physgen.calo.simulate.gflash_kernel.deposit_spots`). Divide by
        :attr:`sampling_fraction` for the calibrated (deposited) energy.
        """
        out = np.zeros(self.n_voxels, dtype=np.float64)
        plan = self._plan(particle, energy_mev, seed)
        if plan is None:
            return out
        tb = self._table
        deposit_spots(
            out,
            plan.n_spots,
            plan.lo,
            plan.width,
            plan.layer,
            plan.spot_energy_mev * plan.visible_fraction,
            *plan.uniforms(),
            plan.t_start,
            plan.tau_scale,
            radial_table(
                float(self._step_edges[-1] - plan.t_start) * plan.tau_scale,
                self._radial_coefficients(plan.e_gev),
            ),
            self.medium.rm_mm,
            tb.kind,
            tb.offset,
            tb.n_a,
            tb.n_b,
            tb.b_edges,
            tb.b_start,
            tb.a_edges,
            tb.a_start,
        )
        return out
