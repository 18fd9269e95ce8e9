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


def toy_showers(
    n: int,
    geometry: str,
    seed: int = 0,
    *,
    scale: float = 1.0,
    radial_scale: float = 1.0,
    drop_layer: int | None = None,
    discrete: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A smooth, fluctuating toy shower model on a CaloChallenge geometry (fast, vectorised).

    Longitudinal gamma profile whose maximum grows with log E, a 2-D exponential
    radial profile, log-normal voxel noise. ``scale`` multiplies every voxel,
    ``radial_scale`` stretches the radial profile, ``drop_layer`` zeroes a layer
    (index into the relevant layers).
    """
    from physgen.calo.geometry import get_geometry

    geo = get_geometry(geometry)
    r = np.random.default_rng(seed)
    if discrete is None:
        discrete = geo.name.startswith("1-")
    if discrete:
        e = 2.0 ** r.integers(8, 23, size=n).astype(float)
    else:
        e = 10 ** r.uniform(3, 6, size=n)
    layers = geo.relevant_layers
    nl = len(layers)
    t = np.arange(nl) + 0.5
    tmax = (0.35 * np.log(e / 10.0))[:, None] * nl / 6.0 * r.lognormal(0, 0.1, (n, 1))
    a = 3.0
    prof = (t[None, :] / np.maximum(tmax, 0.3)) ** (a - 1) * np.exp(
        -(a - 1) * t[None, :] / np.maximum(tmax, 0.3)
    )
    prof *= r.lognormal(0, 0.2, prof.shape)
    prof /= prof.sum(axis=1, keepdims=True)
    visible = r.normal(0.9, 0.02, (n, 1))
    out = np.zeros((n, geo.n_voxels))
    for li, layer in enumerate(layers):
        sl = geo.layer_slice(layer.id)
        if layer.kind == "cartesian":
            edges = np.asarray(layer.x_edges)
            rr = np.hypot(
                *np.meshgrid(
                    0.5 * (edges[1:] + edges[:-1]),
                    0.5 * (np.asarray(layer.y_edges)[1:] + np.asarray(layer.y_edges)[:-1]),
                )
            )
            w = np.exp(-rr.ravel() / (20.0 * radial_scale))
            frac = np.tile(w / w.sum(), (n, 1))
        else:
            redges = np.asarray(layer.r_edges)
            big = redges[-1]
            rm = big / 6.0 * radial_scale * (1 + 0.1 * li / max(nl, 1))
            cdf = 1 - np.exp(-redges / rm) * (1 + redges / rm)
            ring = np.diff(cdf)
            frac = np.tile(
                np.repeat(ring[None, :], layer.n_alpha, axis=0).ravel() / layer.n_alpha, (n, 1)
            )
        vox = (e[:, None] * visible * prof[:, li : li + 1]) * frac
        vox *= r.lognormal(0, 0.3, vox.shape)
        out[:, sl] = vox
        if drop_layer == li:
            out[:, sl] = 0.0
    out *= scale
    return e[:, None], out.astype(np.float32)


def toy_generator(n: int, energies: np.ndarray) -> np.ndarray:
    """A generator callable ``(n, energies (n, 1) MeV) -> showers`` for timing tests (geometry 2)."""
    _, x = toy_showers(n, "2", seed=int(energies.sum()) % 1000)
    return x
