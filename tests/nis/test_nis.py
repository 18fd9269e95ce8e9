"""Neural importance sampling: exact integrals, determinism, multi-channel, mode-collapse guard."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from physgen.errors import ConfigError
from physgen.nis import Camel, CoverageError, DrellYanLike, TrainConfig, integrate, train_sampler
from physgen.nis.flows import (
    ChannelFlows,
    CubeRQS,
    spline_forward,
    spline_forward_params,
    spline_inverse_params,
    spline_table,
)
from physgen.nis.vegas import VegasMap, train_vegas

torch.set_num_threads(1)

SMALL = {"batch_size": 256, "buffered_steps": 1, "hidden": (32, 32)}


def test_spline_is_a_bijection_of_the_cube() -> None:
    g = torch.Generator().manual_seed(0)
    t = CubeRQS(*(torch.randn(7, k, generator=g, dtype=torch.float64) for k in (6, 6, 7)))
    x = torch.rand(7, generator=g, dtype=torch.float64) - 0.5
    y, ladj = t.call_and_ladj(x)
    assert torch.allclose(t._inverse(y), x, atol=1e-5)
    assert y.min() >= -0.5 and y.max() <= 0.5
    eps = 1e-6
    num = torch.log((t.call_and_ladj(x + eps)[0] - t.call_and_ladj(x - eps)[0]) / (2 * eps))
    assert torch.allclose(num, ladj, atol=1e-4)


def test_flow_density_is_normalised() -> None:
    torch.manual_seed(0)
    f = ChannelFlows(3, 1, hidden=(16,))
    for p in f.parameters():
        p.data.normal_(0, 0.1)
    z, lq = f.sample(50_000, 0)
    assert torch.allclose(f.log_prob(z, 0).double(), lq, atol=1e-3)
    assert float(torch.exp(-lq).mean()) == pytest.approx(1.0, abs=0.03)  # E_q[1/q] = volume


def test_fused_spline_matches_autograd_reference() -> None:
    g = torch.Generator().manual_seed(1)
    k = 5
    phi = (1.5 * torch.randn(40, 3, 3 * k + 1, generator=g, dtype=torch.float64)).requires_grad_()
    x = (torch.rand(40, 3, generator=g, dtype=torch.float64) - 0.5).requires_grad_()
    y1, l1 = spline_forward_params(phi, x, k)
    y2, l2 = spline_forward(spline_table(phi, k), x)
    assert torch.allclose(y1, y2, atol=1e-12) and torch.allclose(l1, l2, atol=1e-10)
    gy, gl = torch.randn(40, 3, generator=g, dtype=torch.float64), torch.randn(40, 3, generator=g)
    g1 = torch.autograd.grad((y1 * gy + l1 * gl).sum(), (phi, x))
    g2 = torch.autograd.grad((y2 * gy + l2 * gl).sum(), (phi, x))
    for a, b in zip(g1, g2, strict=True):
        assert torch.allclose(a, b, atol=1e-9)
    assert torch.autograd.gradcheck(lambda p, v: spline_forward_params(p, v, k), (phi, x))
    xi, ladj = spline_inverse_params(phi.detach(), y1.detach(), k)
    assert torch.allclose(xi, x.detach(), atol=1e-9) and torch.allclose(
        ladj, l1.detach(), atol=1e-8
    )


def test_one_pass_flow_matches_zuko() -> None:
    torch.manual_seed(3)
    f = ChannelFlows(5, 2, hidden=(16,))
    for p in f.parameters():
        p.data.normal_(0, 0.2)
    torch.manual_seed(4)
    z, lq = f.sample(4000, 1)
    torch.manual_seed(4)
    z_ref, lq_ref = f.flows[1]().rsample_and_log_prob((4000,))  # zuko's own two-pass path
    assert torch.allclose(z, (z_ref + 0.5).clamp(1e-7, 1 - 1e-7), atol=1e-5)
    assert torch.allclose(lq, lq_ref.double(), atol=1e-3)
    with torch.no_grad():
        assert torch.allclose(f.log_prob(z, 1), f.flows[1]().log_prob(z - 0.5), atol=1e-4)


def test_smoothed_vegas_map_keeps_increments_and_is_continuous() -> None:
    gen = torch.Generator().manual_seed(0)
    grid, _ = train_vegas(Camel(2), 2, 40_000, 4, gen, bins=16)
    smooth = grid.smoothed()
    edges = grid.edges[:, 3:5].T.contiguous()  # two inner knots per axis
    knots_u = torch.tensor([[3 / 16, 3 / 16], [4 / 16, 4 / 16]], dtype=torch.float64)
    assert torch.allclose(smooth.map(knots_u)[0], edges, atol=1e-12)  # same increments
    u = torch.rand(20_000, 2, generator=gen, dtype=torch.float64)
    x, jac = smooth.map(u)
    u2, jac2 = smooth.inverse(x)
    assert torch.allclose(u2, u, atol=1e-10) and torch.allclose(jac2, jac, rtol=1e-8)
    eps = 1e-9  # density continuous across an edge (the classic map jumps there)
    e = float(grid.edges[0, 5])
    pair = torch.tensor([[e - eps, 0.5], [e + eps, 0.5]], dtype=torch.float64)
    j_s, j_c = smooth.inverse(pair)[1], grid.inverse(pair)[1]
    assert abs(float(j_s[0] / j_s[1]) - 1) < 1e-5
    assert abs(float(j_c[0] / j_c[1]) - 1) > 1e-3
    w = Camel(2)(x) * jac
    assert abs(float(w.mean()) - 1.0) < 5 * float(w.std()) / math.sqrt(w.numel())


def test_vegas_grid_adapts_and_preserves_volume() -> None:
    gen = torch.Generator().manual_seed(0)
    grid, used = train_vegas(Camel(2), 2, 50_000, 5, gen, bins=32)
    assert used == 50_000
    u = torch.rand(100_000, 2, generator=gen, dtype=torch.float64)
    x, jac = grid.map(u)
    w = Camel(2)(x) * jac
    flat = Camel(2)(u)
    assert float(w.std()) < 0.7 * float(flat.std())  # importance sampling helps
    assert abs(float(w.mean()) - 1.0) < 5 * float(w.std()) / math.sqrt(w.numel())
    assert isinstance(grid, VegasMap)


def test_nis_camel2_exact_and_deterministic() -> None:
    cfg = TrainConfig(**SMALL)  # type: ignore[arg-type]
    r1 = integrate(Camel(2), method="nis", calls=40_000, eval_calls=40_000, seed=5, config=cfg)
    assert r1.exact is not None
    assert abs(r1.integral - r1.exact) < 4 * r1.error
    assert r1.rel_std < 1.0  # uniform sampling has 2.6, VEGAS map-only 1.0
    assert r1.coverage in ("ok", "warning")
    assert r1.train_calls <= 40_000
    r2 = integrate(
        Camel(2), method="nis", calls=40_000, eval_calls=40_000, seed=5, config=TrainConfig(**SMALL)
    )  # type: ignore[arg-type]
    assert r2.integral == r1.integral and r2.error == r1.error


def test_nis_multichannel_drell_yan() -> None:
    cfg = TrainConfig(**SMALL)  # type: ignore[arg-type]
    r = integrate(
        DrellYanLike(3), method="nis", calls=40_000, eval_calls=40_000, seed=1, config=cfg
    )
    assert abs(r.integral - 1.0) < 4 * r.error
    assert r.rel_std < 1.0


def test_channels_sampled_in_proportion_to_their_integrals() -> None:
    """Every channel's weights scatter around the same value (the unweighting allocation)."""
    sampler, hist = train_sampler(DrellYanLike(3), TrainConfig(calls=60_000, **SMALL), seed=2)  # type: ignore[arg-type]
    torch.manual_seed(0)
    b = sampler.sample(60_000)
    mean = float(b.weight.mean())
    for c in range(3):
        wc = b.weight[b.channel == c]
        assert abs(float(wc.mean()) / mean - 1) < 0.05, (c, float(wc.mean()) / mean)
    assert sum(hist["sample_fractions"]) == pytest.approx(1.0)


def test_buffer_batch_size_and_softclip_checked() -> None:
    with pytest.raises(ConfigError, match="buffer_batch_size"):
        TrainConfig(buffer_batch_size=3).validate()
    with pytest.raises(ConfigError, match="softclip"):
        TrainConfig(softclip=-1.0).validate()


def test_softclip_training_stays_unbiased() -> None:
    """Clipping shapes the loss only: the estimate keeps its exact value within errors."""
    cfg = TrainConfig(softclip=3.0, **SMALL)  # type: ignore[arg-type]
    r = integrate(Camel(2), method="nis", calls=30_000, eval_calls=40_000, seed=5, config=cfg)
    assert abs(r.integral - Camel(2).exact) < 4 * r.error
    assert r.rel_std < 1.0


def test_kl_loss_and_no_vegas_stage() -> None:
    cfg = TrainConfig(loss="kl", vegas_fraction=0.0, **SMALL)  # type: ignore[arg-type]
    r = integrate(Camel(2), method="nis", calls=30_000, eval_calls=30_000, seed=2, config=cfg)
    assert abs(r.integral - 1.0) < 4 * r.error


def _collapse_config() -> TrainConfig:
    """MadNIS-default-like settings that lose a camel peak.

    KL loss, no defensive mixture, no annealing of flow or VEGAS grid.
    """
    return TrainConfig(
        vegas_anneal_start=1.0,
        loss="kl",
        uniform_fraction=0.0,
        anneal_fraction=0.0,
        buffered_steps=0,
        vegas_fraction=0.5,
        batch_size=512,
        hidden=(32, 32),
    )


@pytest.mark.slow
def test_guard_catches_d8_mode_collapse() -> None:
    cam = Camel(8)
    r = integrate(
        cam,
        method="nis",
        calls=200_000,
        eval_calls=100_000,
        seed=0,
        config=_collapse_config(),
        guard_calls=400_000,
    )
    raw_pull = (r.estimate_integral - 1.0) / r.estimate_error
    assert raw_pull < -5, "this configuration is expected to lose a peak"
    assert r.coverage == "unproven"
    assert abs(r.integral - 1.0) < 3 * r.error  # the reported number is honest
    with pytest.raises(CoverageError, match="coverage of 'camel8' unproven"):
        integrate(
            cam,
            method="nis",
            calls=200_000,
            eval_calls=100_000,
            seed=0,
            config=_collapse_config(),
            guard_calls=400_000,
            strict=True,
        )


@pytest.mark.slow
def test_default_nis_finds_both_d8_peaks() -> None:
    r = integrate(Camel(8), method="nis", calls=200_000, eval_calls=100_000, seed=1)
    assert abs(r.estimate_integral - 1.0) < 5 * r.estimate_error
    assert abs(r.integral - 1.0) < 4 * r.error


@settings(max_examples=200, deadline=None)
@given(
    n=st.integers(0, 5000),
    raw=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=6).filter(lambda v: sum(v) > 1e-6),
)
def test_allocate_splits_exactly_and_keeps_every_channel(n: int, raw: list[float]) -> None:
    from physgen.nis.train import allocate

    fr = torch.tensor(raw, dtype=torch.float64)
    fr = fr / fr.sum()
    counts = allocate(n, fr)
    assert sum(counts) == n and all(c >= 0 for c in counts)
    if n >= len(raw):
        assert all(c >= 1 for c in counts)  # no channel drops out of a pooled estimate
    for c, f in zip(counts, fr.tolist(), strict=True):
        assert abs(c - n * f) <= len(raw)  # largest remainder, plus at most the floor moves


@pytest.mark.parametrize(
    ("version", "fused"),
    [("2.13.0", True), ("2.4.0", True), ("2.4.0+cpu", True), ("2.3.1", False), ("2.2", False)],
)
def test_fused_adam_version_check_compares_versions_not_text(version: str, fused: bool) -> None:
    from physgen.nis.train import fused_adam_available

    assert fused_adam_available(version) is fused
