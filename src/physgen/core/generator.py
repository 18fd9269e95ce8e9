"""The conditional generator interface shared by every model family.

A model is an ``nn.Module`` that owns a fitted :class:`~physgen.core.codec.Codec` and learns
the distribution of the codec's variables given the encoded condition. Every model is a pure
map from noise to data::

    z = model.noise(n, generator)        # (n, model.noise_dim), drawn on the CPU
    x = model.decode(z, c)               # (n, D) data space, differentiable in the weights
    x = model(c).sample(generator=g)     # = decode(noise(...), c) under no_grad
    x = model(c).rsample(generator=g)    # the same values, keeping gradients

so ONNX export and differentiable simulation can use ``decode`` directly, and a seed fixes
the bytes.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from physgen.core.batch import Encoded

__all__ = ["ConditionalDistribution", "ConditionalGenerator"]


class ConditionalDistribution:
    """``p(x | c)`` for a batch of N conditions; created by ``model(c)``.

    Args:
        model: The generator.
        condition: Data-space conditions ``(N, K)`` (``(N,)`` accepted when K = 1).
    """

    def __init__(self, model: ConditionalGenerator, condition: Tensor) -> None:
        self.model = model
        if condition.ndim < 2:
            condition = condition.reshape(-1, 1)
        self.condition = condition

    @property
    def incident_energy(self) -> Tensor:
        """The conditions (calorimeter models: incident energies ``(N, 1)`` in MeV)."""
        return self.condition

    @property
    def batch_shape(self) -> torch.Size:
        """``(N,)``."""
        return torch.Size([self.condition.shape[0]])

    def _repeat(self, shape: tuple[int, ...] | torch.Size) -> tuple[Tensor, int]:
        n_rep = int(torch.Size(shape).numel())
        c = self.condition.repeat(n_rep, 1) if n_rep != 1 else self.condition
        return c, n_rep

    @torch.no_grad()
    def sample(
        self, shape: tuple[int, ...] | torch.Size = (), generator: torch.Generator | None = None
    ) -> Tensor:
        """Draw samples.

        Args:
            shape: Sample shape S; the result has shape ``(*S, N, D)`` (float32).
            generator: CPU ``torch.Generator`` owning all randomness (seeded determinism);
                None uses the global generator.
        """
        c, _ = self._repeat(shape)
        x = self.model.sample_data(c, generator)
        return x.reshape(*shape, self.condition.shape[0], x.shape[-1])

    def rsample(
        self, shape: tuple[int, ...] | torch.Size = (), generator: torch.Generator | None = None
    ) -> Tensor:
        """Like :meth:`sample` (the same values for the same generator state), keeping the
        gradients with respect to the model's parameters (and differentiable conditions)."""
        c, _ = self._repeat(shape)
        x = self.model.rsample(c, generator)
        return x.reshape(*shape, self.condition.shape[0], x.shape[-1])

    def log_prob(self, x: Tensor) -> Tensor:
        """Log density ``(N,)`` of ``x (N, D)``.

        In data space where the codec is invertible with a known Jacobian (vector codecs);
        for calorimeter showers it is the density of the model variables (energy and shape
        variables of the :class:`~physgen.calo.codec.ShowerCodec`, without dequantisation
        noise), which differs from the density in MeV-space by a Jacobian that is the same for
        every model sharing a codec, so it ranks models and samples consistently.

        Raises:
            NotImplementedError: The model has no tractable density (only ``flow`` has one).
        """
        return self.model.log_prob(x, self.condition)


class ConditionalGenerator(nn.Module):
    """Base class of the model families: a codec plus networks, trained on :class:`Encoded`.

    Subclasses define ``Config`` (a dataclass), :meth:`loss`, :meth:`noise_widths` and
    :meth:`decode_encoded`, and :meth:`log_prob_encoded` when the density is tractable.
    """

    name: ClassVar[str] = ""
    Config: ClassVar[type[Any]]
    tractable: ClassVar[bool] = False
    #: True when a training step leaves some parameters without gradient (GAN alternation);
    #: DistributedDataParallel then needs ``find_unused_parameters``.
    ddp_find_unused_parameters: ClassVar[bool] = False
    #: ``Config`` fields that only change sampling (step counts, solvers...), not the networks:
    #: they may differ between training and generation.
    sampling_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, codec: Any, config: Any) -> None:
        super().__init__()
        self.codec = codec
        self.config = config
        #: Training rows (set by the training loop; Bayesian models scale their KL by it).
        self.dataset_size: int | None = None

    @property
    def device(self) -> torch.device:
        """Device of the first parameter (CPU for a model without parameters)."""
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def forward(self, condition: Tensor) -> ConditionalDistribution:  # type: ignore[override]
        """Data-space conditions ``(N, K)`` -> :class:`ConditionalDistribution`."""
        return ConditionalDistribution(self, condition)

    # ------------------------------------------------------------------ training
    def loss(self, batch: Encoded, generator: torch.Generator | None = None) -> Tensor:
        """Scalar training loss of an encoded batch (on the model's device)."""
        raise NotImplementedError

    def validation_loss(self, batch: Encoded, generator: torch.Generator | None = None) -> Tensor:
        """Loss used for early stopping and best-weight selection (default: :meth:`loss`).

        Must not change the model's state (adversarial models override it)."""
        return self.loss(batch, generator)

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Parameter groups of the single optimiser of a one-optimiser model. Default: one
        group with every parameter at ``lr``."""
        return [{"params": [p for p in self.parameters() if p.requires_grad], "lr": lr}]

    def optimizer_groups(self, lr: float) -> dict[str, list[dict[str, Any]]]:
        """Parameter groups per optimiser (the training loop makes one AdamW of each).

        Default: one optimiser, ``"model"``, over :meth:`param_groups`. Adversarial models
        return one per network (e.g. ``generator`` and ``critic``).
        """
        return {"model": self.param_groups(lr)}

    def training_step(
        self, batch: Encoded, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """The losses of one optimisation step, keyed by the optimiser each one updates.

        Called by the training loop once per step (and only there): a model with a training
        schedule (GAN alternation, KL warm-up) advances its counters here. Default:
        ``{"model": self.loss(batch, generator)}``.
        """
        return {"model": self.loss(batch, generator)}

    def diagnostics(
        self, batch: Encoded, generator: torch.Generator | None = None
    ) -> dict[str, float]:
        """Extra numbers logged with each validation (e.g. mode-collapse monitors)."""
        return {}

    # ------------------------------------------------------------------ noise -> data
    def noise_widths(self) -> list[int]:
        """Widths of the successive standard-normal draws of one sample, in draw order."""
        raise NotImplementedError

    @property
    def noise_dim(self) -> int:
        """Width of :meth:`noise` per sample."""
        return sum(self.noise_widths())

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """All the randomness of ``n`` samples: ``(n, noise_dim)`` standard normal.

        Drawn on the CPU from ``generator`` (device independent), one draw per entry of
        :meth:`noise_widths`, then concatenated.
        """
        parts = [torch.randn((n, w), generator=generator) for w in self.noise_widths()]
        return (torch.cat(parts, 1) if len(parts) != 1 else parts[0]).to(self.device)

    def decode_encoded(self, z: Tensor, condition: Tensor) -> tuple[Tensor | None, Tensor]:
        """Noise ``(N, noise_dim)`` and encoded conditions -> model variables
        ``(first (N, A) or None, second (N, B))``; differentiable."""
        raise NotImplementedError

    def decode(self, z: Tensor, c: Tensor) -> Tensor:
        """Noise ``z (N, noise_dim)`` and data-space conditions ``c (N, K)`` -> data ``(N, D)``.

        A pure, differentiable function of ``z``, ``c`` and the weights.
        """
        c = self.codec.check_condition(c.to(self.device))
        first, second = self.decode_encoded(z.to(self.device), self.codec.condition(c))
        out: Tensor = self.codec.decode(first, second, c)
        return out

    def sample_encoded(
        self, condition: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor | None, Tensor]:
        """Model variables for encoded conditions ``(N, condition_dim)`` (no gradients)."""
        with torch.no_grad():
            c = condition.to(self.device)
            return self.decode_encoded(self.noise(c.shape[0], generator), c)

    @torch.no_grad()
    def sample_data(self, c: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Samples ``(N, D)`` (float32, on the model's device) for data-space conditions."""
        return self.rsample(c, generator)

    def rsample(self, c: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``decode(noise(N), c)``: samples that keep their gradients."""
        c = self.codec.check_condition(c.to(self.device))
        return self.decode(self.noise(c.shape[0], generator), c)

    # ------------------------------------------------------------------ densities
    def log_prob_encoded(self, batch: Encoded) -> Tensor:
        """Log density ``(N,)`` of encoded variables (tractable models only)."""
        raise NotImplementedError(
            f"model {self.name!r} has no tractable density; use a 'flow' model for log_prob"
        )

    def log_prob(self, x: Tensor, c: Tensor) -> Tensor:
        """Log density ``(N,)`` of ``x (N, D)`` given data-space conditions ``c``.

        In data space when the codec has ``log_abs_det_jacobian``; else in model variables
        (see :meth:`ConditionalDistribution.log_prob`).
        """
        if not self.tractable:
            raise NotImplementedError(
                f"model {self.name!r} has no tractable density; use a 'flow' model for log_prob"
            )
        dev = self.device
        x, c = x.to(dev), self.codec.check_condition(c.to(dev))
        lp = self.log_prob_encoded(self.codec.encode(x, c))
        jac = getattr(self.codec, "log_abs_det_jacobian", None)
        if jac is not None:
            lp = lp + jac(x, c).to(lp.dtype)
        return lp

    # ------------------------------------------------------------------ calorimeter helpers
    @torch.no_grad()
    def sample_showers(
        self, incident_energy: Tensor, generator: torch.Generator | None = None
    ) -> Tensor:
        """Showers ``(N, V)`` MeV for incident energies ``(N,)`` or ``(N, 1)`` MeV."""
        return self.sample_data(incident_energy.reshape(-1, 1), generator)

    def randn(self, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
        """Standard normal noise drawn on the CPU from ``generator`` (device independent)."""
        return torch.randn(shape, generator=generator).to(self.device)

    def rand(self, shape: tuple[int, ...], generator: torch.Generator | None) -> Tensor:
        """Uniform [0, 1) noise drawn on the CPU from ``generator``."""
        return torch.rand(shape, generator=generator).to(self.device)
