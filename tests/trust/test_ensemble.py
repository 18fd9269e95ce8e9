"""Ensemble bands: their arithmetic, and their coverage with a closed-form (Gaussian MLE) model."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from physgen.errors import ConfigError, DataFormatError
from physgen.trust.ensemble import Band, bin_probabilities, fit_ensemble, histogram_band


def test_band_statistics() -> None:
    b = Band(np.array([0.0, 1.0, 2.0]), np.array([[0.2, 0.8], [0.4, 0.6], [0.3, 0.7]]))
    np.testing.assert_allclose(b.mean, [0.3, 0.7])
    np.testing.assert_allclose(b.std, [0.1, 0.1])
    assert b.coverage([0.35, 0.9]) == 0.5
    assert b.coverage([0.35, 0.9], n_sigma=2.5) == 1.0
    assert b.coverage([0.35, 0.9], mask=[True, False]) == 1.0
    np.testing.assert_allclose(b.relative_width(), [1 / 3, 1 / 7])
    with pytest.raises(DataFormatError, match="expected 2 bins"):
        b.coverage([0.1, 0.2, 0.3])


def test_histogram_band_normalisation_and_errors() -> None:
    edges = np.linspace(0, 1, 5)
    b = histogram_band([[0.1, 0.6, 0.6, 0.9], [0.3, 0.3]], edges)
    np.testing.assert_allclose(b.members.sum(axis=1), 1.0)
    d = histogram_band([[0.1, 0.6, 0.6, 0.9]], edges, density=True)
    np.testing.assert_allclose((d.members * np.diff(edges)).sum(), 1.0)
    w = histogram_band([[0.1, 0.9]], edges, weights=[[3.0, 1.0]])
    np.testing.assert_allclose(w.members[0], [0.75, 0, 0, 0.25])
    with pytest.raises(ConfigError, match="strictly increasing"):
        histogram_band([[0.1]], [1.0, 0.0])
    with pytest.raises(DataFormatError, match="no entries"):
        histogram_band([[5.0]], edges)


def test_bootstrap_band_of_a_correct_model_covers_68_percent() -> None:
    """Oracle: the model family is exact (a Gaussian, fitted by maximum likelihood), so the
    bootstrap members' spread is the sampling spread of the fit, and the 1 sigma band covers
    the true bin probabilities in 68 % of bins on average over data sets."""
    edges = np.linspace(-3.0, 3.0, 25)
    truth = bin_probabilities(norm.cdf, edges)
    rng = np.random.default_rng(0)
    n, k, datasets = 2000, 40, 40
    cov = []
    for _ in range(datasets):
        x = rng.normal(0.0, 1.0, n)
        members = []
        for _ in range(k):
            xb = x[rng.integers(0, n, n)]
            m, s = xb.mean(), xb.std()
            members.append(bin_probabilities(lambda e, m=m, s=s: norm.cdf(e, m, s), edges))
        cov.append(Band(edges, np.stack(members)).coverage(truth))
    assert np.mean(cov) == pytest.approx(0.68, abs=0.06)
    # seed-only members of a deterministic fit have no spread: a band of zero width
    det = Band(edges, np.stack([bin_probabilities(norm.cdf, edges)] * 3))
    assert det.std.max() < 1e-15


def test_fit_ensemble_members_differ_and_cost_is_recorded() -> None:
    x = np.random.default_rng(1).normal(size=(400, 1))
    fit = fit_ensemble(
        x, members=2, bootstrap=True, seed=3, epochs=1, optim={"batch_size": 100},
        config={"energy_transforms": 1, "shape_transforms": 1, "shape_hidden": [8]},
    )  # fmt: skip
    assert len(fit.members) == 2 and len(fit.seconds) == 2 and fit.cost_s > 0
    a = fit.members[0](n=300).sample(seed=0)
    b = fit.members[1](n=300).sample(seed=0)
    assert a.shape == (300, 1) and not np.allclose(a, b)
    with pytest.raises(ConfigError, match=">= 2 members"):
        fit_ensemble(x, members=1)
