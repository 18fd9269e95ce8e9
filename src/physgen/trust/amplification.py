"""The statistical power of a generated sample: how many true events is it worth?

Butter, Diefenbacher, Kasieczka, Nachman, Plehn, "GANplification: Mining the Data Space of
Generative Models", SciPost Phys. 10, 139 (2021), arXiv:2008.06545. A generative model
trained on ``N_train`` events can be sampled without limit, but its samples carry the
model's own error; the question is how many *true* events a sample of ``n`` generated
events is worth.

**Metric.** The truth's support is cut into ``K`` bins with known truth probabilities
``p_j`` (equal-probability quantiles of a 1-D truth, or any binning with probabilities from
a large truth sample or a closed form). A sample of ``n`` events with bin fractions ``f_j``
has the discrepancy

    ``D = Σ_j (f_j − p_j)² / p_j``  (a χ²/n; with ``K`` equal quantiles ``D = K² · MSE``,
    the paper's quantile MSE).

For ``N`` events drawn from the truth itself, ``E[D] = (K − 1) / N`` exactly (multinomial
variance). A sample with discrepancy ``D`` is therefore worth ``N_equiv = (K − 1) / D`` true
events, and the **amplification factor** is ``N_equiv / N_train``. For a generated sample
of size ``n``, ``E[D] ≈ B + (K − 1) / n`` with ``B`` the model's own (squared) error, so
``N_equiv`` grows with ``n`` and saturates at ``(K − 1) / B``: generating more than the
saturation point adds nothing. The paper's findings (amplification > 1 that saturates;
smaller for finer bins; a correct parametric fit does better still) are reproduced in
``bench/trust.py``.

Averages over repeated trainings (different training sets) are needed: one training set's
``D`` fluctuates like a χ² with ``K − 1`` degrees of freedom. :func:`amplification` takes
any number of repeats and reports the mean discrepancy and its error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.errors import ConfigError, DataFormatError

__all__ = [
    "AmplificationResult",
    "Binning",
    "amplification",
    "conditional_quantile_binning",
    "discrepancy",
    "equivalent_events",
    "quantile_binning",
]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Binning:
    """Bins of the truth's support with their truth probabilities.

    Attributes:
        assign: Maps events ``(n, D)`` (or ``(n,)``) to bin indices ``(n,)`` in ``0..K-1``.
        probabilities: Truth probability of every bin ``(K,)`` (sums to 1, all > 0).
        description: For reports, e.g. ``"10 quantiles of x"``.
    """

    assign: Callable[[F64], npt.NDArray[np.int64]]
    probabilities: F64
    description: str = ""

    @property
    def n_bins(self) -> int:
        """``K``."""
        return int(self.probabilities.size)


def quantile_binning(truth: Any, n_bins: int, *, column: int = 0) -> Binning:
    """``n_bins`` equal-probability bins of one column, from a (large) truth sample.

    Args:
        truth: Truth events ``(N,)`` or ``(N, D)``; its quantiles define the edges, and the
            bins' probabilities are set to exactly ``1 / n_bins``, so ``N`` must be much
            larger than any sample the binning will judge.
        n_bins: ``K >= 2``.
        column: The column binned (multi-dimensional truth).

    Raises:
        ConfigError: ``n_bins < 2`` or a bad column.
        DataFormatError: Non-finite truth values or fewer than ``10 · n_bins`` events, or
            tied quantile edges (a discrete column).
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
        raise ConfigError(f"n_bins: expected an integer >= 2, got {n_bins!r}")
    x = _column(np.asarray(truth, dtype=np.float64), column, "truth")
    if x.size < 10 * n_bins:
        raise DataFormatError(
            f"truth: {x.size} events for {n_bins} quantiles; need at least {10 * n_bins}"
        )
    inner = np.quantile(x, np.arange(1, n_bins) / n_bins)
    if np.any(np.diff(inner) <= 0):
        raise DataFormatError(
            "truth: tied quantile edges (a discrete column?); use fewer bins or a Binning "
            "with explicit probabilities"
        )

    def assign(v: F64) -> npt.NDArray[np.int64]:
        col = _column(np.asarray(v, dtype=np.float64), column, "sample")
        return np.searchsorted(inner, col, side="right").astype(np.int64)

    probs = np.full(n_bins, 1.0 / n_bins)
    return Binning(assign, probs, f"{n_bins} quantiles of column {column}")


def conditional_quantile_binning(
    truth: Any, n_bins: int, *, condition: int = 0, column: int = 1, max_values: int = 64
) -> Binning:
    """Equal-probability bins of one column within each value of a discrete condition.

    For a conditional model ``p(x | c)`` with a discrete ``c`` (the 15 incident energies of
    CaloChallenge dataset 1): bin ``(i, q)`` holds events with the ``i``-th condition value
    in the ``q``-th of ``n_bins`` quantiles of ``x`` at that value; its probability is the
    truth's fraction of that value times ``1 / n_bins``. A sample must be drawn with the
    truth's condition frequencies (e.g. generated for conditions drawn from the truth).

    Args:
        truth: Truth events ``(N, D)``.
        n_bins: Quantiles per condition value.
        condition: Column of the condition.
        column: Column binned.
        max_values: Most distinct condition values accepted.

    Raises:
        DataFormatError: More than ``max_values`` condition values, fewer than
            ``10 · n_bins`` events at one of them, tied quantiles, or (when assigning) a
            condition value the truth does not have.
    """
    t = np.asarray(truth, dtype=np.float64)
    c = _column(t, condition, "truth")
    values, counts = np.unique(c, return_counts=True)
    if len(values) > max_values:
        raise DataFormatError(
            f"truth: {len(values)} condition values (> {max_values}): not a discrete condition"
        )
    parts = [quantile_binning(t[c == v], n_bins, column=column) for v in values]

    def assign(v: F64) -> npt.NDArray[np.int64]:
        arr = np.asarray(v, dtype=np.float64)
        cv = _column(arr, condition, "sample")
        i = np.searchsorted(values, cv)
        i = np.clip(i, 0, len(values) - 1)
        if np.any(values[i] != cv):
            raise DataFormatError("sample: a condition value the truth does not have")
        out = np.empty(len(cv), np.int64)
        for k, part in enumerate(parts):
            sel = i == k
            if sel.any():
                out[sel] = k * n_bins + part.assign(arr[sel])
        return out

    probs = np.repeat(counts / counts.sum(), n_bins) / n_bins
    return Binning(
        assign,
        probs,
        f"{n_bins} quantiles of column {column} at each of {len(values)} values of column "
        f"{condition}",
    )


def _column(x: F64, column: int, name: str) -> F64:
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise DataFormatError(f"{name}: expected (N,) or (N, D) values, got shape {x.shape}")
    if not -x.shape[1] <= column < x.shape[1]:
        raise ConfigError(f"column: {column} is out of range for {x.shape[1]} columns")
    out: F64 = x[:, column]
    if not np.all(np.isfinite(out)):
        raise DataFormatError(f"{name}: contains NaN or inf")
    return out


def discrepancy(sample: Any, binning: Binning, weights: Any = None) -> float:
    """``D = Σ_j (f_j − p_j)² / p_j`` of a sample against the truth's bin probabilities.

    Args:
        sample: Events ``(n,)`` or ``(n, D)``.
        binning: The truth's bins (:func:`quantile_binning` or a custom :class:`Binning`).
        weights: Optional event weights ``(n,)`` (finite, >= 0, positive sum); the fractions
            are then weighted.

    Raises:
        DataFormatError: An empty sample, bad weights or bin indices out of range.
    """
    idx = binning.assign(np.asarray(sample, dtype=np.float64))
    if idx.size == 0:
        raise DataFormatError("sample: no events")
    w = np.ones(idx.size) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != idx.shape or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise DataFormatError(
            f"weights: expected {idx.size} finite weights >= 0 with a positive sum"
        )
    k = binning.n_bins
    if idx.min() < 0 or idx.max() >= k:
        raise DataFormatError(f"binning: bin indices outside 0..{k - 1}")
    f = np.bincount(idx, weights=w, minlength=k) / w.sum()
    p = binning.probabilities
    return float(np.sum((f - p) ** 2 / p))


def equivalent_events(d: float, n_bins: int) -> float:
    """``N_equiv = (K − 1) / D``: the true-sample size with expected discrepancy ``D``."""
    return float("inf") if d <= 0 else (n_bins - 1) / d


@dataclass(frozen=True)
class AmplificationResult:
    """Discrepancy and equivalent statistics as a function of the generated sample size.

    Attributes:
        sizes: Generated sample sizes ``n`` ``(S,)``.
        discrepancy: Mean ``D`` over the repeats ``(S,)`` and its standard error ``(S,)``
            in ``discrepancy_err``.
        equivalent: ``N_equiv = (K − 1) / mean D`` ``(S,)``.
        amplification: ``N_equiv / N_train`` ``(S,)``.
        train_discrepancy: Mean ``D`` of the training sets themselves (their own worth:
            ``(K − 1) / D_train ≈ N_train``).
        n_train: Training set size.
        n_bins: ``K``.
        repeats: Number of (training set, model) repeats averaged.
        extra: Free-form record (binning description, model settings).
    """

    sizes: npt.NDArray[np.int64]
    discrepancy: F64
    discrepancy_err: F64
    equivalent: F64
    amplification: F64
    train_discrepancy: float
    n_train: int
    n_bins: int
    repeats: int
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def saturated_amplification(self) -> float:
        """The amplification at the largest generated sample."""
        return float(self.amplification[-1])

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "sizes": self.sizes.tolist(),
            "discrepancy": self.discrepancy.tolist(),
            "discrepancy_err": self.discrepancy_err.tolist(),
            "equivalent": self.equivalent.tolist(),
            "amplification": self.amplification.tolist(),
            "train_discrepancy": self.train_discrepancy,
            "train_equivalent": equivalent_events(self.train_discrepancy, self.n_bins),
            "n_train": self.n_train,
            "n_bins": self.n_bins,
            "repeats": self.repeats,
            **self.extra,
        }


def amplification(
    generators: Sequence[Callable[[int, int], Any]],
    training_sets: Sequence[Any],
    binning: Binning,
    sizes: Sequence[int],
    *,
    seed: int = 0,
    truth_events: int | None = None,
) -> AmplificationResult:
    """The amplification factor of generated samples of several sizes (arXiv:2008.06545).

    Args:
        generators: One sampler per repeat, ``generator(n, seed) -> events (n, D)``: the
            model trained on the matching training set.
        training_sets: The training sets ``(N_train, D)`` (one per repeat, equal sizes).
        binning: The truth's bins.
        sizes: Generated sample sizes to evaluate (each >= 1), e.g. ``[100, 1000, 10**5]``.
        seed: Base seed of the samplers (repeat ``r``, size ``s`` use a seed derived from
            ``(seed, r, s)``).
        truth_events: When the bins come from a finite truth sample of this many events
            (quantile edges, or probabilities estimated from it), every independent sample's
            expected discrepancy has the truth's own noise ``(K − 1) / truth_events`` on top;
            it is subtracted from every ``D`` (generated and training sets) before the
            equivalent statistics. None: the probabilities are exact.

    Returns:
        Mean discrepancy over the repeats per size, its equivalent statistics and the
        amplification ``N_equiv / N_train``.

    Raises:
        ConfigError: No repeats, unequal numbers of generators and training sets, bad sizes.
        DataFormatError: Training sets of different sizes.
    """
    if not generators or len(generators) != len(training_sets):
        raise ConfigError(
            f"generators: need one per training set and at least one; got {len(generators)} "
            f"generators and {len(training_sets)} training sets"
        )
    n_sizes = [int(s) for s in sizes]
    if not n_sizes or min(n_sizes) < 1:
        raise ConfigError(f"sizes: expected positive sample sizes, got {list(sizes)!r}")
    n_train = {len(np.asarray(t)) for t in training_sets}
    if len(n_train) != 1:
        raise DataFormatError(f"training_sets: sizes differ ({sorted(n_train)})")
    k = binning.n_bins
    d = np.empty((len(generators), len(n_sizes)))
    for r, gen in enumerate(generators):
        for j, n in enumerate(n_sizes):
            s = int(np.random.SeedSequence([seed, r, j]).generate_state(1)[0])
            d[r, j] = discrepancy(gen(n, s), binning)
    d_train = float(np.mean([discrepancy(t, binning) for t in training_sets]))
    floor = 0.0
    if truth_events is not None:
        if truth_events < 1:
            raise ConfigError(f"truth_events: expected a positive count, got {truth_events}")
        floor = (k - 1) / truth_events
    d, d_train = d - floor, d_train - floor
    mean = d.mean(axis=0)
    err = (
        d.std(axis=0, ddof=1) / np.sqrt(d.shape[0])
        if d.shape[0] > 1
        else np.full_like(mean, np.nan)
    )
    equiv = np.array([equivalent_events(float(m), k) for m in mean])
    nt = n_train.pop()
    return AmplificationResult(
        sizes=np.asarray(n_sizes, dtype=np.int64),
        discrepancy=mean,
        discrepancy_err=err,
        equivalent=equiv,
        amplification=equiv / nt,
        train_discrepancy=d_train,
        n_train=nt,
        n_bins=k,
        repeats=len(generators),
        extra={"binning": binning.description, "truth_noise_subtracted": floor},
    )
