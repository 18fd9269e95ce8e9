"""physgen.unfold.generative: closure on Gaussian toys, IcINN iterations, acceptance
corrections, posterior calibration against closed forms, files and bad input.

The toy: particle level ``z ~ N(μ, s²)``, detector level ``x = z + N(0, σ²)``. A conditional
model trained on simulation with prior ``N(0, 1)`` learns the posterior
``z | x ~ N(x / (1 + σ²), σ² / (1 + σ²))``, so a *perfect* single-pass generative unfolding of
data ``x_j`` has the closed-form moments

    mean = mean(x) / (1 + σ²),   var = var(x) / (1 + σ²)² + σ² / (1 + σ²)

(computed from the realised data, which removes the data's own fluctuation); these are the
closure targets of one iteration, not the truth: the difference is the prior dependence
that the IcINN iterations remove. Networks are small and trained for a few hundred steps, so
that the file runs in well under a minute on one busy core.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from scipy import stats

from physgen.errors import ConfigError, DataFormatError
from physgen.metrics.classifier import ClassifierConfig, get_preset
from physgen.unfold.calibration import weighted_ks_uniform
from physgen.unfold.data import UnfoldingData, UnfoldingMC, make_data, make_mc
from physgen.unfold.generative import (
    GenerativeResult,
    _integer_columns,
    generative_unfold,
    posterior_calibration,
    systematic_resample,
)

SIGMA = 0.5
FLOW = {"shape_transforms": 3, "shape_hidden": [32, 32], "shape_bins": 8}
OPTIM = {"batch_size": 256, "lr": 3e-3, "warmup_steps": 20}
#: A small classifier (the default "fast" preset is sized for showers).
CLASSIFIER: ClassifierConfig = dataclasses.replace(
    get_preset("fast"), hidden=64, max_epochs=20, patience=5
)


def _toy(
    mu: float, s: float, n: int = 10_000, seed: int = 0
) -> tuple[UnfoldingMC, UnfoldingData, np.ndarray]:
    rng = np.random.default_rng(seed)
    zm = rng.normal(0.0, 1.0, n)
    mc = make_mc(zm, zm + SIGMA * rng.normal(size=n), columns=["z"])
    zd = rng.normal(mu, s, n)
    xd = zd + SIGMA * rng.normal(size=n)
    return mc, make_data(xd, columns=["z"]), zd


def _expected(xd: np.ndarray) -> tuple[float, float]:
    """Moments of a perfect one-pass unfolding of ``xd`` with the N(0, 1) prior."""
    k = 1.0 + SIGMA**2
    return float(xd.mean() / k), math.sqrt(float(xd.var()) / k**2 + SIGMA**2 / k)


def _moments(res: GenerativeResult, j: int = 0) -> tuple[float, float]:
    s, w = res.flat()
    m = float(np.average(s[:, j], weights=w))
    return m, math.sqrt(float(np.average((s[:, j] - m) ** 2, weights=w)))


@pytest.fixture(scope="module")
def closure(device: str) -> tuple[GenerativeResult, UnfoldingData]:
    """One pass on the toy (``pytest --device cuda`` trains on a GPU)."""
    mc, data, _ = _toy(0.2, 0.8)
    res = generative_unfold(
        mc,
        data,
        config=FLOW,
        optim=OPTIM,
        epochs=3,
        samples_per_event=3,
        calibration_events=1000,
        seed=0,
        device=device,
        progress=False,
    )
    return res, data


# ------------------------------------------------------------------ closure


def test_one_pass_closure_matches_the_closed_form(
    closure: tuple[GenerativeResult, UnfoldingData],
) -> None:
    res, data = closure
    assert res.samples.shape == (10_000, 3, 1) and res.weights.shape == (10_000, 3)
    assert np.isfinite(res.samples).all()
    # no acceptance effects: each event's S samples share its weight, summing to the count
    assert res.weights.sum() == pytest.approx(10_000)
    mean, sd = _moments(res)
    exp_mean, exp_sd = _expected(data.reco[:, 0])  # 0.16, 0.875 (truth: 0.2, 0.8)
    # tolerance: the sampling error of 30k draws is 0.005; a few hundred training steps of
    # a small flow leave biases of ~0.01-0.02 (measured 0.008 and 0.010 here)
    assert abs(mean - exp_mean) < 0.03, (mean, exp_mean)
    assert abs(sd - exp_sd) < 0.03, (sd, exp_sd)
    assert res.training[0]["fit"]["status"] in ("completed", "early-stopped")
    assert res.config["n_train"] + res.config["n_calibration"] == 10_000


def test_trained_posterior_is_calibrated(closure: tuple[GenerativeResult, UnfoldingData]) -> None:
    cal = closure[0].calibration
    assert cal is not None
    assert cal.ranks.shape == (1000, 1) and cal.n_samples == 100
    assert ((cal.ranks >= 0) & (cal.ranks <= 100)).all()
    # 1000 held-out pairs: binomial errors 0.016 / 0.015 / 0.007; 0.05 allows for the
    # small network's imperfect width as well
    np.testing.assert_allclose(cal.coverage[0], [0.5, 0.68, 0.95], atol=0.05)
    assert cal.uniformity_pvalues()[0] > 1e-3
    d = cal.as_dict()
    assert set(d["z"]["coverage"]) == {"0.5", "0.68", "0.95"} and d["n_events"] == 1000


def test_icinn_iterations_remove_the_prior_dependence() -> None:
    """Data far from the prior (mean 1 vs 0): one pass is pulled towards the prior by the
    closed-form amount (0.79 instead of 1.0); the iterations move the result to the truth."""
    mc, data, zd = _toy(1.0, 0.8, seed=1)
    res = generative_unfold(
        mc,
        data,
        config=FLOW,
        optim=OPTIM,
        epochs=3,
        iterations=3,
        samples_per_event=2,
        classifier=CLASSIFIER,
        calibration_events=0,
        seed=0,
        progress=False,
    )
    means = [t["unfolded_mean"][0] for t in res.training]
    sds = [t["unfolded_std"][0] for t in res.training]
    exp_mean, _ = _expected(data.reco[:, 0])
    assert abs(means[0] - exp_mean) < 0.03  # the first pass is the prior-biased one
    bias = [abs(m - zd.mean()) for m in means]
    # measured: 0.21 -> 0.06 -> 0.03; the statistical floor is ~0.01
    assert bias[-1] < 0.5 * bias[0] and bias[-1] < 0.07, bias
    assert abs(sds[-1] - zd.std()) < abs(sds[0] - zd.std()), sds
    assert _moments(res)[0] == pytest.approx(means[-1])
    assert res.training[1]["effective_train_size"] < res.training[0]["effective_train_size"]
    assert res.prior_weights.shape == (10_000,) and (res.prior_weights > 0).all()
    assert set(res.timings) >= {"fit_1", "reweight_1", "fit_3", "total"}


def test_acceptance_corrections() -> None:
    """Efficiency rising with z and fakes at high x both push a naive result up; the purity
    and 1/ε weights bring the particle-level mean back to the truth."""
    rng = np.random.default_rng(3)

    def record(mu: float, s: float, n: int) -> UnfoldingMC:
        z = rng.normal(mu, s, n)
        x = z + SIGMA * rng.normal(size=n)
        pass_reco = rng.uniform(size=n) < 0.55 + 0.4 * np.tanh(z)
        fake = rng.uniform(size=n) < 0.1  # no particle-level event, a detector one at x ~ 2
        x = np.where(fake, rng.normal(2.0, 0.4, n), x)
        return make_mc(
            np.where(fake, 0.0, z),
            x,
            pass_gen=~fake,
            pass_reco=pass_reco | fake,
            columns=["z"],
        )

    mc, truth = record(0.0, 1.0, 12_000), record(0.2, 0.8, 12_000)
    data = make_data(truth.reco[truth.pass_reco], columns=["z"], truth=truth)
    true_mean = truth.gen[truth.pass_gen, 0].mean()
    kw: dict[str, Any] = {
        "config": FLOW,
        "optim": OPTIM,
        "epochs": 3,
        "classifier": CLASSIFIER,
        "calibration_events": 0,
        "seed": 0,
        "progress": False,
    }
    naive = generative_unfold(mc, data, acceptance=False, **kw)
    corrected = generative_unfold(mc, data, **kw)
    acc = corrected.acceptance
    assert acc["purity"]["mean_purity_mc"] == pytest.approx(
        1 - (mc.pass_reco & ~mc.pass_gen).sum() / mc.pass_reco.sum()
    )
    assert 0.8 < acc["purity"]["mean_purity_data"] < 0.95
    assert 0.4 < acc["efficiency"]["mean_efficiency_mc"] < 0.7
    # the weights estimate the particle-level count of the data (statistical error ~2 %)
    n_true = truth.pass_gen.sum()
    assert corrected.weights.sum() == pytest.approx(n_true, rel=0.06)
    bias_naive = abs(_moments(naive)[0] - true_mean)
    bias_corr = abs(_moments(corrected)[0] - true_mean)
    # measured: naive 0.48, corrected 0.03 (the one-pass prior pull alone is ~0.04)
    assert bias_naive > 0.25 and bias_corr < 0.1, (bias_naive, bias_corr)


def test_integer_observable_and_cfm() -> None:
    """A 2-D toy with a multiplicity, MC and data from the same model (plain closure), with
    conditional flow matching: the multiplicity is dequantised for training and rounded."""
    rng = np.random.default_rng(4)

    def record(n: int) -> tuple[np.ndarray, np.ndarray]:
        mult = rng.poisson(8.0, n).astype(np.float64)
        m = rng.normal(1.0, 0.3, n) + 0.05 * mult
        gen = np.stack([mult, m], 1)
        reco = np.stack(
            [rng.binomial(mult.astype(int), 0.8) + 0.0, m + 0.1 * rng.normal(size=n)], 1
        )
        return gen, reco

    g, r = record(4000)
    mc = make_mc(g, r, columns=["n", "m"])
    gd, rd = record(4000)
    cfm = {"hidden": 32, "blocks": 1, "energy_hidden": 16, "energy_blocks": 1, "steps": 8}
    res = generative_unfold(
        mc,
        make_data(rd, columns=["n", "m"]),
        model="cfm",
        config=cfm,
        optim=OPTIM,
        epochs=3,
        calibration_events=200,
        calibration_samples=20,
        seed=0,
        progress=False,
    )
    assert res.config["integer_columns"] == ["n"]
    n_s = res.samples[:, 0, 0]
    assert np.array_equal(n_s, np.round(n_s))
    # same prior as the data: closure up to the tiny model's error (truth means 8.0 and 1.4)
    assert abs(n_s.mean() - gd[:, 0].mean()) < 0.5
    assert abs(res.samples[:, 0, 1].mean() - gd[:, 1].mean()) < 0.1
    assert res.calibration is not None and res.calibration.coverage.shape == (2, 3)


# ------------------------------------------------------------------ calibration oracle


class _GaussPosterior:
    """The exact posterior of the toy (prior N(0, 1)), its width scaled by ``scale``."""

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale

    def __call__(self, x: np.ndarray) -> Any:
        k = 1.0 + SIGMA**2
        mu, sd = x / k, self.scale * SIGMA / math.sqrt(k)

        class _D:
            def sample(self, n: int, *, seed: int | None = None) -> np.ndarray:
                rng = np.random.default_rng(seed)
                return mu[None] + sd * rng.standard_normal((n, *mu.shape))

        return _D()


def _joint(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 1))
    return z, z + SIGMA * rng.normal(size=(n, 1))


def _coverage_of_scaled_posterior(scale: float, level: float, n_samples: int) -> float:
    """Exact expected coverage of the randomised-PIT interval for a posterior ``scale`` times
    too narrow/wide: the truth's standardised offset y ~ N(0, 1); the number of draws below
    it is Binomial(S, Φ(y / scale)); u = (B + U) / (S + 1) lies in [(1-a)/2, (1+a)/2]."""
    lo, hi = (1 - level) / 2 * (n_samples + 1), (1 + level) / 2 * (n_samples + 1)
    b = np.arange(n_samples + 1)
    frac = np.clip(hi - b, 0, 1) - np.clip(lo - b, 0, 1)  # P(U in the window | B = b)
    y, wq = np.polynomial.hermite_e.hermegauss(120)
    p = stats.norm.cdf(y / scale)
    inside = stats.binom.pmf(b[None, :], n_samples, p[:, None]) @ frac
    return float(wq @ inside / wq.sum())


def test_calibration_of_the_exact_posterior_is_nominal() -> None:
    z, x = _joint(4000, seed=5)
    cal = posterior_calibration(_GaussPosterior(), z, x, n_samples=100, seed=1)
    # 4000 events: binomial errors <= 0.008; 4 sigma
    np.testing.assert_allclose(cal.coverage[0], [0.5, 0.68, 0.95], atol=0.032)
    np.testing.assert_allclose(
        cal.coverage_error[0], np.sqrt(cal.coverage[0] * (1 - cal.coverage[0]) / 4000)
    )
    assert cal.uniformity_pvalues()[0] > 1e-3
    counts = np.bincount(cal.ranks[:, 0], minlength=101)
    assert stats.chisquare(counts.reshape(-1)).pvalue > 1e-3  # ranks uniform on 0..100


@pytest.mark.parametrize("scale", [0.5, 1.6])
def test_calibration_of_a_miscalibrated_posterior_matches_the_closed_form(scale: float) -> None:
    z, x = _joint(4000, seed=6)
    levels = (0.5, 0.68, 0.95)
    cal = posterior_calibration(_GaussPosterior(scale), z, x, n_samples=100, levels=levels, seed=2)
    exact = [_coverage_of_scaled_posterior(scale, a, 100) for a in levels]
    # continuum limit 2Φ(scale · z_a) − 1: 0.26/0.37/0.68 for 0.5; 0.71/0.86/0.998 for 1.6
    assert abs(exact[2] - (2 * stats.norm.cdf(scale * stats.norm.ppf(0.975)) - 1)) < 0.02
    np.testing.assert_allclose(cal.coverage[0], exact, atol=0.032)
    assert cal.uniformity_pvalues()[0] < 1e-6


def test_calibration_weights_and_ties() -> None:
    z, x = _joint(2000, seed=7)
    w = np.where(z[:, 0] > 0, 2.0, 1.0)
    cal = posterior_calibration(_GaussPosterior(), z, x, n_samples=50, weights=w, seed=3)
    np.testing.assert_allclose(cal.coverage[0], [0.5, 0.68, 0.95], atol=0.05)
    # integer truths and samples: ties are broken at random, the PIT stays uniform
    zi, xi = np.round(3 * z), x

    class _Int:
        def __call__(self, c: np.ndarray) -> Any:
            inner = _GaussPosterior()(c)

            class _D:
                def sample(self, n: int, *, seed: int | None = None) -> np.ndarray:
                    return np.round(3 * inner.sample(n, seed=seed))

            return _D()

    cal_i = posterior_calibration(_Int(), zi, xi, n_samples=50, seed=4)
    np.testing.assert_allclose(cal_i.coverage[0], [0.5, 0.68, 0.95], atol=0.05)


class _ShiftedPriorPosterior:
    """The exact posterior of the toy for the particle-level prior N(m, s²)."""

    def __init__(self, m: float, s: float) -> None:
        self.m, self.s = m, s

    def __call__(self, x: np.ndarray) -> Any:
        v = self.s**2 + SIGMA**2
        mu = (x * self.s**2 + self.m * SIGMA**2) / v
        sd = self.s * SIGMA / math.sqrt(v)

        class _D:
            def sample(self, n: int, *, seed: int | None = None) -> np.ndarray:
                rng = np.random.default_rng(seed)
                return mu[None] + sd * rng.standard_normal((n, *mu.shape))

        return _D()


def test_calibration_uniformity_uses_the_event_weights() -> None:
    """After IcINN iterations the held-out pairs come from the MC (prior N(0, 1)) with prior
    weights N(z; m, s) / N(z; 0, 1); the posterior learnt for the new prior is calibrated for
    the weighted pairs, not for the unweighted ones."""
    m, s = 0.6, 0.7
    z, x = _joint(4000, seed=9)
    w = stats.norm.pdf(z[:, 0], m, s) / stats.norm.pdf(z[:, 0])
    post = _ShiftedPriorPosterior(m, s)
    cal = posterior_calibration(post, z, x, n_samples=100, weights=w, seed=5)
    unweighted = posterior_calibration(post, z, x, n_samples=100, seed=5)
    assert np.array_equal(cal.pit, unweighted.pit)  # same draws; only the weights differ
    assert cal.uniformity_pvalues()[0] > 1e-3
    assert unweighted.uniformity_pvalues()[0] < 1e-6
    assert cal.as_dict()["z0"]["rank_ks_pvalue"] == pytest.approx(cal.uniformity_pvalues()[0])
    np.testing.assert_allclose(cal.coverage[0], [0.5, 0.68, 0.95], atol=0.05)


def test_weighted_ks_uniform() -> None:
    rng = np.random.default_rng(11)
    # density p(u) = 0.5 + u on [0, 1] (inverse CDF), weights 1 / p: uniform when weighted
    u = (np.sqrt(1 + 8 * rng.uniform(size=3000)) - 1) / 2
    d_w, p_w = weighted_ks_uniform(u, 1 / (0.5 + u))
    d_u, p_u = weighted_ks_uniform(u)
    assert p_w > 1e-3 and d_w < 0.05
    assert p_u < 1e-10 and d_u == pytest.approx(0.125, abs=0.03)  # sup |F - u| = 1/8
    # equal weights (any scale): scipy's one-sample KS test
    ref = stats.kstest(u, "uniform")
    for w in (None, np.full(u.size, 3.0)):
        d, p = weighted_ks_uniform(u, w)
        assert d == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    # integer weights act as copies of the events (statistic and, via n_eff, p-value)
    v = rng.uniform(size=400)
    k = rng.integers(1, 4, 400)
    d_k, _ = weighted_ks_uniform(v, k.astype(float))
    assert d_k == pytest.approx(stats.kstest(np.repeat(v, k), "uniform").statistic)
    with pytest.raises(DataFormatError, match="weights"):
        weighted_ks_uniform(v, -np.ones(400))
    with pytest.raises(DataFormatError, match="u: expected"):
        weighted_ks_uniform([])


def test_calibration_bad_input() -> None:
    z, x = _joint(50, seed=8)
    with pytest.raises(ConfigError, match="levels"):
        posterior_calibration(_GaussPosterior(), z, x, levels=(0.5, 1.0))
    with pytest.raises(ConfigError, match="n_samples"):
        posterior_calibration(_GaussPosterior(), z, x, n_samples=0)
    with pytest.raises(DataFormatError, match="reco has 49 rows"):
        posterior_calibration(_GaussPosterior(), z, x[:49])
    with pytest.raises(DataFormatError, match="weights"):
        posterior_calibration(_GaussPosterior(), z, x, weights=-np.ones(50))


# ------------------------------------------------------------------ plumbing


def test_systematic_resample_follows_the_weights() -> None:
    w = np.array([0.0, 1.0, 3.0, 0.5, 0.5])
    idx = systematic_resample(w, 10_000, seed=0)
    counts = np.bincount(idx, minlength=5)
    assert counts[0] == 0
    np.testing.assert_allclose(counts / 10_000, w / w.sum(), atol=2e-4)  # systematic: ±1 event
    assert np.array_equal(idx, systematic_resample(w, 10_000, seed=0))


def test_same_seed_same_samples_and_files(tmp_path: Path) -> None:
    mc, data, _ = _toy(0.2, 0.8, n=1000, seed=9)
    tiny = {"shape_transforms": 1, "shape_hidden": [8], "shape_bins": 4}
    kw: dict[str, Any] = {"config": tiny, "optim": OPTIM, "epochs": 1, "progress": False}
    a = generative_unfold(mc, data, seed=3, calibration_events=50, out=tmp_path / "run", **kw)
    b = generative_unfold(mc, data, seed=3, calibration_events=50, **kw)
    assert np.array_equal(a.samples, b.samples) and np.array_equal(a.weights, b.weights)
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["model", "samples.h5", "summary.json"]
    with h5py.File(run / "samples.h5") as h:
        np.testing.assert_array_equal(h["samples"][()], a.samples)
        np.testing.assert_array_equal(h["weights"][()], a.weights)
        assert [str(c) for c in h.attrs["columns"]] == ["z"]  # a list of str, as elsewhere
        assert json.loads(h.attrs["summary"])["config"]["seed"] == 3
    summary = json.loads((run / "summary.json").read_text())
    assert summary["method"] == "generative-flow" and summary["n_events"] == 1000
    assert summary["calibration"]["z"]["coverage"]["0.68"] == pytest.approx(
        float(a.calibration.coverage[0, 1])  # type: ignore[union-attr]
    )
    assert (run / "model" / "weights.pt").is_file()
    with pytest.raises(ConfigError, match="is a file"):
        a.save(run / "summary.json")
    with pytest.raises(ConfigError, match="does not exist"):
        a.save(tmp_path / "missing" / "deeper")
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporaries left


def test_bad_options_and_data() -> None:
    mc, data, _ = _toy(0.0, 1.0, n=500)
    with pytest.raises(ConfigError, match="model"):
        generative_unfold(mc, data, model="gan")
    with pytest.raises(ConfigError, match="iterations"):
        generative_unfold(mc, data, iterations=0)
    with pytest.raises(ConfigError, match="efficiency_floor"):
        generative_unfold(mc, data, efficiency_floor=0.0)
    with pytest.raises(ConfigError, match="integer_columns"):
        generative_unfold(mc, data, integer_columns=["nope"])
    # a bare string is one name (not its characters 'z', 'z', which would exist)
    with pytest.raises(ConfigError, match="unknown observable 'zz'"):
        generative_unfold(mc, data, integer_columns="zz")
    wide = make_data(np.zeros((10, 2)), columns=["a", "b"])
    with pytest.raises(DataFormatError, match="data: 2 observables but mc has 1"):
        generative_unfold(mc, wide)
    renamed = make_data(data.reco, columns=["y"])
    with pytest.raises(DataFormatError, match="columns y differ from mc's z"):
        generative_unfold(mc, renamed)
    few = make_mc(mc.gen, mc.reco, pass_reco=np.arange(500) < 50, columns=["z"])
    with pytest.raises(DataFormatError, match="50 events pass both"):
        generative_unfold(few, data)


def test_integer_columns_as_a_string() -> None:
    gen = np.stack([np.arange(10.0), np.linspace(0, 1, 10), np.arange(10.0)], 1)
    cols = ("n", "m", "k")
    assert _integer_columns("auto", gen, cols) == [0, 2]
    assert _integer_columns("k", gen, cols) == [2]
    assert _integer_columns("n, k", gen, cols) == [0, 2]
    assert _integer_columns(["m"], gen, cols) == [1]
    assert _integer_columns(None, gen, cols) == []


def test_every_omnifold_classifier_preset_works(monkeypatch: pytest.MonkeyPatch) -> None:
    """``classifier`` takes the presets of :func:`physgen.unfold.omnifold.get_classifier`
    (``small`` too); a bad name fails before any training, naming the option."""
    import physgen.density

    mc, data, _ = _toy(0.2, 0.8, n=1000, seed=12)
    tiny = {"shape_transforms": 1, "shape_hidden": [8], "shape_bins": 4}
    res = generative_unfold(
        mc,
        data,
        iterations=2,  # the IcINN reweighting trains the classifier
        classifier="small",
        config=tiny,
        optim=OPTIM,
        epochs=1,
        calibration_events=0,
        progress=False,
    )
    assert res.config["classifier"] == "small" and "prior_weight_max" in res.training[0]

    def no_training(*a: Any, **k: Any) -> None:
        raise AssertionError("trained before checking the classifier")

    monkeypatch.setattr(physgen.density, "fit", no_training)
    with pytest.raises(ConfigError, match="classifier: unknown classifier preset 'huge'"):
        generative_unfold(mc, data, classifier="huge")
