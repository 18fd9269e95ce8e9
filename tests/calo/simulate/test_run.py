"""The simulate driver: energy specs, seeds, workers, validation, provenance, interrupts."""

from __future__ import annotations

import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from physgen.calo.io import read_showers
from physgen.calo.simulate import pool, run
from physgen.calo.simulate.run import (
    DS1_ENERGIES_MEV,
    DS1_FREQUENCIES,
    parse_energy_spec,
    shower_seeds,
    simulate,
)
from physgen.errors import ConfigError, PhysgenError, SimulationError

UNITS = {"": 1.0, "eV": 1e-6, "keV": 1e-3, "MeV": 1.0, "GeV": 1e3, "TeV": 1e6}


# ------------------------------------------------------------------ energy specs


@pytest.mark.parametrize(
    ("text", "mev"),
    [
        ("100GeV", 1e5),
        ("500MeV", 500.0),
        ("1TeV", 1e6),
        ("2.5e3MeV", 2500.0),
        ("2.5E3 MeV", 2500.0),
        ("  10 gev ", 1e4),
        ("1000", 1000.0),
        (".5GeV", 500.0),
        ("750keV", 0.75),
        ("3.", 3.0),
    ],
)
def test_fixed_values(text: str, mev: float) -> None:
    spec = parse_energy_spec(text)
    assert spec.kind == "fixed"
    assert spec.bounds_mev == pytest.approx((mev, mev), rel=1e-12)
    assert spec.text == text.strip()
    np.testing.assert_array_equal(spec.sample(4, 1), np.full(4, spec.low_mev))


def test_range_and_ds1() -> None:
    spec = parse_energy_spec("1GeV:1TeV")
    assert (spec.kind, spec.bounds_mev) == ("log-uniform", (1e3, 1e6))
    ds1 = parse_energy_spec("ds1")
    assert ds1.kind == "ds1" and ds1.bounds_mev == (256.0, 4194304.0)
    assert parse_energy_spec("DS1:even").kind == "ds1:even"
    assert parse_energy_spec(spec) is spec


@pytest.mark.parametrize(
    "text",
    [
        "",
        "GeV",
        "10 furlongs",
        "10GeVV",
        "1GeV:",
        ":1TeV",
        "1:2:3",
        "-5GeV",
        "0",
        "0MeV:1GeV",
        "1TeV:1GeV",
        "5GeV:5GeV",
        "nan",
        "inf GeV",
        "1e999MeV",
        "ds2",
        "1,5GeV",
        "10 G eV",
    ],
)
def test_bad_specs_name_the_option(text: str) -> None:
    with pytest.raises(ConfigError, match=r"^--energy: "):
        parse_energy_spec(text)


def test_unparsable_message_says_what_is_expected() -> None:
    with pytest.raises(ConfigError) as info:
        parse_energy_spec("ten GeV")
    msg = str(info.value)
    assert "expected" in msg and "GeV" in msg and "\n" not in msg


@settings(max_examples=200, deadline=None)
@given(
    x=st.floats(min_value=1e-3, max_value=1e9, allow_nan=False, allow_infinity=False),
    unit=st.sampled_from(sorted(UNITS)),
)
def test_property_value_roundtrip(x: float, unit: str) -> None:
    spec = parse_energy_spec(f"{x!r}{unit}")
    assert spec.low_mev == pytest.approx(x * UNITS[unit], rel=1e-12)


@settings(max_examples=100, deadline=None)
@given(
    lo=st.floats(min_value=1.0, max_value=1e6),
    ratio=st.floats(min_value=1.001, max_value=1e4),
    seed=st.integers(min_value=0, max_value=2**63),
    n=st.integers(min_value=1, max_value=300),
)
def test_property_range_samples_inside_and_reproducible(
    lo: float, ratio: float, seed: int, n: int
) -> None:
    hi = lo * ratio
    spec = parse_energy_spec(f"{lo!r}MeV:{hi!r}MeV")
    e = spec.sample(n, seed)
    assert e.shape == (n,) and e.dtype == np.float64
    assert (e >= spec.low_mev).all() and (e <= spec.high_mev).all()
    np.testing.assert_array_equal(e, spec.sample(n, seed))
    # a prefix of a longer draw is the shorter draw
    np.testing.assert_array_equal(spec.sample(n + 5, seed)[:n], e)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=20))
def test_property_any_text_parses_or_raises_config_error(text: str) -> None:
    try:
        spec = parse_energy_spec(text)
    except ConfigError as exc:
        assert str(exc).startswith("--energy: ") and "\n" not in str(exc)
    else:
        assert 0 < spec.low_mev <= spec.high_mev < math.inf


def test_log_uniform_distribution() -> None:
    from scipy.stats import kstest

    e = parse_energy_spec("1GeV:1TeV").sample(5000, 3)
    u = np.log(e / 1e3) / np.log(1e3)
    assert kstest(u, "uniform").pvalue > 1e-3
    assert not np.array_equal(e, parse_energy_spec("1GeV:1TeV").sample(5000, 4))


def test_ds1_frequencies_and_even_cycle() -> None:
    e = parse_energy_spec("ds1").sample(121000, 5)
    values, counts = np.unique(e, return_counts=True)
    np.testing.assert_array_equal(values, DS1_ENERGIES_MEV)
    expected = np.array(DS1_FREQUENCIES, float)
    # multinomial: within 5 sigma of each expected count
    assert (np.abs(counts - expected) < 5 * np.sqrt(expected) + 1).all()
    even = parse_energy_spec("ds1:even").sample(31, 0)
    np.testing.assert_array_equal(even[:15], DS1_ENERGIES_MEV)
    np.testing.assert_array_equal(even[15:30], DS1_ENERGIES_MEV)


def test_shower_seeds_formula() -> None:
    seeds = shower_seeds(42, 3, start=7)
    for k, i in enumerate(range(7, 10)):
        assert int(seeds[k]) == int(np.random.SeedSequence([42, i]).generate_state(1, np.uint64)[0])


# ------------------------------------------------------------------ the driver


def _gflash(tmp: Path, name: str, **kw: object) -> Path:
    args: dict[str, object] = dict(
        geometry="2",
        particle="electron",
        n=12,
        energy="1GeV:100GeV",
        seed=11,
        out=tmp / name,
        engine="gflash",
        progress=False,
    )
    args.update(kw)
    return simulate(**args)  # type: ignore[arg-type]


def test_same_seed_same_bytes_with_1_and_2_workers_gflash(tmp_path: Path) -> None:
    a = _gflash(tmp_path, "a.h5", workers=1)
    b = _gflash(tmp_path, "b.h5", workers=2)
    assert a.read_bytes() == b.read_bytes()
    c = _gflash(tmp_path, "c.h5", workers=1, seed=12)
    _ea, xa = read_showers(a)
    _ec, xc = read_showers(c)
    assert not np.array_equal(xa, xc)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "b.h5", "c.h5"]


def test_output_content_and_provenance(tmp_path: Path) -> None:
    path = _gflash(tmp_path, "s.h5", n=20, energy="50GeV", compression="lzf")
    e, x = read_showers(path)
    assert e.shape == (20, 1) and x.shape == (20, 6480) and x.dtype == np.float32
    np.testing.assert_array_equal(e[:, 0], 5e4)
    # calibrated: raw / sampling fraction, E_tot/E_inc ~ 0.99 (1 % lateral leakage)
    assert (x.sum(axis=1) / e[:, 0]).mean() == pytest.approx(0.99, abs=0.02)
    # shower i is engine.simulate_one(seed_i) / sampling_fraction
    from physgen.calo.simulate.detector import get_detector
    from physgen.calo.simulate.gflash import GFlashEngine

    eng = GFlashEngine(get_detector("par04", geometry="2"))
    seeds = shower_seeds(11, 20)
    ref = (eng.simulate_one("electron", 5e4, int(seeds[3])) / eng.sampling_fraction).astype(
        np.float32
    )
    np.testing.assert_array_equal(x[3], ref)
    with h5py.File(path) as f:
        attrs = dict(f.attrs)
        assert f["showers"].compression == "lzf"
    for key in (
        "geometry",
        "detector",
        "particle",
        "engine",
        "seed",
        "energy",
        "sampling_fraction",
        "physgen_version",
        "config",
        "n_showers",
    ):
        assert key in attrs, key
    assert attrs["geometry"] == "2" and attrs["detector"] == "par04"
    assert attrs["particle"] == "electron" and attrs["engine"] == "gflash"
    assert int(attrs["seed"]) == 11 and int(attrs["n_showers"]) == 20
    assert attrs["energy"] == "50GeV"
    assert float(attrs["sampling_fraction"]) == pytest.approx(eng.sampling_fraction)
    config = json.loads(attrs["config"])
    assert config["engine"]["engine"] == "gflash"


def test_particle_aliases_and_photons(tmp_path: Path) -> None:
    path = _gflash(tmp_path, "g.h5", particle="gamma", n=3, energy="ds1:even", geometry="1-photons")
    e, x = read_showers(path)
    np.testing.assert_array_equal(e[:, 0], DS1_ENERGIES_MEV[:3])
    assert x.shape == (3, 368)
    with h5py.File(path) as f:
        assert f.attrs["particle"] == "photon" and f.attrs["detector"] == "atlas-like"


BAD = [
    ({"geometry": "7"}, SimulationError, "--geometry"),
    ({"geometry": "2", "detector": "calogan"}, SimulationError, "calogan"),
    ({"detector": "cms"}, SimulationError, "detector"),
    ({"particle": "pion"}, ConfigError, "--particle"),
    ({"engine": "geant4"}, ConfigError, "--engine"),
    ({"energy": "10 furlongs"}, ConfigError, "--energy"),
    ({"energy": "5TeV"}, SimulationError, "--energy"),
    ({"energy": "ds1"}, SimulationError, "--energy"),
    ({"energy": "100MeV:10GeV"}, SimulationError, "--energy"),
    ({"n": 0}, ConfigError, "--n"),
    ({"n": -3}, ConfigError, "--n"),
    ({"n": 2.5}, ConfigError, "--n"),
    ({"seed": -1}, ConfigError, "--seed"),
    ({"seed": 2**64}, ConfigError, "--seed"),
    ({"workers": 0}, ConfigError, "--workers"),
    ({"compression": "zstd"}, ConfigError, "--compression"),
]


@pytest.mark.parametrize(("change", "error", "match"), BAD)
def test_bad_input_raises_before_writing(
    tmp_path: Path, change: dict[str, object], error: type[PhysgenError], match: str
) -> None:
    with pytest.raises(error, match=match) as info:
        _gflash(tmp_path, "bad.h5", **change)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_missing_folder_and_folder_as_output(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--out"):
        _gflash(tmp_path, "nope/x.h5")
    (tmp_path / "d.h5").mkdir()
    with pytest.raises(ConfigError, match="--out"):
        _gflash(tmp_path, "d.h5")
    assert [p.name for p in tmp_path.iterdir()] == ["d.h5"]


def test_interrupt_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from physgen.calo.simulate.gflash import GFlashEngine

    original = GFlashEngine.simulate_one
    calls = {"n": 0}

    def flaky(self: GFlashEngine, particle: str, energy_mev: float, seed: int) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt
        return original(self, particle, energy_mev, seed)

    monkeypatch.setattr(GFlashEngine, "simulate_one", flaky)
    monkeypatch.setattr(run, "_WRITE_BLOCK_BYTES", 4 * 6480 * 2)  # write blocks of 2 showers
    with pytest.raises(KeyboardInterrupt):
        _gflash(tmp_path, "int.h5", n=10)
    assert list(tmp_path.iterdir()) == []


def test_interrupt_with_workers_terminates_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import multiprocessing.pool
    import time

    before = set(multiprocessing.active_children())  # other tests' pools are not ours
    original = multiprocessing.pool.IMapIterator.next
    seen = {"n": 0}

    def next_then_interrupt(self: object, timeout: float | None = None) -> object:
        seen["n"] += 1
        if seen["n"] > 2:
            raise KeyboardInterrupt
        return original(self, timeout)  # type: ignore[arg-type]

    monkeypatch.setattr(multiprocessing.pool.IMapIterator, "next", next_then_interrupt)
    monkeypatch.setattr(multiprocessing.pool.IMapIterator, "__next__", next_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        _gflash(tmp_path, "int2.h5", n=40, workers=2)
    assert list(tmp_path.iterdir()) == []
    deadline = time.monotonic() + 10.0  # terminated workers may take a moment to be reaped
    while set(multiprocessing.active_children()) - before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not set(multiprocessing.active_children()) - before


def _cascade_available() -> bool:
    try:
        from physgen.calo.simulate.cascade import CascadeEngine  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not _cascade_available(), reason="cascade engine not built yet")
def test_same_seed_same_bytes_with_1_and_2_workers_cascade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from physgen.calo.simulate import cascade

    if not math.isfinite(cascade.SAMPLING_FRACTIONS.get("par04", math.nan)):
        # the parent reads the constant and hands it to the workers (initargs)
        monkeypatch.setitem(cascade.SAMPLING_FRACTIONS, "par04", 0.03)
    kw = dict(engine="cascade", n=6, energy="1GeV:2GeV", seed=5)
    a = _gflash(tmp_path, "a.h5", workers=1, **kw)
    b = _gflash(tmp_path, "b.h5", workers=2, **kw)
    assert a.read_bytes() == b.read_bytes()
    _e, x = read_showers(a)
    assert x.shape == (6, 6480) and (x.sum(axis=1) > 0).all()


def test_swallowed_ctrl_c_still_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python can raise KeyboardInterrupt inside a weakref callback or __del__, where it
    # is printed and ignored; the driver must still stop and leave nothing behind.
    import os
    import signal

    from physgen.calo.simulate.gflash import GFlashEngine

    original = GFlashEngine.simulate_one
    calls = {"n": 0}

    def swallowing(self: GFlashEngine, particle: str, energy_mev: float, seed: int) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 3:
            try:
                os.kill(os.getpid(), signal.SIGINT)
                for _ in range(1000):  # let the handler run here, then swallow it
                    pass
            except KeyboardInterrupt:
                pass
        return original(self, particle, energy_mev, seed)

    monkeypatch.setattr(GFlashEngine, "simulate_one", swallowing)
    # another test (or library) may have left its own SIGINT handler installed; the driver
    # only takes over Python's default one, so start from it
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            _gflash(tmp_path, "swallowed.h5", n=10)
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # guard removed
    finally:
        signal.signal(signal.SIGINT, previous)
    assert calls["n"] == 3
    assert list(tmp_path.iterdir()) == []


def test_poll_notices_an_interrupt_while_waiting_for_workers() -> None:
    import multiprocessing
    import threading

    class Slow:
        def next(self, timeout: float | None = None) -> np.ndarray:
            raise multiprocessing.TimeoutError

    flag = threading.Event()
    flag.set()
    with pytest.raises(KeyboardInterrupt):
        next(pool.poll_results(Slow(), flag, every_s=0.01))


def test_script_on_stdin_with_workers_does_not_hang(tmp_path):
    """`python -` cannot be re-imported by spawned workers: the driver falls back to 1 worker
    with a warning instead of letting the pool respawn workers forever."""
    import subprocess
    import sys

    out = tmp_path / "s.h5"
    script = (
        "import logging; logging.basicConfig()\n"
        "from physgen.calo.simulate.run import simulate\n"
        f"simulate('2', 'electron', 5, '10GeV', seed=1, out={str(out)!r}, engine='gflash', "
        "workers=2)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-"], input=script, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert "simulating with 1 worker" in proc.stderr
    assert out.is_file()
