"""Spots to voxels for :class:`physgen.diffsim.calorimeter.DiffGFlash`: radii and (soft) binning.

* :func:`mixture_radius`: the radius of a spot from one uniform by the inverse CDF of the
  GFlash core + tail radial profile ``F(s) = p s/(s + R_C^2) + (1 - p) s/(s + R_T^2)``
  (``s = r^2``, radii in Moliere radii): ``F(s) = u`` is the quadratic
  ``(1 - u) s^2 + b s - u R_C^2 R_T^2 = 0`` with ``b = p R_T^2 + (1 - p) R_C^2 - u (R_C^2 + R_T^2)``,
  solved in the cancellation-free form for either sign of ``b``. Continuous in ``p``,
  ``R_C`` and ``R_T``, unlike choosing the component with a second uniform (the engine's
  way, same distribution).
* :func:`score_spots`: spots ``(shower, layer, r, phi, energy)`` into polar voxels of a
  regular geometry (flat order layer, angular bin, radial bin). ``"hard"``: the indicator
  of each bin, exactly :func:`~physgen.calo.simulate.voxelise.voxel_index_polar`
  (differentiable through the energies only). ``"soft"``: a spot at radius ``r`` puts the
  weight ``sigma((r - e_k)/s_r) - sigma((r - e_{k+1})/s_r)`` into radial bin ``k``
  (logistic ``sigma``, ``s_r`` = temperature x the smallest radial bin width; an inner edge
  at 0 counts as passed) and ``sigma((d + w/2)/s_a) - sigma((d - w/2)/s_a)``, normalised
  over the bins, into the angular bin whose centre is at periodic distance ``d``
  (``w = 2 pi / n_alpha``, ``s_a`` = temperature x w). Weights sum to one except for the
  logistic tail beyond the last radial edge, which is returned as the energy outside.
  As the temperature goes to 0 the soft weights become the hard indicators.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

__all__ = ["mixture_radius", "score_spots"]


def mixture_radius(r_c: Tensor, r_t: Tensor, p: Tensor, u: Tensor) -> Tensor:
    """Inverse CDF of ``p s/(s + r_c^2) + (1-p) s/(s + r_t^2)`` at ``u`` in (0, 1), as ``sqrt(s)``."""
    c, d = r_c**2, r_t**2
    b = p * d + (1.0 - p) * c - u * (c + d)
    cd = 4.0 * (1.0 - u) * u * c * d
    disc = torch.sqrt(b**2 + cd)
    pos = b >= 0
    den = torch.where(pos, b + disc, torch.ones_like(b))
    s = torch.where(pos, 0.5 * cd / ((1.0 - u) * den), (disc - b) / (2.0 * (1.0 - u)))
    return torch.sqrt(s)


def score_spots(
    shower: Tensor,
    layer: Tensor,
    r: Tensor,
    phi: Tensor,
    energy: Tensor,
    n_showers: int,
    n_layers: int,
    r_edges: Tensor,
    n_alpha: int,
    binning: Literal["hard", "soft"] = "hard",
    temperature: float = 0.1,
    chunk: int = 50_000,
) -> tuple[Tensor, Tensor]:
    """Score spots into voxels.

    Args:
        shower: ``(M,)`` int64 shower index of each spot (0 .. n_showers-1).
        layer: ``(M,)`` int64 readout layer.
        r: ``(M,)`` radius, mm.
        phi: ``(M,)`` azimuth in [-pi, pi).
        energy: ``(M,)`` energy, MeV.
        n_showers: Number of showers.
        n_layers: Number of readout layers.
        r_edges: ``(n_radial + 1,)`` radial edges of every layer, mm.
        n_alpha: Angular bins over [-pi, pi).
        binning: ``"hard"`` or ``"soft"``.
        temperature: Soft scale in units of the bin widths.
        chunk: Spots weighted at once (soft; memory only).

    Returns:
        ``(n_showers, n_layers * n_alpha * n_radial)`` voxel energies and ``(n_showers,)``
        energy outside the radial binning, both in the units of ``energy``.
    """
    edges, n_a = r_edges, n_alpha
    n_b = edges.numel() - 1
    per_layer = n_a * n_b
    dtype, device = energy.dtype, energy.device
    out = torch.zeros(n_showers, dtype=dtype, device=device)
    if binning == "hard":
        ib = torch.bucketize(r.detach(), edges, right=True) - 1
        ok = (r >= edges[0]) & (r < edges[-1])
        ia = torch.floor((phi.detach() + math.pi) / (2 * math.pi) * n_a).long().clamp(0, n_a - 1)
        idx = (shower * n_layers + layer) * per_layer + ia * n_b + ib
        vox = torch.zeros(n_showers * n_layers * per_layer, dtype=dtype, device=device)
        vox = vox.index_add(0, idx[ok], energy[ok])
        out = out.index_add(0, shower[~ok], energy[~ok])
        return vox.reshape(n_showers, -1), out
    s_r = temperature * float((edges[1:] - edges[:-1]).min())
    width_a = 2.0 * math.pi / n_a
    s_a = temperature * width_a
    centres = -math.pi + width_a * (torch.arange(n_a, dtype=dtype, device=device) + 0.5)
    vox = torch.zeros(n_showers * n_layers, per_layer, dtype=dtype, device=device)
    for c0 in range(0, r.numel(), chunk):
        sl = slice(c0, c0 + chunk)
        above = torch.sigmoid((r[sl, None] - edges[None, :]) / s_r)  # P(r >= edge)
        if float(edges[0]) == 0.0:
            above = torch.cat([torch.ones_like(above[:, :1]), above[:, 1:]], 1)
        w_r = above[:, :-1] - above[:, 1:]
        delta = torch.remainder(phi[sl, None] - centres[None, :] + math.pi, 2 * math.pi) - math.pi
        w_a = torch.sigmoid((delta + width_a / 2) / s_a) - torch.sigmoid(
            (delta - width_a / 2) / s_a
        )
        w_a = w_a / w_a.sum(1, keepdim=True)
        en = energy[sl]
        contrib = (en[:, None, None] * w_a[:, :, None] * w_r[:, None, :]).reshape(-1, per_layer)
        vox = vox.index_add(0, shower[sl] * n_layers + layer[sl], contrib)
        out = out.index_add(0, shower[sl], en * above[:, -1])
    return vox.reshape(n_showers, -1), out
