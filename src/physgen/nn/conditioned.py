"""Time-conditioned networks and the two-stage (energy, then shape) layout shared by the
flow-matching and diffusion surrogates."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from physgen.nn.mlp import ResidualMLP
from physgen.nn.transformer import LayerTransformer

__all__ = ["TimeConditioned", "stage_networks"]


class TimeConditioned(nn.Module):
    """``f(x_t, t | c) = net(x_t, [time(t), c])``.

    Args:
        net: ``net(x (N, D), cond (N, T + C)) -> (N, D)``.
        time: Embedding ``t (N, 1) -> (N, T)``.
    """

    def __init__(self, net: nn.Module, time: nn.Module) -> None:
        super().__init__()
        self.time = time
        self.net = net

    def forward(self, x: Tensor, t: Tensor, c: Tensor) -> Tensor:
        t = t.reshape(-1, 1).expand(x.shape[0], 1)
        return self.net(x, torch.cat([self.time(t), c], dim=1))  # type: ignore[no-any-return]


def stage_networks(
    layer_sizes: Sequence[int],
    energy_dim: int,
    *,
    condition_dim: int = 1,
    two_stage: bool,
    network: str,
    time_features: int,
    make_time: Callable[[], nn.Module],
    hidden: int,
    blocks: int,
    d_model: int,
    depth: int,
    heads: int,
    energy_hidden: int,
    energy_blocks: int,
) -> tuple[TimeConditioned | None, TimeConditioned]:
    """The networks of a two-stage or single-stage time-conditioned surrogate.

    Two-stage (``two_stage`` and ``energy_dim > 0``): a first-stage network over the A
    first-stage variables (calorimeter: energy variables) conditioned on ``[time, c]`` and a
    second-stage network over the B variables of ``layer_sizes`` (voxels) conditioned on
    ``[time, c, first-stage variables]``. Single-stage: one network over ``[first, second]``
    conditioned on ``[time, c]``. The second-stage network is a :class:`ResidualMLP`
    (``network="mlp"``) or a :class:`LayerTransformer` (one token per group of
    ``layer_sizes``, the first-stage variables as an extra token in single-stage mode).

    Args:
        layer_sizes: Token groups of the second stage (their sum is B).
        energy_dim: A (0: single stage).
        condition_dim: Width K of the encoded condition ``c`` (1: calorimeter E_inc).

    Returns:
        ``(energy network or None, shape network)``.
    """
    n_e, n_v, tf = energy_dim, sum(layer_sizes), time_features
    energy_net = None
    if two_stage and n_e > 0:
        energy_net = TimeConditioned(
            ResidualMLP(n_e, n_e, tf + condition_dim, energy_hidden, energy_blocks, zero_init=True),
            make_time(),
        )
        shape_in, shape_cond, sizes = n_v, condition_dim + n_e, list(layer_sizes)
    else:
        shape_in, shape_cond = n_v + n_e, condition_dim
        sizes = [n_e, *layer_sizes] if n_e else list(layer_sizes)
    if network == "transformer":
        net: nn.Module = LayerTransformer(sizes, tf + shape_cond, d_model, depth, heads)
    else:
        net = ResidualMLP(shape_in, shape_in, tf + shape_cond, hidden, blocks, zero_init=True)
    return energy_net, TimeConditioned(net, make_time())
