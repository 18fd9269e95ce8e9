"""The fused spline kernel and the fast coupling inverse equal zuko's own inverse."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch
import zuko
from hypothesis import given, settings
from hypothesis import strategies as st
from zuko.transforms import MonotonicRQSTransform

from physgen.calo.codec import ShowerCodec
from physgen.models import build_model
from physgen.models.flow_fast import coupling_inverse, supports_fast_inverse
from physgen.nn.rqs_kernel import rqs_inverse


def _zuko_inverse(y: torch.Tensor, phi: torch.Tensor, bins: int, **kw: float) -> torch.Tensor:
    w, h, d = phi[..., :bins], phi[..., bins : 2 * bins], phi[..., 2 * bins :]
    return MonotonicRQSTransform(w, h, d, **kw).inv(y)


@settings(max_examples=30, deadline=None)
@given(
    bins=st.integers(1, 12),
    scale=st.floats(0.01, 8.0),
    bound=st.floats(0.5, 8.0),
    slope=st.sampled_from([1e-3, 1e-2, 0.1]),
    seed=st.integers(0, 2**31 - 1),
)
def test_kernel_equals_zuko(bins: int, scale: float, bound: float, slope: float, seed: int) -> None:
    """Random parameters of any scale, values inside and outside [-B, B] (identity tails);
    the reference is zuko in float64 (the kernel computes in float64 from float32 inputs)."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(40, 7, generator=g) - 0.5) * 3 * bound
    phi = torch.randn(40, 7, 3 * bins - 1, generator=g) * scale
    want = _zuko_inverse(y.double(), phi.double(), bins, bound=bound, slope=slope)
    got = rqs_inverse(y.numpy(), phi.numpy(), bins, bound, slope)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-5, atol=1e-6 * bound)


def test_kernel_inverts_the_forward_spline() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(500, 5, generator=g) * 3
    phi = torch.randn(500, 5, 23, generator=g) * 0.5  # slopes of order one: well conditioned
    t = MonotonicRQSTransform(phi[..., :8], phi[..., 8:16], phi[..., 16:])
    back = rqs_inverse(t(x).numpy(), phi.numpy(), 8)
    np.testing.assert_allclose(back, x.numpy(), atol=1e-4)


def test_kernel_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="do not match"):
        rqs_inverse(np.zeros((3, 2), np.float32), np.zeros((3, 2, 22), np.float32), 8)
    with pytest.raises(ValueError, match="bins"):
        rqs_inverse(np.zeros((3, 2), np.float32), np.zeros((3, 2, 2), np.float32), 0)
    y, p = np.zeros((3, 2), np.float32), np.zeros((3, 2, 23), np.float32)
    for slope in (0.0, 1.0, 2.0):  # log(slope) would fail or divide by zero in the kernel
        with pytest.raises(ValueError, match="slope"):
            rqs_inverse(y, p, 8, slope=slope)
    with pytest.raises(ValueError, match="bound"):
        rqs_inverse(y, p, 8, bound=0.0)


def test_kernel_empty_batch_and_thread_setting_restored() -> None:
    import numba

    out = rqs_inverse(np.zeros((0, 4), np.float32), np.zeros((0, 4, 11), np.float32), 4)
    assert out.shape == (0, 4) and out.dtype == np.float32
    before = numba.get_num_threads()
    rqs_inverse(np.zeros((2, 1), np.float32), np.zeros((2, 1, 11), np.float32), 4, threads=1)
    assert numba.get_num_threads() == before


def _trained_like(flow: zuko.flows.Flow, seed: int) -> zuko.flows.Flow:
    """Randomise every parameter (a fresh zuko flow starts close to the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in flow.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return flow


@pytest.mark.parametrize(
    ("features", "context", "hidden", "bins", "transforms"),
    [(11, 3, (32,), 8, 3), (6, 0, (16, 16), 4, 2), (9, 2, (8,), 5, 4)],
)
def test_coupling_inverse_equals_zuko(
    features: int, context: int, hidden: tuple[int, ...], bins: int, transforms: int
) -> None:
    flow = zuko.flows.NSF(
        features,
        context=context,
        transforms=transforms,
        bins=bins,
        hidden_features=hidden,
        passes=2,
    )
    flow = _trained_like(flow, features)
    g = torch.Generator().manual_seed(1)
    z = torch.randn(300, features, generator=g) * 1.5
    c = torch.randn(300, context, generator=g) if context else None
    assert supports_fast_inverse(flow)
    with torch.no_grad():
        want = flow(c).transform.inv(z)
        got = coupling_inverse(flow, z, c)
        assert got is not None
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4)
        # (no round-trip check here: random weights make some splines steep enough that a
        # 1e-4 difference in x is 1e-2 in z; test_kernel_inverts_the_forward_spline has it)


def test_custom_bound_and_slope_are_honoured() -> None:
    from zuko.flows.autoregressive import MaskedAutoregressiveTransform

    uni = functools.partial(MonotonicRQSTransform, bound=2.0, slope=1e-2)
    t = MaskedAutoregressiveTransform(
        6, 2, passes=2, univariate=uni, shapes=[(6,), (6,), (5,)], hidden_features=(16,)
    )
    base = zuko.flows.UnconditionalDistribution(
        zuko.distributions.DiagNormal, torch.zeros(6), torch.ones(6), buffer=True
    )
    flow = zuko.flows.Flow([t], base)
    flow = _trained_like(flow, 5)
    z, c = torch.randn(200, 6) * 2, torch.randn(200, 2)
    with torch.no_grad():
        got = coupling_inverse(flow, z, c)
        assert got is not None
        np.testing.assert_allclose(got.numpy(), flow(c).transform.inv(z).numpy(), atol=1e-4)


@pytest.mark.parametrize(
    "make",
    [
        lambda: zuko.flows.MAF(5, context=1, passes=2),  # affine, not a spline
        lambda: zuko.flows.NSF(5, context=1, passes=None),  # fully autoregressive
        lambda: zuko.flows.NSF(5, context=1, passes=2, residual=True),
    ],
)
def test_unsupported_flows_fall_back(make: object) -> None:
    flow = make()  # type: ignore[operator]
    assert not supports_fast_inverse(flow)
    assert coupling_inverse(flow, torch.randn(4, 5), torch.randn(4, 1)) is None


def test_float64_and_non_cpu_inputs_fall_back() -> None:
    flow = zuko.flows.NSF(4, context=1, passes=2)
    assert coupling_inverse(flow, torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 1)) is None
    assert coupling_inverse(flow, torch.randn(3, 4, device="meta"), torch.randn(3, 1)) is None
    assert coupling_inverse(flow, torch.randn(3, 4), torch.randn(3, 1, dtype=torch.float64)) is None
    # float32 inputs to a float64 flow: not covered (None), rather than a dtype error
    assert coupling_inverse(flow.double(), torch.randn(3, 4), torch.randn(3, 1)) is None


def test_coupling_inverse_of_an_empty_batch() -> None:
    flow = _trained_like(zuko.flows.NSF(5, context=2, passes=2, hidden_features=(8,)), 0)
    with torch.no_grad():
        got = coupling_inverse(flow, torch.zeros(0, 5), torch.zeros(0, 2))
    assert got is not None and got.shape == (0, 5)


def _flow_model(fast: bool) -> object:
    cfg = {
        "energy_transforms": 2,
        "energy_hidden": [16],
        "shape_transforms": 3,
        "shape_hidden": [32],
        "shape_bins": 6,
        "fast_sampling": fast,
    }
    codec = ShowerCodec([3, 8, 5], mode="layers")
    rng = np.random.default_rng(0)
    e = rng.uniform(1e3, 1e5, size=(200, 1))
    x = rng.gamma(0.7, 1.0, size=(200, 16)) * (e / 16)
    codec.fit(torch.from_numpy(x), torch.from_numpy(e))
    model = build_model("flow", codec, cfg)
    torch.manual_seed(0)
    _trained_like(model, 2)  # type: ignore[arg-type]
    return model


def test_flow_model_samples_the_same_showers_fast_or_not() -> None:
    fast, slow = _flow_model(True), _flow_model(False)
    slow.load_state_dict(fast.state_dict())  # type: ignore[attr-defined]
    e = torch.full((100, 1), 2e4, dtype=torch.float64)
    a = fast(e).sample(generator=torch.Generator().manual_seed(4))  # type: ignore[operator]
    b = slow(e).sample(generator=torch.Generator().manual_seed(4))  # type: ignore[operator]
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-3, atol=1e-3 * float(b.max()))


def test_flow_model_with_gradients_uses_zuko() -> None:
    """Under autograd the fast path is skipped, so decoding stays differentiable."""
    model = _flow_model(True)
    c = model.codec.condition(torch.full((5, 1), 2e4, dtype=torch.float64))  # type: ignore[attr-defined]
    z = torch.randn(5, sum(model.noise_widths()), requires_grad=True)  # type: ignore[attr-defined]
    _, shape = model.decode_encoded(z, c)  # type: ignore[attr-defined]
    shape.sum().backward()
    assert z.grad is not None and torch.isfinite(z.grad).all()
