"""Pythia settings, seeds, and tiny real runs: same seed same bytes for 1 or 2 workers, the
cache, sane observables, nothing printed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from physgen.errors import ConfigError
from physgen.events.pythia import (
    CONFIGS,
    SEED_MAX,
    derive_seed,
    parse_setting,
    resolved_settings,
)


def test_parse_setting() -> None:
    assert parse_setting("  TimeShower:alphaSvalue=0.12 ") == "TimeShower:alphaSvalue = 0.12"
    for bad, match in (
        ("TimeShower:alphaSvalue 0.12", "Key = value"),
        ("= 3", "Key = value"),
        ("A =", "Key = value"),
        ("Random:seed = 5", "--seed"),
        ("random:setSeed = off", "--seed"),
    ):
        with pytest.raises(ConfigError, match=match):
            parse_setting(bad)


def test_resolved_settings_order_and_configs() -> None:
    sim = resolved_settings("sim", ["A:b = 1"])
    assert sim[0] == "Beams:eCM = 13000" and sim[-1] == "A:b = 1"
    nature = resolved_settings("nature")
    assert nature[-len(CONFIGS["nature"]) :] == CONFIGS["nature"]
    assert any("alphaSvalue" in s for s in CONFIGS["nature"])
    with pytest.raises(ConfigError, match="sim or nature"):
        resolved_settings("herwig")


def test_derive_seed_range() -> None:
    seeds = [derive_seed(s, k) for s in (0, 1, 2**62) for k in range(200)]
    assert all(1 <= s <= SEED_MAX for s in seeds)
    assert len(set(seeds)) == len(seeds)
    assert derive_seed(1, 2) == derive_seed(1, 2)


@pytest.fixture(scope="module")
def pythia() -> None:
    pytest.importorskip("pythia8mc")
    pytest.importorskip("fastjet")


def test_pythia_rejects_unknown_or_out_of_range(pythia: None) -> None:
    from physgen.events.pythia import check_settings

    check_settings(resolved_settings("nature"))
    with pytest.raises(ConfigError, match="'Foo:bar'"):
        check_settings(["Foo:bar = 1"])
    with pytest.raises(ConfigError, match="alphaSvalue"):
        check_settings(["TimeShower:alphaSvalue = 5"])


def test_init_failure_is_a_config_error(pythia: None, tmp_path: Path) -> None:
    from physgen.events import generate_sample

    out = tmp_path / "x.h5"
    with pytest.raises(ConfigError, match=r"init failed for --config sim --set 'Beams:eCM = 100'"):
        generate_sample("sim", n=5, extra_settings=["Beams:eCM = 100"], cache=False, out=out)
    assert list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def reference(pythia: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """150 rows of sim with seed 11, one worker, no cache."""
    from physgen.events import generate_sample

    out = tmp_path_factory.mktemp("pythia") / "w1.h5"
    generate_sample("sim", n=150, seed=11, workers=1, cache=False, out=out, progress=False)
    return out


def test_same_bytes_with_two_workers(reference: Path, tmp_path: Path) -> None:
    from physgen.events import generate_sample

    out = tmp_path / "w2.h5"
    s = generate_sample("sim", n=150, seed=11, workers=2, cache=False, out=out, progress=False)
    assert len(s) == 150 and s.path == out
    assert out.read_bytes() == reference.read_bytes()


def test_sample_is_sane_and_quiet(
    reference: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from physgen.events import generate_sample, read_sample

    s = read_sample(reference)
    assert len(s) == 150
    assert s.attrs["seed"] == 11 and s.attrs["config"] == "sim"
    assert s.attrs["n_generated"] > 150 and s.attrs["pythia_version"].startswith("8.3")
    assert (s.pass_gen | s.pass_reco).all()
    assert s.pass_gen.mean() > 0.9 and s.pass_reco.mean() > 0.6
    assert np.all(np.diff(s.event) > 0)
    for level, flag, pt in ((s.gen, s.pass_gen, s.gen_pt), (s.reco, s.pass_reco, s.reco_pt)):
        good = level[flag]
        assert np.all(good[:, 0] > 0) and np.all(good[:, 1] >= 1)  # m, M
        assert np.all((good[:, 3] >= 0) & (good[:, 3] <= 1))  # tau21
        assert np.all((good[:, 4] >= 0) & (good[:, 4] <= 0.5))  # zg
        assert np.all((good[:, 5] >= -20) & (good[:, 5] < 0))  # lnrho
        assert 10 < good[:, 0].mean() < 40 and 10 < good[:, 1].mean() < 45
        assert np.all(pt[flag] > 200) and np.all(level[~flag] == 0) and np.all(pt[~flag] == 0)
    # another seed: other events; nothing on stdout (Pythia, FastJet banners)
    capfd.readouterr()
    other = generate_sample("sim", n=30, seed=12, cache=False, progress=False)
    out, _ = capfd.readouterr()
    assert out == ""
    assert other.path is None and not np.array_equal(other.gen[:30], s.gen[:30])


def test_cache_round_trip(reference: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from physgen.events import cache_path, generate_sample

    monkeypatch.setenv("PHYSGEN_CACHE", str(tmp_path / "cache"))
    path = cache_path("sim", 150, 11)
    assert path.parent == tmp_path / "cache" / "events" and path.name.startswith("sim-150-11-")
    first = generate_sample("sim", n=150, seed=11, progress=False)
    assert not first.from_cache and first.path == path
    assert path.read_bytes() == reference.read_bytes()
    out = tmp_path / "copy.h5"
    again = generate_sample("sim", n=150, seed=11, out=out, progress=False)
    assert again.from_cache and again.path == out and out.read_bytes() == path.read_bytes()
    # another setting is another cache entry
    assert cache_path("sim", 150, 11, ["TimeShower:alphaSvalue = 0.12"]) != path
    # an unreadable cache file is generated again
    path.write_bytes(b"garbage")
    redo = generate_sample("sim", n=150, seed=11, progress=False)
    assert not redo.from_cache and path.read_bytes() == reference.read_bytes()
