"""CaloFlow-style two-stage normalizing flows on zuko (exact log-likelihood)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import zuko  # type: ignore[import-untyped]
from torch import Tensor

from physgen.errors import ConfigError
from physgen.models.base import ShowerGenerator
from physgen.models.registry import register
from physgen.transforms import Encoded, ShowerCodec

__all__ = ["Flow", "FlowConfig"]


@dataclass
class FlowConfig:
    """Options of the ``flow`` model.

    Attributes:
        energy_transforms: Autoregressive spline transforms of flow I (energy variables).
        energy_hidden: Hidden layers of flow I's masked MLPs.
        energy_bins: Spline bins of flow I.
        shape_kind: Flow II transforms: ``nsf`` (rational-quadratic splines) or ``maf``
            (affine; much cheaper for thousands of voxels).
        shape_transforms: Transforms of flow II.
        shape_hidden: Hidden layers of flow II's masked MLPs.
        shape_bins: Spline bins of flow II (``nsf`` only).
        shape_passes: Sequential passes to invert a flow-II transform: 2 = coupling (one
            network pass per transform to sample, CaloINN style), 0 = fully autoregressive
            (MAF, V passes to sample, CaloFlow teacher style).
    """

    energy_transforms: int = 6
    energy_hidden: tuple[int, ...] = (64, 64)
    energy_bins: int = 8
    shape_kind: str = "nsf"
    shape_transforms: int = 6
    shape_hidden: tuple[int, ...] = field(default_factory=lambda: (256, 256))
    shape_bins: int = 8
    shape_passes: int = 2


@register("flow")
class Flow(ShowerGenerator):
    """Flow I ``p(u | E_inc)`` (codec ``layers`` mode) and flow II ``p(shape | u, E_inc)``.

    Both are conditional zuko flows with a standard normal base; sampling draws the base noise
    from the caller's generator and applies the inverse transforms.
    """

    Config = FlowConfig
    tractable = True

    def __init__(self, codec: ShowerCodec, config: FlowConfig) -> None:
        super().__init__(codec, config)
        if config.shape_kind not in ("nsf", "maf"):
            raise ConfigError(f"flow shape_kind must be 'nsf' or 'maf', got {config.shape_kind!r}")
        n_e, n_v = codec.energy_dim, codec.n_voxels
        self.energy_flow: zuko.flows.Flow | None = None
        if n_e:
            self.energy_flow = zuko.flows.NSF(
                n_e,
                context=1,
                transforms=config.energy_transforms,
                bins=config.energy_bins,
                hidden_features=tuple(config.energy_hidden),
            )
        passes = config.shape_passes or None
        kwargs = {
            "context": 1 + n_e,
            "transforms": config.shape_transforms,
            "hidden_features": tuple(config.shape_hidden),
            "passes": passes,
        }
        if config.shape_kind == "nsf":
            self.shape_flow = zuko.flows.NSF(n_v, bins=config.shape_bins, **kwargs)
        else:
            self.shape_flow = zuko.flows.MAF(n_v, **kwargs)

    def log_prob_encoded(self, batch: Encoded) -> Tensor:
        c = batch.condition
        lp = torch.zeros(len(batch), device=c.device)
        if self.energy_flow is not None:
            assert batch.energy is not None
            lp = lp + self.energy_flow(c).log_prob(batch.energy)
            c = torch.cat([c, batch.energy], 1)
        return lp + self.shape_flow(c).log_prob(batch.shape)  # type: ignore[no-any-return]

    def loss(self, batch: Encoded, generator: torch.Generator | None = None) -> Tensor:
        """Mean negative log-likelihood per dimension (nats)."""
        dims = batch.shape.shape[1] + (0 if batch.energy is None else batch.energy.shape[1])
        return -self.log_prob_encoded(batch).mean() / dims

    @torch.no_grad()
    def sample_encoded(
        self, condition: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor | None, Tensor]:
        c = condition.to(self.device)
        n = c.shape[0]
        energy = None
        if self.energy_flow is not None:
            z = self.randn((n, self.codec.energy_dim), generator)
            energy = self.energy_flow(c).transform.inv(z)
            c = torch.cat([c, energy], 1)
        z = self.randn((n, self.codec.n_voxels), generator)
        return energy, self.shape_flow(c).transform.inv(z)
