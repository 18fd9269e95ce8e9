"""Performance of an anomaly score on a labelled test set: ROC, SIC, rejection, AUC, bands.

An anomaly detector (CWoLa hunting, CATHODE, ANODE, ...) gives every event a score; the
analysis keeps the events with ``score >= threshold``. On a test set with truth labels
(1 = signal, 0 = background) and optional non-negative event weights, the selection has the
signal and background efficiencies ``ε_S`` and ``ε_B`` (weighted fractions of each class kept).
The resonant anomaly detection papers judge a score by the **significance improvement
characteristic** ``SIC = ε_S / sqrt(ε_B)``: the factor by which the cut multiplies a
counting experiment's ``S / sqrt(B)`` (Hallin et al., CATHODE, arXiv:2109.00546, PRD 106
(2022) 055006; Collins, Howe, Nachman, CWoLa hunting, arXiv:1805.02664).

* :func:`roc_curve`: ``(ε_S, ε_B, threshold)`` for every distinct score (tied scores are one
  point), by decreasing threshold;
* :func:`sic_curve`, :func:`max_sic`: SIC where ``ε_B`` is large enough to be measured
  (:data:`MIN_EPS_B`, the CATHODE convention);
* :func:`rejection_at`: background rejection ``1/ε_B`` at a fixed signal efficiency;
* :func:`auc`: area under the ROC curve (ties count one half);
* :func:`performance_band`: several runs (trainings) scored on the same test set: median SIC
  curve with a 16–84 % band, max SIC of the median curve, rejections with their spread
  (:class:`PerformanceBand`, with ``to_dict()`` for ``results.json``).

Bad input raises :class:`~physgen.errors.DataFormatError` (arrays) or
:class:`~physgen.errors.ConfigError` (options) with one line.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.errors import ConfigError, DataFormatError

__all__ = [
    "MIN_EPS_B",
    "PerformanceBand",
    "auc",
    "max_sic",
    "performance_band",
    "rejection_at",
    "roc_curve",
    "sic_curve",
]

F64 = npt.NDArray[np.float64]
B1 = npt.NDArray[np.bool_]

#: Smallest background efficiency at which SIC is counted: ``1.8382353e-5``, i.e.
#: ``1/ε_B < 54,400`` (1/54,400 rounded up in the 8th digit, so a point at exactly
#: ``ε_B = 1/54,400`` is excluded, as CATHODE's strict cut does). CATHODE's plotting
#: notebook (HEPML-AnomalyDetection/CATHODE) takes max SIC only over points above it.
MIN_EPS_B = 1.8382353e-5


def _vector(name: str, values: Any) -> npt.NDArray[Any]:
    v = np.asarray(values)
    if v.ndim == 2 and v.shape[1] == 1:
        v = v[:, 0]
    if v.ndim != 1:
        raise DataFormatError(f"{name}: expected a 1-D array, got shape {v.shape}")
    return v


def _labels(labels: Any) -> B1:
    y = _vector("labels", labels)
    if y.dtype == np.bool_:
        return y.astype(np.bool_)
    try:
        yf = y.astype(np.float64)
    except (TypeError, ValueError):
        raise DataFormatError(f"labels: expected 0 or 1, got dtype {y.dtype}") from None
    bad = ~((yf == 0.0) | (yf == 1.0))
    if bad.any():
        odd = ", ".join(f"{v:g}" for v in np.unique(yf[bad])[:3])
        raise DataFormatError(f"labels: expected 0 (background) or 1 (signal), got {odd}")
    out: B1 = yf == 1.0
    return out


def _checked(scores: Any, y: B1, weights: Any) -> tuple[F64, F64]:
    """``scores (N,)`` and ``weights (N,)`` checked against the labels ``y (N,)``."""
    s = _vector("scores", scores).astype(np.float64)
    if s.size != y.size:
        raise DataFormatError(f"scores: {s.size} values but {y.size} labels")
    if not np.isfinite(s).all():
        raise DataFormatError("scores: contains NaN or inf")
    if weights is None:
        w = np.ones(s.size)
    else:
        w = _vector("weights", weights).astype(np.float64)
        if w.size != s.size:
            raise DataFormatError(f"weights: {w.size} values but {s.size} scores")
        if not np.isfinite(w).all() or (w < 0).any():
            raise DataFormatError("weights: must be finite and >= 0")
    if not w[y].sum() > 0:
        raise DataFormatError("labels: no signal (label 1) with a positive weight")
    if not w[~y].sum() > 0:
        raise DataFormatError("labels: no background (label 0) with a positive weight")
    return s, w


def _check_min_eps_b(min_eps_b: float) -> float:
    v = float(min_eps_b)
    if not 0.0 < v < 1.0:
        raise ConfigError(f"min_eps_b: expected a value in (0, 1), got {min_eps_b}")
    return v


def _roc(s: F64, y: B1, w: F64) -> tuple[F64, F64, F64]:
    order = np.argsort(s, kind="stable")[::-1]
    s_sorted = s[order]
    ws = np.where(y[order], w[order], 0.0)
    cs, cb = np.cumsum(ws), np.cumsum(w[order] - ws)
    last = np.append(np.flatnonzero(np.diff(s_sorted) != 0), s.size - 1)  # end of tie groups
    eps_s = np.minimum(cs[last] / cs[-1], 1.0)
    eps_b = np.minimum(cb[last] / cb[-1], 1.0)
    return eps_s, eps_b, s_sorted[last]


def roc_curve(scores: Any, labels: Any, weights: Any = None) -> tuple[F64, F64, F64]:
    """Signal and background efficiencies of the selections ``score >= threshold``.

    One point per distinct score value: tied scores enter or leave the selection together,
    so they form one point (never a staircase that depends on the order of the events).
    The trivial point ``(0, 0)`` (threshold ``+inf``) is not included; the last point is
    ``(1, 1)`` at the lowest score.

    Args:
        scores: Anomaly scores ``(N,)``, larger = more signal-like; finite.
        labels: Truth ``(N,)``: 1 (or True) signal, 0 background.
        weights: Event weights ``(N,)`` >= 0 (None: 1); efficiencies are weighted fractions.

    Returns:
        ``(eps_s (P,), eps_b (P,), thresholds (P,))`` by decreasing threshold; both
        efficiencies non-decreasing in ``[0, 1]``.

    Raises:
        DataFormatError: Labels not 0/1, lengths differ, NaN/inf scores, negative weights,
            no signal or no background.
    """
    y = _labels(labels)
    s, w = _checked(scores, y, weights)
    return _roc(s, y, w)


def _sic(eps_s: F64, eps_b: F64, min_eps_b: float) -> tuple[F64, F64]:
    keep = eps_b >= min_eps_b
    return eps_s[keep], eps_s[keep] / np.sqrt(eps_b[keep])


def sic_curve(
    scores: Any, labels: Any, weights: Any = None, min_eps_b: float = MIN_EPS_B
) -> tuple[F64, F64]:
    """Significance improvement ``SIC = ε_S / sqrt(ε_B)`` along the ROC curve.

    Only points with ``ε_B >= min_eps_b`` are kept. As ``ε_B → 0`` the SIC is set by a
    handful of background events: after the first ``k`` background events pass the cut,
    ``ε_B = k / N_B`` and ``SIC = ε_S sqrt(N_B / k)`` grows with the size of the test set
    while its statistical uncertainty (~ ``1 / (2 sqrt(k))`` relative) blows up, so the
    maximum would be a fluctuation of the tail, not a property of the score. The default
    :data:`MIN_EPS_B` = 1.8382353e-5 (``1/ε_B < 54,400``) is the cut of the CATHODE paper's
    figures (arXiv:2109.00546; the max SIC values quoted there, e.g. CATHODE ≈ 14, IAD ≈ 15,
    use it), so numbers are comparable with the literature.

    Args:
        scores: Scores ``(N,)`` (as :func:`roc_curve`).
        labels: Truth ``(N,)``, 0/1.
        weights: Event weights ``(N,)`` or None.
        min_eps_b: Smallest background efficiency counted, in (0, 1).

    Returns:
        ``(eps_s (P',), sic (P',))`` by decreasing threshold (never empty: the last ROC point
        has ``ε_B = 1``).

    Raises:
        ConfigError: ``min_eps_b`` outside (0, 1).
        DataFormatError: As :func:`roc_curve`.
    """
    cut = _check_min_eps_b(min_eps_b)
    eps_s, eps_b, _ = roc_curve(scores, labels, weights)
    return _sic(eps_s, eps_b, cut)


def max_sic(scores: Any, labels: Any, weights: Any = None, min_eps_b: float = MIN_EPS_B) -> float:
    """Maximum of :func:`sic_curve` (points with ``ε_B >= min_eps_b`` only; same arguments)."""
    _, sic = sic_curve(scores, labels, weights, min_eps_b)
    return float(sic.max())


def _eps_b_at(eps_s: F64, eps_b: F64, targets: F64) -> F64:
    """``ε_B`` at signal efficiencies ``targets``, linear along the ROC path from ``(0, 0)``.

    Where the path has a vertical piece (only background enters), a target equal to its
    ``ε_S`` takes the lowest ``ε_B``; between two distinct ``ε_S`` values the segment from the
    last point of the lower one to the first point of the upper one is interpolated.
    """
    xs = np.concatenate([[0.0], eps_s])
    ys = np.concatenate([[0.0], eps_b])
    hi = np.clip(np.searchsorted(xs, targets, side="left"), 1, xs.size - 1)
    lo = hi - 1
    x0, x1, y0, y1 = xs[lo], xs[hi], ys[lo], ys[hi]
    t = np.where(x1 > x0, (targets - x0) / np.where(x1 > x0, x1 - x0, 1.0), 1.0)
    out: F64 = np.where(xs[hi] == targets, ys[hi], y0 + t * (y1 - y0))
    return out


def _check_targets(name: str, values: Any) -> F64:
    t = np.asarray(values, dtype=np.float64).reshape(-1)
    if t.size == 0 or not np.isfinite(t).all() or (t <= 0).any() or (t > 1).any():
        raise ConfigError(f"{name}: expected signal efficiencies in (0, 1], got {values}")
    return t


def rejection_at(eps_s_target: float, scores: Any, labels: Any, weights: Any = None) -> float:
    """Background rejection ``1/ε_B`` at the signal efficiency ``eps_s_target``.

    ``ε_B`` is interpolated linearly along the ROC path (a randomised choice between the two
    neighbouring thresholds reaches every point of the segment).

    Args:
        eps_s_target: Signal efficiency in (0, 1], e.g. 0.2 or 0.4.
        scores: Scores ``(N,)``.
        labels: Truth ``(N,)``, 0/1.
        weights: Event weights ``(N,)`` or None.

    Returns:
        ``1/ε_B`` (>= 1); ``inf`` when no background passes at that signal efficiency.

    Raises:
        ConfigError: ``eps_s_target`` outside (0, 1].
        DataFormatError: As :func:`roc_curve`.
    """
    t = _check_targets("eps_s_target", eps_s_target)
    eps_s, eps_b, _ = roc_curve(scores, labels, weights)
    e = float(_eps_b_at(eps_s, eps_b, t)[0])
    return 1.0 / e if e > 0 else math.inf


def auc(scores: Any, labels: Any, weights: Any = None) -> float:
    """Area under the ROC curve ``∫ ε_S dε_B``: the (weighted) probability that a signal event
    scores above a background event, ties counting one half (same arguments as
    :func:`roc_curve`)."""
    eps_s, eps_b, _ = roc_curve(scores, labels, weights)
    x = np.concatenate([[0.0], eps_b])
    y = np.concatenate([[0.0], eps_s])
    return float(np.sum(np.diff(x) * 0.5 * (y[1:] + y[:-1])))


def _json(values: Any) -> Any:
    """Floats (or arrays of them) for JSON: NaN and inf become None."""
    if isinstance(values, np.ndarray):
        return [_json(float(v)) for v in values]
    v = float(values)
    return v if math.isfinite(v) else None


@dataclass(frozen=True, eq=False)
class PerformanceBand:
    """Median SIC curve of several runs with a band, max SIC and rejections (CATHODE style).

    Attributes:
        eps_s: Common signal-efficiency grid ``(G,)``.
        sic_median: Median SIC over runs ``(G,)``; NaN where the median ``ε_B < min_eps_b``.
        sic_low: Lower edge of the band (``band[0]`` quantile) ``(G,)``; NaN where not counted.
        sic_high: Upper edge (``band[1]`` quantile) ``(G,)``; NaN where its ``ε_B < min_eps_b``.
        max_sic: Maximum of ``sic_median`` (CATHODE's definition of max SIC).
        eps_s_at_max_sic: Signal efficiency of that maximum.
        max_sic_per_run: Max SIC of each run's own curve ``(R,)`` (spread between runs).
        rejection_eps_s: Signal efficiencies of the rejections ``(T,)``.
        rejection_median: Median ``1/ε_B`` over runs ``(T,)`` (inf: no background left).
        rejection_low: ``band[0]`` quantile of ``1/ε_B`` ``(T,)``.
        rejection_high: ``band[1]`` quantile of ``1/ε_B`` ``(T,)``.
        n_runs: Number of runs R.
        min_eps_b: The ``ε_B`` cut used for SIC.
        band: The two quantiles of the band, e.g. ``(0.16, 0.84)``.
    """

    eps_s: F64
    sic_median: F64
    sic_low: F64
    sic_high: F64
    max_sic: float
    eps_s_at_max_sic: float
    max_sic_per_run: F64
    rejection_eps_s: F64
    rejection_median: F64
    rejection_low: F64
    rejection_high: F64
    n_runs: int
    min_eps_b: float
    band: tuple[float, float]

    def to_dict(self, curve: bool = True) -> dict[str, Any]:
        """Plain JSON-ready dict (NaN/inf as None); ``curve=False`` leaves the curves out."""
        out: dict[str, Any] = {
            "n_runs": self.n_runs,
            "min_eps_b": self.min_eps_b,
            "band_quantiles": list(self.band),
            "max_sic": _json(self.max_sic),
            "eps_s_at_max_sic": _json(self.eps_s_at_max_sic),
            "max_sic_per_run": _json(self.max_sic_per_run),
            "rejection": {
                f"{t:g}": {"median": _json(m), "low": _json(lo), "high": _json(hi)}
                for t, m, lo, hi in zip(
                    self.rejection_eps_s,
                    self.rejection_median,
                    self.rejection_low,
                    self.rejection_high,
                )
            },
        }
        if curve:
            out["curve"] = {
                "eps_s": _json(self.eps_s),
                "sic_median": _json(self.sic_median),
                "sic_low": _json(self.sic_low),
                "sic_high": _json(self.sic_high),
            }
        return out


def _inverse(values: F64) -> F64:
    safe = np.where(values > 0, values, 1.0)
    out: F64 = np.where(values > 0, 1.0 / safe, math.inf)
    return out


def performance_band(
    run_scores: Sequence[Any] | npt.NDArray[Any],
    labels: Any,
    weights: Any = None,
    *,
    eps_s_grid: Any = None,
    min_eps_b: float = MIN_EPS_B,
    band: tuple[float, float] = (0.16, 0.84),
    rejection_eps_s: Sequence[float] = (0.2, 0.4),
) -> PerformanceBand:
    """Median SIC curve, band and max SIC of several runs on the same labelled test set.

    Each run's ROC gives ``ε_B(ε_S)`` on a common grid (linear along the ROC path, as
    :func:`rejection_at`). At fixed ``ε_S`` the SIC ``ε_S / sqrt(ε_B)`` falls with ``ε_B``, so
    the quantiles over runs are taken of ``ε_B`` and mapped to SIC (``q``-quantile of SIC =
    SIC at the ``1 − q`` quantile of ``ε_B``; for an odd number of runs the median is
    exactly the median run's SIC, for an even number the two middle runs are averaged in
    ``ε_B``). A grid point of the median curve counts only where the median ``ε_B >=
    min_eps_b``; a band edge only where its own ``ε_B >= min_eps_b`` (NaN elsewhere). The
    max SIC is the maximum of the median curve (CATHODE, arXiv:2109.00546, and its plotting
    notebook). Rejections ``1/ε_B`` at ``rejection_eps_s`` use the same quantiles.

    Args:
        run_scores: R score arrays, each ``(N,)``, for the same events (e.g. R trainings), or
            an array ``(R, N)``.
        labels: Truth ``(N,)``, 0/1.
        weights: Event weights ``(N,)`` or None.
        eps_s_grid: Signal efficiencies ``(G,)`` in (0, 1] (None: 0.001, 0.002, ..., 1).
        min_eps_b: Smallest ``ε_B`` counted, in (0, 1) (default: CATHODE's cut).
        band: Lower and upper quantiles of the band, ``0 <= lo < hi <= 1``.
        rejection_eps_s: Signal efficiencies at which to quote ``1/ε_B``.

    Returns:
        A :class:`PerformanceBand`.

    Raises:
        ConfigError: No runs, a bad grid, band or ``min_eps_b``.
        DataFormatError: A run's scores fail the checks of :func:`roc_curve`.
    """
    cut = _check_min_eps_b(min_eps_b)
    lo_q, hi_q = (float(v) for v in band)
    if not 0.0 <= lo_q < hi_q <= 1.0:
        raise ConfigError(f"band: expected quantiles 0 <= lo < hi <= 1, got {band}")
    runs = list(run_scores)
    if not runs or np.ndim(runs[0]) == 0:
        raise ConfigError("run_scores: expected a list of score arrays (one per run)")
    grid = (
        np.linspace(0.0, 1.0, 1001)[1:]
        if eps_s_grid is None
        else np.sort(_check_targets("eps_s_grid", eps_s_grid))
    )
    targets = _check_targets("rejection_eps_s", rejection_eps_s)
    y = _labels(labels)
    eps_b_grid = np.empty((len(runs), grid.size))
    eps_b_targets = np.empty((len(runs), targets.size))
    per_run = np.empty(len(runs))
    for r, scores in enumerate(runs):
        try:
            s, w = _checked(scores, y, weights)
        except DataFormatError as exc:
            raise DataFormatError(f"run {r}: {exc}") from None
        eps_s, eps_b, _ = _roc(s, y, w)
        eps_b_grid[r] = _eps_b_at(eps_s, eps_b, grid)
        eps_b_targets[r] = _eps_b_at(eps_s, eps_b, targets)
        per_run[r] = _sic(eps_s, eps_b, cut)[1].max()

    def sic_at(q: float) -> F64:
        e = np.quantile(eps_b_grid, q, axis=0)
        out: F64 = np.where(e >= cut, grid / np.sqrt(np.maximum(e, cut)), np.nan)
        return out

    median = sic_at(0.5)
    low = np.where(np.isfinite(median), sic_at(1.0 - lo_q), np.nan)
    high = np.where(np.isfinite(median), sic_at(1.0 - hi_q), np.nan)
    best = int(np.nanargmax(median)) if np.isfinite(median).any() else -1
    return PerformanceBand(
        eps_s=grid,
        sic_median=median,
        sic_low=low,
        sic_high=high,
        max_sic=float(median[best]) if best >= 0 else math.nan,
        eps_s_at_max_sic=float(grid[best]) if best >= 0 else math.nan,
        max_sic_per_run=per_run,
        rejection_eps_s=targets,
        rejection_median=_inverse(np.quantile(eps_b_targets, 0.5, axis=0)),
        rejection_low=_inverse(np.quantile(eps_b_targets, 1.0 - lo_q, axis=0)),
        rejection_high=_inverse(np.quantile(eps_b_targets, 1.0 - hi_q, axis=0)),
        n_runs=len(runs),
        min_eps_b=cut,
        band=(lo_q, hi_q),
    )
