"""Particle masses for event files (PDG Review of Particle Physics 2024; electron: CODATA 2018).

Only the particles that physgen's processes produce or collide are listed; a particle
missing here is written with the invariant mass of its four-momentum.
"""

from __future__ import annotations

__all__ = ["PDG_MASS_GEV", "pdg_mass"]

#: |PDG id| -> mass in GeV.
PDG_MASS_GEV: dict[int, float] = {
    11: 0.51099895e-3,  # electron
    12: 0.0,  # electron neutrino
    13: 0.1056583755,  # muon
    14: 0.0,  # muon neutrino
    16: 0.0,  # tau neutrino
    21: 0.0,  # gluon
    22: 0.0,  # photon
}


def pdg_mass(pdg: int) -> float | None:
    """Mass in GeV of a particle or antiparticle (None if not in :data:`PDG_MASS_GEV`)."""
    return PDG_MASS_GEV.get(abs(int(pdg)))
