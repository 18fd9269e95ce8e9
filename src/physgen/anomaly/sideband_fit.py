"""The dijet-function sideband fit and the local significance of a signal-region excess.

* :func:`dijet_function`: ``f(x) = p0 (1 − x)^p1 / x^(p2 + p3 ln x)``, ``x = m_jj / √s``
  (CDF/CMS/ATLAS dijet searches; 3 parameters: ``p3 = 0``), in events per TeV of ``m_jj``;
* :func:`fit_sidebands`: binned extended Poisson likelihood fit of the sideband bins with
  iminuit, the SR prediction with its fit uncertainty and the local significance
  (:class:`SidebandFit`);
* :func:`poisson_significance`: one-sided profile-likelihood ``Z`` of a Poisson count over a
  background known to ``±σ_b`` (Cowan et al., EPJC 71 (2011) 1554).

Masses are in TeV; the LHC Olympics R&D signal region is 3.3–3.7 TeV at √s = 13 TeV. The
score cuts around it are :mod:`physgen.anomaly.bumphunt`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.errors import ConfigError, DataFormatError, FitError

__all__ = ["SidebandFit", "dijet_function", "fit_sidebands", "poisson_significance"]

F64 = npt.NDArray[np.float64]
log = logging.getLogger(__name__)

#: Gauss–Legendre nodes per bin for the bin integrals of the dijet function.
_NODES = np.polynomial.legendre.leggauss(6)
#: Sub-intervals of the SR for its integral (exact to ~1e-12 for smooth spectra).
_SR_PIECES = 16
_NAMES = ("p0", "p1", "p2", "p3")


def _shape_params(params: Sequence[float] | F64) -> tuple[float, ...]:
    p = tuple(float(v) for v in params)
    if len(p) not in (3, 4) or not all(math.isfinite(v) for v in p):
        raise ConfigError(f"params: expected 3 or 4 finite dijet parameters, got {params}")
    return p


def dijet_function(m_jj: Any, params: Sequence[float] | F64, sqrt_s: float = 13.0) -> F64:
    """The dijet function ``f = p0 (1 − x)^p1 / x^(p2 + p3 ln x)`` with ``x = m_jj / √s``.

    Args:
        m_jj: Dijet masses in TeV, any shape, inside ``(0, √s)``.
        params: ``(p0, p1, p2)`` or ``(p0, p1, p2, p3)``; ``p0`` is events per TeV when the
            function describes a spectrum (as fitted by :func:`fit_sidebands`).
        sqrt_s: Centre-of-mass energy in TeV.

    Returns:
        ``f(m_jj)`` with the shape of ``m_jj``.
    """
    p = _shape_params(params)
    x = np.asarray(m_jj, dtype=np.float64) / float(sqrt_s)
    if not ((x > 0) & (x < 1)).all():
        raise ConfigError(f"m_jj: the dijet function needs 0 < m_jj < sqrt_s = {sqrt_s} TeV")
    lx = np.log(x)
    p3 = p[3] if len(p) == 4 else 0.0
    out: F64 = p[0] * np.exp(p[1] * np.log1p(-x) - (p[2] + p3 * lx) * lx)
    return out


def _quad(lo: F64, hi: F64, sqrt_s: float, n_shape: int) -> tuple[F64, F64]:
    """Gauss–Legendre rule of intervals: ``(features (M, K, S), log weights (M, K))``.

    The features are the derivatives of the log shape ``p1 ln(1−x) − p2 ln x − p3 ln² x`` with
    respect to ``(p1, p2[, p3])``, so the log shape at the nodes is ``features @ p``.
    """
    t, w = _NODES
    half = 0.5 * (hi - lo)[:, None]
    m = 0.5 * (hi + lo)[:, None] + half * t[None, :]
    lx = np.log(m / sqrt_s)
    cols = [np.log1p(-m / sqrt_s), -lx, -lx * lx][:n_shape]
    return np.stack(cols, axis=-1), np.log(half * w[None, :])


def _normalisation(ln_p0: float) -> float:
    """``p0 = exp(ln p0)``, or a FitError for a minimum whose normalisation ran off to
    infinity (seen on a 0.1 % cut of a null sample: a few dozen events in the fit)."""
    if not ln_p0 < 700.0:
        raise FitError(
            f"dijet sideband fit: the normalisation ran away (ln p0 = {ln_p0:.4g}); the "
            "spectrum is not described by the dijet function"
        )
    return math.exp(ln_p0)


def _logsumexp(a: F64, axis: int) -> tuple[F64, F64]:
    """``log Σ exp(a)`` along ``axis`` and the softmax weights."""
    top = np.max(a, axis=axis, keepdims=True)
    e = np.exp(a - top)
    s = e.sum(axis=axis, keepdims=True)
    return np.squeeze(top + np.log(s), axis=axis), e / s


class _Model:
    """Expected counts ``μ = exp(a) ∫_I g / ∫_SB g`` of intervals I; ``θ = (a, q)``.

    The shape parameters are whitened, ``(p1, p2[, p3]) = T q``: ``ln(1−x)``, ``ln x`` and
    ``ln² x`` are nearly collinear over a dijet spectrum (fitted correlations of 0.99–0.999), which
    makes HESSE fail in ``p``; in ``q`` the Hessian of the deviance is close to ``2·1``.
    """

    def __init__(
        self, edges: F64, sideband: npt.NDArray[np.bool_], n: F64, n_params: int, sqrt_s: float
    ) -> None:
        self.sqrt_s, self.n_shape = sqrt_s, n_params - 1
        self.sb = _quad(edges[:-1][sideband], edges[1:][sideband], sqrt_s, self.n_shape)
        feats = self.sb[0][:, _NODES[0].size // 2, :]  # at the bin centres
        w = (n + 0.5) / (n + 0.5).sum()
        centred = feats - w @ feats
        lam, vec = np.linalg.eigh(centred.T @ (w[:, None] * centred) * n.sum())
        lam = np.maximum(lam, lam.max() * 1e-15)
        self.whiten: F64 = vec / np.sqrt(lam)  # T
        self.unwhiten: F64 = np.sqrt(lam)[:, None] * vec.T  # T⁻¹
        self.theta: F64 = np.zeros(n_params)  # the fitted θ, set by fit_sidebands

    def log_integrals(self, theta: F64, quad: tuple[F64, F64]) -> tuple[F64, F64]:
        feats = quad[0] @ self.whiten
        log_i, soft = _logsumexp(feats @ theta[1:] + quad[1], axis=1)
        return log_i, np.einsum("mk,mks->ms", soft, feats)

    def counts(self, theta: F64, quad: tuple[F64, F64]) -> tuple[F64, F64]:
        """``μ (M,)`` and ``∂ ln μ / ∂θ (M, P)`` of the intervals of ``quad``."""
        log_sb, d_sb = self.log_integrals(theta, self.sb)
        log_norm, soft = _logsumexp(log_sb, axis=0)
        log_i, d_i = self.log_integrals(theta, quad)
        grad = np.concatenate([np.ones((log_i.size, 1)), d_i - soft @ d_sb], axis=1)
        return np.exp(np.clip(theta[0] + log_i - log_norm, -700.0, 700.0)), grad

    def bins(self, edges: F64) -> tuple[F64, F64]:
        """Fitted ``μ (K,)`` of the bins of ``edges`` and ``∂μ/∂θ (K, P)``."""
        mu, grad = self.counts(self.theta, _quad(edges[:-1], edges[1:], self.sqrt_s, self.n_shape))
        return mu, mu[:, None] * grad

    def interval(self, lo: float, hi: float) -> tuple[float, F64]:
        """Background in ``[lo, hi)`` and ``∂B/∂θ (P,)``."""
        mu, jac = self.bins(np.linspace(lo, hi, _SR_PIECES + 1))
        return float(mu.sum()), jac.sum(axis=0)


def poisson_significance(n_observed: float, background: float, background_error: float) -> float:
    """One-sided local significance of ``n`` observed events over ``b ± σ_b`` expected.

    The profile-likelihood ratio of the on/off problem, ``n ~ Pois(s + b)`` with the background
    constrained by an auxiliary Poisson measurement of ``τ b`` events, ``τ = b / σ_b²`` (the
    Gaussian constraint of the fit, without negative ``b``), evaluated at the fitted ``b``
    (Cowan, Cranmer, Gross, Vitells, EPJC 71 (2011) 1554; Cowan, "Discovery sensitivity for a
    counting experiment with background uncertainty", 2012)::

        Z = sqrt(2 [ n ln( n (b + σ²) / (b² + n σ²) ) − (b²/σ²) ln(1 + σ² (n − b) / (b (b + σ²))) ])

    For ``σ_b → 0`` it is ``sqrt(2 (n ln(n/b) − n + b))``; for large counts ``(n − b) /
    sqrt(b + σ_b²)``. Only an excess counts (``q0`` of Cowan et al.): ``n <= b`` gives
    ``Z = 0`` (never negative). Local: no look-elsewhere correction.

    Args:
        n_observed: Observed count ``n >= 0``.
        background: Expected background ``b > 0``.
        background_error: Its uncertainty ``σ_b >= 0``.
    """
    n, b, sb = float(n_observed), float(background), float(background_error)
    if not (math.isfinite(n) and n >= 0 and math.isfinite(b) and b > 0):
        raise ConfigError(f"significance: need n >= 0 and b > 0, got n={n}, b={b}")
    if not (math.isfinite(sb) and sb >= 0):
        raise ConfigError(f"significance: background_error must be finite and >= 0, got {sb}")
    if n <= b:
        return 0.0
    s2 = sb * sb
    if s2 <= 1e-12 * b:
        q = n * math.log(n / b) - (n - b)
    else:
        q = n * math.log(n * (b + s2) / (b * b + n * s2)) - (b * b / s2) * math.log1p(
            s2 * (n - b) / (b * (b + s2))
        )
    return math.sqrt(max(2.0 * q, 0.0))


@dataclass(eq=False)
class SidebandFit:
    """Result of :func:`fit_sidebands` (masses in TeV).

    Attributes:
        params: Dijet parameters ``(p0, p1, p2[, p3])``, ``p0`` in events per TeV.
        errors: Their standard errors (from ``covariance``).
        covariance: Covariance of ``params`` ``(P, P)`` (HESSE, mapped from the fit's
            parameters ``(ln N_SB, p1, p2, p3)`` by the Jacobian).
        valid: Minuit found a valid minimum (always True: failures raise FitError).
        accurate: The covariance is accurate (HESSE succeeded, positive definite).
        edm: Estimated distance to the minimum.
        chi2: Poisson deviance of the sideband bins, ``2 Σ [μ − n + n ln(n/μ)]`` (Baker–Cousins
            likelihood-ratio χ²).
        ndf: Sideband bins minus fitted parameters.
        chi2_pvalue: ``P(χ²_ndf >= chi2)`` (asymptotic; low-count bins make it approximate).
        edges: Bin edges ``(B + 1,)``; ``counts (B,)`` the histogram of the events given.
        sideband: Which bins entered the fit ``(B,)`` (bins touching the SR did not).
        signal_region: ``(lo, hi)`` of the SR.
        n_observed: Events with ``lo <= m_jj < hi``.
        background: Predicted background in the SR, ``∫_SR f dm``.
        background_error: Its uncertainty from the fit covariance (linear propagation).
        significance: Local one-sided ``Z`` (:func:`poisson_significance`, >= 0).
        p_value: ``1 − Φ(Z)``.
        pull: ``(n − b) / sqrt(b + σ_b²)`` (signed; near N(0, 1) without signal).
        sqrt_s: Centre-of-mass energy in TeV.
    """

    params: F64
    errors: F64
    covariance: F64
    valid: bool
    accurate: bool
    edm: float
    chi2: float
    ndf: int
    chi2_pvalue: float
    edges: F64
    counts: F64
    sideband: npt.NDArray[np.bool_]
    signal_region: tuple[float, float]
    n_observed: int
    background: float
    background_error: float
    significance: float
    p_value: float
    pull: float
    sqrt_s: float
    _model: _Model = field(repr=False)
    _theta_cov: F64 = field(repr=False)

    def expected_counts(self, edges: Any) -> tuple[F64, F64]:
        """Fitted background per bin of ``edges (K + 1,)`` and its uncertainty ``(K,)``."""
        mu, j = self._model.bins(np.asarray(edges, dtype=np.float64))
        var = np.einsum("kp,pq,kq->k", j, self._theta_cov, j)
        return mu, np.sqrt(np.maximum(var, 0.0))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (numbers and lists)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        for k, v in out.items():
            if isinstance(v, np.ndarray):
                out[k] = v.tolist()
        out["param_names"] = list(_NAMES[: self.params.size])
        out["signal_region"] = list(self.signal_region)
        return out


def _edges(m: F64, bins: Any, hist_range: Any, sqrt_s: float) -> F64:
    if isinstance(bins, (int, np.integer)):
        if bins < 2:
            raise ConfigError(f"bins: need at least 2 bins, got {bins}")
        lo, hi = (float(m.min()), float(m.max())) if hist_range is None else hist_range
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ConfigError(f"range: expected (lo, hi) with lo < hi, got {hist_range}")
        e = np.linspace(lo, hi, int(bins) + 1)
    else:
        if hist_range is not None:
            raise ConfigError("range: give either bin edges or a range with a number of bins")
        e = np.asarray(bins, dtype=np.float64).reshape(-1)
        if e.size < 3 or not np.isfinite(e).all() or not (np.diff(e) > 0).all():
            raise ConfigError("bins: expected at least 3 finite, strictly increasing edges")
    if not 0 < e[0] < e[-1] < sqrt_s:
        raise ConfigError(f"range: m_jj bins [{e[0]:g}, {e[-1]:g}] must lie in (0, {sqrt_s:g}) TeV")
    return e


def _starts(n: F64, quad: tuple[F64, F64], n_shape: int) -> list[F64]:
    """Starting shape parameters: weighted least squares of ln(count) on the log-shape features
    at the bin centres, then a few textbook values."""
    feats = quad[0][:, quad[0].shape[1] // 2, :]  # middle node ~ bin centre
    width_log = _logsumexp(quad[1], axis=1)[0]
    ok = n > 0
    starts = []
    if ok.sum() > n_shape + 1:
        a = np.column_stack([np.ones(ok.sum()), feats[ok]]) * np.sqrt(n[ok])[:, None]
        y = (np.log(n[ok]) - width_log[ok]) * np.sqrt(n[ok])
        sol = np.linalg.lstsq(a, y, rcond=None)[0][1:]
        if np.isfinite(sol).all():
            starts.append(sol)
    for guess in ((10.0, 5.0, 0.0), (5.0, 8.0, 0.0), (20.0, 3.0, 0.0)):
        starts.append(np.array(guess[:n_shape]))
    return starts


def fit_sidebands(
    m_jj: Any,
    signal_region: tuple[float, float] = (3.3, 3.7),
    bins: Any = 40,
    range: tuple[float, float] | None = None,  # numpy.histogram's name for it
    n_params: int = 4,
    sqrt_s: float = 13.0,
    max_calls: int | None = None,
) -> SidebandFit:
    """Fit the dijet function to the ``m_jj`` histogram outside the SR; predict the SR.

    Binned extended Poisson likelihood of the sideband bins (bins that overlap the SR are
    left out), ``−2 ln L = 2 Σ [μ_i − n_i ln μ_i] + const``, with ``μ_i`` the integral of the
    dijet function over bin ``i`` (6-point Gauss–Legendre). The fit parameters are
    ``(a, p1, p2[, p3])`` with ``exp(a)`` the expected sideband total (so the scale is well
    conditioned: ``a ≈ ln N_SB``) and ``p0`` derived from it; the gradient is analytic. Starts:
    a weighted least-squares fit of ``ln n_i`` (linear in the shape parameters) and three
    textbook shapes; of the valid minima, the lowest ``−2 ln L`` is kept. The SR prediction
    ``∫_SR f dm`` and its uncertainty (Jacobian × HESSE covariance) give the local significance
    (:func:`poisson_significance`) of the events observed in the SR.

    Args:
        m_jj: Dijet masses ``(N,)`` in TeV (events outside the binning are ignored).
        signal_region: ``(lo, hi)`` in TeV, strictly inside the binning.
        bins: Number of equal bins over ``range``, or the edges ``(B + 1,)``.
        range: ``(lo, hi)`` of the equal bins (None: min and max of ``m_jj``); must start above
            the trigger turn-on, where the dijet function does not apply (the LHCO events have
            a jet with pT > 1.2 TeV).
        n_params: 3 (``p3 = 0``) or 4.
        sqrt_s: Centre-of-mass energy in TeV.
        max_calls: Call limit of each Migrad minimisation (None: Minuit's default).

    Returns:
        A :class:`SidebandFit`.

    Raises:
        ConfigError: Bad binning, SR outside the binning, too few sideband bins, bad option.
        DataFormatError: NaN masses, an empty sideband, too few sideband events.
        FitError: No start reached a valid minimum.
    """
    from iminuit import Minuit
    from scipy import stats

    if n_params not in (3, 4):
        raise ConfigError(f"n_params: expected 3 or 4, got {n_params}")
    if not (math.isfinite(sqrt_s) and sqrt_s > 0):
        raise ConfigError(f"sqrt_s: expected a positive energy in TeV, got {sqrt_s}")
    m = np.asarray(m_jj, dtype=np.float64).reshape(-1)
    if m.size == 0 or not np.isfinite(m).all():
        raise DataFormatError(f"m_jj: expected finite masses, got {m.size} values with NaN/inf")
    lo, hi = (float(v) for v in signal_region)
    if not lo < hi:
        raise ConfigError(f"signal_region: expected (lo, hi) with lo < hi, got {signal_region}")
    edges = _edges(m, bins, range, sqrt_s)
    if not edges[0] < lo < hi < edges[-1]:
        raise ConfigError(
            f"signal_region: [{lo:g}, {hi:g}] TeV must lie inside the bins [{edges[0]:g}, "
            f"{edges[-1]:g}] with sidebands on both sides"
        )
    counts = np.histogram(m, bins=edges)[0].astype(np.float64)
    tol = 1e-9 * (edges[-1] - edges[0])  # edges from linspace miss 3.7 by an ulp
    below, above = edges[1:] <= lo + tol, edges[:-1] >= hi - tol
    sideband = below | above
    for name, side in (("lower", below), ("upper", above)):
        if not side.any():
            raise ConfigError(f"bins: no {name} sideband bin outside the SR [{lo:g}, {hi:g}]")
        if counts[side].sum() == 0:
            raise DataFormatError(f"m_jj: no events in the {name} sideband")
    n = counts[sideband]
    if (n > 0).sum() <= n_params or n.sum() < 5 * n_params:
        raise DataFormatError(
            f"m_jj: too few sideband events for a {n_params}-parameter fit "
            f"({int(n.sum())} events in {(n > 0).sum()} non-empty bins)"
        )
    model = _Model(edges, sideband, n, n_params, sqrt_s)
    quad_sb = model.sb

    def deviance(theta: F64) -> float:
        mu = model.counts(np.asarray(theta), quad_sb)[0]
        return float(2.0 * np.sum(mu - n + n * np.log(np.where(n > 0, n, 1.0) / mu)))

    def gradient(theta: F64) -> F64:
        mu, g = model.counts(np.asarray(theta), quad_sb)
        out: F64 = 2.0 * ((mu - n) @ g)
        return out

    best: Any = None
    tried = []
    for start in _starts(n, quad_sb, n_params - 1):
        theta0 = np.concatenate([[math.log(n.sum())], model.unwhiten @ start])
        minuit = Minuit(deviance, theta0, grad=gradient)
        minuit.errordef = Minuit.LEAST_SQUARES
        minuit.migrad(ncall=max_calls)
        tried.append(minuit)
        if minuit.valid and (best is None or minuit.fval < best.fval):
            best = minuit
    if best is None:
        fm = min(tried, key=lambda t: t.fval).fmin
        raise FitError(
            f"dijet sideband fit: no valid minimum from {len(tried)} starts (best: fval="
            f"{fm.fval:.4g}, edm={fm.edm:.2g}, call limit reached={fm.has_reached_call_limit}, "
            f"above max edm={fm.is_above_max_edm})"
        )
    best.hesse()
    if not best.valid:
        raise FitError(
            f"dijet sideband fit: the minimum turned invalid in HESSE ({best.fmin.edm=:.2g})"
        )
    if not best.accurate:
        log.warning("dijet sideband fit: HESSE covariance not accurate; the SR error may be off")
    theta = np.array(best.values, dtype=np.float64)
    cov = np.array(best.covariance, dtype=np.float64)
    model.theta = theta
    # physical parameters: ln p0 = a − ln ∫_SB g
    log_sb, d_sb = model.log_integrals(theta, quad_sb)
    log_norm, soft = _logsumexp(log_sb, axis=0)
    p0 = _normalisation(theta[0] - log_norm)
    jac = np.zeros((n_params, n_params))
    jac[0, 0], jac[0, 1:], jac[1:, 1:] = p0, -p0 * (soft @ d_sb), model.whiten
    params = np.concatenate([[p0], model.whiten @ theta[1:]])
    pcov = jac @ cov @ jac.T
    b_sr, db = model.interval(lo, hi)
    b_err = math.sqrt(max(float(db @ cov @ db), 0.0))
    n_sr = int(((m >= lo) & (m < hi)).sum())
    z = poisson_significance(n_sr, b_sr, b_err)
    ndf = int(n.size - n_params)
    chi2 = float(best.fval)
    return SidebandFit(
        params=params,
        errors=np.sqrt(np.maximum(np.diag(pcov), 0.0)),
        covariance=pcov,
        valid=bool(best.valid),
        accurate=bool(best.accurate),
        edm=float(best.fmin.edm),
        chi2=chi2,
        ndf=ndf,
        chi2_pvalue=float(stats.chi2.sf(chi2, ndf)) if ndf > 0 else math.nan,
        edges=edges,
        counts=counts,
        sideband=sideband,
        signal_region=(lo, hi),
        n_observed=n_sr,
        background=b_sr,
        background_error=b_err,
        significance=z,
        p_value=float(stats.norm.sf(z)),
        pull=(n_sr - b_sr) / math.sqrt(b_sr + b_err**2),
        sqrt_s=float(sqrt_s),
        _model=model,
        _theta_cov=cov,
    )
