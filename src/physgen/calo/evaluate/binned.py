"""Weighted 1-D histograms on fixed edges with ``np.histogram``'s bin rule, on boost-histogram.

The official CaloChallenge evaluator bins with ``np.histogram`` on explicit edges: bin
``i`` holds ``edges[i] <= v < edges[i + 1]``, the last bin is closed on the right
(``v == edges[-1]`` counts), values outside the edges are dropped. boost-histogram's
``Variable`` axis has the same half-open bins but sends ``v == edges[-1]`` to the
overflow bin. :class:`WeightedHistogram` finds every value's bin with numpy's rule
(:func:`~physgen.calo.evaluate.kernels.bin_indices`: exact float64 comparisons with the
edges, float32 inputs widened exactly) and fills the bin indices, with their weights,
into a boost-histogram ``Integer`` axis with ``Weight`` storage (sum of weights and sum
of squared weights per bin). Unweighted batches of at least 2^20 values (the voxel
spectrum's) are counted in the same compiled pass and added to that storage as a fill
of unit weights would (value and variance += count): filling boost value by value
doubles the cost of the spectrum (1.3e9 voxels for two dataset-2 files of 100k
showers). :meth:`WeightedHistogram.to_hist` returns the same
contents as a :class:`hist.Hist` on a ``Variable`` axis whose last edge is moved up by
one ulp (``np.nextafter``), so that further fills of that object also count
``v == edges[-1]`` in the last bin, as numpy does.

Unweighted fills count 1 per entry, so sums of weights are integers held exactly in
float64 (up to 2^53 entries per bin) and densities equal numpy's ``density=True``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.calo.evaluate.kernels import bin_counts, bin_indices, check_edges

__all__ = ["WeightedHistogram"]

F64 = npt.NDArray[np.float64]

#: Values binned per kernel call: keeps the index buffers at a few MB.
_CHUNK = 1 << 21
#: Unweighted fills of at least this many values are counted by the compiled kernel.
COUNT_MIN_VALUES = 1 << 20


class WeightedHistogram:
    """A histogram on fixed edges, filled in batches, with sums of weights and of their squares.

    Args:
        edges: Strictly increasing bin edges ``(n_bins + 1,)``.
        threshold: Values below it are dropped before binning, compared in the values'
            own dtype (the official evaluator zeroes voxels below its threshold this
            way); None keeps every value.

    Example:
        >>> h = WeightedHistogram([0.0, 1.0, 2.0])
        >>> h.fill([0.5, 1.0, 2.0, 3.0], weights=[1.0, 2.0, 0.5, 9.0]).values().tolist()
        [1.0, 2.5]
    """

    def __init__(self, edges: npt.ArrayLike, threshold: float | None = None) -> None:
        import boost_histogram as bh

        self.edges: F64 = check_edges(edges)
        self.threshold = threshold
        n = self.edges.size - 1
        self._h: Any = bh.Histogram(
            bh.axis.Integer(0, n, underflow=False, overflow=False), storage=bh.storage.Weight()
        )
        self.entries = 0  # values that fell inside the edges

    @property
    def n_bins(self) -> int:
        """Number of bins."""
        return int(self.edges.size - 1)

    def fill(
        self, values: npt.ArrayLike, weights: npt.ArrayLike | None = None
    ) -> WeightedHistogram:
        """Add a batch of values.

        Args:
            values: float32 or float64 array of any shape (e.g. ``(b,)`` feature values or
                ``(b, n_voxels)`` showers), binned in float64 after the threshold.
            weights: None (weight 1 each), an array of the values' shape, or for values
                of two or more dimensions one weight per row ``(b,)`` (e.g. per shower).

        Returns:
            ``self``, so that fills chain.

        Raises:
            ValueError: Weights of another shape.
        """
        v = np.asarray(values)
        w: F64 | None = None
        per_row = 1
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape == v.shape:
                w = w.reshape(-1)
            elif v.ndim >= 2 and w.shape == (v.shape[0],):
                per_row = int(np.prod(v.shape[1:]))
            else:
                raise ValueError(
                    f"weights: expected shape {v.shape}"
                    + (f" or ({v.shape[0]},)" if v.ndim >= 2 else "")
                    + f", got {w.shape}"
                )
        flat = np.ascontiguousarray(v).reshape(-1)
        if w is None and flat.size >= COUNT_MIN_VALUES:
            counts = bin_counts(flat, self.edges, self.threshold)
            view = self._h.view()
            view.value += counts
            view.variance += counts
            self.entries += int(counts.sum())
            return self
        for start in range(0, flat.size, _CHUNK):
            chunk = flat[start : start + _CHUNK]
            bins, pos = bin_indices(chunk, self.edges, self.threshold, positions=w is not None)
            if bins.size == 0:
                continue
            if w is None:
                self._h.fill(bins)
            else:
                assert pos is not None
                at = (pos + start) // per_row
                self._h.fill(bins, weight=w[at])
            self.entries += int(bins.size)
        return self

    def __iadd__(self, other: WeightedHistogram) -> WeightedHistogram:
        if not np.array_equal(self.edges, other.edges):
            raise ValueError("cannot add histograms with different edges")
        self._h += other._h
        self.entries += other.entries
        return self

    def values(self) -> F64:
        """Sum of weights per bin (counts for unweighted fills)."""
        out: F64 = np.array(self._h.view().value, dtype=np.float64)
        return out

    def variances(self) -> F64:
        """Sum of squared weights per bin (the Poisson variance of the sum of weights)."""
        out: F64 = np.array(self._h.view().variance, dtype=np.float64)
        return out

    def sum(self) -> float:
        """Sum of weights inside the edges."""
        return float(self.values().sum())

    def _norm(self) -> F64 | None:
        total = self.sum()
        if total == 0:
            return None
        norm: F64 = total * np.diff(self.edges)
        return norm

    def density(self) -> F64:
        """Contents divided by (sum of weights x bin width), as ``np.histogram(..., density=True)``;
        zeros for an empty histogram."""
        norm = self._norm()
        if norm is None:
            return np.zeros(self.n_bins)
        out: F64 = self.values() / norm
        return out

    def density_error(self) -> F64:
        """Statistical error of :meth:`density`: sqrt(sum of squared weights), normalised
        like the contents (the uncertainty of the normalisation is neglected)."""
        norm = self._norm()
        if norm is None:
            return np.zeros(self.n_bins)
        out: F64 = np.sqrt(self.variances()) / norm
        return out

    def to_hist(self, name: str = "x", label: str = "") -> Any:
        """The contents as a :class:`hist.Hist` (``Variable`` axis, ``Weight`` storage).

        The last edge is ``np.nextafter(edges[-1], inf)``, so that values equal to the
        official last edge, filled into the returned object, land in the last bin.
        """
        import hist

        e = self.edges.copy()
        e[-1] = np.nextafter(e[-1], np.inf)
        h = hist.Hist(hist.axis.Variable(e, name=name, label=label), storage=hist.storage.Weight())
        h.view(flow=False)[...] = self._h.view()
        return h
