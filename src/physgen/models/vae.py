"""Conditional variational autoencoder (CaloVAE style) with physics-aware reconstruction."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import zuko  # type: ignore[import-untyped]
from torch import Tensor

from physgen.core.batch import Encoded
from physgen.errors import ConfigError
from physgen.models.base import ShowerGenerator
from physgen.models.registry import register
from physgen.models.summaries import collapse_monitors, has_physics, physics_summaries
from physgen.nn import ResidualMLP

__all__ = ["VAE", "VAEConfig"]

_LOGVAR_RANGE = (-12.0, 8.0)


@dataclass
class VAEConfig:
    """Options of the ``vae`` model.

    Attributes:
        latent: Latent size.
        hidden: Width of the encoder and decoder residual MLPs.
        blocks: Residual blocks of each.
        beta_max: Final KL weight. The loss is ``MSE + beta KL / D`` with MSE averaged over the
            D variables, so ``beta = 1`` is the ELBO of a Gaussian decoder with variance 1/2.
        kl_warmup_steps: Steps of the linear rise of beta from 0 to ``beta_max`` (0: none).
        energy_weight: Weight of the MSE on the energy variables (``layers`` mode).
        layer_weight: Weight of the MSE on the per-layer :func:`physics_summaries`.
        total_weight: Weight of the MSE on the total of the :func:`physics_summaries`.
        prior: ``normal`` (N(0, 1)) or ``flow`` (a conditional zuko NSF ``p(z | c)`` trained
            jointly; the KL is then a one-sample Monte-Carlo estimate, and the flow is also
            fitted to the detached posterior samples at full weight).
        prior_transforms: Spline transforms of the flow prior.
        prior_hidden: Hidden layers of the flow prior's networks.
        prior_passes: Sequential network passes to sample one flow-prior transform: 2 =
            coupling (the second half conditioned on the first), 0 = fully autoregressive
            (``latent`` passes per transform, which dominates the generation time of the
            whole model at large batches), as ``shape_passes`` of the ``flow`` model.
        output_noise: Standard deviation of Gaussian noise added to the decoder mean when
            sampling (a sampling option; 0: the mean).
    """

    latent: int = 32
    hidden: int = 512
    blocks: int = 3
    beta_max: float = 0.1
    kl_warmup_steps: int = 5000
    energy_weight: float = 1.0
    layer_weight: float = 0.1
    total_weight: float = 0.1
    prior: str = "normal"
    prior_transforms: int = 3
    prior_hidden: tuple[int, ...] = field(default_factory=lambda: (64, 64))
    prior_passes: int = 0
    output_noise: float = 0.0


@register("vae")
class VAE(ShowerGenerator):
    """``q(z | x, c)`` and ``p(x | z, c)`` over ``x = [energy, shape]`` (or shape only).

    Reconstruction loss (all MSEs are means over their variables):
    ``MSE(shape) + energy_weight MSE(energy) + layer_weight MSE(per-layer sums)
    + total_weight MSE(total)``, the sums being :func:`physics_summaries` (log per-layer and
    total sums of the decoded shape variables). The KL weight rises linearly over
    ``kl_warmup_steps``; the buffer ``step`` counts training steps (advanced by
    :meth:`training_step` only, so evaluating the loss does not change the model).
    """

    Config = VAEConfig
    sampling_options = ("output_noise",)
    config: VAEConfig
    step: Tensor

    def __init__(self, codec: Any, config: VAEConfig) -> None:
        super().__init__(codec, config)
        if config.prior not in ("normal", "flow"):
            raise ConfigError(f"vae prior must be 'normal' or 'flow', got {config.prior!r}")
        if config.prior_passes < 0 or config.prior_passes == 1:
            raise ConfigError(
                f"vae prior_passes must be 0 (autoregressive) or >= 2, got {config.prior_passes}"
            )
        if config.latent < 1 or config.beta_max < 0 or config.kl_warmup_steps < 0:
            raise ConfigError("vae: need latent >= 1, beta_max >= 0 and kl_warmup_steps >= 0")
        self.dim = codec.first_dim + codec.second_dim
        k = codec.condition_dim
        self.encoder = ResidualMLP(self.dim, 2 * config.latent, k, config.hidden, config.blocks)
        self.decoder = ResidualMLP(config.latent, self.dim, k, config.hidden, config.blocks)
        self.prior_flow: zuko.flows.Flow | None = None
        if config.prior == "flow":
            self.prior_flow = zuko.flows.NSF(
                config.latent,
                context=k,
                transforms=config.prior_transforms,
                hidden_features=tuple(config.prior_hidden),
                passes=config.prior_passes or None,
            )
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    def beta(self, step: int | None = None) -> float:
        """KL weight at ``step`` (default: the current step counter)."""
        s = int(self.step) if step is None else int(step)
        w = self.config.kl_warmup_steps
        return float(self.config.beta_max) * (1.0 if w == 0 else min(1.0, s / w))

    def _x(self, batch: Encoded) -> Tensor:
        return batch.shape if batch.energy is None else torch.cat([batch.energy, batch.shape], 1)

    def encode_latent(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance ``(N, latent)`` each for ``x (N, D), c (N, K)``."""
        mu, logvar = self.encoder(x, c).chunk(2, dim=1)
        return mu, logvar.clamp(*_LOGVAR_RANGE)

    def reconstruction_terms(self, x_hat: Tensor, x: Tensor) -> dict[str, Tensor]:
        """The reconstruction MSEs (unweighted scalars) between ``x_hat`` and ``x`` (N, D).

        Keys: ``shape`` (second stage), ``energy`` (first stage, when there is one) and, for
        shower codecs, ``layers`` and ``total``.
        """
        n_e = self.codec.first_dim
        terms = {"shape": ((x_hat[:, n_e:] - x[:, n_e:]) ** 2).mean()}
        if n_e:
            terms["energy"] = ((x_hat[:, :n_e] - x[:, :n_e]) ** 2).mean()
        if not has_physics(self.codec):
            return terms
        s_hat = physics_summaries(self.codec, x_hat[:, n_e:])
        s = physics_summaries(self.codec, x[:, n_e:])
        terms["layers"] = ((s_hat[:, :-1] - s[:, :-1]) ** 2).mean()
        terms["total"] = ((s_hat[:, -1] - s[:, -1]) ** 2).mean()
        return terms

    def _terms(
        self, batch: Encoded, generator: torch.Generator | None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """(weighted reconstruction loss, KL per data variable, prior fit), all scalars.

        The prior fit is ``-log p(sg(z) | c) / D`` on the detached posterior sample (0 for the
        normal prior): it trains the flow prior towards the aggregate posterior at full weight
        whatever beta is, so sampling stays good during the KL warm-up and at small beta.
        """
        cfg = self.config
        c, x = batch.condition, self._x(batch)
        mu, logvar = self.encode_latent(x, c)
        eps = self.randn(tuple(mu.shape), generator)
        std = torch.exp(0.5 * logvar)
        z = mu + std * eps
        t = self.reconstruction_terms(self.decoder(z, c), x)
        recon = t["shape"]
        if "layers" in t:
            recon = recon + cfg.layer_weight * t["layers"] + cfg.total_weight * t["total"]
        if "energy" in t:
            recon = recon + cfg.energy_weight * t["energy"]
        fit = torch.zeros((), device=x.device)
        if self.prior_flow is None:
            kl = 0.5 * (mu**2 + logvar.exp() - 1.0 - logvar).sum(1)
        else:
            prior = self.prior_flow(c if c.shape[1] else None)
            log_q = (-0.5 * eps**2 - 0.5 * logvar - 0.5 * math.log(2 * math.pi)).sum(1)
            kl = log_q - prior.log_prob(z)
            fit = -prior.log_prob(z.detach()).mean() / self.dim
        return recon, kl.mean() / self.dim, fit

    def loss(self, batch: Encoded, generator: torch.Generator | None = None) -> Tensor:
        """``reconstruction + beta(step) KL / D (+ prior fit)``.

        Noise from ``generator``: the posterior sample ``(N, latent)``.
        """
        recon, kl, fit = self._terms(batch, generator)
        return recon + self.beta() * kl + fit

    def training_step(
        self, batch: Encoded, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """The loss at the current KL weight; advances the warm-up counter."""
        out = self.loss(batch, generator)
        with torch.no_grad():
            self.step.add_(1)
        return {"model": out}

    def validation_loss(self, batch: Encoded, generator: torch.Generator | None = None) -> Tensor:
        """The loss at the final weight ``beta_max`` (comparable before and after warm-up)."""
        recon, kl, fit = self._terms(batch, generator)
        return recon + self.config.beta_max * kl + fit

    @torch.no_grad()
    def diagnostics(
        self, batch: Encoded, generator: torch.Generator | None = None
    ) -> dict[str, float]:
        """``recon``, ``kl`` (per data variable), ``active_units`` (latents whose posterior
        mean varies across the batch with variance > 0.01) and the collapse monitors."""
        recon, kl, _ = self._terms(batch, generator)
        mu, _ = self.encode_latent(self._x(batch), batch.condition)
        active = float((mu.var(0) > 0.01).sum())
        return {
            "recon": float(recon),
            "kl": float(kl),
            "active_units": active,
            **collapse_monitors(self, batch, generator),
        }

    def noise_widths(self) -> list[int]:
        """The prior's base noise, then (with ``output_noise``) the output noise."""
        out = [int(self.config.latent)]
        if self.config.output_noise > 0:
            out.append(self.dim)
        return out

    def latent_from_noise(self, z: Tensor, condition: Tensor) -> Tensor:
        """Prior latents ``(N, latent)`` from base noise and encoded conditions ``(N, K)``."""
        if self.prior_flow is not None:
            z = self.prior_flow(condition if condition.shape[1] else None).transform.inv(z)
        return z

    @torch.no_grad()
    def sample_latent(self, condition: Tensor, generator: torch.Generator | None) -> Tensor:
        """Latents ``(N, latent)`` from the prior for encoded conditions ``(N, K)``."""
        z = self.randn((condition.shape[0], self.config.latent), generator)
        return self.latent_from_noise(z, condition)

    def decode_encoded(self, z: Tensor, condition: Tensor) -> tuple[Tensor | None, Tensor]:
        lat = int(self.config.latent)
        x: Tensor = self.decoder(self.latent_from_noise(z[:, :lat], condition), condition)
        if self.config.output_noise > 0:
            x = x + self.config.output_noise * z[:, lat:]
        n_e = self.codec.first_dim
        return (x[:, :n_e] if n_e else None), x[:, n_e:]
