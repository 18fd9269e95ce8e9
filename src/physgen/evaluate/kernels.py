"""Compiled kernels of the evaluation: the voxel-energy spectrum.

The official evaluator histograms every voxel of every shower (``plt.hist`` of the
flattened, thresholded showers on 50 log-spaced edges). ``np.histogram`` with
non-uniform edges sorts its input, which for two dataset-2 files of 100k showers
(1.3e9 voxels) costs about 30 s; this kernel bins each value in one pass with the same
result: the bin of the value's bucket (its float64 exponent and top 8 mantissa bits,
looked up in a table), corrected by exact comparisons with the float64 edges; the last
bin is closed on the right and values outside the edges are dropped, as in numpy.

numba compiles the kernels on first use (about 1 s) and caches the machine code in
``__pycache__`` (``cache=True``). The kernels release the GIL: the evaluation runs them
on two threads, one batch each (numba's own parallel loops are not used, as its default
threading layer may not be entered from two threads at once).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from numba import njit

__all__ = ["edge_histogram", "log_histogram"]


#: A value's bucket: its float64 bits shifted right by this (sign, exponent and the top
#: 8 mantissa bits), so one bucket spans a factor 1 + 2^-8 of values.
_SHIFT = 44


def _bucket_table(edges: npt.NDArray[np.float64]) -> npt.NDArray[np.int16]:
    """For every positive-float bucket, the bin of its smallest value (clipped)."""
    key = edges.tobytes()
    if key not in _TABLES:
        if len(_TABLES) >= 64:
            _TABLES.pop(next(iter(_TABLES)))
        _TABLES[key] = _make_table(edges)
    return _TABLES[key]


_TABLES: dict[bytes, npt.NDArray[np.int16]] = {}


def _make_table(edges: npt.NDArray[np.float64]) -> npt.NDArray[np.int16]:
    keys = np.arange(1 << (63 - _SHIFT), dtype=np.uint64) << np.uint64(_SHIFT)
    lows = keys.view(np.float64)
    idx = np.searchsorted(edges, lows, side="right") - 1
    table: npt.NDArray[np.int16] = np.clip(idx, 0, edges.size - 2).astype(np.int16)
    return table


@njit(cache=True, nogil=True)
def _bucket_histogram(
    values: Any, threshold: Any, edges: Any, table: Any, n_chunks: int
) -> Any:  # pragma: no cover - compiled
    n = values.size
    n_bins = edges.size - 1
    counts = np.zeros((n_chunks, n_bins), dtype=np.int64)
    per = (n + n_chunks - 1) // n_chunks
    lo_edge = edges[0]
    hi_edge = edges[n_bins]
    for c in range(n_chunks):
        start = c * per
        stop = min(n, start + per)
        for k in range(start, stop):
            v = values[k]
            if v < threshold:  # zeroed by the threshold (compared in the values' dtype)
                continue
            w = np.float64(v)
            if not (w >= lo_edge and w <= hi_edge):  # also drops NaN
                continue
            i = np.int64(table[np.int64(np.uint64(np.float64(w).view(np.uint64)) >> 44)])
            while i < n_bins - 1 and w >= edges[i + 1]:
                i += 1
            counts[c, i] += 1
    return counts.sum(axis=0)


@njit(cache=True, nogil=True)
def _edge_histogram(values: Any, edges: Any, inv_width: float) -> Any:  # pragma: no cover
    n_bins = edges.size - 1
    counts = np.zeros(n_bins, dtype=np.int64)
    lo_edge = edges[0]
    hi_edge = edges[n_bins]
    for k in range(values.size):
        w = values[k]
        if not (w >= lo_edge and w <= hi_edge):  # also drops NaN
            continue
        i = int((w - lo_edge) * inv_width)
        i = min(max(i, 0), n_bins - 1)
        while i > 0 and w < edges[i]:
            i -= 1
        while i < n_bins - 1 and w >= edges[i + 1]:
            i += 1
        counts[i] += 1
    return counts


def edge_histogram(values: npt.ArrayLike, edges: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """``np.histogram(values, edges)[0]`` for (nearly) equally spaced ``edges``, without
    the sort that ``np.histogram`` makes whenever the edges are given as an array.

    The bin is guessed from the spacing and corrected by exact comparisons with the
    float64 edges, so the counts equal numpy's for any increasing edges.
    """
    e = np.ascontiguousarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.all(np.diff(e) > 0):
        raise ValueError("edges must be increasing and at least two")
    v = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
    counts: npt.NDArray[np.int64] = _edge_histogram(v, e, (e.size - 1) / (e[-1] - e[0]))
    return counts


def log_histogram(
    values: npt.NDArray[Any], edges: npt.ArrayLike, threshold: float = 0.0
) -> npt.NDArray[np.int64]:
    """Counts of ``values`` in ``edges``, as ``np.histogram(values[values >= threshold],
    edges)`` gives them.

    Args:
        values: Any array of float32 or float64 (flattened; not copied when contiguous).
        edges: Increasing, positive float64 edges (meant for log-spaced ones: every bin
            must span more than a factor 1 + 2^-8, which 50 log bins over 20 decades do).
        threshold: Values below it are skipped, compared in the values' own dtype (the
            official ``np.where(x < threshold, 0, x)`` zeroes them).

    Returns:
        ``(len(edges) - 1,)`` int64 counts.
    """
    e = np.ascontiguousarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or not np.all(np.diff(e) > 0) or e[0] <= 0:
        raise ValueError("edges must be increasing, positive and at least two")
    v = np.ascontiguousarray(values).reshape(-1)
    if v.dtype.kind != "f":
        v = v.astype(np.float64)
    thr = v.dtype.type(threshold)
    n_chunks = max(1, min(64, v.size // (1 << 20)))
    counts: npt.NDArray[np.int64] = _bucket_histogram(v, thr, e, _bucket_table(e), n_chunks)
    return counts
