"""The toy detector: efficiencies within binomial errors, resolutions, acceptance rules,
determinism under a seed."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from physgen.errors import ConfigError, DataFormatError
from physgen.events.detector import DetectorResponse
from physgen.events.particles import Particles


def _particles(
    n: int, *, pid: int, charge: float, pt: float, eta: float = 0.5, mass: float = 0.0
) -> Particles:
    """n identical particles, 10 per event, azimuths spread."""
    rng = np.random.default_rng(0)
    return Particles(
        pt=np.full(n, pt),
        eta=np.full(n, eta),
        phi=rng.uniform(-math.pi, math.pi, n),
        mass=np.full(n, mass),
        pid=np.full(n, pid, dtype=np.int64),
        charge=np.full(n, charge),
        counts=np.full(n // 10, 10, dtype=np.int64),
    )


N = 40_000


def _within_binomial(k: int, n: int, p: float) -> None:
    if p in (0.0, 1.0):
        assert k == n * p
        return
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(k - n * p) < 4 * sigma, (k, n, p)


@pytest.mark.parametrize(
    ("pid", "charge", "eta", "efficiency"),
    [
        (211, 1.0, 0.5, 0.9),  # track
        (2112, 0.0, 0.5, 0.95),  # neutral hadron
        (211, 1.0, 3.0, 0.95),  # charged hadron outside the tracker: calorimeter
        (22, 0.0, 0.5, 1.0),  # photon
        (-11, 1.0, 3.0, 1.0),  # electron outside the tracker: EM calorimeter
        (13, -1.0, 3.0, 0.0),  # muon outside the tracker: not seen
        (22, 0.0, 4.6, 0.0),  # beyond the calorimeter
    ],
)
def test_efficiencies(pid: int, charge: float, eta: float, efficiency: float) -> None:
    parts = _particles(N, pid=pid, charge=charge, pt=20.0, eta=eta, mass=0.1)
    objects = DetectorResponse().apply(parts, np.random.default_rng(1))
    _within_binomial(objects.pt.shape[0], N, efficiency)
    assert objects.n_events == parts.n_events
    assert np.array_equal(np.unique(objects.pid), [pid] if efficiency > 0 else [])


def test_soft_tracks_are_lost() -> None:
    parts = _particles(1000, pid=211, charge=1.0, pt=0.4)
    assert DetectorResponse().apply(parts, np.random.default_rng(2)).pt.shape[0] == 0


def test_track_resolution_and_direction() -> None:
    pt = 100.0
    parts = _particles(N, pid=-211, charge=-1.0, pt=pt, eta=1.2, mass=0.13957)
    det = DetectorResponse()
    objects = det.apply(parts, np.random.default_rng(3))
    rel = objects.pt / pt - 1
    expected = math.hypot(0.005, 1e-4 * pt)  # 0.5 % (+) 0.01 % * pT
    assert det.track_sigma(np.array([pt]))[0] == pytest.approx(expected)
    n = rel.shape[0]
    assert abs(rel.mean()) < 4 * expected / math.sqrt(n)
    assert rel.std() == pytest.approx(expected, rel=4 / math.sqrt(2 * n))
    assert np.all(objects.eta == 1.2) and np.all(objects.mass == 0.13957)


@pytest.mark.parametrize(
    ("pid", "charge", "energy", "sigma"),
    [
        (22, 0.0, 25.0, 0.10 / 5.0),  # photons: 10 %/sqrt(E)
        (130, 0.0, 100.0, math.hypot(0.5 / 10.0, 0.05)),  # K_L: 50 %/sqrt(E) (+) 5 %
    ],
)
def test_calorimeter_resolution(pid: int, charge: float, energy: float, sigma: float) -> None:
    eta = 0.8
    parts = _particles(N, pid=pid, charge=charge, pt=energy / math.cosh(eta), eta=eta)
    objects = DetectorResponse().apply(parts, np.random.default_rng(4))
    e = objects.pt * np.cosh(objects.eta)
    rel = e / energy - 1
    n = rel.shape[0]
    assert abs(rel.mean()) < 4 * sigma / math.sqrt(n)
    assert rel.std() == pytest.approx(sigma, rel=4 / math.sqrt(2 * n))
    assert np.all(objects.mass == 0.0)  # calorimeter objects are massless


def test_same_seed_same_objects_and_neutrinos_dropped() -> None:
    rng = np.random.default_rng(5)
    n = 500
    parts = Particles(
        pt=rng.exponential(5.0, n) + 0.1,
        eta=rng.uniform(-5, 5, n),
        phi=rng.uniform(-math.pi, math.pi, n),
        mass=np.zeros(n),
        pid=rng.choice([211, -211, 22, 2112, 12, -14, 11, 13], n),
        charge=np.zeros(n),
        counts=np.full(50, 10, dtype=np.int64),
    )
    charged = np.isin(np.abs(parts.pid), [211, 11, 13])
    parts = dataclasses.replace(parts, charge=np.where(charged, 1.0, 0.0))
    det = DetectorResponse()
    a = det.apply(parts, np.random.default_rng(9))
    b = det.apply(parts, np.random.default_rng(9))
    c = det.apply(parts, np.random.default_rng(10))
    for name in ("pt", "eta", "phi", "mass", "pid", "counts"):
        assert np.array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.pt, c.pt) or a.pt.shape != c.pt.shape
    assert not np.isin(np.abs(a.pid), [12, 14, 16]).any()
    assert np.all(np.abs(a.eta) < 4.5) and np.all(a.pt > 0)


def test_bad_parameters_and_particles() -> None:
    with pytest.raises(ConfigError, match="track_efficiency"):
        DetectorResponse(track_efficiency=1.5)
    with pytest.raises(ConfigError, match="hadron_stochastic"):
        DetectorResponse(hadron_stochastic=float("nan"))
    with pytest.raises(DataFormatError, match="counts"):
        _ = Particles(
            pt=np.ones(3),
            eta=np.zeros(3),
            phi=np.zeros(3),
            mass=np.zeros(3),
            pid=np.zeros(3, dtype=np.int64),
            charge=np.zeros(3),
            counts=np.array([1, 1], dtype=np.int64),
        )
