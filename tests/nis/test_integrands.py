"""Exact integrals of the built-in integrands, physics cross sections, bad-input checks."""

from __future__ import annotations

import math

import pytest
import torch

from physgen.errors import ConfigError
from physgen.nis import (
    BreitWigner,
    Camel,
    DrellYanLike,
    EEToMuMu,
    EEToQQG,
    IntegrandError,
    Polynomial,
    Ring,
    get_integrand,
    integrate,
    wrap_function,
)
from physgen.nis.integrands import evaluate_checked
from physgen.nis.phasespace import rotate_euler, three_body_momenta

torch.set_num_threads(1)


def _within(res_integral: float, res_error: float, exact: float, k: float = 4.0) -> None:
    assert abs(res_integral - exact) < k * res_error + 1e-12, (res_integral, res_error, exact)


@pytest.mark.parametrize(
    ("integrand", "method"),
    [
        (Polynomial(3), "uniform"),
        (Ring(2), "vegas"),
        (BreitWigner(1), "vegas"),
        (Camel(2), "vegas"),
        (Camel(1), "uniform"),
    ],
)
def test_toy_integrals_match_exact(integrand: object, method: str) -> None:
    res = integrate(integrand, method=method, calls=50_000, eval_calls=100_000, seed=3)  # type: ignore[arg-type]
    assert res.exact is not None
    _within(res.integral, res.error, res.exact)
    assert res.error < 0.05 * abs(res.exact)
    assert res.rel_std == pytest.approx(
        res.error * math.sqrt(res.eval_calls) / abs(res.integral), rel=1e-9
    )


def test_camel_exact_formula() -> None:
    c = Camel(3)
    assert c.exact == pytest.approx((0.5 * (math.erf(2 / 0.3) + math.erf(1 / 0.3))) ** 3)
    # the peaks are normalised: value at a peak centre
    x = torch.full((1, 3), 1 / 3, dtype=torch.float64)
    assert float(c(x)[0]) > 0.5 * (0.1 * math.sqrt(math.pi)) ** -3


def test_drell_yan_channels_sum_to_reference() -> None:
    dy = DrellYanLike(3)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(200_000, 3, generator=g, dtype=torch.float64)
    total, var = 0.0, 0.0
    for c in range(3):
        y, jac = dy.channel_map(x, c)
        w = dy.prior(y)[:, c] * dy(y) * jac
        total += float(w.mean())
        var += float(w.var()) / w.numel()
    _within(total, math.sqrt(var), 1.0)
    prior = dy.prior(torch.rand(100, 3, dtype=torch.float64))
    assert torch.allclose(prior.sum(-1), torch.ones(100, dtype=torch.float64))


def test_ee_mumu_cross_section_matches_analytic() -> None:
    proc = EEToMuMu()
    assert proc.exact == pytest.approx(1876.8, rel=2e-3)  # Born peak cross section in pb
    res = integrate(proc, method="vegas", calls=20_000, eval_calls=200_000, seed=0)
    _within(res.integral, res.error, proc.exact)
    assert res.error / res.integral < 1e-3
    off_peak = EEToMuMu(200.0)
    res2 = integrate(off_peak, method="uniform", calls=0, eval_calls=100_000, seed=1)
    assert off_peak.exact is not None
    _within(res2.integral, res2.error, off_peak.exact)


def test_ee_qqg_reference_vs_vegas() -> None:
    proc = EEToQQG()
    res = integrate(proc, method="vegas", calls=100_000, eval_calls=200_000, seed=2)
    assert proc.exact is not None
    _within(res.integral, res.error, proc.exact)
    assert res.error / res.integral < 5e-3


def test_three_body_momentum_conservation() -> None:
    g = torch.Generator().manual_seed(0)
    u = 0.02 + 0.4 * torch.rand(50, 2, generator=g, dtype=torch.float64)
    x1, x2 = 1 - u[:, 0], 1 - u[:, 1]
    p = three_body_momenta(91.0, x1, x2)
    ang = torch.rand(50, 3, generator=g, dtype=torch.float64)
    p = rotate_euler(p, 2 * ang[:, 0] - 1, 6.28 * ang[:, 1], 6.28 * ang[:, 2])
    tot = p.sum(1)
    assert torch.allclose(tot[:, 0], torch.full((50,), 91.0, dtype=torch.float64))
    assert tot[:, 1:].abs().max() < 1e-9
    mass2 = p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(-1)
    assert mass2.abs().max() < 1e-8


# ---------------------------------------------------------------- bad input


def _x(n: int = 10, d: int = 2) -> torch.Tensor:
    return torch.rand(n, d, dtype=torch.float64)


def test_nan_and_inf_are_refused() -> None:
    f = wrap_function(lambda x: torch.where(x[:, 0] > 0.5, torch.nan, 1.0), 2, "nanfn")
    with pytest.raises(IntegrandError, match="non-finite"):
        integrate(f, method="uniform", eval_calls=1000)
    g = wrap_function(lambda x: 1.0 / (x[:, 0] - x[:, 0]), 2, "inffn")
    with pytest.raises(IntegrandError, match="NaN/inf"):
        evaluate_checked(g, _x(), "inffn")


def test_negative_values_refused_or_signed() -> None:
    f = wrap_function(lambda x: x[:, 0] - 0.25, 2, "signed")
    with pytest.raises(IntegrandError, match="negative values"):
        integrate(f, method="uniform", eval_calls=1000)
    res = integrate(f, method="uniform", eval_calls=100_000, allow_negative=True, seed=1)
    _within(res.integral, res.error, 0.25)
    assert res.diagnostics["negative_weight_fraction"] > 0.2


def test_wrong_shape_and_dimension_mismatch() -> None:
    f = wrap_function(lambda x: x.sum(-1, keepdim=True), 2, "shape")
    with pytest.raises(IntegrandError, match=r"expected \(1000,\)"):
        integrate(f, method="uniform", eval_calls=1000)
    g = wrap_function(lambda x: x[:, 2] * 2, 2, "dims")  # uses a third coordinate
    with pytest.raises(IntegrandError, match="dimension mismatch"):
        integrate(g, method="uniform", eval_calls=1000)
    h = wrap_function(lambda x: [1.0] * x.shape[0], 2, "list")  # type: ignore[arg-type,return-value]
    with pytest.raises(IntegrandError, match=r"torch\.Tensor"):
        integrate(h, method="uniform", eval_calls=1000)


def test_bad_options() -> None:
    with pytest.raises(ConfigError, match="too small to train"):
        integrate(Camel(2), method="nis", calls=1000, eval_calls=1000)
    with pytest.raises(ConfigError, match="method"):
        integrate(Camel(2), method="foam", eval_calls=1000)
    with pytest.raises(ConfigError, match="--integrand"):
        get_integrand("nope")
    with pytest.raises(ConfigError, match="--dim"):
        get_integrand("dy3", 4)
    with pytest.raises(ConfigError, match="dim"):
        Camel(0)
