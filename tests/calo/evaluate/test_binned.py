"""WeightedHistogram (boost-histogram storage) bins exactly as ``np.histogram``.

``np.histogram`` on explicit edges: half-open bins, the last one closed on the right,
values outside (and NaN) dropped. boost-histogram's Variable axis sends a value equal to
the last edge to the overflow; WeightedHistogram and its ``to_hist()`` must not.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from physgen.calo.evaluate import binned
from physgen.calo.evaluate.binned import WeightedHistogram


@st.composite
def edges_and_values(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """Linear or log edges (float64, or float32 values widened as the official edges
    from a float32 maximum), values of either dtype with some exactly on edges."""
    n_edges = draw(st.integers(2, 60))
    if draw(st.booleans()):
        lo = draw(st.floats(-50, 10))
        edges = np.linspace(lo, lo + draw(st.floats(0.01, 100)), n_edges)
    else:
        lo = draw(st.floats(1e-5, 1.0))
        stop = np.log10(lo) + draw(st.floats(0.3, 10.0))
        if draw(st.booleans()):  # official: log10 of a float32 maximum
            stop = float(np.float32(stop))
        edges = np.logspace(np.log10(lo), stop, n_edges)
    if draw(st.booleans()):
        edges = edges.astype(np.float32).astype(np.float64)
        edges = np.unique(edges)
        if edges.size < 2:
            edges = np.array([edges[0], np.nextafter(edges[0], np.inf)])
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    span = float(edges[-1] - edges[0])
    values = draw(
        hnp.arrays(
            np.float64,
            st.integers(0, 200),
            elements=st.floats(float(edges[0]) - 0.2 * span, float(edges[-1]) + 0.2 * span),
        )
    ).astype(dtype)
    if values.size:  # values exactly on edges: first, last and inner ones
        on = draw(st.lists(st.integers(0, edges.size - 1), min_size=1, max_size=values.size))
        on += [edges.size - 1, 0][: values.size - len(on)]
        k = min(len(on), values.size)
        values[:k] = edges[on[:k]].astype(dtype)
    return edges, values


@settings(max_examples=300, deadline=None)
@given(data=edges_and_values(), fused=st.booleans())
def test_counts_equal_numpy(data: tuple[np.ndarray, np.ndarray], fused: bool) -> None:
    edges, values = data
    min_values = binned.COUNT_MIN_VALUES
    binned.COUNT_MIN_VALUES = 0 if fused else 1 << 62
    try:
        h = WeightedHistogram(edges).fill(values)
    finally:
        binned.COUNT_MIN_VALUES = min_values
    expected = np.histogram(values, bins=edges)[0]
    np.testing.assert_array_equal(h.values(), expected)
    np.testing.assert_array_equal(h.variances(), expected)
    assert h.entries == expected.sum()
    if expected.sum():  # n / (sum n * width) here, n / width / sum n in numpy
        np.testing.assert_allclose(
            h.density(), np.histogram(values, bins=edges, density=True)[0], rtol=1e-15
        )
    # the hist.Hist view: same contents, and its nudged last edge keeps numpy's rule
    hh = h.to_hist()
    np.testing.assert_array_equal(hh.values(), expected)
    direct = hh.copy().reset().fill(values.astype(np.float64))
    np.testing.assert_array_equal(direct.values(), expected)


@settings(max_examples=200, deadline=None)
@given(data=edges_and_values(), seed=st.integers(0, 2**32 - 1))
def test_weighted_equal_numpy(data: tuple[np.ndarray, np.ndarray], seed: int) -> None:
    edges, values = data
    w = np.random.default_rng(seed).exponential(1.0, values.shape)
    h = WeightedHistogram(edges).fill(values, w)
    # numpy's weighted counts are differences of a cumulative sum: exact to the total's ulp
    for ours, ww in ((h.values(), w), (h.variances(), w**2)):
        np.testing.assert_allclose(
            ours, np.histogram(values, edges, weights=ww)[0], rtol=1e-12, atol=1e-12 * ww.sum()
        )
    hh = h.to_hist()
    np.testing.assert_allclose(hh.variances(), h.variances(), rtol=0)


def test_threshold_in_the_values_dtype() -> None:
    """Voxels below the threshold are dropped as the official ``np.where(x < thr, 0, x)``
    does, compared in float32 for float32 showers."""
    thr = 0.5e-3 / 0.033
    below = np.nextafter(np.float32(thr), np.float32(0))
    x = np.array([[np.float32(thr), below, 0.0, 3.0]], dtype=np.float32)
    edges = np.logspace(np.log10(thr * 0.999), 1, 10)
    h = WeightedHistogram(edges, threshold=thr).fill(x)
    official = np.histogram(np.where(x < thr, 0, x), bins=edges)[0]
    np.testing.assert_array_equal(h.values(), official)
    assert h.entries == 2


def test_per_row_weights_streamed_in_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Showers (b, n_voxels) with one weight per shower, filled in two batches and in
    chunks that cut rows: the same as one weighted np.histogram of all voxels."""
    monkeypatch.setattr(binned, "_CHUNK", 7)
    rng = np.random.default_rng(3)
    x = rng.exponential(1.0, (20, 5)).astype(np.float32)
    w = rng.random(20)
    edges = np.logspace(-2, 1, 13)
    h = WeightedHistogram(edges, threshold=0.05)
    h.fill(x[:9], w[:9]).fill(x[9:], w[9:])
    xt = np.where(x < 0.05, 0, x)
    ww = np.repeat(w, 5).reshape(x.shape)
    np.testing.assert_allclose(h.values(), np.histogram(xt, edges, weights=ww)[0], rtol=1e-12)
    np.testing.assert_allclose(h.variances(), np.histogram(xt, edges, weights=ww**2)[0], rtol=1e-12)
    other = WeightedHistogram(edges, threshold=0.05).fill(x, w)
    total = WeightedHistogram(edges, threshold=0.05)
    total += other
    np.testing.assert_allclose(total.values(), h.values(), rtol=1e-12)


def test_fused_count_equals_boost_fill() -> None:
    """Large unweighted fills (counted by the kernel) leave the storage a fill of unit
    weights leaves."""
    rng = np.random.default_rng(5)
    x = (rng.exponential(1.0, binned.COUNT_MIN_VALUES + 5) ** 3).astype(np.float32)
    edges = np.logspace(-3, np.log10(float(x.max())), 50)
    fused = WeightedHistogram(edges).fill(x)
    by_value = WeightedHistogram(edges).fill(x, np.ones_like(x, dtype=np.float64))
    np.testing.assert_array_equal(fused.values(), by_value.values())
    np.testing.assert_array_equal(fused.variances(), by_value.variances())
    np.testing.assert_array_equal(fused.values(), np.histogram(x, edges)[0])


def test_bad_weights_and_edges() -> None:
    h = WeightedHistogram([0.0, 1.0])
    with pytest.raises(ValueError, match=r"weights: expected shape \(3,\)"):
        h.fill(np.zeros(3), np.ones(2))
    with pytest.raises(ValueError, match=r"or \(2,\)"):
        h.fill(np.zeros((2, 3)), np.ones(3))
    with pytest.raises(ValueError, match="increasing"):
        WeightedHistogram([1.0, 0.0])
    with pytest.raises(ValueError, match="different edges"):
        h += WeightedHistogram([0.0, 2.0])
    assert WeightedHistogram([0.0, 1.0]).density().tolist() == [0.0]


def test_weighted_separation_powers() -> None:
    """Unit weights change nothing; weight 2 on a shower equals the shower twice."""
    from physgen.calo.evaluate.features import ShowerFeatures, features_of_batch
    from physgen.calo.evaluate.histograms import compare_histograms, histogram_specs
    from physgen.calo.geometry import get_geometry
    from showerdata import toy_showers

    geo = get_geometry("1-photons")
    ref = features_of_batch(*toy_showers(300, "1-photons", seed=1), geo)
    e, x = toy_showers(200, "1-photons", seed=2)
    gen = features_of_batch(e, x, geo)
    specs = histogram_specs(ref)
    plain = compare_histograms(ref, gen, specs)
    ones = compare_histograms(ref, gen, specs, generated_weights=np.ones(gen.n))
    assert [r.separation_power for r in plain] == [r.separation_power for r in ones]
    w = np.ones(gen.n)
    w[:50] = 2.0
    doubled = ShowerFeatures.concatenate([gen, features_of_batch(e[:50], x[:50], geo)])
    weighted = compare_histograms(ref, gen, specs, generated_weights=w)
    copied = compare_histograms(ref, doubled, specs)
    for a, b in zip(weighted, copied):
        assert a.separation_power == pytest.approx(b.separation_power, rel=1e-12, abs=1e-15)
        np.testing.assert_allclose(a.generated, b.generated, rtol=1e-12)
        assert a.n_generated == b.n_generated
    with pytest.raises(ValueError, match=r"generated_weights: expected one weight per shower"):
        compare_histograms(ref, gen, specs, generated_weights=np.ones(3))
