"""Unweighting: max-weight conventions, efficiencies and accept/reject.

Conventions for the maximum weight ``w_max`` of a weighted sample (weights ``w >= 0``):

- ``"true"``: the largest weight;
- ``"xs"`` (default): the smallest ``w_max`` such that the over-weights carry at most a
  fraction ``overweight_xs`` (default 0.1 %) of the cross section,
  ``sum(max(0, w - w_max)) <= overweight_xs * sum(w)`` (MadGraph's convention).

The unweighting efficiency is ``<w> / w_max``: accepted events per generated point.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from physgen.errors import ConfigError, DataFormatError

__all__ = ["UnweightingStats", "max_weight", "unweight", "unweighting_stats"]


def max_weight(weights: Tensor, overweight_xs: float = 1e-3) -> float:
    """Smallest ``w_max`` whose over-weight excess is ``<= overweight_xs`` of ``sum(w)``.

    Args:
        weights: Non-negative weights, shape ``(n,)``.
        overweight_xs: Allowed cross-section fraction in over-weights (0 = true maximum).

    Returns:
        The maximum weight (float64 arithmetic).
    """
    w = weights.to(torch.float64).abs()
    if w.numel() == 0:
        raise DataFormatError("max_weight: empty weight array")
    if not 0.0 <= overweight_xs < 1.0:
        raise ConfigError(f"overweight_xs must be in [0, 1), got {overweight_xs}")
    srt = torch.sort(w, descending=True).values
    if overweight_xs == 0.0:
        return float(srt[0])
    allowed = overweight_xs * float(srt.sum())
    top = torch.cumsum(srt, 0)  # sum of the k+1 largest
    k = torch.arange(1, srt.numel() + 1, dtype=torch.float64)
    # excess when the threshold sits at srt[k]: sum of the k larger ones minus k * srt[k]
    excess = torch.cat([torch.zeros(1, dtype=torch.float64), top[:-1] - k[:-1] * srt[1:]])
    over = torch.nonzero(excess > allowed)
    if over.numel() == 0:
        return float(srt[-1])
    j = int(over[0, 0])  # threshold lies between srt[j] and srt[j-1]; j >= 1
    # on that segment excess(t) = top[j-1] - j * t
    t = (float(top[j - 1]) - allowed) / j
    return max(t, float(srt[j]))


@dataclass
class UnweightingStats:
    """Unweighting figures of a weighted sample.

    Attributes:
        efficiency: ``<w>/w_max`` with the cross-section convention.
        efficiency_true_max: ``<w>/max(w)``.
        w_max: Maximum weight of the convention.
        overweight_events: Fraction of events with ``w > w_max``.
        overweight_xs: Fraction of the cross section above ``w_max``.
    """

    efficiency: float
    efficiency_true_max: float
    w_max: float
    overweight_events: float
    overweight_xs: float


def unweighting_stats(weights: Tensor, overweight_xs: float = 1e-3) -> UnweightingStats:
    """Efficiencies with the cross-section and true-maximum conventions (``|w|`` is used)."""
    w = weights.to(torch.float64).abs()
    mean = float(w.mean())
    wmax = max_weight(w, overweight_xs)
    true_max = float(w.max())
    excess = float((w - wmax).clamp(min=0).sum())
    return UnweightingStats(
        efficiency=mean / wmax if wmax > 0 else 0.0,
        efficiency_true_max=mean / true_max if true_max > 0 else 0.0,
        w_max=wmax,
        overweight_events=float((w > wmax).double().mean()),
        overweight_xs=excess / float(w.sum()) if mean > 0 else 0.0,
    )


def unweight(weights: Tensor, w_max: float, generator: torch.Generator) -> Tensor:
    """Accept/reject: keep point ``i`` with probability ``min(1, |w_i| / w_max)``.

    Over-weights are truncated to ``w_max`` (their excess is the bias set by the convention).

    Returns:
        Boolean mask of accepted points, shape ``(n,)``.
    """
    if not w_max > 0:
        raise ConfigError(f"unweight: w_max must be > 0, got {w_max}")
    u = torch.rand(weights.shape[0], generator=generator, dtype=torch.float64)
    return u * w_max < weights.to(torch.float64).abs()
