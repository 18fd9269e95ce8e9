"""Pass/match bookkeeping on hand-made events, the HDF5 file, and the leading-jet finder."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from physgen.errors import DataFormatError
from physgen.events.particles import Particles
from physgen.events.sample import (
    MATCH_DR,
    EventSample,
    match_levels,
    read_sample,
    write_sample,
)
from physgen.events.substructure import OBSERVABLES


def test_match_levels_conventions() -> None:
    # event: 0 matched, 1 both pass but 0.3 apart, 2 lost by the detector, 3 fake,
    # 4 neither, 5 matched across phi = pi, 6 exactly R/2 apart (not matched)
    gen_pass = np.array([1, 1, 1, 0, 0, 1, 1], dtype=bool)
    reco_pass = np.array([1, 1, 0, 1, 0, 1, 1], dtype=bool)
    gen_y = np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.5, 0.0])
    reco_y = np.array([0.1, 0.3, 1.0, 2.0, 0.0, 0.5, MATCH_DR])
    gen_phi = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 3.1, 1.0])
    reco_phi = np.array([0.0, 0.0, 0.0, 0.0, 0.0, -3.1, 1.0])
    pass_gen, pass_reco, unmatched = match_levels(
        gen_pass, gen_y, gen_phi, reco_pass, reco_y, reco_phi
    )
    assert pass_gen.tolist() == [True, True, True, False, False, True, True]
    assert pass_reco.tolist() == [True, False, False, True, False, True, False]
    assert unmatched.tolist() == [False, True, False, False, False, False, True]
    # what an unfolding reads off the flags
    efficiency = pass_reco[pass_gen].mean()  # P(pass_reco | pass_gen)
    fake_rate = (~pass_gen[pass_reco]).mean()  # P(!pass_gen | pass_reco)
    assert efficiency == pytest.approx(2 / 5)
    assert fake_rate == pytest.approx(1 / 3)


def _sample(n: int = 7, seed: int = 0) -> EventSample:
    rng = np.random.default_rng(seed)
    pass_gen = rng.random(n) < 0.9
    pass_reco = rng.random(n) < 0.8
    pass_reco[~pass_gen & ~pass_reco] = True  # every row passes a level
    gen = np.where(pass_gen[:, None], rng.random((n, 6)), 0.0)
    reco = np.where(pass_reco[:, None], rng.random((n, 6)), 0.0)
    return EventSample(
        gen=gen,
        reco=reco,
        pass_gen=pass_gen,
        pass_reco=pass_reco,
        weight=np.ones(n),
        gen_pt=np.where(pass_gen, 250.0, 0.0),
        reco_pt=np.where(pass_reco, 240.0, 0.0),
        event=np.arange(n, dtype=np.int64) * 2,
        attrs={"seed": 3, "settings": ["A = 1", "B = 2"], "detector": {"x": 1.0}},
    )


def test_write_read_round_trip_and_same_bytes(tmp_path: Path) -> None:
    s = _sample()
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    write_sample(a, s)
    write_sample(b, s)
    assert a.read_bytes() == b.read_bytes()  # no timestamps in the file
    back = read_sample(a)
    for name, arr in s.arrays().items():
        assert np.array_equal(getattr(back, name), arr), name
        assert getattr(back, name).dtype == arr.dtype, name
    assert back.attrs["seed"] == 3
    assert back.attrs["settings"] == '["A = 1", "B = 2"]'
    assert back.columns == OBSERVABLES
    with h5py.File(a, "r") as f:  # the unfolding input format
        assert [str(c) for c in f.attrs["columns"]] == list(OBSERVABLES)
        assert f["gen"].shape == (7, 6) and f["pass_reco"].dtype == bool
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "b.h5"]  # no temporaries


def test_read_refuses_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "good.h5"
    write_sample(good, _sample())
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    with pytest.raises(DataFormatError, match=r"text\.h5: cannot read as HDF5"):
        read_sample(text)
    for edit, match in (
        (lambda f: f.__delitem__("reco_pt"), "missing dataset"),
        (lambda f: f["gen"].__setitem__((0, 0), np.nan), "NaN"),
        (lambda f: f.attrs.__setitem__("columns", ["a"] * 6), "columns"),
    ):
        bad = tmp_path / "bad.h5"
        bad.write_bytes(good.read_bytes())
        with h5py.File(bad, "a") as f:
            edit(f)
        with pytest.raises(DataFormatError, match=match):
            read_sample(bad)


def _jet_particles(
    center_y: float, center_phi: float, pt: float, rng: np.random.Generator
) -> list[tuple[float, float, float]]:
    """Ten massless particles around a direction, summing to about ``pt``."""
    shares = rng.dirichlet(np.ones(10))
    return [
        (pt * s, center_y + rng.normal(0, 0.05), center_phi + rng.normal(0, 0.05)) for s in shares
    ]


def test_leading_jet_is_hardest_within_rapidity() -> None:
    pytest.importorskip("fastjet")
    from physgen.events.jets import leading_jets

    rng = np.random.default_rng(1)
    events = [
        _jet_particles(0.3, 1.0, 300.0, rng) + _jet_particles(3.0, -2.0, 500.0, rng),
        [],
        _jet_particles(-1.0, 0.0, 50.0, rng),  # below pt_min
        _jet_particles(-2.0, 2.0, 220.0, rng) + _jet_particles(1.0, -1.0, 210.0, rng),
    ]
    flat = [p for ev in events for p in ev]
    n = len(flat)
    particles = Particles(
        pt=np.array([p[0] for p in flat]),
        eta=np.array([p[1] for p in flat]),
        phi=np.array([p[2] for p in flat]),
        mass=np.zeros(n),
        pid=np.full(n, 22, dtype=np.int64),
        charge=np.zeros(n),
        counts=np.array([len(ev) for ev in events], dtype=np.int64),
    )
    jets = leading_jets(particles, pt_min=100.0)
    assert jets.found.tolist() == [True, False, False, True]
    assert jets.pt[0] == pytest.approx(300.0, rel=0.02) and abs(jets.y[0] - 0.3) < 0.05
    assert jets.pt[3] == pytest.approx(220.0, rel=0.02) and abs(jets.y[3] + 2.0) < 0.05
    assert [c.size for c in jets.constituents] == [10, 0, 0, 10]
    offsets = particles.offsets
    assert set(jets.constituents[3].tolist()) == set(range(offsets[3], offsets[3] + 10))
    idx = jets.constituents[0]
    px = (particles.pt[idx] * np.cos(particles.phi[idx])).sum()
    py = (particles.pt[idx] * np.sin(particles.phi[idx])).sum()
    assert math.hypot(px, py) == pytest.approx(jets.pt[0], rel=1e-12)


def test_unmatched_events_become_a_miss_and_a_fake() -> None:
    from physgen.events.sample import event_rows

    pass_gen = np.array([True, True, False, True, False])
    pass_reco = np.array([True, False, True, False, False])  # event 3: both passed, unmatched
    unmatched = np.array([False, False, False, True, False])
    event, pg, pr = event_rows(pass_gen, pass_reco, unmatched)
    assert event.tolist() == [0, 1, 2, 3, 3]
    assert pg.tolist() == [True, True, False, True, False]
    assert pr.tolist() == [True, False, True, False, True]
    # the detector-level selection of the rows never depends on the truth: every event whose
    # detector jet passed has exactly one reco-passing row
    assert pr.sum() == (pass_reco | unmatched).sum()
