"""GFlash engine: parameters against em-showers.md 3.4.3, generated showers against the model."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import least_squares
from scipy.special import gammainc

from physgen.calo.simulate.detector import get_detector
from physgen.calo.simulate.engine import ShowerEngine, get_engine
from physgen.calo.simulate.gflash import GFlashEngine, effective_medium
from physgen.errors import SimulationError


@pytest.fixture(scope="module")
def par04() -> GFlashEngine:
    return GFlashEngine(get_detector("par04", geometry="2"))


def test_effective_medium_par04(par04: GFlashEngine) -> None:
    # em-showers.md 1.3 / 3.4.3: X0_eff 4.22 mm, Ec_eff 8.23 MeV, RM_eff 10.88 mm, Z_eff 72.5,
    # rho_eff 16.31, F_S 2.48, e/mip 0.704, f_mip 0.0362.
    m = par04.medium
    assert m.x0_mm == pytest.approx(4.22, abs=0.01)
    assert m.x0_gcm2 == pytest.approx(6.88, abs=0.01)
    assert m.ec_mev == pytest.approx(8.23, abs=0.01)
    assert m.rm_mm == pytest.approx(10.88, abs=0.02)
    assert m.z == pytest.approx(72.5, abs=0.05)
    assert m.density == pytest.approx(16.31, abs=0.01)
    assert m.sampling_frequency == pytest.approx(2.48, abs=0.01)
    assert m.e_over_mip == pytest.approx(0.704, abs=0.001)
    assert m.f_mip == pytest.approx(0.0362, abs=0.0002)
    # calibration constant = e/mip * f_mip (em-showers.md 3.3: ~0.025)
    assert par04.sampling_fraction == pytest.approx(0.704 * 0.0362, rel=0.01)
    assert par04.sampling_term == pytest.approx(0.11)


def test_effective_medium_of_a_pure_material_is_the_material() -> None:
    from physgen.calo.simulate.detector import Slab
    from physgen.calo.simulate.materials import get_material

    m = effective_medium([Slab("W", 3.0, active=True)])
    w = get_material("W")
    assert m.x0_mm == pytest.approx(w.x0_mm)
    assert m.rm_mm == pytest.approx(w.moliere_radius_mm)
    assert m.ec_mev == pytest.approx(w.critical_energy_mev)
    assert m.e_over_mip == pytest.approx(1.0)


# E (GeV): ln y, T_sam, alpha_sam, beta, sigma(ln T), sigma(ln alpha)  (em-showers.md 3.4.3)
WORKED = [
    (1, 4.80, 3.55, 2.55, 0.44, 0.29, 0.34),
    (10, 7.10, 5.85, 3.76, 0.47, 0.16, 0.21),
    (100, 9.41, 8.15, 4.97, 0.49, 0.11, 0.15),
    (1000, 11.71, 10.46, 6.18, 0.50, 0.08, 0.12),
]


@pytest.mark.parametrize(("e_gev", "ln_y", "t", "alpha", "beta", "s_t", "s_a"), WORKED)
def test_profile_parameters_reproduce_worked_numbers(
    par04: GFlashEngine,
    e_gev: float,
    ln_y: float,
    t: float,
    alpha: float,
    beta: float,
    s_t: float,
    s_a: float,
) -> None:
    p = par04.profile_parameters(e_gev * 1e3)
    assert p.ln_y == pytest.approx(ln_y, abs=0.006)
    assert p.t_avg == pytest.approx(t, abs=0.006)
    assert p.alpha_avg == pytest.approx(alpha, abs=0.006)
    assert p.beta_avg == pytest.approx(beta, abs=0.006)
    assert p.sigma_ln_t == pytest.approx(s_t, abs=0.006)
    assert p.sigma_ln_alpha == pytest.approx(s_a, abs=0.006)
    assert p.rho == pytest.approx(0.784 - 0.023 * ln_y, abs=0.001)
    # depth of the maximum in mm (table: 15.0 / 24.7 / 34.4 / 44.1 mm)
    assert p.t_avg * par04.medium.x0_mm == pytest.approx(t * 4.22, abs=0.1)


def test_radial_profile_at_shower_maximum(par04: GFlashEngine) -> None:
    # em-showers.md 3.4.3: at tau = 1 (10 GeV) R_C ~ 0.12 RM, R_T ~ 0.57 RM, p ~ 0.90
    r_c, r_t, p = par04._radial(np.array([1.0]), 10.0)
    assert r_c[0] == pytest.approx(0.12, abs=0.005)
    assert r_t[0] == pytest.approx(0.57, abs=0.01)
    assert p[0] == pytest.approx(0.90, abs=0.01)


def test_fluctuated_parameters_statistics(par04: GFlashEngine) -> None:
    rng = np.random.default_rng(3)
    draws = np.array([par04.sample_profile(10e3, rng) for _ in range(4000)])
    ln_t, ln_a = np.log(draws[:, 0]), np.log(draws[:, 1])
    p = par04.profile_parameters(10e3)
    assert ln_t.mean() == pytest.approx(p.mean_ln_t, abs=0.01)
    assert ln_a.mean() == pytest.approx(p.mean_ln_alpha, abs=0.01)
    assert ln_t.std() == pytest.approx(p.sigma_ln_t, rel=0.05)
    assert ln_a.std() == pytest.approx(p.sigma_ln_alpha, rel=0.05)
    assert np.corrcoef(ln_t, ln_a)[0, 1] == pytest.approx(p.rho, abs=0.04)


def _mean_profile(
    eng: GFlashEngine, e_mev: float, n: int, particle: str = "electron"
) -> tuple[np.ndarray, np.ndarray]:
    edges = eng._step_edges
    hs = []
    for s in range(n):
        sp = eng.simulate_spots(particle, e_mev, s)
        hs.append(np.histogram(sp.t, edges, weights=sp.energy_mev)[0] / e_mev)
    return edges, np.mean(hs, axis=0)


def _gamma_fit(edges: np.ndarray, h: np.ndarray) -> tuple[float, float]:
    res = least_squares(
        lambda q: q[2] * np.diff(gammainc(q[0], q[1] * edges)) - h,
        x0=(4.0, 0.5, 1.0),
        bounds=([1.01, 0.05, 0.5], [30.0, 3.0, 1.5]),
    )
    a, b, _ = res.x
    return (a - 1) / b, a


@pytest.mark.parametrize(("e_gev", "t_sam", "alpha_sam"), [(10, 5.85, 3.76), (100, 8.15, 4.97)])
def test_mean_profile_gamma_fit(
    par04: GFlashEngine, e_gev: float, t_sam: float, alpha_sam: float
) -> None:
    # em-showers.md section 9, target 9: T within 0.6 X0_eff, alpha within 15 %
    edges, h = _mean_profile(par04, e_gev * 1e3, 150)
    t, a = _gamma_fit(edges, h)
    assert t == pytest.approx(t_sam, abs=0.3)
    assert a == pytest.approx(alpha_sam, rel=0.08)


def test_photons_start_deeper(par04: GFlashEngine) -> None:
    edges, he = _mean_profile(par04, 10e3, 150, "electron")
    _, hg = _mean_profile(par04, 10e3, 150, "photon")
    centres = 0.5 * (edges[1:] + edges[:-1])
    shift = (centres * hg).sum() / hg.sum() - (centres * he).sum() / he.sum()
    assert shift == pytest.approx(9 / 7, abs=0.3)


@pytest.mark.parametrize("e_gev", [10, 100])
def test_lateral_containment(par04: GFlashEngine, e_gev: float) -> None:
    # em-showers.md 3.2 / section 9 target 7: 0.90 within RM_eff, >= 0.97 inside 41.85 mm
    rm = par04.medium.rm_mm
    f1, f_read, f35 = [], [], []
    for s in range(60):
        sp = par04.simulate_spots("electron", e_gev * 1e3, s)
        w = sp.energy_mev / sp.energy_mev.sum()
        f1.append(w[sp.r_mm < rm].sum())
        f35.append(w[sp.r_mm < 3.5 * rm].sum())
        f_read.append(w[sp.r_mm < 41.85].sum())
    assert np.mean(f1) == pytest.approx(0.90, abs=0.02)
    assert np.mean(f35) >= 0.98
    assert np.mean(f_read) >= 0.97


@pytest.mark.parametrize("e_gev", [1, 10, 100])
def test_calibrated_response_and_resolution(par04: GFlashEngine, e_gev: float) -> None:
    n = 200
    resp = (
        np.array([par04.simulate_one("electron", e_gev * 1e3, s).sum() for s in range(n)])
        / par04.sampling_fraction
        / (e_gev * 1e3)
    )
    # sigma/E = c_s / sqrt(E) (c_s = 0.11 GeV^1/2), plus a little leakage fluctuation
    expected = par04.sampling_term / math.sqrt(e_gev)
    # ~1.1 % lateral leakage out of the 41.85 mm readout, < 0.1 % at the back;
    # tolerance: 4 standard errors of the mean plus 0.5 %
    assert resp.mean() == pytest.approx(0.989, abs=0.005 + 4 * expected / math.sqrt(n))
    assert resp.std(ddof=1) == pytest.approx(expected, rel=0.25)


def test_energy_conservation_of_spots(par04: GFlashEngine) -> None:
    # spots plus back leakage carry E on average (the smear has mean 1, sigma c_s/sqrt(E))
    e_mev, n = 50e3, 50
    tot = [
        (sp.energy_mev.sum() + sp.leaked_mev) / e_mev
        for sp in (par04.simulate_spots("electron", e_mev, s) for s in range(n))
    ]
    sigma = par04.sampling_term / math.sqrt(e_mev / 1e3)
    assert np.mean(tot) == pytest.approx(1.0, abs=4 * sigma / math.sqrt(n))
    assert par04.simulate_spots("electron", e_mev, 1).leaked_mev < 0.001 * e_mev


def test_determinism_and_seed_dependence(par04: GFlashEngine) -> None:
    a = par04.simulate_one("electron", 20e3, 123)
    b = GFlashEngine(get_detector("par04", geometry="2")).simulate_one("electron", 20e3, 123)
    c = par04.simulate_one("electron", 20e3, 124)
    assert a.dtype == np.float64 and a.shape == (6480,)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert (a >= 0).all()


def test_engine_protocol_and_registry() -> None:
    det = get_detector("par04", geometry="3")
    eng = get_engine("gflash", det)
    assert isinstance(eng, ShowerEngine)
    assert eng.name == "gflash"
    assert eng.simulate_one("photon", 5e3, 1).shape == (40500,)
    with pytest.raises(SimulationError, match=r"--engine.*gflash"):
        get_engine("geant5", det)
    for bad in (-1.0, 1e-6):
        with pytest.raises(SimulationError, match="sampling_term"):
            get_engine("gflash", det, sampling_term=bad)


@pytest.mark.parametrize(("name", "geometry"), [("calogan", None), ("atlas-like", None)])
def test_other_detectors(name: str, geometry: str | None) -> None:
    det = get_detector(name, geometry=geometry)
    eng = GFlashEngine(det)
    lo = det.energy_range_mev[0]
    eng.validate("photon", [lo])
    x = eng.simulate_one("photon", max(lo, 1e3), 2)
    assert x.shape == (det.geometry.n_voxels,)
    assert x.sum() > 0
    assert 0 < eng.sampling_fraction < 1


def test_rejects_bad_particle_and_too_low_energy(par04: GFlashEngine) -> None:
    with pytest.raises(SimulationError, match="--particle"):
        par04.simulate_one("pion", 10e3, 1)
    with pytest.raises(SimulationError, match="too low"):
        par04.profile_parameters(20.0)


@pytest.mark.parametrize("geometry", ["2", "3", "1-photons", "1-pions", "calogan"])
def test_polar_voxel_index_matches_reference(geometry: str) -> None:
    from physgen.calo.geometry import get_geometry
    from physgen.calo.simulate.voxelise import voxel_index_polar, voxel_table, voxelise

    table = voxel_table(get_geometry(geometry))
    rng = np.random.default_rng(1)
    m = 20000
    layer = rng.integers(-1, table.kind.shape[0], m)
    r, phi = np.abs(rng.normal(0, 150, m)), rng.uniform(-np.pi, np.pi, m)
    x, y = r * np.cos(phi), r * np.sin(phi)
    e = rng.random(m)
    out = np.zeros(table.n_voxels)
    for i in range(m):
        j = voxel_index_polar(int(layer[i]), float(r[i]), float(phi[i]), *table[:-1])
        if j >= 0:
            out[j] += e[i]
    ref = voxelise(layer, x, y, e, table)
    # (x, y) -> (r, phi) round trips can move a point sitting on an edge: allow 1e-4
    assert np.abs(out - ref).sum() <= 1e-4 * ref.sum()


def test_radial_table_interpolates_the_radial_profile(par04: GFlashEngine) -> None:
    from physgen.calo.simulate.gflash_kernel import (
        RADIAL_TABLE_STEP,
        radial_parameters,
        radial_table,
    )

    for e_gev in (1.0, 100.0, 1000.0):
        c = par04._radial_coefficients(e_gev)
        table = radial_table(8.0, c)
        tau = np.random.default_rng(0).uniform(0, 8.0, 20000)
        k, f = np.floor(tau / RADIAL_TABLE_STEP).astype(int), tau / RADIAL_TABLE_STEP % 1.0
        interp = table[:, k] + f * (table[:, k + 1] - table[:, k])
        exact = np.stack(radial_parameters(tau, c))
        assert np.max(np.abs(interp / exact - 1)[:2]) < 5e-5  # radii (tail radius: 2e-5)
        assert np.max(np.abs(interp[2] - exact[2])) < 2e-5  # core probability


@pytest.mark.parametrize(
    ("name", "geometry"), [("par04", "2"), ("atlas-like", "1-photons"), ("calogan", None)]
)
def test_compiled_showers_equal_the_vectorised_spots(name: str, geometry: str | None) -> None:
    """simulate_one (kernel, tabulated radial profile) vs scoring simulate_spots (exact)."""
    from physgen.calo.simulate.voxelise import voxelise

    eng = GFlashEngine(get_detector(name, geometry=geometry))
    for seed, (particle, e_mev) in enumerate(
        [("electron", 2e3), ("photon", 5e4), ("electron", 3e5), ("positron", 1e4)]
    ):
        fast = eng.simulate_one(particle, e_mev, seed)
        sp = eng.simulate_spots(particle, e_mev, seed)
        x, y = sp.r_mm * np.cos(sp.phi), sp.r_mm * np.sin(sp.phi)
        ref = voxelise(sp.layer, x, y, sp.energy_mev * sp.visible_fraction, eng._table)
        assert fast.sum() == pytest.approx(ref.sum(), rel=1e-3)
        # a handful of the thousands of spots may cross a bin edge (interpolated radii)
        assert np.abs(fast - ref).sum() <= 1e-3 * ref.sum()


def test_visible_fraction_override_only_rescales_raw(par04: GFlashEngine) -> None:
    other = GFlashEngine(get_detector("par04", geometry="2"), visible_fraction=0.034)
    assert other.sampling_fraction == 0.034
    a = par04.simulate_one("electron", 30e3, 9) / par04.sampling_fraction
    b = other.simulate_one("electron", 30e3, 9) / other.sampling_fraction
    np.testing.assert_allclose(a, b, rtol=1e-12)
    with pytest.raises(SimulationError, match="visible_fraction"):
        GFlashEngine(get_detector("par04", geometry="2"), visible_fraction=1.5)


def test_per_shower_fits_reproduce_fluctuations(par04: GFlashEngine) -> None:
    # em-showers.md section 9, target 9: per-shower gamma fits at 10 GeV give
    # sigma(ln T) ~ 0.16 (+-30 %) and rho(ln T, ln alpha) ~ 0.62 (+-0.1)
    edges = par04._step_edges
    ln_t, ln_a = [], []
    for s in range(200):
        sp = par04.simulate_spots("electron", 10e3, s)
        h = np.histogram(sp.t, edges, weights=sp.energy_mev)[0] / 10e3
        t, a = _gamma_fit(edges, h)
        ln_t.append(math.log(t))
        ln_a.append(math.log(a))
    assert np.std(ln_t) == pytest.approx(0.16, rel=0.3)
    assert np.std(ln_a) == pytest.approx(0.21, rel=0.3)
    assert np.corrcoef(ln_t, ln_a)[0, 1] == pytest.approx(0.62, abs=0.1)
