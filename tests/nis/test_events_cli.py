"""Unweighting, LHE/HDF5 event files and the integrate/events commands."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

from physgen.cli.nis import events, integrate
from physgen.errors import ConfigError, PhysgenError
from physgen.nis import EEToMuMu, EEToQQG, generate_events, max_weight, unweighting_stats, write_lhe

torch.set_num_threads(1)


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("integrate")(integrate)
    app.command("events")(events)
    return app


def _invoke(args: list[str]) -> tuple[int, str, BaseException | None]:
    res = CliRunner().invoke(_app(), args)
    return res.exit_code, res.output, res.exception


def test_max_weight_convention() -> None:
    w = torch.tensor([1.0] * 990 + [10.0] * 10, dtype=torch.float64)
    assert max_weight(w, 0.0) == 10.0
    total = float(w.sum())
    wm = max_weight(w, 0.01)
    excess = float((w - wm).clamp(min=0).sum())
    assert excess == pytest.approx(0.01 * total, rel=1e-9)
    st = unweighting_stats(w, 0.01)
    assert st.efficiency == pytest.approx(float(w.mean()) / wm)
    assert st.efficiency_true_max == pytest.approx(float(w.mean()) / 10.0)
    assert st.overweight_xs == pytest.approx(0.01, rel=1e-9)
    # constant weights: efficiency 1
    assert unweighting_stats(torch.ones(100, dtype=torch.float64)).efficiency == pytest.approx(1.0)


def _read_lhe(path: Path) -> tuple[list[float], list[list[list[float]]]]:
    """Minimal parser-free reading of our LHE output: init line and event particle rows."""
    text = path.read_text()
    init = text.split("<init>")[1].split("</init>")[0].split("\n")[1:3]
    xs = [float(v) for v in init[1].split()[:3]]
    evs = []
    for block in re.findall(r"<event>\n(.*?)\n</event>", text, flags=re.S):
        rows = block.split("\n")
        evs.append([[float(v) for v in r.split()] for r in rows[1:]])
    return xs, evs


def test_events_ee_mumu_lhe_roundtrip(tmp_path: Path) -> None:
    out = tmp_path / "ev.lhe"
    code, output, exc = _invoke(
        [
            "events",
            "--process",
            "ee-mumu",
            "--n",
            "500",
            "--out",
            str(out),
            "--method",
            "vegas",
            "--calls",
            "20000",
            "--seed",
            "3",
        ]
    )
    assert code == 0, (output, exc)
    xs, evs = _read_lhe(out)
    assert len(evs) == 500
    exact = EEToMuMu().exact
    assert exact is not None
    assert abs(xs[0] - exact) < 5 * xs[1] + 1e-9
    for rows in evs[:100]:
        p = np.array([r[6:10] for r in rows])
        status = np.array([r[1] for r in rows])
        net = p[status == 1].sum(0) - p[status == -1].sum(0)
        assert np.abs(net).max() < 1e-6
        assert [int(r[0]) for r in rows] == [11, -11, 13, -13]
    # forward-backward asymmetry sign at the Z pole is small; angular shape ~ 1 + cos^2
    cos = np.array([rows[2][8] / rows[2][9] for rows in evs])
    assert abs(np.mean(cos**2) - 0.4) < 0.05  # <cos^2> = 2/5 for 1 + cos^2


def test_lhe_readable_by_pylhe(tmp_path: Path) -> None:
    pylhe = pytest.importorskip("pylhe")
    proc = EEToQQG()
    ev = generate_events(proc, 200, method="vegas", calls=20_000, seed=1, pilot=20_000)
    out = tmp_path / "qqg.lhe"
    write_lhe(
        out,
        ev.beams,
        ev.pdg,
        ev.momenta,
        proc.beam_pdg,
        proc.colors,
        ev.cross_section,
        ev.cross_section_error,
        header="test",
    )
    lhe = pylhe.LHEFile.fromfile(str(out))
    assert lhe.init.initInfo.beamA == 11
    assert lhe.init.procInfo[0].xSection == pytest.approx(ev.cross_section, rel=1e-9)
    n = 0
    for event in lhe.events:
        parts = event.particles
        assert len(parts) == 5
        pin = sum(np.array([p.px, p.py, p.pz, p.e]) for p in parts if p.status == -1)
        pout = sum(np.array([p.px, p.py, p.pz, p.e]) for p in parts if p.status == 1)
        assert np.abs(pin - pout).max() < 1e-6
        # the cut s_ij / s > y_cut holds for every pair
        fs = [np.array([p.e, p.px, p.py, p.pz]) for p in parts if p.status == 1]
        for i in range(3):
            for j in range(i + 1, 3):
                q = fs[i] + fs[j]
                assert (q[0] ** 2 - q[1:] @ q[1:]) / proc.sqrt_s**2 > proc.y_cut - 1e-9
        n += 1
    assert n == 200


def test_events_hdf5_and_bad_out(tmp_path: Path) -> None:
    out = tmp_path / "ev.h5"
    code, output, exc = _invoke(
        ["events", "--process", "ee-mumu", "--n", "50", "--out", str(out), "--method", "uniform"]
    )
    assert code == 0, (output, exc)
    with h5py.File(out) as h:
        assert h["momenta"].shape == (50, 2, 4)
        assert h.attrs["process"] == "ee-mumu"
    code, _, exc = _invoke(
        ["events", "--process", "ee-mumu", "--n", "5", "--out", str(tmp_path / "nodir" / "x.lhe")]
    )
    assert isinstance(exc, ConfigError) and "does not exist" in str(exc)
    bad = tmp_path / "bad.lhe"
    code, _, exc = _invoke(["events", "--process", "zz", "--n", "5", "--out", str(bad)])
    assert isinstance(exc, PhysgenError) and "--process" in str(exc)
    assert not bad.exists()
    # the atomic writer's temporary names are ".NAME.tmp-PID-HEX": none may be left behind
    assert not list(tmp_path.rglob(".*.tmp*"))


def test_integrate_cli_json() -> None:
    code, output, exc = _invoke(
        [
            "integrate",
            "--integrand",
            "camel",
            "--dim",
            "2",
            "--method",
            "vegas",
            "--calls",
            "20000",
            "--eval-calls",
            "50000",
            "--json",
        ]
    )
    assert code == 0, (output, exc)
    d = json.loads(output)
    for key in (
        "integral",
        "error",
        "rel_std",
        "unweighting_efficiency",
        "train_seconds",
        "sample_seconds",
        "calls",
    ):
        assert key in d
    assert abs(d["integral"] - d["exact"]) < 5 * d["error"]
    assert math.isfinite(d["rel_std"])
    code, _, exc = _invoke(
        ["integrate", "--integrand", "camel", "--method", "nis", "--calls", "100"]
    )
    assert isinstance(exc, ConfigError) and "too small" in str(exc)


def test_main_entry_point_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib

    cli_main = importlib.import_module("physgen.cli.main")

    names = {c.name for c in cli_main.app.registered_commands}
    if "integrate" not in names:
        pytest.skip("physgen integrate/events are not registered in physgen.cli.main yet")
    argv = [
        "integrate",
        "--integrand",
        "camel",
        "--dim",
        "2",
        "--method",
        "uniform",
        "--eval-calls",
        "1000",
        "--json",
    ]
    assert cli_main.main(argv) == 0
    assert "integral" in json.loads(capsys.readouterr().out)
    assert cli_main.main(["integrate", "--integrand", "nope"]) == 2
    assert "error: --integrand" in capsys.readouterr().err
    assert cli_main.main(["integrate", "--integrand", "camel", "--calls", "10"]) == 2
    assert "too small" in capsys.readouterr().err


def test_default_training_calls_scale_with_the_events() -> None:
    from physgen.nis import default_training_calls
    from physgen.nis.events import EVENT_CALLS_MAX, EVENT_CALLS_MIN, EVENT_CALLS_PER_EVENT

    assert (EVENT_CALLS_PER_EVENT, EVENT_CALLS_MIN, EVENT_CALLS_MAX) == (2, 50_000, 500_000)
    assert [default_training_calls(n) for n in (1, 1000, 25_000, 60_000, 100_000, 10**6)] == [
        50_000,
        50_000,
        50_000,
        120_000,
        200_000,
        500_000,
    ]
    ns = [1, 10, 1000, 30_000, 99_999, 250_000, 250_001, 10**7]
    calls = [default_training_calls(n) for n in ns]
    assert calls == sorted(calls)  # never less training for more events


def test_events_default_budget_gives_good_events_fast(tmp_path: Path) -> None:
    """1000 ee-mumu events at the default (scaled) budget: efficient and physical."""
    out = tmp_path / "ev.h5"
    code, output, exc = _invoke(
        ["events", "--process", "ee-mumu", "--n", "1000", "--out", str(out), "--seed", "4"]
    )
    assert code == 0, (output, exc)
    assert "trained on" in output and "calls in" in output
    with h5py.File(out) as h:
        assert 40_000 < h.attrs["train_calls"] <= 50_000  # clip(2 * 1000, 50000, ...)
        assert h.attrs["unweighting_efficiency"] > 0.85
        xs, err = h.attrs["cross_section_pb"], h.attrs["cross_section_error_pb"]
        mu_minus = h["momenta"][:, 0, :]
    exact = EEToMuMu().exact
    assert exact is not None and abs(xs - exact) < 5 * err
    cos = mu_minus[:, 3] / np.linalg.norm(mu_minus[:, 1:], axis=1)
    assert abs(np.mean(cos**2) - 0.4) < 0.05  # <cos^2> = 2/5 for 1 + cos^2
    # --calls overrides the rule
    code, output, exc = _invoke(
        ["events", "--process", "ee-mumu", "--n", "100", "--out", str(tmp_path / "b.h5"),
         "--method", "vegas", "--calls", "12000"]
    )  # fmt: skip
    assert code == 0, (output, exc)
    with h5py.File(tmp_path / "b.h5") as h:
        assert 10_000 < h.attrs["train_calls"] <= 12_000 + 2000


def test_progress_bars_on_request_only(capsys: pytest.CaptureFixture[str]) -> None:
    from physgen.nis import Camel, integrate

    kw: dict[str, Any] = {"method": "vegas", "calls": 20_000, "eval_calls": 20_000, "seed": 1}
    integrate(Camel(2), progress=True, **kw)
    err = capsys.readouterr().err
    assert "train camel" in err and "estimate camel" in err
    integrate(Camel(2), progress=None, **kw)  # stderr is not a terminal under pytest
    integrate(Camel(2), progress=False, **kw)
    assert capsys.readouterr().err == ""
    ev = generate_events(EEToMuMu(), 50, method="uniform", pilot=1000, progress=True)
    assert len(ev.y) == 50 and "unweight ee-mumu" in capsys.readouterr().err


def test_cli_threads_option_is_checked_and_restored(tmp_path: Path) -> None:
    before = torch.get_num_threads()
    args = ["integrate", "--integrand", "camel", "--dim", "2", "--method", "uniform"]
    code, output, exc = _invoke([*args, "--eval-calls", "1000", "--threads", "2", "--json"])
    assert code == 0, (output, exc)
    assert torch.get_num_threads() == before
    code, _, exc = _invoke([*args, "--threads", "0"])
    assert isinstance(exc, ConfigError) and "--threads" in str(exc)
    assert torch.get_num_threads() == before
