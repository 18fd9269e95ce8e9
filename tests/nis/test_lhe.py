"""LHE files carry the particles' masses, consistent with the four-momenta (read with pylhe)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from physgen.cli.main import main
from physgen.errors import ConfigError
from physgen.nis import EEToMuMu, EEToQQG, generate_events, write_lhe
from physgen.nis.lhe import particle_masses
from physgen.nis.particles import PDG_MASS_GEV
from physgen.nis.phasespace import put_on_shell, rotate_euler, three_body_momenta

pylhe = pytest.importorskip("pylhe")
torch.set_num_threads(1)

M_E = 0.51099895e-3
M_MU = 0.1056583755


def _read(path: Path) -> tuple[Any, list[Any]]:
    lhe = pylhe.LHEFile.fromfile(str(path))
    return lhe, list(lhe.events)


def _four(part: Any) -> np.ndarray:
    return np.array([part.e, part.px, part.py, part.pz])


def _mass2(q: np.ndarray) -> float:
    return float(q[0] ** 2 - q[1:] @ q[1:])


def _header_info(lhe: Any) -> dict[str, str]:
    assert lhe.header is not None
    found = [el.attrib for el in lhe.header.extra_elements if el.tag == "physgen_generation"]
    assert len(found) == 1
    return dict(found[0])


def test_pdg_masses() -> None:
    assert PDG_MASS_GEV[13] == M_MU and PDG_MASS_GEV[11] == M_E
    assert PDG_MASS_GEV[21] == PDG_MASS_GEV[22] == 0.0


def test_ee_mumu_lhe_has_muon_and_electron_masses(tmp_path: Path) -> None:
    """Through the command line: masses, E^2 - p^2 = m^2, conservation, the cross section."""
    out = tmp_path / "mumu.lhe"
    argv = ["events", "--process", "ee-mumu", "--n", "300", "--out", str(out)]
    assert main([*argv, "--method", "vegas", "--calls", "20000", "--seed", "4"]) == 0
    lhe, events = _read(out)
    assert len(events) == 300
    sqrt_s = EEToMuMu().sqrt_s
    assert lhe.init.initInfo.energyA == lhe.init.initInfo.energyB == pytest.approx(sqrt_s / 2)
    proc = lhe.init.procInfo[0]
    exact = EEToMuMu().exact
    assert exact is not None
    assert abs(proc.xSection - exact) < 5 * proc.error  # the massless Born cross section
    info = _header_info(lhe)
    assert float(info["cross_section_pb"]) == proc.xSection  # header repeats <init>
    assert float(info["cross_section_error_pb"]) == proc.error
    assert int(info["n_events"]) == 300
    assert math.fsum(ev.eventinfo.weight for ev in events) == pytest.approx(proc.xSection, 1e-12)
    for ev in events:
        ids = [int(p.id) for p in ev.particles]
        assert ids == [11, -11, 13, -13]
        for p in ev.particles:
            m = M_E if abs(p.id) == 11 else M_MU
            assert p.m == m  # the PDG value, to the last digit
            q = _four(p)
            # E^2 - |p|^2 = m^2 from the numbers in the file: float64 rounding of E^2 only
            assert abs(_mass2(q) - m * m) <= 2e-15 * q[0] ** 2, (p.id, _mass2(q), m * m)
        pin = sum(_four(p) for p in ev.particles if p.status == -1)
        pout = sum(_four(p) for p in ev.particles if p.status == 1)
        np.testing.assert_allclose(pout, pin, rtol=0, atol=1e-12 * sqrt_s)
        np.testing.assert_allclose(pin, [sqrt_s, 0, 0, 0], rtol=0, atol=1e-12 * sqrt_s)


def test_ee_qqg_lhe_massless_partons_massive_beams(tmp_path: Path) -> None:
    proc = EEToQQG()
    ev = generate_events(proc, 100, method="vegas", calls=20_000, seed=2, pilot=20_000)
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
        header='{"note": "a & b < c"}',  # XML special characters are escaped
    )
    lhe, events = _read(out)
    assert lhe.init.procInfo[0].xSection == ev.cross_section
    assert len(events) == 100
    for e in events:
        for p in e.particles:
            q = _four(p)
            if p.status == -1:
                assert p.m == M_E
                assert abs(_mass2(q) - M_E**2) <= 2e-15 * q[0] ** 2
            else:  # quarks and gluon of the massless five-flavour matrix element
                assert p.m == 0.0
                assert abs(_mass2(q)) <= 1e-13 * proc.sqrt_s**2  # rounding at the scale sqrt(s)
        pin = sum(_four(p) for p in e.particles if p.status == -1)
        pout = sum(_four(p) for p in e.particles if p.status == 1)
        np.testing.assert_allclose(pout, pin, rtol=0, atol=1e-9 * proc.sqrt_s)


def test_masses_do_not_change_the_matrix_elements(monkeypatch: pytest.MonkeyPatch) -> None:
    """The integrands (cross sections) stay massless: only the event momenta get masses."""
    y = torch.rand(1000, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    proc = EEToQQG()
    f = proc(y)
    beams = proc.massless_beam_momenta(3)
    assert torch.equal(beams[:, 0, 0], beams[:, 0, 3])  # massless: E = p_z
    b = proc.beam_momenta(2)  # the on-shell beams of event files
    assert float(b[0, 0, 0] ** 2 - b[0, 0, 3] ** 2) == pytest.approx(M_E**2, rel=1e-5)
    # the matrix element never sees the massive beams
    monkeypatch.setattr(EEToQQG, "beam_momenta", lambda self, n: torch.full((n, 2, 4), 1e9))
    assert torch.equal(proc(y), f)
    mumu = EEToMuMu()
    exact = mumu.exact
    assert exact is not None and exact == pytest.approx(1876.7, rel=1e-3)  # unchanged Born


def test_two_body_on_shell_closed_form() -> None:
    proc = EEToMuMu()
    y = torch.rand(500, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    pdg, p = proc.final_state(y, torch.Generator())
    e = proc.sqrt_s / 2
    pabs = math.sqrt(e * e - M_MU**2)
    torch.testing.assert_close(
        p[..., 0], torch.full((500, 2), e, dtype=torch.float64), rtol=1e-15, atol=0
    )
    norm = torch.linalg.vector_norm(p[..., 1:], dim=-1)
    torch.testing.assert_close(
        norm, torch.full((500, 2), pabs, dtype=torch.float64), rtol=1e-14, atol=0
    )
    torch.testing.assert_close(p[:, 0, 1:], -p[:, 1, 1:], rtol=0, atol=0)
    assert torch.equal(pdg[0], torch.tensor([13, -13]))
    with pytest.raises(ConfigError, match="2 m_mu"):
        EEToMuMu(sqrt_s=0.2)


@settings(max_examples=100, deadline=None)
@given(
    st.floats(10.0, 1000.0),
    st.lists(st.floats(0.0, 0.3), min_size=3, max_size=3),
    st.integers(0, 2**31),
)
def test_put_on_shell_conserves_and_keeps_directions(
    sqrt_s: float, fractions: list[float], seed: int
) -> None:
    g = torch.Generator().manual_seed(seed)
    y = torch.rand(64, 5, generator=g, dtype=torch.float64) * 0.8 + 0.1
    x1, x2 = 1 - 0.5 * y[:, 0], 1 - 0.5 * y[:, 1]  # a valid three-body point
    p0 = rotate_euler(
        three_body_momenta(sqrt_s, x1, x2), 2 * y[:, 2] - 1, 6.28 * y[:, 3], 6.28 * y[:, 4]
    )
    # masses up to 30% of the smallest energy available
    masses = torch.tensor(fractions, dtype=torch.float64) * float(p0[..., 0].min())
    p = put_on_shell(p0, masses, sqrt_s)
    m2 = p[..., 0] ** 2 - (p[..., 1:] ** 2).sum(-1)
    torch.testing.assert_close(m2, (masses**2).expand(64, 3), rtol=0, atol=1e-12 * sqrt_s**2)
    torch.testing.assert_close(
        p[..., 0].sum(-1), torch.full((64,), sqrt_s, dtype=torch.float64), rtol=1e-14, atol=0
    )
    torch.testing.assert_close(
        p[..., 1:].sum(1), torch.zeros(64, 3, dtype=torch.float64), rtol=0, atol=1e-11 * sqrt_s
    )
    cos = (p[..., 1:] * p0[..., 1:]).sum(-1) / (
        torch.linalg.vector_norm(p[..., 1:], dim=-1) * torch.linalg.vector_norm(p0[..., 1:], dim=-1)
    )
    torch.testing.assert_close(cos, torch.ones_like(cos), rtol=0, atol=1e-12)


def test_put_on_shell_refuses_masses_above_sqrt_s() -> None:
    p = torch.tensor([[[5.0, 0, 0, 5.0], [5.0, 0, 0, -5.0]]], dtype=torch.float64)
    with pytest.raises(ConfigError, match="not below sqrt_s"):
        put_on_shell(p, torch.tensor([5.0, 5.0]), 10.0)
    assert torch.equal(put_on_shell(p, torch.zeros(2), 10.0), p)


def test_particle_masses_follow_the_momenta() -> None:
    e = 45.0
    on = math.sqrt(e * e - M_E**2)
    mom = torch.tensor(
        [[[e, 0, 0, on], [e, 0, 0, e], [e, 0, 0, math.sqrt(e * e - 4.0)], [e, 0, 0, e]]],
        dtype=torch.float64,
    )
    pdg = torch.tensor([[11, -11, 13, 1]])
    m = particle_masses(pdg, mom)[0].tolist()
    assert m[0] == M_E  # on the electron's shell: the PDG value
    assert m[1] == 0.0  # a massless electron momentum is written massless
    assert m[2] == pytest.approx(2.0, rel=1e-12)  # off the muon shell: its invariant mass
    assert m[3] == 0.0  # a quark (not in the table): the invariant mass
