"""Scoring of energy deposits into the voxels of a readout geometry.

Both engines (the cascade Monte Carlo and GFlash) produce energy deposits at
points ``(readout layer index, x, y)`` with x, y in mm relative to the incident
particle's axis. This module maps them onto the flat CaloChallenge voxel vector
(layer-major, then angular bin, then radial bin; for Cartesian layers row-major).
Deposits outside the outermost bin are dropped, as by Geant4 Par04's readout mesh.

The geometry is flattened into plain arrays (:class:`VoxelTable`) so that the same
lookup runs inside numba kernels (:func:`voxel_index`) and vectorised in numpy
(:func:`voxelise`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

from physgen.calo.geometry import Geometry

__all__ = [
    "VoxelTable",
    "accumulate_deposits",
    "voxel_index",
    "voxel_index_polar",
    "voxel_table",
    "voxelise",
]


class VoxelTable(NamedTuple):
    """A geometry as flat arrays, indexed by readout-layer index (0..n_layers-1).

    Attributes:
        kind: int64 ``(n_layers,)``: 0 polar, 1 Cartesian.
        offset: int64 ``(n_layers,)``: first flat voxel index of the layer.
        n_a: int64 ``(n_layers,)``: angular bins (polar) or rows n_y (Cartesian).
        n_b: int64 ``(n_layers,)``: radial bins (polar) or columns n_x (Cartesian).
        b_edges: float64: concatenated r edges (polar) or x edges (Cartesian), mm.
        b_start: int64 ``(n_layers,)``: start of the layer's edges in ``b_edges``.
        a_edges: float64: concatenated y edges (Cartesian layers; unused for polar), mm.
        a_start: int64 ``(n_layers,)``: start of the layer's edges in ``a_edges``.
        n_voxels: int64 scalar array, total voxel count.
    """

    kind: npt.NDArray[np.int64]
    offset: npt.NDArray[np.int64]
    n_a: npt.NDArray[np.int64]
    n_b: npt.NDArray[np.int64]
    b_edges: npt.NDArray[np.float64]
    b_start: npt.NDArray[np.int64]
    a_edges: npt.NDArray[np.float64]
    a_start: npt.NDArray[np.int64]
    n_voxels: int


def voxel_table(geometry: Geometry) -> VoxelTable:
    """Flatten a geometry's relevant layers into a :class:`VoxelTable`."""
    kind, offset, n_a, n_b, b_start, a_start = [], [], [], [], [], []
    b_edges: list[float] = []
    a_edges: list[float] = []
    off = 0
    for layer in geometry.relevant_layers:
        offset.append(off)
        off += layer.n_voxels
        b_start.append(len(b_edges))
        a_start.append(len(a_edges))
        if layer.kind == "cartesian":
            kind.append(1)
            n_a.append(layer.n_y)
            n_b.append(layer.n_x)
            b_edges.extend(layer.x_edges)
            a_edges.extend(layer.y_edges)
        else:
            kind.append(0)
            n_a.append(layer.n_alpha)
            n_b.append(layer.n_radial)
            b_edges.extend(layer.r_edges)
    i64 = np.int64
    return VoxelTable(
        kind=np.array(kind, dtype=i64),
        offset=np.array(offset, dtype=i64),
        n_a=np.array(n_a, dtype=i64),
        n_b=np.array(n_b, dtype=i64),
        b_edges=np.array(b_edges, dtype=np.float64),
        b_start=np.array(b_start, dtype=i64),
        a_edges=np.array(a_edges if a_edges else [0.0], dtype=np.float64),
        a_start=np.array(a_start, dtype=i64),
        n_voxels=off,
    )


@njit(cache=True)
def _bin(edges: npt.NDArray[np.float64], start: int, n: int, v: float) -> int:
    """Index i with edges[start+i] <= v < edges[start+i+1], or -1."""
    if v < edges[start] or v >= edges[start + n]:
        return -1
    lo, hi = 0, n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if edges[start + mid] <= v:
            lo = mid
        else:
            hi = mid
    return lo


@njit(cache=True)
def voxel_index(
    layer: int,
    x: float,
    y: float,
    kind: npt.NDArray[np.int64],
    offset: npt.NDArray[np.int64],
    n_a: npt.NDArray[np.int64],
    n_b: npt.NDArray[np.int64],
    b_edges: npt.NDArray[np.float64],
    b_start: npt.NDArray[np.int64],
    a_edges: npt.NDArray[np.float64],
    a_start: npt.NDArray[np.int64],
) -> int:
    """Flat voxel index of a deposit at ``(x, y)`` mm in readout layer ``layer``, or -1.

    Compiled with numba (cached on disk), callable from Python and from kernels.
    """
    if layer < 0 or layer >= kind.shape[0]:
        return -1
    if kind[layer] == 0:
        r = math.hypot(x, y)
        ib = _bin(b_edges, b_start[layer], n_b[layer], r)
        if ib < 0:
            return -1
        na = n_a[layer]
        ia = int((math.atan2(y, x) + math.pi) / (2.0 * math.pi) * na)
        if ia >= na:
            ia = na - 1
        if ia < 0:
            ia = 0
        return int(offset[layer] + ia * n_b[layer] + ib)
    ib = _bin(b_edges, b_start[layer], n_b[layer], x)
    ia = _bin(a_edges, a_start[layer], n_a[layer], y)
    if ib < 0 or ia < 0:
        return -1
    return int(offset[layer] + ia * n_b[layer] + ib)


@njit(cache=True)
def voxel_index_polar(
    layer: int,
    r: float,
    phi: float,
    kind: npt.NDArray[np.int64],
    offset: npt.NDArray[np.int64],
    n_a: npt.NDArray[np.int64],
    n_b: npt.NDArray[np.int64],
    b_edges: npt.NDArray[np.float64],
    b_start: npt.NDArray[np.int64],
    a_edges: npt.NDArray[np.float64],
    a_start: npt.NDArray[np.int64],
) -> int:
    """:func:`voxel_index` of a deposit given as radius ``r`` (mm) and azimuth ``phi``.

    ``phi`` in ``[-pi, pi)`` (the ``atan2(y, x)`` convention). Polar layers use ``(r, phi)``
    directly, without the round trip through ``(x, y)``; Cartesian layers use
    ``(r cos phi, r sin phi)``.
    """
    if layer < 0 or layer >= kind.shape[0]:
        return -1
    if kind[layer] == 0:
        ib = _bin(b_edges, b_start[layer], n_b[layer], r)
        if ib < 0:
            return -1
        na = n_a[layer]
        ia = math.floor((phi + math.pi) / (2.0 * math.pi) * na)
        ia = min(max(ia, 0), na - 1)
        return int(offset[layer] + ia * n_b[layer] + ib)
    return voxel_index(
        layer,
        r * math.cos(phi),
        r * math.sin(phi),
        kind,
        offset,
        n_a,
        n_b,
        b_edges,
        b_start,
        a_edges,
        a_start,
    )


def voxelise(
    layer: npt.ArrayLike,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    energy: npt.ArrayLike,
    geometry: Geometry | VoxelTable,
) -> npt.NDArray[np.float64]:
    """Sum deposits into one flat shower vector (numpy, vectorised).

    Args:
        layer: Readout-layer index (0..n_layers-1, not the layer id) per deposit, ``(M,)``.
        x: Deposit x in mm, ``(M,)``.
        y: Deposit y in mm, ``(M,)``.
        energy: Deposit energy in MeV, ``(M,)``.
        geometry: The readout geometry or its :class:`VoxelTable`.

    Returns:
        ``(n_voxels,)`` float64 array of voxel energies in MeV; deposits outside the
        binning (or with a layer index of -1) are dropped.
    """
    table = geometry if isinstance(geometry, VoxelTable) else voxel_table(geometry)
    lay = np.asarray(layer, dtype=np.int64)
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64)
    es = np.asarray(energy, dtype=np.float64)
    out = np.zeros(table.n_voxels, dtype=np.float64)
    for li in range(table.kind.shape[0]):
        sel = lay == li
        if not np.any(sel):
            continue
        lx, ly, le = xs[sel], ys[sel], es[sel]
        nb, na = int(table.n_b[li]), int(table.n_a[li])
        bs = int(table.b_start[li])
        bedges = table.b_edges[bs : bs + nb + 1]
        if table.kind[li] == 0:
            r = np.hypot(lx, ly)
            ib = np.searchsorted(bedges, r, side="right") - 1
            ia = np.floor((np.arctan2(ly, lx) + np.pi) / (2 * np.pi) * na).astype(np.int64)
            ia = np.clip(ia, 0, na - 1)
            ok = (r >= bedges[0]) & (r < bedges[-1])
        else:
            as_ = int(table.a_start[li])
            aedges = table.a_edges[as_ : as_ + na + 1]
            ib = np.searchsorted(bedges, lx, side="right") - 1
            ia = np.searchsorted(aedges, ly, side="right") - 1
            ok = (lx >= bedges[0]) & (lx < bedges[-1]) & (ly >= aedges[0]) & (ly < aedges[-1])
        idx = table.offset[li] + ia[ok] * nb + ib[ok]
        np.add.at(out, idx, le[ok])
    return out


@njit(cache=True)
def accumulate_deposits(
    n: int,
    layer: npt.NDArray[np.int64],
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    energy: npt.NDArray[np.float64],
    out: npt.NDArray[np.float64],
    kind: npt.NDArray[np.int64],
    offset: npt.NDArray[np.int64],
    n_a: npt.NDArray[np.int64],
    n_b: npt.NDArray[np.int64],
    b_edges: npt.NDArray[np.float64],
    b_start: npt.NDArray[np.int64],
    a_edges: npt.NDArray[np.float64],
    a_start: npt.NDArray[np.int64],
) -> None:
    """Add the first ``n`` deposits into ``out`` (compiled; deposits outside the binning are dropped)."""
    for i in range(n):
        j = voxel_index(
            layer[i], x[i], y[i], kind, offset, n_a, n_b, b_edges, b_start, a_edges, a_start
        )
        if j >= 0:
            out[j] += energy[i]
