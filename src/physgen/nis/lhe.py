"""Les Houches Event (LHE, version 3.0) writer for unweighted e+e- events.

Each event lists the two beams (status -1) and the final-state particles (status 1) with
four-momenta and masses in GeV; all events carry the weight ``XWGTUP = sigma / N`` (pb),
so the weights sum to the cross section (``IDWTUP = 3``: unit-weight events).
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from physgen.errors import ConfigError, DataFormatError
from physgen.outputs import atomic_write_text

__all__ = ["write_lhe"]


def _fmt(v: float) -> str:
    return f"{v: .10e}"


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

    Raises:
        ConfigError: The folder does not exist or shapes disagree.
    """
    path = Path(path)
    if not path.parent.exists():
        raise ConfigError(f"--out: folder {path.parent} does not exist")
    n, k = pdg.shape
    if momenta.shape != (n, k, 4) or beams.shape != (n, 2, 4) or len(colors) != k:
        raise DataFormatError("write_lhe: pdg, momenta, beams and colors have inconsistent shapes")
    weight = cross_section / max(n, 1)
    e1, e2 = float(beams[0, 0, 0]) if n else 0.0, float(beams[0, 1, 0]) if n else 0.0
    lines = [
        '<LesHouchesEvents version="3.0">',
        "<header>",
        "<!-- written by physgen.nis -->",
        header.replace("--", "- -"),
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
                f"{_fmt(0.0)} 0.0 9.0"
            )
        for j in range(k):
            e, px, py, pz = p[i][j]
            col, acol = colors[j]
            ev.append(
                f" {ids[i][j]} 1 1 2 {col} {acol} {_fmt(px)} {_fmt(py)} {_fmt(pz)} "
                f"{_fmt(e)} {_fmt(0.0)} 0.0 9.0"
            )
        ev.append("</event>")
        lines.extend(ev)
    lines.append("</LesHouchesEvents>")
    atomic_write_text(path, "\n".join(lines) + "\n")
