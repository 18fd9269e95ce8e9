"""Per-event posterior calibration of conditional generative models (unfolding, inference).

A conditional model ``p(gen | reco)`` is calibrated when, for pairs drawn from the joint
distribution it was trained on, the truth is a typical draw of its own posterior: the rank of
the truth among ``n`` posterior samples is uniform on ``0..n`` and central credible intervals
cover the truth at their nominal rate. This is the calibration test of cINN unfolding
(Bellagente et al., arXiv:2006.06685, Sec. 3) and of simulation-based calibration (Talts et
al., arXiv:1804.06788), here per observable and with event weights, so that it applies to
the reweighted simulation of iterative generative unfolding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.errors import ConfigError, DataFormatError

__all__ = ["PosteriorCalibration", "posterior_calibration", "weighted_ks_uniform"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def derived_seed(*keys: int) -> int:
    """A 32-bit seed derived from integer keys (one stream per purpose and iteration)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1)[0])


@dataclass(frozen=True)
class PosteriorCalibration:
    """Per-event posterior calibration on held-out simulated pairs (one row per event).

    Attributes:
        columns: Observable names ``(D,)``.
        levels: Nominal credibility levels ``(L,)``.
        coverage: ``(D, L)`` weighted fraction of truths inside the central interval of their
            posterior's marginal at each level (nominal if calibrated).
        coverage_error: ``(D, L)`` binomial standard error (Kish effective size).
        ranks: ``(N, D)`` number of the ``n_samples`` posterior samples below the truth,
            ties broken at random (uniform on ``0..n_samples`` if calibrated).
        pit: ``(N, D)`` randomised probability integral transform ``(rank + U) / (n + 1)``,
            exactly uniform on (0, 1) for a calibrated posterior.
        n_samples: Posterior samples per event.
        weights: ``(N,)`` event weights (they enter the coverage and the uniformity test).
    """

    columns: tuple[str, ...]
    levels: F64
    coverage: F64
    coverage_error: F64
    ranks: I64
    pit: F64
    n_samples: int
    weights: F64

    def uniformity_pvalues(self) -> F64:
        """``(D,)`` weighted Kolmogorov–Smirnov p-values of the PIT against U(0, 1), with the
        event weights (:func:`weighted_ks_uniform`; the plain KS test for equal weights)."""
        return np.array(
            [weighted_ks_uniform(self.pit[:, j], self.weights)[1] for j in range(self.pit.shape[1])]
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready ``{observable: {"coverage": {level: value}, "rank_ks_pvalue": p}}`` (``p``:
        :meth:`uniformity_pvalues`)."""
        p = self.uniformity_pvalues()
        return {
            col: {
                "coverage": {
                    f"{lv:g}": float(self.coverage[j, k]) for k, lv in enumerate(self.levels)
                },
                "coverage_error": {
                    f"{lv:g}": float(self.coverage_error[j, k]) for k, lv in enumerate(self.levels)
                },
                "rank_ks_pvalue": float(p[j]),
            }
            for j, col in enumerate(self.columns)
        } | {"n_events": int(self.ranks.shape[0]), "n_samples": self.n_samples}


def posterior_calibration(
    est: Any,
    gen: Any,
    reco: Any,
    *,
    n_samples: int = 100,
    levels: Sequence[float] = (0.5, 0.68, 0.95),
    weights: Any = None,
    columns: Sequence[str] | None = None,
    seed: int = 0,
) -> PosteriorCalibration:
    """Calibration of per-event posteriors ``p(gen | reco)`` on pairs not used in training.

    For each pair the truth's rank among ``n_samples`` posterior draws gives the randomised
    PIT ``u = (rank + U) / (n_samples + 1)``; the truth lies in the central interval at level
    ``a`` when ``|u − ½| <= a / 2``. For a calibrated posterior ``u ~ U(0, 1)`` and the coverage
    equals ``a`` (the calibration test of arXiv:2006.06685, Sec. 3).

    Args:
        est: A trained conditional density (:class:`~physgen.density.DensityEstimator`), or any
            callable ``est(reco) -> d`` with ``d.sample(n, seed=...)`` of shape ``(n, N, D)``.
        gen: Particle-level truths ``(N, D)``.
        reco: Their detector-level conditions ``(N, K)``.
        n_samples: Posterior draws per event.
        levels: Credibility levels in (0, 1).
        weights: Event weights ``(N,)`` (None: 1).
        columns: Observable names (default ``z0, z1, ...``).
        seed: Seed of the posterior draws and of the tie breaking.

    Raises:
        ConfigError: ``n_samples < 1`` or levels outside (0, 1).
        DataFormatError: Mismatched shapes, NaN/inf, bad weights.
    """
    g = finite_matrix("gen", gen)
    r = finite_matrix("reco", reco)
    if r.shape[0] != g.shape[0]:
        raise DataFormatError(f"reco has {r.shape[0]} rows, gen has {g.shape[0]}")
    if n_samples < 1:
        raise ConfigError(f"n_samples: need >= 1, got {n_samples}")
    lv = np.asarray(levels, dtype=np.float64).reshape(-1)
    if lv.size == 0 or ((lv <= 0) | (lv >= 1)).any():
        raise ConfigError("levels: credibility levels must lie in (0, 1)")
    w = check_event_weights("weights", weights, g.shape[0])
    draws = np.asarray(
        est(r).sample(int(n_samples), seed=derived_seed(seed, 0xCA1)), dtype=np.float64
    )
    if draws.shape != (n_samples, *g.shape):
        raise DataFormatError(
            f"posterior samples: expected shape {(n_samples, *g.shape)}, got {draws.shape}"
        )
    below = (draws < g[None]).sum(axis=0)
    ties = (draws == g[None]).sum(axis=0)
    u01 = np.random.default_rng(derived_seed(seed, 0x71E)).uniform(size=g.shape)
    ranks = below + np.floor(u01 * (ties + 1)).astype(np.int64)  # uniform among tied places
    pit = (ranks + np.random.default_rng(derived_seed(seed, 0x917)).uniform(size=g.shape)) / (
        n_samples + 1
    )
    inside = np.abs(pit[:, :, None] - 0.5) <= lv[None, None, :] / 2  # (N, D, L)
    wn = w / w.sum()
    cov = np.einsum("n,ndl->dl", wn, inside.astype(np.float64))
    n_eff = w.sum() ** 2 / np.sum(w * w)
    err = np.sqrt(np.clip(cov * (1 - cov), 0.0, None) / n_eff)
    cols = tuple(columns) if columns is not None else tuple(f"z{j}" for j in range(g.shape[1]))
    if len(cols) != g.shape[1]:
        raise ConfigError(f"columns: {len(cols)} names for {g.shape[1]} observables")
    return PosteriorCalibration(cols, lv, cov, err, ranks.astype(np.int64), pit, int(n_samples), w)


def weighted_ks_uniform(u: Any, weights: Any = None) -> tuple[float, float]:
    """Kolmogorov–Smirnov test of a weighted sample on [0, 1] against the uniform distribution.

    The statistic is ``D = sup_u |F_w(u) − u|`` with the weighted empirical CDF
    ``F_w(u) = Σ_{u_i <= u} w_i / Σ w_i``. Its p-value is that of the one-sample KS
    distribution (:data:`scipy.stats.kstwo`) for the Kish effective sample size
    ``n_eff = (Σ w)² / Σ w²`` rounded to an integer (at least 1): exact for equal weights
    (then the same as ``scipy.stats.kstest(u, "uniform")``), the usual approximation for
    unequal ones. Weighted samples arise in calibration after IcINN iterations, where the
    held-out pairs carry the MC weight times the prior weight; ignoring the weights would
    test the wrong distribution.

    Args:
        u: Values ``(N,)`` in [0, 1].
        weights: ``(N,)`` weights >= 0, not all 0 (None: 1).

    Returns:
        ``(D, p-value)``.

    Raises:
        DataFormatError: Empty or non-finite values, bad weights.
    """
    from scipy import stats

    v = np.asarray(u, dtype=np.float64).reshape(-1)
    if v.size == 0 or not np.isfinite(v).all():
        raise DataFormatError("u: expected a non-empty sample of finite values")
    w = check_event_weights("weights", weights, v.size)
    order = np.argsort(v, kind="stable")
    v, w = v[order], w[order]
    cdf = np.cumsum(w) / w.sum()  # F_w just after each point
    before = np.concatenate([[0.0], cdf[:-1]])  # F_w just before it
    x = np.clip(v, 0.0, 1.0)
    d = float(max(np.max(cdf - x), np.max(x - before)))
    n_eff = max(1, round(float(w.sum() ** 2 / np.sum(w * w))))
    return d, float(stats.kstwo.sf(d, n_eff))


def finite_matrix(name: str, a: Any) -> F64:
    """``a`` as a finite float64 ``(N, D)`` array (``(N,)`` becomes ``(N, 1)``).

    Raises:
        DataFormatError: Another shape, or NaN/inf (naming ``name``).
    """
    m = np.asarray(a, dtype=np.float64)
    m = m[:, None] if m.ndim == 1 else m
    if m.ndim != 2:
        raise DataFormatError(f"{name}: expected shape (N, D), got {m.shape}")
    if not np.isfinite(m).all():
        raise DataFormatError(f"{name}: contains NaN or inf")
    return m


def check_event_weights(name: str, w: Any, n: int) -> F64:
    """``n`` event weights (None: ones), finite, >= 0 and not all 0.

    Raises:
        DataFormatError: Wrong length or bad values (naming ``name``).
    """
    a = np.ones(n) if w is None else np.asarray(w, dtype=np.float64).reshape(-1)
    if a.shape != (n,):
        raise DataFormatError(f"{name}: expected {n} weights, got {a.size}")
    if not np.isfinite(a).all() or (a < 0).any() or a.sum() <= 0:
        raise DataFormatError(f"{name}: weights must be finite, >= 0 and not all 0")
    return a
