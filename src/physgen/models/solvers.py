"""ODE solvers for flow-matching sampling: fixed-step (Euler, midpoint, RK4) and adaptive."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from physgen.errors import ConfigError

__all__ = ["SOLVERS", "function_evaluations", "integrate"]

Velocity = Callable[[Tensor, Tensor], Tensor]
SOLVERS = ("euler", "midpoint", "rk4", "adaptive")
_NFE_PER_STEP = {"euler": 1, "midpoint": 2, "rk4": 4}


def function_evaluations(solver: str, steps: int) -> int | None:
    """Network evaluations of a fixed-step solve (None for the adaptive solver)."""
    return None if solver == "adaptive" else _NFE_PER_STEP[solver] * steps


def integrate(
    f: Velocity,
    x0: Tensor,
    *,
    solver: str = "rk4",
    steps: int = 20,
    t0: float = 0.0,
    t1: float = 1.0,
    atol: float = 1e-5,
    rtol: float = 1e-5,
) -> Tensor:
    """Solve ``dx/dt = f(t, x)`` from ``t0`` to ``t1``.

    Args:
        f: Velocity ``f(t, x)`` with ``t`` a 0-d tensor and ``x`` (N, D).
        x0: Initial state (N, D).
        solver: ``euler``, ``midpoint``, ``rk4`` (fixed steps) or ``adaptive`` (zuko's
            adaptive Runge-Kutta ``odeint`` with tolerances ``atol``, ``rtol``).
        steps: Number of fixed steps.

    Returns:
        ``x(t1)`` (N, D).
    """
    if solver not in SOLVERS:
        raise ConfigError(f"unknown ODE solver {solver!r}; expected one of {', '.join(SOLVERS)}")
    if solver == "adaptive":
        from zuko.utils import odeint  # type: ignore[import-untyped]

        out = odeint(f, x0, t0, t1, atol=atol, rtol=rtol)
        assert isinstance(out, Tensor)
        return out
    if steps < 1:
        raise ConfigError(f"ODE steps must be >= 1, got {steps}")
    h = (t1 - t0) / steps
    x = x0
    for i in range(steps):
        t = torch.tensor(t0 + i * h, dtype=x0.dtype, device=x0.device)
        if solver == "euler":
            x = x + h * f(t, x)
        elif solver == "midpoint":
            x = x + h * f(t + h / 2, x + h / 2 * f(t, x))
        else:
            k1 = f(t, x)
            k2 = f(t + h / 2, x + h / 2 * k1)
            k3 = f(t + h / 2, x + h / 2 * k2)
            k4 = f(t + h, x + h * k3)
            x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x
