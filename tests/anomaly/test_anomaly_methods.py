"""Anomaly-detection methods: k-fold bookkeeping, scores that find a toy signal, errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import physgen.anomaly.classify as classify
from physgen.anomaly.classify import cwola, idealized, kfold_scores, supervised
from physgen.anomaly.data import Regions, toy_events
from physgen.anomaly.densities import (
    anode,
    cathode,
    coordinate_log_jacobian,
    coordinate_maps,
    flow_density,
)
from physgen.anomaly.unsupervised import autoencoder
from physgen.errors import ConfigError
from physgen.metrics.classifier import ClassifierConfig

TINY = ClassifierConfig(
    name="tiny",
    hidden=16,
    n_hidden_layers=1,
    batch_size=256,
    max_epochs=8,
    patience=3,
    patience_samples=None,
    input_transform="standardize",
)
FLOW = {"epochs": 2, "config": {"shape_transforms": 2, "shape_hidden": [16, 16]}}


def _auc(labels: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores))


class _Spy:
    """Stands in for ``fit_likelihood_ratio``: records the rows each classifier trained on
    (the first feature is a unique event id) and answers, for every scored row, whether it
    had seen it."""

    def __init__(self) -> None:
        self.trained: list[set[float]] = []

    def __call__(self, x0: Any, x1: Any, **kw: Any) -> Any:
        seen = set(np.asarray(x0)[:, 0]) | set(np.asarray(x1)[:, 0])
        self.trained.append(seen)

        class _Model:
            def probability(self, x: np.ndarray) -> np.ndarray:
                return np.array([1.0 if v in seen else 0.0 for v in x[:, 0]])

        return _Model()


@pytest.mark.parametrize("ensemble", [1, 2])
def test_kfold_no_event_scored_by_a_model_that_saw_it(
    monkeypatch: pytest.MonkeyPatch, ensemble: int
) -> None:
    spy = _Spy()
    monkeypatch.setattr(classify, "fit_likelihood_ratio", spy)
    data = np.c_[np.arange(100.0), np.zeros(100)]
    tmpl = np.c_[1000 + np.arange(230.0), np.zeros(230)]
    extra = np.c_[5000 + np.arange(7.0), np.zeros(7)]
    s_data, s_tmpl, (s_extra,), info = kfold_scores(
        data, tmpl, extra=[extra], folds=4, ensemble=ensemble
    )
    assert len(spy.trained) == 4 * ensemble
    # every event is scored, and by models that never trained on it
    assert (s_data == 0).all() and (s_tmpl == 0).all() and (s_extra == 0).all()
    # each event sits in exactly one held-out part: trained on by folds-1 of the folds
    for ids in (data[:, 0], tmpl[:, 0]):
        counts = [sum(v in t for t in spy.trained) for v in ids]
        assert set(counts) == {3 * ensemble}
    assert info["folds"] == 4


def test_cwola_scores_every_sr_and_sb_event_out_of_fold(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = _Spy()
    monkeypatch.setattr(classify, "fit_likelihood_ratio", spy)
    ev = toy_events(3000, 0, seed=1)
    ev = type(ev)(ev.mjj, np.c_[np.arange(len(ev)), ev.features], ev.labels)
    res = cwola(ev, Regions((3.3, 3.7), sidebands=(2.6, 4.5)), folds=3)
    inside = (ev.mjj >= 2.6) & (ev.mjj < 4.5)
    assert np.isnan(res.scores[~inside]).all()
    assert (res.scores[inside] == 0).all()  # never scored by a model that saw it


def test_weak_classifiers_find_the_toy_signal() -> None:
    ev = toy_events(12000, 600, seed=1)
    test = toy_events(4000, 400, seed=2)
    test = test.select(Regions().in_sr(test.mjj))
    bkg = toy_events(12000, 0, seed=3)
    r = Regions()
    for res in (
        cwola(ev, r, test=test, folds=3, classifier=TINY),
        idealized(ev, bkg, r, test=test, folds=3, classifier=TINY),
        supervised(toy_events(0, 500, seed=4), bkg, test=test, folds=3, classifier=TINY),
    ):
        assert res.test_scores is not None and np.isfinite(res.scores).all()
        # one fold's classifier scores each test event (as the data are scored): single small
        # networks, so the threshold leaves room for their spread
        assert _auc(test.labels, res.test_scores) > 0.85, res.method
        assert res.train_cpu_s > 0


def test_idealized_on_signal_region_only_data() -> None:
    """The real LHCO arrays hold SR events only: no sidebands, nothing else to score."""
    r = Regions()
    ev = toy_events(20000, 300, seed=7)
    sr_only = ev.select(r.in_sr(ev.mjj))
    bkg = toy_events(20000, 0, seed=8)
    res = idealized(sr_only, bkg, r, folds=2, classifier=TINY)
    assert res.scores.shape == (len(sr_only),) and np.isfinite(res.scores).all()
    # the background's own out-of-fold scores: defined exactly in the SR
    b = res.extra["background_scores"]
    assert b.shape == (len(bkg),)
    np.testing.assert_array_equal(np.isfinite(b), r.in_sr(bkg.mjj))


def test_idealized_background_scores_serve_as_test_background() -> None:
    """Out-of-fold background scores + test signal separate like an independent test set."""
    r = Regions()
    ev, bkg = toy_events(12000, 600, seed=1), toy_events(12000, 0, seed=3)
    sig = toy_events(0, 1500, seed=2)
    sig = sig.select(r.in_sr(sig.mjj))
    res = idealized(ev, bkg, r, test=sig, folds=3, classifier=TINY)
    assert res.test_scores is not None
    b = res.extra["background_scores"]
    b = b[np.isfinite(b)]
    labels = np.r_[np.zeros(len(b)), np.ones(len(sig))]
    assert _auc(labels, np.r_[b, res.test_scores]) > 0.85


def test_supervised_scores_training_events_out_of_fold() -> None:
    sig, bkg = toy_events(0, 200, seed=4), toy_events(400, 0, seed=5)
    res = supervised(sig, bkg, folds=2, classifier=TINY)
    assert res.scores.shape == (600,) and res.test_scores is None


def test_density_methods_run_and_score() -> None:
    ev = toy_events(8000, 400, seed=1)
    test = toy_events(2000, 200, seed=2)
    test = test.select(Regions().in_sr(test.mjj))
    r = Regions()
    c = cathode(ev, r, test=test, flow=FLOW, folds=2, ensemble=2, classifier=TINY, oversample=2)
    assert c.info["n_samples"] == 2 * c.info["n_sr"]
    assert np.isfinite(c.scores).all() and c.test_scores is not None
    assert _auc(test.labels, c.test_scores) > 0.8
    a = anode(ev, r, test=test, flow=FLOW)
    assert np.isfinite(a.scores).all() and a.test_scores is not None
    f = flow_density(ev, test=test, flow=FLOW)
    assert f.test_scores is not None and f.extra["test_other"].shape == f.test_scores.shape
    ae = autoencoder(ev, test=test, epochs=3)
    assert ae.test_scores is not None and (ae.test_scores >= 0).all()


def test_method_errors() -> None:
    ev = toy_events(400, 0, seed=1)
    with pytest.raises(ConfigError, match="folds"):
        cwola(ev, Regions(), folds=1)
    with pytest.raises(ConfigError, match="sidebands"):
        cathode(ev, Regions(), flow=FLOW)  # far fewer than 500 sideband events
    with pytest.raises(ConfigError, match="set by the method"):
        cathode(toy_events(3000, seed=2), Regions(), flow={"seed": 3})
    with pytest.raises(ConfigError, match="latent"):
        autoencoder(ev, latent=4)
    with pytest.raises(ConfigError, match="unknown preset"):
        cwola(toy_events(3000, seed=2), Regions(), classifier="huge")


def test_coordinate_jacobian_closed_form() -> None:
    x = np.array([[0.5, 2.0, -1.0], [0.25, 1.0, 3.0]])
    maps, floors = coordinate_maps(x)
    assert maps == ["logit", "log", "identity"]
    # d logit(u)/du = 1 / (u (1 - u)), d log(m)/dm = 1/m
    expect = np.array([-np.log(0.25) - np.log(2.0), -np.log(0.1875) - np.log(1.0)])
    np.testing.assert_allclose(coordinate_log_jacobian(x, maps, floors), expect)


def test_coordinate_maps_by_name_and_floors() -> None:
    # LHCO-like: a mass with a rounding-negative minimum, a mass difference below 1 TeV,
    # a tau21 that is exactly zero once
    x = np.array([[-2e-8, 0.3, 0.0], [0.1, 0.5, 0.4], [0.2, 0.05, 0.7]])
    maps, floors = coordinate_maps(x, ("m_j1", "delta_mj", "tau21_j1"))
    assert maps == ["log", "log", "logit"]
    jac = coordinate_log_jacobian(x, maps, floors)
    assert np.isfinite(jac).all()
    # the floors bound what a zero can add: log(1/floor) for the mass, logit floor 1e-3
    assert jac[0] <= -np.log(floors[0]) - np.log(0.3) - np.log(1e-3) - np.log1p(-1e-3) + 1e-9


def test_null_chain_small_finds_no_excess() -> None:
    """No signal: the CWoLa selection must not sculpt a bump into the SR (a small version of
    the benchmark's null test)."""
    from physgen.anomaly.bumphunt import bump_hunt

    zs = []
    for seed in range(3):
        ev = toy_events(6000, 0, seed=10 + seed, correlation=0.0)
        res = cwola(ev, Regions(), folds=2, classifier=TINY, seed=seed)
        (hunt,) = bump_hunt(ev.mjj, res.scores, (0.2,), bins=25, skip_failed=True)
        assert hunt.fit is not None, hunt.error
        zs.append(hunt.significance)
    assert sum(z < 2 for z in zs) >= 2, zs


@pytest.mark.parametrize("method", ["idealized", "cathode"])
def test_no_sculpting_sr_and_sb_pass_alike(method: str) -> None:
    """On pure background an SR-trained classifier must select SR and SB events alike: the
    SR events (scored out of fold) and the SB events (no classifier saw them) are scored by
    the same kind of function."""
    ev = toy_events(12000, 0, seed=5)
    r = Regions()
    if method == "idealized":
        res = idealized(ev, toy_events(12000, 0, seed=6), r, folds=3, classifier=TINY)
    else:
        res = cathode(ev, r, folds=3, classifier=TINY, flow=FLOW, oversample=1)
    sr = r.in_sr(ev.mjj)
    cut = np.quantile(res.scores, 0.95)
    p_sr, p_sb = (res.scores[sr] >= cut).mean(), (res.scores[~sr] >= cut).mean()
    n_sr, n_sb = sr.sum(), (~sr).sum()
    sigma = np.sqrt(0.05 * 0.95 * (1 / n_sr + 1 / n_sb))
    assert abs(p_sr - p_sb) < 4 * sigma, (p_sr, p_sb, sigma)


def test_flow_density_depends_on_coordinates() -> None:
    ev = toy_events(3000, 100, seed=1)
    pos = type(ev)(ev.mjj, np.c_[np.exp(ev.features[:, 0]), 1 / (1 + np.exp(-ev.features[:, 1]))],
                   ev.labels, ("m_j1", "tau21_j1"))  # fmt: skip
    res = flow_density(pos, test=pos, flow=FLOW)
    assert res.info["maps"] == {"m_j1": "log", "tau21_j1": "logit"}
    assert res.test_scores is not None
    assert not np.allclose(res.test_scores, res.extra["test_other"])
    # the difference is exactly the log-Jacobian of the change of variables
    maps, floors = coordinate_maps(pos.features, pos.names)
    np.testing.assert_allclose(
        res.extra["test_other"] - res.test_scores,
        coordinate_log_jacobian(pos.features, maps, floors),
        rtol=1e-6,
        atol=1e-6,
    )
