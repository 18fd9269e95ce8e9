"""Weighted two-sample classifiers on feature arrays: a test statistic and a likelihood ratio.

Two samples ``x0 (N0, F)`` and ``x1 (N1, F)`` with optional per-event weights. The classes are
balanced by weight (each class's weights rescaled to the same total), so a classifier output
``f(x)`` estimates ``p1(x) / (p0(x) + p1(x))`` and ``f / (1 - f)`` the density ratio
``p1(x) / p0(x)`` of the two weighted distributions (the likelihood-ratio trick; e.g.
Andreassen et al., OmniFold, PRL 124 (2020) 182001; Andreassen & Nachman, DCTR, PRD 101 (2020)
091901). Outputs are calibrated by isotonic regression on a held-out split.

* :func:`two_sample_test`: train / test / validation split per class (60/20/20), calibrated
  AUC and JSD on the validation split (weighted), mean and spread over repeats;
* :func:`fit_likelihood_ratio`: a :class:`LikelihoodRatio` ``r(x)`` usable on new events;
* :func:`cross_fit_ratios`: k-fold out-of-fold ratios for every event of both samples (each
  event scored by classifiers that never saw it).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.errors import ConfigError, DataFormatError
from physgen.metrics.classifier import (
    ArrayPool,
    ClassifierConfig,
    affine_input,
    balanced_weights,
    binary_metrics,
    build_dnn,
    calibrate,
    get_preset,
    input_transform,
    mean_std,
    network_scores,
    sigmoid,
    torch_threads,
    train_network,
)

__all__ = [
    "LikelihoodRatio",
    "TwoSampleResult",
    "cross_fit_ratios",
    "fit_likelihood_ratio",
    "two_sample_test",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


def _check(
    x0: Any, x1: Any, w0: Any, w1: Any, allow_negative: bool = False
) -> tuple[F64, F64, F64, F64]:
    a, b = np.asarray(x0, dtype=np.float64), np.asarray(x1, dtype=np.float64)
    a = a[:, None] if a.ndim == 1 else a
    b = b[:, None] if b.ndim == 1 else b
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise DataFormatError(
            f"two samples need shapes (N0, F) and (N1, F) with the same F, got {a.shape}, {b.shape}"
        )
    if min(len(a), len(b)) < 10:
        raise DataFormatError(
            f"two samples: need at least 10 events each, got {len(a)} and {len(b)}"
        )
    for name, arr in (("x0", a), ("x1", b)):
        if not np.isfinite(arr).all():
            raise DataFormatError(f"{name}: contains NaN or inf")
    ws = []
    for name, w, n in (("w0", w0, len(a)), ("w1", w1, len(b))):
        wa = np.ones(n) if w is None else np.asarray(w, dtype=np.float64).reshape(-1)
        if wa.shape != (n,):
            raise DataFormatError(f"{name}: expected {n} weights, got {wa.shape[0]}")
        if allow_negative:
            if not np.isfinite(wa).all() or wa.sum() <= 0:
                raise DataFormatError(f"{name}: weights must be finite with a total > 0")
        elif not np.isfinite(wa).all() or (wa < 0).any() or wa.sum() <= 0:
            raise DataFormatError(f"{name}: weights must be finite, >= 0 and not all 0")
        ws.append(wa / wa.mean())
    return a, b, ws[0], ws[1]


def _samples(
    x0: Any, x1: Any, w0: Any, w1: Any, allow_negative: bool = False
) -> tuple[ArrayPool, I64, F64, int]:
    """Checked samples -> (pool of both, labels 0/1, weights with mean 1 per class, N0)."""
    a, b, wa, wb = _check(x0, x1, w0, w1, allow_negative)
    labels = np.concatenate([np.zeros(len(a), np.int64), np.ones(len(b), np.int64)])
    return ArrayPool([a, b]), labels, np.concatenate([wa, wb]), len(a)


def _network(pool: ArrayPool, idx: I64, config: ClassifierConfig) -> Any:
    import torch

    net = build_dnn(pool.sources[0].dim, config)
    if config.input_transform != "none":  # "auto": standardise the features
        whiten = config.input_transform == "whiten" and pool.sources[0].dim <= config.max_whiten_dim
        mean, w = input_transform(pool, idx, config.eval_batch_size, whiten, config.whiten_eps)
        net = torch.nn.Sequential(affine_input(mean, w), net)
    return net


@dataclass
class _Trained:
    model: Any
    p_test: F64
    test_idx: I64
    epochs: int


def _train_one(
    pool: ArrayPool,
    labels: I64,
    weights: F64,
    train_idx: I64,
    test_idx: I64,
    config: ClassifierConfig,
    seed: int,
    device: str,
    init: Any = None,
) -> _Trained:
    import torch

    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # warm start: a copy of a trained network (its input transform included)
        net = _network(pool, train_idx, config) if init is None else copy.deepcopy(init)
        w_all = np.zeros(len(labels))
        w_all[train_idx] = balanced_weights(weights, labels, train_idx)
        w_all[test_idx] = balanced_weights(weights, labels, test_idx)
        fit = train_network(
            pool, labels, train_idx, test_idx, net, config, rng, device, 2, weights=w_all
        )
    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    p_test = sigmoid(
        network_scores(fit.model, pool, test_idx, config.eval_batch_size, dtype, device)
    )
    return _Trained(fit.model, p_test, test_idx, fit.epochs_run)


def _split(
    labels: I64, fractions: tuple[float, float], rng: np.random.Generator
) -> tuple[I64, ...]:
    parts: list[list[I64]] = [[], [], []]
    for k in (0, 1):
        rows = rng.permutation(np.flatnonzero(labels == k))
        a = int(fractions[0] * len(rows))
        b = a + int(fractions[1] * len(rows))
        for j, chunk in enumerate((rows[:a], rows[a:b], rows[b:])):
            parts[j].append(chunk)
    return tuple(rng.permutation(np.concatenate(p)).astype(np.int64) for p in parts)


@dataclass(frozen=True)
class TwoSampleResult:
    """Calibrated validation metrics of :func:`two_sample_test` (mean and spread over repeats).

    Attributes:
        auc: Weighted ROC AUC (0.5: indistinguishable).
        auc_std: Sample standard deviation over repeats (0 for one).
        jsd: (ln 2 - BCE) / ln 2 of the calibrated outputs (0: indistinguishable).
        jsd_std: Its spread.
        accuracy: Weighted accuracy at 0.5.
        auc_uncalibrated: AUC of the raw outputs.
        n0: Events of sample 0.
        n1: Events of sample 1.
        epochs: Epochs run per repeat.
        per_repeat: Per-repeat metric dictionaries.
    """

    auc: float
    auc_std: float
    jsd: float
    jsd_std: float
    accuracy: float
    auc_uncalibrated: float
    n0: int
    n1: int
    epochs: tuple[int, ...]
    per_repeat: tuple[dict[str, float], ...] = field(default_factory=tuple)


def two_sample_test(
    x0: Any,
    x1: Any,
    *,
    w0: Any = None,
    w1: Any = None,
    config: str | ClassifierConfig = "fast",
    seed: int = 0,
    repeats: int = 1,
    device: str = "cpu",
    threads: int | None = None,
) -> TwoSampleResult:
    """How well a classifier tells weighted sample 1 from weighted sample 0.

    Per class 60 % of the events train, 20 % select the epoch and fit the isotonic
    calibration, 20 % measure the calibrated AUC and JSD (weighted, classes balanced). Repeat
    ``r`` uses seed ``seed + r`` (a new split and initialisation).

    Args:
        x0: Sample 0 ``(N0, F)``.
        x1: Sample 1 ``(N1, F)``.
        w0: Event weights of sample 0 (None: 1).
        w1: Event weights of sample 1.
        config: Preset name (``fast``, ``official``) or a :class:`ClassifierConfig`; its
            ``input_transform`` ``auto`` standardises the features.
        seed: Base seed.
        repeats: Independent trainings.
        device: torch device.
        threads: torch threads for this call (None: unchanged).

    Raises:
        ConfigError: Mismatched widths, fewer than 10 events, NaN/inf, bad weights.
    """
    cfg = get_preset(config)
    if repeats < 1:
        raise ConfigError(f"repeats: must be >= 1, got {repeats}")
    pool, labels, weights, n0 = _samples(x0, x1, w0, w1)
    rows = []
    epochs = []
    with torch_threads(threads):
        for r in range(repeats):
            rng = np.random.default_rng(seed + r)
            train_idx, test_idx, val_idx = _split(labels, (0.6, 0.2), rng)
            t = _train_one(pool, labels, weights, train_idx, test_idx, cfg, seed + r, device)
            import torch

            dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
            p_val = sigmoid(
                network_scores(t.model, pool, val_idx, cfg.eval_batch_size, dtype, device)
            )
            w_test = balanced_weights(weights, labels, test_idx)
            w_val = balanced_weights(weights, labels, val_idx)
            p_cal = calibrate(t.p_test, labels[test_idx], p_val, w_test)
            cal = binary_metrics(p_cal, labels[val_idx], w_val)
            raw = binary_metrics(p_val, labels[val_idx], w_val)
            rows.append({**cal, "auc_uncalibrated": raw["auc"]})
            epochs.append(t.epochs)
    auc, auc_s = mean_std([r["auc"] for r in rows])
    jsd, jsd_s = mean_std([r["jsd"] for r in rows])
    return TwoSampleResult(
        auc=auc,
        auc_std=auc_s,
        jsd=jsd,
        jsd_std=jsd_s,
        accuracy=float(np.mean([r["accuracy"] for r in rows])),
        auc_uncalibrated=float(np.mean([r["auc_uncalibrated"] for r in rows])),
        n0=n0,
        n1=len(labels) - n0,
        epochs=tuple(epochs),
        per_repeat=tuple(rows),
    )


class LikelihoodRatio:
    """``r(x) = p1(x) / p0(x)`` from a calibrated classifier (see :func:`fit_likelihood_ratio`)."""

    def __init__(
        self, model: Any, p_cal: tuple[F64, I64, F64] | None, config: ClassifierConfig, device: str
    ):
        self.model, self._cal, self.config, self.device = model, p_cal, config, device

    def probability(self, x: Any) -> F64:
        """Calibrated ``f(x) = p1 / (p0 + p1)`` ``(N,)``."""
        import torch

        arr = np.asarray(x, dtype=np.float64)
        arr = arr[:, None] if arr.ndim == 1 else arr
        pool = ArrayPool([arr])
        dtype = torch.float64 if self.config.dtype == "float64" else torch.float32
        idx = np.arange(len(arr), dtype=np.int64)
        p = sigmoid(
            network_scores(self.model, pool, idx, self.config.eval_batch_size, dtype, self.device)
        )
        if self._cal is not None:
            p_fit, y_fit, w_fit = self._cal
            p = calibrate(p_fit, y_fit, p, w_fit)
        out: F64 = np.clip(p, 1e-6, 1 - 1e-6)
        return out

    def __call__(self, x: Any) -> F64:
        """The density ratio ``f / (1 - f)`` ``(N,)``."""
        p = self.probability(x)
        return p / (1.0 - p)

    def log_ratio(self, x: Any) -> F64:
        """``log r(x)``."""
        p = self.probability(x)
        out: F64 = np.log(p) - np.log1p(-p)
        return out


def fit_likelihood_ratio(
    x0: Any,
    x1: Any,
    *,
    w0: Any = None,
    w1: Any = None,
    config: str | ClassifierConfig = "fast",
    seed: int = 0,
    calibrated: bool = False,
    device: str = "cpu",
    threads: int | None = None,
    allow_negative: bool = False,
    init: LikelihoodRatio | None = None,
) -> LikelihoodRatio:
    """Train a classifier on all events (80 % train, 20 % for epoch selection) and return the
    density ratio ``p1 / p0`` of the two weighted samples.

    The network's sigmoid output minimises the (weighted) cross-entropy, so it estimates
    ``p1 / (p0 + p1)`` directly; ``calibrated=True`` adds an isotonic regression on the
    held-out 20 %, which helps AUC-type metrics but makes the ratio a step function and
    unstable in the tails (where few events fix the extreme steps).

    ``allow_negative=True`` accepts negative event weights (each class's total must stay
    > 0): a sample such as "data minus background MC", with the background entering with
    negative weights, as in neural positive reweighting (arXiv:2007.11586). Where the
    weighted density of a class is negative the cross-entropy has no minimum, so the output
    there is held in place only by the other events and the network's smoothness; the ratio
    stays positive by construction. It cannot be combined with ``calibrated=True`` (the
    isotonic fit needs non-negative weights): that raises
    :class:`~physgen.errors.ConfigError`.

    ``init`` warm-starts the training from a copy of another ratio's network (same input
    width and config; its input standardisation is kept), as OmniFold's reference package
    does from one iteration to the next; ``init`` itself is not changed."""
    if allow_negative and calibrated:
        raise ConfigError(
            "calibrated: cannot be combined with allow_negative=True (the isotonic "
            "calibration needs non-negative weights)"
        )
    cfg = get_preset(config)
    pool, labels, weights, _ = _samples(x0, x1, w0, w1, allow_negative)
    if init is not None:
        try:
            init.probability(pool.rows(np.zeros(1, dtype=np.int64)))
        except RuntimeError as exc:  # a shape mismatch inside the network
            raise ConfigError(
                f"init: its network does not take these inputs ({pool.sources[0].dim} columns)"
            ) from exc
    with torch_threads(threads):
        train_idx, test_idx, _ = _split(labels, (0.8, 0.2), np.random.default_rng(seed))
        t = _train_one(
            pool,
            labels,
            weights,
            train_idx,
            test_idx,
            cfg,
            seed,
            device,
            None if init is None else init.model,
        )
    cal = (
        (t.p_test, labels[test_idx], balanced_weights(weights, labels, test_idx))
        if calibrated
        else None
    )
    return LikelihoodRatio(t.model, cal, cfg, device)


def cross_fit_ratios(
    x0: Any,
    x1: Any,
    *,
    w0: Any = None,
    w1: Any = None,
    folds: int = 5,
    config: str | ClassifierConfig = "fast",
    seed: int = 0,
    calibrated: bool = False,
    device: str = "cpu",
    threads: int | None = None,
) -> tuple[F64, F64]:
    """Out-of-fold density ratios ``p1 / p0`` for every event of both samples.

    The events of each class are split into ``folds`` parts; for each part a classifier is
    trained on the others (a quarter of them held out for epoch selection, and for the
    isotonic calibration with ``calibrated``) and scores the part. Returns
    ``(r0 (N0,), r1 (N1,))``.
    """
    import torch

    if folds < 2:
        raise ConfigError(f"folds: must be >= 2, got {folds}")
    cfg = get_preset(config)
    pool, labels, weights, n0 = _samples(x0, x1, w0, w1)
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(labels), np.int64)
    for k in (0, 1):
        rows = rng.permutation(np.flatnonzero(labels == k))
        fold_of[rows] = np.arange(len(rows)) % folds
    ratio = np.empty(len(labels))
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    with torch_threads(threads):
        for f in range(folds):
            held = np.flatnonzero(fold_of == f).astype(np.int64)
            rest = rng.permutation(np.flatnonzero(fold_of != f)).astype(np.int64)
            n_test = max(2, len(rest) // 4)
            test_idx, train_idx = rest[:n_test], rest[n_test:]
            t = _train_one(pool, labels, weights, train_idx, test_idx, cfg, seed + f, device)
            p = sigmoid(network_scores(t.model, pool, held, cfg.eval_batch_size, dtype, device))
            if calibrated:
                p = calibrate(
                    t.p_test, labels[test_idx], p, balanced_weights(weights, labels, test_idx)
                )
            p = np.clip(p, 1e-6, 1.0 - 1e-6)
            ratio[held] = p / (1.0 - p)
    return ratio[:n0], ratio[n0:]
