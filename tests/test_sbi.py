"""physgen.sbi: simulation, neural posterior estimation and simulation-based calibration.

A conjugate Gaussian model is the oracle: prior ``theta ~ N(0, 1)``, data
``x = theta + N(0, 0.5^2)``, exact posterior ``N(x / 1.25, 0.25 / 1.25)``. Networks are
small and training short, so that the file runs in seconds; tolerances are loose but far
tighter than what an untrained or mis-wired estimator would meet.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import physgen.density
from physgen import sbi
from physgen.errors import ConfigError, DataFormatError

PRIOR = sbi.Gaussian([0.0], [[1.0]])
NOISE = 0.5
POST_VAR = NOISE**2 / (1 + NOISE**2)  # 0.2
AFFINE = {"shape_kind": "maf", "shape_transforms": 2, "shape_hidden": [32]}
OPTIM = {"batch_size": 96, "lr": 7e-3, "warmup_steps": 20, "ema_decay": 0.9}
TINY_FLOW = {"shape_transforms": 1, "shape_hidden": [8]}
TINY_CFM = {
    "hidden": 16,
    "blocks": 1,
    "energy_hidden": 8,
    "energy_blocks": 1,
    "time_features": 4,
    "steps": 2,
}


@pytest.fixture(scope="module", autouse=True)
def _steps_as_sized() -> Iterator[None]:
    """One pass over the data per epoch: the step counts these tests are sized with (the
    library's minimum number of steps per epoch on small data sets would multiply them)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(physgen.density, "_MIN_STEPS_PER_EPOCH", 1, raising=False)
        yield


def conjugate(theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return theta + NOISE * rng.standard_normal(theta.shape)


def _exact_logpdf(theta: np.ndarray, x: float) -> np.ndarray:
    mean = x / (1 + NOISE**2)
    return -0.5 * (theta - mean) ** 2 / POST_VAR - 0.5 * np.log(2 * np.pi * POST_VAR)


@pytest.fixture(scope="module")
def conj_post() -> sbi.Posterior:
    theta, x = sbi.simulate(PRIOR, conjugate, 3000, seed=0)
    return sbi.npe(theta, x, prior=PRIOR, config=AFFINE, optim=OPTIM, epochs=12, progress=False)


# ------------------------------------------------------------------ simulate


def test_simulate_shapes_and_batches() -> None:
    prior = sbi.BoxUniform([0.0, -1.0, 5.0], [1.0, 1.0, 6.0])
    calls: list[int] = []

    def sim(theta: np.ndarray) -> np.ndarray:
        calls.append(len(theta))
        return np.stack([theta.sum(1), theta[:, 0] * theta[:, 2]], axis=1)

    theta, x = sbi.simulate(prior, sim, 25, seed=1, batch_size=10)
    assert theta.shape == (25, 3) and x.shape == (25, 2)
    assert theta.dtype == np.float64 and x.dtype == np.float64
    assert calls == [10, 10, 5]
    assert (theta >= [0.0, -1.0, 5.0]).all() and (theta <= [1.0, 1.0, 6.0]).all()
    np.testing.assert_allclose(x[:, 0], theta.sum(1))
    # a 1-D simulator output is one data column
    _, x1 = sbi.simulate(prior, lambda th: th[:, 0], 4)
    assert x1.shape == (4, 1)


def test_simulator_with_and_without_rng() -> None:
    seen: list[Any] = []

    def with_rng(theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        seen.append(rng)
        return theta + rng.standard_normal(theta.shape)

    t1, x1 = sbi.simulate(PRIOR, with_rng, 50, seed=3)
    assert isinstance(seen[0], np.random.Generator)
    t2, x2 = sbi.simulate(PRIOR, with_rng, 50, seed=3)
    assert t1.tobytes() == t2.tobytes() and x1.tobytes() == x2.tobytes()
    t3, x3 = sbi.simulate(PRIOR, with_rng, 50, seed=4)
    assert not np.array_equal(t1, t3) and not np.array_equal(x1, x3)
    assert not np.array_equal(x1, t1)  # the noise was applied
    t4, x4 = sbi.simulate(PRIOR, lambda th: 2 * th, 50, seed=3)
    np.testing.assert_array_equal(t4, t1)  # same seed, same prior draws
    np.testing.assert_array_equal(x4, 2 * t4)


def test_simulator_returning_torch() -> None:
    import torch

    _, x = sbi.simulate(PRIOR, lambda th: torch.as_tensor(th) * 3, 6, seed=0)
    assert isinstance(x, np.ndarray) and x.shape == (6, 1)


def _short(theta: np.ndarray) -> np.ndarray:
    return theta[:-1]


def _cube(theta: np.ndarray) -> np.ndarray:
    return np.ones((len(theta), 2, 2))


def _nan_at_2(theta: np.ndarray) -> np.ndarray:
    out = theta.copy()
    out[2] = np.nan
    return out


@pytest.mark.parametrize(
    ("prior", "simulator", "message"),
    [
        (PRIOR, _short, r"simulator: returned shape \(4, 1\) for 5 parameter sets"),
        (PRIOR, _cube, r"simulator: returned shape \(5, 2, 2\) for 5 parameter sets"),
        (PRIOR, _nan_at_2, r"simulator: returned NaN or inf \(theta = \["),
        (lambda n, rng: rng.random((n + 1, 2)), lambda th: th, r"prior: returned shape \(6, 2\)"),
        (lambda n, rng: rng.random((n, 2, 2)), lambda th: th, r"prior: returned shape \(5, 2, 2\)"),
        (lambda n, rng: np.full((n, 1), np.inf), lambda th: th, "prior: returned NaN or inf"),
        ("uniform", lambda th: th, "prior: expected BoxUniform"),
    ],
)
def test_simulate_bad_outputs(prior: Any, simulator: Any, message: str) -> None:
    error = ConfigError if "expected BoxUniform" in message else DataFormatError
    with pytest.raises(error, match=message):
        sbi.simulate(prior, simulator, 5)


def test_simulate_width_change_and_bad_n() -> None:
    def grows(theta: np.ndarray) -> np.ndarray:
        return np.ones((len(theta), len(theta)))

    with pytest.raises(DataFormatError, match="width of x changed"):
        sbi.simulate(PRIOR, grows, 5, batch_size=3)
    with pytest.raises(ConfigError, match="n must be >= 1"):
        sbi.simulate(PRIOR, grows, 0)
    with pytest.raises(ConfigError, match="BoxUniform"):
        sbi.BoxUniform([0.0, 1.0], [1.0, 0.5])


def _scaled(theta: np.ndarray, scale: float = 2.0) -> np.ndarray:
    return scale * theta


@pytest.mark.parametrize("simulator", [np.sin, _scaled], ids=["ufunc", "optional-arg"])
def test_single_argument_simulators(simulator: Any) -> None:
    theta, x = sbi.simulate(PRIOR, simulator, 5, seed=0)
    np.testing.assert_allclose(x, simulator(theta))


def test_gaussian_prior_shape_mismatch() -> None:
    with pytest.raises(ConfigError):
        sbi.simulate(sbi.Gaussian([0.0, 0.0], [[1.0]]), lambda th: th, 3)


def test_torch_prior_leaves_global_rng_alone() -> None:
    import torch

    prior = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    theta, _ = sbi.simulate(prior, lambda th: th, 4, seed=0)
    assert theta.shape == (4, 2)
    assert torch.equal(torch.rand(3), expected)


# ------------------------------------------------------------------ conjugate oracle


@pytest.mark.parametrize("x_obs", [-1.0, 1.5])
def test_npe_conjugate_moments(conj_post: sbi.Posterior, x_obs: float) -> None:
    s = conj_post.sample(np.array([x_obs]), 4000, seed=3)
    assert s.shape == (4000, 1)
    assert abs(s.mean() - x_obs / (1 + NOISE**2)) < 0.15
    assert abs(s.std() - np.sqrt(POST_VAR)) < 0.08


def test_npe_conjugate_several_observations(conj_post: sbi.Posterior) -> None:
    xs = np.array([[-1.0], [0.0], [1.5]])
    s = conj_post.sample(xs, 3000, seed=4)
    assert s.shape == (3000, 3, 1)
    means = s.mean(0)[:, 0]
    np.testing.assert_allclose(means, xs[:, 0] / (1 + NOISE**2), atol=0.15)
    assert means[0] < means[1] < means[2]


def test_npe_conjugate_log_prob(conj_post: sbi.Posterior) -> None:
    assert conj_post.tractable
    theta = np.array([[0.3], [0.8], [1.3]])  # within about one posterior sd of 0.8
    lp = conj_post.log_prob(theta, [1.0])
    assert lp.shape == (3,)
    err = lp - _exact_logpdf(theta[:, 0], 1.0)
    assert np.abs(err).mean() < 0.2, err
    assert np.abs(err).max() < 0.35, err


def test_posterior_bad_observation_width(conj_post: sbi.Posterior) -> None:
    with pytest.raises(ConfigError, match="expected 1 data values per observation"):
        conj_post.sample(np.zeros(2), 10)


def test_posterior_save_load(conj_post: sbi.Posterior, tmp_path: Path) -> None:
    conj_post.save(tmp_path / "post")
    again = sbi.Posterior.load(tmp_path / "post")
    a = again.sample(np.array([0.4]), 50, seed=9)
    assert a.tobytes() == conj_post.sample(np.array([0.4]), 50, seed=9).tobytes()


# ------------------------------------------------------------------ ensembles


def test_ensemble_of_one_estimator_twice_is_that_estimator(conj_post: sbi.Posterior) -> None:
    twice = sbi.Posterior([conj_post.estimator, conj_post.estimator])
    theta = np.array([[-0.5], [0.2], [0.9]])
    np.testing.assert_allclose(
        twice.log_prob(theta, [0.5]), conj_post.log_prob(theta, [0.5]), rtol=0, atol=1e-10
    )
    s = twice.sample(np.array([[0.0], [1.0]]), 4000, seed=2)
    assert s.shape == (4000, 2, 1)
    np.testing.assert_allclose(s.mean(0)[:, 0], [0.0, 0.8], atol=0.05)
    assert s.tobytes() == twice.sample(np.array([[0.0], [1.0]]), 4000, seed=2).tobytes()


def test_npe_ensemble_is_the_mixture_of_its_members(tmp_path: Path) -> None:
    theta, x = sbi.simulate(PRIOR, conjugate, 600, seed=5)
    post = sbi.npe(
        theta,
        x,
        prior=PRIOR,
        config=TINY_FLOW,
        optim=OPTIM,
        epochs=2,
        ensemble=3,
        out=tmp_path / "ens",
        progress=False,
    )
    assert len(post.members) == 3
    assert sorted(p.name for p in (tmp_path / "ens").iterdir()) == [
        "ensemble.json",
        "member-0",
        "member-1",
        "member-2",
    ]
    th = np.array([[-1.0], [0.0], [0.7], [2.0]])
    each = np.stack([sbi.Posterior(m).log_prob(th, [0.3]) for m in post.members])
    assert not np.allclose(each[0], each[1])  # different seeds, different members
    mix = np.log(np.exp(each).mean(0))
    np.testing.assert_allclose(post.log_prob(th, [0.3]), mix, rtol=0, atol=1e-9)
    # the mixture's mean is the mean of the members' means
    s = post.sample([0.3], 30_000, seed=1)
    member_means = [sbi.Posterior(m).sample([0.3], 30_000, seed=1).mean() for m in post.members]
    assert abs(s.mean() - np.mean(member_means)) < 0.02
    again = sbi.Posterior.load(tmp_path / "ens")
    assert again.sample([0.3], 100, seed=4).tobytes() == post.sample([0.3], 100, seed=4).tobytes()
    again.save(tmp_path / "copy")
    assert (tmp_path / "copy" / "ensemble.json").is_file()


def test_ensemble_errors(conj_post: sbi.Posterior, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at least one"):
        sbi.Posterior([])
    with pytest.raises(ConfigError, match="ensemble must be >= 1"):
        sbi.npe(np.zeros((20, 1)), np.zeros((20, 1)), ensemble=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("x")
    with pytest.raises(ConfigError, match="not an empty folder"):
        sbi.npe(np.zeros((20, 1)), np.zeros((20, 1)), ensemble=2, out=tmp_path / "full")
    with pytest.raises(ConfigError, match="not an empty folder"):
        sbi.Posterior([conj_post.estimator] * 2).save(tmp_path / "full")


# ------------------------------------------------------------------ bounded prior


def test_npe_box_uniform_samples_stay_in_box() -> None:
    prior = sbi.BoxUniform([-1.0, 0.0], [1.0, 2.0])
    theta, x = sbi.simulate(prior, lambda th, rng: th + 0.1 * rng.standard_normal(th.shape), 400)
    post = sbi.npe(theta, x, prior=prior, config=TINY_FLOW, epochs=2, progress=False)
    assert post.estimator.config.codec.bounds == [[-1.0, 1.0], [0.0, 2.0]]
    obs = np.array([[0.0, 1.0], [0.95, 1.95], [5.0, -5.0]])  # the last far outside the prior
    s = post.sample(obs, 2000, seed=0)
    assert s.shape == (2000, 3, 2)
    assert (s[..., 0] >= -1.0).all() and (s[..., 0] <= 1.0).all()
    assert (s[..., 1] >= 0.0).all() and (s[..., 1] <= 2.0).all()


def test_npe_refuses_theta_outside_prior() -> None:
    prior = sbi.BoxUniform([0.0], [1.0])
    theta = np.linspace(0.0, 1.5, 20)[:, None]
    with pytest.raises(DataFormatError, match="outside the prior's support"):
        sbi.npe(theta, theta, prior=prior, epochs=1, progress=False)


# ------------------------------------------------------------------ calibration


def test_sbc_flow(conj_post: sbi.Posterior, tmp_path: Path) -> None:
    report = sbi.sbc(conj_post, PRIOR, conjugate, n=100, n_posterior=200, seed=5)
    assert report.n == 100 and report.n_posterior == 200
    assert report.ranks.shape == (100, 1) and report.ranks.dtype == np.int64
    assert report.ranks.min() >= 0 and report.ranks.max() <= 200
    assert report.levels.shape == report.coverage.shape == (21,)
    assert report.coverage_hpd is not None and report.coverage_hpd.shape == (21,)
    assert (np.diff(report.coverage) >= 0).all() and (np.diff(report.coverage_hpd) >= 0).all()
    assert report.coverage[-1] == 1.0
    assert report.passes(tolerance=0.12)
    assert report.passes(tolerance=0.12) == all(
        abs(report.coverage_at(a, "hpd") - a) <= 0.12 for a in (0.5, 0.68, 0.95)
    )
    p = report.uniformity_pvalues()
    assert p.shape == (1,) and 0.0 <= p[0] <= 1.0
    out = tmp_path / "sbc.png"
    fig = report.plot(out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 1000
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_sbc_detects_a_miscalibrated_posterior(conj_post: sbi.Posterior) -> None:
    """The same posterior checked against a model with ten times the noise is overconfident."""

    def noisy(theta: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return theta + 5.0 * rng.standard_normal(theta.shape)

    report = sbi.sbc(conj_post, PRIOR, noisy, n=100, n_posterior=100, seed=6)
    assert not report.passes(tolerance=0.12)
    assert report.coverage_at(0.68, "marginal") < 0.5


def test_sbc_fmpe_has_no_hpd() -> None:
    theta, x = sbi.simulate(PRIOR, conjugate, 200, seed=1)
    post = sbi.fmpe(theta, x, prior=PRIOR, config=TINY_CFM, epochs=1, progress=False)
    assert post.estimator.config.model == "cfm" and not post.tractable
    with pytest.raises(NotImplementedError):
        post.log_prob(np.zeros((2, 1)), [0.0])
    report = sbi.sbc(post, PRIOR, conjugate, n=10, n_posterior=10, seed=0, levels=[0.5, 0.9])
    assert report.ranks.shape == (10, 1)
    assert report.coverage.shape == (2,) and report.coverage_hpd is None
    assert report.coverage_at(0.9) == report.coverage_at(0.9, "marginal")
    with pytest.raises(ConfigError, match="no highest-density coverage"):
        report.coverage_at(0.5, "hpd")
    with pytest.raises(ConfigError, match="need n >= 10"):
        sbi.sbc(post, PRIOR, conjugate, n=5)
