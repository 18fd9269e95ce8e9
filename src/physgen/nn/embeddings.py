"""Embeddings of scalars (diffusion/flow time, scaled log energy) into feature vectors."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["GaussianFourierEmbedding", "SinusoidalEmbedding"]


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal embedding of a scalar.

    ``[sin(s w_k), cos(s w_k)]`` with ``w_k = scale * max_period^(-k / (dim/2))``.

    Args:
        dim: Output size (even).
        scale: Multiplies the input first (1000 maps t in [0, 1] to the usual range).
        max_period: Longest period in units of the scaled input.
    """

    freqs: Tensor

    def __init__(self, dim: int, scale: float = 1000.0, max_period: float = 10000.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"embedding dim must be even and >= 2, got {dim}")
        half = dim // 2
        freqs = scale * torch.exp(-math.log(max_period) * torch.arange(half) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.dim = dim

    def forward(self, s: Tensor) -> Tensor:
        """``(N,)`` or ``(N, 1)`` -> ``(N, dim)``."""
        arg = s.reshape(-1, 1).float() * self.freqs
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


class GaussianFourierEmbedding(nn.Module):
    """Random Fourier features ``[sin(2 pi s B), cos(2 pi s B)]`` with fixed ``B ~ N(0, scale^2)``.

    The frequencies are a (saved) buffer drawn from a fixed seed, so two modules built with
    the same arguments are identical.

    Args:
        dim: Output size (even).
        scale: Standard deviation of the frequencies (30 as in CaloDREAM's time embedding).
        seed: Seed of the frequencies.
    """

    freqs: Tensor

    def __init__(self, dim: int, scale: float = 30.0, seed: int = 0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"embedding dim must be even and >= 2, got {dim}")
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", torch.randn(dim // 2, generator=g) * scale)
        self.dim = dim

    def forward(self, s: Tensor) -> Tensor:
        """``(N,)`` or ``(N, 1)`` -> ``(N, dim)``."""
        arg = 2 * math.pi * s.reshape(-1, 1).float() * self.freqs
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)
