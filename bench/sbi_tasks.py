"""Priors, simulators and reference posteriors of the sbibm benchmark tasks.

Our own numpy implementation of the tasks of sbibm 1.1.0 (Lueckmann et al., AISTATS 2021,
arXiv:2101.04653), written from the task definitions, so that physgen's main venv can run the
side-by-side benchmark with numpy + torch only (no sbibm, no pyro):

=================  =====  =====  ==========================================================
task               theta  x      model
=================  =====  =====  ==========================================================
two_moons          2      2      U[-1,1]^2 prior; crescent: r~N(0.1,0.01), a~U(-pi/2,pi/2)
gaussian_linear    10     10     theta ~ N(0, 0.1 I), x ~ N(theta, 0.1 I)
gaussian_mixture   2      2      U[-10,10]^2 prior; x ~ .5 N(theta, I) + .5 N(theta, .01 I)
slcp               5      8      U[-3,3]^5 prior; 4 iid 2-d Gaussians, mean theta[0:2],
                                 stds theta[2]^2, theta[3]^2, correlation tanh(theta[4])
bernoulli_glm      10     10     Gaussian smoothness prior; 100 Bernoulli spikes driven by a
                                 white-noise stimulus; x = sufficient statistics X^T y
=================  =====  =====  ==========================================================

Notes
-----
* ``gaussian_mixture`` is 2-dimensional in sbibm (the constructor default and the shipped
  reference files); ``gaussian_mixture(dim=...)`` builds other sizes, without references.
* ``lotka_volterra`` (and ``sir``) are not implemented: sbibm integrates their ODEs with
  Julia through ``diffeqtorch``, which cannot be installed here, so a port could not be
  checked against the original simulator.

Reference posteriors (10,000 samples per observation, observations 1..10) are read from a cache,
``~/.cache/physgen/sbibm/<task>/num_observation_<k>/`` (override: ``PHYSGEN_SBIBM_CACHE``), filled
once by copying sbibm's shipped files::

    bash bench/make_sbi_venv.sh                              # installs sbibm in .venv-bench-sbi
    .venv/bin/python bench/sbi_tasks.py export              # plain file copy, no sbibm import
    .venv-bench-sbi/bin/python bench/sbi_tasks.py check     # our simulators vs sbibm's

Usage::

    from sbi_tasks import get_task
    task = get_task("two_moons")
    rng = np.random.default_rng(0)
    theta = task.prior_sample(1000, rng)
    x = task.simulate(theta, rng)
    x_o, ref_samples, theta_true = task.reference(1)
"""

from __future__ import annotations

import argparse
import bz2
import glob
import json
import math
import os
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

TASK_NAMES = ("two_moons", "gaussian_linear", "gaussian_mixture", "slcp", "bernoulli_glm")
NUM_OBSERVATIONS = 10
REFERENCE_FILES = (
    "observation.csv",
    "reference_posterior_samples.csv.bz2",
    "true_parameters.csv",
    "observation_seed.csv",
)
REPO_ROOT = Path(__file__).resolve().parents[1]
EXPORT_COMMAND = "bash bench/make_sbi_venv.sh && .venv/bin/python bench/sbi_tasks.py export"


# --------------------------------------------------------------------------------------------
# Task container
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    """One benchmark task: prior, simulator and the cached sbibm references.

    Arrays are float64 numpy; ``theta`` is (n, theta_dim) and ``x`` is (n, x_dim).
    ``prior_bounds`` is a (2, theta_dim) array [low; high] for box-uniform priors, else None.
    For Gaussian priors ``prior_mean`` / ``prior_cov`` are set.
    """

    name: str
    theta_dim: int
    x_dim: int
    _prior_sample: Callable[[int, np.random.Generator], np.ndarray] = field(repr=False)
    _prior_log_prob: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    _simulate: Callable[[np.ndarray, np.random.Generator], np.ndarray] = field(repr=False)
    prior_bounds: Optional[np.ndarray] = None
    prior_mean: Optional[np.ndarray] = None
    prior_cov: Optional[np.ndarray] = None
    description: str = ""

    # -- prior ------------------------------------------------------------------------------
    def prior_sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        return self._prior_sample(int(n), rng)

    def prior_log_prob(self, theta: np.ndarray) -> np.ndarray:
        theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        return self._prior_log_prob(theta)

    def torch_prior(self):
        """The prior as a ``torch.distributions`` object (float32), e.g. for sbi."""
        import torch
        from torch import distributions as D

        if self.prior_bounds is not None:
            low = torch.as_tensor(self.prior_bounds[0], dtype=torch.float32)
            high = torch.as_tensor(self.prior_bounds[1], dtype=torch.float32)
            return D.Independent(D.Uniform(low, high), 1)
        return D.MultivariateNormal(
            torch.as_tensor(self.prior_mean, dtype=torch.float32),
            covariance_matrix=torch.as_tensor(self.prior_cov, dtype=torch.float32),
        )

    # -- simulator --------------------------------------------------------------------------
    def simulate(self, theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        theta = np.atleast_2d(np.asarray(theta, dtype=np.float64))
        if theta.shape[1] != self.theta_dim:
            raise ValueError(
                f"{self.name}: theta has {theta.shape[1]} columns, expected {self.theta_dim}"
            )
        return self._simulate(theta, rng)

    def simulate_dataset(self, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """n prior draws and their simulations, from one seed."""
        rng = np.random.default_rng(seed)
        theta = self.prior_sample(n, rng)
        return theta, self.simulate(theta, rng)

    # -- references -------------------------------------------------------------------------
    def reference(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(observation (x_dim,), reference posterior samples (10000, theta_dim), true theta)."""
        return load_reference(self.name, k, self.theta_dim, self.x_dim)

    def observations(self) -> np.ndarray:
        """All 10 observations, (10, x_dim)."""
        return np.stack([self.reference(k)[0] for k in range(1, NUM_OBSERVATIONS + 1)])


# --------------------------------------------------------------------------------------------
# Prior helpers
# --------------------------------------------------------------------------------------------


def _box_prior(low: np.ndarray, high: np.ndarray):
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    log_volume = float(np.sum(np.log(high - low)))

    def sample(n, rng):
        return low + (high - low) * rng.random((n, low.size))

    def log_prob(theta):
        inside = np.all((theta >= low) & (theta <= high), axis=1)
        return np.where(inside, -log_volume, -np.inf)

    return sample, log_prob, np.stack([low, high])


def _gaussian_prior(mean: np.ndarray, cov: np.ndarray):
    mean = np.asarray(mean, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    chol = np.linalg.cholesky(cov)
    _, logdet = np.linalg.slogdet(cov)
    d = mean.size

    def sample(n, rng):
        return mean + rng.standard_normal((n, d)) @ chol.T

    def log_prob(theta):
        z = np.linalg.solve(chol, (theta - mean).T)  # (d, n)
        return -0.5 * (np.sum(z * z, axis=0) + logdet + d * math.log(2 * math.pi))

    return sample, log_prob


# --------------------------------------------------------------------------------------------
# The tasks
# --------------------------------------------------------------------------------------------


def two_moons() -> Task:
    sample, log_prob, bounds = _box_prior(-np.ones(2), np.ones(2))

    def simulate(theta, rng):
        n = theta.shape[0]
        angle = rng.uniform(-math.pi / 2, math.pi / 2, n)
        radius = 0.1 + 0.01 * rng.standard_normal(n)
        # crescent centred 0.25 to the right of the origin ...
        px = radius * np.cos(angle) + 0.25
        py = radius * np.sin(angle)
        # ... shifted by theta rotated by 45 degrees, the first coordinate folded (|.|),
        # which makes the posterior bimodal.
        u = (theta[:, 0] + theta[:, 1]) / math.sqrt(2.0)
        v = (theta[:, 1] - theta[:, 0]) / math.sqrt(2.0)
        return np.stack([px - np.abs(u), py + v], axis=1)

    return Task(
        "two_moons",
        2,
        2,
        sample,
        log_prob,
        simulate,
        prior_bounds=bounds,
        description="Two moons: crescent-shaped bimodal posterior",
    )


def gaussian_linear(dim: int = 10, prior_var: float = 0.1, noise_var: float = 0.1) -> Task:
    """sbibm's `prior_scale` / `simulator_scale` (0.1) multiply the identity *covariance*."""
    mean, cov = np.zeros(dim), prior_var * np.eye(dim)
    sample, log_prob = _gaussian_prior(mean, cov)
    noise_std = math.sqrt(noise_var)

    def simulate(theta, rng):
        return theta + noise_std * rng.standard_normal(theta.shape)

    return Task(
        "gaussian_linear",
        dim,
        dim,
        sample,
        log_prob,
        simulate,
        prior_mean=mean,
        prior_cov=cov,
        description=f"Gaussian linear, dim {dim}: conjugate Gaussian posterior",
    )


def gaussian_mixture(dim: int = 2, bound: float = 10.0) -> Task:
    sample, log_prob, bounds = _box_prior(-bound * np.ones(dim), bound * np.ones(dim))
    scales = np.array([1.0, 0.1])

    def simulate(theta, rng):
        # one mixture component per simulation, shared by all data dimensions
        component = rng.integers(0, 2, theta.shape[0])
        return theta + scales[component][:, None] * rng.standard_normal(theta.shape)

    return Task(
        "gaussian_mixture",
        dim,
        dim,
        sample,
        log_prob,
        simulate,
        prior_bounds=bounds,
        description=f"Gaussian mixture, dim {dim}: broad + narrow component",
    )


def slcp(num_draws: int = 4) -> Task:
    sample, log_prob, bounds = _box_prior(-3.0 * np.ones(5), 3.0 * np.ones(5))
    eps = 1e-6  # sbibm adds this to the covariance diagonal

    def simulate(theta, rng):
        n = theta.shape[0]
        s1, s2 = theta[:, 2] ** 2, theta[:, 3] ** 2
        rho = np.tanh(theta[:, 4])
        var1, var2, cov12 = s1**2 + eps, s2**2 + eps, rho * s1 * s2
        # 2x2 Cholesky factor, per simulation
        l11 = np.sqrt(var1)
        l21 = cov12 / l11
        l22 = np.sqrt(np.maximum(var2 - l21**2, 0.0))
        z = rng.standard_normal((n, num_draws, 2))
        x1 = theta[:, None, 0] + l11[:, None] * z[..., 0]
        x2 = theta[:, None, 1] + l21[:, None] * z[..., 0] + l22[:, None] * z[..., 1]
        # flattened draw by draw: (x1, x2) of draw 1, then of draw 2, ...
        return np.stack([x1, x2], axis=2).reshape(n, 2 * num_draws)

    return Task(
        "slcp",
        5,
        2 * num_draws,
        sample,
        log_prob,
        simulate,
        prior_bounds=bounds,
        description="SLCP: simple likelihood, complex (4-modal) posterior",
    )


def bernoulli_glm_design(num_bins: int = 100, filter_len: int = 9, seed: int = 42) -> np.ndarray:
    """Design matrix (num_bins, 1 + filter_len): a column of ones (offset), then the white-noise
    stimulus (numpy RandomState(seed), float32, as frozen by sbibm) delayed by 0..filter_len-1."""
    stimulus = np.random.RandomState(seed).randn(num_bins).astype(np.float32).astype(np.float64)
    design = np.zeros((num_bins, 1 + filter_len))
    design[:, 0] = 1.0
    for lag in range(filter_len):
        design[lag:, 1 + lag] = stimulus[: num_bins - lag]
    return design


def bernoulli_glm_prior_precision(num_params: int = 10) -> np.ndarray:
    """Offset precision 0.5; filter precision F^T F with F = D^2 + diag(sqrt(i / M)),
    D the first-difference matrix (penalises curvature of the filter)."""
    m = num_params - 1
    diff = np.eye(m) - np.eye(m, k=-1)
    f = diff @ diff + np.diag(np.sqrt(np.arange(m) / m))
    precision = np.zeros((num_params, num_params))
    precision[0, 0] = 0.5
    precision[1:, 1:] = f.T @ f
    return precision


def bernoulli_glm(chunk: int = 50_000) -> Task:
    design = bernoulli_glm_design()
    precision = bernoulli_glm_prior_precision()
    cov = np.linalg.inv(precision)
    cov = 0.5 * (cov + cov.T)
    mean = np.zeros(10)
    sample, log_prob = _gaussian_prior(mean, cov)

    def simulate(theta, rng):
        out = np.empty((theta.shape[0], design.shape[1]))
        for start in range(0, theta.shape[0], chunk):
            th = theta[start : start + chunk]
            rate = 1.0 / (1.0 + np.exp(-(th @ design.T)))  # (n, 100) spike probabilities
            spikes = (rng.random(rate.shape) < rate).astype(np.float64)
            # spike count and spike-triggered averages = the sufficient statistics X^T y
            out[start : start + chunk] = spikes @ design
        return out

    return Task(
        "bernoulli_glm",
        10,
        10,
        sample,
        log_prob,
        simulate,
        prior_mean=mean,
        prior_cov=cov,
        description="Bernoulli GLM: 10 sufficient statistics of a spike train",
    )


_FACTORIES: dict[str, Callable[..., Task]] = {
    "two_moons": two_moons,
    "gaussian_linear": gaussian_linear,
    "gaussian_mixture": gaussian_mixture,
    "slcp": slcp,
    "bernoulli_glm": bernoulli_glm,
}


def get_task(name: str, **kwargs) -> Task:
    if name not in _FACTORIES:
        if name in ("lotka_volterra", "sir"):
            raise NotImplementedError(
                f"{name} is not implemented: sbibm's simulator needs Julia (diffeqtorch), "
                "so a port could not be checked against it"
            )
        raise KeyError(f"unknown task {name!r}; known: {', '.join(TASK_NAMES)}")
    return _FACTORIES[name](**kwargs)


# --------------------------------------------------------------------------------------------
# Reference files: cache, loader, export
# --------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    env = os.environ.get("PHYSGEN_SBIBM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "physgen" / "sbibm"


class MissingReferenceError(FileNotFoundError):
    pass


def _read_csv(path: Path) -> np.ndarray:
    opener = bz2.open if path.suffix == ".bz2" else open
    with opener(path, "rt") as fh:
        return np.atleast_2d(np.loadtxt(fh, delimiter=",", skiprows=1, dtype=np.float64))


def load_reference(
    name: str, k: int, theta_dim: Optional[int] = None, x_dim: Optional[int] = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not 1 <= k <= NUM_OBSERVATIONS:
        raise ValueError(f"observation number must be 1..{NUM_OBSERVATIONS}, got {k}")
    folder = cache_dir() / name / f"num_observation_{k}"
    paths = [folder / f for f in REFERENCE_FILES[:3]]
    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise MissingReferenceError(
            f"sbibm reference files for {name} observation {k} are not in the cache "
            f"({missing[0]}). Fill the cache once, from the repository root, with:\n"
            f"    {EXPORT_COMMAND}\n"
            f"(set PHYSGEN_SBIBM_CACHE to use another cache directory)"
        )
    observation = _read_csv(paths[0])[0]
    samples = _read_csv(paths[1])
    theta_true = _read_csv(paths[2])[0]
    if theta_dim is not None and (samples.shape[1] != theta_dim or theta_true.size != theta_dim):
        raise ValueError(
            f"{name}: cached references have theta dimension {samples.shape[1]}, "
            f"the task {theta_dim}"
        )
    if x_dim is not None and observation.size != x_dim:
        raise ValueError(
            f"{name}: cached observation has dimension {observation.size}, the task {x_dim}"
        )
    return observation, samples, theta_true


def find_sbibm_tasks_dir(source: Optional[str] = None) -> Path:
    """sbibm's ``tasks`` folder: given, from an importable sbibm, or in .venv-bench-sbi."""
    if source:
        path = Path(source)
        return path / "tasks" if (path / "tasks").is_dir() else path
    try:
        import importlib.util

        spec = importlib.util.find_spec("sbibm")
        if spec is not None and spec.origin:
            return Path(spec.origin).parent / "tasks"
    except Exception:  # pragma: no cover - a broken sbibm install
        pass
    hits = sorted(
        glob.glob(
            str(
                REPO_ROOT
                / ".venv-bench-sbi"
                / "lib"
                / "python*"
                / "site-packages"
                / "sbibm"
                / "tasks"
            )
        )
    )
    if hits:
        return Path(hits[-1])
    raise FileNotFoundError(
        "sbibm is not installed: run `bash bench/make_sbi_venv.sh` first, or pass --from "
        "<path to site-packages/sbibm>"
    )


def export_references(
    tasks: Sequence[str] = TASK_NAMES, source: Optional[str] = None, dest: Optional[Path] = None
) -> Path:
    """Copy sbibm's shipped observation / reference / true-parameter files into the cache.

    A plain file copy from the installed wheel (sbibm is located, not imported)."""
    src_root = find_sbibm_tasks_dir(source)
    dest = Path(dest) if dest else cache_dir()
    n_files = 0
    for name in tasks:
        for k in range(1, NUM_OBSERVATIONS + 1):
            src = src_root / name / "files" / f"num_observation_{k}"
            out = dest / name / f"num_observation_{k}"
            out.mkdir(parents=True, exist_ok=True)
            for fname in REFERENCE_FILES:
                if (src / fname).is_file():
                    shutil.copyfile(src / fname, out / fname)
                    n_files += 1
                elif fname != "observation_seed.csv":
                    raise FileNotFoundError(src / fname)
    print(f"copied {n_files} files from {src_root} to {dest}")
    return dest


# --------------------------------------------------------------------------------------------
# Checks against sbibm (run in the bench venv, which has sbibm + pyro)
# --------------------------------------------------------------------------------------------


def _ks_stat(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / a.size
    cdf_b = np.searchsorted(b, grid, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def _ks_pvalue(stat: float, n: int, m: int) -> float:
    """Asymptotic two-sample KS p-value."""
    en = math.sqrt(n * m / (n + m))
    lam = (en + 0.12 + 0.11 / en) * stat
    if lam < 1e-3:
        return 1.0
    p = 2.0 * sum((-1) ** (j - 1) * math.exp(-2.0 * j * j * lam * lam) for j in range(1, 101))
    return float(min(max(p, 0.0), 1.0))


def compare_samples(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    """Per-dimension agreement of two samples, as the worst dimension:
    |mean difference| / standard error, relative std difference / its standard error,
    the largest quantile difference (5..95 %) in units of the pooled std, and the KS test."""
    n, m = ours.shape[0], theirs.shape[0]
    mean_z, std_z, q_diff, ks, ks_p = [], [], [], [], []
    qs = [0.05, 0.25, 0.5, 0.75, 0.95]
    for d in range(ours.shape[1]):
        a, b = ours[:, d], theirs[:, d]
        sa, sb = a.std(ddof=1), b.std(ddof=1)
        mean_z.append(abs(a.mean() - b.mean()) / math.sqrt(sa**2 / n + sb**2 / m + 1e-300))

        # standard error of a std (any distribution): sqrt((kurtosis - 1) / (4 n)) * sigma
        def se_std(v, s):
            if s == 0:
                return 0.0
            kurt = np.mean(((v - v.mean()) / s) ** 4)
            return s * math.sqrt(max(kurt - 1.0, 1e-12) / (4 * v.size))

        std_z.append(abs(sa - sb) / math.sqrt(se_std(a, sa) ** 2 + se_std(b, sb) ** 2 + 1e-300))
        pooled = math.sqrt(0.5 * (sa**2 + sb**2)) + 1e-300
        q_diff.append(float(np.max(np.abs(np.quantile(a, qs) - np.quantile(b, qs)))) / pooled)
        stat = _ks_stat(a, b)
        ks.append(stat)
        ks_p.append(_ks_pvalue(stat, n, m))
    return {
        "max_mean_z": float(max(mean_z)),
        "max_std_z": float(max(std_z)),
        "max_quantile_diff_in_std": float(max(q_diff)),
        "max_ks": float(max(ks)),
        "min_ks_p": float(min(ks_p)),
        "n_dims": int(ours.shape[1]),
    }


def observation_coverage(task: Task, n_sim: int = 4000, seed: int = 0) -> dict[str, object]:
    """Does our simulator at the shipped true parameters reproduce the shipped observations?

    For each observation k: simulate n_sim draws at theta_true_k; report the observation's
    per-dimension percentile (two-sided tail, the smallest over dimensions) and a joint p-value:
    the fraction of simulations whose Mahalanobis distance to the simulated mean exceeds the
    observation's."""
    rng = np.random.default_rng(seed)
    min_tail, joint_p = [], []
    for k in range(1, NUM_OBSERVATIONS + 1):
        x_o, _, theta_true = task.reference(k)
        sims = task.simulate(np.repeat(theta_true[None], n_sim, axis=0), rng)
        below = np.mean(sims < x_o, axis=0)
        equal = np.mean(sims == x_o, axis=0)
        pct = below + 0.5 * equal
        min_tail.append(float(np.min(np.minimum(pct, 1 - pct))))
        mu = sims.mean(0)
        cov = np.cov(sims.T) + 1e-9 * np.eye(sims.shape[1])
        prec = np.linalg.inv(cov)
        d_sims = np.einsum("ni,ij,nj->n", sims - mu, prec, sims - mu)
        d_obs = float((x_o - mu) @ prec @ (x_o - mu))
        joint_p.append(float(np.mean(d_sims >= d_obs)))
    return {
        "min_tail_per_obs": [round(v, 4) for v in min_tail],
        "joint_p_per_obs": [round(v, 4) for v in joint_p],
    }


def check_against_sbibm(
    tasks: Sequence[str] = TASK_NAMES, n: int = 20_000, n_cond: int = 20_000, seed: int = 1
) -> dict[str, dict[str, object]]:
    """Compare our priors and simulators with sbibm's (needs sbibm + pyro: the bench venv).

    Per task:
      prior      -- our prior draws vs sbibm's prior draws (per-dimension agreement);
      prior_lp   -- max |our log prior - sbibm's| on our draws (should be ~1e-5, float32);
      joint      -- the same theta (our prior draws, float32) simulated by both simulators;
      conditional-- one fixed theta (true parameters of observation 1) simulated n_cond times;
      obs        -- observation_coverage() at the shipped true parameters;
      exact      -- deterministic pieces compared exactly (bernoulli_glm: design matrix and the
                    summary statistics of the shipped raw spike trains).
    """
    import sbibm
    import torch

    results: dict[str, dict[str, object]] = {}
    for name in tasks:
        ours = get_task(name)
        theirs = sbibm.get_task(name)
        sim_theirs = theirs.get_simulator()
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        n_task = min(n, 5000) if name == "bernoulli_glm" else n  # sbibm's GLM loops in python
        res: dict[str, object] = {}

        th_ours = ours.prior_sample(n_task, rng)
        th_theirs = theirs.get_prior()(num_samples=n_task).double().numpy()
        res["prior"] = compare_samples(th_ours, th_theirs)
        lp_ours = ours.prior_log_prob(th_ours)
        lp_theirs = (
            theirs.get_prior_dist()
            .log_prob(torch.as_tensor(th_ours, dtype=torch.float32))
            .double()
            .numpy()
        )
        res["prior_lp_max_abs_diff"] = float(np.max(np.abs(lp_ours - lp_theirs)))

        th32 = th_ours.astype(np.float32).astype(np.float64)
        x_ours = ours.simulate(th32, rng)
        with torch.no_grad():
            x_theirs = sim_theirs(torch.as_tensor(th32, dtype=torch.float32)).double().numpy()
        res["joint"] = compare_samples(x_ours, x_theirs.reshape(n_task, -1))

        theta_fixed = np.asarray(theirs.get_true_parameters(1), dtype=np.float64).reshape(1, -1)
        n_c = min(n_cond, 5000) if name == "bernoulli_glm" else n_cond
        reps = np.repeat(theta_fixed, n_c, axis=0)
        xc_ours = ours.simulate(reps, rng)
        with torch.no_grad():
            xc_theirs = sim_theirs(torch.as_tensor(reps, dtype=torch.float32)).double().numpy()
        res["conditional"] = compare_samples(xc_ours, xc_theirs.reshape(n_c, -1))

        res["obs"] = observation_coverage(ours)

        # cached files are byte copies of the shipped ones
        x_o, ref, th_true = ours.reference(1)
        res["cache_matches_sbibm"] = bool(
            np.allclose(x_o, theirs.get_observation(1).double().numpy().ravel(), atol=1e-6)
            and np.allclose(
                th_true, theirs.get_true_parameters(1).double().numpy().ravel(), atol=1e-6
            )
            and ref.shape == (10_000, ours.theta_dim)
        )

        if name == "bernoulli_glm":
            files = theirs.path / "files"
            design_file = torch.load(files / "design_matrix.pt").double().numpy()
            design_ours = bernoulli_glm_design()
            worst = 0.0
            for k in range(1, NUM_OBSERVATIONS + 1):
                y = _read_csv(files / f"num_observation_{k}" / "observation_raw.csv")[0]
                stats = y @ design_ours
                x_o = ours.reference(k)[0]
                worst = max(worst, float(np.max(np.abs(stats - x_o) / (1 + np.abs(x_o)))))
            prec_ours = bernoulli_glm_prior_precision()
            prec_theirs = theirs.prior_params["precision_matrix"].double().numpy()
            res["exact"] = {
                "design_max_abs_diff": float(np.max(np.abs(design_file - design_ours))),
                "prior_precision_max_abs_diff": float(np.max(np.abs(prec_ours - prec_theirs))),
                "summary_of_shipped_raw_spikes_max_rel_diff": worst,
            }
        results[name] = res
        print(json.dumps({name: res}), flush=True)
    return results


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_exp = sub.add_parser("export", help="copy sbibm's reference files into the cache")
    p_exp.add_argument(
        "--from",
        dest="source",
        default=None,
        help="path to site-packages/sbibm (default: found automatically)",
    )
    p_exp.add_argument("--tasks", default=",".join(TASK_NAMES))
    p_chk = sub.add_parser("check", help="compare with sbibm (bench venv only)")
    p_chk.add_argument("--tasks", default=",".join(TASK_NAMES))
    p_chk.add_argument("--n", type=int, default=20_000)
    p_chk.add_argument("--out", default=None, help="write the results as JSON here")
    p_sim = sub.add_parser("simulate", help="write an .npz of training simulations")
    p_sim.add_argument("task")
    p_sim.add_argument("--n", type=int, required=True)
    p_sim.add_argument("--seed", type=int, default=0)
    p_sim.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    if args.cmd == "export":
        export_references(args.tasks.split(","), source=args.source)
    elif args.cmd == "check":
        res = check_against_sbibm(args.tasks.split(","), n=args.n)
        if args.out:
            Path(args.out).write_text(json.dumps(res, indent=1))
    elif args.cmd == "simulate":
        task = get_task(args.task)
        theta, x = task.simulate_dataset(args.n, args.seed)
        np.savez(
            args.out,
            theta=theta.astype(np.float32),
            x=x.astype(np.float32),
            observations=task.observations().astype(np.float32),
            task=args.task,
            seed=args.seed,
        )
        print(f"wrote {args.out}: theta {theta.shape}, x {x.shape}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
