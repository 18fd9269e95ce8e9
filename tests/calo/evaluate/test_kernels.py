"""The compiled bin search gives ``np.histogram``'s bins, after the official threshold."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from physgen.calo.evaluate import kernels
from physgen.calo.evaluate.kernels import bin_counts, bin_indices, check_edges


def _numpy(values: np.ndarray, edges: np.ndarray, threshold: float | None) -> np.ndarray:
    x = values if threshold is None else np.where(values < threshold, np.zeros_like(values), values)
    return np.histogram(x, bins=edges)[0]


def _expected_bins(values: np.ndarray, edges: np.ndarray, threshold: float | None) -> np.ndarray:
    """numpy's bin of every kept value, in input order."""
    v = values.reshape(-1)
    keep = (v >= edges[0]) & (v <= edges[-1])
    if threshold is not None:
        keep &= ~(v < v.dtype.type(threshold))
    idx = np.searchsorted(edges, v[keep].astype(np.float64), side="right") - 1
    return np.minimum(idx, len(edges) - 2)


@settings(max_examples=200, deadline=None)
@given(
    values=hnp.arrays(
        st.sampled_from([np.float32, np.float64]),
        st.integers(0, 300),
        elements=st.floats(0, 1e7, width=32, allow_nan=False),
    ),
    lo=st.floats(1e-6, 1.0),
    decades=st.floats(0.5, 12.0),
    n_edges=st.integers(2, 60),
    threshold=st.one_of(st.none(), st.floats(0.0, 2.0)),
    table=st.booleans(),
)
def test_log_edges_equal_numpy(
    values: np.ndarray,
    lo: float,
    decades: float,
    n_edges: int,
    threshold: float | None,
    table: bool,
) -> None:
    edges = np.logspace(np.log10(lo), np.log10(lo) + decades, n_edges)
    # put some values exactly on edges (the last one included), where the bin rule matters
    if values.size:
        k = min(values.size, n_edges)
        values[:k] = edges[-k:].astype(values.dtype)
    if table:  # the bucket table of large inputs, on a small one
        kernels._bucket_table(edges)
    np.testing.assert_array_equal(
        bin_counts(values, edges, threshold), _numpy(values, edges, threshold)
    )
    bins, pos = bin_indices(values, edges, threshold, positions=True)
    np.testing.assert_array_equal(bins, _expected_bins(values, edges, threshold))
    assert pos is not None and np.all(np.diff(pos) > 0)


def test_official_voxel_edges_on_float32_showers(rng: np.random.Generator) -> None:
    x = (rng.exponential(1.0, (2000, 144)) ** 3).astype(np.float32)
    x[rng.random(x.shape) < 0.4] = 0
    thr = 0.5e-3 / 0.033
    edges = np.logspace(np.log10(thr), np.log10(x.max()), 50)  # float32 log10 of the max
    x[0, :3] = [np.float32(thr), edges[-1].astype(np.float32), np.nextafter(np.float32(thr), 0)]
    np.testing.assert_array_equal(bin_counts(x, edges, thr), _numpy(x, edges, thr))
    assert kernels._guess(edges, x.size)[0] == kernels._GUESS_TABLE


def test_rejects_bad_edges() -> None:
    with pytest.raises(ValueError, match="increasing"):
        check_edges([1.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="at least two"):
        check_edges([1.0])
    with pytest.raises(ValueError, match="finite"):
        check_edges([0.0, np.inf])


@settings(max_examples=200, deadline=None)
@given(
    values=hnp.arrays(
        np.float64,
        st.integers(0, 300),
        elements=st.one_of(st.floats(-100, 100), st.just(np.nan), st.just(np.inf)),
    ),
    lo=st.floats(-50, 10),
    width=st.floats(0.01, 100),
    n_edges=st.integers(2, 120),
)
def test_linear_edges_equal_numpy(
    values: np.ndarray, lo: float, width: float, n_edges: int
) -> None:
    edges = np.linspace(lo, lo + width, n_edges)
    if values.size:
        k = min(values.size, n_edges)
        values[:k] = edges[-k:]
    np.testing.assert_array_equal(bin_counts(values, edges), np.histogram(values, bins=edges)[0])
    np.testing.assert_array_equal(
        bin_indices(values, edges)[0], _expected_bins(values, edges, None)
    )
