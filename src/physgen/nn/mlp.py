"""Residual MLP with normalisation and FiLM conditioning."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["ResidualMLP"]


class _Block(nn.Module):
    def __init__(self, hidden: int, cond_dim: int, dropout: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.film = nn.Linear(cond_dim, 2 * hidden) if cond_dim else None
        self.fc1 = nn.Linear(hidden, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.act = nn.SiLU()
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor, c: Tensor | None) -> Tensor:
        z = self.norm(h)
        if self.film is not None and c is not None:
            scale, shift = self.film(c).chunk(2, dim=1)
            z = z * (1 + scale) + shift
        z = self.fc2(self.drop(self.act(self.fc1(z))))
        out: Tensor = h + z
        return out


class ResidualMLP(nn.Module):
    """``x (N, in) [, c (N, cond)] -> (N, out)``: input projection, residual blocks
    (LayerNorm -> FiLM(c) -> Linear -> SiLU -> Linear, added back), output projection.

    Args:
        in_features: Input size.
        out_features: Output size.
        cond_features: Condition size (0: unconditional). The condition also enters the
            input projection.
        hidden: Width of the residual stream.
        blocks: Number of residual blocks.
        dropout: Dropout inside the blocks.
        zero_init: Initialise the output layer to zero (the network starts as the zero map,
            as usual for velocity/noise predictors).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        cond_features: int = 0,
        hidden: int = 256,
        blocks: int = 3,
        dropout: float = 0.0,
        zero_init: bool = False,
    ) -> None:
        super().__init__()
        self.cond_features = cond_features
        self.inp = nn.Linear(in_features + cond_features, hidden)
        self.blocks = nn.ModuleList(_Block(hidden, cond_features, dropout) for _ in range(blocks))
        self.norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, out_features)
        if zero_init:
            nn.init.zeros_(self.out.weight)
            nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor, c: Tensor | None = None) -> Tensor:
        if self.cond_features:
            if c is None:
                raise ValueError("this ResidualMLP needs a condition")
            h = self.inp(_cat(x, c))
        else:
            h = self.inp(x)
        for block in self.blocks:
            h = block(h, c)
        y: Tensor = self.out(nn.functional.silu(self.norm(h)))
        return y


def _cat(x: Tensor, c: Tensor) -> Tensor:
    """Concatenate along features, broadcasting a ``(1, C)`` condition over the batch."""
    if c.shape[0] != x.shape[0]:
        c = c.expand(x.shape[0], -1)
    return torch.cat([x, c], dim=1)
