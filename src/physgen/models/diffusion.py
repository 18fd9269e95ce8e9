"""Variance-preserving diffusion (CaloDiffusion / CaloScore style) with DDIM and DDPM samplers.

Continuous time ``t`` in [0, 1]: ``x_t = alpha(t) x_0 + sigma(t) eps`` with
``alpha = sqrt(alpha_bar)``, ``sigma = sqrt(1 - alpha_bar)``; ``t = 0`` is data, ``t = 1``
(almost) pure noise. The network predicts ``eps`` or ``v = alpha eps - sigma x_0``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from physgen.core.batch import Encoded
from physgen.errors import ConfigError
from physgen.models.base import ShowerGenerator
from physgen.models.registry import register
from physgen.nn import SinusoidalEmbedding
from physgen.nn.conditioned import TimeConditioned, stage_networks

__all__ = [
    "PREDICTIONS",
    "SAMPLERS",
    "Diffusion",
    "DiffusionConfig",
    "NoiseSchedule",
    "ddim_sample",
    "ddpm_sample",
    "dpmpp_2m_sample",
]

SCHEDULES = ("cosine", "linear")
PREDICTIONS = ("eps", "v")
SAMPLERS = ("ddim", "ddpm", "dpm++2m")

#: ``f(x_t (N, D), t (N, 1)) -> prediction (N, D)`` in the model's parametrisation.
Predictor = Callable[[Tensor, Tensor], Tensor]


class NoiseSchedule:
    """``alpha_bar(t)`` of a variance-preserving diffusion on ``t`` in [0, 1].

    * ``cosine`` (Nichol & Dhariwal): ``alpha_bar = f(t) / f(0)`` with
      ``f(t) = cos^2((t + s) / (1 + s) pi / 2)``, ``s = 0.008``.
    * ``linear`` (DDPM's beta from 1e-4 to 0.02 over 1000 steps, continuous):
      ``alpha_bar = exp(-(b0 t + (b1 - b0) t^2 / 2))`` with ``b0 = 0.1``, ``b1 = 20``.

    ``alpha_bar`` is clamped to ``[min_alpha_bar, 1]`` so that ``t = 1`` stays invertible
    (``alpha(1) = 1e-3`` by default).

    Args:
        kind: ``cosine`` or ``linear``.
        s: Offset of the cosine schedule.
        min_alpha_bar: Floor of ``alpha_bar``.
    """

    def __init__(self, kind: str = "cosine", s: float = 0.008, min_alpha_bar: float = 1e-6):
        if kind not in SCHEDULES:
            raise ConfigError(f"noise schedule must be one of {', '.join(SCHEDULES)}, got {kind!r}")
        if not 0.0 < min_alpha_bar < 1.0:
            raise ConfigError(f"min_alpha_bar must be in (0, 1), got {min_alpha_bar}")
        self.kind = kind
        self.s = float(s)
        self.min_alpha_bar = float(min_alpha_bar)

    def alpha_bar(self, t: Tensor) -> Tensor:
        """``alpha_bar(t)`` elementwise (same shape and dtype as ``t``)."""
        t = t.clamp(0.0, 1.0)
        if self.kind == "cosine":
            f0 = math.cos(self.s / (1 + self.s) * math.pi / 2) ** 2
            ab = torch.cos((t + self.s) / (1 + self.s) * math.pi / 2) ** 2 / f0
        else:
            ab = torch.exp(-(0.1 * t + 0.5 * (20.0 - 0.1) * t**2))
        return ab.clamp(self.min_alpha_bar, 1.0)

    def alpha_sigma(self, t: Tensor) -> tuple[Tensor, Tensor]:
        """``(alpha(t), sigma(t))`` with ``alpha^2 + sigma^2 = 1``."""
        ab = self.alpha_bar(t)
        return ab.sqrt(), (1.0 - ab).sqrt()

    def noisy(self, x0: Tensor, eps: Tensor, t: Tensor) -> Tensor:
        """``x_t = alpha x0 + sigma eps`` for ``t`` broadcastable to ``x0``."""
        a, s = self.alpha_sigma(t)
        return a * x0 + s * eps

    def target(self, x0: Tensor, eps: Tensor, t: Tensor, prediction: str) -> Tensor:
        """The regression target: ``eps`` or ``v = alpha eps - sigma x0``."""
        if prediction == "eps":
            return eps
        a, s = self.alpha_sigma(t)
        return a * eps - s * x0

    def split(self, x_t: Tensor, out: Tensor, t: Tensor, prediction: str) -> tuple[Tensor, Tensor]:
        """Network output in ``prediction`` parametrisation -> ``(x0_hat, eps_hat)``.

        ``eps``: ``x0 = (x_t - sigma eps) / alpha``; ``v``: ``x0 = alpha x_t - sigma v``,
        ``eps = sigma x_t + alpha v``.
        """
        a, s = self.alpha_sigma(t)
        if prediction == "eps":
            return (x_t - s * out) / a, out
        return a * x_t - s * out, s * x_t + a * out


def _time_grid(steps: int, like: Tensor) -> Tensor:
    if steps < 1:
        raise ConfigError(f"diffusion sampling steps must be >= 1, got {steps}")
    return torch.linspace(1.0, 0.0, steps + 1, dtype=like.dtype, device=like.device)


def _x0_eps(
    f: Predictor,
    schedule: NoiseSchedule,
    x: Tensor,
    t: Tensor,
    prediction: str,
    clip_x0: float,
) -> tuple[Tensor, Tensor]:
    tt = t.expand(x.shape[0], 1)
    x0, eps = schedule.split(x, f(x, tt), t, prediction)
    if clip_x0 > 0:
        x0 = x0.clamp(-clip_x0, clip_x0)
        a, s = schedule.alpha_sigma(t)
        eps = (x - a * x0) / s
    return x0, eps


def ddim_sample(
    f: Predictor,
    x: Tensor,
    schedule: NoiseSchedule,
    steps: int,
    prediction: str = "eps",
    clip_x0: float = 0.0,
) -> Tensor:
    """Deterministic DDIM (eta = 0) from ``t = 1`` to ``t = 0`` in ``steps`` uniform steps.

    Each step ``t -> s`` predicts ``(x0_hat, eps_hat)`` and sets
    ``x_s = alpha(s) x0_hat + sigma(s) eps_hat``; the last step returns ``x0_hat``.

    Args:
        f: Predictor ``f(x_t (N, D), t (N, 1))`` in the ``prediction`` parametrisation.
        x: Starting noise ``(N, D)`` (standard normal).
        schedule: The noise schedule.
        steps: Network evaluations.
        prediction: ``eps`` or ``v``.
        clip_x0: Clamp ``x0_hat`` to ``[-clip_x0, clip_x0]`` (0: off).

    Returns:
        Samples ``(N, D)``.
    """
    grid = _time_grid(steps, x)
    for i in range(steps):
        t, s = grid[i].reshape(1, 1), grid[i + 1].reshape(1, 1)
        x0, eps = _x0_eps(f, schedule, x, t, prediction, clip_x0)
        if i == steps - 1:
            return x0
        a_s, s_s = schedule.alpha_sigma(s)
        x = a_s * x0 + s_s * eps
    return x


def dpmpp_2m_sample(
    f: Predictor,
    x: Tensor,
    schedule: NoiseSchedule,
    steps: int,
    prediction: str = "eps",
    clip_x0: float = 0.0,
) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022): the probability-flow ODE, second order, multistep.

    With ``lambda = log(alpha / sigma)`` and ``h = lambda_s - lambda_t``, each step ``t -> s``
    sets ``x_s = (sigma_s / sigma_t) x_t - alpha_s expm1(-h) D``, where ``D`` extrapolates the
    data prediction linearly in ``lambda`` from this and the previous step,
    ``D = (1 + 1 / (2 r)) x0_hat - x0_hat_prev / (2 r)`` with ``r = h_prev / h`` (first step:
    ``D = x0_hat``, which is DDIM). The last step returns ``x0_hat`` (first order at the end,
    where ``lambda`` diverges). Same number of network evaluations as DDIM, error
    ``O(1 / steps^2)`` instead of ``O(1 / steps)``.

    Args:
        f: Predictor ``f(x_t (N, D), t (N, 1))`` in the ``prediction`` parametrisation.
        x: Starting noise ``(N, D)`` (standard normal).
        schedule: The noise schedule.
        steps: Network evaluations.
        prediction: ``eps`` or ``v``.
        clip_x0: Clamp ``x0_hat`` to ``[-clip_x0, clip_x0]`` (0: off).

    Returns:
        Samples ``(N, D)``.
    """
    grid = _time_grid(steps, x)
    prev_x0: Tensor | None = None
    prev_h = 1.0
    for i in range(steps):
        t, s = grid[i].reshape(1, 1), grid[i + 1].reshape(1, 1)
        x0, _ = _x0_eps(f, schedule, x, t, prediction, clip_x0)
        if i == steps - 1:
            return x0
        a_t, s_t = schedule.alpha_sigma(t)
        a_s, s_s = schedule.alpha_sigma(s)
        h = float(torch.log(a_s / s_s) - torch.log(a_t / s_t))
        if prev_x0 is None:
            d = x0
        else:
            k = prev_h / h
            d = (1.0 + 0.5 / k) * x0 - (0.5 / k) * prev_x0
        x = (s_s / s_t) * x - a_s * math.expm1(-h) * d
        prev_x0, prev_h = x0, h
    return x


def ddpm_sample(
    f: Predictor,
    x: Tensor,
    schedule: NoiseSchedule,
    steps: int,
    noise: Callable[[tuple[int, ...]], Tensor],
    prediction: str = "eps",
    clip_x0: float = 0.0,
) -> Tensor:
    """Stochastic ancestral (DDPM) sampling in ``steps`` uniform steps.

    Each step ``t -> s < t`` draws from the Gaussian posterior ``q(x_s | x_t, x0_hat)``:
    with ``a = alpha_t / alpha_s`` and ``b = sigma_t^2 - a^2 sigma_s^2`` its mean is
    ``(a sigma_s^2 x_t + alpha_s b x0_hat) / sigma_t^2`` and its variance
    ``b sigma_s^2 / sigma_t^2``; the last step returns ``x0_hat``.

    Args:
        f: Predictor ``f(x_t (N, D), t (N, 1))`` in the ``prediction`` parametrisation.
        x: Starting noise ``(N, D)``.
        schedule: The noise schedule.
        steps: Network evaluations.
        noise: ``noise(shape) -> N(0, 1)`` tensor on ``x``'s device (the caller's generator).
        prediction: ``eps`` or ``v``.
        clip_x0: Clamp ``x0_hat`` to ``[-clip_x0, clip_x0]`` (0: off).

    Returns:
        Samples ``(N, D)``.
    """
    grid = _time_grid(steps, x)
    for i in range(steps):
        t, s = grid[i].reshape(1, 1), grid[i + 1].reshape(1, 1)
        x0, _ = _x0_eps(f, schedule, x, t, prediction, clip_x0)
        if i == steps - 1:
            return x0
        a_t, s_t = schedule.alpha_sigma(t)
        a_s, s_s = schedule.alpha_sigma(s)
        a = a_t / a_s
        b = s_t**2 - a**2 * s_s**2
        mean = (a * s_s**2 * x + a_s * b * x0) / s_t**2
        std = (b * s_s**2 / s_t**2).clamp_min(0.0).sqrt()
        x = mean + std * noise(tuple(x.shape))
    return x


Denoiser = TimeConditioned
"""``f(x_t, t | c)``: a network over ``x`` conditioned on ``[sinusoidal(t), c]``."""


@dataclass
class DiffusionConfig:
    """Options of the ``diffusion`` model.

    Attributes:
        two_stage: In the codec's ``layers`` mode, diffuse the energy variables with their own
            network conditioned on E_inc, and the shape variables with a second network
            conditioned on ``[E_inc, energy variables]`` (CaloScore); else one network over
            ``[energy, shape]``.
        network: Shape network: ``mlp`` (residual MLP) or ``transformer`` (one token per layer).
        hidden: Width of the shape MLP.
        blocks: Residual blocks of the shape MLP.
        d_model: Token width of the transformer.
        depth: Transformer blocks.
        heads: Attention heads.
        energy_hidden: Width of the energy-stage MLP.
        energy_blocks: Residual blocks of the energy-stage MLP.
        time_features: Size of the sinusoidal time embedding.
        schedule: ``cosine`` or ``linear``.
        prediction: Network target: ``eps`` or ``v``.
        sampler: ``ddim`` (deterministic, first order), ``dpm++2m`` (deterministic, second
            order, same cost per step) or ``ddpm`` (ancestral); a sampling option.
        steps: Sampling steps (a sampling option: may be changed after training).
        clip_x0: Clamp predicted ``x0`` to ``[-clip_x0, clip_x0]`` while sampling (0: off).
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
    schedule: str = "cosine"
    prediction: str = "v"
    sampler: str = "ddim"
    steps: int = 50
    clip_x0: float = 0.0


@register("diffusion")
class Diffusion(ShowerGenerator):
    """Denoising diffusion on the codec's variables.

    Two-stage (default, ``layers`` mode): an energy denoiser over the L energy variables and a
    shape denoiser conditioned on them; sampling runs the energy chain first and feeds its
    result to the shape chain. Training: ``t ~ U(0, 1)``, plain MSE on the target.
    """

    Config = DiffusionConfig
    sampling_options = ("steps", "sampler", "clip_x0")

    def __init__(self, codec: Any, config: DiffusionConfig) -> None:
        super().__init__(codec, config)
        if config.network not in ("mlp", "transformer"):
            raise ConfigError(
                f"diffusion network must be 'mlp' or 'transformer', got {config.network!r}"
            )
        if config.prediction not in PREDICTIONS:
            raise ConfigError(
                f"diffusion prediction must be 'eps' or 'v', got {config.prediction!r}"
            )
        if config.sampler not in SAMPLERS:
            raise ConfigError(
                f"diffusion sampler must be one of {', '.join(SAMPLERS)}, got {config.sampler!r}"
            )
        self.schedule = NoiseSchedule(config.schedule)
        n_e, tf = codec.first_dim, config.time_features
        self.two_stage = bool(config.two_stage and n_e > 0)
        self.energy_net, self.shape_net = stage_networks(
            codec.groups,
            n_e,
            condition_dim=codec.condition_dim,
            two_stage=self.two_stage,
            network=config.network,
            time_features=tf,
            make_time=lambda: SinusoidalEmbedding(tf, scale=1000.0),
            hidden=config.hidden,
            blocks=config.blocks,
            d_model=config.d_model,
            depth=config.depth,
            heads=config.heads,
            energy_hidden=config.energy_hidden,
            energy_blocks=config.energy_blocks,
        )

    # ------------------------------------------------------------------ training
    def _dsm_loss(
        self, net: TimeConditioned, x0: Tensor, c: Tensor, generator: torch.Generator | None
    ) -> Tensor:
        eps = self.randn(tuple(x0.shape), generator)
        t = self.rand((x0.shape[0], 1), generator)
        xt = self.schedule.noisy(x0, eps, t)
        target = self.schedule.target(x0, eps, t, self.config.prediction)
        loss: Tensor = ((net(xt, t, c) - target) ** 2).mean()
        return loss

    def loss(self, batch: Encoded, generator: torch.Generator | None = None) -> Tensor:
        """Mean squared error of the ``eps``/``v`` prediction (summed over the two stages).

        Noise order from ``generator``: per stage ``eps (N, D)`` then ``t (N, 1)``.
        """
        c = batch.condition
        if self.two_stage:
            assert batch.energy is not None and self.energy_net is not None
            le = self._dsm_loss(self.energy_net, batch.energy, c, generator)
            cs = torch.cat([c, batch.energy], 1)
            return le + self._dsm_loss(self.shape_net, batch.shape, cs, generator)
        x0 = batch.shape if batch.energy is None else torch.cat([batch.energy, batch.shape], 1)
        return self._dsm_loss(self.shape_net, x0, c, generator)

    # ------------------------------------------------------------------ sampling
    def _draws(self) -> int:
        """Standard-normal draws per sampled variable: the start, plus one per DDPM step."""
        return self.config.steps if self.config.sampler == "ddpm" else 1

    def _sample(self, net: TimeConditioned, z: Tensor, c: Tensor) -> Tensor:
        """Denoise from the noise ``z (N, draws * dim)``: start, then the DDPM step noises."""
        cfg = self.config
        parts = list(z.chunk(self._draws(), dim=1))
        x = parts.pop(0)

        def f(xt: Tensor, t: Tensor) -> Tensor:
            out: Tensor = net(xt, t, c)
            return out

        if cfg.sampler == "ddpm":
            return ddpm_sample(
                f,
                x,
                self.schedule,
                cfg.steps,
                lambda shape: parts.pop(0),
                cfg.prediction,
                cfg.clip_x0,
            )
        if cfg.sampler == "dpm++2m":
            return dpmpp_2m_sample(f, x, self.schedule, cfg.steps, cfg.prediction, cfg.clip_x0)
        return ddim_sample(f, x, self.schedule, cfg.steps, cfg.prediction, cfg.clip_x0)

    def noise_widths(self) -> list[int]:
        """Per stage: the start ``x_1`` and (DDPM) the noise of each later step."""
        n_e, n_v = self.codec.first_dim, self.codec.second_dim
        dims = [n_e, n_v] if self.two_stage else [n_e + n_v]
        return [d for d in dims for _ in range(self._draws())]

    def decode_encoded(self, z: Tensor, condition: Tensor) -> tuple[Tensor | None, Tensor]:
        c, n_e = condition, self.codec.first_dim
        k = self._draws()
        if self.two_stage:
            assert self.energy_net is not None
            energy = self._sample(self.energy_net, z[:, : k * n_e], c)
            shape = self._sample(self.shape_net, z[:, k * n_e :], torch.cat([c, energy], 1))
            return energy, shape
        x = self._sample(self.shape_net, z, c)
        return (x[:, :n_e] if n_e else None), x[:, n_e:]
