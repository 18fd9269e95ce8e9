"""3D ResNet-18 shower classifier for the regular geometries (datasets 2 and 3).

As described for the official ``cls-resnet`` mode (``calochallenge.md`` section 8):
the flat low-level input ``[log10 E_inc, voxel / E_inc]`` is split into the
energy and the voxel grid, reshaped to ``1 x n_layers x n_alpha x n_r``
(1 x 45 x 16 x 9 for dataset 2, 1 x 45 x 50 x 18 for dataset 3). The network:

* stem: 7x7x7 convolution with stride 2 (padding 3, no bias) to 32 channels,
  batch norm, ReLU, 3x3x3 max-pool with stride 2 (padding 1);
* four stages of two basic blocks (two 3x3x3 convolutions with batch norm,
  identity shortcut, or a 1x1x1 convolution + batch norm where the shape
  changes), widths 32 / 64 / 64 / 128, strides 1 / 2 / 2 / 2;
* global average pool; log10 E_inc through a one-feature BatchNorm is
  concatenated to the 128 pooled features before the final linear layer.

With one output this has 2,516,644 trainable parameters, the official count.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from physgen.calo.geometry import Geometry, get_geometry
from physgen.errors import ConfigError

__all__ = ["BasicBlock3D", "ResNet3DClassifier"]

#: Channel widths of the four stages and their strides.
WIDTHS = (32, 64, 64, 128)
STRIDES = (1, 2, 2, 2)
BLOCKS = (2, 2, 2, 2)


class BasicBlock3D(nn.Module):
    """Two 3x3x3 convolutions with batch norm and a residual connection."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv3d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm3d(out_ch)
        self.conv2 = nn.Conv3d(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm3d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv3d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm3d(out_ch)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        res: torch.Tensor = self.relu(out + self.shortcut(x))
        return res


class ResNet3DClassifier(nn.Module):
    """3D ResNet-18 on ``[log10 E_inc, voxel / E_inc]`` rows of a regular geometry.

    Args:
        geometry: A regular geometry (all layers the same ``(n_alpha, n_r)`` grid).
        n_outputs: 1 for the binary test (a logit), K for a K-class classifier.
    """

    def __init__(self, geometry: str | Geometry, n_outputs: int = 1) -> None:
        super().__init__()
        geo = get_geometry(geometry)
        if not geo.is_regular:
            raise ConfigError(
                f"cls-resnet needs a regular geometry ('2', '3'); {geo.name!r} is not"
            )
        self.grid = (geo.n_layers, *geo.relevant_layers[0].shape())
        self.n_voxels = geo.n_voxels
        self.stem = nn.Sequential(
            nn.Conv3d(1, WIDTHS[0], 7, stride=2, padding=3, bias=False),
            nn.BatchNorm3d(WIDTHS[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool3d(3, stride=2, padding=1),
        )
        stages: list[nn.Module] = []
        in_ch = WIDTHS[0]
        for width, stride, n_blocks in zip(WIDTHS, STRIDES, BLOCKS):
            blocks: list[Any] = [BasicBlock3D(in_ch, width, stride)]
            blocks += [BasicBlock3D(width, width) for _ in range(n_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            in_ch = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool3d(1)
        self.energy_norm = nn.BatchNorm1d(1)
        self.fc = nn.Linear(in_ch + 1, n_outputs)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, 1 + n_voxels)``; returns ``(B, n_outputs)`` logits."""
        energy = self.energy_norm(x[:, :1])
        grid = x[:, 1 : 1 + self.n_voxels].reshape(-1, 1, *self.grid)
        h = self.pool(self.stages(self.stem(grid))).flatten(1)
        logits: torch.Tensor = self.fc(torch.cat([h, energy], dim=1))
        return logits
