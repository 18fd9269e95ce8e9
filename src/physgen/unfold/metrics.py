"""Distances between weighted 1-D samples, the way unfolding results are scored.

The metrics of "The Landscape of Unfolding with Machine Learning" (Huetsch et al.,
arXiv:2404.18807, adopted from SBUnfold, arXiv:2308.12351), per observable against the
particle-level truth:

* :func:`wasserstein_1d`: the 1-D Wasserstein (earth mover's) distance of the weighted
  empirical distributions, exact from their CDFs, ``W1 = ∫ |F_a(x) − F_b(x)| dx`` (in the
  observable's unit; the paper reports ``10 × W1``);
* :func:`triangular_discriminator`: ``Δ = ½ Σ_b (P_b − Q_b)² / (P_b + Q_b)`` of the two
  histograms normalised to unit area inside the binning (reported ``×10³``);
* :func:`ks_distance`: the Kolmogorov–Smirnov distance ``sup |F_a − F_b|``;
* :func:`bootstrap_band`, :func:`bin_coverage`: per-bin uncertainty bands from bootstrap
  weights and how often they contain the truth;
* :func:`summary_table` / :func:`format_table`: ``W1×10`` and ``Δ×10³`` per method and
  observable (the benchmark's and the report's table).

All functions take plain arrays, optional non-negative event weights, and raise
:class:`~physgen.errors.DataFormatError` with one line on bad input.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.errors import ConfigError, DataFormatError

__all__ = [
    "bin_coverage",
    "bootstrap_band",
    "default_bins",
    "density_histogram",
    "format_table",
    "is_integer_valued",
    "ks_distance",
    "summary_table",
    "triangular_discriminator",
    "wasserstein_1d",
    "weighted_quantile",
]

F64 = npt.NDArray[np.float64]

#: Default number of bins of a continuous observable (the paper's figures use 50).
DEFAULT_BINS = 40


def _sample(name: str, values: Any, weights: Any) -> tuple[F64, F64]:
    """``values (N,)`` and ``weights (N,)`` checked: finite, weights >= 0 with a positive sum."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.ndim != 1:
        raise DataFormatError(f"{name}: expected a 1-D sample, got shape {v.shape}")
    if v.size == 0:
        raise DataFormatError(f"{name}: empty sample")
    if not np.isfinite(v).all():
        raise DataFormatError(f"{name}: contains NaN or inf")
    if weights is None:
        w = np.ones(v.size)
    else:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.shape != v.shape:
            raise DataFormatError(f"{name}: {v.size} values but {w.size} weights")
        if not np.isfinite(w).all() or (w < 0).any():
            raise DataFormatError(f"{name}: weights must be finite and >= 0")
        if w.sum() <= 0:
            raise DataFormatError(f"{name}: the weights sum to 0")
    return v, w


def _edges(bins: Any) -> F64:
    e = np.asarray(bins, dtype=np.float64).reshape(-1)
    if e.size < 2 or not np.isfinite(e).all() or not (np.diff(e) > 0).all():
        raise ConfigError("bins: expected at least 2 finite, strictly increasing edges")
    return e


def _cdfs(a: F64, wa: F64, b: F64, wb: F64) -> tuple[F64, F64, F64]:
    """Both weighted CDFs at the merged sorted support ``x``: ``(x, F_a(x), F_b(x))``."""
    ia, ib = np.argsort(a, kind="stable"), np.argsort(b, kind="stable")
    a_s, b_s = a[ia], b[ib]
    ca = np.concatenate([[0.0], np.cumsum(wa[ia])])
    cb = np.concatenate([[0.0], np.cumsum(wb[ib])])
    x = np.unique(np.concatenate([a_s, b_s]))
    fa = ca[np.searchsorted(a_s, x, side="right")] / ca[-1]
    fb = cb[np.searchsorted(b_s, x, side="right")] / cb[-1]
    return x, fa, fb


def wasserstein_1d(a: Any, b: Any, wa: Any = None, wb: Any = None) -> float:
    """Exact 1-D Wasserstein distance of two weighted samples.

    ``W1 = ∫ |F_a(x) − F_b(x)| dx`` with the weighted empirical CDFs ``F`` (weights
    normalised per sample); the same number as ``scipy.stats.wasserstein_distance(a, b, wa,
    wb)``. Unfolding papers (arXiv:2404.18807) quote ``10 × W1`` per observable.

    Args:
        a: Sample ``(N,)``.
        b: Sample ``(M,)``.
        wa: Weights of ``a`` ``(N,)`` (None: 1); >= 0, not all 0.
        wb: Weights of ``b`` ``(M,)``.

    Returns:
        W1 in the unit of the observable.

    Raises:
        DataFormatError: Empty samples, NaN/inf, negative weights, mismatched lengths.
    """
    av, aw = _sample("a", a, wa)
    bv, bw = _sample("b", b, wb)
    x, fa, fb = _cdfs(av, aw, bv, bw)
    return float(np.sum(np.abs(fa[:-1] - fb[:-1]) * np.diff(x)))


def ks_distance(a: Any, b: Any, wa: Any = None, wb: Any = None) -> float:
    """Kolmogorov–Smirnov distance ``sup_x |F_a(x) − F_b(x)|`` of two weighted samples, in
    [0, 1] (same arguments and errors as :func:`wasserstein_1d`)."""
    av, aw = _sample("a", a, wa)
    bv, bw = _sample("b", b, wb)
    _, fa, fb = _cdfs(av, aw, bv, bw)
    return float(np.max(np.abs(fa - fb)))


def density_histogram(values: Any, bins: Any, weights: Any = None) -> tuple[F64, F64]:
    """Histogram normalised to unit area inside the binning, with its statistical error.

    ``p_b = S_b / (S · width_b)`` where ``S_b`` is the sum of weights in bin ``b`` and ``S`` the
    sum inside all bins (entries outside the edges are ignored, as ``numpy.histogram(...,
    density=True)`` does); the error is ``sqrt(Σ_b w²) / (S · width_b)`` (the normalisation's
    own fluctuation neglected).

    Args:
        values: Sample ``(N,)``.
        bins: Edges ``(B + 1,)``.
        weights: ``(N,)`` or None.

    Returns:
        ``(density (B,), error (B,))``; zeros when no entry falls inside the edges.
    """
    v, w = _sample("values", values, weights)
    e = _edges(bins)
    s, _ = np.histogram(v, bins=e, weights=w)
    s2, _ = np.histogram(v, bins=e, weights=w * w)
    total = s.sum()
    width = np.diff(e)
    if total <= 0:
        return np.zeros(e.size - 1), np.zeros(e.size - 1)
    return s / (total * width), np.sqrt(s2) / (total * width)


def triangular_discriminator(a: Any, b: Any, bins: Any, wa: Any = None, wb: Any = None) -> float:
    """Triangular discriminator of the binned, area-normalised distributions of two samples.

    With ``p``, ``q`` the density-normalised histograms (:func:`density_histogram`) and
    ``width_b`` the bin widths, as in arXiv:2404.18807 (and its code)::

        Δ = ½ Σ_b width_b (p_b − q_b)² / (p_b + q_b) = ½ Σ_b (P_b − Q_b)² / (P_b + Q_b)

    where ``P_b = p_b width_b`` are the bin probabilities (each summing to 1 over the bins);
    bins empty in both samples contribute 0. Hence ``0 <= Δ <= 1`` (1 for disjoint
    histograms), symmetric in ``a`` and ``b``; papers quote ``Δ × 10³``.

    Args:
        a: Sample ``(N,)``.
        b: Sample ``(M,)``.
        bins: Edges ``(B + 1,)``, or an int: that many equal bins over the range of both samples.
        wa: Weights of ``a`` (None: 1).
        wb: Weights of ``b``.

    Raises:
        DataFormatError: A sample has no weight inside the edges (or the input errors of
            :func:`wasserstein_1d`).
    """
    av, aw = _sample("a", a, wa)
    bv, bw = _sample("b", b, wb)
    if isinstance(bins, (int, np.integer)):
        if bins < 1:
            raise ConfigError(f"bins: need at least 1 bin, got {bins}")
        lo, hi = min(av.min(), bv.min()), max(av.max(), bv.max())
        e = np.linspace(lo, hi if hi > lo else lo + 1.0, int(bins) + 1)
    else:
        e = _edges(bins)
    pa, _ = np.histogram(av, bins=e, weights=aw)
    pb, _ = np.histogram(bv, bins=e, weights=bw)
    for name, h in (("a", pa), ("b", pb)):
        if h.sum() <= 0:
            raise DataFormatError(f"{name}: no weight inside the bins [{e[0]:g}, {e[-1]:g}]")
    p, q = pa / pa.sum(), pb / pb.sum()
    s = p + q
    m = s > 0
    return float(0.5 * np.sum((p[m] - q[m]) ** 2 / s[m]))


def bootstrap_band(values: Any, weights_bootstrap: Any, bins: Any) -> tuple[F64, F64]:
    """Per-bin mean and standard deviation of density histograms over bootstrap replicas.

    Args:
        values: Sample ``(N,)``.
        weights_bootstrap: ``(B, N)`` weights of ``B`` replicas (e.g. the nominal weights times
            Poisson(1) counts, or the weights of ``B`` retrained ensembles).
        bins: Edges ``(K + 1,)``.

    Returns:
        ``(mean (K,), std (K,))`` of the ``B`` area-normalised histograms (std with ``ddof=1``;
        zero for one replica).

    Raises:
        DataFormatError: Wrong shapes, NaN/inf or negative weights.
    """
    v, _ = _sample("values", values, None)
    wb = np.asarray(weights_bootstrap, dtype=np.float64)
    if wb.ndim != 2 or wb.shape[1] != v.size:
        raise DataFormatError(
            f"weights_bootstrap: expected shape (B, {v.size}), got {tuple(wb.shape)}"
        )
    if not np.isfinite(wb).all() or (wb < 0).any():
        raise DataFormatError("weights_bootstrap: weights must be finite and >= 0")
    e = _edges(bins)
    idx = np.searchsorted(e, v, side="right") - 1
    idx[v == e[-1]] = e.size - 2  # the last edge belongs to the last bin, as in numpy
    inside = (idx >= 0) & (idx < e.size - 1)
    k = e.size - 1
    hists = np.zeros((wb.shape[0], k))
    for r in range(wb.shape[0]):
        hists[r] = np.bincount(idx[inside], weights=wb[r, inside], minlength=k)
    totals = hists.sum(axis=1, keepdims=True)
    dens = np.divide(hists, totals * np.diff(e), out=np.zeros_like(hists), where=totals > 0)
    std = dens.std(axis=0, ddof=1) if wb.shape[0] > 1 else np.zeros(k)
    return dens.mean(axis=0), std


def bin_coverage(nominal: Any, lo: Any, hi: Any, truth: Any) -> float:
    """Fraction of bins whose true value lies inside the band ``[lo, hi]``.

    Bins where ``nominal``, ``lo``, ``hi`` and ``truth`` are all 0 (outside both supports)
    carry no information and are left out. A ±1σ band of a well-estimated Gaussian
    uncertainty should cover about 68 % of the bins.

    Args:
        nominal: Central values ``(K,)`` (shape check and the empty-bin rule).
        lo: Lower band edges ``(K,)``.
        hi: Upper band edges ``(K,)``.
        truth: True values ``(K,)``.

    Raises:
        DataFormatError: Mismatched shapes, NaN, ``lo > hi``, or no informative bin.
    """
    arrs = [np.asarray(x, dtype=np.float64).reshape(-1) for x in (nominal, lo, hi, truth)]
    if len({a.size for a in arrs}) != 1:
        raise DataFormatError(
            "bin_coverage: nominal, lo, hi and truth need the same number of bins, got "
            + ", ".join(str(a.size) for a in arrs)
        )
    nom, lo_a, hi_a, tr = arrs
    if any(np.isnan(a).any() for a in arrs):
        raise DataFormatError("bin_coverage: NaN in the inputs")
    if (lo_a > hi_a).any():
        raise DataFormatError("bin_coverage: lo > hi in some bin")
    keep = ~((nom == 0) & (lo_a == 0) & (hi_a == 0) & (tr == 0))
    if not keep.any():
        raise DataFormatError("bin_coverage: every bin is empty")
    inside = (tr >= lo_a) & (tr <= hi_a)
    return float(inside[keep].mean())


def weighted_quantile(values: Any, q: Any, weights: Any = None) -> F64:
    """Quantiles ``q`` (in [0, 1]) of a weighted sample: the inverse of the weighted empirical
    CDF, the smallest value ``v`` with ``F(v) >= q`` (numpy's ``inverted_cdf``; an integer
    weight acts as that many copies of the event)."""
    v, w = _sample("values", values, weights)
    qa = np.atleast_1d(np.asarray(q, dtype=np.float64))
    if ((qa < 0) | (qa > 1)).any():
        raise ConfigError("q: quantiles must lie in [0, 1]")
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    keep = w > 0
    v, w = v[keep], w[keep]
    c = np.cumsum(w) / w.sum()
    out: F64 = v[np.minimum(np.searchsorted(c, qa, side="left"), v.size - 1)]
    return out


def is_integer_valued(values: Any) -> bool:
    """True when every value is a whole number (a multiplicity, a count)."""
    v = np.asarray(values, dtype=np.float64)
    return bool(v.size) and bool(np.all(v == np.round(v)))


def default_bins(
    reference: Any,
    weights: Any = None,
    *,
    n_bins: int = DEFAULT_BINS,
    quantiles: tuple[float, float] = (0.01, 0.99),
    integer: bool | None = None,
) -> F64:
    """Bin edges for one observable from the 1–99 % quantiles of a reference sample.

    Continuous observables get ``n_bins`` equal bins between the two quantiles. Whole-number
    observables (multiplicities; ``integer=None`` detects them) get bins centred on the
    integers, one integer per bin, or ``ceil(range / n_bins)`` integers per bin when the
    range is wider than ``n_bins`` (so at most ``n_bins + 1`` bins). Where the two quantiles
    coincide (a spike holding nearly all the weight) the full range of the sample is used,
    and a constant observable gets a small range around its value. The report's and IBU's
    default binnings (:func:`physgen.unfold.ibu.default_edges`) are this function.

    Args:
        reference: Sample ``(N,)`` (the truth, else the prior).
        weights: Its weights (None: 1).
        n_bins: Bins of a continuous observable.
        quantiles: The covered quantile range.
        integer: Force (True) or refuse (False) integer bins; None: detect.

    Returns:
        Edges ``(K + 1,)``.
    """
    if n_bins < 1:
        raise ConfigError(f"n_bins: need at least 1, got {n_bins}")
    v, w = _sample("reference", reference, weights)
    lo, hi = (float(x) for x in weighted_quantile(v, list(quantiles), w))
    if not hi > lo:  # the quantiles coincide: the whole range of the (weighted) sample
        lo, hi = float(v[w > 0].min()), float(v[w > 0].max())
    if integer if integer is not None else is_integer_valued(v):
        a, b = math.floor(lo), math.ceil(hi)
        step = max(1, math.ceil((b - a + 1) / n_bins))
        n = max(1, math.ceil((b - a + 1) / step))
        return a - 0.5 + step * np.arange(n + 1, dtype=np.float64)
    if not hi > lo:  # (nearly) constant observable
        half = max(abs(lo) * 1e-3, 1e-3)
        lo, hi = lo - half, hi + half
    return np.linspace(lo, hi, n_bins + 1)


def summary_table(
    truth: tuple[Any, Any],
    methods: Mapping[str, tuple[Any, Any]],
    columns: Sequence[str],
    bins: Mapping[str, Any] | None = None,
) -> dict[str, dict[str, dict[str, float]]]:
    """``W1×10`` and ``Δ×10³`` of each method against the truth, per observable.

    Args:
        truth: ``(values (N, D), weights (N,) or None)`` at particle level.
        methods: Method name -> ``(samples (K, D), weights (K,) or None)``.
        columns: The D observable names.
        bins: Observable -> edges for Δ (missing ones: :func:`default_bins` of the truth).

    Returns:
        ``{method: {observable: {"w1_x10": ..., "delta_x1e3": ..., "ks": ...}}}`` (plain
        floats, JSON-ready).

    Raises:
        DataFormatError: A sample's width differs from ``len(columns)``.
    """
    tv = _matrix("truth", truth[0], len(columns))
    tw = truth[1]
    edges = {
        col: _edges(bins[col]) if bins and col in bins else default_bins(tv[:, j], tw)
        for j, col in enumerate(columns)
    }
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, (vals, wts) in methods.items():
        mv = _matrix(name, vals, len(columns))
        row: dict[str, dict[str, float]] = {}
        for j, col in enumerate(columns):
            row[col] = {
                "w1_x10": 10.0 * wasserstein_1d(mv[:, j], tv[:, j], wts, tw),
                "delta_x1e3": 1e3
                * triangular_discriminator(mv[:, j], tv[:, j], edges[col], wts, tw),
                "ks": ks_distance(mv[:, j], tv[:, j], wts, tw),
            }
        out[name] = row
    return out


def _matrix(name: str, a: Any, width: int) -> F64:
    m = np.asarray(a, dtype=np.float64)
    if m.ndim == 1 and width == 1:
        m = m[:, None]
    if m.ndim != 2 or m.shape[1] != width:
        raise DataFormatError(f"{name}: expected shape (N, {width}), got {tuple(m.shape)}")
    return m


def format_table(table: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """A Markdown table of :func:`summary_table`: one row per method, ``W1×10 / Δ×10³`` per
    observable (3 significant digits)."""
    methods = list(table)
    if not methods:
        return ""
    cols = list(table[methods[0]])
    head = "| method | " + " | ".join(f"{c} W1×10 / Δ×10³" for c in cols) + " |"
    sep = "|---|" + "---|" * len(cols)
    rows = [
        f"| {m} | "
        + " | ".join(f"{table[m][c]['w1_x10']:.3g} / {table[m][c]['delta_x1e3']:.3g}" for c in cols)
        + " |"
        for m in methods
    ]
    return "\n".join([head, sep, *rows])
