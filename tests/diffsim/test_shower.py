"""The Discrete-QCD shower: conservation, closed-form emission probabilities, derivatives
against finite differences on fixed random numbers, event shapes on known configurations."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from physgen.diffsim.observables import event_shapes
from physgen.diffsim.shower import (
    M_Z,
    DiscreteQCDShower,
    alpha_s_from_lambda,
    event_seeds,
    lambda_from_alpha_s,
)
from physgen.errors import ConfigError, DataFormatError

SHOWER = DiscreteQCDShower()


@pytest.fixture(scope="module")
def sample() -> object:
    return SHOWER.run(0.118, n=4000, seed=1)


def test_every_event_conserves_momentum_and_is_massless(sample: object) -> None:
    ev = sample
    tot = ev.momenta.sum(axis=1)
    assert np.abs(tot[:, 1:]).max() < 1e-9
    assert np.abs(tot[:, 0] - M_Z).max() < 1e-9
    m2 = ev.momenta[..., 0] ** 2 - (ev.momenta[..., 1:] ** 2).sum(-1)
    assert np.abs(m2).max() < 1e-8
    assert (ev.momenta[..., 0][ev.mask] > 0).all()
    assert (ev.momenta[~ev.mask] == 0).all()
    # and so do the derivatives: d(sum p)/d alpha_s = 0
    assert np.abs(ev.dmomenta.sum(axis=1)).max() < 1e-6
    assert ev.truncated == 0 and ev.n_partons.min() >= 2


def _column_limits(shower: DiscreteQCDShower, alpha_s: float) -> tuple[np.ndarray, float]:
    lam = shower.lambda_qcd(alpha_s)
    y = (np.arange(-40, 40) + 0.5) * shower.delta_y
    lim = math.log(shower.sqrt_s**2 / lam**2) - 2 * np.log(2 * np.cosh(y))
    kappa0 = math.log(shower.q0**2 / lam**2)
    return lim[lim > kappa0], kappa0


def test_first_emission_follows_the_discrete_qcd_sudakov() -> None:
    # the first dipole's columns are independent: P(highest kappa < k) = prod_c min(1, k/lim_c)
    ev = SHOWER.run(0.118, n=20_000, seed=2)
    lim, kappa0 = _column_limits(SHOWER, 0.118)
    p_none = float(np.prod(kappa0 / lim))
    frac = float(np.mean(ev.n_partons == 2))
    assert abs(frac - p_none) < 4 * math.sqrt(p_none * (1 - p_none) / 20_000)
    first = ev.kappas[ev.n_partons > 2, 0]

    def cdf(k: np.ndarray) -> np.ndarray:
        c = np.prod(np.minimum(1.0, np.asarray(k)[:, None] / lim[None, :]), axis=1)
        return (c - p_none) / (1 - p_none)  # conditional on an emission above kappa0

    assert stats.kstest(first, cdf).pvalue > 1e-3


def test_derivatives_match_finite_differences_on_fixed_random_numbers(sample: object) -> None:
    ev = sample
    h = 1e-6
    up = SHOWER.run(0.118 + h, seeds=ev.seeds)
    dn = SHOWER.run(0.118 - h, seeds=ev.seeds)
    same = (up.n_partons == dn.n_partons) & (up.n_partons == ev.n_partons)
    assert same.mean() > 0.99  # away from jumps: almost every event
    fd = (up.momenta - dn.momenta)[same] / (2 * h)
    scale = np.abs(ev.dmomenta[same]).max(axis=(1, 2))[:, None, None] + 1e-9
    assert np.median(np.abs(fd - ev.dmomenta[same]) / scale) < 1e-6
    assert (
        np.quantile(np.abs(fd - ev.dmomenta[same]).max(axis=(1, 2)) / scale[:, 0, 0], 0.99) < 1e-3
    )


def test_moving_is_continuous_for_infrared_safe_observables(sample: object) -> None:
    # an emission crossing the cutoff appears with zero momentum: tau moves smoothly even
    # where the multiplicity jumps
    ev = sample
    moved = SHOWER.run(0.118 + 1e-4, seeds=ev.seeds)
    jumped = moved.n_partons != ev.n_partons
    assert jumped.any()
    t0 = event_shapes(torch.as_tensor(ev.momenta), torch.as_tensor(ev.mask), ("tau",))["tau"]
    t1 = event_shapes(torch.as_tensor(moved.momenta), torch.as_tensor(moved.mask), ("tau",))["tau"]
    d = (t1 - t0).abs().numpy()
    assert np.median(d[jumped]) < 1e-3


def test_same_seeds_same_events_and_alpha_s_dependence() -> None:
    a = SHOWER.run(0.118, n=500, seed=3)
    b = SHOWER.run(0.118, n=500, seed=3)
    c = SHOWER.run(0.118, n=500, seed=4)
    assert np.array_equal(a.momenta, b.momenta) and not np.array_equal(a.momenta, c.momenta)
    assert not np.array_equal(event_seeds(3, 10), event_seeds(3, 10, stream=1))
    lo = SHOWER.run(0.10, n=3000, seed=5).n_partons.mean()
    hi = SHOWER.run(0.14, n=3000, seed=5).n_partons.mean()
    assert hi > lo + 1


def test_first_order_move_matches_resimulation_for_small_steps(sample: object) -> None:
    ev = sample
    new = SHOWER.run(0.1181, seeds=ev.seeds)
    same = new.n_partons == ev.n_partons
    err = np.abs(ev.moved(0.1181) - new.momenta)[same].max(axis=(1, 2))
    assert np.median(err) < 1e-4


def test_lambda_and_alpha_s() -> None:
    assert lambda_from_alpha_s(0.118) == pytest.approx(0.0879, abs=5e-4)
    assert alpha_s_from_lambda(lambda_from_alpha_s(0.13)) == pytest.approx(0.13, rel=1e-12)
    for bad in (0.05, 0.25, float("nan")):
        with pytest.raises(ConfigError, match="alpha_s"):
            SHOWER.run(bad, n=10)
    with pytest.raises(ConfigError, match="sqrt_s"):
        DiscreteQCDShower(sqrt_s=1.5, q0=1.0)
    with pytest.raises(ConfigError, match="q0"):
        DiscreteQCDShower(q0=0.0)
    with pytest.raises(ConfigError, match="Lambda"):
        alpha_s_from_lambda(-0.1)
    with pytest.raises(ConfigError, match="n must"):
        SHOWER.run(0.118, n=0)


# ---------------------------------------------------------------- event shapes


def _event(momenta: list[list[float]]) -> tuple[torch.Tensor, torch.Tensor]:
    p = torch.tensor([momenta], dtype=torch.float64)
    return p, torch.ones(p.shape[:2], dtype=torch.bool)


def test_event_shapes_of_two_and_three_partons() -> None:
    e = M_Z / 2
    shapes = event_shapes(*_event([[e, 0, 0, e], [e, 0, 0, -e]]), ("tau", "rho", "c", "y23"))
    assert all(abs(float(v[0])) < 1e-12 for v in shapes.values())
    # symmetric three-parton (Mercedes) event: T = 2/3, C = 3/4, rho = 1/3, y23 = 1/3
    e = M_Z / 3
    mom = [
        [e, e * math.cos(a), e * math.sin(a), 0.0] for a in (0.0, 2 * math.pi / 3, 4 * math.pi / 3)
    ]
    s = event_shapes(*_event(mom), ("tau", "rho", "c", "y23", "multiplicity"))
    for name, want in (
        ("tau", 1 / 3),
        ("rho", 1 / 3),
        ("c", 0.75),
        ("y23", 1 / 3),
        ("multiplicity", 3),
    ):
        assert float(s[name][0]) == pytest.approx(want, abs=1e-9), name


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 8), seed=st.integers(0, 10_000))
def test_thrust_is_the_maximum_over_all_partitions(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    p3 = rng.normal(size=(n, 3))
    p3 -= p3.mean(0)  # balanced
    p = np.concatenate([np.linalg.norm(p3, axis=1, keepdims=True), p3], 1)
    best = max(
        np.linalg.norm(p3[list(s)].sum(0))
        for k in range(n + 1)
        for s in itertools.combinations(range(n), k)
    )
    want = 1 - 2 * best / np.linalg.norm(p3, axis=1).sum()
    tau = event_shapes(*_event(p.tolist()), ("tau",))["tau"]
    assert float(tau[0]) == pytest.approx(want, abs=1e-12)


def test_shape_gradients_match_finite_differences() -> None:
    ev = SHOWER.run(0.118, n=20, seed=6)
    p = torch.as_tensor(ev.momenta).clone().requires_grad_(True)
    mask = torch.as_tensor(ev.mask)
    direction = torch.randn(
        p.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(7)
    )
    direction = direction * mask[..., None]
    for name in ("tau", "rho", "c", "y23"):
        (g,) = torch.autograd.grad(event_shapes(p, mask, (name,))[name].sum(), p)
        h = 1e-7
        with torch.no_grad():
            up = event_shapes(p + h * direction, mask, (name,))[name]
            dn = event_shapes(p - h * direction, mask, (name,))[name]
        fd = (up - dn) / (2 * h)
        assert torch.allclose((g * direction).sum((1, 2)), fd, rtol=1e-4, atol=1e-7), name


def test_event_shapes_refuse_undefined_input() -> None:
    e = M_Z / 2
    with pytest.raises(ConfigError, match="unknown observable"):
        event_shapes(*_event([[e, 0, 0, e], [e, 0, 0, -e]]), ("sphericity",))
    with pytest.raises(DataFormatError, match="at least two"):
        event_shapes(*_event([[e, 0, 0, e]]), ("tau",))
    with pytest.raises(DataFormatError, match="finite"):
        event_shapes(*_event([[e, 0, 0, e], [float("nan"), 0, 0, -e]]), ("c",))
