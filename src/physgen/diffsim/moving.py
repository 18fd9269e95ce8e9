"""Event moving: pathwise derivatives, differentiable histograms, score-function gradients.

Two ways to differentiate an expectation E_theta[O(x)] (``shared/reference/
unfold-anomaly-jets.md`` section 6.1):

- **Pathwise** (reparameterisation, "moving events"): write the simulator as x = g(u; theta)
  with random numbers u independent of theta; then dE/dtheta = E[grad_x O . dg/dtheta].
  Keeping u fixed, each event moves smoothly with theta, samples at different theta are
  perfectly correlated, and a first-order move x(theta) ~ x(theta0) + dx/dtheta (theta -
  theta0) needs no new simulation. Requires g piecewise smooth: jumps (vetoes, discrete
  branchings, hard cuts) are missed by the pathwise derivative.
- **Score function** (reweighting): dE/dtheta = E[O d ln p_theta(x) / dtheta], valid for
  discrete x too, at the price of variance (reduced here by a baseline).

Histograms are made differentiable by *soft binning*: an event at x adds
w_b(x) = s((x - lo_b) / tau) - s((x - hi_b) / tau) to bin b (s the logistic function), so
the counts are smooth in the events' positions; the weights of all bins sum to one inside
the outer edges. The soft counts are the hard ones of the density convolved with a logistic
kernel of variance pi^2 tau^2 / 3; their bias is (pi^2 tau^2 / 6)(f'(hi) - f'(lo)) + O(tau^4)
(:func:`soft_histogram_bias`), and it cancels in a fit where data and simulation are binned
alike.

The Gaussian example x = mu + sigma Phi^-1(z) (:func:`gaussian_simulator`) has closed-form
derivatives dx/dmu = 1, dx/dsigma = Phi^-1(z).

Example:
    >>> import torch
    >>> u = torch.rand(1000, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    >>> theta = torch.tensor([0.5, 2.0], dtype=torch.float64)
    >>> x, dx = pathwise_derivative(lambda u, t: gaussian_simulator(u, t[..., 0], t[..., 1]), u, theta)
    >>> bool(torch.allclose(dx[:, 0, 1], torch.special.ndtri(u)))
    True
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from physgen.errors import ConfigError

__all__ = [
    "gaussian_derivatives",
    "gaussian_simulator",
    "move",
    "pathwise_derivative",
    "score_function_gradient",
    "soft_histogram",
    "soft_histogram_bias",
    "soft_histogram_jacobian",
    "soft_widths",
]


def gaussian_simulator(u: Tensor, mu: Tensor | float, sigma: Tensor | float) -> Tensor:
    """The Gaussian example: x = mu + sigma Phi^-1(u) for uniforms ``u`` in (0, 1), shape of ``u``."""
    x: Tensor = mu + sigma * torch.special.ndtri(u)
    return x


def gaussian_derivatives(u: Tensor) -> tuple[Tensor, Tensor]:
    """Closed-form (dx/dmu, dx/dsigma) of :func:`gaussian_simulator`: (1, Phi^-1(u))."""
    return torch.ones_like(u), torch.special.ndtri(u)


def pathwise_derivative(
    simulator: Callable[[Tensor, Tensor], Tensor], u: Tensor, theta: Tensor
) -> tuple[Tensor, Tensor]:
    """Each event's value and its derivative in the parameters at fixed random numbers.

    Args:
        simulator: ``g(u, theta) -> x``, torch-differentiable in theta, events independent:
            called with ``u`` of shape (N, ...) and ``theta`` broadcast to (N, P); returns
            (N,) or (N, D).
        u: ``(N, ...)`` the fixed random numbers.
        theta: ``(P,)`` parameters.

    Returns:
        ``x`` (N, D) and ``dx/dtheta`` (N, D, P), detached.

    Raises:
        ConfigError: ``theta`` not one-dimensional.
    """
    if theta.ndim != 1:
        raise ConfigError(f"theta must be a (P,) vector, got shape {tuple(theta.shape)}")
    n = u.shape[0]
    # one parameter copy per event: the gradient of the sum is then each event's own
    th = theta.detach().expand(n, theta.shape[0]).clone().requires_grad_(True)
    x = simulator(u, th)
    x2 = x.reshape(n, -1)
    jac = torch.zeros(n, x2.shape[1], theta.shape[0], dtype=x2.dtype, device=x2.device)
    for d in range(x2.shape[1]):
        (g,) = torch.autograd.grad(x2[:, d].sum(), th, retain_graph=d + 1 < x2.shape[1],
                                   allow_unused=True)  # fmt: skip
        if g is not None:
            jac[:, d, :] = g
    return x2.detach(), jac


def move(x: Tensor, dx: Tensor, delta: Tensor | float) -> Tensor:
    """First-order move x + dx/dtheta . delta: ``x`` (N, D), ``dx`` (N, D, P), ``delta`` (P,)."""
    d = torch.as_tensor(delta, dtype=x.dtype, device=x.device).reshape(-1)
    return x + (dx * d).sum(-1)


def soft_widths(edges: Tensor, fraction: float = 0.2) -> Tensor:
    """Per-edge temperatures: ``fraction`` of the narrower neighbouring bin, ``(B + 1,)``."""
    w = torch.diff(edges)
    if not bool((w > 0).all()):
        raise ConfigError("bin edges must increase strictly")
    left = torch.cat([w[:1], w])
    right = torch.cat([w, w[-1:]])
    return fraction * torch.minimum(left, right)


def _steps(x: Tensor, edges: Tensor, tau: Tensor | float) -> Tensor:
    t = torch.as_tensor(tau, dtype=x.dtype, device=x.device)
    return torch.sigmoid((x[:, None] - edges[None, :]) / t)


def soft_histogram(
    x: Tensor, edges: Tensor, tau: Tensor | float, weights: Tensor | None = None
) -> Tensor:
    """Differentiable histogram of ``x`` (N,): soft counts ``(B,)`` for ``edges`` (B + 1,).

    Args:
        x: ``(N,)`` values.
        edges: ``(B + 1,)`` increasing bin edges.
        tau: Logistic temperature, a scalar or one per edge ``(B + 1,)`` (see
            :func:`soft_widths`); tau -> 0 gives the hard histogram.
        weights: Optional ``(N,)`` event weights.
    """
    s = _steps(x, edges, tau)  # (N, B+1): probability of lying above each edge
    w = s[:, :-1] - s[:, 1:]
    if weights is not None:
        w = w * weights[:, None]
    return w.sum(0)


def soft_histogram_jacobian(
    x: Tensor, dx: Tensor, edges: Tensor, tau: Tensor | float, weights: Tensor | None = None
) -> Tensor:
    """d(soft counts)/dtheta ``(B, P)`` for events moving as dx/dtheta ``(N, P)``."""
    t = torch.as_tensor(tau, dtype=x.dtype, device=x.device)
    s = _steps(x, edges, t)
    ds = s * (1.0 - s) / t  # d s / d x per edge
    dw = ds[:, :-1] - ds[:, 1:]
    if weights is not None:
        dw = dw * weights[:, None]
    return dw.T @ dx.reshape(x.shape[0], -1)


def soft_histogram_bias(
    edges: Tensor, tau: float, density_derivative: Callable[[Tensor], Tensor], n: float = 1.0
) -> Tensor:
    """Leading-order bias of the soft counts: n (pi^2 tau^2 / 6)(f'(hi) - f'(lo)), ``(B,)``.

    Args:
        edges: ``(B + 1,)`` bin edges.
        tau: Scalar temperature.
        density_derivative: f'(x) of the events' density (normalised to one).
        n: Number of events.
    """
    fp = density_derivative(edges)
    return n * (math.pi**2 * tau**2 / 6.0) * (fp[1:] - fp[:-1])


def score_function_gradient(values: Tensor, scores: Tensor) -> tuple[Tensor, Tensor]:
    """Score-function (REINFORCE) estimate of dE[O]/dtheta with its standard error.

    The estimator mean((O - b) d ln p / dtheta) with the baseline b = mean(O) (unbiased up
    to O(1/N), much smaller variance when E[score] = 0 holds).

    Args:
        values: ``(N,)`` observable per event.
        scores: ``(N,)`` or ``(N, P)`` d ln p(x_i; theta) / dtheta per event.

    Returns:
        ``(P,)`` gradient and ``(P,)`` standard error.
    """
    sc = scores.reshape(scores.shape[0], -1)
    if values.shape[0] != sc.shape[0] or values.shape[0] < 2:
        raise ConfigError("values and scores need the same number (>= 2) of events")
    terms = (values - values.mean())[:, None] * sc
    return terms.mean(0), terms.std(0) / math.sqrt(values.shape[0])
