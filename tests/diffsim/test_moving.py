"""Event-moving tools against closed forms: the Gaussian example, soft binning, score function."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from physgen.diffsim.moving import (
    gaussian_derivatives,
    gaussian_simulator,
    move,
    pathwise_derivative,
    score_function_gradient,
    soft_histogram,
    soft_histogram_bias,
    soft_histogram_jacobian,
    soft_widths,
)
from physgen.errors import ConfigError

F64 = torch.float64


def _u(n: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(n, dtype=F64, generator=torch.Generator().manual_seed(seed))


def test_gaussian_pathwise_derivatives_equal_the_closed_form() -> None:
    u = _u(20_000)
    theta = torch.tensor([0.3, 1.7], dtype=F64)
    x, jac = pathwise_derivative(lambda u, t: gaussian_simulator(u, t[:, 0], t[:, 1]), u, theta)
    d_mu, d_sigma = gaussian_derivatives(u)
    assert x.shape == (20_000, 1) and jac.shape == (20_000, 1, 2)
    assert torch.allclose(x[:, 0], 0.3 + 1.7 * torch.special.ndtri(u), atol=0, rtol=1e-14)
    assert float((jac[:, 0, 0] - d_mu).abs().max()) < 1e-6
    assert float((jac[:, 0, 1] - d_sigma).abs().max()) < 1e-6


def test_moved_gaussian_sample_is_the_resimulated_one() -> None:
    # the simulator is linear in (mu, sigma): a first-order move is exact
    u = _u(1000)
    theta = torch.tensor([0.0, 1.0], dtype=F64)
    x, jac = pathwise_derivative(lambda u, t: gaussian_simulator(u, t[:, 0], t[:, 1]), u, theta)
    moved = move(x, jac, torch.tensor([0.5, 0.2], dtype=F64))
    assert torch.allclose(moved[:, 0], gaussian_simulator(u, 0.5, 1.2), atol=1e-12)


def test_pathwise_derivative_of_a_vector_simulator() -> None:
    u = _u(50)
    theta = torch.tensor([2.0], dtype=F64)

    def sim(u: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return torch.stack([t[:, 0] ** 2 * u, torch.sin(t[:, 0]) + u], 1)

    _, jac = pathwise_derivative(sim, u, theta)
    assert torch.allclose(jac[:, 0, 0], 4.0 * u)
    assert torch.allclose(jac[:, 1, 0], torch.full_like(u, math.cos(2.0)))
    with pytest.raises(ConfigError, match="theta"):
        pathwise_derivative(sim, u, theta[None])


def test_soft_histogram_tends_to_the_hard_one() -> None:
    x = torch.randn(5000, dtype=F64, generator=torch.Generator().manual_seed(2))
    edges = torch.linspace(-2, 2, 9, dtype=F64)
    hard, _ = np.histogram(x.numpy(), edges.numpy())
    assert np.array_equal(soft_histogram(x, edges, 1e-9).round().numpy(), hard)
    soft = soft_histogram(x, edges, 0.05)
    assert float((soft - torch.as_tensor(hard, dtype=F64)).abs().max()) < 0.02 * 5000
    # bins share their edges: inside the outer edges each event counts once
    inside = (x > -1.5) & (x < 1.5)
    edges2 = torch.tensor([-10.0, -1.5, 0.0, 1.5, 10.0], dtype=F64)
    assert float(soft_histogram(x[inside], edges2, 0.01).sum()) == pytest.approx(int(inside.sum()))


@settings(max_examples=40, deadline=None)
@given(
    xs=st.lists(st.floats(-5, 5), min_size=1, max_size=40),
    widths=st.lists(st.floats(0.1, 2.0), min_size=1, max_size=8),
    tau=st.floats(1e-4, 0.5),
)
def test_soft_counts_are_a_partition(xs: list[float], widths: list[float], tau: float) -> None:
    # for every event the bin weights are in [0, 1] and sum to the soft indicator of the
    # outer range (telescoping edges)
    x = torch.tensor(xs, dtype=F64)
    edges = torch.cumsum(torch.tensor([-6.0, *widths], dtype=F64), 0)
    w = torch.stack([soft_histogram(x[i : i + 1], edges, tau) for i in range(len(xs))])
    assert bool((w >= -1e-12).all()) and bool((w <= 1 + 1e-12).all())
    outer = torch.sigmoid((x - edges[0]) / tau) - torch.sigmoid((x - edges[-1]) / tau)
    assert torch.allclose(w.sum(1), outer, atol=1e-12)


def test_soft_histogram_jacobian_is_the_autograd_one() -> None:
    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, dtype=F64, generator=g)
    dx = torch.randn(300, 2, dtype=F64, generator=g)
    edges = torch.linspace(-2, 2, 7, dtype=F64)
    taus = soft_widths(edges)
    theta = torch.zeros(2, dtype=F64, requires_grad=True)
    counts = soft_histogram(x + dx @ theta, edges, taus)
    auto = torch.stack([torch.autograd.grad(c, theta, retain_graph=True)[0] for c in counts])
    assert torch.allclose(soft_histogram_jacobian(x, dx, edges, taus), auto, atol=1e-12)


@pytest.mark.parametrize("tau", [0.05, 0.1])
def test_soft_binning_bias_follows_the_formula(tau: float) -> None:
    # expected soft counts of N(0, 1) by quadrature: bias = (pi^2 tau^2 / 6)(f'(hi) - f'(lo))
    edges = torch.linspace(-3, 3, 13, dtype=F64)
    xs = torch.linspace(-12, 12, 200_001, dtype=F64)
    mass = torch.exp(-0.5 * xs**2) / math.sqrt(2 * math.pi) * float(xs[1] - xs[0])
    bias = soft_histogram(xs, edges, tau, mass) - soft_histogram(xs, edges, 1e-9, mass)

    def fprime(e: torch.Tensor) -> torch.Tensor:
        return -e * torch.exp(-0.5 * e**2) / math.sqrt(2 * math.pi)

    pred = soft_histogram_bias(edges, tau, fprime)
    assert float(bias.abs().max()) > 1e-4  # there is a bias ...
    assert float((bias - pred).abs().max()) < 0.05 * float(bias.abs().max())  # ... as predicted


def test_score_function_gradients() -> None:
    rng = np.random.default_rng(4)
    lam = 3.0  # d E[N] / d lambda = 1 for N ~ Poisson(lambda): score N / lambda - 1
    n = torch.as_tensor(rng.poisson(lam, 200_000), dtype=F64)
    g, err = score_function_gradient(n, n / lam - 1.0)
    assert abs(float(g[0]) - 1.0) < 4 * float(err[0]) and float(err[0]) < 0.02
    # Gaussian mean and width, two parameters at once: d E[x^2] = (2 mu, 2 sigma)
    mu, sigma = 0.5, 1.5
    x = torch.as_tensor(rng.normal(mu, sigma, 200_000), dtype=F64)
    scores = torch.stack([(x - mu) / sigma**2, ((x - mu) ** 2 - sigma**2) / sigma**3], 1)
    g, err = score_function_gradient(x**2, scores)
    assert torch.all((g - torch.tensor([2 * mu, 2 * sigma], dtype=F64)).abs() < 4 * err)
    with pytest.raises(ConfigError):
        score_function_gradient(x[:1], scores[:1])


def test_soft_widths_need_increasing_edges() -> None:
    with pytest.raises(ConfigError, match="increase"):
        soft_widths(torch.tensor([0.0, 1.0, 1.0], dtype=F64))
