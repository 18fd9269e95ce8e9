"""Bump hunt in the dijet mass: sideband fit of a smooth background and the local significance.

The last step of a resonant anomaly search (CWoLa hunting, arXiv:1805.02664; CATHODE,
arXiv:2109.00546): keep the events whose anomaly score passes a cut, fit the ``m_jj``
spectrum outside the signal region (SR) with the standard dijet function, interpolate the fit
into the SR and compare with the observed count there.

* :func:`dijet_function`, :func:`fit_sidebands`, :func:`poisson_significance` (from
  :mod:`physgen.anomaly.sideband_fit`): the dijet function, the binned sideband fit with
  iminuit and the local significance (:class:`SidebandFit`);
* :func:`sr_aligned_edges`: bins whose edges include the SR edges;
* :func:`bump_hunt`: cuts keeping the top 10 %, 1 %, 0.1 % of events by score, each with its
  fit (:class:`BumpHuntResult`);

The figures are drawn by :mod:`physgen.anomaly.plots`.

Masses are in TeV; the LHC Olympics R&D signal region is 3.3–3.7 TeV at √s = 13 TeV.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.anomaly.sideband_fit import (
    SidebandFit,
    dijet_function,
    fit_sidebands,
    poisson_significance,
)
from physgen.errors import ConfigError, DataFormatError, FitError

__all__ = [
    "BumpHuntResult",
    "SidebandFit",
    "bump_hunt",
    "dijet_function",
    "fit_sidebands",
    "poisson_significance",
    "sr_aligned_edges",
]

F64 = npt.NDArray[np.float64]
log = logging.getLogger(__name__)


def sr_aligned_edges(
    fit_range: tuple[float, float], signal_region: tuple[float, float], bins: int = 40
) -> F64:
    """Equal-width bin edges over ``fit_range`` with the SR edges among them.

    The width is the SR width divided by the whole number of bins closest to what ``bins``
    equal bins over the range would give in the SR; bins are added outwards from the SR
    edges while they fit inside the range (a partial bin at either end is dropped).

    Raises:
        ConfigError: The SR does not lie strictly inside ``fit_range``, or ``bins < 2``.
    """
    a, b = (float(v) for v in fit_range)
    lo, hi = (float(v) for v in signal_region)
    if bins < 2:
        raise ConfigError(f"bins: need at least 2 bins, got {bins}")
    if not a < lo < hi < b:
        raise ConfigError(
            f"signal region {signal_region}: must lie strictly inside the fit range "
            f"({a:.4g}, {b:.4g}) TeV, with sidebands on both sides"
        )
    n_sr = max(1, round((hi - lo) * bins / (b - a)))
    w = (hi - lo) / n_sr
    n_left, n_right = int((lo - a) / w + 1e-9), int((b - hi) / w + 1e-9)
    if n_left < 1 or n_right < 1:
        raise ConfigError(
            f"fit range ({a:.4g}, {b:.4g}) TeV: no room for a {w:.3g} TeV sideband bin on both "
            "sides of the signal region; widen the range or use more bins"
        )
    edges: F64 = lo + w * np.arange(-n_left, n_sr + n_right + 1, dtype=np.float64)
    return edges


@dataclass(eq=False)
class BumpHuntResult:
    """One score cut of :func:`bump_hunt`.

    Attributes:
        efficiency: Requested fraction of all events kept (e.g. 0.01).
        threshold: Score threshold; events with ``score >= threshold`` are kept.
        n_selected: Events kept (ties at the threshold can add a few).
        fit: The sideband fit of the kept events; None when it failed (``skip_failed``).
        error: The failure's one-line message, else None.
    """

    efficiency: float
    threshold: float
    n_selected: int
    fit: SidebandFit | None
    error: str | None = None

    @property
    def significance(self) -> float:
        """Local significance of the fit; NaN when the fit failed."""
        return self.fit.significance if self.fit is not None else math.nan

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "efficiency": self.efficiency,
            "threshold": self.threshold,
            "n_selected": self.n_selected,
            "fit": None if self.fit is None else self.fit.to_dict(),
            "error": self.error,
        }


def bump_hunt(
    m_jj: Any,
    scores: Any,
    efficiencies: Sequence[float] = (0.1, 0.01, 0.001),
    *,
    signal_region: tuple[float, float] = (3.3, 3.7),
    bins: Any = 40,
    range: tuple[float, float] | None = None,  # numpy.histogram's name for it
    n_params: int = 4,
    sqrt_s: float = 13.0,
    skip_failed: bool = False,
    skip_too_few: bool = False,
) -> list[BumpHuntResult]:
    """Cut on the anomaly score at several efficiencies and fit each selected spectrum.

    For each efficiency ``ε`` the threshold is the score of the ``ceil(ε N)``-th highest
    scored event among all ``N`` given (a quantile over all events, SR and sidebands), and the
    events with ``score >= threshold`` are fitted with :func:`fit_sidebands` on one binning
    for all cuts. With a number of ``bins`` the edges are :func:`sr_aligned_edges` of
    ``range`` (default: the min and max of all ``m_jj``): the SR edges are bin edges, so no
    bin straddles the SR and is lost to the fit.

    Args:
        m_jj: Dijet masses ``(N,)`` in TeV.
        scores: Anomaly scores ``(N,)``, larger = more anomalous.
        efficiencies: Fractions of events to keep, each in (0, 1].
        signal_region: SR ``(lo, hi)`` in TeV.
        bins: Number of bins or edges (as :func:`fit_sidebands`).
        range: Range of the equal bins (None: that of all ``m_jj``).
        n_params: 3 or 4 dijet parameters.
        sqrt_s: Centre-of-mass energy in TeV.
        skip_failed: Record a failed fit (FitError, too few events) as ``fit=None`` with its
            message instead of raising.
        skip_too_few: Record only a cut that leaves too few sideband events for a fit
            (DataFormatError) as ``fit=None``; a fit that does not converge still raises.

    Returns:
        One :class:`BumpHuntResult` per efficiency, in the order given.
    """
    m = np.asarray(m_jj, dtype=np.float64).reshape(-1)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    if m.size != s.size:
        raise DataFormatError(f"scores: {s.size} values but {m.size} masses")
    if m.size == 0 or not (np.isfinite(m).all() and np.isfinite(s).all()):
        raise DataFormatError("m_jj, scores: expected non-empty arrays without NaN/inf")
    effs = [float(e) for e in efficiencies]
    if not effs or not all(0 < e <= 1 for e in effs):
        raise ConfigError(f"efficiencies: expected values in (0, 1], got {efficiencies}")
    if isinstance(bins, (int, np.integer)):
        span = range if range is not None else (float(m.min()), float(m.max()))
        bins, range = sr_aligned_edges(span, signal_region, int(bins)), None
    ranked = np.sort(s)[::-1]
    out = []
    for eff in effs:
        threshold = float(ranked[max(math.ceil(eff * s.size - 1e-9), 1) - 1])
        keep = s >= threshold
        try:
            fit: SidebandFit | None = fit_sidebands(
                m[keep], signal_region, bins, range, n_params, sqrt_s
            )
            error = None
        except (FitError, DataFormatError) as exc:
            too_few = isinstance(exc, DataFormatError)
            if not (skip_failed or (skip_too_few and too_few)):
                raise type(exc)(f"efficiency {eff:g}: {exc}") from None
            fit, error = None, str(exc)
            log.warning("bump hunt at efficiency %g: %s", eff, exc)
        out.append(BumpHuntResult(eff, threshold, int(keep.sum()), fit, error))
    return out
