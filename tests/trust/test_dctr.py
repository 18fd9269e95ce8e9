"""DCTR reweighting on arrays: the closed-form density ratio of two Gaussians, the weight rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from physgen.errors import ConfigError, DataFormatError
from physgen.metrics.classifier import ClassifierConfig
from physgen.trust.dctr import (
    Reweighter,
    condition_groups,
    effective_sample_size,
    fit_reweighter,
    normalise_in_groups,
)

SMALL = ClassifierConfig(
    name="small",
    hidden=64,
    n_hidden_layers=1,
    max_epochs=40,
    patience=6,
    batch_size=256,
    input_transform="standardize",
)


@pytest.fixture(scope="module")
def gaussians() -> tuple[np.ndarray, np.ndarray, Reweighter]:
    """Generated N(0, 1) and reference N(0.5, 1.2^2), 20k each, and a reweighter between them."""
    rng = np.random.default_rng(3)
    gen = rng.normal(0.0, 1.0, (20_000, 1))
    ref = rng.normal(0.5, 1.2, (20_000, 1))
    return gen, ref, fit_reweighter(gen, ref, config=SMALL, seed=1, threads=1)


def _true_ratio(x: np.ndarray) -> np.ndarray:
    from scipy.stats import norm

    return np.asarray(norm.pdf(x, 0.5, 1.2) / norm.pdf(x, 0.0, 1.0))


def test_recovers_the_gaussian_density_ratio(gaussians: tuple) -> None:
    rw = gaussians[2]
    x = np.linspace(-1.5, 2.0, 15)
    fitted = rw.raw_weights(x[:, None])
    true = _true_ratio(x)
    # within 15 % where both densities are well populated (|x| <~ 2 sigma)
    np.testing.assert_allclose(fitted, true, rtol=0.15)


def test_weighted_generated_moments_match_the_reference(gaussians: tuple) -> None:
    gen, _, rw = gaussians
    w = rw.weights(gen)
    assert w.mean() == pytest.approx(1.0)
    m = np.average(gen[:, 0], weights=w)
    s = np.sqrt(np.average((gen[:, 0] - m) ** 2, weights=w))
    assert m == pytest.approx(0.5, abs=0.04)  # unweighted: 0.0
    # the clip at 10 and the generator's thin tails keep the width a little short of 1.2
    assert s == pytest.approx(1.2, abs=0.08)
    assert 0.3 < effective_sample_size(w) / len(w) < 0.95


def test_clip_bounds_the_raw_weights(gaussians: tuple) -> None:
    rw = gaussians[2]
    far = np.array([[-6.0], [6.0]])  # ratio ~ 1e-3 and ~ 1e4
    raw = rw.raw_weights(far)
    assert raw[1] > rw.clip
    w = np.minimum(raw, rw.clip)
    assert w.max() <= rw.clip


def test_save_and_load_round_trip(gaussians: tuple, tmp_path: Path) -> None:
    gen, _, rw = gaussians
    p = rw.save(tmp_path / "rw.pt")
    back = Reweighter.load(p)
    np.testing.assert_allclose(back.raw_weights(gen[:500]), rw.raw_weights(gen[:500]), rtol=1e-6)
    assert back.clip == rw.clip and back.n_inputs == 1


def test_load_refuses_other_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(DataFormatError, match="not a physgen reweighter"):
        Reweighter.load(bad)
    with pytest.raises(ConfigError, match="no such reweighter"):
        Reweighter.load(tmp_path / "missing.pt")


def test_bad_inputs(gaussians: tuple) -> None:
    gen, ref, rw = gaussians
    with pytest.raises(ConfigError, match="clip"):
        fit_reweighter(gen, ref, clip=1.0)
    with pytest.raises(DataFormatError, match="NaN"):
        rw.raw_weights(np.array([[np.nan]]))
    with pytest.raises(DataFormatError, match=r"expected features \(N, 1\)"):
        rw.raw_weights(np.zeros((3, 2)))
    with pytest.raises(DataFormatError, match="weights"):
        fit_reweighter(gen, ref, generated_weights=-np.ones(len(gen)))


def test_effective_sample_size() -> None:
    assert effective_sample_size(np.ones(10)) == pytest.approx(10.0)
    assert effective_sample_size([2.0, 0.0, 0.0]) == pytest.approx(1.0)
    assert effective_sample_size([1.0, 1.0, 2.0, 2.0]) == pytest.approx(36 / 10)
    assert effective_sample_size(np.zeros(3)) == 0.0


def test_condition_groups_discrete_and_continuous() -> None:
    e = np.repeat([1.0, 10.0, 100.0], 4)
    np.testing.assert_array_equal(condition_groups(e), np.repeat([0, 1, 2], 4))
    c = np.random.default_rng(0).uniform(0, 1, 1000)
    g = condition_groups(c, n_quantiles=10)
    assert sorted(np.unique(g)) == list(range(10))
    assert np.bincount(g).min() >= 99


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(0.0, 1e3), min_size=1, max_size=40).filter(lambda w: sum(w) > 0),
    st.integers(1, 4),
)
def test_normalise_in_groups_gives_mean_one(w: list[float], k: int) -> None:
    arr = np.asarray(w)
    groups = np.arange(len(arr)) % k
    out = normalise_in_groups(arr, groups)
    for g in np.unique(groups):
        sel = groups == g
        if arr[sel].sum() > 0:
            assert out[sel].mean() == pytest.approx(1.0)
            # proportions within a group are kept
            i = np.flatnonzero(sel)[0]
            assert out[sel] * arr[i] == pytest.approx(arr[sel] * out[i])
        else:
            assert np.all(out[sel] == 1.0)


def test_temperature_undoes_over_confidence() -> None:
    """Labels drawn from sigmoid(z) (a calibrated score z); a network reporting 2 z is
    over-confident by a factor 2, and the fitted temperature is 2."""
    from physgen.trust.dctr import fit_temperature

    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 1.5, 200_000)
    y = rng.random(z.size) < 1.0 / (1.0 + np.exp(-z))
    # fit_temperature balances the classes; shift z by the log prior odds so that it is the
    # calibrated logit of the balanced problem
    z_bal = z - np.log(y.mean() / (1 - y.mean()))
    t = fit_temperature(2.0 * z_bal[~y], 2.0 * z_bal[y])
    assert t == pytest.approx(2.0, rel=0.03)


def test_member_average_round_trip(gaussians: tuple, tmp_path: Path) -> None:
    gen, ref, _ = gaussians
    rw = fit_reweighter(gen[:3000], ref[:3000], config=SMALL, seed=2, threads=1, members=2)
    assert len(rw.ratios) == 2 and rw.info["members"] == 2 and rw.info["temperature"] > 0
    x = np.linspace(-1, 1, 5)[:, None]
    mean_log = np.mean([r.log_ratio(x) for r in rw.ratios], axis=0)
    np.testing.assert_allclose(rw.raw_weights(x), np.exp(mean_log / rw.info["temperature"]))
    back = Reweighter.load(rw.save(tmp_path / "rw2.pt"))
    np.testing.assert_allclose(back.raw_weights(x), rw.raw_weights(x), rtol=1e-6)
    with pytest.raises(ConfigError, match="members"):
        fit_reweighter(gen, ref, members=0)


def test_regularise_clips_relative_to_each_group() -> None:
    """Normalise per group, clip to [1/clip, clip], normalise again: weights within a group
    span at most clip² and the group means stay 1, even where one event dominates."""
    from physgen.trust.dctr import regularise

    r = np.r_[np.full(9, 0.05), 20.0, np.full(10, 1.0)]  # group 0: one dominant event
    g = np.r_[np.zeros(10), np.ones(10)].astype(int)
    w = regularise(r, 3.0, g)
    for k in (0, 1):
        assert w[g == k].mean() == pytest.approx(1.0)
    np.testing.assert_allclose(w[g == 1], 1.0)
    plain = normalise_in_groups(r, g)
    assert w.max() < 0.6 * plain.max()  # 9.8 without the clip, 5.0 with it
    assert w[:10].max() / w[:10].min() == pytest.approx(9.0)
    assert np.all(np.diff(w[:10][np.argsort(r[:10])]) >= 0)  # the order of the ratios is kept
    assert effective_sample_size(w[:10]) > effective_sample_size(plain[:10])
