"""Sampling-calorimeter optimisation: cost, resolution derivatives, descent, scans, CLI."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import typer

from physgen.calo.simulate.gflash import GFlashEngine
from physgen.diffsim.calorimeter import DiffGFlash
from physgen.diffsim.detector import (
    CalorimeterDesign,
    build_detector,
    cascade_check,
    crossing,
    grid_scan,
    optimise,
    resolution,
)
from physgen.errors import ConfigError, PhysgenError

F64 = torch.float64


def test_cost_falls_with_the_ratio_and_has_the_right_derivative() -> None:
    d = CalorimeterDesign()
    costs = [float(d.cost(r)) for r in (0.3, 0.6, 1.0, 2.0, 4.0)]
    assert costs == sorted(costs, reverse=True)
    r = torch.tensor(1.3, dtype=F64, requires_grad=True)
    (g,) = torch.autograd.grad(d.cost(r), r)
    h = 1e-6
    assert float(g) == pytest.approx(float(d.cost(1.3 + h) - d.cost(1.3 - h)) / (2 * h), rel=1e-7)
    # the formula of the docstring, from the numba engine's medium of the same stack
    med = GFlashEngine(build_detector(d, 1.3)).medium
    expected = math.pi * (2 * med.rm_mm) ** 2 * 25 * med.x0_mm * (1.3 + 10) / 2.3 / 1e6
    assert float(d.cost(1.3)) == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("energies", [[10.0], [5.0, 40.0]])
def test_resolution_derivative_matches_finite_differences(energies: list[float]) -> None:
    d = CalorimeterDesign()
    r = torch.tensor(1.2, dtype=F64, requires_grad=True)
    res = resolution(d, r, energies, 400, 3)
    h = 1e-6
    fd = (resolution(d, 1.2 + h, energies, 400, 3) - resolution(d, 1.2 - h, energies, 400, 3)) / (
        2 * h
    )
    for j in range(len(energies)):
        (g,) = torch.autograd.grad(res[j], r, retain_graph=True)
        assert float(g) == pytest.approx(float(fd[j]), rel=1e-6)
        assert float(g) > 0  # more absorber, worse resolution


def test_stack_detector_has_the_depth_and_medium_of_the_design() -> None:
    from physgen.calo.simulate.materials import get_material

    d = CalorimeterDesign()
    for ratio in (0.55, 1.0, 2.3):
        det = build_detector(d, ratio)
        depth = sum(s.thickness_mm / get_material(s.material).x0_mm for s in det.slabs)
        assert depth == pytest.approx(25.0, abs=1e-9)
        eng = GFlashEngine(det)
        sim = DiffGFlash(d.stack(ratio), None)
        m = sim.medium()
        assert float(m.x0_mm) == pytest.approx(eng.medium.x0_mm, rel=1e-12)
        assert float(sim.sampling_term(m)) == pytest.approx(eng.sampling_term, rel=1e-12)


def test_differentiable_resolution_agrees_with_the_numba_engine() -> None:
    from physgen.calo.simulate.run import shower_seeds

    d = CalorimeterDesign()
    n = 2000
    engine = GFlashEngine(build_detector(d, 1.2))
    x = np.array([engine.simulate_one("electron", 1e4, int(s)).sum() for s in shower_seeds(9, n)])
    ref = x.std(ddof=1) / x.mean()
    ours = float(resolution(d, 1.2, [10.0], 20000, 9)[0])
    err = math.hypot(ref / math.sqrt(2 * n), ours / math.sqrt(2 * 20000))
    assert abs(ours - ref) < 4 * err


def test_descent_reaches_the_constraint() -> None:
    d = CalorimeterDesign()
    result = optimise(d, 0.05, [10.0], n=1000, steps=80, seed=1)
    assert result.resolution[0] == pytest.approx(0.05, rel=0.01)
    assert 0.9 < result.ratio < 1.6 and 0 < result.ratio_error < 0.2
    assert len(result.path) == 81 and result.path[0]["ratio"] == 1.0
    assert result.path[-1]["cost"] < result.path[0]["cost"]
    again = optimise(d, 0.05, [10.0], n=1000, steps=80, seed=1)
    assert again.path == result.path  # seeded: same numbers


def test_crossing_and_grid_scan() -> None:
    rs = np.array([1.0, 2.0, 3.0])
    best = crossing(rs, np.array([0.04, 0.05, 0.07]), np.array([0.0, 0.005, 0.005]), 0.06)
    assert best == pytest.approx((2.5, 2.25, 2.75))
    assert crossing(rs, np.array([0.01, 0.02, 0.03]), np.zeros(3), 0.06) is None
    d = CalorimeterDesign()
    scan = grid_scan(d, [0.6, 1.2, 2.4], 0.05, [10.0], n=300, seed=0, bootstrap=50)
    res = np.array(scan.resolution)[:, 0]
    assert np.all(np.diff(res) > 0) and np.all(np.array(scan.error) > 0)
    assert scan.optimum is not None and 0.6 < scan.optimum[0] < 2.4
    assert scan.optimum[1] <= scan.optimum[0] <= scan.optimum[2]


def test_cascade_spot_check() -> None:
    rows = cascade_check(CalorimeterDesign(), [1.0], 10.0, n=20, seed=0, bootstrap=20)
    c = rows[0]["cascade"]
    assert 0.005 < c["resolution"] < 0.2 and c["error"] > 0
    assert 300 < c["mean_active_mev"] < 2000  # ~10 % of 10 GeV seen in 4 mm LAr gaps


@pytest.mark.parametrize(
    "make",
    [
        lambda: CalorimeterDesign(active_mm=0.0),
        lambda: CalorimeterDesign(depth_x0=-25.0),
        lambda: CalorimeterDesign(cost_ratio=float("nan")),
        lambda: CalorimeterDesign(absorber="Kryptonite"),
        lambda: optimise(CalorimeterDesign(), 0.0),
        lambda: optimise(CalorimeterDesign(), 0.05, []),
        lambda: optimise(CalorimeterDesign(), 0.05, [-10.0]),
        lambda: optimise(CalorimeterDesign(), 0.05, n=2),
        lambda: grid_scan(CalorimeterDesign(), [1.0], 0.05),
        lambda: grid_scan(CalorimeterDesign(), [1.0, -2.0], 0.05),
        lambda: build_detector(CalorimeterDesign(), 0.0),
    ],
)
def test_bad_input_is_a_config_error(make: object) -> None:
    with pytest.raises(ConfigError) as info:
        make()  # type: ignore[operator]
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------ CLI


@pytest.fixture()
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> object:
    """``physgen diffsim optimise-calorimeter`` through :func:`physgen.cli.main.main`."""
    main_mod = importlib.import_module("physgen.cli.main")
    from physgen.cli.diffsim_calo import optimise_calorimeter

    app = typer.Typer(rich_markup_mode=None)
    sub = typer.Typer(no_args_is_help=True, rich_markup_mode=None)
    sub.command("optimise-calorimeter")(optimise_calorimeter)
    app.add_typer(sub, name="diffsim")

    @app.command("noop")
    def _noop() -> None:
        pass

    monkeypatch.setattr(main_mod, "app", app)

    def run(*args: object) -> tuple[int, str, str]:
        rc = main_mod.main(["diffsim", "optimise-calorimeter", *map(str, args)])
        out, err = capsys.readouterr()
        return rc, out, err

    return run


SMALL = ["--n", 300, "--steps", 5, "--grid", "0.8:2:3", "--grid-n", 100]


def test_cli_writes_results_and_figure(cli: object, tmp_path: Path) -> None:
    pytest.importorskip("mplhep")
    out = tmp_path / "opt"
    rc, stdout, err = cli(*SMALL, "--out", out, "--json")  # type: ignore[operator]
    assert rc == 0, err
    assert sorted(p.name for p in out.iterdir()) == ["optimum.png", "results.json"]
    res = json.loads((out / "results.json").read_text())
    assert json.loads(stdout) == res
    assert len(res["optimisation"]["path"]) == 6 and len(res["grid"]["ratios"]) == 3
    assert res["command"].startswith("physgen diffsim optimise-calorimeter")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--active-mm", "-1"], "--active-mm"),
        (["--depth-x0", "0"], "--depth-x0"),
        (["--target-resolution", "0"], "--target-resolution"),
        (["--energy", "1GeV:1TeV"], "--energy"),
        (["--energy", "10MeV"], "GFlash: energy"),
        (["--grid", "2:1:5"], "--grid"),
        (["--cascade", "1,-1"], "--cascade"),
        (["--steps", "0"], "--steps"),
        (["--absorber", "Cheese"], "absorber"),
    ],
)
def test_cli_bad_input_exit_2_nothing_written(
    cli: object, tmp_path: Path, args: list[str], needle: str
) -> None:
    out = tmp_path / "opt"
    rc, _, err = cli(*SMALL, *args, "--out", out)  # type: ignore[operator]
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_library_errors_are_physgen_errors() -> None:
    with pytest.raises(PhysgenError):
        resolution(CalorimeterDesign(), 1.0, [0.005], 20, 0)  # below GFlash's range
