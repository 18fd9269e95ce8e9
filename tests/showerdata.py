"""Synthetic shower arrays for tests."""

from __future__ import annotations

import numpy as np


def make_showers(
    n: int, n_voxels: int, seed: int = 0, dtype: type = np.float32
) -> tuple[np.ndarray, np.ndarray]:
    """Random sparse non-negative showers and log-uniform energies (MeV)."""
    r = np.random.default_rng(seed)
    e = 10 ** r.uniform(3, 6, size=(n, 1))
    x = r.exponential(1.0, size=(n, n_voxels)) * (r.random((n, n_voxels)) < 0.3)
    x *= e / np.maximum(x.sum(axis=1, keepdims=True), 1e-12)
    return e, x.astype(dtype)
