"""Scores of a trained binary classifier: metrics, calibration, class balance.

Weighted AUC / cross-entropy / JSD / accuracy (:func:`binary_metrics`), isotonic calibration
(:func:`calibrate`), per-class weight balancing (:func:`balanced_weights`) and small helpers,
shared by the classifier test (:mod:`physgen.metrics.classifier`), the two-sample tools and
the calorimeter evaluation.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = [
    "accuracy_and_loss",
    "balanced_weights",
    "binary_metrics",
    "calibrate",
    "mean_std",
    "sigmoid",
]

F64 = npt.NDArray[np.float64]


def accuracy_and_loss(
    logits: npt.NDArray[np.float64],
    y: npt.NDArray[np.int64],
    n_classes: int,
    w: npt.NDArray[np.float64] | None = None,
) -> tuple[float, float]:
    """(Accuracy, cross-entropy) of logits, weighted means when ``w`` is given."""
    avg = np.mean if w is None else (lambda a: np.average(a, weights=w))
    if n_classes == 2:
        z = logits[:, 0]
        bce = avg(np.logaddexp(0.0, z) - y * z)
        return float(avg((z > 0) == (y == 1))), float(bce)
    logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    return float(avg(logits.argmax(axis=1) == y)), float(-avg(logp[np.arange(len(y)), y]))


def binary_metrics(
    p: npt.NDArray[np.float64],
    y: npt.NDArray[np.int64],
    w: npt.NDArray[np.float64] | None = None,
) -> dict[str, float]:
    """AUC, binary cross-entropy, JSD = (ln 2 - BCE) / ln 2 and accuracy of probabilities
    ``p`` for labels ``y``; weighted (``sklearn``'s ``sample_weight``, weighted means) when
    ``w`` is given. For the JSD to mean the Jensen-Shannon divergence in bits the two classes
    must carry equal total weight."""
    from sklearn.metrics import roc_auc_score

    q = np.clip(p, 1e-6, 1.0 - 1e-6)
    if w is None:
        bce = float(-np.mean(y * np.log(q) + (1 - y) * np.log(1.0 - q)))
        acc = float(np.mean((p > 0.5) == (y == 1)))
    else:
        bce = float(-np.average(y * np.log(q) + (1 - y) * np.log(1.0 - q), weights=w))
        acc = float(np.average((p > 0.5) == (y == 1), weights=w))
    return {
        "auc": float(roc_auc_score(y, p, sample_weight=w)),
        "bce": bce,
        "jsd": (math.log(2.0) - bce) / math.log(2.0),
        "accuracy": acc,
    }


def calibrate(
    p_fit: F64,
    y_fit: npt.NDArray[np.int64],
    p_apply: F64,
    w_fit: F64 | None = None,
) -> F64:
    """Isotonic-regression calibration: fitted on ``(p_fit, y_fit)`` (weights ``w_fit``),
    applied to ``p_apply``; outputs clipped to ``[1e-6, 1 - 1e-6]``."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-6, y_max=1.0 - 1e-6)
    iso.fit(np.clip(p_fit, 1e-6, 1 - 1e-6), y_fit, sample_weight=w_fit)
    out: F64 = iso.predict(np.clip(p_apply, 1e-6, 1 - 1e-6))
    return out


def balanced_weights(
    weights: npt.NDArray[np.float64], labels: npt.NDArray[np.int64], idx: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """Weights of rows ``idx`` rescaled so that every class sums to the same total
    (``len(idx) / n_classes``): the weighted classes are balanced, as the unweighted ones of
    equal-size samples."""
    out: npt.NDArray[np.float64] = np.asarray(weights, dtype=np.float64)[idx].copy()
    classes = np.unique(labels[idx])
    for k in classes:
        m = labels[idx] == k
        total = out[m].sum()
        if total > 0:
            out[m] *= len(idx) / len(classes) / total
    return out


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def sigmoid(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Probabilities of a one-logit output ``(N, 1)`` -> ``(N,)``."""
    z = logits[:, 0]
    return np.exp(-np.logaddexp(0.0, -z))
