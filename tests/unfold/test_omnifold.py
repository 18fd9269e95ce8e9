"""OmniFold: exact bookkeeping with an oracle classifier, Gaussian closure, determinism.

With discrete observables and an "oracle" in place of the neural classifier (the exact ratio
of the two weighted histograms, normalised like the project's class-balanced classifier),
OmniFold is binned and its weights follow in closed form: without inefficiencies and fakes
it is exactly IBU (Andreassen et al., arXiv:1911.09107: OmniFold generalises IBU), and with
them it follows the package's bookkeeping (reco-failing events keep their push weight in
step 1, gen-failing events get push weight 1).
"""

from __future__ import annotations

import dataclasses
import importlib
from pathlib import Path

import numpy as np
import pytest

from physgen.errors import ConfigError, DataFormatError
from physgen.unfold import (
    data_from_truth,
    ibu,
    make_data,
    make_mc,
    omnifold,
    read_weights,
)
from physgen.unfold.omnifold import PRESETS

# the package re-exports the function omnifold under the module's name: fetch the module
omnifold_module = importlib.import_module("physgen.unfold.omnifold")
TINY = dataclasses.replace(PRESETS["small"], hidden=16, max_epochs=3, batch_size=500)
SMALL = dataclasses.replace(PRESETS["small"], max_epochs=30)


class HistogramRatio:
    """The exact classifier on discrete 1-D values: ``(h1 / W1) / (h0 / W0)`` per value."""

    def __init__(self, x0, x1, w0, w1):
        self.table = {}
        for v in np.unique(np.concatenate([x0[:, 0], x1[:, 0]])):
            h0 = w0[x0[:, 0] == v].sum() / w0.sum()
            h1 = w1[x1[:, 0] == v].sum() / w1.sum()
            self.table[v] = h1 / h0

    def __call__(self, x):
        return np.array([self.table[v] for v in np.asarray(x)[:, 0]])


@pytest.fixture()
def oracle(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    calls: list[dict] = []

    def fit(x0, x1, *, w0=None, w1=None, **kwargs):
        calls.append({"w1_negative": bool((np.asarray(w1) < 0).any()), **kwargs})
        return HistogramRatio(np.asarray(x0), np.asarray(x1), np.asarray(w0), np.asarray(w1))

    monkeypatch.setattr(omnifold_module, "fit_likelihood_ratio", fit)
    return calls


def discrete(n, probs, seed, inefficiency=0.0, fakes=0.0):
    """Gen values 0..3, reco = gen moved by -1/0/+1 (clipped), optional acceptance effects."""
    rng = np.random.default_rng(seed)
    gen = rng.choice(4, size=n, p=probs).astype(float)
    reco = np.clip(gen + rng.choice([-1, 0, 1], size=n, p=[0.2, 0.6, 0.2]), 0, 3)
    pass_reco = rng.random(n) >= inefficiency
    pass_gen = rng.random(n) >= fakes
    pass_reco |= ~pass_gen
    reco[~pass_gen] = rng.choice(4, size=int((~pass_gen).sum()))
    gen[~pass_gen] = -10.0
    reco[~pass_reco] = -10.0
    w = rng.uniform(0.5, 1.5, n)
    return make_mc(gen, reco, pass_gen=pass_gen, pass_reco=pass_reco, weight=w, columns=["x"])


MC_P, DATA_P = [0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4]


def test_with_an_exact_classifier_omnifold_is_ibu(oracle):
    mc = discrete(4000, MC_P, seed=1)
    truth = discrete(3000, DATA_P, seed=2)
    data = data_from_truth(truth)
    res = omnifold(mc, data, iterations=3, seed=0)
    assert len(oracle) == 6 and not any(c["w1_negative"] for c in oracle)
    r = ibu(mc, data, "x", np.arange(-0.5, 4.0), iterations=3, bootstrap=0)
    z = mc.gen[:, 0]
    for it in range(1, 4):
        counts = np.bincount(z.astype(int), weights=res.push[it] * mc.weight, minlength=4)
        np.testing.assert_allclose(counts / res.data_scale, r.unfolded[it - 1], rtol=1e-9)
    # after step 1 the simulation carries the MC's reco total (data scaled to it)
    for it in range(3):
        assert (res.pull[it] * mc.weight).sum() == pytest.approx(mc.weight.sum(), rel=1e-12)


def test_learnt_efficiency_makes_omnifold_ibu_under_inefficiency(oracle):
    """With events failing reco, ``efficiency="learn"`` gives them their gen neighbours'
    average update, so (with an exact classifier) every iteration is IBU's, efficiency
    correction included; the package's ``"keep"`` applies only the efficiency-weighted
    share of each update and lags behind."""
    mc = discrete(4000, MC_P, seed=5, inefficiency=0.3)
    data = data_from_truth(discrete(3000, DATA_P, seed=6, inefficiency=0.3))
    r = ibu(mc, data, "x", np.arange(-0.5, 4.0), iterations=3, bootstrap=0)
    z, g = mc.gen[:, 0], mc.pass_gen
    learn = omnifold(mc, data, iterations=3, efficiency="learn")
    keep = omnifold(mc, data, iterations=3)
    assert learn.settings["efficiency"] == "learn" and len(oracle) == 3 * 3 + 3 * 2
    for it in range(1, 4):
        w = learn.push[it][g] * mc.weight[g]
        counts = np.bincount(z[g].astype(int), weights=w, minlength=4)
        np.testing.assert_allclose(counts / learn.data_scale, r.unfolded[it - 1], rtol=1e-9)
    w = keep.push[1][g] * mc.weight[g]
    lag = np.bincount(z[g].astype(int), weights=w, minlength=4) / keep.data_scale
    assert np.abs(lag - r.unfolded[0]).max() > 0.01 * r.unfolded[0].max()
    with pytest.raises(ConfigError, match="efficiency: expected 'keep' or 'learn'"):
        omnifold(mc, data, efficiency="guess")


def binned_omnifold(mc, x_data, w_data, iterations):
    """OmniFold written out on histograms: the closed form of the oracle's weights."""
    z, x, w = mc.gen[:, 0].astype(int), mc.reco[:, 0].astype(int), mc.weight
    g, r = mc.pass_gen, mc.pass_reco
    h1 = np.bincount(x_data.astype(int), weights=w_data, minlength=4)
    s = w[r].sum() / w_data.sum()
    nu = np.ones(len(z))
    pushes = [nu]
    pulls = []
    for _ in range(iterations):
        h0 = np.bincount(x[r], weights=(nu * w)[r], minlength=4)
        omega = nu.copy()
        omega[r] = nu[r] * s * h1[x[r]] / h0[x[r]]
        num = np.bincount(z[g], weights=(omega * w)[g], minlength=4)
        den = np.bincount(z[g], weights=w[g], minlength=4)
        nu = np.ones(len(z))
        nu[g] = (num / den)[z[g]]
        pulls.append(omega)
        pushes.append(nu)
    return np.array(pushes), np.array(pulls), s


def test_acceptance_bookkeeping_in_closed_form(oracle):
    mc = discrete(4000, MC_P, seed=3, inefficiency=0.2, fakes=0.15)
    data = data_from_truth(discrete(2500, DATA_P, seed=4, inefficiency=0.2, fakes=0.15))
    res = omnifold(mc, data, iterations=3, seed=0)
    push, pull, s = binned_omnifold(mc, data.reco[:, 0], data.weight, 3)
    assert res.data_scale == pytest.approx(s)
    np.testing.assert_allclose(res.push, push, rtol=1e-9)
    np.testing.assert_allclose(res.pull, pull, rtol=1e-9)
    assert (res.push[:, ~mc.pass_gen] == 1).all()  # gen-failing events: push weight 1
    for it in range(3):  # reco-failing events: the pull weight is the previous push weight
        np.testing.assert_array_equal(res.pull[it, ~mc.pass_reco], res.push[it, ~mc.pass_reco])


def test_background_enters_with_negative_weights(oracle):
    mc = discrete(4000, MC_P, seed=5)
    signal = data_from_truth(discrete(3000, DATA_P, seed=6))
    rng = np.random.default_rng(7)
    bkg_x = rng.choice(4, size=800, p=[0.1, 0.1, 0.2, 0.6]).astype(float)
    data = make_data(
        np.concatenate([signal.reco[:, 0], bkg_x]),
        weight=np.concatenate([signal.weight, np.ones(800)]),
        columns=["x"],
    )
    bkg = make_mc(np.zeros(800), bkg_x, columns=["x"], background=True)
    with_bkg = omnifold(mc, data, iterations=2, background=bkg)
    assert oracle[0]["w1_negative"] and oracle[0]["allow_negative"]
    assert not oracle[1]["allow_negative"]  # step 2 has no background
    clean = omnifold(mc, signal, iterations=2)
    np.testing.assert_allclose(with_bkg.push, clean.push, rtol=1e-9)
    assert with_bkg.data_scale == pytest.approx(clean.data_scale)


def test_gaussian_closure(gaussian):
    mc = gaussian(20_000, 0.0, 1.0, seed=1)
    truth = gaussian(20_000, 0.2, 0.8, seed=2)
    # with 10 % fakes and the package's acceptance convention OmniFold converges more
    # slowly than IBU (fakes dilute step 1, reco-failing events keep their push weight):
    # after 4 iterations the width is typically within 0.02-0.04 of the truth
    res = omnifold(mc, data_from_truth(truth), iterations=4, classifier=SMALL, threads=1)
    z, w = res.unfolded(mc)
    mu = np.average(z[:, 0], weights=w)
    sd = np.sqrt(np.average((z[:, 0] - mu) ** 2, weights=w))
    t = truth.gen[truth.pass_gen, 0]
    assert abs(mu - t.mean()) < 0.05 and abs(sd - t.std()) < 0.05, (mu, sd)
    p = mc.gen[mc.pass_gen, 0]
    assert abs(p.mean() - t.mean()) > 0.15 and abs(p.std() - t.std()) > 0.15  # the prior is off
    assert res.push.shape == (5, 20_000) and res.pull.shape == (4, 20_000)
    assert (res.push[:, ~mc.pass_gen] == 1).all()
    for it in range(4):
        np.testing.assert_array_equal(res.pull[it, ~mc.pass_reco], res.push[it, ~mc.pass_reco])
    sim = mc.pass_reco  # step 1 normalises the simulation to the MC's own total
    assert (res.pull[-1] * mc.weight)[sim].sum() == pytest.approx(mc.weight[sim].sum(), rel=0.03)


def test_data_like_the_mc_give_weights_near_one(gaussian):
    mc = gaussian(10_000, 0.0, 1.0, seed=1)
    res = omnifold(mc, data_from_truth(mc), iterations=1, classifier=SMALL, threads=1)
    nu = res.push[-1][mc.pass_gen]
    assert res.data_scale == 1.0
    assert abs(nu.mean() - 1.0) < 0.02 and nu.std() < 0.1, (nu.mean(), nu.std())
    omega = res.pull[-1][mc.pass_reco]
    assert abs(omega.mean() - 1.0) < 0.02 and omega.std() < 0.1


def test_same_seed_same_weights(gaussian, tmp_path: Path):
    mc = gaussian(1500, 0.0, 1.0, seed=1)
    data = data_from_truth(gaussian(1000, 0.2, 0.8, seed=2))
    kw = {"iterations": 1, "bootstrap": 2, "classifier": TINY, "threads": 1}
    a = omnifold(mc, data, seed=3, out=tmp_path, **kw)
    b = omnifold(mc, data, seed=3, **kw)
    c = omnifold(mc, data, seed=4, **kw)
    assert a.bootstrap.shape == (2, 1500)
    for name in ("push", "pull", "bootstrap"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.bootstrap, c.bootstrap)
    assert not np.array_equal(a.bootstrap[0], a.bootstrap[1])
    assert not np.array_equal(a.bootstrap[0], a.push[-1])
    back = read_weights(tmp_path / "weights.h5")
    assert a.path == tmp_path / "weights.h5" and back.columns == ("x",)
    np.testing.assert_array_equal(back.bootstrap, a.bootstrap)
    assert back.settings["bootstrap"] == 2 and back.settings["classifier"]["hidden"] == 16
    assert a.bootstrap_weights(mc).shape == (2, int(mc.pass_gen.sum()))


def test_mc_bootstrap_replicas_unfold_the_fluctuated_mc(oracle, monkeypatch):
    """With ``bootstrap_mc`` a replica is the unfolding of Poisson-fluctuated data *and* MC:
    its stored weights carry the MC's Poisson factors and equal a direct unfolding of the
    fluctuated samples with the nominal data scale (exact with the oracle classifier)."""
    mc = discrete(800, MC_P, seed=1, inefficiency=0.1, fakes=0.1)
    data = data_from_truth(discrete(800, DATA_P, seed=2))
    r = omnifold(mc, data, iterations=2, bootstrap=3, bootstrap_mc=True, seed=5)
    assert r.settings["bootstrap_mc"] is True
    g = mc.pass_gen
    for b in range(3):
        k_data = np.random.default_rng(np.random.SeedSequence([5, 1, b])).poisson(1.0, 800)
        k_mc = np.random.default_rng(np.random.SeedSequence([5, 2, b])).poisson(1.0, 800)
        mc_b = dataclasses.replace(mc, weight=mc.weight * k_mc)
        data_b = dataclasses.replace(data, weight=data.weight * k_data)
        with monkeypatch.context() as m:  # replicas keep the nominal data scale
            m.setattr(omnifold_module, "data_scale", lambda *a: r.data_scale)
            direct = omnifold(mc_b, data_b, iterations=2).push[-1] * mc_b.weight
        replica = r.bootstrap_weights(mc)[b]
        np.testing.assert_array_equal(replica == 0, (k_mc == 0)[g])
        np.testing.assert_allclose(replica, direct[g], rtol=1e-12)
    plain = omnifold(mc, data, iterations=2, bootstrap=3, seed=5)
    assert not (plain.bootstrap == 0).any()  # data-only replicas keep every MC event


def test_warm_start_hands_each_classifier_its_predecessor(monkeypatch):
    """``warm_start``: the classifier of (step, member) in iteration n starts from the one of
    iteration n - 1; iteration 1 and the cold default start fresh."""
    made: list[tuple[object, object]] = []

    def fit(x0, x1, *, w0=None, w1=None, init=None, **kwargs):
        ratio = HistogramRatio(np.asarray(x0), np.asarray(x1), np.asarray(w0), np.asarray(w1))
        made.append((init, ratio))
        return ratio

    monkeypatch.setattr(omnifold_module, "fit_likelihood_ratio", fit)
    mc = discrete(500, MC_P, seed=1)
    data = data_from_truth(discrete(500, DATA_P, seed=2))
    r = omnifold(mc, data, iterations=3, ensemble=2, warm_start=True)
    assert r.settings["warm_start"] is True
    # calls per iteration: step 1 members 0, 1, then step 2 members 0, 1
    assert all(init is None for init, _ in made[:4])
    for i in range(4, 12):
        assert made[i][0] is made[i - 4][1]
    made.clear()
    omnifold(mc, data, iterations=2)
    assert all(init is None for init, _ in made)


def test_ensemble_members_get_their_own_seeds(oracle):
    mc = discrete(500, MC_P, seed=1)
    omnifold(mc, data_from_truth(discrete(500, DATA_P, seed=2)), iterations=2, ensemble=3)
    seeds = [c["seed"] for c in oracle]
    assert len(seeds) == 12 and len(set(seeds)) == 12


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"iterations": 0}, ConfigError, "iterations: expected an integer >= 1"),
        ({"ensemble": 0}, ConfigError, "ensemble: expected an integer >= 1"),
        ({"bootstrap": -1}, ConfigError, "bootstrap: expected an integer >= 0"),
        ({"seed": -1}, ConfigError, "seed"),
        ({"classifier": "huge"}, ConfigError, "unknown classifier preset 'huge'"),
    ],
)
def test_bad_options(kwargs, error, match):
    mc = discrete(100, MC_P, seed=1)
    with pytest.raises(error, match=match):
        omnifold(mc, data_from_truth(mc), **kwargs)


def test_bad_inputs():
    mc = discrete(100, MC_P, seed=1)
    with pytest.raises(DataFormatError, match="data: 15 events are; OmniFold needs at least 20"):
        omnifold(mc, make_data(np.zeros(15), columns=["x"]))
    with pytest.raises(DataFormatError, match="data: columns y differ from mc's x"):
        omnifold(mc, make_data(np.zeros(50), columns=["y"]))
    few = discrete(30, MC_P, seed=1, inefficiency=0.7)
    with pytest.raises(DataFormatError, match="events pass reco; OmniFold needs at least 20"):
        omnifold(few, data_from_truth(mc))
    bkg = make_mc(np.zeros(200), np.zeros(200), columns=["x"], background=True)
    with pytest.raises(DataFormatError, match="nothing is left to unfold"):
        omnifold(mc, data_from_truth(mc), background=bkg)
