"""e+e- event shapes, differentiable in the momenta (PyTorch), for moved events.

Each observable is split into a *decision* (an argmax or a clustering sequence, found in
numba on the detached momenta and held fixed) and a *formula* of the momenta given that
decision, written in torch so gradients flow to the momenta (and through a moved sample
to the simulator's parameters). Where the decision is a maximum over a discrete set, the
gradient of the formula at fixed decision is the gradient of the observable (envelope
theorem); elsewhere it is the derivative away from the measure-zero switching points.

- ``tau``: 1 - T, thrust T = max_n sum |p.n| / sum |p| (exact: the axis is the total
  momentum of the best partition found by the O(n^3) pair-plane enumeration).
- ``rho``: heavy-jet mass, max(M_+^2, M_-^2) / E_vis^2 in the thrust hemispheres.
- ``c``: C-parameter, 3 (l1 l2 + l2 l3 + l3 l1) of the linearised momentum tensor
  Theta^ab = sum p^a p^b / |p| / sum |p|, i.e. (3/2)(1 - tr Theta^2).
- ``y23``: Durham (k_T) jet resolution where three jets become two, E-scheme recombination,
  y_ij = 2 min(E_i^2, E_j^2)(1 - cos theta_ij) / E_vis^2 (Catani et al., PLB 269 (1991) 432);
  0 for two-parton events.
- ``multiplicity``: number of partons (not differentiable: zero gradient; use a score-function
  estimator for it).

Example:
    >>> import torch
    >>> p = torch.tensor([[[45.6, 0, 0, 45.6], [45.6, 0, 0, -45.6]]], dtype=torch.float64)
    >>> shapes = event_shapes(p, torch.ones(1, 2, dtype=torch.bool), ("tau", "c"))
    >>> float(shapes["tau"][0]), float(shapes["c"][0])
    (0.0, 0.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch
from numba import njit
from torch import Tensor

from physgen.errors import ConfigError, DataFormatError

__all__ = ["OBSERVABLES", "event_shapes"]

#: Observable names -> one-line descriptions.
OBSERVABLES = {
    "tau": "1 - thrust",
    "rho": "heavy-jet mass M_H^2 / E_vis^2",
    "c": "C-parameter",
    "y23": "Durham y23",
    "multiplicity": "number of partons",
}


@njit(cache=True)
def _thrust_axes(
    p: np.ndarray, n: np.ndarray, axes: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Exact thrust axis of every event: ``p`` (N, P, 3), ``n`` (N,), writes ``axes`` (N, 3)."""
    for e in range(p.shape[0]):
        m = n[e]
        best = -1.0
        bx, by, bz = 0.0, 0.0, 1.0
        for i in range(m):
            for j in range(i + 1, m):
                cx = p[e, i, 1] * p[e, j, 2] - p[e, i, 2] * p[e, j, 1]
                cy = p[e, i, 2] * p[e, j, 0] - p[e, i, 0] * p[e, j, 2]
                cz = p[e, i, 0] * p[e, j, 1] - p[e, i, 1] * p[e, j, 0]
                sx, sy, sz = 0.0, 0.0, 0.0
                for k in range(m):
                    if (
                        k != i
                        and k != j
                        and p[e, k, 0] * cx + p[e, k, 1] * cy + p[e, k, 2] * cz > 0
                    ):
                        sx += p[e, k, 0]
                        sy += p[e, k, 1]
                        sz += p[e, k, 2]
                for ci in range(2):
                    for cj in range(2):
                        tx, ty, tz = sx, sy, sz
                        if ci == 1:
                            tx, ty, tz = tx + p[e, i, 0], ty + p[e, i, 1], tz + p[e, i, 2]
                        if cj == 1:
                            tx, ty, tz = tx + p[e, j, 0], ty + p[e, j, 1], tz + p[e, j, 2]
                        t2 = tx * tx + ty * ty + tz * tz
                        if t2 > best:
                            best, bx, by, bz = t2, tx, ty, tz
        nrm = np.sqrt(best) if best > 0 else 1.0
        if best <= 0:
            bx, by, bz = 0.0, 0.0, 1.0
        axes[e, 0], axes[e, 1], axes[e, 2] = bx / nrm, by / nrm, bz / nrm


@njit(cache=True)
def _durham(
    p: np.ndarray, n: np.ndarray, labels: np.ndarray, pair: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Durham clustering down to two jets.

    ``p`` (N, P, 4); writes ``labels`` (N, P): the jet (0, 1, 2) of each parton at the
    three-jet stage, and ``pair`` (N, 2): the two of them merged next (-1 for < 3 partons).
    """
    for e in range(p.shape[0]):
        m = n[e]
        pair[e, 0], pair[e, 1] = -1, -1
        if m < 3:
            for k in range(m):
                labels[e, k] = 0
            continue
        evis = 0.0
        for k in range(m):
            evis += p[e, k, 0]
        jets = p[e, :m, :].copy()
        alive = np.ones(m, dtype=np.bool_)
        owner = np.arange(m)
        n_jets = m
        while True:
            best, bi, bj = 1e300, -1, -1
            for i in range(m):
                if not alive[i]:
                    continue
                ni = np.sqrt(jets[i, 1] ** 2 + jets[i, 2] ** 2 + jets[i, 3] ** 2)
                for j in range(i + 1, m):
                    if not alive[j]:
                        continue
                    nj = np.sqrt(jets[j, 1] ** 2 + jets[j, 2] ** 2 + jets[j, 3] ** 2)
                    cos = (
                        jets[i, 1] * jets[j, 1] + jets[i, 2] * jets[j, 2] + jets[i, 3] * jets[j, 3]
                    ) / max(ni * nj, 1e-300)
                    y = 2.0 * min(jets[i, 0] ** 2, jets[j, 0] ** 2) * (1.0 - cos) / evis**2
                    if y < best:
                        best, bi, bj = y, i, j
            if n_jets == 3:
                # label partons by the surviving jet they belong to, in order of jet index
                lab = np.full(m, -1)
                c = 0
                for i in range(m):
                    if alive[i]:
                        lab[i] = c
                        c += 1
                for k in range(m):
                    labels[e, k] = lab[owner[k]]
                pair[e, 0], pair[e, 1] = lab[bi], lab[bj]
                break
            jets[bi, :] += jets[bj, :]
            alive[bj] = False
            for k in range(m):
                if owner[k] == bj:
                    owner[k] = bi
            n_jets -= 1


def _check(momenta: Tensor, mask: Tensor, names: Sequence[str]) -> None:
    unknown = [x for x in names if x not in OBSERVABLES]
    if unknown:
        raise ConfigError(
            f"unknown observable(s) {', '.join(unknown)}; choose from {', '.join(OBSERVABLES)}"
        )
    if momenta.ndim != 3 or momenta.shape[-1] != 4 or mask.shape != momenta.shape[:2]:
        raise DataFormatError(
            f"momenta must be (N, P, 4) with a (N, P) mask, got {tuple(momenta.shape)} and "
            f"{tuple(mask.shape)}"
        )
    counts = mask.sum(dim=1)
    if bool((counts < 2).any()):
        i = int(torch.nonzero(counts < 2)[0, 0])
        raise DataFormatError(
            f"event {i} has {int(counts[i])} particle(s): event shapes need at least two"
        )
    evis = (momenta[..., 0] * mask).sum(dim=1)
    if not bool(torch.isfinite(momenta).all()) or bool((evis <= 0).any()):
        raise DataFormatError("event shapes need finite momenta and positive visible energy")


def event_shapes(
    momenta: Tensor, mask: Tensor, names: Sequence[str] = ("tau", "rho", "c", "y23")
) -> dict[str, Tensor]:
    """Event shapes of massless partons, differentiable in ``momenta``.

    Args:
        momenta: ``(N, P, 4)`` (E, px, py, pz) in GeV, any float dtype, padded rows ignored.
        mask: ``(N, P)`` bool, True on real particles (at least two per event).
        names: Observables to compute (keys of :data:`OBSERVABLES`).

    Returns:
        ``{name: (N,) tensor}``, with gradients to ``momenta`` (none for multiplicity).

    Raises:
        ConfigError: An unknown observable.
        DataFormatError: Wrong shapes, an event with fewer than two particles, non-finite
            momenta or no visible energy (the shapes are not defined).
    """
    _check(momenta, mask, names)
    w = mask.to(momenta.dtype)
    p3 = momenta[..., 1:] * w[..., None]
    pabs = torch.sqrt((p3 * p3).sum(-1) + torch.finfo(momenta.dtype).tiny) * w
    sum_abs = pabs.sum(1)
    evis = (momenta[..., 0] * w).sum(1)
    n = mask.sum(1).cpu().numpy().astype(np.int64)
    out: dict[str, Tensor] = {}
    if {"tau", "rho"} & set(names):
        p_np = np.ascontiguousarray(p3.detach().cpu().double().numpy())
        axes_np = np.zeros((p_np.shape[0], 3))
        _thrust_axes(p_np, n, axes_np)
        axes = torch.as_tensor(axes_np, dtype=momenta.dtype, device=momenta.device)
        proj = (p3 * axes[:, None, :]).sum(-1)
        if "tau" in names:
            out["tau"] = 1.0 - proj.abs().sum(1) / sum_abs
        if "rho" in names:
            hemi = (proj > 0).to(momenta.dtype) * w
            m2 = []
            for h in (hemi, w - hemi):
                ph = (momenta * h[..., None]).sum(1)
                m2.append(ph[:, 0] ** 2 - (ph[:, 1:] ** 2).sum(-1))
            out["rho"] = torch.maximum(m2[0], m2[1]) / evis**2
    if "c" in names:
        theta = torch.einsum("npa,npb->nab", p3 / pabs.clamp_min(1e-300)[..., None], p3)
        theta = theta / sum_abs[:, None, None]
        out["c"] = 1.5 * (1.0 - (theta * theta).sum((1, 2)))
    if "y23" in names:
        out["y23"] = _y23(momenta, w, n, evis)
    if "multiplicity" in names:
        out["multiplicity"] = mask.sum(1).to(momenta.dtype)
    return {k: out[k] for k in names}


def _y23(momenta: Tensor, w: Tensor, n: npt.NDArray[np.int64], evis: Tensor) -> Tensor:
    p_np = np.ascontiguousarray(momenta.detach().cpu().double().numpy())
    labels = np.zeros(p_np.shape[:2], dtype=np.int64)
    pair = np.zeros((p_np.shape[0], 2), dtype=np.int64)
    _durham(p_np, n, labels, pair)
    lab = torch.as_tensor(labels, device=momenta.device)
    jets = torch.stack(
        [(momenta * ((lab == j).to(momenta.dtype) * w)[..., None]).sum(1) for j in range(3)], 1
    )
    has = torch.as_tensor(pair[:, 0] >= 0, device=momenta.device)
    idx = torch.as_tensor(np.maximum(pair, 0), device=momenta.device)
    rows = torch.arange(momenta.shape[0], device=momenta.device)
    a, b = jets[rows, idx[:, 0]], jets[rows, idx[:, 1]]
    na = torch.sqrt((a[:, 1:] ** 2).sum(-1).clamp_min(1e-300))
    nb = torch.sqrt((b[:, 1:] ** 2).sum(-1).clamp_min(1e-300))
    cos = (a[:, 1:] * b[:, 1:]).sum(-1) / (na * nb)
    y = 2.0 * torch.minimum(a[:, 0] ** 2, b[:, 0] ** 2) * (1.0 - cos) / evis**2
    return torch.where(has, y, torch.zeros_like(y))
