"""The amplification factor (arXiv:2008.06545) against closed forms.

For N events from the truth, the discrepancy D = Σ (f − p)² / p has expectation (K − 1) / N
(multinomial variance), so a sample drawn from the truth is worth its own size, a model
that memorises its training set (resamples it) saturates at the training set's worth
(amplification 1), and a model with a known bin-level bias B saturates at (K − 1) / B.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from physgen.errors import ConfigError, DataFormatError
from physgen.trust import (
    Binning,
    amplification,
    conditional_quantile_binning,
    discrepancy,
    equivalent_events,
    quantile_binning,
)

K = 10
TRUTH = np.random.default_rng(0).normal(size=400_000)
BINS = quantile_binning(TRUTH, K)


def truth_sampler(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=n)


def test_truth_samples_have_the_multinomial_discrepancy():
    rng = np.random.default_rng(1)
    d = [discrepancy(rng.normal(size=200), BINS) for _ in range(3000)]
    # E[D] = (K - 1) / N; the standard error of the mean of 3000 chi2_9 / 200 draws is ~0.3 %
    assert np.mean(d) == pytest.approx((K - 1) / 200, rel=0.03)
    assert equivalent_events(float(np.mean(d)), K) == pytest.approx(200, rel=0.03)


def test_a_sample_drawn_from_the_truth_is_worth_its_size():
    train = [truth_sampler(100, s) for s in range(400)]
    res = amplification([truth_sampler] * 400, train, BINS, [100, 1000])
    # n = N_train: amplification consistent with 1; n = 10 N_train: with 10
    assert res.amplification[0] == pytest.approx(1.0, rel=0.06)
    assert res.amplification[1] == pytest.approx(10.0, rel=0.06)
    assert (K - 1) / res.train_discrepancy == pytest.approx(100, rel=0.06)


def test_a_memorising_model_saturates_at_one():
    train = [truth_sampler(100, 1000 + s) for s in range(400)]

    def resampler(t: np.ndarray):
        return lambda n, seed: np.random.default_rng(seed).choice(t, size=n)

    res = amplification([resampler(t) for t in train], train, BINS, [100, 100_000])
    assert res.amplification[0] == pytest.approx(0.5, rel=0.1)  # two sampling errors add
    assert res.amplification[1] == pytest.approx(1.0, rel=0.08)
    assert res.repeats == 400 and res.n_train == 100 and res.sizes.tolist() == [100, 100_000]


def test_a_finite_truth_sample_is_corrected_for_its_own_noise():
    """Bins from a truth of 2,000 events: every independent sample's D carries (K - 1) / 2000
    more; with ``truth_events`` the truth itself is again worth its size."""
    small = quantile_binning(np.random.default_rng(5).normal(size=2000), K)
    train = [truth_sampler(500, 2000 + s) for s in range(300)]
    raw = amplification([truth_sampler] * 300, train, small, [500])
    fixed = amplification([truth_sampler] * 300, train, small, [500], truth_events=2000)
    assert raw.amplification[0] == pytest.approx(0.8, rel=0.1)  # 1 / (1 + 500 / 2000)
    assert fixed.amplification[0] == pytest.approx(1.0, rel=0.12)
    assert (K - 1) / raw.train_discrepancy == pytest.approx(400, rel=0.1)  # 1/500 + 1/2000
    assert (K - 1) / fixed.train_discrepancy == pytest.approx(500, rel=0.12)
    assert fixed.as_dict()["truth_noise_subtracted"] == pytest.approx((K - 1) / 2000)


def test_conditional_bins_per_discrete_condition():
    rng = np.random.default_rng(3)
    c = rng.choice([1.0, 10.0, 100.0], size=300_000, p=[0.5, 0.3, 0.2])
    truth = np.stack([c, rng.normal(np.log(c), 1.0)], axis=1)
    b = conditional_quantile_binning(truth, 5)
    assert b.n_bins == 15
    np.testing.assert_allclose(
        b.probabilities.reshape(3, 5).sum(axis=1), [0.5, 0.3, 0.2], atol=0.01
    )
    d = []
    for _ in range(3000):
        cs = rng.choice([1.0, 10.0, 100.0], size=400, p=[0.5, 0.3, 0.2])
        d.append(discrepancy(np.stack([cs, rng.normal(np.log(cs), 1.0)], axis=1), b))
    assert np.mean(d) == pytest.approx(14 / 400, rel=0.05)
    with pytest.raises(DataFormatError, match="condition value the truth does not have"):
        b.assign(np.array([[2.0, 0.0]]))
    with pytest.raises(DataFormatError, match="not a discrete condition"):
        conditional_quantile_binning(np.stack([rng.normal(size=1000)] * 2, axis=1), 2)


def test_a_biased_model_saturates_at_its_bias():
    """A model whose bin probabilities are q instead of p: D -> B = Σ (q − p)² / p."""
    p = np.full(4, 0.25)
    q = np.array([0.27, 0.23, 0.26, 0.24])
    bins = Binning(lambda v: np.asarray(v, dtype=np.int64), p, "4 cells")

    def model(n: int, seed: int) -> np.ndarray:
        return np.random.default_rng(seed).choice(4, size=n, p=q)

    train = [np.random.default_rng(s).choice(4, size=50, p=p) for s in range(20)]
    res = amplification([model] * 20, train, bins, [10_000, 1_000_000])
    b = float(np.sum((q - p) ** 2 / p))
    expected = [1 / (b + 3 / 10_000), 1 / (b + 3 / 1_000_000)]
    np.testing.assert_allclose(res.equivalent / 3, expected, rtol=0.15)
    assert res.equivalent[-1] < 3 / b * 1.05  # never more than (K - 1) / B


def test_weights_count_like_copies():
    x = np.array([-1.0, 0.2, 0.3, 1.5])
    w = np.array([1.0, 2.0, 0.0, 3.0])
    copies = np.repeat(x, w.astype(int))
    assert discrepancy(x, BINS, weights=w) == pytest.approx(discrepancy(copies, BINS))


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 30), st.floats(-5, 5), st.floats(0.1, 5))
def test_quantile_bins_split_the_truth_equally(k, mu, sigma):
    truth = norm.ppf((np.arange(20_000) + 0.5) / 20_000, loc=mu, scale=sigma)
    bins = quantile_binning(truth, k)
    counts = np.bincount(bins.assign(truth), minlength=k)
    assert counts.sum() == truth.size and np.abs(counts - truth.size / k).max() <= 1
    assert np.all(np.diff(bins.assign(np.sort(truth))) >= 0)  # monotone
    assert bins.probabilities.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: quantile_binning(TRUTH, 1), ConfigError, "n_bins: expected an integer >= 2"),
        (lambda: quantile_binning(TRUTH[:50], 10), DataFormatError, "need at least 100"),
        (lambda: quantile_binning(np.r_[TRUTH, np.nan], 10), DataFormatError, "NaN"),
        (
            lambda: quantile_binning(np.repeat([0.0, 1.0], 500), 10),
            DataFormatError,
            "tied quantile edges",
        ),
        (lambda: quantile_binning(TRUTH, 10, column=2), ConfigError, "column: 2 is out of"),
        (lambda: discrepancy(np.zeros(0), BINS), DataFormatError, "no events"),
        (lambda: discrepancy(np.zeros(3), BINS, weights=[1, -1, 1]), DataFormatError, "weights"),
        (lambda: amplification([], [], BINS, [10]), ConfigError, "one per training set"),
        (
            lambda: amplification([truth_sampler], [np.zeros(5)], BINS, [0]),
            ConfigError,
            "sizes: expected positive",
        ),
        (
            lambda: amplification([truth_sampler] * 2, [np.zeros(5), np.zeros(6)], BINS, [5]),
            DataFormatError,
            "sizes differ",
        ),
    ],
)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
