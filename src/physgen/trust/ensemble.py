"""Model uncertainty from ensembles: bands on histograms, their coverage, and the ensembles.

A generative model trained once gives one answer; how far to trust it is the spread of the
answers it could have given. Three ways to get them, all giving ``K`` members whose histograms
make a band (mean +- standard deviation per bin, :class:`Band`):

* **deep ensembles**: ``K`` trainings with different seeds (Lakshminarayanan, Pritzel &
  Blundell, NeurIPS 2017, arXiv:1612.01474); the spread is the training's randomness only;
* **bootstrap ensembles** (``bootstrap=True``, the default of :func:`fit_ensemble`): each
  member also trains on a resample of the training data with replacement, so the spread
  holds the training data's statistical fluctuation, which is what a band should cover;
* **Bayesian networks**: weight draws of one variational network (Bayesian INNs, Bellagente,
  Haussmann, Luchmann & Plehn, arXiv:2104.04543), see ``FlowConfig.bayesian_layers``.

:meth:`Band.coverage` checks a band against a known truth: with a well-trained model and
members that reflect the training statistics, ``|mean - truth| <= std`` in about 68 % of the
bins, and the band is wider (relative to the density) where training data are scarce.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.errors import ConfigError, DataFormatError

__all__ = ["Band", "EnsembleFit", "bin_probabilities", "fit_ensemble", "histogram_band"]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Band:
    """Per-bin statistics of ``K`` members' histograms on the same edges.

    Attributes:
        edges: Bin edges ``(B + 1,)``.
        members: Each member's normalised bin contents ``(K, B)`` (probabilities per bin,
            or densities: whatever the caller filled, on one convention).
    """

    edges: F64
    members: F64

    @property
    def k(self) -> int:
        """Number of members."""
        return int(self.members.shape[0])

    @property
    def mean(self) -> F64:
        """Mean over members ``(B,)``."""
        out: F64 = self.members.mean(axis=0)
        return out

    @property
    def std(self) -> F64:
        """Sample standard deviation over members ``(B,)`` (0 for one member)."""
        if self.k < 2:
            return np.zeros(self.members.shape[1])
        out: F64 = self.members.std(axis=0, ddof=1)
        return out

    def covered(self, truth: npt.ArrayLike, n_sigma: float = 1.0) -> npt.NDArray[np.bool_]:
        """Per bin: does ``mean +- n_sigma * std`` contain ``truth`` ``(B,)``?"""
        t = np.asarray(truth, dtype=np.float64).reshape(-1)
        if t.shape != self.mean.shape:
            raise DataFormatError(f"truth: expected {self.mean.size} bins, got {t.size}")
        out: npt.NDArray[np.bool_] = np.abs(self.mean - t) <= n_sigma * self.std
        return out

    def coverage(
        self, truth: npt.ArrayLike, n_sigma: float = 1.0, mask: npt.ArrayLike | None = None
    ) -> float:
        """Fraction of bins (of ``mask``, default all) whose band contains ``truth``."""
        c = self.covered(truth, n_sigma)
        m = np.ones(c.shape, bool) if mask is None else np.asarray(mask, bool)
        return float(c[m].mean()) if m.any() else float("nan")

    def relative_width(self) -> F64:
        """``std / mean`` per bin (inf where the mean is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            out: F64 = np.where(self.mean > 0, self.std / self.mean, np.inf)
        return out


def histogram_band(
    samples: Sequence[npt.ArrayLike],
    edges: npt.ArrayLike,
    weights: Sequence[npt.ArrayLike | None] | None = None,
    *,
    density: bool = False,
) -> Band:
    """The band of ``K`` samples (one per member) histogrammed on ``edges``.

    Args:
        samples: One 1-D sample per member.
        edges: Bin edges ``(B + 1,)``, increasing.
        weights: Optional per-event weights of each member.
        density: Divide by the bin widths (densities); else probabilities per bin. Both are
            normalised to the member's total (weight) inside the edges.

    Returns:
        The band.
    """
    e = np.asarray(edges, dtype=np.float64)
    if e.ndim != 1 or e.size < 2 or np.any(np.diff(e) <= 0):
        raise ConfigError("edges: need at least two strictly increasing bin edges")
    if not samples:
        raise ConfigError("histogram_band: need at least one member")
    rows = []
    for i, s in enumerate(samples):
        v = np.asarray(s, dtype=np.float64).reshape(-1)
        w = None if weights is None or weights[i] is None else np.asarray(weights[i]).reshape(-1)
        h, _ = np.histogram(v, e, weights=w)
        total = h.sum()
        if total <= 0:
            raise DataFormatError(f"member {i}: no entries inside the edges")
        p = h / total
        rows.append(p / np.diff(e) if density else p)
    return Band(e, np.stack(rows))


def bin_probabilities(cdf: Callable[[F64], F64], edges: npt.ArrayLike) -> F64:
    """Truth probability of each bin from a CDF, renormalised to the range of the edges."""
    e = np.asarray(edges, dtype=np.float64)
    c = np.asarray(cdf(e), dtype=np.float64)
    p: F64 = np.diff(c)
    out: F64 = p / p.sum()
    return out


@dataclass
class EnsembleFit:
    """Members of an ensemble of conditional densities and what they cost.

    Attributes:
        members: The trained :class:`physgen.density.DensityEstimator` objects.
        seconds: Training wall time of each member.
        bootstrap: Whether members trained on bootstrap resamples.
    """

    members: list[Any]
    seconds: list[float] = field(default_factory=list)
    bootstrap: bool = True

    @property
    def cost_s(self) -> float:
        """Total training time (the ensemble's price over one model: K trainings)."""
        return float(sum(self.seconds))


def fit_ensemble(
    x: npt.ArrayLike,
    c: npt.ArrayLike | None = None,
    *,
    members: int = 5,
    bootstrap: bool = True,
    seed: int = 0,
    **fit_kwargs: Any,
) -> EnsembleFit:
    """Train ``members`` densities ``p(x | c)`` with :func:`physgen.density.fit`.

    Member ``k`` uses seed ``seed + k``; with ``bootstrap`` it trains on ``N`` rows drawn
    with replacement from the ``N`` training rows (its own draw, seeded likewise).

    Args:
        x: Training data ``(N, D)``.
        c: Conditions ``(N, K)`` or None.
        members: Ensemble size (>= 2).
        bootstrap: Resample the training data per member.
        seed: Base seed.
        **fit_kwargs: Passed to :func:`physgen.density.fit` (``model``, ``config``,
            ``epochs``, ``max_time``...).

    Returns:
        The members and their training times.
    """
    from physgen import density

    if members < 2:
        raise ConfigError(f"members: an ensemble needs >= 2 members, got {members}")
    xa = np.asarray(x, dtype=np.float64)
    ca = None if c is None else np.asarray(c, dtype=np.float64)
    out = EnsembleFit([], [], bootstrap)
    for k in range(members):
        rows = np.arange(len(xa))
        if bootstrap:
            rng = np.random.default_rng(np.random.SeedSequence([seed, k, 0x424F4F54]))
            rows = rng.integers(0, len(xa), len(xa))
        t0 = time.perf_counter()
        est = density.fit(xa[rows], None if ca is None else ca[rows], seed=seed + k, **fit_kwargs)
        out.seconds.append(time.perf_counter() - t0)
        out.members.append(est)
    return out
