"""Simulation-based inference: neural posterior estimation with the generic core.

Given a prior ``p(theta)`` and a simulator ``theta -> x`` (any Python callable), draw a
simulation budget, fit the posterior ``p(theta | x)`` with a conditional density model, sample
it for observed data, and check its calibration::

    from physgen import sbi
    prior = sbi.BoxUniform([-1, -1], [1, 1])
    theta, x = sbi.simulate(prior, simulator, 10_000, seed=0)
    post = sbi.npe(theta, x, prior=prior)              # normalizing flow (NPE)
    post = sbi.fmpe(theta, x, prior=prior)             # flow matching (FMPE)
    samples = post.sample(x_observed, 10_000, seed=1)  # (10000, P)
    report = sbi.sbc(post, prior, simulator, n=300, seed=2)
    report.plot("sbc.pdf")

Methods: NPE with a conditional normalizing flow (Papamakarios & Murray, NeurIPS 2016,
arXiv:1605.06376; Greenberg et al., ICML 2019, arXiv:1905.07488), FMPE with conditional flow
matching (Wildberger et al., NeurIPS 2023, arXiv:2305.17161). Calibration: simulation-based
calibration ranks (Talts et al., arXiv:1804.06788) and expected coverage of central
(marginal) and highest-density (joint, flows only) credible regions.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.density import DensityEstimator, fit, load
from physgen.errors import ConfigError, DataFormatError

__all__ = [
    "BoxUniform",
    "Gaussian",
    "Posterior",
    "SBCResult",
    "fmpe",
    "npe",
    "sbc",
    "simulate",
]

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class BoxUniform:
    """Uniform prior on a box ``[low, high]`` (P parameters)."""

    low: Sequence[float]
    high: Sequence[float]

    def __post_init__(self) -> None:
        lo, hi = np.asarray(self.low, float), np.asarray(self.high, float)
        if lo.shape != hi.shape or lo.ndim != 1 or not (lo < hi).all():
            raise ConfigError(
                "BoxUniform: low and high must be 1-D of equal length with low < high"
            )

    @property
    def dim(self) -> int:
        """P."""
        return len(self.low)

    def sample(self, n: int, rng: np.random.Generator) -> F64:
        """``(n, P)`` draws."""
        lo, hi = np.asarray(self.low, float), np.asarray(self.high, float)
        out: F64 = lo + (hi - lo) * rng.random((n, self.dim))
        return out

    def bounds(self) -> list[tuple[float, float] | None]:
        """The support, for the codec."""
        return [(float(a), float(b)) for a, b in zip(self.low, self.high)]


@dataclass(frozen=True)
class Gaussian:
    """Multivariate normal prior ``N(mean, cov)``."""

    mean: Sequence[float]
    cov: Sequence[Sequence[float]]

    def __post_init__(self) -> None:
        m, c = np.asarray(self.mean, float), np.asarray(self.cov, float)
        if m.ndim != 1 or c.shape != (m.size, m.size):
            raise ConfigError(
                f"Gaussian: mean must be 1-D (P,) and cov (P, P), got {m.shape} and {c.shape}"
            )
        if not np.allclose(c, c.T) or np.linalg.eigvalsh(c).min() <= 0:
            raise ConfigError("Gaussian: cov must be symmetric positive definite")

    @property
    def dim(self) -> int:
        """P."""
        return len(self.mean)

    def sample(self, n: int, rng: np.random.Generator) -> F64:
        """``(n, P)`` draws."""
        return rng.multivariate_normal(np.asarray(self.mean, float), np.asarray(self.cov, float), n)

    def bounds(self) -> list[tuple[float, float] | None]:
        """Unbounded."""
        return [None] * self.dim


def _prior_sample(prior: Any, n: int, rng: np.random.Generator) -> F64:
    if hasattr(prior, "sample") and not callable(getattr(prior, "log_prob", None)):
        out = prior.sample(n, rng)
    elif hasattr(prior, "sample"):  # a torch distribution
        import torch

        with torch.random.fork_rng(devices=[]):  # the caller's global torch state is kept
            torch.manual_seed(int(rng.integers(2**62)))
            out = prior.sample((n,)).detach().cpu().numpy()
    elif callable(prior):
        out = prior(n, rng)
    else:
        raise ConfigError("prior: expected BoxUniform, Gaussian, a torch distribution or f(n, rng)")
    arr = np.asarray(out, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] != n:
        raise DataFormatError(f"prior: returned shape {arr.shape} for {n} draws, expected ({n}, P)")
    if not np.isfinite(arr).all():
        raise DataFormatError("prior: returned NaN or inf")
    return arr


def _prior_bounds(prior: Any, dim: int) -> list[tuple[float, float] | None] | None:
    bounds = getattr(prior, "bounds", None)
    if callable(bounds):
        out = bounds()
        return out if any(b is not None for b in out) and len(out) == dim else None
    return None


def _rng_argument(simulator: Callable[..., Any]) -> str:
    """How ``simulator`` takes a random generator: a parameter named ``rng`` (``keyword``),
    a second required positional parameter (``positional``), or none."""
    try:
        params = list(inspect.signature(simulator).parameters.values())
    except (TypeError, ValueError):  # builtins and ufuncs: f(theta)
        return "none"
    if any(p.name == "rng" for p in params):
        return "keyword"
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in params if p.kind in positional and p.default is p.empty]
    return "positional" if len(required) >= 2 else "none"


def simulate(
    prior: Any,
    simulator: Callable[..., Any],
    n: int,
    *,
    seed: int = 0,
    batch_size: int = 100_000,
) -> tuple[F64, F64]:
    """Draw ``n`` parameters from the prior and simulate them.

    Args:
        prior: :class:`BoxUniform`, :class:`Gaussian`, a torch distribution or
            ``f(n, rng) -> (n, P)``.
        simulator: ``f(theta (b, P)) -> x (b, D)``; one with a parameter named ``rng`` or a
            second required positional parameter receives a ``numpy.random.Generator``
            derived from ``seed`` there.
        n: Simulations.
        seed: Seed of the prior draws and of the simulator's generator.
        batch_size: Parameters per simulator call.

    Returns:
        ``(theta (n, P), x (n, D))`` float64.

    Raises:
        ConfigError: The prior or the simulator returns the wrong shape, NaN or inf.
    """
    if n < 1:
        raise ConfigError(f"n must be >= 1, got {n}")
    rng = np.random.default_rng([seed, 0x5342])
    theta = _prior_sample(prior, n, rng)
    rng_mode = _rng_argument(simulator)
    parts: list[F64] = []
    for i in range(0, n, batch_size):
        t = theta[i : i + batch_size]
        if rng_mode == "keyword":
            out = simulator(t, rng=rng)
        elif rng_mode == "positional":
            out = simulator(t, rng)
        else:
            out = simulator(t)
        if hasattr(out, "detach"):
            out = out.detach().cpu().numpy()
        x = np.asarray(out, dtype=np.float64)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[0] != t.shape[0]:
            raise DataFormatError(
                f"simulator: returned shape {x.shape} for {t.shape[0]} parameter sets, "
                f"expected ({t.shape[0]}, D)"
            )
        if parts and x.shape[1] != parts[0].shape[1]:
            raise DataFormatError("simulator: the width of x changed between calls")
        if not np.isfinite(x).all():
            bad = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
            raise DataFormatError(f"simulator: returned NaN or inf (theta = {t[bad].tolist()})")
        parts.append(x)
    return theta, np.concatenate(parts)


class Posterior:
    """An amortised posterior ``q(theta | x)``: sample and (flows) evaluate it for any x.

    One estimator, or an ensemble: the equal-weight mixture of several estimators fitted with
    different seeds (and validation splits), which is better calibrated than its members when
    they are over-confident (Hermans et al., TMLR 2022, arXiv:2110.06581).

    Attributes:
        members: The underlying :class:`~physgen.density.DensityEstimator` objects (x = theta,
            c = data), one unless an ensemble.
        estimator: The first member.
    """

    def __init__(self, estimator: DensityEstimator | Sequence[DensityEstimator]) -> None:
        members = [estimator] if isinstance(estimator, DensityEstimator) else list(estimator)
        if not members:
            raise ConfigError("Posterior: needs at least one estimator")
        first = members[0]
        for m in members[1:]:
            if (m.x_dim, m.c_dim, m.model.tractable) != (
                first.x_dim,
                first.c_dim,
                first.model.tractable,
            ):
                raise ConfigError(
                    "Posterior: ensemble members differ in parameter or data width or in "
                    "whether they have a density"
                )
        self.members = members
        self.estimator = first

    @property
    def tractable(self) -> bool:
        """Whether :meth:`log_prob` exists (flow family)."""
        return bool(self.estimator.model.tractable)

    def _x(self, x: Any) -> F64:
        arr = np.asarray(x, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[None]
        if arr.ndim == 2 and not np.isfinite(arr).all():
            raise DataFormatError("x (observation): contains NaN or inf")
        if arr.ndim != 2 or arr.shape[1] != self.estimator.c_dim:
            raise ConfigError(
                f"x: expected {self.estimator.c_dim} data values per observation, got shape "
                f"{np.asarray(x).shape}"
            )
        return arr

    def sample(self, x: Any, n: int, *, seed: int | None = None) -> F64:
        """``n`` posterior samples ``(n, P)`` for one observation ``x (D,)``, or ``(n, M, P)``
        for M observations ``(M, D)``."""
        arr = self._x(x)
        if len(self.members) == 1:
            out = np.asarray(self.estimator(arr).sample(n, seed=seed), dtype=np.float64)
        else:
            # mixture: multinomial share per member, then a random order
            rng = np.random.default_rng(None if seed is None else [seed, 0x454E53])
            counts = rng.multinomial(n, np.full(len(self.members), 1.0 / len(self.members)))
            seeds = rng.integers(0, 2**31 - 1, size=len(self.members))
            parts = [
                np.asarray(m(arr).sample(int(k), seed=int(s)), dtype=np.float64)
                for m, k, s in zip(self.members, counts, seeds, strict=True)
                if k
            ]
            out = np.concatenate(parts, axis=0)[rng.permutation(n)]
        return out[:, 0] if np.asarray(x).ndim == 1 else out

    def log_prob(self, theta: Any, x: Any) -> F64:
        """``log q(theta | x)`` ``(n,)`` for parameters ``(n, P)`` and one observation."""
        p = self.estimator.x_dim
        th = np.asarray(theta, dtype=np.float64).reshape(-1, p)
        obs = self._x(x)
        if obs.shape[0] != 1:
            raise ConfigError(f"x: log_prob takes one observation, got {obs.shape[0]}")
        arr = np.repeat(obs, th.shape[0], axis=0)
        lp = np.stack([np.asarray(m(arr).log_prob(th), dtype=np.float64) for m in self.members])
        if len(self.members) == 1:
            return np.asarray(lp[0], dtype=np.float64)
        top = lp.max(axis=0)
        safe = np.where(np.isfinite(top), top, 0.0)
        mix = safe + np.log(np.exp(lp - safe).mean(axis=0))
        return np.asarray(np.where(np.isfinite(top), mix, top), dtype=np.float64)

    def save(self, path: str | Path) -> Path:
        """Write the run directory (see :func:`physgen.density.load`); an ensemble writes one
        per member (``member-0``, ...) and ``ensemble.json``."""
        if len(self.members) == 1:
            return self.estimator.save(path)
        from physgen.outputs import atomic_write_text

        d = Path(path)
        if d.exists() and (not d.is_dir() or (any(d.iterdir()) and not (d / _ENSEMBLE).is_file())):
            raise ConfigError(f"{d}: exists and is not an empty folder or a saved ensemble")
        names = [f"member-{i}" for i in range(len(self.members))]
        for name, m in zip(names, self.members, strict=True):
            m.save(d / name)
        atomic_write_text(d / _ENSEMBLE, json.dumps({"members": names}, indent=2) + "\n")
        return d

    @classmethod
    def load(cls, path: str | Path) -> Posterior:
        """Load a posterior saved by :meth:`save`."""
        d = Path(path)
        if (d / _ENSEMBLE).is_file():
            try:
                names = json.loads((d / _ENSEMBLE).read_text())["members"]
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"{d / _ENSEMBLE}: unreadable ({exc})") from exc
            return cls([load(d / str(name)) for name in names])
        return cls(load(d))


_ENSEMBLE = "ensemble.json"


def _finite_2d(name: str, a: Any) -> F64:
    arr = np.asarray(a, dtype=np.float64)
    arr = arr[:, None] if arr.ndim == 1 else arr
    if arr.ndim != 2:
        raise DataFormatError(f"{name}: expected shape (N, width), got {arr.shape}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise DataFormatError(f"{name}: contains NaN or inf (first at row {bad})")
    return arr


def npe(
    theta: Any,
    x: Any,
    *,
    prior: Any = None,
    model: str = "flow",
    seed: int = 0,
    ensemble: int = 1,
    **options: Any,
) -> Posterior:
    """Neural posterior estimation: fit ``q(theta | x)`` on simulations.

    Args:
        theta: Parameters ``(N, P)``.
        x: Simulated data ``(N, D)``.
        prior: The prior; a bounded one (:class:`BoxUniform`) keeps samples in its support
            through the codec's logit map.
        model: Density family (``flow``: NPE; ``cfm``: FMPE; any of the five).
        seed: Run seed (member i of an ensemble: ``seed + i``).
        ensemble: Estimators fitted with seeds ``seed, seed + 1, ...`` (each with its own
            validation split); the posterior is their equal-weight mixture. Costs ``ensemble``
            times the training time; more conservative than one estimator.
        **options: Passed to :func:`physgen.density.fit` (``config``, ``optim``,
            ``max_time``, ``epochs``, ``device``, ``progress``, ``out``...; an ensemble writes
            member ``i`` to ``out/member-i``).
    """
    if ensemble < 1:
        raise ConfigError(f"ensemble must be >= 1, got {ensemble}")
    th2 = _finite_2d("theta", theta)
    x2 = _finite_2d("x", x)
    if len(th2) != len(x2):
        raise DataFormatError(f"theta has {len(th2)} rows but x has {len(x2)}")
    bounds = options.pop("bounds", None)
    if bounds is None and prior is not None:
        bounds = _prior_bounds(prior, th2.shape[1])
    if bounds is not None:
        lo = np.array([b[0] if b and b[0] is not None else -np.inf for b in bounds], float)
        hi = np.array([b[1] if b and b[1] is not None else np.inf for b in bounds], float)
        if ((th2 < lo) | (th2 > hi)).any():
            raise DataFormatError("theta: values outside the prior's support")
    if ensemble == 1:
        return Posterior(fit(th2, x2, model=model, bounds=bounds, seed=seed, **options))
    out = options.pop("out", None)
    if out is not None and Path(out).exists() and any(Path(out).iterdir()):
        raise ConfigError(f"out {out}: exists and is not an empty folder")
    members = [
        fit(
            th2,
            x2,
            model=model,
            bounds=bounds,
            seed=seed + i,
            out=None if out is None else Path(out) / f"member-{i}",
            **options,
        )
        for i in range(ensemble)
    ]
    post = Posterior(members)
    if out is not None:
        from physgen.outputs import atomic_write_text

        names = [f"member-{i}" for i in range(ensemble)]
        atomic_write_text(Path(out) / _ENSEMBLE, json.dumps({"members": names}, indent=2) + "\n")
    return post


def fmpe(
    theta: Any, x: Any, *, prior: Any = None, seed: int = 0, ensemble: int = 1, **options: Any
) -> Posterior:
    """Flow matching posterior estimation: :func:`npe` with the ``cfm`` family."""
    return npe(theta, x, prior=prior, model="cfm", seed=seed, ensemble=ensemble, **options)


@dataclass
class SBCResult:
    """Simulation-based calibration of a posterior.

    Attributes:
        ranks: ``(n, P)`` rank of the true parameter among ``n_posterior`` posterior samples,
            per parameter (uniform on ``0..n_posterior`` when calibrated).
        n_posterior: Posterior samples per test simulation.
        levels: Credibility levels of the coverage curve.
        coverage: ``(len(levels),)`` fraction of true parameters inside the central marginal
            credible interval at each level, averaged over the P parameters.
        coverage_hpd: Same for the joint highest-density region (flows), else None.
    """

    ranks: npt.NDArray[np.int64]
    n_posterior: int
    levels: F64
    coverage: F64
    coverage_hpd: F64 | None

    @property
    def n(self) -> int:
        """Test simulations."""
        return int(self.ranks.shape[0])

    def coverage_at(self, level: float, kind: str = "auto") -> float:
        """Empirical coverage at a nominal ``level`` (``kind``: ``marginal``, ``hpd`` or
        ``auto`` = hpd where available)."""
        curve = (
            self.coverage_hpd
            if kind in ("hpd", "auto") and self.coverage_hpd is not None
            else self.coverage
        )
        if kind == "hpd" and self.coverage_hpd is None:
            raise ConfigError("no highest-density coverage: the posterior has no log_prob")
        return float(np.interp(level, self.levels, curve))

    def passes(self, levels: Sequence[float] = (0.5, 0.68, 0.95), tolerance: float = 0.05) -> bool:
        """Expected coverage within ``tolerance`` of nominal at every level."""
        return all(abs(self.coverage_at(a) - a) <= tolerance for a in levels)

    def uniformity_pvalues(self) -> F64:
        """Per-parameter chi-square p-values of the rank histograms (20 bins) against uniform."""
        from scipy import stats

        bins = 20
        out = []
        for j in range(self.ranks.shape[1]):
            counts, _ = np.histogram(self.ranks[:, j], bins=bins, range=(0, self.n_posterior + 1))
            out.append(stats.chisquare(counts).pvalue)
        return np.asarray(out)

    def plot(self, path: str | Path | None = None, names: Sequence[str] | None = None) -> Any:
        """Rank histograms (with the 99 % band of a uniform histogram) and the coverage curve
        (with binomial errors). Returns the matplotlib figure; saved when ``path`` is given."""
        from physgen.plotting import sbc_figure

        return sbc_figure(self, path, names)


def sbc(
    posterior: Posterior,
    prior: Any,
    simulator: Callable[..., Any],
    *,
    n: int = 300,
    n_posterior: int = 1000,
    seed: int = 0,
    levels: Sequence[float] | None = None,
) -> SBCResult:
    """Simulation-based calibration: ranks and expected coverage on fresh simulations.

    For ``n`` pairs ``theta* ~ prior``, ``x* ~ simulator(theta*)``, draws ``n_posterior``
    samples of ``q(theta | x*)`` and records, per parameter, the rank of ``theta*`` and whether
    it lies inside each central credible interval; for tractable posteriors also whether it
    lies inside each highest-density region (the share of samples with a higher density than
    ``theta*`` below the level).
    """
    if n < 10 or n_posterior < 10:
        raise ConfigError("sbc: need n >= 10 and n_posterior >= 10")
    # a stream of its own: the test simulations are not the training ones of simulate(seed)
    test_seed = int(np.random.SeedSequence([seed, 0x534243]).generate_state(1)[0])
    theta, x = simulate(prior, simulator, n, seed=test_seed)
    lv = np.asarray(levels if levels is not None else np.linspace(0.0, 1.0, 21), dtype=np.float64)
    samples = posterior.sample(x, n_posterior, seed=seed + 1)  # (S, n, P)
    samples = np.moveaxis(samples, 0, 1)  # (n, S, P)
    ranks = (samples < theta[:, None, :]).sum(1)
    # central interval at level a: rank fraction within [(1 - a) / 2, (1 + a) / 2]
    u = (ranks + 0.5) / (n_posterior + 1)
    inside = np.abs(u[:, None, :] - 0.5) <= lv[None, :, None] / 2  # (n, L, P)
    coverage = inside.mean(axis=(0, 2))
    hpd = None
    if posterior.tractable:
        frac = np.empty(n)
        for i in range(n):
            lp_s = posterior.log_prob(samples[i], x[i])
            lp_t = posterior.log_prob(theta[i : i + 1], x[i])[0]
            frac[i] = float((lp_s > lp_t).mean())
        hpd = (frac[:, None] < lv[None, :]).mean(0)
    return SBCResult(ranks.astype(np.int64), int(n_posterior), lv, coverage, hpd)
