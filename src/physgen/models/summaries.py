"""Batch summaries shared by the adversarial and variational families.

:func:`physics_summaries` (per-layer and total sums of a shower) exists for calorimeter codecs
only (:func:`has_physics`); :func:`sample_moments` and :func:`collapse_monitors` work on any
codec and add the shower features where there are some.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["collapse_monitors", "has_physics", "physics_summaries", "sample_moments"]

_LOG_FLOOR = 1e-6


def has_physics(codec: Any) -> bool:
    """Whether the codec describes calorimeter showers (readout layers of voxels)."""
    return hasattr(codec, "layer_index") and hasattr(codec, "shape_transform")


def physics_summaries(codec: Any, shape: Tensor) -> Tensor:
    """Differentiable per-layer and total sums of the shape variables, in physical units.

    The shape variables are mapped back through the codec's (differentiable) shape transform
    and summed per readout layer. In ``incident`` mode the sums are the layer energies and the
    total energy in units of ``k E_inc``; in ``layers`` mode they are the per-layer
    normalisations (1 for real showers).

    Args:
        codec: The model's :class:`~physgen.calo.codec.ShowerCodec`.
        shape: Encoded shape variables ``(N, V)``.

    Returns:
        ``(N, L + 1)``: ``log(sum_l + 1e-6)`` for every layer, then ``log(total + 1e-6)``.
    """
    raw = codec.shape_transform.inverse(shape).clamp_min(0.0)
    sums = torch.zeros(shape.shape[0], codec.n_layers, dtype=raw.dtype, device=raw.device)
    sums = sums.index_add(1, codec.layer_index, raw)
    total = sums.sum(1, keepdim=True)
    return torch.log(torch.cat([sums, total], 1) + _LOG_FLOOR)


def sample_moments(codec: Any, x: Tensor, condition: Tensor) -> Tensor:
    """Summary statistics of a batch of encoded samples, for moment matching.

    For the features ``f = [x (all encoded variables), physics_summaries (showers only)]``
    returns, per feature, the mean, the standard deviation and the covariance with each of the
    K condition columns.

    Args:
        codec: The model's codec.
        x: ``(N, D)`` encoded ``[first, second]`` variables.
        condition: ``(N, K)`` encoded conditions.

    Returns:
        ``(2 + K, F)``.
    """
    feats = x
    if has_physics(codec):
        feats = torch.cat([x, physics_summaries(codec, x[:, codec.first_dim :])], 1)
    c = condition - condition.mean(0)
    centred = feats - feats.mean(0)
    cov = (centred[:, None, :] * c[:, :, None]).mean(0)  # (K, F)
    return torch.cat([feats.mean(0)[None], feats.std(0)[None], cov], 0)


@torch.no_grad()
def collapse_monitors(
    model: Any, batch: Any, generator: torch.Generator | None, n: int = 64
) -> dict[str, float]:
    """Sample-diversity numbers of any generator (ratios near 1 are healthy).

    * ``diversity_ratio``: mean per-variable standard deviation of ``n`` samples at the
      batch's median condition (the row nearest to the per-column median), divided by that of
      the ``n`` real rows whose conditions are closest to it (all encoded variables).
    * showers only: ``etot_width_gen`` / ``etot_width_real`` / ``etot_width_ratio``: standard
      deviation of ``E_tot / E_inc`` of one sample per batch condition vs the real batch.

    Args:
        model: The generator (a :class:`~physgen.core.generator.ConditionalGenerator`).
        batch: A real :class:`~physgen.core.batch.Encoded` batch (N rows).
        generator: Noise source.
        n: Samples at the median condition.
    """
    codec = model.codec
    c = batch.condition
    real = batch.shape if batch.energy is None else torch.cat([batch.energy, batch.shape], 1)
    k = min(n, c.shape[0])
    if c.shape[1]:
        med = c.median(0).values
        dist = ((c - med) ** 2).sum(1)
        near = dist.argsort()[:k]
        centre = c[near[:1]]
    else:
        near = torch.arange(k, device=c.device)
        centre = c[:1]
    energy, shape = model.sample_encoded(centre.expand(n, c.shape[1]), generator)
    fake = shape if energy is None else torch.cat([energy, shape], 1)
    std_real = real[near].std(0).mean()
    ratio = fake.std(0).mean() / std_real.clamp_min(1e-12)
    out = {"diversity_ratio": float(ratio)}
    if not has_physics(codec):
        return out
    e_inc = torch.exp(c.double() * (codec.log_e_max - codec.log_e_min) + codec.log_e_min)
    g_energy, g_shape = model.sample_encoded(c, generator)
    gen_r = codec.decode(g_energy, g_shape, e_inc).double().sum(1) / e_inc[:, 0]
    real_r = codec.decode(batch.energy, batch.shape, e_inc).double().sum(1) / e_inc[:, 0]
    w_gen, w_real = float(gen_r.std()), float(real_r.std())
    return {
        **out,
        "etot_width_gen": w_gen,
        "etot_width_real": w_real,
        "etot_width_ratio": w_gen / max(w_real, 1e-12),
    }
