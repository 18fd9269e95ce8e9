"""Conditional flow matching (CaloDREAM style): straight-line paths, velocity networks, ODE sampling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from physgen.core.batch import Encoded
from physgen.errors import ConfigError
from physgen.models.base import ShowerGenerator
from physgen.models.registry import register
from physgen.models.solvers import SOLVERS, integrate
from physgen.nn import GaussianFourierEmbedding
from physgen.nn.conditioned import TimeConditioned, stage_networks

__all__ = ["CFM", "CFMConfig", "LinearPath", "VelocityField"]


class LinearPath:
    """The straight (optimal-transport) probability path of flow matching.

    ``x_t = (1 - (1 - sigma_min) t) x_0 + t x_1`` between noise ``x_0 ~ N(0, 1)`` at ``t = 0``
    and data ``x_1`` at ``t = 1``; the conditional target velocity is
    ``u_t = x_1 - (1 - sigma_min) x_0``.

    Args:
        sigma_min: Width of the path's end point around the data (0: rectified flow).
    """

    def __init__(self, sigma_min: float = 0.0) -> None:
        if not 0.0 <= sigma_min < 1.0:
            raise ConfigError(f"sigma_min must be in [0, 1), got {sigma_min}")
        self.sigma_min = float(sigma_min)

    def interpolate(self, x0: Tensor, x1: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(x_t, u_t)`` for noise ``x0``, data ``x1`` (N, D) and times ``t`` (N, 1)."""
        a = 1.0 - self.sigma_min
        return (1.0 - a * t) * x0 + t * x1, x1 - a * x0


VelocityField = TimeConditioned
"""``v(x_t, t | c)``: a network over ``x`` conditioned on ``[fourier(t), c]``."""


@dataclass
class CFMConfig:
    """Options of the ``cfm`` model.

    Attributes:
        two_stage: In the codec's ``layers`` mode, learn p(energy | E_inc) and
            p(shape | energy, E_inc) with two networks (CaloDREAM); else one network over
            ``[energy, shape]``.
        network: Shape network: ``mlp`` (residual MLP) or ``transformer`` (one token per layer).
        hidden: Width of the shape MLP.
        blocks: Residual blocks of the shape MLP.
        d_model: Token width of the transformer.
        depth: Transformer blocks.
        heads: Attention heads.
        energy_hidden: Width of the energy-stage MLP.
        energy_blocks: Residual blocks of the energy-stage MLP.
        time_features: Size of the time embedding.
        sigma_min: End-point width of the linear path.
        solver: ``euler``, ``midpoint``, ``rk4`` or ``adaptive``.
        steps: Fixed solver steps (a sampling option: may be changed after training).
        atol: Absolute tolerance of the adaptive solver.
        rtol: Relative tolerance of the adaptive solver.
    """

    two_stage: bool = True
    network: str = "mlp"
    hidden: int = 512
    blocks: int = 4
    d_model: int = 128
    depth: int = 4
    heads: int = 4
    energy_hidden: int = 128
    energy_blocks: int = 3
    time_features: int = 64
    sigma_min: float = 0.0
    solver: str = "rk4"
    steps: int = 16
    atol: float = 1e-5
    rtol: float = 1e-5


@register("cfm")
class CFM(ShowerGenerator):
    """Conditional flow matching on the codec's variables.

    Two-stage (default, codec mode ``layers``): an energy velocity field over the L energy
    variables conditioned on the scaled log E_inc, and a shape velocity field over the V shape
    variables conditioned on ``[log E_inc, energy variables]``; sampling solves the energy ODE
    first and feeds its result to the shape ODE. Single-stage: one field over everything.
    """

    Config = CFMConfig
    sampling_options = ("steps", "solver", "atol", "rtol")

    def __init__(self, codec: Any, config: CFMConfig) -> None:
        super().__init__(codec, config)
        if config.solver not in SOLVERS:
            raise ConfigError(
                f"cfm solver must be one of {', '.join(SOLVERS)}, got {config.solver!r}"
            )
        if config.network not in ("mlp", "transformer"):
            raise ConfigError(f"cfm network must be 'mlp' or 'transformer', got {config.network!r}")
        self.path = LinearPath(config.sigma_min)
        n_e, tf = codec.first_dim, config.time_features
        self.two_stage = bool(config.two_stage and n_e > 0)
        self.energy_field, self.shape_field = stage_networks(
            codec.groups,
            n_e,
            condition_dim=codec.condition_dim,
            two_stage=self.two_stage,
            network=config.network,
            time_features=tf,
            make_time=lambda: GaussianFourierEmbedding(tf, scale=16.0),
            hidden=config.hidden,
            blocks=config.blocks,
            d_model=config.d_model,
            depth=config.depth,
            heads=config.heads,
            energy_hidden=config.energy_hidden,
            energy_blocks=config.energy_blocks,
        )

    # ------------------------------------------------------------------ training
    def _fm_loss(
        self, field: TimeConditioned, x1: Tensor, c: Tensor, generator: torch.Generator | None
    ) -> Tensor:
        x0 = self.randn(tuple(x1.shape), generator)
        t = self.rand((x1.shape[0], 1), generator)
        xt, ut = self.path.interpolate(x0, x1, t)
        loss: Tensor = ((field(xt, t, c) - ut) ** 2).mean()
        return loss

    def loss(self, batch: Encoded, generator: torch.Generator | None = None) -> Tensor:
        c = batch.condition
        if self.two_stage:
            assert batch.energy is not None and self.energy_field is not None
            le = self._fm_loss(self.energy_field, batch.energy, c, generator)
            ls = self._fm_loss(
                self.shape_field, batch.shape, torch.cat([c, batch.energy], 1), generator
            )
            return le + ls
        x1 = batch.shape if batch.energy is None else torch.cat([batch.energy, batch.shape], 1)
        return self._fm_loss(self.shape_field, x1, c, generator)

    # ------------------------------------------------------------------ sampling
    def _solve(self, field: TimeConditioned, x0: Tensor, c: Tensor) -> Tensor:
        cfg = self.config
        return integrate(
            lambda t, x: field(x, t, c),
            x0,
            solver=cfg.solver,
            steps=cfg.steps,
            atol=cfg.atol,
            rtol=cfg.rtol,
        )

    def noise_widths(self) -> list[int]:
        """Start points of the ODEs: first stage, then second (or one of both widths)."""
        n_e, n_v = self.codec.first_dim, self.codec.second_dim
        return [n_e, n_v] if self.two_stage else [n_e + n_v]

    def decode_encoded(self, z: Tensor, condition: Tensor) -> tuple[Tensor | None, Tensor]:
        c, n_e = condition, self.codec.first_dim
        if self.two_stage:
            assert self.energy_field is not None
            energy = self._solve(self.energy_field, z[:, :n_e], c)
            shape = self._solve(self.shape_field, z[:, n_e:], torch.cat([c, energy], 1))
            return energy, shape
        x = self._solve(self.shape_field, z, c)
        return (x[:, :n_e] if n_e else None), x[:, n_e:]
