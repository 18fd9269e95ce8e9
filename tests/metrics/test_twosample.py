"""The weighted two-sample classifier on arrays, against closed forms.

For N(0, 1) vs N(mu, 1) the optimal classifier's AUC is Phi(mu / sqrt 2) and the density
ratio is exp(mu x - mu^2 / 2); reweighting N(0, 1) events by that ratio must look like the
shifted sample.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.stats import norm

from physgen.errors import ConfigError, DataFormatError
from physgen.metrics import (
    ClassifierConfig,
    cross_fit_ratios,
    fit_likelihood_ratio,
    two_sample_test,
)

MU = 0.6
SMALL = dataclasses.replace(ClassifierConfig.fast(), hidden=32, max_epochs=30, patience=5)


def gaussians(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 1)), rng.normal(MU, 1, size=(n, 1)), rng.normal(size=(n, 1))


def test_auc_matches_the_closed_form():
    a, b, _ = gaussians(6000)
    r = two_sample_test(a, b, config=SMALL, seed=1, threads=1)
    assert r.auc == pytest.approx(norm.cdf(MU / np.sqrt(2)), abs=0.025)
    assert r.n0 == r.n1 == 6000 and len(r.epochs) == 1


def test_weights_turn_one_sample_into_the_other():
    a, b, c = gaussians(6000)
    w = np.exp(MU * c[:, 0] - MU**2 / 2)
    weighted = two_sample_test(a, c, w1=w, config=SMALL, seed=1, threads=1)
    assert weighted.auc == pytest.approx(norm.cdf(MU / np.sqrt(2)), abs=0.03)
    # and the reweighted sample is indistinguishable from the true shifted one
    null = two_sample_test(b, c, w1=w, config=SMALL, seed=2, threads=1)
    assert abs(null.auc - 0.5) < 0.03


def test_null_is_half():
    a, _, c = gaussians(4000)
    r = two_sample_test(a, c, config=SMALL, seed=0, repeats=2, threads=1)
    assert abs(r.auc - 0.5) < 0.03 and r.auc_std >= 0 and len(r.per_repeat) == 2


def test_likelihood_ratio_is_the_density_ratio():
    a, b, _ = gaussians(8000)
    lr = fit_likelihood_ratio(a, b, config=SMALL, seed=0, threads=1)
    x = np.linspace(-1.5, 1.5, 7)[:, None]
    exact = np.exp(MU * x[:, 0] - MU**2 / 2)
    np.testing.assert_allclose(lr(x), exact, rtol=0.2)
    np.testing.assert_allclose(lr.log_ratio(x), np.log(lr(x)), rtol=1e-9)


def test_cross_fit_ratios_are_out_of_fold_and_normalised():
    a, b, _ = gaussians(3000)
    r0, r1 = cross_fit_ratios(a, b, folds=3, config=SMALL, seed=0, threads=1)
    assert r0.shape == (3000,) and r1.shape == (3000,)
    assert r0.mean() == pytest.approx(1.0, abs=0.08)  # E_p0[p1 / p0] = 1
    assert np.corrcoef(np.log(r0), a[:, 0])[0, 1] > 0.95


def test_warm_start_copies_the_network():
    a, b, _ = gaussians(3000)
    first = fit_likelihood_ratio(a, b, config=SMALL, seed=0, threads=1)
    before = [t.clone() for t in first.model.state_dict().values()]
    zero_epochs = dataclasses.replace(SMALL, max_epochs=1, lr=1e-12)
    warm = fit_likelihood_ratio(a, b, config=zero_epochs, seed=1, threads=1, init=first)
    x = np.linspace(-1.5, 1.5, 7)[:, None]
    np.testing.assert_allclose(warm(x), first(x), rtol=1e-4)  # starts where ``first`` ended
    for t0, t1 in zip(before, first.model.state_dict().values()):
        assert bool((t0 == t1).all())  # ``init`` itself is untouched
    with pytest.raises(ConfigError, match="init: its network does not take these inputs"):
        fit_likelihood_ratio(np.zeros((40, 2)), np.ones((40, 2)), config=SMALL, init=first)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"x1": np.zeros((20, 2))}, "same F"),
        ({"x1": np.zeros((5, 1))}, "at least 10"),
        ({"x1": np.full((20, 1), np.nan)}, "x1: contains NaN"),
        ({"w0": np.ones(3)}, "w0: expected 20 weights"),
        ({"w1": -np.ones(20)}, "w1: weights must be finite"),
    ],
)
def test_bad_input(kwargs, match):
    args = {"x0": np.zeros((20, 1)), "x1": np.ones((20, 1))}
    args.update(kwargs)
    x0, x1 = args.pop("x0"), args.pop("x1")
    with pytest.raises(DataFormatError, match=match):
        two_sample_test(x0, x1, config=SMALL, **args)
