"""Training of the multi-channel neural importance sampler.

The sampler for channel ``c`` is ``x = V_c(z)``, ``z ~ q_c`` (a spline flow on the cube)
and ``V_c`` the channel's VEGAS grid (trained first, on ``vegas_fraction`` of the calls),
followed by the analytic channel mapping ``y = map_c(x)``. Channel ``c`` integrates
``alpha_c(y) f(y) |dy/dx| |dx/dz|`` where ``alpha`` = prior x learned correction.

Losses (both importance-weighted with the density the stored points were drawn from, so
buffered points stay valid): ``"variance"`` -- the stratified variance
``(sum_c sigma_c)^2 / I^2``, which trains flows and channel weights together and covers
modes (a missed region costs ``w^2``); ``"kl"`` -- the forward KL divergence per channel
(flows only). Buffered training: every online batch is stored and ``buffered_steps``
extra optimiser steps are taken on random stored points (no new integrand calls).
All sums are float64.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from physgen.errors import ConfigError
from physgen.nis.flows import ChannelFlows, ChannelWeightNet
from physgen.nis.integrands import MultiChannelIntegrand, evaluate_checked
from physgen.nis.vegas import VegasMap, train_vegas

if TYPE_CHECKING:
    from tqdm import tqdm as Tqdm

__all__ = [
    "NISSampler",
    "SampleBatch",
    "TrainConfig",
    "allocate",
    "fused_adam_available",
    "progress_bar",
    "train_sampler",
]

log = logging.getLogger("physgen.nis")


def progress_bar(total: int, desc: str, unit: str, progress: bool | None) -> Tqdm:
    """A tqdm bar on stderr for a long NIS stage.

    Args:
        total: Units of work (integrand calls, points or events).
        desc: Label in front of the bar.
        unit: Name of one unit (``"call"``, ``"pt"``, ``"event"``).
        progress: True shows the bar, False hides it, None shows it only when stderr is
            a terminal (batch logs and pipes stay clean), as every physgen command does.

    Returns:
        The bar; close it (or use it as a context manager) when the stage ends.
    """
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        unit_scale=True,
        dynamic_ncols=True,
        disable=None if progress is None else not progress,
    )


@dataclass
class TrainConfig:
    """Options of :func:`train_sampler` (defaults tuned on camel/Drell-Yan at 5e5 calls).

    Attributes:
        calls: Integrand calls for training (VEGAS stage included).
        batch_size: Points per online step.
        loss: ``"variance"`` or ``"kl"``.
        learning_rate: Peak Adam learning rate (cosine decay to 1 %).
        buffered_steps: Extra optimiser steps on stored points per online step.
        buffer_capacity: Stored points (oldest dropped first).
        buffer_batch_size: Points per buffered step (0 = ``batch_size``).
        vegas_fraction: Share of ``calls`` for the VEGAS grids (0 = no VEGAS initialisation).
        vegas_iterations: VEGAS adaptation iterations.
        vegas_bins: VEGAS increments per axis.
        vegas_anneal_start: Exponent of the tempered target of the first VEGAS iteration
            (raised to 1 over the iterations; 1 = plain VEGAS).
        train_channel_weights: Learn a correction of the prior channel weights.
        bins: Spline bins of the flows.
        hidden: Hidden layer sizes of the coupling networks.
        allow_negative: Accept negative integrand values (trained on ``|f|``, signed weights).
        uniform_fraction: Share of points drawn uniformly in the VEGAS-warped space (a
            defensive mixture ``(1 - e) q_flow + e q_vegas``): bounds every weight by
            ``f / (e q_vegas)``, so a region the flow lost keeps being sampled and pulls
            the flow back, at a small variance cost.
        sample_uniform_fraction: The same mixture share for the final (evaluation and event)
            samples; smaller than in training, where exploration matters, because the
            uniform points cost unweighting efficiency. The loss fits this sampling mixture
            (not the training one) to the target: a flow fitted inside a 5 % mixture learns
            ``(p - 0.05)/0.95`` and, sampled inside a 1 % mixture, over-weights every region
            where the target density ``p`` is low (up to +20 % at ``p = 0.2``).
        smooth_vegas: Join the trained VEGAS increments by a monotone spline with a continuous
            density (:meth:`VegasMap.smoothed`) before the flow is put on top; the classic
            grid's density jumps at each of its edges, which the flow cannot undo exactly.
        anneal_fraction: Share of the optimiser steps over which the target is annealed
            from ``h^anneal_start`` to ``h`` (``h`` = channel integrand in the flow's
            coordinates): a tempered, broad target first, so the flow puts mass on every
            mode before they sharpen (the cure for mode collapse at d = 8). 0 = off.
        anneal_start: Initial exponent of the annealing (in (0, 1]).
        softclip: MadNIS's soft clipping of the importance weights in the loss,
            ``t asinh(w / t)`` with ``t`` = ``softclip`` x the batch's mean weight; tames
            single huge weights early in training. 0 = off.
    """

    calls: int = 500_000
    batch_size: int = 1024
    loss: str = "variance"
    learning_rate: float = 3e-3
    buffered_steps: int = 3
    buffer_capacity: int = 200_000
    buffer_batch_size: int = 0
    vegas_fraction: float = 0.2
    vegas_iterations: int = 5
    vegas_bins: int = 64
    vegas_anneal_start: float = 0.5
    train_channel_weights: bool = True
    bins: int = 10
    hidden: tuple[int, ...] = (64, 64)
    allow_negative: bool = False
    uniform_fraction: float = 0.05
    sample_uniform_fraction: float = 0.01
    anneal_fraction: float = 0.5
    anneal_start: float = 0.3
    smooth_vegas: bool = True
    softclip: float = 0.0

    def validate(self) -> None:
        """Raise :class:`ConfigError` for out-of-range options."""
        if self.loss not in ("variance", "kl"):
            raise ConfigError(f"loss must be 'variance' or 'kl', got {self.loss!r}")
        if self.batch_size < 16:
            raise ConfigError(f"batch_size must be >= 16, got {self.batch_size}")
        if not 0.0 <= self.vegas_fraction < 1.0:
            raise ConfigError(f"vegas_fraction must be in [0, 1), got {self.vegas_fraction}")
        if self.softclip < 0:
            raise ConfigError(f"softclip must be >= 0 (0 = off), got {self.softclip}")
        if self.buffered_steps < 0:
            raise ConfigError(f"buffered_steps must be >= 0, got {self.buffered_steps}")
        if self.buffer_batch_size != 0 and self.buffer_batch_size < 16:
            raise ConfigError(f"buffer_batch_size must be 0 or >= 16, got {self.buffer_batch_size}")
        if not 0.0 <= self.sample_uniform_fraction < 1.0:
            raise ConfigError(
                f"sample_uniform_fraction must be in [0, 1), got {self.sample_uniform_fraction}"
            )
        if not 0.0 <= self.uniform_fraction < 1.0:
            raise ConfigError(f"uniform_fraction must be in [0, 1), got {self.uniform_fraction}")
        if not 0.0 <= self.anneal_fraction <= 1.0 or not 0.0 < self.anneal_start <= 1.0:
            raise ConfigError(
                f"anneal_fraction must be in [0, 1] and anneal_start in (0, 1], got "
                f"{self.anneal_fraction}, {self.anneal_start}"
            )
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")

    def min_calls(self) -> int:
        """Smallest training budget that allows 20 online steps after the VEGAS stage."""
        return math.ceil(20 * self.batch_size / (1.0 - self.vegas_fraction))


@dataclass
class SampleBatch:
    """Fresh weighted points.

    Attributes:
        y: Points on the integrand's cube, ``(n, dim)`` float64.
        weight: Pooled weights ``f/q`` (signed), ``(n,)`` float64; ``mean(weight)`` estimates I.
        channel: Channel of each point, ``(n,)`` int64.
        f: Integrand values, ``(n,)`` float64.
    """

    y: Tensor
    weight: Tensor
    channel: Tensor
    f: Tensor


def fused_adam_available(version: str) -> bool:
    """True for torch versions with the fused CPU Adam kernel (2.4 and later).

    Compared as versions, not strings: ``"2.13.0" >= "2.4"`` is False as text.
    """
    from torch.torch_version import TorchVersion

    return bool(TorchVersion(version) >= "2.4")


def allocate(n: int, fractions: Tensor) -> list[int]:
    """Split ``n`` points over channels in proportion to ``fractions`` (largest remainder).

    Every channel gets at least one point when ``n >= len(fractions)`` (taken from the
    largest share), so no channel drops out of a pooled estimate. Deterministic.

    Args:
        n: Number of points.
        fractions: ``(n_channels,)`` non-negative shares summing to 1.

    Returns:
        Points per channel, summing to ``n``.
    """
    raw = fractions.to(torch.float64) * n
    base = torch.floor(raw).long()
    rest = n - int(base.sum())
    order = torch.argsort(raw - base, descending=True)
    base[order[:rest]] += 1
    if n >= base.numel():
        for c in (base == 0).nonzero().flatten().tolist():
            base[int(torch.argmax(base))] -= 1
            base[c] = 1
    return [int(v) for v in base]


class NISSampler:
    """VEGAS grids + spline flows + channel weights for one multi-channel integrand."""

    def __init__(self, problem: MultiChannelIntegrand, config: TrainConfig) -> None:
        self.problem = problem
        self.config = config
        c = problem.n_channels
        self.grids: list[VegasMap] = [VegasMap(problem.dim, config.vegas_bins) for _ in range(c)]
        self.flows = ChannelFlows(problem.dim, c, config.bins, config.hidden)
        self.cwnet = ChannelWeightNet(problem.dim, c) if c > 1 else None
        self.fractions = torch.full((c,), 1.0 / c, dtype=torch.float64)
        self.sample_fractions = self.fractions.clone()

    # -- evaluation of one channel --------------------------------------------------
    def _channel_values(self, z: Tensor, channel: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Return ``(y, g0, f, prior)`` for latent points of one channel."""
        p = self.problem
        x, jv = self.grids[channel].map(z[:, : p.dim].to(torch.float64))
        y, jc = p.channel_map(x, channel)
        f = evaluate_checked(p, y, p.name, self.config.allow_negative)
        prior = p.prior(y)
        return y, f * jc * jv, f, prior

    @torch.no_grad()
    def draw_latent(
        self, n: int, channel: int, fraction: float | None = None
    ) -> tuple[Tensor, Tensor]:
        """Latent points of one channel from the defensive mixture.

        Returns:
            ``(z, log_q)``: points ``(n, flow_dim)`` and mixture log densities (float64).
        """
        frac = self.config.uniform_fraction if fraction is None else fraction
        n_u = round(frac * n)
        if n_u == 0:
            return self.flows.sample(n, channel)
        eps = n_u / n
        z_f, lq_f = self.flows.sample(n - n_u, channel)
        z_u = torch.rand(n_u, self.flows.flow_dim).clamp(1e-7, 1 - 1e-7)
        lq = torch.cat([lq_f, self.flows.log_prob(z_u, channel).to(torch.float64)])
        mix = torch.logaddexp(lq + math.log1p(-eps), torch.full_like(lq, math.log(eps)))
        return torch.cat([z_f, z_u]), mix

    def mixture_log_prob(self, z: Tensor, channel: int, eps: float | None = None) -> Tensor:
        """``log((1 - e) q_flow(z) + e)`` (float64; differentiable in the flow)."""
        e = self.config.uniform_fraction if eps is None else eps
        lq = self.flows.log_prob(z, channel).to(torch.float64)
        if e <= 0:
            return lq
        return torch.logaddexp(lq + math.log1p(-e), torch.full_like(lq, math.log(e)))

    def alphas(self, y: Tensor, prior: Tensor) -> Tensor:
        """Channel weights ``(n, n_channels)`` (prior x learned correction)."""
        if self.cwnet is None:
            return torch.ones(y.shape[0], 1, dtype=torch.float64)
        out: Tensor = self.cwnet(y, prior)
        return out

    def counts(self, n: int, fractions: Tensor | None = None) -> list[int]:
        """Deterministic split of ``n`` points over channels (default ``self.fractions``)."""
        return allocate(n, self.fractions if fractions is None else fractions)

    @torch.no_grad()
    def sample(self, n: int) -> SampleBatch:
        """Draw ``n`` fresh weighted points (integrand calls: ``n``); uses the torch RNG.

        Channels get points in proportion to their integrals (``self.sample_fractions``,
        estimated during training), so that every channel's weights scatter around the same
        value ``I``: the allocation that lets the unweighting maximum serve all channels.
        """
        ys, ws, cs, fs = [], [], [], []
        for c, nc in enumerate(self.counts(n, self.sample_fractions)):
            if nc == 0:
                continue
            z, log_q = self.draw_latent(nc, c, self.config.sample_uniform_fraction)
            y, g0, f, prior = self._channel_values(z, c)
            alpha = self.alphas(y, prior)[:, c]
            # divided by the share of points the channel got (not the target fraction, which
            # the integer split only approximates): the pooled mean is then exactly the sum
            # of the channel means
            ws.append(alpha * g0 * torch.exp(-log_q) * (n / nc))
            ys.append(y)
            fs.append(f)
            cs.append(torch.full((nc,), c, dtype=torch.int64))
        return SampleBatch(torch.cat(ys), torch.cat(ws), torch.cat(cs), torch.cat(fs))

    def log_density(self, y: Tensor) -> Tensor | None:
        """Sampling density at common points ``y`` for single-channel identity problems.

        Returns ``None`` when the density cannot be inverted (several channels).
        """
        if self.problem.n_channels != 1:
            return None
        u, jac = self.grids[0].inverse(y)
        z = u.to(torch.float32)
        if self.flows.flow_dim > self.problem.dim:
            z = torch.cat([z, torch.full((z.shape[0], 1), 0.5)], dim=1)
        with torch.no_grad():
            lq = self.mixture_log_prob(
                z.clamp(1e-7, 1 - 1e-7), 0, self.config.sample_uniform_fraction
            )
        return lq - torch.log(jac)


def _loss(
    sampler: NISSampler,
    z: Tensor,
    chan: Tensor,
    log_q_old: Tensor,
    g0: Tensor,
    y: Tensor,
    prior: Tensor,
    kind: str,
    beta: float = 1.0,
    softclip: float = 0.0,
) -> Tensor:
    """Stratified variance or KL loss on stored points (importance-weighted)."""
    n_ch = sampler.problem.n_channels
    alpha_all = sampler.alphas(y, prior)
    sig, ints, kl = [], [], []
    for c in range(n_ch):
        m = chan == c
        if int(m.sum()) < 2:
            continue
        # fit the mixture that will be sampled (the stored log_q_old is the drawing density)
        log_q = sampler.mixture_log_prob(z[m], c, sampler.config.sample_uniform_fraction)
        a = alpha_all[m, c]
        v = a * g0[m].abs()
        if beta != 1.0:
            v = v.clamp(min=1e-300) ** beta
        r = v * torch.exp(-log_q_old[m])  # alpha f / q_old: unbiased weights of the old density
        if softclip > 0:  # t asinh(w / t) in units of the mean weight (MadNIS's softclip)
            norm = r.mean().detach().clamp(min=1e-300)
            r = softclip * norm * torch.asinh(r / (softclip * norm))
        if kind == "variance":
            ratio = torch.exp(log_q - log_q_old[m])
            second = (r * r / ratio).mean()
            first = r.mean()
            sig.append(torch.sqrt((second - first * first).clamp(min=1e-30)))
            ints.append(first)
        else:
            kl.append(-(r.detach() * log_q).mean())
            ints.append(r.detach().mean())
    total = torch.stack(ints).sum().detach().clamp(min=1e-300)
    if kind == "variance":
        return (torch.stack(sig).sum() / total) ** 2
    return torch.stack(kl).sum() / total


def train_sampler(
    problem: MultiChannelIntegrand,
    config: TrainConfig,
    seed: int = 0,
    progress: bool | None = None,
) -> tuple[NISSampler, dict[str, Any]]:
    """Train VEGAS grids, flows and channel weights on ``config.calls`` integrand calls.

    Args:
        problem: The (multi-channel) integrand.
        config: Training options.
        seed: Seed; the global torch RNG is restored afterwards.
        progress: A tqdm bar of the integrand calls spent (None: only on a terminal).

    Returns:
        The trained sampler and a history dict (``calls``, ``seconds``, ``losses``,
        ``vegas_estimate``/``vegas_error`` of the last VEGAS iteration, channel fractions).

    Raises:
        ConfigError: Bad options or a budget too small to train.
    """
    config.validate()
    if config.calls < config.min_calls():
        raise ConfigError(
            f"calls={config.calls} is too small to train the flow: need >= {config.min_calls()} "
            f"(20 batches of {config.batch_size} after the VEGAS stage)"
        )
    t0 = time.perf_counter()
    with (
        progress_bar(config.calls, f"train {problem.name}", "call", progress) as bar,
        torch.random.fork_rng(devices=[]),
    ):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed + 7919)
        sampler = NISSampler(problem, config)
        n_ch = problem.n_channels
        used = 0
        vegas_est, vegas_err = [], []
        vegas_calls = int(config.vegas_fraction * config.calls)
        for c in range(n_ch):
            if vegas_calls == 0:
                break

            def g(x: Tensor, c: int = c) -> Tensor:
                y, jc = problem.channel_map(x, c)
                f = evaluate_checked(problem, y, problem.name, config.allow_negative)
                return problem.prior(y)[:, c] * f * jc

            grid, n_used = train_vegas(
                g,
                problem.dim,
                vegas_calls // n_ch,
                config.vegas_iterations,
                gen,
                config.vegas_bins,
                anneal_start=config.vegas_anneal_start,
            )
            if config.smooth_vegas:
                grid = grid.smoothed()
            sampler.grids[c] = grid
            used += n_used
            # per-channel estimate with the final grid (small, for the channel split)
            u = torch.rand(
                max(2048, vegas_calls // n_ch // 20),
                problem.dim,
                generator=gen,
                dtype=torch.float64,
            )
            x, jv = grid.map(u)
            w = g(x) * jv
            used += u.shape[0]
            vegas_est.append(float(w.mean()))
            vegas_err.append(float(w.std() / math.sqrt(w.shape[0])))
            bar.update(used - bar.n)
        if vegas_est and n_ch > 1:
            fr = torch.tensor(vegas_est, dtype=torch.float64).abs() + 1e-12
            sampler.fractions = 0.8 * fr / fr.sum() + 0.2 / n_ch

        params = list(sampler.flows.parameters())
        if sampler.cwnet is not None and config.train_channel_weights and config.loss == "variance":
            params += list(sampler.cwnet.parameters())
        # the fused CPU kernel (torch >= 2.4) is the faster one for these small networks
        fused = fused_adam_available(torch.__version__)
        opt = torch.optim.Adam(params, lr=config.learning_rate, fused=fused or None)
        steps = max(1, (config.calls - used) // config.batch_size)
        total_opt = steps * (1 + config.buffered_steps)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda k: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * min(k, total_opt) / total_opt)),
        )
        n_anneal = config.anneal_fraction * total_opt

        def beta(k: int) -> float:
            if k >= n_anneal:
                return 1.0
            return config.anneal_start + (1.0 - config.anneal_start) * k / n_anneal

        opt_steps = 0
        keys = ("z", "c", "lq", "g0", "y", "prior")
        buf: dict[str, Tensor] = {}  # ring buffer of the latest buffer_capacity points
        buf_n = buf_pos = 0
        cap = max(config.buffer_capacity, config.batch_size)
        buffer_batch = config.buffer_batch_size or config.batch_size
        losses: list[float] = []
        second = torch.zeros(n_ch, dtype=torch.float64)
        first = torch.zeros(n_ch, dtype=torch.float64)  # channel integrals (slower average)
        for _step in range(steps):
            fresh: dict[str, list[Tensor]] = {k: [] for k in keys}
            for c, nc in enumerate(sampler.counts(config.batch_size)):
                if nc < 2:
                    continue
                z, lq = sampler.draw_latent(nc, c)
                with torch.no_grad():
                    y, g0, _f, prior = sampler._channel_values(z, c)
                    a = sampler.alphas(y, prior)[:, c]
                    w = a * g0.abs() * torch.exp(-lq)
                    second[c] = 0.9 * second[c] + 0.1 * (w * w).mean() if _step else (w * w).mean()
                    first[c] = 0.95 * first[c] + 0.05 * w.mean() if _step else w.mean()
                used += nc
                for k, v in zip(fresh, (z, torch.full((nc,), c), lq, g0, y, prior), strict=True):
                    fresh[k].append(v)
            batch = {k: torch.cat(v) for k, v in fresh.items()}
            opt.zero_grad()
            loss = _loss(
                sampler,
                batch["z"],
                batch["c"],
                batch["lq"],
                batch["g0"],
                batch["y"],
                batch["prior"],
                config.loss,
                beta(opt_steps),
                config.softclip,
            )
            opt_steps += 1
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            bar.update(used - bar.n)
            if n_ch > 1:
                fr = torch.sqrt(second) + 1e-300
                sampler.fractions = 0.9 * fr / fr.sum() + 0.1 / n_ch
                fr = first + 1e-300
                sampler.sample_fractions = 0.999 * fr / fr.sum() + 0.001 / n_ch
            if config.buffered_steps == 0:
                continue
            nb = batch["z"].shape[0]
            if not buf:
                buf = {k: v.new_empty((cap, *v.shape[1:])) for k, v in batch.items()}
            put = (buf_pos + torch.arange(nb)) % cap
            for k in keys:
                buf[k][put] = batch[k]
            buf_pos = (buf_pos + nb) % cap
            buf_n = min(buf_n + nb, cap)
            flat = {k: v[:buf_n] for k, v in buf.items()}
            for _ in range(config.buffered_steps):
                idx = torch.randint(0, buf_n, (buffer_batch,), generator=gen)
                opt.zero_grad()
                loss = _loss(
                    sampler,
                    flat["z"][idx],
                    flat["c"][idx],
                    flat["lq"][idx],
                    flat["g0"][idx],
                    flat["y"][idx],
                    flat["prior"][idx],
                    config.loss,
                    beta(opt_steps),
                    config.softclip,
                )
                opt_steps += 1
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                sched.step()
        bar.total = used  # whole batches: a few calls short of the budget
        bar.refresh()
    history: dict[str, Any] = {
        "calls": used,
        "seconds": time.perf_counter() - t0,
        "losses": losses,
        "vegas_estimate": sum(vegas_est) if vegas_est else None,
        "vegas_error": math.sqrt(sum(e * e for e in vegas_err)) if vegas_err else None,
        "channel_fractions": sampler.fractions.tolist(),
        "sample_fractions": sampler.sample_fractions.tolist(),
    }
    log.info("trained %s on %d calls in %.1f s", problem.name, used, history["seconds"])
    return sampler, history
