"""C2ST: classifier two-sample test accuracy, as sbibm 1.1.0 defines it (metrics/c2st.py).

Works in physgen's main venv and in the bench venv (numpy + scikit-learn; torch, if importable,
for the z-scoring, bit-identical to sbibm's).

Definition (sbibm): z-score both samples with the mean and the (unbiased, ddof=1) std of the
reference sample X; label X 0 and Y 1; a scikit-learn ``MLPClassifier`` (relu, two hidden layers
of 10 * ndim units, adam, max_iter=10000, random_state=seed); 5-fold ``KFold`` with shuffle and
random_state=seed; the score is the mean cross-validated accuracy. 0.5 = indistinguishable,
1.0 = fully separated. sbibm computes in float32 (torch tensors): we do the same.

    from sbi_c2st import c2st
    acc = c2st(reference_samples, algorithm_samples, seed=1)

    python bench/sbi_c2st.py REF.npy SAMPLES.npy [--seed 1]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def _z_score(X: np.ndarray, Y: np.ndarray):
    """Z-score X and Y with X's mean and unbiased std, in float32.

    The MLP's training is chaotic: a one-ulp difference in its inputs can move the score by a
    few per cent on near-identical samples. So, where torch is importable (both of our venvs),
    the z-scoring is done by torch exactly as sbibm does it (torch.mean / torch.std on float32
    tensors); numpy's float32 reductions round differently in the last bit."""
    try:
        import torch
    except ImportError:  # numpy fallback: the same formula, last-bit differences possible
        mean = X.mean(axis=0)
        std = X.std(axis=0, ddof=1)
        return (X - mean) / std, (Y - mean) / std
    Xt, Yt = torch.from_numpy(X), torch.from_numpy(Y)
    mean, std = torch.mean(Xt, dim=0), torch.std(Xt, dim=0)
    return ((Xt - mean) / std).numpy(), ((Yt - mean) / std).numpy()


def c2st(
    X,
    Y,
    seed: int = 1,
    n_folds: int = 5,
    scoring: str = "accuracy",
    z_score: bool = True,
    noise_scale=None,
    early_stopping: bool = False,
) -> float:
    """Mean cross-validated accuracy of a classifier telling X (reference) from Y.

    ``early_stopping=True`` is *not* sbibm's definition: the MLP then stops when the accuracy
    on a 10 % validation split of the training folds has not improved for 10 epochs, instead
    of running until its training loss stalls (up to 10,000 epochs; on near-identical 10-D
    samples it memorises them for thousands of epochs, an hour of CPU per observation).
    ``bench/sbi.py --c2st-early-stopping`` uses it for the 10-D tasks and says so."""
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.neural_network import MLPClassifier

    X = np.asarray(X, dtype=np.float32)
    Y = np.asarray(Y, dtype=np.float32)
    if X.ndim != 2 or Y.ndim != 2 or X.shape[1] != Y.shape[1]:
        raise ValueError(f"need two (n, d) samples of the same d, got {X.shape} and {Y.shape}")
    if z_score:
        X, Y = _z_score(X, Y)
    if noise_scale is not None:
        rng = np.random.default_rng(seed)
        X = X + noise_scale * rng.standard_normal(X.shape).astype(np.float32)
        Y = Y + noise_scale * rng.standard_normal(Y.shape).astype(np.float32)

    ndim = X.shape[1]
    clf = MLPClassifier(
        activation="relu",
        hidden_layer_sizes=(10 * ndim, 10 * ndim),
        max_iter=10000,
        solver="adam",
        random_state=seed,
        early_stopping=early_stopping,
    )
    data = np.concatenate([X, Y])
    target = np.concatenate([np.zeros(X.shape[0]), np.ones(Y.shape[0])])
    folds = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    scores = cross_val_score(clf, data, target, cv=folds, scoring=scoring)
    return float(np.float32(np.mean(scores)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="C2ST accuracy of two .npy samples")
    parser.add_argument("reference")
    parser.add_argument("samples")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    print(c2st(np.load(args.reference), np.load(args.samples), seed=args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
