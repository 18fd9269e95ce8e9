"""Fit alpha_s(M_Z) from e+e- event shapes with one moved sample (arXiv:2208.02274).

1. Simulate one sample of N events of the Discrete-QCD shower (:mod:`physgen.diffsim.shower`)
   and keep its random numbers (the event seeds).
2. For a trial alpha_s, *move* the sample: re-run the shower with the same random numbers
   (the events change smoothly; no statistical jitter between trial values) and take each
   event's observables x_i and their pathwise derivatives dx_i / d alpha_s.
3. Soft-bin the observables (:func:`physgen.diffsim.moving.soft_histogram`) with the same
   edges for data and simulation, and minimise
   chi2 = sum_b (m_b - d_b)^2 / (var d_b + var m_b) by Gauss-Newton steps using the pathwise
   Jacobian dm_b / d alpha_s (gradient descent with the curvature as step size).
4. The error is the spread of bootstrap refits (Poisson(1) weights on data *and* simulated
   events; each replica refitted by linearised steps, the events moved to first order), so it
   holds the statistics of both samples and the correlations of several observables
   measured on the same events.

Bins: equal-probability edges from the data (``bins`` per observable) with open outer
bins; temperatures 0.2 x the narrower neighbouring bin (the bias cancels between data and
simulation binned alike).

Example:
    >>> fit = fit_alpha_s(pseudo_data(0.125, n=4000, seed=1), n_mc=4000, seed=1, bootstrap=0)
    >>> 0.11 < fit.alpha_s < 0.14
    True
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import torch

from physgen.diffsim.moving import soft_histogram, soft_histogram_jacobian, soft_widths
from physgen.diffsim.observables import OBSERVABLES, event_shapes
from physgen.diffsim.shower import ALPHA_S_RANGE, DiscreteQCDShower, check_alpha_s, event_seeds
from physgen.errors import ConfigError, FitError

__all__ = [
    "DEFAULT_OBSERVABLES",
    "AlphaFit",
    "Binning",
    "check_observables",
    "chi2_curve",
    "fit_alpha_s",
    "pseudo_data",
    "shower_observables",
]

F64 = npt.NDArray[np.float64]
#: Observables fitted by default (infrared- and collinear-safe, differentiable).
DEFAULT_OBSERVABLES = ("tau", "rho", "c", "y23")


def check_observables(observables: Sequence[str]) -> tuple[str, ...]:
    """The observables as a tuple, or :class:`ConfigError` for a name the fit cannot use."""
    names = tuple(observables)
    bad = [o for o in names if o not in OBSERVABLES or o == "multiplicity"]
    if not names or bad:
        raise ConfigError(
            f"observables for the fit: choose from tau, rho, c, y23 (got {', '.join(names)}); "
            "the multiplicity has no pathwise derivative"
        )
    return names


def shower_observables(
    shower: DiscreteQCDShower,
    alpha_s: float,
    seeds: npt.NDArray[np.uint64],
    observables: Sequence[str] = DEFAULT_OBSERVABLES,
) -> tuple[F64, F64, npt.NDArray[np.int64]]:
    """Observables of the events ``seeds`` at ``alpha_s`` and their pathwise derivatives.

    Returns:
        ``x`` (N, K), ``dx / d alpha_s`` (N, K) and the multiplicity (N,).
    """
    names = check_observables(observables)
    ev = shower.run(alpha_s, seeds=seeds)
    a0 = torch.tensor(ev.alpha_s, dtype=torch.float64)
    n = ev.momenta.shape[0]
    # one alpha_s per event: the gradient of each summed observable is per event
    a = a0.expand(n).clone().requires_grad_(True)
    p = torch.as_tensor(ev.momenta) + torch.as_tensor(ev.dmomenta) * (a - a0)[:, None, None]
    shapes = event_shapes(p, torch.as_tensor(ev.mask), names)
    x = np.empty((n, len(names)))
    dx = np.empty((n, len(names)))
    for k, name in enumerate(names):
        (g,) = torch.autograd.grad(shapes[name].sum(), a, retain_graph=k + 1 < len(names))
        x[:, k] = shapes[name].detach().numpy()
        dx[:, k] = g.numpy()
    return x, dx, ev.n_partons


def pseudo_data(
    alpha_s: float,
    n: int,
    seed: int,
    observables: Sequence[str] = DEFAULT_OBSERVABLES,
    shower: DiscreteQCDShower | None = None,
) -> F64:
    """``(n, K)`` observables of n fresh events at a (hidden) ``alpha_s``."""
    sh = shower or DiscreteQCDShower()
    x, _, _ = shower_observables(sh, check_alpha_s(alpha_s), event_seeds(seed, n), observables)
    return x


@dataclass(frozen=True)
class Binning:
    """Soft-binning edges and temperatures per observable (fixed by the data).

    Attributes:
        edges: One ``(B + 1,)`` tensor per observable.
        taus: One ``(B + 1,)`` tensor of temperatures per observable.
    """

    edges: tuple[torch.Tensor, ...]
    taus: tuple[torch.Tensor, ...]

    @classmethod
    def from_data(cls, data: F64, bins: int = 20) -> Binning:
        """Equal-probability bins of each column of ``data`` (N, K), open outer bins."""
        if bins < 2:
            raise ConfigError(f"bins must be at least 2, got {bins}")
        edges, taus = [], []
        for k in range(data.shape[1]):
            col = data[:, k]
            inner = np.unique(np.quantile(col, np.linspace(0, 1, bins + 1)[1:-1]))
            inner = inner[inner > col.min()]  # a spike at the minimum (2-parton events)
            if inner.size < 1:
                raise FitError(f"observable {k}: the data take a single value")
            span = col.max() - col.min() + 1e-12
            e = np.concatenate([[col.min() - span], inner, [col.max() + span]])
            et = torch.as_tensor(e, dtype=torch.float64)
            w = soft_widths(et)
            w[0], w[-1] = w[1], w[-2]  # the open edges are far from any event
            edges.append(et)
            taus.append(w)
        return cls(tuple(edges), tuple(taus))

    def counts(self, x: F64, weights: F64 | None = None) -> torch.Tensor:
        """Concatenated soft counts of all observables, ``(sum B,)``."""
        xt = torch.as_tensor(x, dtype=torch.float64)
        wt = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        return torch.cat(
            [
                soft_histogram(xt[:, k], e, t, wt)
                for k, (e, t) in enumerate(zip(self.edges, self.taus))
            ]
        )

    def jacobian(self, x: F64, dx: F64, weights: F64 | None = None) -> torch.Tensor:
        """d counts / d alpha_s, ``(sum B,)``, for events moving as ``dx`` (N, K)."""
        xt, dt = torch.as_tensor(x), torch.as_tensor(dx)
        wt = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
        return torch.cat(
            [
                soft_histogram_jacobian(xt[:, k], dt[:, k : k + 1], e, t, wt)[:, 0]
                for k, (e, t) in enumerate(zip(self.edges, self.taus))
            ]
        )

    def sq_counts(self, x: F64, weights: F64 | None = None) -> torch.Tensor:
        """Variance of the soft counts, sum of squared bin weights (times event weights^2)."""
        xt = torch.as_tensor(x, dtype=torch.float64)
        out = []
        for k, (e, t) in enumerate(zip(self.edges, self.taus)):
            s = torch.sigmoid((xt[:, k, None] - e[None, :]) / t)
            w = (s[:, :-1] - s[:, 1:]) ** 2
            if weights is not None:
                w = w * torch.as_tensor(weights, dtype=torch.float64)[:, None] ** 2
            out.append(w.sum(0))
        return torch.cat(out)


@dataclass
class AlphaFit:
    """Result of :func:`fit_alpha_s`.

    Attributes:
        alpha_s: Fitted alpha_s(M_Z).
        error: Statistical error: the bootstrap spread (data and simulation) when
            ``bootstrap`` > 0, else the chi2 curvature error.
        curvature_error: 1 / sqrt(J^T V^-1 J) at the minimum (bins treated as independent).
        chi2: chi2 at the minimum; ``ndf``: bins - 1.
        path: alpha_s after each Gauss-Newton step (the first entry is the start).
        replicas: The bootstrap fits.
        n_data, n_mc: Events in the data and in the moved sample.
        observables: The fitted observables.
    """

    alpha_s: float
    error: float
    curvature_error: float
    chi2: float
    ndf: int
    path: list[float]
    replicas: list[float] = field(default_factory=list)
    n_data: int = 0
    n_mc: int = 0
    observables: tuple[str, ...] = DEFAULT_OBSERVABLES


def _gn_step(d: torch.Tensor, vd: torch.Tensor, m: torch.Tensor, vm: torch.Tensor,
             jac: torch.Tensor) -> tuple[float, float, float]:  # fmt: skip
    """One Gauss-Newton step: (delta, chi2, J^T V^-1 J) for model m with Jacobian jac."""
    v = (vd + vm).clamp_min(1e-12)
    r = d - m
    chi2 = float((r * r / v).sum())
    h = float((jac * jac / v).sum())
    if h <= 0:
        raise FitError("the fitted observables do not depend on alpha_s in these bins")
    return float((jac * r / v).sum()) / h, chi2, h


def fit_alpha_s(
    data: F64,
    n_mc: int = 20_000,
    seed: int = 0,
    start: float = 0.118,
    observables: Sequence[str] = DEFAULT_OBSERVABLES,
    bins: int = 20,
    bootstrap: int = 50,
    max_steps: int = 12,
    shower: DiscreteQCDShower | None = None,
) -> AlphaFit:
    """Fit alpha_s(M_Z) to per-event observables ``data`` (N, K) with one moved sample.

    Args:
        data: ``(N, K)`` observables (columns in the order of ``observables``).
        n_mc: Events in the simulated (moved) sample.
        seed: Seed of the simulated sample's random numbers and of the bootstrap.
        start: alpha_s where the moving starts.
        observables: Columns of ``data``: names from tau, rho, c, y23.
        bins: Equal-probability bins per observable.
        bootstrap: Bootstrap replicas for the error (0: the curvature error).
        max_steps: Gauss-Newton steps at most (converged when a step is < 5 % of the error).
        shower: The simulator (default :class:`DiscreteQCDShower` at the Z pole).

    Raises:
        ConfigError: Bad options or a data array of the wrong shape.
        FitError: No convergence within ``max_steps`` or alpha_s leaving the valid range.
    """
    names = check_observables(observables)
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] != len(names) or data.shape[0] < 10 * bins:
        raise ConfigError(
            f"data must be (N, {len(names)}) with N >= 10 x bins, got shape {data.shape}"
        )
    if not np.isfinite(data).all():
        raise ConfigError("data hold NaN or infinite observables")
    if n_mc < 10 * bins:
        raise ConfigError(f"n_mc must be at least 10 x bins ({10 * bins}), got {n_mc}")
    sh = shower or DiscreteQCDShower()
    binning = Binning.from_data(data, bins)
    d, vd = binning.counts(data), binning.sq_counts(data)
    seeds = event_seeds(seed, n_mc, stream=1)
    scale = data.shape[0] / n_mc
    alpha = check_alpha_s(start, "start")
    path = [alpha]
    lo, hi = ALPHA_S_RANGE
    for _ in range(max_steps):
        x, dx, _ = shower_observables(sh, alpha, seeds, names)
        m = scale * binning.counts(x)
        vm = scale**2 * binning.sq_counts(x)
        delta, chi2, h = _gn_step(d, vd, m, vm, scale * binning.jacobian(x, dx))
        # converged when a step is below 5 % of the error: the events' jumps (emissions that
        # switch order) can hold the iteration in a cycle of about 1 % of the error
        if abs(delta) < 0.05 / math.sqrt(h):
            break
        alpha += max(-0.01, min(0.01, delta))  # trust region: the Jacobian is local
        if not lo <= alpha <= hi:
            raise FitError(f"the fit left the valid range of alpha_s ({lo}-{hi}) at {alpha:.4f}")
        path.append(alpha)
    else:
        raise FitError(f"the alpha_s fit did not converge in {max_steps} steps (path {path})")
    curv = 1.0 / math.sqrt(h)
    replicas = _bootstrap(data, x, dx, binning, alpha, bootstrap, seed)
    err = float(np.std(replicas, ddof=1)) if len(replicas) > 1 else curv
    ndf = int(d.shape[0]) - 1
    return AlphaFit(alpha, err, curv, chi2, ndf, path, replicas, data.shape[0], n_mc, names)


def _bootstrap(data: F64, x: F64, dx: F64, binning: Binning, alpha: float, n_rep: int,
               seed: int) -> list[float]:  # fmt: skip
    """Refits with Poisson(1) weights on data and simulated events, moved to first order."""
    rng = np.random.default_rng([seed, 0xB007])
    out: list[float] = []
    for _ in range(n_rep):
        wd = np.asarray(rng.poisson(1.0, size=data.shape[0]), dtype=np.float64)
        wm = np.asarray(rng.poisson(1.0, size=x.shape[0]), dtype=np.float64)
        d, vd = binning.counts(data, wd), binning.sq_counts(data, wd)
        scale = wd.sum() / wm.sum()
        shift = 0.0
        for _ in range(4):  # linearised Gauss-Newton on the moved replica
            xm = x + dx * shift
            m = scale * binning.counts(xm, wm)
            vm = scale**2 * binning.sq_counts(xm, wm)
            delta, _, _ = _gn_step(d, vd, m, vm, scale * binning.jacobian(xm, dx, wm))
            shift += delta
        out.append(alpha + shift)
    return out


def chi2_curve(
    data: F64,
    alphas: Sequence[float] | F64,
    n_mc: int,
    seed: int,
    observables: Sequence[str] = DEFAULT_OBSERVABLES,
    bins: int = 20,
    independent: bool = False,
    shower: DiscreteQCDShower | None = None,
) -> F64:
    """chi2 of the data against simulation at each of ``alphas``.

    With ``independent`` False the same random numbers (the fit's simulated sample for this
    ``seed``) are moved to every value: a smooth curve; True draws a fresh sample per value
    (the brute-force grid).
    """
    names = check_observables(observables)
    sh = shower or DiscreteQCDShower()
    binning = Binning.from_data(np.asarray(data, dtype=np.float64), bins)
    d, vd = binning.counts(data), binning.sq_counts(data)
    scale = data.shape[0] / n_mc
    out = []
    for i, a in enumerate(alphas):
        seeds = event_seeds(seed, n_mc, stream=2 + i if independent else 1)
        x, _, _ = shower_observables(sh, a, seeds, names)
        m, vm = scale * binning.counts(x), scale**2 * binning.sq_counts(x)
        out.append(float(((d - m) ** 2 / (vd + vm).clamp_min(1e-12)).sum()))
    return np.asarray(out)
