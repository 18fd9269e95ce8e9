"""The generic contract: every family on vector data with K = 0, 1 and 3 conditions, and the
pure noise -> data map (``noise``, ``decode``, ``rsample``) on vectors and showers.

Closed-form oracles: a flow's data-space density integrates to one (so the codec's Jacobian,
bounded columns included, is right), and it equals the encoded density plus the analytic
log-Jacobian of the standardisation.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_contract import VARIANTS, make

from physgen.core import VectorCodec
from physgen.models import build_model, get_model_class

D = 4
CONDITIONS = (0, 1, 3)


def vector_toy(n: int, k: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """x (n, D) whose mean depends on the k conditions; column 0 bounded in (0, 1)."""
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(n, k, generator=g)
    mean = c.sum(1, keepdim=True) if k else torch.zeros(n, 1)
    x = mean + torch.randn(n, D, generator=g) * torch.tensor([1.0, 0.5, 2.0, 0.1])
    x[:, 0] = torch.sigmoid(x[:, 0])
    return x, c


def make_vector(name: str, options: dict, k: int, first: int = 0):
    codec = VectorCodec(D, k, bounds=[(0.0, 1.0), None, None, None], first=first)
    x, c = vector_toy(256, k)
    codec.fit(x, c)
    torch.manual_seed(0)
    model = build_model(name, codec, options)
    with torch.no_grad():  # zero-initialised heads would hide the condition and the noise
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


CASES = [
    pytest.param(name, opts, k, id=f"{name}-{i}-K{k}")
    for name, variants in VARIANTS.items()
    for i, opts in enumerate(variants)
    for k in CONDITIONS
]


@pytest.mark.parametrize(("name", "opts", "k"), CASES)
def test_vector_family_contract(name, opts, k):
    model = make_vector(name, opts, k)
    x, c = vector_toy(64, k, seed=1)
    # training: a finite scalar loss whose gradients reach the parameters
    batch = model.codec.encode(x, c)
    assert batch.condition.shape == (64, k)
    for _ in range(getattr(model, "loss_cycle", 1)):
        for loss in model.training_step(batch, torch.Generator().manual_seed(2)).values():
            assert loss.ndim == 0 and torch.isfinite(loss)
            loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    # sampling: shapes, support of the bounded column, seeded bytes
    dist = model(c)
    s1 = dist.sample(generator=torch.Generator().manual_seed(3))
    s2 = dist.sample((2,), generator=torch.Generator().manual_seed(3))
    assert s1.shape == (64, D) and s1.dtype == torch.float32 and torch.isfinite(s1).all()
    assert s2.shape == (2, 64, D)
    assert ((s1[:, 0] >= 0) & (s1[:, 0] <= 1)).all()
    assert torch.equal(s1, dist.sample(generator=torch.Generator().manual_seed(3)))


@pytest.mark.parametrize(("name", "opts", "k"), CASES)
def test_noise_decode_rsample(name, opts, k):
    model = make_vector(name, opts, k)
    _, c = vector_toy(32, k, seed=4)
    z = model.noise(32, torch.Generator().manual_seed(5))
    assert z.shape == (32, model.noise_dim)
    # a pure map: same noise, same data; and sample == decode(noise) for the same generator
    with torch.no_grad():
        a, b = model.decode(z, c), model.decode(z.clone(), c)
    assert torch.equal(a, b)
    s = model(c).sample(generator=torch.Generator().manual_seed(5))
    assert torch.equal(s, a)
    # rsample: the same values, with gradients reaching the weights (a flow samples without
    # gradients through physgen's fused spline inverse, float64 inside, and rsamples through
    # zuko in float32: equal to float32 rounding, ~1e-6 of values of a few units)
    model.zero_grad()
    r = model(c).rsample(generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(r, s, rtol=1e-4, atol=1e-5)
    r.pow(2).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_condition_changes_samples(name):
    model = make_vector(name, VARIANTS[name][0], 3)
    z = model.noise(16, torch.Generator().manual_seed(0))
    with torch.no_grad():
        lo = model.decode(z, torch.full((16, 3), -2.0))
        hi = model.decode(z, torch.full((16, 3), 2.0))
    assert not torch.allclose(lo, hi)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_two_stage_chain_on_vectors(name):
    """``first=2``: p(x[:, :2] | c) p(x[:, 2:] | x[:, :2], c) with every family."""
    model = make_vector(name, VARIANTS[name][0], 1, first=2)
    x, c = vector_toy(32, 1)
    batch = model.codec.encode(x, c)
    assert batch.energy is not None and batch.energy.shape == (32, 2)
    assert batch.shape.shape == (32, 2)
    assert torch.isfinite(model.loss(batch, torch.Generator().manual_seed(0)))
    assert model(c).sample(generator=torch.Generator().manual_seed(0)).shape == (32, D)


@pytest.mark.parametrize(
    ("name", "opts", "mode"),
    [
        pytest.param(n, v[0], m, id=f"{n}-{m}")
        for n, v in VARIANTS.items()
        for m in ("layers", "incident")
    ],
)
def test_noise_decode_on_showers(name, opts, mode):
    model = make(name, opts, mode)
    e = torch.tensor([[1e3], [5e4], [9e5]])
    z = model.noise(3, torch.Generator().manual_seed(1))
    with torch.no_grad():
        x = model.decode(z, e)
    assert torch.equal(x, model(e).sample(generator=torch.Generator().manual_seed(1)))


@pytest.mark.parametrize("k", CONDITIONS)
def test_non_tractable_families_say_so(k):
    for name in VARIANTS:
        if get_model_class(name).tractable:
            continue
        model = make_vector(name, VARIANTS[name][0], k)
        x, c = vector_toy(8, k)
        with pytest.raises(NotImplementedError, match="no tractable density"):
            model(c).log_prob(x)


# ---------------------------------------------------------------------- closed-form oracles
def _flow_1d(bounds):
    codec = VectorCodec(1, 0, bounds=[bounds])
    g = torch.Generator().manual_seed(0)
    x = (
        torch.rand(500, 1, generator=g) * 1.6 + 0.2
        if bounds
        else torch.randn(500, 1, generator=g) * 3 + 1
    )
    codec.fit(x, torch.zeros(500, 0))
    torch.manual_seed(1)
    model = build_model("flow", codec, VARIANTS["flow"][0])
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("bounds", [None, (0.0, 2.0)], ids=["unbounded", "bounded"])
def test_flow_density_integrates_to_one_in_data_space(bounds):
    model = _flow_1d(bounds)
    lo, hi = (0.0, 2.0) if bounds else (-40.0, 40.0)
    grid = torch.linspace(lo, hi, 200_001, dtype=torch.float64)[1:-1]
    with torch.no_grad():
        lp = model.log_prob(grid.float()[:, None], torch.zeros(grid.shape[0], 0))
    integral = float(torch.trapezoid(lp.double().exp(), grid))
    assert integral == pytest.approx(1.0, abs=2e-3)


def test_log_prob_is_encoded_density_plus_jacobian():
    codec = VectorCodec(2, 1)
    x = torch.randn(100, 2) * torch.tensor([3.0, 0.2]) + torch.tensor([5.0, -1.0])
    c = torch.randn(100, 1)
    codec.fit(x, c)
    torch.manual_seed(0)
    model = build_model("flow", codec, VARIANTS["flow"][0])
    with torch.no_grad():
        lp = model.log_prob(x, c)
        enc = model.log_prob_encoded(codec.encode(x, c))
    std = codec.x_std.numpy()
    expected = enc.double().numpy() - math.log(std[0]) - math.log(std[1])
    np.testing.assert_allclose(lp.double().numpy(), expected, rtol=1e-5, atol=1e-5)


def test_vector_codec_round_trip_and_bounds():
    codec = VectorCodec(3, 2, bounds=[(-1.0, 1.0), None, (0.0, 10.0)])
    g = torch.Generator().manual_seed(0)
    x = torch.stack(
        [
            torch.rand(200, generator=g) * 2 - 1,
            torch.randn(200, generator=g),
            torch.rand(200, generator=g) * 10,
        ],
        1,
    )
    c = torch.randn(200, 2, generator=g)
    codec.fit(x, c)
    batch = codec.encode(x, c)
    back = codec.decode(batch.energy, batch.shape, c)
    torch.testing.assert_close(back, x, rtol=1e-4, atol=1e-4)
    assert batch.shape.mean(0).abs().max() < 1e-4 and (batch.shape.std(0) - 1).abs().max() < 1e-3
