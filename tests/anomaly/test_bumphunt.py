"""physgen.anomaly.bumphunt: dijet function, sideband fit, significance, bump hunt, figure.

Spectra are sampled from the dijet function itself (inverse CDF on a fine grid), so the true
parameters and the true SR background are known: the fit must recover them within its
errors, a signal-free spectrum must give a small significance and an injected Gaussian bump a
large one. The significance formula is checked against a numerical profile likelihood.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, optimize, stats

from physgen.anomaly.bumphunt import (
    BumpHuntResult,
    SidebandFit,
    bump_hunt,
    dijet_function,
    fit_sidebands,
    poisson_significance,
)
from physgen.anomaly.plots import plot_bump_hunt, plot_sideband_fit
from physgen.errors import ConfigError, DataFormatError, FitError

SHAPE = (1.0, 8.0, 4.5, 0.2)  # (p0, p1, p2, p3): a falling 13 TeV dijet spectrum
LO, HI = 2.8, 6.0  # fit range in TeV
SR = (3.3, 3.7)
N_BKG = 100_000  # expected background events in [LO, HI]


def _shape_integral(a: float, b: float, params: tuple[float, ...] = SHAPE) -> float:
    return float(integrate.quad(lambda m: dijet_function(m, params), a, b, epsabs=0)[0])


def _sample(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` masses from the dijet shape on [LO, HI] (inverse CDF on a fine grid)."""
    g = np.linspace(LO, HI, 40_001)
    f = dijet_function(g, SHAPE)
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * np.diff(g))])
    return np.interp(rng.uniform(size=n), cdf / cdf[-1], g)


def _spectrum(seed: int, n_signal: int = 0) -> tuple[np.ndarray, float]:
    """Background (Poisson total) plus a Gaussian bump at 3.5 TeV; returns (m, true p0)."""
    rng = np.random.default_rng(seed)
    m = _sample(rng, rng.poisson(N_BKG))
    bump = rng.normal(3.5, 0.08, n_signal)
    return np.concatenate([m, bump]), N_BKG / _shape_integral(LO, HI)


def test_dijet_function() -> None:
    m = np.array([2.6, 3.9])
    x = m / 13.0
    expected = 2.0 * (1 - x) ** 8.0 / x ** (4.5 + 0.2 * np.log(x))
    np.testing.assert_allclose(dijet_function(m, (2.0, 8.0, 4.5, 0.2)), expected, rtol=1e-12)
    np.testing.assert_allclose(
        dijet_function(m, (2.0, 8.0, 4.5)), dijet_function(m, (2.0, 8.0, 4.5, 0.0))
    )
    assert dijet_function(2.0, SHAPE, sqrt_s=14.0) == pytest.approx(
        (1 - 2 / 14) ** 8 / (2 / 14) ** (4.5 + 0.2 * math.log(2 / 14))
    )
    with pytest.raises(ConfigError, match="sqrt_s"):
        dijet_function(13.5, SHAPE)
    with pytest.raises(ConfigError, match="params"):
        dijet_function(3.0, (1.0, 2.0))


def _profile_z(n: float, b: float, sigma: float) -> float:
    """Numerical q0 of n ~ Pois(s + b'), m ~ Pois(τ b'), m = τ b, τ = b / σ²."""
    tau = b / sigma**2
    m = tau * b

    def _both(s: float, bb: float) -> float:
        return -(_lpois(n, s + bb) + _lpois(m, tau * bb))

    b0 = optimize.minimize_scalar(
        lambda bb: _both(0.0, bb), bounds=(1e-3, 10 * b), method="bounded"
    )
    free = _both(n - b, b)  # the unconditional maximum: s = n - b, b' = b
    return math.sqrt(max(2 * (b0.fun - free), 0.0))


def _lpois(k: float, mu: float) -> float:
    """Poisson log-likelihood extended to real k (the constant term cancels in ratios)."""
    return k * math.log(mu) - mu


def test_significance_formula() -> None:
    assert poisson_significance(100, 100.0, 5.0) == 0.0
    assert poisson_significance(80, 100.0, 0.0) == 0.0  # deficits give 0, never negative
    n, b = 130, 100.0
    assert poisson_significance(n, b, 0.0) == pytest.approx(
        math.sqrt(2 * (n * math.log(n / b) - n + b))
    )
    for sigma in (1.0, 5.0, 20.0):
        assert poisson_significance(n, b, sigma) == pytest.approx(_profile_z(n, b, sigma), rel=1e-4)
    # background uncertainty lowers Z; large counts: (n - b) / sqrt(b + σ²)
    zs = [poisson_significance(n, b, s) for s in (0.0, 1e-4, 5.0, 10.0, 30.0)]
    assert zs[0] == pytest.approx(zs[1], rel=1e-6) and all(np.diff(zs) < 0)
    assert poisson_significance(10_300, 10_000.0, 50.0) == pytest.approx(
        300 / math.sqrt(10_000 + 2500), rel=0.02
    )
    with pytest.raises(ConfigError, match="b > 0"):
        poisson_significance(3, 0.0, 1.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fit_recovers_parameters_without_signal(seed: int) -> None:
    m, p0 = _spectrum(seed)
    fit = fit_sidebands(m, SR, bins=32, range=(LO, HI))
    assert isinstance(fit, SidebandFit) and fit.valid and fit.accurate
    pulls = (fit.params[1:] - SHAPE[1:]) / fit.errors[1:]
    assert np.abs(pulls).max() < 4, pulls
    # p0 spans decades along the (p1, p2, p3) valley: its pull is taken in ln p0
    assert abs(math.log(fit.params[0] / p0)) < 4 * fit.errors[0] / fit.params[0]
    assert fit.ndf == 32 - 4 - 4  # the 4 SR bins are left out
    assert fit.chi2_pvalue > 1e-3
    # the SR prediction agrees with the true background integral within its error
    b_true = p0 * _shape_integral(*SR)
    assert abs(fit.background - b_true) < 4 * fit.background_error
    assert fit.background_error < 0.02 * fit.background
    assert fit.n_observed == int(((m >= SR[0]) & (m < SR[1])).sum())
    assert abs(fit.pull) < 3 and fit.significance < 3
    assert fit.p_value == pytest.approx(stats.norm.sf(fit.significance))
    # counts per bin: the fitted background integrates the fitted function
    mu, err = fit.expected_counts([4.0, 4.5])
    assert mu[0] == pytest.approx(_shape_integral(4.0, 4.5, tuple(fit.params)), rel=1e-9)
    assert 0 < err[0] < mu[0]


def test_injected_bump_is_found() -> None:
    m, _ = _spectrum(3, n_signal=900)
    fit = fit_sidebands(m, SR, bins=32, range=(LO, HI))
    assert fit.significance > 3
    excess = fit.n_observed - fit.background
    assert 600 < excess < 1200  # ≈ 900 signal events in the SR
    three = fit_sidebands(m, SR, bins=32, range=(LO, HI), n_params=3)
    assert three.params.size == 3 and three.significance > 3


def test_fit_errors() -> None:
    m, _ = _spectrum(4)
    with pytest.raises(FitError, match=r"no valid minimum .* call limit reached=True"):
        fit_sidebands(m, SR, bins=32, range=(LO, HI), max_calls=5)
    with pytest.raises(ConfigError, match="signal_region"):
        fit_sidebands(m, (5.5, 6.5), bins=32, range=(LO, HI))
    with pytest.raises(ConfigError, match="signal_region"):
        fit_sidebands(m, (3.7, 3.3), bins=32, range=(LO, HI))
    with pytest.raises(ConfigError, match="no lower sideband bin"):
        fit_sidebands(m, (2.81, 3.7), bins=8, range=(LO, HI))
    with pytest.raises(DataFormatError, match="no events in the lower sideband"):
        fit_sidebands(m[m > 3.3], SR, bins=32, range=(LO, HI))
    with pytest.raises(DataFormatError, match="too few sideband events"):
        fit_sidebands(m[:12], SR, bins=32, range=(LO, HI))
    with pytest.raises(DataFormatError, match="NaN"):
        fit_sidebands(np.append(m, np.nan), SR, bins=32, range=(LO, HI))
    with pytest.raises(ConfigError, match="n_params"):
        fit_sidebands(m, SR, n_params=5)
    with pytest.raises(ConfigError, match="range"):
        fit_sidebands(m, SR, bins=np.linspace(LO, HI, 33), range=(LO, HI))
    with pytest.raises(ConfigError, match="range"):
        fit_sidebands(m, SR, bins=32, range=(LO, 14.0))


def test_runaway_normalisation_is_a_fit_error() -> None:
    """A minimum whose normalisation ran off to e^700 (a 0.1 % cut of a null sample) is a
    FitError, which ``skip_failed`` reports, not an OverflowError."""
    from physgen.anomaly.sideband_fit import _normalisation

    assert _normalisation(math.log(5.0)) == pytest.approx(5.0)
    for bad in (750.0, math.inf, math.nan):
        with pytest.raises(FitError, match="normalisation ran away"):
            _normalisation(bad)


def _toy_hunt(seed: int, n_signal: int) -> tuple[np.ndarray, np.ndarray]:
    """Background with scores uniform and independent of m_jj; a signal subpopulation at
    3.5 TeV with scores near 1 (Beta(200, 1): 87 % of them above 0.99)."""
    rng = np.random.default_rng(seed)
    m_b = _sample(rng, N_BKG)
    m_s = rng.normal(3.5, 0.08, n_signal)
    scores = np.concatenate([rng.uniform(size=N_BKG), rng.beta(200, 1, n_signal)])
    return np.concatenate([m_b, m_s]), scores


def test_bump_hunt_on_a_score_correlated_bump(tmp_path: Path) -> None:
    m, scores = _toy_hunt(5, n_signal=400)
    results = bump_hunt(m, scores, (1.0, 0.1, 0.01), bins=32, range=(LO, HI))
    assert [r.efficiency for r in results] == [1.0, 0.1, 0.01]
    for r in results:
        assert isinstance(r, BumpHuntResult) and r.fit is not None and r.error is None
        assert r.n_selected == int((scores >= r.threshold).sum())
        assert r.n_selected == pytest.approx(r.efficiency * m.size, abs=1)
    z = [r.significance for r in results]
    assert z[0] < 4 and z[2] > 5 and z[1] < z[2]  # the cut enriches the bump
    json.dumps([r.to_dict() for r in results], allow_nan=False)
    # null toy: no signal, the same cuts give small significances
    m0, s0 = _toy_hunt(6, n_signal=0)
    assert all(r.significance < 3 for r in bump_hunt(m0, s0, (0.1, 0.01), bins=32))
    # a cut too tight to fit: raised with the efficiency, or recorded with skip_failed
    with pytest.raises(DataFormatError, match=r"efficiency 0\.0001: m_jj: no events in the upper"):
        bump_hunt(m, scores, (0.0001,), bins=32, range=(LO, HI))
    (failed,) = bump_hunt(m, scores, (0.0001,), bins=32, range=(LO, HI), skip_failed=True)
    assert failed.fit is None and "upper sideband" in str(failed.error)
    assert math.isnan(failed.significance)
    with pytest.raises(ConfigError, match="efficiencies"):
        bump_hunt(m, scores, (0.0,))
    with pytest.raises(DataFormatError, match="scores"):
        bump_hunt(m, scores[:-1])


def test_figure(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    pytest.importorskip("mplhep")
    import matplotlib.pyplot as plt

    m, scores = _toy_hunt(8, n_signal=400)
    results = bump_hunt(m, scores, (1.0, 0.01), bins=32, range=(LO, HI))
    fig = plot_bump_hunt(results, tmp_path / "hunt.png")
    assert (tmp_path / "hunt.png").stat().st_size > 10_000
    assert len(fig.axes) == 4
    plt.close(fig)
    assert results[1].fit is not None
    fig = plot_sideband_fit(results[1].fit, tmp_path / "fit.pdf", title="toy")
    assert (tmp_path / "fit.pdf").read_bytes()[:4] == b"%PDF"
    plt.close(fig)
    with pytest.raises(ConfigError, match="no successful"):
        plot_bump_hunt([BumpHuntResult(0.001, 1.0, 3, None, "failed")])
