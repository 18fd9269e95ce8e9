"""physgen.anomaly.metrics: ROC, SIC, rejection, AUC and the median band over runs.

Hand-computed answers on 4 signal + 4 background events (with and without ties), weights as
repeated events, scikit-learn's ROC and AUC as references, the CATHODE ε_B cut, the median
band against per-run rejections, and hypothesis properties of the ROC curve.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import metrics as skm

from physgen.anomaly.metrics import (
    MIN_EPS_B,
    PerformanceBand,
    auc,
    max_sic,
    performance_band,
    rejection_at,
    roc_curve,
    sic_curve,
)
from physgen.errors import ConfigError, DataFormatError

# 4 signal, 4 background; ranked: S .9, S .8, B .7, S .6, B .5, S .3, B .2, B .1
SCORES = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.5, 0.2, 0.1])
LABELS = np.array([1, 1, 1, 1, 0, 0, 0, 0])
# ties mixing the classes: S .9 | S S B B at .5 | B .3 | B .2 | S .1
TIED = np.array([0.9, 0.5, 0.5, 0.1, 0.5, 0.5, 0.3, 0.2])


def test_roc_by_hand() -> None:
    eps_s, eps_b, thr = roc_curve(SCORES, LABELS)
    np.testing.assert_allclose(eps_s, [0.25, 0.5, 0.5, 0.75, 0.75, 1, 1, 1])
    np.testing.assert_allclose(eps_b, [0, 0, 0.25, 0.25, 0.5, 0.5, 0.75, 1])
    np.testing.assert_allclose(thr, [0.9, 0.8, 0.7, 0.6, 0.5, 0.3, 0.2, 0.1])
    assert auc(SCORES, LABELS) == pytest.approx(13 / 16)  # 13 of the 16 S-B pairs ordered


def test_ties_are_one_point() -> None:
    eps_s, eps_b, thr = roc_curve(TIED, LABELS)
    np.testing.assert_allclose(thr, [0.9, 0.5, 0.3, 0.2, 0.1])
    np.testing.assert_allclose(eps_s, [0.25, 0.75, 0.75, 0.75, 1])
    np.testing.assert_allclose(eps_b, [0, 0.5, 0.75, 1, 1])
    # the order of tied events does not matter
    perm = np.array([4, 5, 1, 2, 0, 3, 6, 7])
    for a, b in zip(roc_curve(TIED[perm], LABELS[perm]), (eps_s, eps_b, thr)):
        np.testing.assert_array_equal(a, b)
    # a tie counts one half: 4 + 3 + 3 + 0 ordered pairs of 16
    assert auc(TIED, LABELS) == pytest.approx(10 / 16)
    # 1/ε_B at ε_S = 0.5: halfway along the tied segment (0.25, 0) -> (0.75, 0.5)
    assert rejection_at(0.5, TIED, LABELS) == pytest.approx(4.0)


def test_sic_and_the_eps_b_cut_by_hand() -> None:
    eps_s, sic = sic_curve(SCORES, LABELS, min_eps_b=0.2)
    np.testing.assert_allclose(eps_s, [0.5, 0.75, 0.75, 1, 1, 1])
    np.testing.assert_allclose(
        sic, [1.0, 1.5, 0.75 / math.sqrt(0.5), math.sqrt(2), 1 / math.sqrt(0.75), 1.0]
    )
    assert max_sic(SCORES, LABELS, min_eps_b=0.2) == pytest.approx(1.5)
    # a stricter cut removes the best point (ε_B = 0.25)
    assert max_sic(SCORES, LABELS, min_eps_b=0.3) == pytest.approx(math.sqrt(2))
    # the default keeps ε_B = 0.25 and drops the ε_B = 0 points (no division by zero)
    assert max_sic(SCORES, LABELS) == pytest.approx(1.5)


def test_rejection_by_hand() -> None:
    assert rejection_at(0.75, SCORES, LABELS) == pytest.approx(4.0)  # lowest ε_B at ε_S
    assert rejection_at(0.6, SCORES, LABELS) == pytest.approx(4.0)  # flat segment
    assert rejection_at(0.875, SCORES, LABELS) == pytest.approx(2.0)
    assert rejection_at(1.0, SCORES, LABELS) == pytest.approx(2.0)
    assert rejection_at(0.4, SCORES, LABELS) == math.inf  # no background selected yet


def test_cathode_min_eps_b() -> None:
    assert pytest.approx(1 / 54_400, rel=1e-7) == MIN_EPS_B
    assert MIN_EPS_B > 1 / 54_400  # 1/ε_B < 54,400 strictly: a point at 1/54,400 is out
    # 100 signal events above 100k background: the first background events set ε_B = 1e-5,
    # 2e-5, ...; the default drops ε_B = 1e-5 (one event: SIC 316) and keeps 2e-5 (SIC 224)
    rng = np.random.default_rng(0)
    scores = np.concatenate([np.full(100, 2.0), rng.uniform(size=100_000)])
    labels = np.concatenate([np.ones(100), np.zeros(100_000)])
    assert max_sic(scores, labels) == pytest.approx(1 / math.sqrt(2e-5))
    assert max_sic(scores, labels, min_eps_b=1e-6) == pytest.approx(1 / math.sqrt(1e-5))


def test_weights_are_repeated_events() -> None:
    w = np.array([2, 1, 3, 1, 1, 2, 1, 4])
    rep_s, rep_y = np.repeat(SCORES, w), np.repeat(LABELS, w)
    for a, b in zip(roc_curve(SCORES, LABELS, w), roc_curve(rep_s, rep_y)):
        np.testing.assert_allclose(a, b)
    assert auc(SCORES, LABELS, w) == pytest.approx(auc(rep_s, rep_y))
    assert rejection_at(0.5, SCORES, LABELS, w) == pytest.approx(rejection_at(0.5, rep_s, rep_y))
    # zero weights act as absent events
    w0 = np.array([1, 1, 1, 1, 1, 0, 1, 1])
    keep = w0 > 0
    assert auc(SCORES, LABELS, w0) == pytest.approx(auc(SCORES[keep], LABELS[keep]))


@pytest.mark.parametrize("seed", range(3))
def test_against_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 500)
    s = np.round(rng.normal(y * 0.8, 1.0), 1)  # many ties
    w = rng.uniform(0.1, 3.0, 500) if seed else None
    fpr, tpr, thr = skm.roc_curve(y, s, sample_weight=w, drop_intermediate=False)
    eps_s, eps_b, t = roc_curve(s, y, w)
    np.testing.assert_allclose(t, thr[1:])  # sklearn prepends the (0, 0) point at +inf
    np.testing.assert_allclose(eps_s, tpr[1:], atol=1e-12)
    np.testing.assert_allclose(eps_b, fpr[1:], atol=1e-12)
    assert auc(s, y, w) == pytest.approx(skm.roc_auc_score(y, s, sample_weight=w), rel=1e-12)


labelled = st.integers(2, 60).flatmap(
    lambda n: st.tuples(
        arrays(np.float64, n, elements=st.floats(-5, 5).map(lambda v: round(v, 1))),
        arrays(np.int64, n, elements=st.integers(0, 1)),
        arrays(np.float64, n, elements=st.floats(0.01, 10)) | st.none(),
    )
)


@settings(max_examples=80, deadline=None)
@given(data=labelled)
def test_roc_properties(data: tuple[np.ndarray, np.ndarray, np.ndarray | None]) -> None:
    s, y, w = data
    y[0], y[-1] = 1, 0  # at least one event of each class
    eps_s, eps_b, thr = roc_curve(s, y, w)
    assert (np.diff(thr) < 0).all()
    for e in (eps_s, eps_b):
        assert (np.diff(e) >= 0).all()
        assert ((e >= 0) & (e <= 1)).all()
        assert e[-1] == 1.0
    a = auc(s, y, w)
    assert 0 <= a <= 1
    assert a + auc(-s, y, w) == pytest.approx(1.0)  # ties count one half both ways
    es, sic = sic_curve(s, y, w)
    assert es.size >= 1 and (sic >= 0).all() and np.isfinite(sic).all()
    assert rejection_at(0.5, s, y, w) >= 1.0


def test_errors() -> None:
    with pytest.raises(DataFormatError, match=r"labels: expected 0 .* got 2"):
        roc_curve([0.1, 0.2], [0, 2])
    with pytest.raises(DataFormatError, match="3 values but 2 labels"):
        roc_curve([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(DataFormatError, match="no signal"):
        sic_curve([0.1, 0.2], [0, 0])
    with pytest.raises(DataFormatError, match="no background"):
        auc([0.1, 0.2], [1, 1])
    with pytest.raises(DataFormatError, match="no signal"):
        roc_curve([0.1, 0.2], [0, 1], weights=[1, 0])
    with pytest.raises(DataFormatError, match="NaN"):
        max_sic([0.1, np.nan], [0, 1])
    with pytest.raises(DataFormatError, match="weights"):
        roc_curve([0.1, 0.2], [0, 1], weights=[1, -1])
    with pytest.raises(DataFormatError, match="labels: expected 0 or 1"):
        roc_curve([0.1, 0.2], ["a", "b"])
    for bad in (0.0, 1.0, -0.1, 2.0):
        with pytest.raises(ConfigError, match="min_eps_b"):
            sic_curve(SCORES, LABELS, min_eps_b=bad)
    with pytest.raises(ConfigError, match="eps_s_target"):
        rejection_at(0.0, SCORES, LABELS)
    with pytest.raises(ConfigError, match="run_scores"):
        performance_band(SCORES, LABELS)  # one array, not a list of runs
    with pytest.raises(DataFormatError, match="run 1: scores: contains NaN"):
        performance_band([SCORES, np.full(8, np.nan)], LABELS)
    with pytest.raises(ConfigError, match="band"):
        performance_band([SCORES], LABELS, band=(0.84, 0.16))


def _gaussian_runs(n_runs: int, n: int = 20_000) -> tuple[list[np.ndarray], np.ndarray]:
    """Signal N(1.5, 1) and background N(0, 1) features; each run adds its own noise."""
    rng = np.random.default_rng(7)
    y = np.concatenate([np.ones(n // 10), np.zeros(n)])
    x = rng.normal(1.5 * y, 1.0)
    return [x + rng.normal(0.0, 0.3 + 0.2 * r, x.size) for r in range(n_runs)], y


def test_band_median_against_per_run_rejections() -> None:
    runs, y = _gaussian_runs(5)
    band = performance_band(runs, y)
    assert isinstance(band, PerformanceBand) and band.n_runs == 5
    for g in (0.2, 0.4, 0.6):
        k = int(np.argmin(np.abs(band.eps_s - g)))
        per_run = [g * math.sqrt(rejection_at(g, r, y)) for r in runs]
        assert band.sic_median[k] == pytest.approx(np.median(per_run), rel=1e-9)
        assert band.sic_low[k] <= band.sic_median[k] <= band.sic_high[k]
        assert min(per_run) <= band.sic_low[k] and band.sic_high[k] <= max(per_run)
    rej = [rejection_at(0.4, r, y) for r in runs]
    assert band.rejection_median[1] == pytest.approx(np.median(rej), rel=1e-9)
    np.testing.assert_allclose(band.rejection_eps_s, [0.2, 0.4])
    assert band.max_sic == pytest.approx(np.nanmax(band.sic_median))
    # the median curve's max is not the best run's: it lies within the runs' spread
    assert band.max_sic_per_run.min() * 0.8 < band.max_sic <= band.max_sic_per_run.max() * 1.05
    d = band.to_dict()
    json.dumps(d, allow_nan=False)  # NaN/inf became None
    assert d["rejection"]["0.4"]["median"] == pytest.approx(band.rejection_median[1])
    assert len(d["curve"]["eps_s"]) == band.eps_s.size == 1000
    assert "curve" not in band.to_dict(curve=False)


def test_band_of_identical_runs_has_no_width() -> None:
    runs, y = _gaussian_runs(1)
    same = [runs[0], 3.0 * runs[0] + 1.0, np.exp(runs[0])]  # monotone maps: same ROC
    band = performance_band(same, y, eps_s_grid=np.linspace(0.05, 1, 20))
    ok = np.isfinite(band.sic_median)
    np.testing.assert_allclose(band.sic_low[ok], band.sic_median[ok])
    np.testing.assert_allclose(band.sic_high[ok], band.sic_median[ok])
    np.testing.assert_allclose(band.rejection_low, band.rejection_high)
    _, sic = sic_curve(runs[0], y)
    assert band.max_sic <= sic.max() + 1e-9  # the grid samples the curve's own segments
    # a grid point below the ε_B cut is not counted (NaN), above it is
    tiny = performance_band(same, y, eps_s_grid=[1e-4, 0.5], min_eps_b=0.01)
    assert math.isnan(tiny.sic_median[0]) and np.isfinite(tiny.sic_median[1])
