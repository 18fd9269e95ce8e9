"""The compiled voxel spectrum bins exactly as ``np.histogram`` after the official threshold."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from physgen.calo.evaluate.kernels import edge_histogram, log_histogram


def _numpy(values: np.ndarray, edges: np.ndarray, threshold: float) -> np.ndarray:
    x = np.where(values < threshold, np.zeros_like(values), values)
    return np.histogram(x, bins=edges)[0]


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
    threshold=st.floats(0.0, 2.0),
)
def test_equals_numpy_histogram(
    values: np.ndarray, lo: float, decades: float, n_edges: int, threshold: float
) -> None:
    edges = np.logspace(np.log10(lo), np.log10(lo) + decades, n_edges)
    # put some values exactly on edges, where the bin rule matters
    if values.size:
        k = min(values.size, n_edges)
        values[:k] = edges[:k].astype(values.dtype)
    np.testing.assert_array_equal(
        log_histogram(values, edges, threshold), _numpy(values, edges, threshold)
    )


def test_official_voxel_edges_on_float32_showers(rng: np.random.Generator) -> None:
    x = (rng.exponential(1.0, (2000, 144)) ** 3).astype(np.float32)
    x[rng.random(x.shape) < 0.4] = 0
    thr = 0.5e-3 / 0.033
    edges = np.logspace(np.log10(thr), np.log10(x.max()), 50)  # float32 log10 of the max
    np.testing.assert_array_equal(log_histogram(x, edges, thr), _numpy(x, edges, thr))


def test_rejects_bad_edges() -> None:
    with pytest.raises(ValueError, match="increasing"):
        log_histogram(np.ones(3), [1.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="positive"):
        log_histogram(np.ones(3), [0.0, 1.0])


@settings(max_examples=200, deadline=None)
@given(
    values=hnp.arrays(
        np.float64, st.integers(0, 300), elements=st.floats(-100, 100, allow_nan=False)
    ),
    lo=st.floats(-50, 10),
    width=st.floats(0.01, 100),
    n_edges=st.integers(2, 120),
)
def test_edge_histogram_equals_numpy(
    values: np.ndarray, lo: float, width: float, n_edges: int
) -> None:
    edges = np.linspace(lo, lo + width, n_edges)
    if values.size:
        k = min(values.size, n_edges)
        values[:k] = edges[:k]
    np.testing.assert_array_equal(
        edge_histogram(values, edges), np.histogram(values, bins=edges)[0]
    )
