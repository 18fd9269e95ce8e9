"""A batch in model variables: what every model family trains on."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["Encoded"]


class Encoded:
    """A batch in model variables.

    Attributes:
        condition: ``(N, 1)`` scaled log incident energy, about [0, 1] on the training range.
        energy: ``(N, L)`` transformed energy variables, or None in ``"incident"`` mode.
        shape: ``(N, V)`` transformed shape variables.
    """

    __slots__ = ("condition", "energy", "shape")

    def __init__(self, condition: Tensor, energy: Tensor | None, shape: Tensor) -> None:
        self.condition = condition
        self.energy = energy
        self.shape = shape

    def to(self, device: torch.device | str) -> Encoded:
        """Move every tensor to ``device``."""
        return Encoded(
            self.condition.to(device),
            None if self.energy is None else self.energy.to(device),
            self.shape.to(device),
        )

    def __len__(self) -> int:
        return int(self.shape.shape[0])
