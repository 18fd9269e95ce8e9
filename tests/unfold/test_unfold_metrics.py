"""physgen.unfold.metrics: W1, triangular discriminator, KS, bands and tables.

Closed forms (point masses, two-bin histograms), scipy as the reference for the weighted
Wasserstein and KS distances, and hypothesis properties (symmetry, identity, shifts, range).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import stats

from physgen.errors import ConfigError, DataFormatError
from physgen.unfold.metrics import (
    bin_coverage,
    bootstrap_band,
    default_bins,
    density_histogram,
    format_table,
    is_integer_valued,
    ks_distance,
    summary_table,
    triangular_discriminator,
    wasserstein_1d,
    weighted_quantile,
)

values = arrays(
    np.float64,
    st.integers(1, 40),
    elements=st.floats(-100, 100, allow_nan=False, allow_infinity=False),
)


def _weighted(n: int) -> st.SearchStrategy[np.ndarray]:
    return arrays(np.float64, n, elements=st.floats(0.01, 10.0))


# ------------------------------------------------------------------ Wasserstein


@pytest.mark.parametrize("seed", range(4))
def test_w1_equals_scipy_with_weights(seed: int) -> None:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=300), rng.normal(0.4, 1.3, size=200)
    wa, wb = rng.uniform(0, 2, 300), rng.exponential(size=200)
    if seed == 3:  # ties inside and across the samples
        a, b = np.round(a, 1), np.round(b, 1)
    assert wasserstein_1d(a, b, wa, wb) == pytest.approx(
        stats.wasserstein_distance(a, b, wa, wb), rel=1e-12, abs=1e-14
    )
    assert wasserstein_1d(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-12)


def test_w1_closed_forms() -> None:
    assert wasserstein_1d([0.0], [1.0]) == pytest.approx(1.0)
    # mass 3/4 at 0 and 1/4 at 2 vs all at 1: |F| = 3/4 on [0, 1), 1/4 on [1, 2)
    assert wasserstein_1d([0.0, 2.0], [1.0], wa=[3.0, 1.0]) == pytest.approx(1.0)
    # integer weights are repeated events
    assert wasserstein_1d([0.0, 1.0, 5.0], [2.0], wa=[2, 1, 1]) == pytest.approx(
        wasserstein_1d([0.0, 0.0, 1.0, 5.0], [2.0])
    )
    # N(0,1) vs N(0.3,1): W1 = 0.3 (quantile functions shifted); 200k events
    rng = np.random.default_rng(0)
    assert wasserstein_1d(rng.normal(size=200_000), rng.normal(0.3, 1.0, 200_000)) == (
        pytest.approx(0.3, abs=0.01)
    )


@settings(max_examples=60, deadline=None)
@given(a=values, b=values, c=st.floats(-50, 50))
def test_w1_properties(a: np.ndarray, b: np.ndarray, c: float) -> None:
    w = wasserstein_1d(a, b)
    assert w >= 0
    assert w == pytest.approx(wasserstein_1d(b, a), rel=1e-9, abs=1e-9)
    assert wasserstein_1d(a, a) == 0.0
    assert wasserstein_1d(a, a + c) == pytest.approx(abs(c), rel=1e-9, abs=1e-9)
    assert wasserstein_1d(2.0 * a, 2.0 * b) == pytest.approx(2.0 * w, rel=1e-9, abs=1e-9)
    # bounded by the largest distance between any two points
    spread = max(a.max(), b.max()) - min(a.min(), b.min())
    assert w <= spread + 1e-9


@settings(max_examples=40, deadline=None)
@given(data=st.data(), n=st.integers(1, 30))
def test_w1_weights_scale_free_and_like_scipy(data: st.DataObject, n: int) -> None:
    a = data.draw(arrays(np.float64, n, elements=st.floats(-10, 10)))
    wa = data.draw(_weighted(n))
    b = data.draw(values)
    assert wasserstein_1d(a, b, wa) == pytest.approx(
        wasserstein_1d(a, b, 7.0 * wa), rel=1e-9, abs=1e-12
    )
    assert wasserstein_1d(a, b, wa) == pytest.approx(
        stats.wasserstein_distance(a, b, wa), rel=1e-8, abs=1e-10
    )


def test_w1_bad_input() -> None:
    with pytest.raises(DataFormatError, match="empty"):
        wasserstein_1d([], [1.0])
    with pytest.raises(DataFormatError, match="NaN"):
        wasserstein_1d([np.nan], [1.0])
    with pytest.raises(DataFormatError, match="weights must be"):
        wasserstein_1d([0.0, 1.0], [1.0], wa=[1.0, -1.0])
    with pytest.raises(DataFormatError, match="sum to 0"):
        wasserstein_1d([0.0, 1.0], [1.0], wa=[0.0, 0.0])
    with pytest.raises(DataFormatError, match="2 values but 3 weights"):
        wasserstein_1d([0.0, 1.0], [1.0], wa=[1.0, 1.0, 1.0])
    with pytest.raises(DataFormatError, match="1-D"):
        wasserstein_1d(np.zeros((3, 2)), [1.0])


# ------------------------------------------------------------------ triangular discriminator


def test_triangular_closed_forms() -> None:
    edges = [0.0, 1.0, 2.0]
    assert triangular_discriminator([0.5], [1.5], edges) == pytest.approx(1.0)  # disjoint
    # P = (1/2, 1/2), Q = (1, 0): ½ [(1/2)² / (3/2) + (1/2)² / (1/2)] = 1/3
    assert triangular_discriminator([0.5, 1.5], [0.5], edges) == pytest.approx(1 / 3)
    # weights: P = (3/4, 1/4), Q = (1/4, 3/4): ½ [2 (1/2)² / 1] = 1/4
    assert triangular_discriminator(
        [0.5, 1.5], [0.5, 1.5], edges, wa=[3, 1], wb=[1, 3]
    ) == pytest.approx(0.25)
    # entries outside the edges are ignored (normalised inside)
    assert triangular_discriminator([0.5, 9.0], [0.5], edges) == pytest.approx(0.0)


def test_triangular_equals_the_density_formula_of_the_paper() -> None:
    """½ Σ width (p − q)² / (p + q) with numpy's density histograms (arXiv:2404.18807 code),
    on uneven bins."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=5000), rng.normal(0.2, 1.1, size=4000)
    edges = np.array([-3.0, -1.5, -0.7, 0.0, 0.2, 1.0, 2.5, 3.0])
    p, _ = np.histogram(a, edges, density=True)
    q, _ = np.histogram(b, edges, density=True)
    ref = 0.5 * np.sum(np.diff(edges) * (p - q) ** 2 / (p + q))
    assert triangular_discriminator(a, b, edges) == pytest.approx(ref, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(a=values, b=values, nbins=st.integers(1, 20))
def test_triangular_properties(a: np.ndarray, b: np.ndarray, nbins: int) -> None:
    edges = np.linspace(-100.0, 100.0, nbins + 1)
    d = triangular_discriminator(a, b, edges)
    assert -1e-12 <= d <= 1.0 + 1e-12
    assert d == pytest.approx(triangular_discriminator(b, a, edges), abs=1e-12)
    assert triangular_discriminator(a, a, edges) == 0.0
    assert triangular_discriminator(a, b, edges, wa=np.full(a.size, 3.0)) == pytest.approx(
        d, abs=1e-12
    )
    assert 0.0 <= triangular_discriminator(a, b, nbins) <= 1.0 + 1e-12  # int: equal bins


def test_triangular_bad_input() -> None:
    with pytest.raises(DataFormatError, match="no weight inside"):
        triangular_discriminator([5.0], [0.5], [0.0, 1.0])
    with pytest.raises(ConfigError, match="increasing"):
        triangular_discriminator([0.5], [0.5], [1.0, 0.0])
    with pytest.raises(ConfigError, match="at least 1 bin"):
        triangular_discriminator([0.5], [0.5], 0)


# ------------------------------------------------------------------ KS, histograms, bands


def test_ks_matches_scipy_and_closed_form() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=700), rng.normal(0.3, size=500)
    assert ks_distance(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, rel=1e-12)
    assert ks_distance([0.0, 1.0], [0.0, 1.0], wa=[3, 1]) == pytest.approx(0.25)
    assert ks_distance([0.0], [1.0]) == 1.0


def test_density_histogram() -> None:
    v = np.array([0.1, 0.2, 0.7, 1.5, 7.0])
    d, e = density_histogram(v, [0.0, 0.5, 1.0, 2.0])
    np.testing.assert_allclose(d, [2 / 4 / 0.5, 1 / 4 / 0.5, 1 / 4 / 1.0])
    assert np.sum(d * [0.5, 0.5, 1.0]) == pytest.approx(1.0)
    np.testing.assert_allclose(e, np.sqrt([2, 1, 1]) / 4 / np.array([0.5, 0.5, 1.0]))
    d0, e0 = density_histogram([9.0], [0.0, 1.0])
    assert d0.tolist() == [0.0] and e0.tolist() == [0.0]


def test_bootstrap_band_and_coverage() -> None:
    rng = np.random.default_rng(3)
    v = rng.normal(size=20_000)
    edges = np.linspace(-2, 2, 41)
    boot = rng.poisson(1.0, size=(200, v.size)).astype(np.float64)
    mean, std = bootstrap_band(v, boot, edges)
    nominal, err = density_histogram(v, edges)
    np.testing.assert_allclose(mean, nominal, rtol=0.03)
    # the Poisson bootstrap spread is the statistical error (normalisation correlations
    # aside); 200 replicas give each bin's std to ±5 %
    assert np.mean(std / err) == pytest.approx(1.0, abs=0.05)
    same = bootstrap_band(v, np.ones((1, v.size)), edges)
    np.testing.assert_allclose(same[0], nominal)
    assert (same[1] == 0).all()
    # the truth (a 100x larger sample) lies inside the ±1σ band in about 68 % of 40 bins
    # (binomial spread ±7 %; measured 0.58-0.75 over five seeds)
    truth, _ = density_histogram(rng.normal(size=2_000_000), edges)
    assert 0.45 <= bin_coverage(nominal, nominal - std, nominal + std, truth) <= 0.9
    with pytest.raises(DataFormatError, match=r"expected shape \(B, 20000\)"):
        bootstrap_band(v, boot[:, :10], edges)
    with pytest.raises(DataFormatError, match="finite and >= 0"):
        bootstrap_band(v, -boot, edges)


def test_bin_coverage_closed_form() -> None:
    nominal = np.array([1.0, 2.0, 3.0, 0.0])
    lo, hi = nominal - 0.5, nominal + 0.5
    lo[3] = hi[3] = 0.0
    truth = np.array([1.2, 2.9, 3.5, 0.0])  # in, out, on the edge (in), empty bin (ignored)
    assert bin_coverage(nominal, lo, hi, truth) == pytest.approx(2 / 3)
    with pytest.raises(DataFormatError, match="same number of bins"):
        bin_coverage(nominal, lo, hi, truth[:3])
    with pytest.raises(DataFormatError, match="lo > hi"):
        bin_coverage(nominal, hi, lo, truth)
    with pytest.raises(DataFormatError, match="every bin is empty"):
        bin_coverage(np.zeros(2), np.zeros(2), np.zeros(2), np.zeros(2))


# ------------------------------------------------------------------ bins and tables


def test_weighted_quantile_is_the_inverse_cdf() -> None:
    v = np.random.default_rng(4).normal(size=101)
    q = [0.0, 0.013, 0.3, 0.5, 0.99, 1.0]
    np.testing.assert_array_equal(weighted_quantile(v, q), np.quantile(v, q, method="inverted_cdf"))
    # weight 3 on a value is three copies of it
    for qq in (0.1, 0.6, 0.8, 0.95):
        assert weighted_quantile([2.0, 1.0], [qq], [1.0, 3.0])[0] == np.quantile(
            [1.0, 1.0, 1.0, 2.0], qq, method="inverted_cdf"
        )


def test_default_bins() -> None:
    rng = np.random.default_rng(5)
    cont = rng.normal(size=10_000)
    e = default_bins(cont)
    assert (
        e.size == 41
        and e[0] == pytest.approx(-2.33, abs=0.1)
        and e[-1] == pytest.approx(2.33, abs=0.1)
    )
    mult = rng.poisson(20, 10_000).astype(float)
    assert is_integer_valued(mult) and not is_integer_valued(cont)
    ei = default_bins(mult)
    assert np.allclose(np.diff(ei), 1.0) and np.allclose(ei % 1, 0.5)  # one integer per bin
    wide = default_bins(rng.poisson(300, 10_000).astype(float), n_bins=30)
    step = np.diff(wide)
    assert len(wide) <= 32 and np.allclose(step, step[0]) and step[0] == round(step[0]) > 1
    assert default_bins(np.full(10, 3.0), integer=False).size == 41  # constant: a small range
    with pytest.raises(ConfigError, match="n_bins"):
        default_bins(cont, n_bins=0)


def test_summary_table_and_format() -> None:
    rng = np.random.default_rng(6)
    truth = rng.normal(size=(50_000, 2))
    table = summary_table(
        (truth, None),
        {"perfect": (truth, None), "shifted": (truth + np.array([0.1, 0.0]), np.ones(50_000))},
        ["a", "b"],
        bins={"b": np.linspace(-3, 3, 31)},
    )
    assert table["perfect"]["a"] == {"w1_x10": 0.0, "delta_x1e3": 0.0, "ks": 0.0}
    assert table["shifted"]["a"]["w1_x10"] == pytest.approx(1.0, rel=1e-6)  # 10 × 0.1
    assert table["shifted"]["a"]["delta_x1e3"] > 1.0
    assert table["shifted"]["b"]["w1_x10"] == 0.0
    text = format_table(table)
    assert text.splitlines()[0] == "| method | a W1×10 / Δ×10³ | b W1×10 / Δ×10³ |"
    assert "| shifted | 1 / " in text
    assert format_table({}) == ""
    with pytest.raises(DataFormatError, match=r"expected shape \(N, 2\)"):
        summary_table((truth, None), {"x": (truth[:, :1], None)}, ["a", "b"])
    assert math.isfinite(table["shifted"]["a"]["ks"])
