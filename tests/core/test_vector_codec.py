"""physgen.core.codec.VectorCodec: the maps of bounded columns, against closed forms.

Two-sided ``(lo, hi)`` columns go through a logit, ``(lo, None)`` through ``log(x - lo)``,
``(None, hi)`` through ``-log(hi - x)``; the log-Jacobian is checked against autograd and the
round trip against the identity for any values inside the support (hypothesis).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from physgen.core import VectorCodec
from physgen.errors import ConfigError, DataFormatError

BOUNDS = [(0.0, 2.0), (1.0, None), (None, -3.0), None]


def _inside(rng: np.random.Generator, n: int) -> torch.Tensor:
    return torch.from_numpy(
        np.stack(
            [
                rng.uniform(0.05, 1.95, n),
                1.0 + rng.lognormal(1.0, 2.0, n),  # spans decades above 1
                -3.0 - rng.lognormal(0.0, 1.0, n),
                rng.normal(0.0, 5.0, n),
            ],
            1,
        )
    )


@pytest.fixture(scope="module")
def codec() -> VectorCodec:
    c = VectorCodec(4, 1, bounds=BOUNDS)
    rng = np.random.default_rng(0)
    return c.fit(_inside(rng, 500), torch.from_numpy(rng.normal(size=(500, 1))))


def test_bounds_are_reported_as_given(codec: VectorCodec) -> None:
    assert codec.bounds() == BOUNDS
    assert codec.bounded.tolist() == [True, True, True, False]
    again = VectorCodec.from_spec(codec.spec())
    assert again.bounds() == BOUNDS
    assert VectorCodec(1, bounds=[(0.0, math.inf)]).bounds() == [(0.0, None)]
    assert VectorCodec(1, bounds=[(-math.inf, math.inf)]).bounds() == [None]


def test_one_sided_maps_are_logarithms(codec: VectorCodec) -> None:
    x = torch.tensor([[1.0, 11.0, -5.0, 0.3]], dtype=torch.float64)
    y, _ = codec._to_real(x)
    assert float(y[0, 1]) == pytest.approx(math.log(10.0))
    assert float(y[0, 2]) == pytest.approx(-math.log(2.0))
    assert float(y[0, 0]) == pytest.approx(0.0)  # logit(1/2)
    assert float(y[0, 3]) == 0.3


def test_log_jacobian_matches_autograd(codec: VectorCodec) -> None:
    x = _inside(np.random.default_rng(1), 6).requires_grad_(True)
    c = torch.zeros(6, 1, dtype=torch.float64)
    ld = codec.log_abs_det_jacobian(x, c)
    for i in range(6):
        jac = torch.autograd.functional.jacobian(
            lambda row: (codec._to_real(row[None])[0][0] - codec.x_mean) / codec.x_std, x[i]
        )
        assert float(ld[i].detach()) == pytest.approx(float(torch.linalg.slogdet(jac)[1]), rel=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    st.floats(0.01, 1.99),
    st.floats(1e-6, 1e6),
    st.floats(1e-6, 1e6),
    st.floats(-1e6, 1e6),
)
def test_round_trip_inside_the_support(a: float, b: float, c_: float, d: float) -> None:
    codec = VectorCodec(4, 0, bounds=BOUNDS)
    x = torch.tensor([[a, 1.0 + b, -3.0 - c_, d]], dtype=torch.float64)
    y, _ = codec._to_real(x)
    back = codec._from_real(y)
    np.testing.assert_allclose(back.numpy(), x.numpy(), rtol=1e-9, atol=1e-9)


def test_decode_stays_inside_and_has_finite_gradients(codec: VectorCodec) -> None:
    z = torch.tensor([[60.0, 60.0, 60.0, 60.0], [-60.0, -60.0, -60.0, -60.0]])
    z.requires_grad_(True)
    x = codec.decode(None, z, torch.zeros(2, 1))
    xd = x.detach()
    assert float(xd[:, 0].min()) >= 0.0 and float(xd[:, 0].max()) <= 2.0
    assert float(xd[:, 1].min()) >= 1.0 and torch.isfinite(xd).all()
    assert float(xd[:, 2].max()) <= -3.0
    x[:, 3].sum().backward()  # the unbounded column's gradient must not meet exp() overflow
    assert torch.isfinite(z.grad).all()  # type: ignore[arg-type]
    codec.encode(x.detach(), torch.zeros(2, 1))  # its own samples pass the support check


@pytest.mark.parametrize(
    "bad", [(1.0, 1.0), (2.0, 1.0), (None, None, 3), ("a", 1.0), (math.inf, None), (math.nan, 1)]
)
def test_bad_bounds_are_refused(bad: tuple[object, ...]) -> None:
    with pytest.raises(ConfigError, match="bounds\\[0\\]"):
        VectorCodec(1, bounds=[bad])  # type: ignore[list-item]


def test_values_on_a_one_sided_bound_are_refused_at_fit() -> None:
    codec = VectorCodec(1, bounds=[(0.0, None)])
    with pytest.raises(DataFormatError, match="column 0: values on its one-sided bound"):
        codec.fit(torch.tensor([[0.0], [1.0], [2.0]]), torch.zeros(3, 0))
    with pytest.raises(DataFormatError, match="outside its bounds"):
        codec.fit(torch.tensor([[-1.0], [1.0], [2.0]]), torch.zeros(3, 0))
