"""Closed-form checks of the flow-matching path and the ODE solvers."""

from __future__ import annotations

import math

import pytest
import torch

from physgen.errors import ConfigError
from physgen.models.cfm import LinearPath
from physgen.models.solvers import SOLVERS, function_evaluations, integrate


@pytest.mark.parametrize("solver", SOLVERS)
def test_solvers_on_exponential_decay(solver):
    x0 = torch.linspace(-2, 2, 9, dtype=torch.float64).reshape(-1, 1)
    x1 = integrate(lambda t, x: -x, x0, solver=solver, steps=50)
    tol = {"euler": 2e-2, "midpoint": 2e-4, "rk4": 1e-8, "adaptive": 1e-4}[solver]
    assert torch.allclose(x1, x0 * math.exp(-1), atol=tol)


def test_solver_orders():
    errs = {}
    for solver in ("euler", "midpoint", "rk4"):
        e = []
        for steps in (10, 20):
            x1 = integrate(
                lambda t, x: -x, torch.ones(1, 1, dtype=torch.float64), solver=solver, steps=steps
            )
            e.append(abs(float(x1) - math.exp(-1)))
        errs[solver] = math.log2(e[0] / e[1])
    assert errs["euler"] == pytest.approx(1, abs=0.15)
    assert errs["midpoint"] == pytest.approx(2, abs=0.15)
    assert errs["rk4"] == pytest.approx(4, abs=0.2)
    assert function_evaluations("rk4", 16) == 64 and function_evaluations("adaptive", 5) is None


def test_bad_solver_options():
    with pytest.raises(ConfigError, match="unknown ODE solver"):
        integrate(lambda t, x: x, torch.zeros(1, 1), solver="heun")
    with pytest.raises(ConfigError, match="steps"):
        integrate(lambda t, x: x, torch.zeros(1, 1), steps=0)
    with pytest.raises(ConfigError):
        LinearPath(sigma_min=1.0)


@pytest.mark.parametrize("sigma_min", [0.0, 0.1])
def test_path_target_is_the_time_derivative(sigma_min):
    path = LinearPath(sigma_min)
    g = torch.Generator().manual_seed(0)
    x0, x1 = (
        torch.randn(5, 3, generator=g, dtype=torch.float64),
        torch.randn(5, 3, generator=g, dtype=torch.float64),
    )
    t = torch.rand(5, 1, generator=g, dtype=torch.float64)
    h = 1e-6
    xa, u = path.interpolate(x0, x1, t)
    xb, _ = path.interpolate(x0, x1, t + h)
    assert torch.allclose((xb - xa) / h, u, atol=1e-6)
    assert torch.allclose(path.interpolate(x0, x1, torch.zeros(5, 1, dtype=torch.float64))[0], x0)
    end = path.interpolate(x0, x1, torch.ones(5, 1, dtype=torch.float64))[0]
    assert torch.allclose(end, x1 + sigma_min * x0)


def test_exact_marginal_velocity_transports_noise_to_the_data():
    """For data N(mu, s^2) the straight path's marginal velocity is known in closed form;
    integrating it from N(0, 1) must give N(mu, s^2) (torchcfm-style oracle)."""
    mu, s = 3.0, 0.5

    def v(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        var = (1 - t) ** 2 + t**2 * s**2
        return mu + (x - t * mu) * (-(1 - t) + t * s**2) / var

    z = torch.randn(200_000, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = integrate(v, z, solver="rk4", steps=20)
    assert float(x.mean()) == pytest.approx(mu, abs=0.01)
    assert float(x.std()) == pytest.approx(s, rel=0.01)
