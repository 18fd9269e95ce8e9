"""The differentiable GFlash: medium, special functions, gradients, binning, agreement with numba."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from physgen.calo.simulate.detector import Slab, get_detector
from physgen.calo.simulate.gflash import GFlashEngine, effective_medium
from physgen.diffsim.calo_binning import mixture_radius
from physgen.diffsim.calo_medium import dgammainc_da, gamma_quantile, gammainc, period_medium
from physgen.diffsim.calorimeter import DiffGFlash, SamplingStack, par04_stack
from physgen.errors import ConfigError, PhysgenError

F64 = torch.float64


def _t(v: float, grad: bool = False) -> torch.Tensor:
    return torch.tensor(v, dtype=F64, requires_grad=grad)


@pytest.mark.parametrize(
    ("absorber", "d_abs", "active", "d_act"),
    [("W", 1.4, "Si", 0.3), ("Pb", 5.0, "LAr", 4.0), ("Fe", 14.0, "Scint", 3.0)],
)
def test_medium_equals_gflash_mixing_rules(
    absorber: str, d_abs: float, active: str, d_act: float
) -> None:
    ref = effective_medium([Slab(absorber, d_abs), Slab(active, d_act, active=True)])
    m = period_medium(absorber, _t(d_abs), active, _t(d_act))
    for name in ("z", "density", "x0_mm", "ec_mev", "rm_mm", "period_mm", "f_mip"):
        assert float(getattr(m, name)) == pytest.approx(getattr(ref, name), rel=1e-12), name
    for name in ("sampling_frequency", "e_over_mip", "visible_fraction"):
        assert float(getattr(m, name)) == pytest.approx(getattr(ref, name), rel=1e-12), name


def test_par04_numbers() -> None:
    sim = DiffGFlash(par04_stack(), "2")
    m = sim.medium()
    assert round(float(m.x0_mm), 2) == 4.22
    assert round(float(m.ec_mev), 2) == 8.23
    assert round(float(m.rm_mm), 1) == 10.9
    assert round(float(m.visible_fraction), 4) == 0.0255
    eng = GFlashEngine(get_detector("par04", geometry="2"))
    assert float(sim.sampling_term(m)) == pytest.approx(eng.sampling_term)
    edges = sim.step_edges(m).numpy()
    np.testing.assert_allclose(edges, eng._step_edges, rtol=1e-12, atol=1e-12)


def _p(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    from scipy.special import gammainc as p

    return torch.as_tensor(p(a.numpy(), x.numpy()))


@pytest.mark.parametrize("a", [0.3, 1.1, 4.0, 29.5, 30.5, 120.0, 5000.0])
def test_incomplete_gamma_derivatives(a: float) -> None:
    from scipy.special import gammaincinv

    x = torch.tensor(gammaincinv(a, [0.02, 0.3, 0.5, 0.8, 0.98]), dtype=F64)
    at = torch.full_like(x, a)
    h = 1e-5 * max(1.0, a**0.5)
    fd = (_p(at + h, x) - _p(at - h, x)) / (2 * h)
    np.testing.assert_allclose(dgammainc_da(at, x).numpy(), fd.numpy(), rtol=1e-6)
    ag, xg = at.clone().requires_grad_(), x.clone().requires_grad_()
    gammainc(ag, xg).sum().backward()
    assert ag.grad is not None and xg.grad is not None
    np.testing.assert_allclose(ag.grad.numpy(), fd.numpy(), rtol=1e-6)
    hx = 1e-6 * x
    fdx = (_p(at, x + hx) - _p(at, x - hx)) / (2 * hx)
    np.testing.assert_allclose(xg.grad.numpy(), fdx.numpy(), rtol=1e-6)


def test_gamma_quantile_is_the_gamma_and_its_derivative() -> None:
    k = torch.tensor([0.02, 0.4, 2.0, 35.0, 800.0], dtype=F64, requires_grad=True)
    u = torch.tensor([0.3, 0.7, 0.5, 0.1, 0.9], dtype=F64)
    x = gamma_quantile(k, u)
    np.testing.assert_allclose(_p(k.detach(), x.detach()).numpy(), u, rtol=1e-12)
    x.sum().backward()
    assert k.grad is not None
    h = 1e-6 * k.detach()
    fd = (gamma_quantile(k.detach() + h, u) - gamma_quantile(k.detach() - h, u)) / (2 * h)
    np.testing.assert_allclose(k.grad.numpy(), fd.numpy(), rtol=1e-6)
    uu = torch.rand(200_000, dtype=F64, generator=torch.Generator().manual_seed(1))
    draws = 0.05 * gamma_quantile(torch.full_like(uu, 3.0), uu)  # scale 0.05, shape 3
    assert float(draws.mean()) == pytest.approx(0.15, rel=0.01)
    assert float(draws.var()) == pytest.approx(0.0075, rel=0.02)


def test_mixture_radius_inverts_the_core_tail_cdf() -> None:
    g = torch.Generator().manual_seed(2)
    n = 1000
    u = torch.rand(n, dtype=F64, generator=g).clamp(1e-6, 1 - 1e-6)
    r_c = 0.05 + torch.rand(n, dtype=F64, generator=g)
    r_t = r_c + 2 * torch.rand(n, dtype=F64, generator=g)
    p = torch.rand(n, dtype=F64, generator=g)
    s = mixture_radius(r_c, r_t, p, u) ** 2
    cdf = p * s / (s + r_c**2) + (1 - p) * s / (s + r_t**2)
    np.testing.assert_allclose(cdf.numpy(), u.numpy(), rtol=1e-10)
    core = mixture_radius(r_c, r_t, torch.ones_like(p), u)
    np.testing.assert_allclose(core.numpy(), (r_c * torch.sqrt(u / (1 - u))).numpy(), rtol=1e-10)


def _functionals(
    d_abs: float | torch.Tensor,
    d_act: float | torch.Tensor,
    particle: str,
    counts: torch.Tensor | None = None,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    sim = DiffGFlash(SamplingStack("W", "Si", d_abs, d_act, 45, 2.0), "2", particle=particle)
    energies = torch.tensor([5e3, 1e4, 2e4, 3e4], dtype=F64)
    sh = sim.simulate(energies, sim.noise(4, 7), binning="soft", temperature=0.3,
                      spot_counts=counts)  # fmt: skip
    assert sh.voxels is not None
    w = torch.rand(6480, dtype=F64, generator=torch.Generator().manual_seed(0))
    out = [
        (sh.voxels * w).sum(),  # a random linear functional of every voxel
        sh.voxels[:, 1000:1500].sum(),  # layers 6-10, inner bins
        sh.layer_energy_mev[:, 10].sum(),
        sh.deposited_mev.std(),
    ]
    return out, sh.n_spots


@pytest.mark.parametrize("particle", ["electron", "photon"])
def test_voxel_derivatives_match_finite_differences(particle: str) -> None:
    d_abs, d_act = _t(1.4, True), _t(0.3, True)
    values, counts = _functionals(d_abs, d_act, particle)
    h = 1e-5  # the spot counts are held fixed: no jumps between the two sides
    for i, v in enumerate(values):
        grads = torch.autograd.grad(v, (d_abs, d_act), retain_graph=True)
        for k, g in enumerate(grads):
            dp = h if k == 0 else 0.0
            plus, _ = _functionals(1.4 + dp, 0.3 + (h - dp), particle, counts)
            minus, _ = _functionals(1.4 - dp, 0.3 - (h - dp), particle, counts)
            fd = float(plus[i] - minus[i]) / (2 * h)
            assert float(g) == pytest.approx(fd, rel=1e-6, abs=1e-6), (i, k)
            assert float(g) != 0.0


def test_soft_binning_tends_to_hard() -> None:
    sim = DiffGFlash(par04_stack(), "2")
    noise, e = sim.noise(5, 3), torch.full((5,), 2e4, dtype=F64)
    hard = sim.simulate(e, noise)
    assert hard.voxels is not None and hard.outside_mev is not None
    total = float(hard.voxels.sum())
    diffs = []
    for temperature in (0.3, 0.03, 3e-3, 3e-4, 1e-7):
        soft = sim.simulate(e, noise, binning="soft", temperature=temperature)
        assert soft.voxels is not None and soft.outside_mev is not None
        diffs.append(float((soft.voxels - hard.voxels).abs().sum()) / total)
        torch.testing.assert_close(soft.layer_energy_mev, hard.layer_energy_mev)
    assert diffs == sorted(diffs, reverse=True)
    assert diffs[0] > 0.05 and diffs[-2] < 3e-3 and diffs[-1] < 1e-12


@pytest.mark.parametrize("binning", ["hard", "soft"])
@pytest.mark.parametrize("particle", ["electron", "photon"])
def test_energy_conservation(binning: str, particle: str) -> None:
    sim = DiffGFlash(par04_stack(), "2", particle=particle)
    e = torch.tensor([1e3, 3e4, 2e5], dtype=F64)
    noise = sim.noise(3, 4)
    mean = sim.simulate(e, noise, binning=binning, fluctuations=False)  # type: ignore[arg-type]
    torch.testing.assert_close(mean.deposited_mev + mean.leaked_mev, e, rtol=1e-12, atol=1e-9)
    for sh in (mean, sim.simulate(e, noise, binning=binning)):  # type: ignore[arg-type]
        assert sh.voxels is not None and sh.outside_mev is not None
        torch.testing.assert_close(
            sh.calibrated.sum(1) + sh.outside_mev, sh.deposited_mev, rtol=1e-12, atol=1e-9
        )
        torch.testing.assert_close(sh.layer_energy_mev.sum(1), sh.deposited_mev)


def _layers(x: np.ndarray) -> np.ndarray:
    return x.reshape(len(x), 45, -1).sum(-1)


@pytest.mark.parametrize(
    ("particle", "energy", "n"), [("electron", 1e4, 400), ("photon", 5e4, 150)]
)
def test_hard_showers_agree_with_numba_gflash(particle: str, energy: float, n: int) -> None:
    eng = GFlashEngine(get_detector("par04", geometry="2"))
    ref = (
        np.stack([eng.simulate_one(particle, energy, s) for s in range(n)]) / eng.sampling_fraction
    )
    sim = DiffGFlash(par04_stack(), "2", particle=particle)
    sh = sim.simulate(torch.full((n,), energy, dtype=F64), sim.noise(n, 11))
    diff = sh.calibrated.numpy()
    la, lb = _layers(diff), _layers(ref)
    keep = lb.mean(0) > 1e-3 * energy
    pull = (la.mean(0) - lb.mean(0)) / np.sqrt((la.var(0) + lb.var(0)) / n)
    assert np.abs(pull[keep]).max() < 4.0  # (layers are correlated: no chi2 of them)
    depth = np.arange(45)  # centre of gravity in layers, one number per shower
    ca, cb = (la * depth).sum(1) / la.sum(1), (lb * depth).sum(1) / lb.sum(1)
    assert abs(ca.mean() - cb.mean()) < 4 * np.sqrt((ca.var() + cb.var()) / n)
    assert abs(ca.std() - cb.std()) < 4 * np.sqrt((ca.var() + cb.var()) / (2 * n))
    ta, tb = diff.sum(1) / energy, ref.sum(1) / energy
    assert abs(ta.mean() - tb.mean()) < 4 * np.sqrt((ta.var() + tb.var()) / n)
    assert abs(ta.std() - tb.std()) < 4 * np.sqrt((ta.var() + tb.var()) / (2 * n))
    ra, rb = diff.reshape(n, 45, 16, 9).sum((1, 2)), ref.reshape(n, 45, 16, 9).sum((1, 2))
    rel = (ra.mean(0) - rb.mean(0)) / np.sqrt((ra.var(0) + rb.var(0)) / n)
    assert np.abs(rel).max() < 4.0
    occupancy = (diff > 0).sum(1).mean() / (ref > 0).sum(1).mean()
    assert occupancy == pytest.approx(1.0, abs=0.03)


def test_response_has_the_distribution_of_the_summed_steps() -> None:
    sim = DiffGFlash(SamplingStack("Pb", "LAr", 5.0, 4.0, 1, None, 25.0), None)
    e = torch.full((4000,), 1e4, dtype=F64)
    a = sim.response(e, sim.noise(4000, 1)).numpy()
    b = sim.simulate(e, sim.noise(4000, 2), binning="none").deposited_mev.numpy()
    assert abs(a.mean() - b.mean()) < 4 * np.sqrt((a.var() + b.var()) / 4000)
    assert abs(a.std() - b.std()) < 4 * np.sqrt((a.var() + b.var()) / 8000)


def test_seeded_and_batch_independent() -> None:
    sim = DiffGFlash(par04_stack(), "2", particle="photon")
    e = torch.tensor([2e3, 5e4, 1e4, 8e3], dtype=F64)
    a = sim.simulate(e, sim.noise(4, 5))
    b = sim.simulate(e, sim.noise(4, 5), max_spots=500)
    assert a.voxels is not None and b.voxels is not None
    assert torch.equal(a.voxels, b.voxels)
    part = sim.simulate(e[2:], sim.noise(2, 5, start=2))
    assert part.voxels is not None
    assert torch.equal(part.voxels, a.voxels[2:])
    other = sim.simulate(e, sim.noise(4, 6))
    assert other.voxels is not None
    assert not torch.equal(other.voxels, a.voxels)


@pytest.mark.parametrize(
    "make",
    [
        lambda: SamplingStack("W", "Si", -1.0, 0.3),
        lambda: SamplingStack("W", "Si", 1.4, 0.0),
        lambda: SamplingStack("W", "Si", float("nan"), 0.3),
        lambda: SamplingStack("W", "Si", torch.tensor(-0.5), 0.3),
        lambda: SamplingStack("Unobtainium", "Si", 1.4, 0.3),
        lambda: SamplingStack("W", "Si", 1.4, 0.3, 45, 2.0, 25.0),
        lambda: SamplingStack("W", "Si", 1.4, 0.3, 0),
        lambda: DiffGFlash(SamplingStack("W", "Si", 1.4, 0.3, 30), "2"),
        lambda: DiffGFlash(par04_stack(), "1-photons"),
        lambda: DiffGFlash(par04_stack(), "2", particle="pion"),
        lambda: DiffGFlash(par04_stack(), "2", sampling_term=5.0).simulate(
            [1e4], DiffGFlash(par04_stack(), "2").noise(1, 0)
        ),
        lambda: DiffGFlash(par04_stack(), "2").simulate(
            [-1.0], DiffGFlash(par04_stack(), "2").noise(1, 0)
        ),
        lambda: DiffGFlash(par04_stack(), "2").simulate(
            [1e4, 1e4], DiffGFlash(par04_stack(), "2").noise(1, 0)
        ),
        lambda: DiffGFlash(par04_stack(), "2").simulate(
            [1e4], DiffGFlash(par04_stack(), "2").noise(1, 0), temperature=0.0
        ),
        lambda: DiffGFlash(par04_stack(), "2").simulate(
            [10.0], DiffGFlash(par04_stack(), "2").noise(1, 0)
        ),
        lambda: DiffGFlash(par04_stack(), "2").noise(0, 1),
    ],
)
def test_bad_input_is_a_one_line_error(make: object) -> None:
    with pytest.raises(PhysgenError) as info:
        make()  # type: ignore[operator]
    assert "\n" not in str(info.value)
    if not str(info.value).startswith("GFlash: energy"):
        assert isinstance(info.value, ConfigError)
