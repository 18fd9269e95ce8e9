"""The CaloChallenge classifier test on small synthetic 1-photons samples."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from physgen.calo.evaluate.classifier import (
    ClassifierConfig,
    build_dnn,
    count_parameters,
    get_preset,
    high_level_inputs,
    input_dim,
    low_level_inputs,
    low_level_normed_inputs,
    run_classifier,
    split_sizes,
)
from physgen.calo.evaluate.multiclass import run_multiclass
from physgen.calo.geometry import Geometry, get_geometry
from physgen.errors import ConfigError, DataFormatError

GEO = get_geometry("1-photons")


def toy_showers(
    n: int, seed: int, geo: Geometry = GEO, n_hits: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    """Monte Carlo toy showers: gamma longitudinal profile, gamma radial profile, leakage."""
    rng = np.random.default_rng(seed)
    layers = geo.relevant_layers
    e = 10 ** rng.uniform(3.0, 5.0, size=(n, 1))
    frac = np.clip(rng.normal(0.95, 0.02 + 0.05 / np.sqrt(e[:, 0] / 1e3)), 0.5, 1.2)
    depth = (np.arange(len(layers)) + 0.5) * 1.2
    shape = np.clip(1.5 + 0.4 * np.log(e[:, 0] / 1e3) + rng.normal(0, 0.3, n), 1.05, None)
    logw = (shape[:, None] - 1) * np.log(depth) - depth
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    cdf = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)
    lay = np.minimum(
        (rng.random((n, n_hits))[..., None] > cdf[:, None, :]).sum(-1), len(layers) - 1
    )
    hw = rng.exponential(1.0, (n, n_hits))
    he = hw / hw.sum(axis=1, keepdims=True) * (frac * e[:, 0])[:, None]
    scale = np.array([lyr.r_edges[-1] / 12.0 for lyr in layers])[lay]
    r = scale * np.exp(rng.normal(0, 0.1, (n, 1))) * rng.gamma(1.5, 1.0, (n, n_hits))
    phi = rng.uniform(-math.pi, math.pi, (n, n_hits))
    x = r * np.cos(phi) + rng.normal(0, 3.0, (n, 1))
    y = r * np.sin(phi) + rng.normal(0, 3.0, (n, 1))
    r, alpha = np.hypot(x, y), np.arctan2(y, x)
    vox = np.full((n, n_hits), -1)
    for li, (lyr, sl) in enumerate(zip(layers, geo.layer_slices().values())):
        m = lay == li
        rb = np.searchsorted(np.asarray(lyr.r_edges), r[m], side="right") - 1
        ab = np.clip(
            ((alpha[m] + math.pi) / (2 * math.pi / lyr.n_alpha)).astype(int), 0, lyr.n_alpha - 1
        )
        vox[m] = np.where(rb < lyr.n_radial, sl.start + ab * lyr.n_radial + rb, -1)
    rows = np.broadcast_to(np.arange(n)[:, None], vox.shape)
    keep = vox >= 0
    out = np.bincount(
        rows[keep] * geo.n_voxels + vox[keep], weights=he[keep], minlength=n * geo.n_voxels
    )
    return e, out.reshape(n, geo.n_voxels)


def radial_shift(x: np.ndarray, geo: Geometry = GEO) -> np.ndarray:
    out = x.copy()
    for lyr in geo.relevant_layers:
        sl = geo.layer_slice(lyr.id)
        g = x[:, sl].reshape(len(x), lyr.n_alpha, lyr.n_radial)
        s = np.zeros_like(g)
        s[..., 1:] = g[..., :-1]
        s[..., -1] += g[..., -1]
        out[:, sl] = s.reshape(len(x), -1)
    return out


N = 2000


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """One intra-op thread: small networks gain nothing from more, and on a loaded
    machine oversubscribed OpenMP threads slow training down by an order of magnitude."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def samples() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    e1, x1 = toy_showers(N, seed=1)
    e2, x2 = toy_showers(N, seed=2)
    dropped = x2.copy()
    dropped[:, GEO.layer_slice(3)] = 0.0
    return {
        "reference": (e1, x1),
        "same": (e2, x2),
        "radial": (e2, radial_shift(x2)),
        "dropped": (e2, dropped),
    }


# ------------------------------------------------------------------ architecture


@pytest.mark.parametrize(
    ("n_inputs", "expected"),
    [(369, 9_152_513), (30, 8_458_241), (534, 9_490_433), (362, 9_138_177)],
)
def test_official_dnn_parameter_counts(n_inputs: int, expected: int) -> None:
    assert count_parameters(build_dnn(n_inputs, ClassifierConfig.official())) == expected


def test_official_input_dims() -> None:
    assert input_dim("cls-low", "1-photons") == 369
    assert input_dim("cls-high", "1-photons") == 30
    assert input_dim("cls-high", "1-pions") == 46
    assert input_dim("cls-low-normed", "1-photons") == 1 + 368 + 5
    assert input_dim("cls-low", "3") == 40_501


def test_resnet_parameter_count_and_shape() -> None:
    import torch

    from physgen.calo.evaluate.resnet import ResNet3DClassifier

    net = ResNet3DClassifier("2")
    assert count_parameters(net) == 2_516_644
    net.eval()
    with torch.no_grad():
        out = net(torch.randn(3, 1 + 6480))
    assert out.shape == (3, 1)
    with pytest.raises(ConfigError, match="regular"):
        ResNet3DClassifier("1-photons")


def test_presets() -> None:
    off = get_preset("official")
    assert (off.hidden, off.n_hidden_layers, off.lr, off.batch_size, off.max_epochs) == (
        2048,
        2,
        2e-4,
        1000,
        50,
    )
    assert off.select_on == "accuracy" and off.patience is None and off.dropout == 0.0
    assert get_preset("fast") == ClassifierConfig()
    with pytest.raises(ConfigError, match="preset"):
        get_preset("slow")
    with pytest.raises(ConfigError, match="lr"):
        ClassifierConfig(lr=-1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        off.lr = 1.0  # type: ignore[misc]


def test_patience_shrinks_only_for_long_epochs() -> None:
    from physgen.metrics.classifier import epoch_patience as _patience

    fast, official = ClassifierConfig(), ClassifierConfig.official()
    # up to 40,000 training showers (patience_samples / patience) the patience stays 15 ...
    assert [_patience(fast, n) for n in (1_200, 3_600, 18_000, 40_000)] == [15] * 4
    # ... above, it is 600,000 training showers in whole epochs, at least 2
    assert _patience(fast, 120_000) == 5  # geometry 2/3: 60k train per class
    assert _patience(fast, 160_000) == 4  # 1-photons: 80k train per class
    assert _patience(fast, 10**7) == 2
    assert _patience(dataclasses.replace(fast, patience_samples=None), 120_000) == 15
    assert _patience(dataclasses.replace(fast, patience=None), 1_200) == 500
    assert _patience(official, 120_000) is None  # official: all 50 epochs
    with pytest.raises(ConfigError, match="patience_samples"):
        ClassifierConfig(patience_samples=0)


def test_split_sizes() -> None:
    assert split_sizes(121_000, "1-photons") == ((80_000, 20_000, 21_000), "official")
    assert split_sizes(120_800, "1-pions") == ((80_000, 20_000, 20_800), "official")
    assert split_sizes(100_000, "3") == ((60_000, 20_000, 20_000), "official")
    assert split_sizes(1000, "2") == ((600, 200, 200), "fractional")
    assert split_sizes(121_000, "1-photons", official=False)[1] == "fractional"
    with pytest.raises(ConfigError, match="too few"):
        split_sizes(49, "2")


# ------------------------------------------------------------------ inputs


def test_input_builders() -> None:
    e, x = toy_showers(20, seed=5)
    x[0, 0] = 0.5  # below the 1 MeV threshold
    low = low_level_inputs(e, x, GEO)
    assert low.shape == (20, 369) and low.dtype == np.float32
    np.testing.assert_allclose(low[:, 0], np.log10(e[:, 0]), rtol=1e-6)
    assert low[0, 1] == 0.0
    thr = np.where(x < 1.0, 0.0, x)
    np.testing.assert_allclose(low[:, 1:], thr / e, rtol=1e-6, atol=1e-12)
    normed = low_level_normed_inputs(e, x, GEO)
    assert normed.shape == (20, 1 + 368 + 5)
    el = GEO.layer_energies(thr)
    for i, sl in enumerate(GEO.layer_slices().values()):
        s = normed[:, 1:][:, sl].sum(axis=1)
        np.testing.assert_allclose(s[el[:, i] > 0], 1.0, rtol=1e-5)
    np.testing.assert_allclose(normed[:, -5:], np.log10(el + 1e-8), rtol=1e-6)
    high = high_level_inputs(e, x, GEO)
    assert high.shape == (20, 30)
    np.testing.assert_allclose(high[:, 0], np.log10(e[:, 0]), rtol=1e-6)


# ------------------------------------------------------------------ training


@pytest.fixture(scope="module")
def null_pair() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    return toy_showers(5000, seed=11), toy_showers(5000, seed=12)


def test_null_high_level_auc_and_jsd(null_pair: tuple) -> None:
    """Fast preset, cls-high, 5000 showers per class (3000/1000/1000 split): two
    independent samples of one distribution give AUC 0.5 +- 0.05 (statistical sigma
    about 0.013) and calibrated JSD ~ 0."""
    ref, gen = null_pair
    res = run_classifier(ref, gen, GEO, "cls-high", seed=0)
    assert abs(res.auc - 0.5) < 0.05
    assert abs(res.jsd) < 0.05
    assert abs(res.jsd_uncalibrated) < 0.02
    assert res.split == (3000, 1000, 1000) and res.split_kind == "fractional"


def test_distorted_auc(samples: dict) -> None:
    """Fast preset, 2000 showers per class (1200/400/400 split): radial shift by one
    bin (cls-low) and layer 3 dropped (cls-high) give AUC > 0.9 (measured 0.999 and
    0.99) and JSD > 0.5, far above the null AUC 0.5."""
    radial = run_classifier(samples["reference"], samples["radial"], GEO, "cls-low", seed=0)
    dropped = run_classifier(samples["reference"], samples["dropped"], GEO, "cls-high", seed=0)
    for res in (radial, dropped):
        assert res.auc > 0.9
        assert 0.5 < res.jsd <= 1.0
    assert radial.split == (1200, 400, 400)
    assert dropped.n_parameters == count_parameters(build_dnn(30, ClassifierConfig()))


def test_null_low_level(samples: dict) -> None:
    """Same distribution, cls-low, 2000 per class: AUC 0.5 +- 0.05 (sigma about 0.02;
    measured 0.47). The calibrated JSD is biased low at this size (isotonic regression
    fitted on only 800 test showers, outputs clipped to [1e-6, 1 - 1e-6] as in the
    official code; measured -0.10), so only a loose bound is asserted."""
    null = run_classifier(samples["reference"], samples["same"], GEO, "cls-low", seed=0)
    assert abs(null.auc - 0.5) < 0.05
    assert abs(null.auc_uncalibrated - 0.5) < 0.05
    assert -0.2 < null.jsd < 0.05


def test_deterministic_under_seed(samples: dict) -> None:
    cfg = dataclasses.replace(ClassifierConfig(), max_epochs=3)
    a = run_classifier(samples["reference"], samples["radial"], GEO, "cls-low-normed", cfg, seed=3)
    b = run_classifier(samples["reference"], samples["radial"], GEO, "cls-low-normed", cfg, seed=3)
    assert a.repeats == b.repeats or [
        dataclasses.replace(r, train_time_s=0.0) for r in a.repeats
    ] == [dataclasses.replace(r, train_time_s=0.0) for r in b.repeats]
    c = run_classifier(samples["reference"], samples["radial"], GEO, "cls-low-normed", cfg, seed=4)
    assert c.repeats[0].auc_uncalibrated != a.repeats[0].auc_uncalibrated


def test_repeats_and_streaming_match(samples: dict) -> None:
    cfg = dataclasses.replace(ClassifierConfig(), max_epochs=2)
    ref, gen = samples["reference"], samples["dropped"]
    res = run_classifier(ref, gen, GEO, "cls-low", cfg, seed=10, repeats=2)
    assert [r.seed for r in res.repeats] == [10, 11]
    assert res.auc_std >= 0.0 and len(res.epochs_run) == 2
    d = res.to_dict()
    assert d["n_repeats"] == 2 and d["preset"] == "fast" and "auc_std" in d
    # inputs in a disk cache, or rebuilt per batch (no stored matrix), give the same numbers
    aucs = [r.auc_uncalibrated for r in res.repeats]
    disk = dataclasses.replace(cfg, max_input_gb=0.0)
    res2 = run_classifier(ref, gen, GEO, "cls-low", disk, seed=10, repeats=2)
    assert [r.auc_uncalibrated for r in res2.repeats] == aucs
    stream = dataclasses.replace(cfg, max_input_gb=0.0, max_disk_cache_gb=0.0)
    res3 = run_classifier(ref, gen, GEO, "cls-low", stream, seed=10, repeats=2)
    assert [r.auc_uncalibrated for r in res3.repeats] == aucs


def test_file_inputs(samples: dict, tmp_path) -> None:
    from physgen.calo.io import write_showers

    ref, gen = samples["reference"], samples["radial"]
    p1, p2 = tmp_path / "ref.h5", tmp_path / "gen.h5"
    write_showers(p1, ref[0], ref[1].astype(np.float32))
    write_showers(p2, gen[0], gen[1].astype(np.float32))
    cfg = dataclasses.replace(ClassifierConfig(), max_epochs=2)
    from_files = run_classifier(p1, p2, GEO, "cls-low", cfg, seed=0)
    streamed = run_classifier(
        p1,
        p2,
        GEO,
        "cls-low",
        dataclasses.replace(cfg, max_input_gb=0.0, max_disk_cache_gb=0.0),
        seed=0,
    )
    cache = tmp_path / "cache"
    cache.mkdir()
    cached = run_classifier(
        p1, p2, GEO, "cls-low", dataclasses.replace(cfg, max_input_gb=0.0), cache_dir=cache
    )
    assert list(cache.iterdir()) == []  # the disk cache is gone
    arrays = run_classifier(
        (ref[0], ref[1].astype(np.float32)),
        (gen[0], gen[1].astype(np.float32)),
        GEO,
        "cls-low",
        cfg,
        seed=0,
    )
    assert from_files.repeats[0].auc_uncalibrated == arrays.repeats[0].auc_uncalibrated
    assert streamed.repeats[0].auc_uncalibrated == arrays.repeats[0].auc_uncalibrated
    assert cached.repeats[0].auc_uncalibrated == arrays.repeats[0].auc_uncalibrated


def test_errors(samples: dict) -> None:
    ref, gen = samples["reference"], samples["same"]
    with pytest.raises(ConfigError, match=r"2000 showers but generated has 1999"):
        run_classifier(ref, (gen[0][:-1], gen[1][:-1]), GEO, "cls-low")
    with pytest.raises(ConfigError, match="too few"):
        run_classifier((ref[0][:40], ref[1][:40]), (gen[0][:40], gen[1][:40]), GEO)
    with pytest.raises(ConfigError, match="mode"):
        run_classifier(ref, gen, GEO, "cls-nope")
    with pytest.raises(ConfigError, match="regular"):
        run_classifier(ref, gen, GEO, "cls-resnet")
    with pytest.raises(ConfigError, match="repeats"):
        run_classifier(ref, gen, GEO, repeats=0)
    with pytest.raises(DataFormatError, match="generated sample: showers must have shape"):
        run_classifier(ref, (gen[0], gen[1][:, :10]), GEO)
    bad = gen[1].copy()
    bad[5, 7] = np.nan
    with pytest.raises(DataFormatError, match="generated sample: showers contain NaN"):
        run_classifier(ref, (gen[0], bad), GEO)
    with pytest.raises(DataFormatError, match="incident energies"):
        run_classifier(ref, (np.zeros_like(gen[0]), gen[1]), GEO)


def test_multiclass_ranks_samples(samples: dict) -> None:
    res = run_multiclass(
        samples["reference"],
        {"good": samples["same"], "shifted": samples["radial"], "dropped": samples["dropped"]},
        GEO,
        "cls-high",
        seed=0,
    )
    assert res.names == ("reference", "good", "shifted", "dropped")
    lp = res.log_posterior
    # the indistinguishable sample shares the reference posterior (about ln 1/2;
    # measured -0.81), the distorted ones get almost none (measured about -19)
    assert lp["good"] > lp["shifted"] + 1.0 and lp["good"] > lp["dropped"] + 1.0
    assert lp["good"] > math.log(0.5) - 0.35
    assert abs(res.reference_log_posterior - lp["good"]) < 0.3
    assert sum(map(sum, res.confusion)) == 4 * 400
    with pytest.raises(ConfigError, match="reference"):
        run_multiclass(samples["reference"], {"reference": samples["same"]}, GEO)


def test_resnet_mode_trains_on_dataset_2() -> None:
    """cls-resnet end to end on a tiny dataset-2 sample (one epoch: a smoke test of the
    reshaping, the energy branch and batch norm, not of sensitivity)."""
    geo = get_geometry("2")
    r = np.random.default_rng(0)
    n = 60
    e = 10 ** r.uniform(3, 6, size=(n, 1))
    x = r.exponential(1.0, size=(n, geo.n_voxels)) * (r.random((n, geo.n_voxels)) < 0.1)
    cfg = dataclasses.replace(ClassifierConfig(), max_epochs=1, batch_size=16)
    res = run_classifier((e, x), (e, 2 * x), geo, "cls-resnet", cfg, seed=0)
    assert res.n_parameters == 2_516_644
    assert 0.0 <= res.auc <= 1.0 and res.epochs_run == [1]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["cls-high", "cls-low"])
def test_null_auc_within_002_large_samples(mode: str) -> None:
    """Issue contract: an independent sample of the same distribution gives AUC 0.5 +- 0.02.

    20,000 showers per class (validation split 4,000 per class: sigma(AUC) ~ 0.006).
    """
    from showerdata import toy_showers

    ref = toy_showers(20_000, "1-photons", seed=101)
    gen = toy_showers(20_000, "1-photons", seed=202)
    res = run_classifier(ref, gen, "1-photons", mode=mode, config="fast", seed=0)
    assert abs(res.auc - 0.5) <= 0.02, res.auc
    assert abs(res.jsd) <= 0.02, res.jsd
