"""Materials for the reference simulators.

Every material knows its composition (element Z, A and mass fraction), density
and mean excitation energy; the radiation length is *computed* from the Tsai
formula (PDG "Passage of particles through matter", Tsai 1974) and checked in
the tests against the PDG table. Critical energies (Rossi definition, e-) are
the PDG tabulated values; the Moliere radius follows as R_M = X0 E_s / E_c.

Units: A in g/mol, density in g/cm^3, X0 in g/cm^2 (``x0_gcm2``) and mm
(``x0_mm``), energies in MeV, I in eV, R_M in mm.

Example:
    >>> from physgen.calo.simulate.materials import get_material
    >>> round(get_material("W").x0_mm, 2)
    3.5
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from physgen.errors import SimulationError

__all__ = [
    "ELECTRON_MASS_MEV",
    "ES_MEV",
    "MATERIALS",
    "Element",
    "Material",
    "get_material",
    "tsai_radiation_length",
]

ELECTRON_MASS_MEV = 0.51099895
#: Scale energy of the Moliere radius, m_e c^2 sqrt(4 pi / alpha), MeV.
ES_MEV = 21.2052
FINE_STRUCTURE = 1.0 / 137.035999084
#: (4 alpha r_e^2 N_A)^-1 in g/cm^2 * (g/mol)^-1 (PDG): X0 = 716.408 A / {...}.
_TSAI_PREFACTOR = 716.408


@dataclass(frozen=True)
class Element:
    """A chemical element: atomic number ``z`` and molar mass ``a`` (g/mol)."""

    symbol: str
    z: int
    a: float


def _coulomb_correction(z: int) -> float:
    a2 = (FINE_STRUCTURE * z) ** 2
    return a2 * (1.0 / (1.0 + a2) + 0.20206 - 0.0369 * a2 + 0.0083 * a2**2 - 0.002 * a2**3)


def _radiation_logs(z: int) -> tuple[float, float]:
    """L_rad and L'_rad of Tsai (tabulated for Z <= 4)."""
    table = {1: (5.31, 6.144), 2: (4.79, 5.621), 3: (4.74, 5.805), 4: (4.71, 5.924)}
    if z in table:
        return table[z]
    return math.log(184.15 * z ** (-1.0 / 3.0)), math.log(1194.0 * z ** (-2.0 / 3.0))


def tsai_radiation_length(z: int, a: float) -> float:
    """Radiation length of an element from the Tsai formula.

    Args:
        z: Atomic number.
        a: Molar mass in g/mol.

    Returns:
        X0 in g/cm^2.
    """
    l_rad, l_rad_prime = _radiation_logs(z)
    bracket = z * z * (l_rad - _coulomb_correction(z)) + z * l_rad_prime
    return _TSAI_PREFACTOR * a / bracket


@dataclass(frozen=True)
class Material:
    """A homogeneous material.

    Attributes:
        name: Short name (``"W"``, ``"LAr"``...).
        components: ``((Element, mass fraction), ...)``; fractions sum to 1.
        density: g/cm^3.
        critical_energy_mev: Rossi critical energy for electrons (PDG table), MeV.
        mean_excitation_ev: Mean excitation energy I, eV.
        x0_pdg_gcm2: PDG tabulated X0 in g/cm^2 (for cross-checks only).
    """

    name: str
    components: tuple[tuple[Element, float], ...]
    density: float
    critical_energy_mev: float
    mean_excitation_ev: float
    x0_pdg_gcm2: float

    @property
    def x0_gcm2(self) -> float:
        """Radiation length in g/cm^2 from the Tsai formula (1/X0 = sum w_j / X0_j)."""
        inv = sum(w / tsai_radiation_length(el.z, el.a) for el, w in self.components)
        return 1.0 / inv

    @property
    def x0_mm(self) -> float:
        """Radiation length in mm."""
        return 10.0 * self.x0_gcm2 / self.density

    @property
    def moliere_radius_mm(self) -> float:
        """Moliere radius R_M = X0 E_s / E_c, mm."""
        return self.x0_mm * ES_MEV / self.critical_energy_mev

    @property
    def z_over_a(self) -> float:
        """<Z/A> in mol/g (electron density per gram / N_A)."""
        return sum(w * el.z / el.a for el, w in self.components)

    @property
    def z_eff(self) -> float:
        """Mass-weighted mean atomic number (GFlash convention)."""
        return sum(w * el.z for el, w in self.components)

    @property
    def a_eff(self) -> float:
        """Mass-weighted mean molar mass, g/mol (GFlash convention)."""
        return sum(w * el.a for el, w in self.components)

    @property
    def electron_density_per_mm3(self) -> float:
        """Electrons per mm^3."""
        return self.density * self.z_over_a * 6.02214076e23 / 1000.0


def _compound(parts: dict[Element, float]) -> tuple[tuple[Element, float], ...]:
    """Mass fractions from atom counts."""
    total = sum(el.a * n for el, n in parts.items())
    return tuple((el, el.a * n / total) for el, n in parts.items())


_H = Element("H", 1, 1.008)
_C = Element("C", 6, 12.011)
_O = Element("O", 8, 15.999)
_SI = Element("Si", 14, 28.0855)
_AR = Element("Ar", 18, 39.948)
_FE = Element("Fe", 26, 55.845)
_CU = Element("Cu", 29, 63.546)
_W = Element("W", 74, 183.84)
_PB = Element("Pb", 82, 207.2)

#: PDG properties (critical energies, I, densities); see docs/reference and tests.
MATERIALS: dict[str, Material] = {
    "W": Material("W", ((_W, 1.0),), 19.30, 7.97, 727.0, 6.76),
    "Pb": Material("Pb", ((_PB, 1.0),), 11.35, 7.43, 823.0, 6.37),
    "Fe": Material("Fe", ((_FE, 1.0),), 7.874, 21.68, 286.0, 13.84),
    "Cu": Material("Cu", ((_CU, 1.0),), 8.960, 19.42, 322.0, 12.86),
    "Si": Material("Si", ((_SI, 1.0),), 2.329, 40.19, 173.0, 21.82),
    "LAr": Material("LAr", ((_AR, 1.0),), 1.396, 32.84, 188.0, 19.55),
    "PbWO4": Material("PbWO4", _compound({_PB: 1, _W: 1, _O: 4}), 8.30, 9.64, 600.7, 7.39),
    # Polyvinyltoluene (C9H10)n; PDG "plastic scintillator (vinyltoluene based)".
    "Scint": Material("Scint", _compound({_C: 9, _H: 10}), 1.032, 94.0, 64.7, 43.90),
}

_ALIASES = {
    "lar": "LAr",
    "liquid-argon": "LAr",
    "liquidargon": "LAr",
    "ar": "LAr",
    "scintillator": "Scint",
    "plastic": "Scint",
    "pvt": "Scint",
    "scint": "Scint",
    "pbwo4": "PbWO4",
    "w": "W",
    "tungsten": "W",
    "pb": "Pb",
    "lead": "Pb",
    "fe": "Fe",
    "iron": "Fe",
    "cu": "Cu",
    "copper": "Cu",
    "si": "Si",
    "silicon": "Si",
}


def get_material(name: str) -> Material:
    """Look up a material by name (case-insensitive, with common aliases).

    Raises:
        SimulationError: For an unknown material.
    """
    key = _ALIASES.get(name.lower(), name)
    if key not in MATERIALS:
        raise SimulationError(f"unknown material {name!r}; known: {', '.join(sorted(MATERIALS))}")
    return MATERIALS[key]
