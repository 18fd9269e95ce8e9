"""LHCO-like dijets (:mod:`physgen.events.dijet`): features, selection, physics sanity on
small samples, seeded determinism across workers, the cache, files and bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from clitools import Run
from physgen.errors import ConfigError, DataFormatError
from physgen.events import (
    DIJET_FEATURES,
    LHCO_COLUMNS,
    DijetSample,
    Particles,
    dijet_cache_path,
    generate_dijets,
    lhco_features,
    read_dijets,
    write_dijets,
)


def _needs_events() -> None:
    for module in ("pythia8mc", "fastjet", "awkward"):
        pytest.importorskip(module)


@pytest.fixture(scope="module")
def qcd() -> DijetSample:
    _needs_events()
    return generate_dijets("qcd-dijet", n=40, seed=7, cache=False, progress=False)


@pytest.fixture(scope="module")
def wprime() -> DijetSample:
    _needs_events()
    return generate_dijets("wprime", n=50, seed=7, cache=False, progress=False)


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("PHYSGEN_CACHE", str(root))
    return root


def _jet(mass: float, pt: float, y: float, phi: float) -> np.ndarray:
    mt = math.hypot(mass, pt)
    return np.array([pt * math.cos(phi), pt * math.sin(phi), mt * math.sinh(y), mt * math.cosh(y)])


# ------------------------------------------------------------------ features, no Pythia


def test_lhco_features_order_units_and_mjj() -> None:
    a = _jet(500.0, 1500.0, 0.3, 0.0)  # leading in pT, heavier
    b = _jet(100.0, 1400.0, -0.5, math.pi)
    taus = np.array([[0.2, 0.7]])
    out = lhco_features(np.stack([a, b])[None], taus)
    total = a + b
    mjj = math.sqrt(total[3] ** 2 - total[0] ** 2 - total[1] ** 2 - total[2] ** 2)
    assert out.shape == (1, 5) and out.dtype == np.float64
    np.testing.assert_allclose(out[0], [mjj / 1000, 0.1, 0.4, 0.7, 0.2], rtol=1e-12)
    # the order of the two jets does not matter: j1 is the lighter one
    swapped = lhco_features(np.stack([b, a])[None], taus[:, ::-1])
    np.testing.assert_allclose(swapped, out, rtol=1e-12)


@pytest.mark.parametrize(
    ("p4", "taus", "match"),
    [
        (np.zeros((3, 3, 4)), np.zeros((3, 2)), "expected jet four-momenta"),
        (np.zeros((3, 2, 4)), np.zeros((2, 2)), "expected jet four-momenta"),
        (np.full((1, 2, 4), np.nan), np.zeros((1, 2)), "NaN or inf"),
    ],
)
def test_lhco_features_bad_input(p4: np.ndarray, taus: np.ndarray, match: str) -> None:
    with pytest.raises(DataFormatError, match=match):
        lhco_features(p4, taus)


def test_hardest_jets_in_pt_order_and_leading_jets_agree() -> None:
    pytest.importorskip("fastjet")
    from physgen.events.jets import hardest_jets, leading_jets

    rng = np.random.default_rng(3)

    def blob(y: float, phi: float, pt: float) -> list[tuple[float, float, float]]:
        shares = rng.dirichlet(np.ones(8))
        return [(pt * s, y + rng.normal(0, 0.05), phi + rng.normal(0, 0.05)) for s in shares]

    events = [
        blob(0.0, 0.0, 300.0) + blob(1.0, 3.0, 900.0) + blob(-1.0, -1.5, 600.0),
        blob(0.5, 1.0, 400.0),
        [],
        blob(3.0, 0.0, 800.0) + blob(-0.2, 2.0, 200.0),  # the harder jet is outside |y| < 2.5
    ]
    flat = [p for ev in events for p in ev]
    particles = Particles(
        pt=np.array([p[0] for p in flat]),
        eta=np.array([p[1] for p in flat]),
        phi=np.array([p[2] for p in flat]),
        mass=np.zeros(len(flat)),
        pid=np.full(len(flat), 211, dtype=np.int64),
        charge=np.ones(len(flat)),
        counts=np.array([len(ev) for ev in events], dtype=np.int64),
    )
    jets = hardest_jets(particles, 2, radius=1.0, pt_min=50.0)
    assert jets.count.tolist() == [2, 1, 0, 1]
    np.testing.assert_allclose(jets.pt[0], [900.0, 600.0], rtol=0.02)
    assert jets.pt[1, 1] == 0.0 and jets.pt[3, 0] == pytest.approx(200.0, rel=0.02)
    assert [len(c) for c in jets.constituents] == [2, 1, 0, 1]
    assert all(c.size == 8 for ev in jets.constituents for c in ev)
    assert (jets.mass >= 0).all() and jets.mass[0, 0] > 0
    lead = leading_jets(particles, radius=1.0, pt_min=50.0)
    assert lead.found.tolist() == [True, True, False, True]
    np.testing.assert_array_equal(lead.pt, jets.pt[:, 0])
    np.testing.assert_array_equal(lead.constituents[0], jets.constituents[0][0])


# ------------------------------------------------------------------ generated samples


@pytest.mark.parametrize("name", ["qcd", "wprime"])
def test_columns_shape_units_and_ranges(name: str, request: pytest.FixtureRequest) -> None:
    sample: DijetSample = request.getfixturevalue(name)
    n = len(sample)
    assert sample.columns == DIJET_FEATURES == ("m_jj", "m_j1", "delta_mj", "tau21_j1", "tau21_j2")
    assert (*DIJET_FEATURES, "label") == LHCO_COLUMNS
    assert sample.features.shape == (n, 5) and sample.features.dtype == np.float64
    assert np.isfinite(sample.features).all()
    lhco = sample.lhco()
    assert lhco.shape == (n, 6) and lhco.dtype == np.float64
    np.testing.assert_array_equal(lhco[:, :5], sample.features)
    assert set(lhco[:, 5].tolist()) == {1.0 if name == "wprime" else 0.0}
    mjj, mj1, dmj, t1, t2 = sample.features.T
    # TeV: dijet masses of a few TeV, jet masses below 1 TeV
    assert ((mjj > 1.0) & (mjj < 13.0)).all() and ((mj1 > 0) & (mj1 < 1.0)).all()
    assert (dmj >= 0).all()  # m_j1 <= m_j2
    assert ((t1 >= 0) & (t1 <= 1) & (t2 >= 0) & (t2 <= 1)).all()
    # the trigger: leading jet above 1.2 TeV, the second one softer
    assert (sample.jet_pt[:, 0] > 1.2).all()
    assert (sample.jet_pt[:, 1] <= sample.jet_pt[:, 0]).all() and (sample.jet_pt[:, 1] > 0.05).all()
    assert (np.diff(sample.event) > 0).all()
    assert int(sample.attrs["n_generated"]) >= n


def test_signal_peaks_at_the_wprime_mass(wprime: DijetSample) -> None:
    mjj = wprime.features[:, 0]
    assert 3.0 < float(np.median(mjj)) < 3.8
    assert np.mean((mjj > 3.3) & (mjj < 3.7)) > 0.6
    # the heavier jet carries the X (500 GeV)
    heavy = wprime.features[:, 1] + wprime.features[:, 2]
    assert 0.4 < float(np.median(heavy)) < 0.6


def test_qcd_mjj_mostly_above_the_trigger_threshold(qcd: DijetSample) -> None:
    mjj = qcd.features[:, 0]
    assert np.mean(mjj > 2.4) > 0.75
    # QCD jets are less two-pronged than the signal's X jet
    assert float(np.mean(qcd.features[:, 4])) > 0.35


def test_block_keeps_exactly_the_events_passing_the_cut() -> None:
    _needs_events()
    from physgen.events.dijet import (
        DIJET_PROCESSES,
        JET_PT_FLOOR,
        dijet_block,
    )
    from physgen.events.generate import BlockJob
    from physgen.events.jets import hardest_jets
    from physgen.events.pythia import PythiaGenerator, derive_seed
    from physgen.events.substructure import tau21

    job = BlockJob("qcd-dijet", DIJET_PROCESSES["qcd-dijet"], 5, dijet_block)
    gen = PythiaGenerator(job.settings, derive_seed(*job.entropy))
    block = dijet_block(gen, job, 0)
    particles = gen.generate(100, derive_seed(*job.entropy, 0))  # the same events again
    jets = hardest_jets(particles, 2, radius=1.0, pt_min=JET_PT_FLOOR)
    passing = np.flatnonzero((jets.count >= 2) & (jets.pt[:, 0] > 1200.0))
    np.testing.assert_array_equal(block.event, passing)
    assert 0 < block.n_rows < block.n_events == 100
    e = int(block.event[0])
    masses = jets.mass[e] / 1000
    idx = jets.constituents[e][int(np.argmin(masses))]
    t = tau21(particles.pt[idx], particles.eta[idx], particles.phi[idx], particles.mass[idx])
    assert block.features[0, 1] == pytest.approx(masses.min(), rel=1e-12)
    assert block.features[0, 3] == pytest.approx(t, rel=1e-12)


def test_same_seed_same_bytes_for_any_number_of_workers(tmp_path: Path) -> None:
    _needs_events()
    paths = []
    for workers, name in ((1, "a"), (2, "b"), (1, "c")):
        for suffix in (".npy", ".h5"):
            out = tmp_path / f"{name}{suffix}"
            if suffix == ".npy":
                s = generate_dijets(
                    "qcd-dijet", n=50, seed=3, workers=workers, cache=False, out=out, progress=False
                )
                assert s.attrs["n_generated"] > 100  # more than one block
            else:
                write_dijets(out, s)
            paths.append(out)
    a_npy, a_h5, b_npy, b_h5, c_npy, c_h5 = (p.read_bytes() for p in paths)
    assert a_npy == b_npy == c_npy and a_h5 == b_h5 == c_h5
    other = generate_dijets("qcd-dijet", n=50, seed=4, cache=False, progress=False)
    assert not np.array_equal(other.lhco(), np.load(paths[0]))


def test_cache_hit_and_outputs(cache: Path, tmp_path: Path) -> None:
    _needs_events()
    first = generate_dijets("wprime", n=20, seed=5, progress=False)
    assert not first.from_cache and first.path == dijet_cache_path("wprime", 20, 5)
    assert first.path is not None and first.path.is_file() and first.path.parent == cache / "events"
    out_h5, out_npy = tmp_path / "w.h5", tmp_path / "w.npy"
    again = generate_dijets("wprime", n=20, seed=5, out=out_h5, progress=False)
    assert again.from_cache and again.path == out_h5
    np.testing.assert_array_equal(again.features, first.features)
    assert out_h5.read_bytes() == first.path.read_bytes()
    generate_dijets("wprime", n=20, seed=5, out=out_npy, progress=False)
    np.testing.assert_array_equal(np.load(out_npy), first.lhco())
    back = read_dijets(out_h5)
    np.testing.assert_array_equal(back.features, first.features)
    np.testing.assert_array_equal(back.label, np.ones(20, dtype=np.int64))
    assert back.attrs["process"] == "wprime" and back.attrs["seed"] == 5
    # extra settings change the key; the spelling of a setting does not
    assert dijet_cache_path("wprime", 20, 5, "34:m0=3400") == dijet_cache_path(
        "wprime", 20, 5, ["34:m0 = 3400"]
    )
    assert dijet_cache_path("wprime", 20, 5, "34:m0=3400") != first.path
    assert dijet_cache_path("qcd-dijet", 20, 5) != first.path


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"process": "zjet"}, "--process: unknown dijet process 'zjet'"),
        ({"n": 0}, "--n"),
        ({"seed": -1}, "--seed"),
        ({"workers": 0}, "--workers"),
        ({"out": "x.csv"}, r"expected a \.h5 .* or \.npy"),
        ({"extra_settings": ["Foo:bar = 1"]}, "Pythia rejects"),
        ({"extra_settings": ["Random:seed = 3"]}, "--seed"),
        ({"extra_settings": ["no equals"]}, "Key = value"),
    ],
)
def test_bad_input_writes_nothing(
    cache: Path, tmp_path: Path, kwargs: dict[str, object], match: str
) -> None:
    pytest.importorskip("pythia8mc")
    args: dict[str, object] = {"process": "qcd-dijet", "n": 10, "progress": False, **kwargs}
    if "out" in args:
        args["out"] = tmp_path / str(args["out"])
    with pytest.raises(ConfigError, match=match):
        generate_dijets(**args)  # type: ignore[arg-type]
    assert [p.name for p in tmp_path.iterdir()] == []  # no cache, no output


def test_read_dijets_rejects_other_files(tmp_path: Path) -> None:
    import h5py

    npy = tmp_path / "x.npy"
    np.save(npy, np.zeros((3, 6)))
    with pytest.raises(DataFormatError, match=r"numpy\.load"):
        read_dijets(npy)
    h5 = tmp_path / "x.h5"
    with h5py.File(h5, "w") as f:
        f["features"] = np.zeros((3, 5))
    with pytest.raises(DataFormatError, match="missing dataset"):
        read_dijets(h5)
    with pytest.raises(DataFormatError, match="unknown file type"):
        write_dijets(
            tmp_path / "x.txt",
            DijetSample(
                np.zeros((1, 5)), np.zeros(1, np.int64), np.zeros((1, 2)), np.zeros(1, np.int64)
            ),
        )
    assert not (tmp_path / "x.txt").exists()


# ------------------------------------------------------------------ CLI


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (("--process", "qcd"), ("--process", "zjet, qcd-dijet or wprime")),
        (("--process", "wprime", "--config", "sim"), ("--config", "zjet only")),
        (("--process", "wprime", "--n", "0"), ("--n", ">= 1")),
        (("--process", "wprime", "--set", "Foo:bar = 1"), ("--set", "Pythia rejects")),
    ],
)
def test_cli_bad_input(
    run: Run, cache: Path, tmp_path: Path, args: tuple[str, ...], needles: tuple[str, ...]
) -> None:
    pytest.importorskip("pythia8mc")
    out = tmp_path / "x.npy"
    rc, _, err = run("pythia", "--n", "10", "-o", out, *args)
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, err)
    assert [p.name for p in tmp_path.iterdir()] == []


def test_cli_output_type_is_checked(run: Run, cache: Path, tmp_path: Path) -> None:
    rc, _, err = run("pythia", "--process", "qcd-dijet", "--n", "10", "-o", tmp_path / "x.txt")
    assert rc == 2 and err.startswith("error: --out") and ".npy" in err
    assert [p.name for p in tmp_path.iterdir()] == []


def test_cli_tiny_run_json(run: Run, cache: Path, tmp_path: Path) -> None:
    _needs_events()
    out = tmp_path / "w.npy"
    rc, stdout, err = run(
        "pythia", "--process", "wprime", "--n", "15", "--seed", "2", "-o", out, "--json", "-q"
    )
    assert rc == 0, err
    assert err == ""
    d = json.loads(stdout)
    assert d["path"] == str(out) and d["n"] == 15 and d["process"] == "wprime"
    assert d["n_generated"] >= 15 and 0 < d["acceptance"] <= 1 and not d["from_cache"]
    a = np.load(out)
    assert a.shape == (15, 6) and (a[:, 5] == 1).all()
    rc, stdout, err = run("pythia", "--process", "wprime", "--n", "15", "--seed", "2", "-o", out)
    assert rc == 0 and "from the cache" in stdout, err
    np.testing.assert_array_equal(np.load(out), a)
