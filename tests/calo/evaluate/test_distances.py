"""FPD, KPD and PRDC against closed forms and limiting cases."""

from __future__ import annotations

import numpy as np
import pytest

from physgen.calo.evaluate.distances import (
    fpd,
    frechet_distance,
    kpd,
    log_voxels,
    mmd2_unbiased,
    prdc,
    prdc_voxels,
)
from physgen.calo.geometry import get_geometry
from physgen.errors import ConfigError, DataFormatError

D = 5


@pytest.fixture(scope="module")
def gauss() -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(7)
    return r.normal(size=(12000, D)), r.normal(size=(12000, D))


def test_frechet_closed_form() -> None:
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    s1 = np.diag([1.0, 4.0, 9.0])
    s2 = np.diag([4.0, 1.0, 9.0])
    # |dmu|^2 = 5; Tr(S1 + S2 - 2 sqrt(S1 S2)) = (1+4-4) + (4+1-4) + (9+9-18) = 2
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(7.0, abs=1e-10)
    # non-commuting covariances: the distance is symmetric and 0 only for equal inputs
    a = np.array([[2.0, 0.5], [0.5, 1.0]])
    b = np.array([[1.0, -0.3], [-0.3, 3.0]])
    z = np.zeros(2)
    assert frechet_distance(z, a, z, b) == pytest.approx(frechet_distance(z, b, z, a), rel=1e-10)
    assert frechet_distance(z, a, z, a) == pytest.approx(0.0, abs=1e-10)


def test_fpd_identical_distribution_is_zero(gauss: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = gauss
    res = fpd(x, y, min_samples=2000, max_samples=10000, num_batches=5, normalise=False)
    assert res.value >= 0.0
    assert res.value < 3 * res.error + 2e-3
    assert len(res.details["batch_sizes"]) == 10


def test_fpd_mean_shift_and_scale(gauss: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = gauss
    shift = np.array([0.3, 0.0, 0.0, 0.0, 0.0])
    res = fpd(x, y + shift, min_samples=2000, max_samples=10000, num_batches=5, normalise=False)
    assert res.value == pytest.approx(0.09, abs=0.02)
    # y -> 2y: covariance term D (1 + 4 - 2 * 2) = D
    res2 = fpd(x, 2 * y, min_samples=2000, max_samples=10000, num_batches=5, normalise=False)
    assert res2.value == pytest.approx(float(D), rel=0.03)


def test_fpd_normalisation_uses_reference_max(gauss: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = gauss
    a = fpd(x, y + 0.3, min_samples=2000, max_samples=10000, num_batches=3, normalise=True)
    b = fpd(10 * x, 10 * (y + 0.3), min_samples=2000, max_samples=10000, num_batches=3)
    assert a.value == pytest.approx(b.value, rel=1e-6)
    # deterministic under the seed
    c = fpd(x, y + 0.3, min_samples=2000, max_samples=10000, num_batches=3, normalise=True)
    assert c.value == a.value and c.error == a.error


def test_fpd_caps_batch_sizes_at_sample_size() -> None:
    r = np.random.default_rng(1)
    res = fpd(r.normal(size=(3000, 2)), r.normal(size=(4000, 2)), num_batches=2)
    sizes = res.details["batch_sizes"]
    assert max(sizes) == 3000 and min(sizes) == 1500


def test_mmd_unbiased_matches_direct_formula() -> None:
    r = np.random.default_rng(3)
    x, y = r.normal(size=(50, 4)), r.normal(0.5, 1.0, size=(60, 4))

    def k(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (a @ b.T / 4 + 1) ** 3

    kxx, kyy = k(x, x), k(y, y)
    direct = (
        (kxx.sum() - np.trace(kxx)) / (50 * 49)
        + (kyy.sum() - np.trace(kyy)) / (60 * 59)
        - 2 * k(x, y).mean()
    )
    assert mmd2_unbiased(x, y, degree=3, block=7) == pytest.approx(direct, rel=1e-12)


def test_kpd_identical_zero_and_shift_positive(gauss: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = gauss
    same = kpd(x, y, batch_size=1500, num_batches=6, normalise=False)
    assert abs(same.value) < 3 * same.error + 1e-3
    shifted = kpd(x, y + 0.5, batch_size=1500, num_batches=6, normalise=False)
    assert shifted.value > 10 * max(same.error, 1e-3)
    assert shifted.value > 5 * shifted.error


def test_prdc_identical_and_disjoint(gauss: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = gauss
    same = prdc(x[:1500], x[:1500])
    assert (same.precision, same.recall, same.coverage) == (1.0, 1.0, 1.0)
    assert same.density == pytest.approx(1.0, abs=0.05)
    indep = prdc(x[:1500], y[:1500], chunk=100)
    for v in (indep.precision, indep.recall, indep.coverage):
        assert 0.9 < v <= 1.0
    assert indep.density == pytest.approx(1.0, abs=0.15)
    far = prdc(x[:1500], y[:1500] + 4.0)
    assert far.precision < 0.1 and far.coverage < 0.1


def test_prdc_chunking_and_subsampling_consistent(gauss: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = gauss
    a = prdc(x[:800], y[:800] + 0.2, chunk=1000)
    b = prdc(x[:800], y[:800] + 0.2, chunk=37)
    assert a == b
    c = prdc(x, y, max_samples=500, seed=3)
    assert c.n_reference == 500 and c.n_generated == 500


def test_prdc_voxels_log_and_threshold() -> None:
    geo = get_geometry("1-photons")
    x = np.zeros((2, geo.n_voxels))
    x[0, 0], x[0, 1], x[1, 2] = 100.0, 0.5, 10.0  # 0.5 MeV is below the 1 MeV threshold
    lv = log_voxels(x, geo)
    assert lv[0, 0] == pytest.approx(2.0)
    assert lv[0, 1] == pytest.approx(-1.0) and lv[0, 5] == pytest.approx(-1.0)
    r = np.random.default_rng(0)
    showers = r.exponential(5.0, size=(300, geo.n_voxels)) * (r.random((300, geo.n_voxels)) < 0.2)
    res = prdc_voxels(showers, showers, geo, max_samples=300)
    assert (res.precision, res.recall, res.coverage) == (1.0, 1.0, 1.0)


def test_errors() -> None:
    r = np.random.default_rng(0)
    with pytest.raises(DataFormatError, match="columns"):
        fpd(r.normal(size=(100, 3)), r.normal(size=(100, 4)))
    with pytest.raises(DataFormatError, match="NaN"):
        kpd(np.full((10, 2), np.nan), r.normal(size=(10, 2)))
    with pytest.raises(ConfigError, match="k=5"):
        prdc(r.normal(size=(4, 2)), r.normal(size=(4, 2)))
    with pytest.raises(ConfigError, match="num_points"):
        fpd(r.normal(size=(100, 3)), r.normal(size=(100, 3)), num_points=1)
