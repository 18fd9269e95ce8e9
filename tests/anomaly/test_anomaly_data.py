"""Anomaly-detection inputs: events, regions, files, the m_jj sampling."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from physgen.anomaly.data import (
    LHCO_FEATURES,
    AnomalyEvents,
    Regions,
    read_events,
    sample_mjj,
    toy_events,
)
from physgen.errors import ConfigError, DataFormatError


def _lhco(n: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.random((n, 6))
    a[:, 0] = 3.0 + rng.random(n)
    a[:, 5] = rng.random(n) < 0.2
    return a


def test_npy_lhco_layout(tmp_path: Path) -> None:
    a = _lhco()
    np.save(tmp_path / "sr.npy", a)
    ev = read_events(tmp_path / "sr.npy", labels="last")
    assert ev.names == LHCO_FEATURES
    np.testing.assert_array_equal(ev.mjj, a[:, 0])
    np.testing.assert_array_equal(ev.features, a[:, 1:5])
    np.testing.assert_array_equal(ev.labels, a[:, 5].astype(int))
    no_lab = read_events(tmp_path / "sr.npy")
    assert no_lab.labels is None and no_lab.n_features == 5
    some = read_events(tmp_path / "sr.npy", labels="last", features="1,3")
    np.testing.assert_array_equal(some.features, a[:, [1, 3]])


def test_named_columns_h5(tmp_path: Path) -> None:
    a = _lhco()
    with h5py.File(tmp_path / "ev.h5", "w") as f:
        for name, col in zip(("m_jj", *LHCO_FEATURES, "label"), a.T):
            f[name] = col
    ev = read_events(tmp_path / "ev.h5", labels="auto")
    assert ev.names == LHCO_FEATURES
    np.testing.assert_array_equal(ev.labels, a[:, 5].astype(int))
    ev2 = read_events(tmp_path / "ev.h5", features="m_j1,tau21_j2")
    assert ev2.labels is None and ev2.names == ("m_j1", "tau21_j2")
    with pytest.raises(ConfigError, match="nope"):
        read_events(tmp_path / "ev.h5", features="nope")


def test_bad_inputs(tmp_path: Path) -> None:
    a = _lhco()
    a[3, 2] = np.nan
    np.save(tmp_path / "nan.npy", a)
    with pytest.raises(DataFormatError, match="row 3"):
        read_events(tmp_path / "nan.npy", labels="last")
    b = _lhco()
    b[0, 5] = 0.5
    np.save(tmp_path / "lab.npy", b)
    with pytest.raises(DataFormatError, match="labels"):
        read_events(tmp_path / "lab.npy", labels="last")
    np.save(tmp_path / "one.npy", np.ones((5, 1)))
    with pytest.raises(DataFormatError, match="columns"):
        read_events(tmp_path / "one.npy")
    with pytest.raises(DataFormatError, match="no such file"):
        read_events(tmp_path / "missing.npy")
    ev = read_events(tmp_path / "lab.npy")
    with pytest.raises(ConfigError, match="--test"):
        ev.require_labels("--test")


def test_regions() -> None:
    r = Regions((3.3, 3.7), sidebands=(3.0, 4.0))
    m = np.array([2.9, 3.0, 3.3, 3.69, 3.7, 3.99, 4.0])
    np.testing.assert_array_equal(r.in_sr(m), [0, 0, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(r.in_sb(m), [0, 1, 0, 0, 1, 1, 0])
    with pytest.raises(ConfigError, match="enclose"):
        Regions((3.3, 3.7), sidebands=(3.4, 4.0))
    with pytest.raises(ConfigError, match="lo < hi"):
        Regions((3.7, 3.3))
    ev = AnomalyEvents(np.linspace(2.5, 3.2, 100), np.zeros((100, 1)), source="x")
    with pytest.raises(ConfigError, match="no events of x"):
        Regions().check(ev, need_sidebands=True)
    inside = AnomalyEvents(np.linspace(3.31, 3.69, 100), np.zeros((100, 1)), source="x")
    with pytest.raises(ConfigError, match="must lie inside the m_jj range"):
        Regions().check(inside, need_sidebands=True)
    Regions().check(inside, need_sidebands=False)  # SR-only methods need no sidebands
    # partly outside: no upper sideband
    edge = AnomalyEvents(np.linspace(4.0, 4.996, 100), np.zeros((100, 1)), source="x")
    with pytest.raises(ConfigError, match="must lie inside"):
        Regions((4.95, 5.5)).check(edge, need_sidebands=True)
    gap = AnomalyEvents(np.r_[np.linspace(3.0, 3.6, 50), [3.95]], np.zeros((51, 1)), source="x")
    with pytest.raises(ConfigError, match="at least 40 together"):
        Regions((3.3, 3.7)).check(gap, need_sidebands=True, min_sb=40)


@settings(max_examples=30, deadline=None)
@given(
    lo=st.floats(1.0, 5.0),
    width=st.floats(0.05, 1.0),
    bw=st.floats(0.0, 0.2),
    seed=st.integers(0, 2**31),
)
def test_sample_mjj_stays_in_region(lo: float, width: float, bw: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    sr = lo + width * rng.random(200)
    m = sample_mjj(sr, 500, bandwidth=bw, bounds=(lo, lo + width), rng=rng)
    assert m.shape == (500,)
    assert (m >= lo).all() and (m < lo + width).all()


def test_sample_mjj_follows_kde() -> None:
    rng = np.random.default_rng(0)
    sr = rng.uniform(3.3, 3.7, 5000)
    m = sample_mjj(sr, 20000, bandwidth=0.01, bounds=(3.3, 3.7), rng=rng)
    assert abs(m.mean() - sr.mean()) < 0.005
    assert abs(m.std() - sr.std()) < 0.005


def test_toy_and_select_concat() -> None:
    ev = toy_events(1000, 50, seed=3)
    assert len(ev) == 1050 and ev.labels is not None and ev.labels.sum() == 50
    assert ev.mjj.min() >= 2.5 and ev.mjj[ev.labels == 0].max() <= 5.0
    sr = ev.select(Regions().in_sr(ev.mjj))
    assert 0 < len(sr) < len(ev)
    both = sr.concat(ev)
    assert len(both) == len(sr) + len(ev)
    np.testing.assert_array_equal(
        toy_events(10, 2, seed=3).features, toy_events(10, 2, seed=3).features
    )


def test_reads_physgen_pythia_dijet_files(tmp_path: Path) -> None:
    from physgen.events.dijet_sample import DijetSample, write_dijets

    rng = np.random.default_rng(1)
    feats = np.c_[3.0 + rng.random(30), rng.random((30, 4)) * 0.5]
    lab = (rng.random(30) < 0.3).astype(np.int64)
    sample = DijetSample(feats, lab, 1.3 + rng.random((30, 2)), np.arange(30, dtype=np.int64))
    path = write_dijets(tmp_path / "dijets.h5", sample)
    ev = read_events(path, labels="auto")
    np.testing.assert_array_equal(ev.mjj, feats[:, 0])
    np.testing.assert_array_equal(ev.features, feats[:, 1:])
    np.testing.assert_array_equal(ev.labels, lab)
    assert ev.names == LHCO_FEATURES
    assert read_events(path).labels is None
    two = read_events(path, features="tau21_j1,m_j1")
    np.testing.assert_array_equal(two.features, feats[:, [3, 1]])
    with pytest.raises(ConfigError, match="nope"):
        read_events(path, features="nope")


def test_named_columns_need_explicit_features_unless_lhco(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["m_jj"] = 3.0 + rng.random(20)
        f["pt"] = rng.random(20)
        f["is_signal"] = (rng.random(20) < 0.5).astype(float)
    with pytest.raises(ConfigError, match="name the feature columns"):
        read_events(tmp_path / "other.h5")
    ev = read_events(tmp_path / "other.h5", features="pt", labels="is_signal")
    assert ev.names == ("pt",) and ev.labels is not None
