"""A geometry-aware transformer: one token per readout layer, adaLN conditioning."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["LayerTransformer"]


class _AdaLNBlock(nn.Module):
    """Pre-norm transformer block whose norms are modulated by the condition (adaLN-Zero)."""

    def __init__(self, d_model: int, heads: int, cond_dim: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.attn = nn.MultiheadAttention(d_model, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        hidden = int(d_model * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model))
        self.modulation = nn.Linear(cond_dim, 6 * d_model)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        s1, b1, g1, s2, b2, g2 = self.modulation(c).unsqueeze(1).chunk(6, dim=2)
        z = self.norm1(h) * (1 + s1) + b1
        h = h + g1 * self.attn(z, z, z, need_weights=False)[0]
        z = self.norm2(h) * (1 + s2) + b2
        out: Tensor = h + g2 * self.mlp(z)
        return out


class LayerTransformer(nn.Module):
    """``x (N, V) [flat voxels], c (N, C) -> (N, V)`` with one token per readout layer.

    Each layer's voxels are embedded by their own linear map into ``d_model`` (layers may
    differ in size, as in dataset 1), a learned layer-position embedding is added, ``depth``
    adaLN-Zero blocks mix the layers (the condition vector drives shift/scale/gate), and a
    per-layer linear head maps back to voxels. For geometries 2 and 3 (45 layers of 144 or
    900 voxels) this is 45 tokens, so attention cost is negligible.

    Args:
        layer_sizes: Voxels per layer, in flat order.
        cond_features: Condition size C.
        d_model: Token width.
        depth: Number of blocks.
        heads: Attention heads (must divide ``d_model``).
        mlp_ratio: Hidden width of the block MLPs relative to ``d_model``.
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        cond_features: int,
        d_model: int = 128,
        depth: int = 4,
        heads: int = 4,
        mlp_ratio: float = 2.0,
    ) -> None:
        super().__init__()
        self.layer_sizes = [int(s) for s in layer_sizes]
        self.embed = nn.ModuleList(nn.Linear(s, d_model) for s in self.layer_sizes)
        self.position = nn.Parameter(torch.randn(len(self.layer_sizes), d_model) * 0.02)
        self.cond = nn.Sequential(
            nn.Linear(cond_features, d_model), nn.SiLU(), nn.Linear(d_model, d_model)
        )
        self.blocks = nn.ModuleList(
            _AdaLNBlock(d_model, heads, d_model, mlp_ratio) for _ in range(depth)
        )
        self.final_norm = nn.LayerNorm(d_model, elementwise_affine=False, eps=1e-6)
        self.final_mod = nn.Linear(d_model, 2 * d_model)
        self.heads = nn.ModuleList(nn.Linear(d_model, s) for s in self.layer_sizes)
        for head in self.heads:
            assert isinstance(head, nn.Linear)
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        parts = torch.split(x, self.layer_sizes, dim=1)
        h = torch.stack([emb(p) for emb, p in zip(self.embed, parts)], dim=1) + self.position
        cond = self.cond(c)
        for block in self.blocks:
            h = block(h, cond)
        shift, scale = self.final_mod(nn.functional.silu(cond)).unsqueeze(1).chunk(2, dim=2)
        h = self.final_norm(h) * (1 + scale) + shift
        return torch.cat([head(h[:, i]) for i, head in enumerate(self.heads)], dim=1)
