"""The conditional shower generator interface."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from physgen.errors import ConfigError
from physgen.transforms import Encoded, ShowerCodec

__all__ = ["ShowerDistribution", "ShowerGenerator"]


class ShowerDistribution:
    """``p(shower | incident energy)`` for a batch of N incident energies.

    Created by ``model(incident_energy)``; holds no state besides the model and energies.
    """

    def __init__(self, model: ShowerGenerator, incident_energy: Tensor) -> None:
        self.model = model
        self.incident_energy = incident_energy.reshape(-1, 1)

    @property
    def batch_shape(self) -> torch.Size:
        """``(N,)``."""
        return torch.Size([self.incident_energy.shape[0]])

    @torch.no_grad()
    def sample(
        self, shape: tuple[int, ...] | torch.Size = (), generator: torch.Generator | None = None
    ) -> Tensor:
        """Draw showers.

        Args:
            shape: Sample shape S; the result has shape ``(*S, N, V)`` (MeV, float32).
            generator: CPU ``torch.Generator`` owning all randomness (seeded determinism);
                None uses the global generator.
        """
        n_rep = int(torch.Size(shape).numel())
        e = self.incident_energy.repeat(n_rep, 1) if n_rep != 1 else self.incident_energy
        x = self.model.sample_showers(e, generator)
        return x.reshape(*shape, self.incident_energy.shape[0], x.shape[-1])

    def log_prob(self, showers: Tensor) -> Tensor:
        """Exact log density ``(N,)`` of the model variables of ``showers`` (N, V).

        The density is that of the preprocessed variables (energy and shape variables of the
        model's :class:`~physgen.transforms.ShowerCodec`, without dequantisation noise); it
        differs from the density in MeV-space by the transforms' Jacobian, which is the same for
        every model sharing a codec, so it ranks models and samples consistently.

        Raises:
            NotImplementedError: The model has no tractable density (CFM, GAN, VAE, diffusion).
        """
        dev = self.model.device
        batch = self.model.codec.encode(showers.to(dev), self.incident_energy.to(dev))
        return self.model.log_prob_encoded(batch)


class ShowerGenerator(nn.Module):
    """Base class of surrogates: a codec plus networks, trained on :class:`Encoded` batches.

    Subclasses define ``Config`` (a dataclass), :meth:`loss` and :meth:`sample_encoded`, and
    :meth:`log_prob_encoded` when the density is tractable.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[Any]]
    tractable: ClassVar[bool] = False
    #: True when a training step leaves some parameters without gradient (GAN alternation);
    #: DistributedDataParallel then needs ``find_unused_parameters``.
    ddp_find_unused_parameters: ClassVar[bool] = False
    #: ``Config`` fields that only change sampling (step counts, solvers...), not the networks:
    #: they may differ between training and generation (``physgen generate --steps``,
    #: ``physgen bench front --sampling``).
    sampling_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, codec: ShowerCodec, config: Any) -> None:
        super().__init__()
        self.codec = codec
        self.config = config

    @property
    def device(self) -> torch.device:
        """Device of the first parameter (CPU for a model without parameters)."""
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def forward(self, incident_energy: Tensor) -> ShowerDistribution:  # type: ignore[override]
        """``incident_energy`` (N,) or (N, 1) in MeV -> :class:`ShowerDistribution`."""
        return ShowerDistribution(self, incident_energy)

    def loss(self, batch: Encoded, generator: torch.Generator | None = None) -> Tensor:
        """Scalar training loss of an encoded batch (on the model's device)."""
        raise NotImplementedError

    def sample_encoded(
        self, condition: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor | None, Tensor]:
        """Model variables ``(energy (N, L) or None, shape (N, V))`` for conditions (N, 1)."""
        raise NotImplementedError

    def validation_loss(self, batch: Encoded, generator: torch.Generator | None = None) -> Tensor:
        """Loss used for early stopping and best-weight selection (default: :meth:`loss`).

        Must not change the model's state (adversarial models override it)."""
        return self.loss(batch, generator)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Optimiser parameter groups (override for per-module learning rates, e.g. the
        two-time-scale rule of GANs). Default: one group with every parameter at ``lr``."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def diagnostics(
        self, batch: Encoded, generator: torch.Generator | None = None
    ) -> dict[str, float]:
        """Extra numbers logged with each validation (e.g. mode-collapse monitors)."""
        return {}

    def log_prob_encoded(self, batch: Encoded) -> Tensor:
        """Log density ``(N,)`` of encoded variables (tractable models only)."""
        raise NotImplementedError(
            f"model {self.name!r} has no tractable density; use a 'flow' model for log_prob"
        )

    @torch.no_grad()
    def sample_showers(
        self, incident_energy: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Showers ``(N, V)`` MeV (float32, on the model's device) for energies (N, 1) MeV."""
        e = incident_energy.reshape(-1, 1).to(self.device)
        if not bool((e > 0).all()):
            raise ConfigError("incident energies must all be > 0 MeV")
        energy, shape = self.sample_encoded(self.codec.condition(e), generator)
        return self.codec.decode(energy, shape, e)

    def randn(self, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
        """Standard normal noise drawn on the CPU from ``generator`` (device independent)."""
        return torch.randn(shape, generator=generator).to(self.device)

    def rand(self, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
        """Uniform [0, 1) noise drawn on the CPU from ``generator``."""
        return torch.rand(shape, generator=generator).to(self.device)
