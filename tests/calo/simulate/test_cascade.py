"""Cascade engine: API, determinism, energy conservation, input validation (fast)."""

from __future__ import annotations

import dataclasses
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from physgen.calo.simulate.cascade import (
    SAMPLING_FRACTIONS,
    CascadeCuts,
    CascadeEngine,
    ShowerStats,
    bulk_detector,
)
from physgen.calo.simulate.detector import get_detector
from physgen.calo.simulate.materials import ELECTRON_MASS_MEV
from physgen.errors import ConfigError, SimulationError

SEED = int(np.random.SeedSequence([2024, 3]).generate_state(1, np.uint64)[0])


@pytest.fixture(scope="module")
def par04() -> CascadeEngine:
    return CascadeEngine(get_detector("par04", geometry="2"))


@pytest.fixture(scope="module")
def bulk_w() -> CascadeEngine:
    return CascadeEngine(
        bulk_detector("W", depth_mm=60.0, slab_mm=1.0, r_edges_mm=(0.0, 5.0, 20.0))
    )


def test_output_shape_and_units(par04: CascadeEngine) -> None:
    out = par04.simulate_one("electron", 2000.0, SEED)
    assert out.shape == (6480,)
    assert out.dtype == np.float64
    assert np.all(out >= 0.0)
    # raw Si deposits of a 2 GeV electron: a few % of the energy
    assert 0.01 * 2000.0 < out.sum() < 0.05 * 2000.0
    assert par04.name == "cascade"


def test_same_seed_same_bytes(par04: CascadeEngine) -> None:
    a = par04.simulate_one("electron", 3000.0, SEED)
    b = par04.simulate_one("electron", 3000.0, SEED)
    other = CascadeEngine(get_detector("par04", geometry="2"))
    par04.simulate_one("photon", 500.0, 1)  # interleaved work must not matter
    c = other.simulate_one("electron", 3000.0, SEED)
    assert a.tobytes() == b.tobytes() == c.tobytes()
    d = par04.simulate_one("electron", 3000.0, SEED + 1)
    assert a.tobytes() != d.tobytes()


def test_same_seed_same_bytes_across_processes(par04: CascadeEngine, tmp_path: Path) -> None:
    here = par04.simulate_one("positron", 1500.0, 2**64 - 5)
    out = tmp_path / "shower.npy"
    code = (
        "import numpy as np\n"
        "from physgen.calo.simulate.cascade import CascadeEngine\n"
        "from physgen.calo.simulate.detector import get_detector\n"
        "e = CascadeEngine(get_detector('par04', geometry='2'))\n"
        f"np.save({str(out)!r}, e.simulate_one('positron', 1500.0, {2**64 - 5}))\n"
    )
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    src = str(Path(__file__).resolve().parents[3] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    subprocess.run([sys.executable, "-c", code], check=True, env=env, timeout=300)
    assert np.load(out).tobytes() == here.tobytes()


@pytest.mark.parametrize("particle", ["electron", "positron", "photon"])
@pytest.mark.parametrize("which", ["par04", "bulk_w"])
def test_energy_conservation(particle: str, which: str, request: pytest.FixtureRequest) -> None:
    engine: CascadeEngine = request.getfixturevalue(which)
    for i, energy in enumerate((50.0, 1000.0)):
        st = engine.simulate_with_stats(particle, energy, SEED + i)
        assert isinstance(st, ShowerStats)
        expected = energy + (2 * ELECTRON_MASS_MEV if particle == "positron" else 0.0)
        assert st.available_energy_mev == pytest.approx(expected, rel=1e-12)
        total = st.deposited_energy + st.leak_front + st.leak_back
        assert total == pytest.approx(expected, rel=1e-9, abs=1e-9)
        assert st.leak_front >= 0 and st.leak_back >= 0
        # the voxels hold active deposits inside the readout bins only
        active = st.slab_energy[engine.detector.slab_arrays()["active"]].sum()
        assert st.voxels.sum() <= active * (1 + 1e-12) + 1e-12
        assert st.n_charged >= st.n_charged_above_cut >= 1
        assert st.track_length_mm > 0 and st.n_steps > 0


def test_bulk_detector_geometry() -> None:
    det = bulk_detector("W", depth_mm=10.0, slab_mm=0.5, r_edges_mm=(0.0, 1.0, 2.0))
    assert len(det.slabs) == 20
    assert det.geometry.n_voxels == 40
    assert all(s.active for s in det.slabs)
    with pytest.raises(SimulationError, match="slab_mm"):
        bulk_detector("W", depth_mm=1.0, slab_mm=2.0)
    with pytest.raises(SimulationError, match="unknown material"):
        bulk_detector("unobtainium")


def test_bulk_voxels_are_the_depth_profile(bulk_w: CascadeEngine) -> None:
    st = bulk_w.simulate_with_stats("electron", 2000.0, 7)
    per_layer = st.voxels.reshape(60, 2).sum(axis=1)
    # everything within r < 20 mm of a slab is in that slab's two voxels
    assert np.all(per_layer <= st.slab_energy + 1e-9)
    assert per_layer.sum() > 0.9 * st.slab_energy.sum()


@pytest.mark.parametrize("particle", ["pion", "Electron", "", "muon"])
def test_unknown_particle(par04: CascadeEngine, particle: str) -> None:
    with pytest.raises(SimulationError, match="particle must be one of"):
        par04.simulate_one(particle, 1000.0, 1)


@pytest.mark.parametrize("energy", [0.0, -5.0, math.nan, math.inf, 1e9])
def test_bad_energy(par04: CascadeEngine, energy: float) -> None:
    with pytest.raises(SimulationError, match="energy"):
        par04.simulate_one("electron", energy, 1)


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_bad_seed(par04: CascadeEngine, seed: int) -> None:
    with pytest.raises(SimulationError, match="seed"):
        par04.simulate_one("electron", 1000.0, seed)


def test_error_messages_are_one_line(par04: CascadeEngine) -> None:
    with pytest.raises(SimulationError) as info:
        par04.simulate_one("kaon", 1.0, 1)
    assert "\n" not in str(info.value)


def test_cuts_defaults_and_frozen() -> None:
    cuts = CascadeCuts()
    assert cuts.electron_cut_mev == pytest.approx(0.1)
    assert cuts.photon_cut_mev == pytest.approx(0.01)
    assert cuts.lpm and cuts.bremsstrahlung
    with pytest.raises(dataclasses.FrozenInstanceError):
        cuts.electron_cut_mev = 1.0  # type: ignore[misc]
    assert cuts.as_array().shape == (8,)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"electron_cut_mev": 0.0},
        {"photon_cut_mev": -1.0},
        {"brems_cut_mev": math.nan},
        {"count_cut_mev": math.inf},
        {"max_step_x0": 0.0},
        {"max_step_x0": 10.0},
        {"max_loss_fraction": 0.0},
        {"max_loss_fraction": 0.9},
        {"electron_cut_mev": "1"},
        {"final_range_mm": -0.1},
        {"final_range_mm": math.nan},
        {"final_range_mm": 1000.0},
        {"final_range_mm": True},
    ],
)
def test_cuts_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="CascadeCuts"):
        CascadeCuts(**kwargs)  # type: ignore[arg-type]


def test_cuts_change_the_simulation() -> None:
    det = get_detector("par04", geometry="2")
    coarse = CascadeEngine(det, CascadeCuts(electron_cut_mev=1.0, photon_cut_mev=0.1))
    fine = CascadeEngine(det)
    a = coarse.simulate_with_stats("electron", 1000.0, 3)
    b = fine.simulate_with_stats("electron", 1000.0, 3)
    assert a.n_steps < b.n_steps


def test_final_range_params_index() -> None:
    # appended at the end of the kernel's parameter vector: older indices stay put
    arr = CascadeCuts(final_range_mm=0.25, count_cut_mev=2.0).as_array()
    assert arr[6] == 2.0 and arr[7] == 0.25
    assert CascadeCuts().final_range_mm == pytest.approx(1.0)


def test_final_range_keeps_the_energy_sharing_between_slabs() -> None:
    """Finishing e+/e- that cannot leave their slab in one step saves steps only.

    The W/Si sampling fraction and its spread are unchanged (within the statistics);
    the steps per shower drop by more than a third.
    """
    det = get_detector("par04", geometry="2")
    fast = CascadeEngine(det)
    slow = CascadeEngine(det, CascadeCuts(final_range_mm=0.0))
    n = 300
    a = [fast.simulate_with_stats("electron", 1000.0, 100 + i) for i in range(n)]
    b = [slow.simulate_with_stats("electron", 1000.0, 100 + i) for i in range(n)]
    fa = np.array([s.active_energy for s in a]) / 1000.0
    fb = np.array([s.active_energy for s in b]) / 1000.0
    err = math.hypot(fa.std(), fb.std()) / math.sqrt(n)
    assert abs(fa.mean() - fb.mean()) < 4 * err
    assert 0.8 < fa.std() / fb.std() < 1.25
    assert sum(s.n_steps for s in a) < 0.65 * sum(s.n_steps for s in b)


def test_final_range_keeps_the_brems_yield() -> None:
    """Discrete brems on the one-step path is placed by the integral method.

    3 MeV electrons stop in a 4 mm W block: the number of photons they radiate, the
    energy leaving the block and the track length agree with step-by-step transport.
    """
    det = bulk_detector("W", depth_mm=40.0, slab_mm=4.0, r_edges_mm=(0.0, 1000.0))
    fast = CascadeEngine(det)
    slow = CascadeEngine(det, CascadeCuts(final_range_mm=0.0))
    n = 5000
    for key in ("n_photons", "leak_front", "track_length_mm"):
        va = np.array(
            [getattr(fast.simulate_with_stats("electron", 3.0, 7 + i), key) for i in range(n)],
            dtype=np.float64,
        )
        vb = np.array(
            [getattr(slow.simulate_with_stats("electron", 3.0, 7 + i), key) for i in range(n)],
            dtype=np.float64,
        )
        err = math.hypot(va.std(), vb.std()) / math.sqrt(n)
        assert abs(va.mean() - vb.mean()) < 4 * err + 0.01 * vb.mean(), key


def test_sampling_fraction_constants(par04: CascadeEngine, bulk_w: CascadeEngine) -> None:
    for name in ("par04", "atlas-like", "calogan"):
        assert 0.0 < SAMPLING_FRACTIONS[name] < 1.0
    assert par04.sampling_fraction == SAMPLING_FRACTIONS["par04"]
    assert 0.022 <= par04.sampling_fraction <= 0.034
    with pytest.raises(SimulationError, match="sampling fraction"):
        _ = bulk_w.sampling_fraction


def test_other_detectors_run() -> None:
    for name, particle in (("atlas-like", "photon"), ("calogan", "positron")):
        det = get_detector(name)
        eng = CascadeEngine(det)
        st = eng.simulate_with_stats(particle, 1000.0, 11)
        assert st.voxels.shape == (det.geometry.n_voxels,)
        total = st.deposited_energy + st.leak_front + st.leak_back
        assert total == pytest.approx(st.available_energy_mev, rel=1e-9)
        assert st.voxels.sum() > 0
