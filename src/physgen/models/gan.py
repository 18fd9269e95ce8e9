"""Conditional Wasserstein GAN with gradient penalty (CaloGAN / BoloGAN style).

Two optimisers: :meth:`GAN.optimizer_groups` gives the generator and the critic one each, and
:meth:`GAN.training_step` returns the loss of the network whose turn it is (``n_critic``
critic steps, then one generator step), advancing the step counter. Each loss is built so
that only the active network is in the autograd graph; the training loop clears every
gradient before the backward pass and steps only the active optimiser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from physgen.core.batch import Encoded
from physgen.errors import ConfigError
from physgen.models.base import ShowerGenerator
from physgen.models.registry import register
from physgen.models.summaries import (
    collapse_monitors,
    has_physics,
    physics_summaries,
    sample_moments,
)
from physgen.nn import ResidualMLP

__all__ = [
    "GAN",
    "GANConfig",
    "collapse_monitors",
    "gradient_penalty",
    "physics_summaries",
    "sample_moments",
]


def gradient_penalty(
    critic: nn.Module, real: Tensor, fake: Tensor, condition: Tensor, u: Tensor
) -> Tensor:
    """WGAN-GP penalty ``E[(||grad_x D(x_hat, c)|| - 1)^2]`` on interpolates.

    Args:
        critic: ``critic(x (N, D), c (N, K)) -> (N, 1)``.
        real: Real samples ``(N, D)``.
        fake: Generated samples ``(N, D)`` (detached).
        condition: ``(N, K)``.
        u: Interpolation weights ``(N, 1)`` in [0, 1]: ``x_hat = u real + (1 - u) fake``.

    Returns:
        Scalar penalty (differentiable w.r.t. the critic's parameters).
    """
    x_hat = (u * real + (1.0 - u) * fake).detach().requires_grad_(True)
    out = critic(x_hat, condition)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    penalty: Tensor = ((grad.norm(dim=1) - 1.0) ** 2).mean()
    return penalty


class Critic(nn.Module):
    """``D(x, c)``: a residual MLP over ``[x, physics_summaries(x)]`` FiLM-conditioned on c.

    Args:
        codec: Supplies the sizes (and, for showers, the layer structure of the physics
            features).
        hidden: Width.
        blocks: Residual blocks.
        physics_features: Append :func:`physics_summaries` of the shape variables (shower
            codecs only; ignored for others).
    """

    def __init__(self, codec: Any, hidden: int, blocks: int, physics_features: bool):
        super().__init__()
        self.codec = [codec]  # a list: not a submodule (the model owns the codec)
        self.physics_features = physics_features and has_physics(codec)
        n_in = codec.first_dim + codec.second_dim
        n_feat = codec.n_layers + 1 if self.physics_features else 0
        self.net = ResidualMLP(n_in + n_feat, 1, codec.condition_dim, hidden, blocks)
        # a constant shift of D cancels in the Wasserstein loss: no output bias
        self.net.out = nn.Linear(hidden, 1, bias=False)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """``x (N, D), c (N, K) -> (N, 1)``."""
        if self.physics_features:
            codec = self.codec[0]
            x = torch.cat([x, physics_summaries(codec, x[:, codec.first_dim :])], 1)
        out: Tensor = self.net(x, c)
        return out


@dataclass
class GANConfig:
    """Options of the ``gan`` model.

    Attributes:
        latent: Size of the generator's N(0, 1) noise.
        hidden: Width of the generator's residual MLP.
        blocks: Residual blocks of the generator.
        critic_hidden: Width of the critic.
        critic_blocks: Residual blocks of the critic.
        physics_features: Give the critic per-layer and total sums of the shape variables.
        n_critic: Critic updates per generator update.
        gp_lambda: Weight of the gradient penalty.
        drift: Weight of ``E[D(real)^2]`` keeping the critic's output near 0 (0: off).
        critic_lr_scale: Critic learning rate relative to ``optim.lr`` (two time scales).
        weight_decay: AdamW weight decay of both networks (replaces ``optim.weight_decay``).
    """

    latent: int = 64
    hidden: int = 256
    blocks: int = 3
    critic_hidden: int = 256
    critic_blocks: int = 3
    physics_features: bool = True
    n_critic: int = 5
    gp_lambda: float = 10.0
    drift: float = 1e-3
    critic_lr_scale: float = 1.0
    weight_decay: float = 0.0


@register("gan")
class GAN(ShowerGenerator):
    """Conditional WGAN-GP generating all codec variables in one shot.

    The generator maps ``(z ~ N(0, 1)^latent, condition)`` to ``[energy, shape]`` (``layers``
    mode) or ``shape`` (``incident`` mode) with no output activation. The critic sees the
    variables, the condition and :func:`physics_summaries`.

    Training: the buffer ``step`` counts training steps; step ``s`` is a generator step when
    ``s % (n_critic + 1) == n_critic``, else a critic step. Only :meth:`training_step`
    advances it, so evaluating :meth:`loss` (validation, tests) leaves the model unchanged,
    and a resumed run continues the exact alternation (the counter is in the state dict).
    """

    ddp_find_unused_parameters = True

    Config = GANConfig
    config: GANConfig
    step: Tensor

    def __init__(self, codec: Any, config: GANConfig) -> None:
        super().__init__(codec, config)
        if config.n_critic < 1:
            raise ConfigError(f"gan n_critic must be >= 1, got {config.n_critic}")
        if config.latent < 1 or config.gp_lambda < 0 or config.critic_lr_scale <= 0:
            raise ConfigError("gan: need latent >= 1, gp_lambda >= 0 and critic_lr_scale > 0")
        self.dim = codec.first_dim + codec.second_dim
        self.generator = ResidualMLP(
            config.latent, self.dim, codec.condition_dim, config.hidden, config.blocks
        )
        self.critic = Critic(
            codec, config.critic_hidden, config.critic_blocks, config.physics_features
        )
        self.register_buffer("step", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------ helpers
    @property
    def loss_cycle(self) -> int:
        """Back-propagated losses per full alternation (``n_critic`` critic + 1 generator)."""
        return int(self.config.n_critic) + 1

    def is_generator_step(self) -> bool:
        """Whether the next back-propagated :meth:`loss` updates the generator."""
        return int(self.step) % self.loss_cycle == self.config.n_critic

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        """Generator at ``lr``, critic at ``lr * critic_lr_scale``; weight decay from config."""
        groups = self.optimizer_groups(lr)
        return groups["generator"] + groups["critic"]

    def optimizer_groups(self, lr: float) -> dict[str, list[dict[str, Any]]]:
        """One optimiser per network (two time scales: the critic at ``critic_lr_scale``)."""
        wd = float(self.config.weight_decay)
        return {
            "generator": [
                {"params": list(self.generator.parameters()), "lr": lr, "weight_decay": wd}
            ],
            "critic": [
                {
                    "params": list(self.critic.parameters()),
                    "lr": lr * self.config.critic_lr_scale,
                    "weight_decay": wd,
                }
            ],
        }

    def _real(self, batch: Encoded) -> Tensor:
        if batch.energy is None:
            return batch.shape
        return torch.cat([batch.energy, batch.shape], 1)

    def generate(self, condition: Tensor, generator: torch.Generator | None) -> Tensor:
        """Encoded samples ``(N, D)`` for encoded conditions ``(N, K)`` (differentiable)."""
        z = self.randn((condition.shape[0], self.config.latent), generator)
        out: Tensor = self.generator(z, condition)
        return out

    def _frozen_critic(self, x: Tensor, c: Tensor) -> Tensor:
        """The critic evaluated with detached parameters: gradients reach ``x`` only."""
        params = {k: v.detach() for k, v in self.critic.named_parameters()}
        buffers = dict(self.critic.named_buffers())
        out: Tensor = functional_call(self.critic, {**params, **buffers}, (x, c))
        return out

    # ------------------------------------------------------------------ losses
    def critic_loss(self, batch: Encoded, generator: torch.Generator | None = None) -> Tensor:
        """``E[D(fake)] - E[D(real)] + gp_lambda GP + drift E[D(real)^2]`` (critic grads only).

        Noise order from ``generator``: latent ``(N, latent)``, then interpolation ``(N, 1)``.
        """
        c, real = batch.condition, self._real(batch)
        with torch.no_grad():
            fake = self.generate(c, generator)
        u = self.rand((c.shape[0], 1), generator)
        d_real, d_fake = self.critic(real, c), self.critic(fake, c)
        loss: Tensor = d_fake.mean() - d_real.mean()
        if self.config.gp_lambda > 0:
            loss = loss + self.config.gp_lambda * gradient_penalty(self.critic, real, fake, c, u)
        if self.config.drift > 0:
            loss = loss + self.config.drift * (d_real**2).mean()
        return loss

    def generator_loss(self, batch: Encoded, generator: torch.Generator | None = None) -> Tensor:
        """``-E[D(G(z, c), c)]`` with a frozen critic (generator grads only)."""
        c = batch.condition
        loss: Tensor = -self._frozen_critic(self.generate(c, generator), c).mean()
        return loss

    def loss(self, batch: Encoded, generator: torch.Generator | None = None) -> Tensor:
        """The critic or generator loss, as the step counter says (see the class docstring);
        the counter is not advanced."""
        if self.is_generator_step():
            return self.generator_loss(batch, generator)
        return self.critic_loss(batch, generator)

    def training_step(
        self, batch: Encoded, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """``{"critic": loss}`` or ``{"generator": loss}`` by turn; advances the counter.

        Logged training losses therefore alternate between the two objectives.
        """
        name = "generator" if self.is_generator_step() else "critic"
        out = self.loss(batch, generator)
        with torch.no_grad():
            self.step.add_(1)
        return {name: out}

    @torch.no_grad()
    def validation_loss(self, batch: Encoded, generator: torch.Generator | None = None) -> Tensor:
        """Moment mismatch between generated and real encoded variables (state unchanged).

        Generates one sample per validation condition and compares, for every encoded variable
        and every :func:`physics_summaries` feature, the batch mean, standard deviation and
        covariance with the condition: the mean squared difference of the three
        :func:`sample_moments` rows, summed over rows. Unlike the critic's Wasserstein
        estimate it does not depend on the (moving) critic, so it is comparable across
        validations; it only sees first and second moments.
        """
        c, real = batch.condition, self._real(batch)
        fake = self.generate(c, generator)
        diff = sample_moments(self.codec, fake, c) - sample_moments(self.codec, real, c)
        return (diff**2).mean(1).sum()

    @torch.no_grad()
    def diagnostics(
        self, batch: Encoded, generator: torch.Generator | None = None
    ) -> dict[str, float]:
        """Mode-collapse monitors (see :func:`collapse_monitors`)."""
        return collapse_monitors(self, batch, generator)

    # ------------------------------------------------------------------ sampling
    def noise_widths(self) -> list[int]:
        """The generator's latent."""
        return [int(self.config.latent)]

    def decode_encoded(self, z: Tensor, condition: Tensor) -> tuple[Tensor | None, Tensor]:
        x: Tensor = self.generator(z, condition)
        n_e = self.codec.first_dim
        return (x[:, :n_e] if n_e else None), x[:, n_e:]
