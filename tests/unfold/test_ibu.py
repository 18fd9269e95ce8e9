"""Iterative Bayesian unfolding: exact bookkeeping on a hand-made sample, Gaussian closure."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from physgen.errors import ConfigError, DataFormatError
from physgen.unfold import data_from_truth, event_weights, ibu, make_data, make_mc, write_ibu
from physgen.unfold.ibu import default_edges
from physgen.unfold.metrics import default_bins

EDGES = np.array([0.0, 1.0, 2.0])


def hand_made():
    """Gen bin 0: 4 events, 3 seen (reco bins 0, 0, 1), 1 lost; gen bin 1: 2 events, both
    seen in reco bin 1; one fake in reco bin 1; one event beyond both ranges (overflow)."""
    gen = [0.5, 0.5, 0.5, 0.5, 1.5, 1.5, -99.0, 5.0]
    reco = [0.2, 0.7, 1.5, -99.0, 1.2, 1.8, 1.5, 7.0]
    pass_gen = [1, 1, 1, 1, 1, 1, 0, 1]
    pass_reco = [1, 1, 1, 0, 1, 1, 1, 1]
    return make_mc(gen, reco, pass_gen=pass_gen, pass_reco=pass_reco, columns=["x"])


def test_bookkeeping_is_exact():
    mc = hand_made()
    r = ibu(mc, data_from_truth(mc), "x", EDGES, iterations=1, bootstrap=0)
    # arrays with flow: [under, bin 0, bin 1, over]
    np.testing.assert_allclose(r.efficiency, [0, 3 / 4, 1, 1])
    np.testing.assert_allclose(r.fake_fraction, [0, 0, 1 / 4, 0])
    np.testing.assert_allclose(r.response[:, 1], [0, 2 / 4, 1 / 4, 0])
    np.testing.assert_allclose(r.response[:, 2], [0, 0, 1, 0])
    np.testing.assert_allclose(r.data, [0, 2, 4, 1])
    np.testing.assert_allclose(r.fakes, [0, 0, 1, 0])
    # data = the MC's own reco events: the prior is a fixed point, flow bin included
    np.testing.assert_allclose(r.final, [4, 2])
    np.testing.assert_allclose(r.unfolded_flow[-1], [0, 1])
    np.testing.assert_allclose(r.prior, [4, 2])


def test_one_iteration_by_hand():
    mc = hand_made()
    data = make_data([0.5, 0.5, 0.5, 1.5, 1.5, 1.5, 1.5, 1.5], columns=["x"])
    r = ibu(mc, data, "x", EDGES, iterations=2, bootstrap=0)
    s = 8 / 7  # data events / MC reco-passing events: the fakes' normalisation
    assert r.settings["normalisation"] == pytest.approx(s)
    np.testing.assert_allclose(r.fakes, [0, 0, s, 0])
    d0, d1 = 3.0, 5.0 - s  # after fake subtraction
    pi0, pi1, pi2 = 4 / 7, 2 / 7, 1 / 7  # prior: MC gen histogram (overflow included)
    fold0, fold1 = 0.5 * pi0, 0.25 * pi0 + pi1  # M @ prior in reco bins 0 and 1
    n0 = (1 / 0.75) * (0.5 * pi0 / fold0 * d0 + 0.25 * pi0 / fold1 * d1)
    n1 = pi1 / fold1 * d1
    np.testing.assert_allclose(r.unfolded[0], [n0, n1])
    np.testing.assert_allclose(r.unfolded_flow[0], [0.0, 0.0])  # no data in the overflow
    np.testing.assert_allclose(r.prior, [4 * s, 2 * s])
    assert pi2 > 0  # the overflow prior was there, but nothing folds into it


def test_gaussian_closure(gaussian):
    mc = gaussian(20_000, 0.0, 1.0, seed=1)
    truth = gaussian(20_000, 0.2, 0.8, seed=2)
    r = ibu(mc, data_from_truth(truth), "x", np.linspace(-3, 3, 31), iterations=4, bootstrap=10)
    centres = 0.5 * (r.edges[1:] + r.edges[:-1])

    def moments(counts):
        mu = np.average(centres, weights=counts)
        return mu, np.sqrt(np.average((centres - mu) ** 2, weights=counts))

    mu, sd = moments(r.final)
    boot = np.array([moments(b) for b in r.bootstrap])
    err_mu, err_sd = boot.std(axis=0, ddof=1)
    z = truth.gen[truth.pass_gen, 0]
    tol_mu, tol_sd = max(4 * err_mu, 0.02), max(4 * err_sd, 0.02)
    assert abs(mu - z.mean()) < tol_mu and abs(sd - z.std()) < tol_sd, (mu, sd, err_mu, err_sd)
    prior_mu, prior_sd = moments(r.prior)
    assert abs(prior_mu - z.mean()) > 5 * tol_mu and abs(prior_sd - z.std()) > 5 * tol_sd
    # the unfolded count estimates the number of truth events passing gen
    total = r.final.sum() + r.unfolded_flow[-1].sum()
    assert total == pytest.approx(truth.pass_gen.sum(), rel=0.03)
    assert r.std.shape == (30,) and (r.std > 0).all()
    # the MC reweighted bin by bin reproduces the unfolded histogram
    w = event_weights(r, mc)
    hist = np.histogram(mc.gen[mc.pass_gen, 0], r.edges, weights=w)[0]
    np.testing.assert_allclose(hist * r.settings["normalisation"], r.final, rtol=1e-9)
    assert event_weights(r, mc, r.bootstrap).shape == (10, int(mc.pass_gen.sum()))


def test_background_is_subtracted(gaussian):
    sig = gaussian(6000, 0.3, 0.8, seed=5, inefficiency=0.0, fakes=0.0)
    rng = np.random.default_rng(6)
    bkg_x = rng.uniform(-3, 3, 2000)
    data = make_data(np.concatenate([sig.reco[:, 0], bkg_x]), columns=["x"])
    bkg = make_mc(np.zeros(2000), bkg_x, columns=["x"], background=True)
    mc = gaussian(6000, 0.0, 1.0, seed=7, inefficiency=0.0, fakes=0.0)
    edges = np.linspace(-3, 3, 13)
    with_bkg = ibu(mc, data, "x", edges, 3, bkg, bootstrap=0)
    clean = ibu(mc, data_from_truth(sig), "x", edges, 3, bootstrap=0)
    np.testing.assert_allclose(with_bkg.background.sum(), 2000)
    np.testing.assert_allclose(with_bkg.final, clean.final, rtol=1e-9, atol=1e-9)


def test_bootstrap_is_seeded():
    mc = hand_made()
    data = data_from_truth(mc)
    a = ibu(mc, data, "x", EDGES, bootstrap=5, seed=3)
    b = ibu(mc, data, "x", EDGES, bootstrap=5, seed=3)
    c = ibu(mc, data, "x", EDGES, bootstrap=5, seed=4)
    np.testing.assert_array_equal(a.bootstrap, b.bootstrap)
    assert not np.array_equal(a.bootstrap, c.bootstrap)


def test_mc_bootstrap_rebuilds_the_response(gaussian):
    """A replica with ``bootstrap_mc`` is IBU of the fluctuated data with the response built
    from the fluctuated MC; MC statistics widen the band."""
    import dataclasses

    mc = gaussian(3000, 0.0, 1.0, seed=1)
    data = data_from_truth(gaussian(3000, 0.2, 0.8, seed=2))
    edges = np.linspace(-3, 3, 13)
    r = ibu(mc, data, "x", edges, bootstrap=30, bootstrap_mc=True, seed=7)
    assert r.settings["bootstrap_mc"] is True
    for b in (0, 29):
        k_data = np.random.default_rng(np.random.SeedSequence([7, 2, b])).poisson(
            1.0, data.n_events
        )
        k_mc = np.random.default_rng(np.random.SeedSequence([7, 3, b])).poisson(1.0, 3000)
        direct = ibu(
            dataclasses.replace(mc, weight=mc.weight * k_mc),
            dataclasses.replace(data, weight=data.weight * k_data),
            "x",
            edges,
            bootstrap=0,
        )
        np.testing.assert_allclose(r.bootstrap[b], direct.final, rtol=1e-12)
    plain = ibu(mc, data, "x", edges, bootstrap=30, seed=7)
    np.testing.assert_array_equal(plain.final, r.final)  # the nominal result is unchanged
    assert (r.std > plain.std).mean() > 0.8


def test_write_ibu(tmp_path: Path):
    mc = hand_made()
    r = ibu(mc, data_from_truth(mc), 0, 4, bootstrap=2)
    path = write_ibu(tmp_path / "ibu.h5", [r])
    with h5py.File(path) as f:
        assert list(f.attrs["columns"]) == ["x"]
        np.testing.assert_array_equal(f["x/unfolded"][()], r.unfolded)
        assert f["x/response"].shape == (6, 6)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"iterations": 0}, ConfigError, "iterations: expected an integer >= 1"),
        ({"bootstrap": -1}, ConfigError, "bootstrap: expected an integer >= 0"),
        ({"bins": [0.0, 0.0, 1.0]}, ConfigError, "strictly increasing"),
        ({"bins": 0}, ConfigError, "number of bins >= 1"),
        ({"column": "y"}, ConfigError, "'y'"),
    ],
)
def test_bad_options(kwargs, error, match):
    mc = hand_made()
    args = {"column": "x", "bins": EDGES, **kwargs}
    with pytest.raises(error, match=match):
        ibu(mc, data_from_truth(mc), **args)


def test_no_response():
    mc = make_mc(np.zeros(4), np.zeros(4), pass_gen=[1, 1, 0, 0], pass_reco=[0, 0, 1, 1])
    with pytest.raises(DataFormatError, match="no event passes both"):
        ibu(mc, make_data(np.zeros(3)), 0, EDGES)


def test_default_edges_of_a_multiplicity_are_integer_bins():
    """Whole-number observables get bins centred on the integers (the report's binning,
    :func:`physgen.unfold.metrics.default_bins`), never fractional edges."""
    rng = np.random.default_rng(7)
    mult = rng.poisson(12, 5000).astype(float)
    e = default_edges(mult, 30)
    assert np.allclose(e % 1, 0.5) and np.allclose(np.diff(e), 1.0)  # one integer per bin
    assert e[0] < np.quantile(mult, 0.001) and e[-1] > np.quantile(mult, 0.999)
    np.testing.assert_array_equal(e, default_bins(mult, n_bins=30, quantiles=(0.001, 0.999)))
    wide = default_edges(rng.poisson(300, 5000).astype(float), 10)
    step = np.diff(wide)
    assert np.allclose(wide % 1, 0.5) and step[0] == round(step[0]) > 1
    assert np.allclose(step, step[0]) and wide.size <= 12
    cont = default_edges(rng.normal(size=5000), 12)  # continuous: n equal bins
    assert cont.size == 13 and np.allclose(np.diff(cont), np.diff(cont)[0])
    assert default_edges(np.full(10, 2.5), 4).size == 5  # constant: a small range
    # ibu with a number of bins uses them, here on a multiplicity
    mc = make_mc(mult, mult, columns=["n"])
    r = ibu(mc, data_from_truth(mc), "n", 30, bootstrap=0)
    np.testing.assert_array_equal(r.edges, e)
    with pytest.raises(ConfigError, match="bins: expected a number of bins >= 1"):
        default_edges(mult, 0)
    with pytest.raises(DataFormatError, match="no values"):
        default_edges([], 3)
