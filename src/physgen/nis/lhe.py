"""Les Houches Event (LHE, version 3.0) writer for unweighted e+e- events.

Each event lists the two beams (status -1) and the final-state particles (status 1) with
four-momenta and masses in GeV; all events carry the weight ``XWGTUP = sigma / N`` (pb),
so the weights sum to the cross section (``IDWTUP = 3``: unit-weight events).

The ``<header>`` holds the caller's provenance text (XML-escaped) and one element
``<physgen_generation n_events=... cross_section_pb=... cross_section_error_pb=...
event_weight_pb=.../>`` repeating the ``<init>`` numbers for tools that read headers.

The mass column (``PUP(5)``) is each particle's mass: the PDG mass
(:data:`~physgen.nis.particles.PDG_MASS_GEV`) where the four-momentum is on that shell,
otherwise the invariant mass ``sqrt(E^2 - |p|^2)`` of the four-momentum (0 for the
massless quarks and gluon of ``ee-qqg``), so ``E^2 - |p|^2 = m^2`` holds for every line
to the precision of the numbers. Numbers are written with 17 significant digits (float64
round trip), so that ``E^2 - |p|^2`` can be recomputed from the file: the relative
rounding of ``m^2`` is then about ``1e-16 E^2 / m^2`` (1e-10 for 45 GeV muons, 1e-6 for
45 GeV electrons).
"""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

import torch
from torch import Tensor

from physgen.errors import ConfigError, DataFormatError
from physgen.nis.particles import pdg_mass
from physgen.outputs import atomic_write_text

__all__ = ["particle_masses", "write_lhe"]

#: A momentum counts as on the mass shell m when ``|E^2 - |p|^2 - m^2| <= tol W^2``, W the
#: summed energy of the event's particles (sqrt(s) for a final state): some hundred float64
#: rounding units of the scale at which the phase-space momenta were built.
_ON_SHELL_TOLERANCE = 1e-13


def _fmt(v: float) -> str:
    return f"{v: .16e}"


def particle_masses(pdg: Tensor, momenta: Tensor) -> Tensor:
    """Masses for the LHE mass column (GeV), consistent with the four-momenta.

    Args:
        pdg: PDG ids ``(n, k)``.
        momenta: Four-momenta ``(n, k, 4)`` in GeV, ``(E, px, py, pz)``.

    Returns:
        ``(n, k)`` float64: the PDG mass where ``|E^2 - |p|^2 - m_PDG^2|`` is within
        float64 rounding (``1e-13 W^2``, ``W`` the summed energy of the ``k`` particles),
        else 0 where ``|E^2 - |p|^2|`` is, else ``sqrt(max(E^2 - |p|^2, 0))``.
    """
    p = momenta.to(torch.float64)
    e = p[..., 0]
    pabs = torch.linalg.vector_norm(p[..., 1:], dim=-1)
    m2 = (e - pabs) * (e + pabs)
    tol = _ON_SHELL_TOLERANCE * e.sum(-1, keepdim=True) ** 2
    out = torch.where(m2.abs() <= tol, torch.zeros_like(m2), torch.sqrt(m2.clamp(min=0.0)))
    for pid in torch.unique(pdg.abs()).tolist():
        m = pdg_mass(int(pid))
        if m is None:
            continue
        sel = (pdg.abs() == pid) & ((m2 - m * m).abs() <= tol)
        out = torch.where(sel, torch.full_like(out, m), out)
    return out


def write_lhe(
    path: str | Path,
    beams: Tensor,
    pdg: Tensor,
    momenta: Tensor,
    beam_pdg: tuple[int, int],
    colors: tuple[tuple[int, int], ...],
    cross_section: float,
    cross_section_error: float,
    header: str = "",
    masses: Tensor | None = None,
) -> None:
    """Write events atomically (temporary file in the target folder, then rename).

    Args:
        path: Output ``.lhe`` file; its folder must exist.
        beams: Incoming momenta ``(n, 2, 4)`` in GeV, ``(E, px, py, pz)``.
        pdg: Final-state PDG ids ``(n, k)``.
        momenta: Final-state momenta ``(n, k, 4)`` in GeV.
        beam_pdg: PDG ids of the beams.
        colors: ``(colour, anticolour)`` of each final-state particle.
        cross_section: Total cross section in pb.
        cross_section_error: Its uncertainty in pb.
        header: Free text for the ``<header>`` block (provenance).
        masses: Final-state masses ``(n, k)`` in GeV for the mass column (default:
            :func:`particle_masses` of ``pdg`` and ``momenta``); the beams' masses are
            always :func:`particle_masses` of theirs.

    Raises:
        ConfigError: The folder does not exist or shapes disagree.
    """
    path = Path(path)
    if not path.parent.exists():
        raise ConfigError(f"--out: folder {path.parent} does not exist")
    n, k = pdg.shape
    if momenta.shape != (n, k, 4) or beams.shape != (n, 2, 4) or len(colors) != k:
        raise DataFormatError("write_lhe: pdg, momenta, beams and colors have inconsistent shapes")
    if masses is not None and tuple(masses.shape) != (n, k):
        raise DataFormatError(f"write_lhe: masses must have shape ({n}, {k}), got {masses.shape}")
    mass = (particle_masses(pdg, momenta) if masses is None else masses).tolist()
    ids_b = torch.tensor([beam_pdg], dtype=torch.int64).expand(n, 2)
    mass_b = particle_masses(ids_b, beams).tolist()
    weight = cross_section / max(n, 1)
    e1, e2 = float(beams[0, 0, 0]) if n else 0.0, float(beams[0, 1, 0]) if n else 0.0
    lines = [
        '<LesHouchesEvents version="3.0">',
        "<header>",
        "<!-- written by physgen.nis -->",
        escape(header.replace("--", "- -")),
        f'<physgen_generation n_events="{n}" cross_section_pb="{float(cross_section)!r}" '
        f'cross_section_error_pb="{float(cross_section_error)!r}" '
        f'event_weight_pb="{float(weight)!r}"/>',
        "</header>",
        "<init>",
        f" {beam_pdg[0]} {beam_pdg[1]} {_fmt(e1)} {_fmt(e2)} 0 0 0 0 3 1",
        f" {_fmt(cross_section)} {_fmt(cross_section_error)} {_fmt(weight)} 1",
        "</init>",
    ]
    b = beams.tolist()
    p = momenta.tolist()
    ids = pdg.tolist()
    for i in range(n):
        ev = ["<event>", f" {k + 2} 1 {_fmt(weight)} {_fmt(e1 + e2)} {_fmt(-1.0)} {_fmt(-1.0)}"]
        for j in range(2):
            e, px, py, pz = b[i][j]
            ev.append(
                f" {beam_pdg[j]} -1 0 0 0 0 {_fmt(px)} {_fmt(py)} {_fmt(pz)} {_fmt(e)} "
                f"{_fmt(mass_b[i][j])} 0.0 9.0"
            )
        for j in range(k):
            e, px, py, pz = p[i][j]
            col, acol = colors[j]
            ev.append(
                f" {ids[i][j]} 1 1 2 {col} {acol} {_fmt(px)} {_fmt(py)} {_fmt(pz)} "
                f"{_fmt(e)} {_fmt(mass[i][j])} 0.0 9.0"
            )
        ev.append("</event>")
        lines.extend(ev)
    lines.append("</LesHouchesEvents>")
    atomic_write_text(path, "\n".join(lines) + "\n")
