"""Detector stacks for the reference simulators.

A :class:`Detector` is an ordered stack of planar slabs (material, thickness),
perpendicular to the beam, which enters at the origin along +z. Each slab may be
*active* (its deposits are read out) and belongs to at most one readout layer of
a :class:`~physgen.calo.geometry.Geometry`. Transversally the slabs are infinite; the
readout binning decides what is kept (deposits outside the outermost radial or
Cartesian bin are dropped, as in Geant4's Par04 readout mesh).

Built-in detectors (see ``../shared/reference/em-showers.md`` section 4):

* ``par04`` - CaloChallenge datasets 2 and 3: 90 x (1.4 mm W + 0.3 mm Si), Si-only
  readout, two physical layers per readout layer (45 readout layers).
* ``atlas-like`` - dataset 1 photons: a documented Pb/LAr + steel/scintillator
  approximation of the ATLAS barrel at |eta| ~ 0.2 (presampler, EMB1-3, TileBar0).
* ``calogan`` - 80 x (2 mm Pb + 4 mm LAr), LAr readout, readout depths 90/347/43 mm.

Example:
    >>> from physgen.calo.simulate.detector import get_detector
    >>> det = get_detector("par04", geometry="2")
    >>> len(det.slabs), det.total_depth_mm
    (180, 153.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from physgen.calo.geometry import Geometry, get_geometry
from physgen.calo.simulate.materials import Material, get_material
from physgen.errors import SimulationError

__all__ = ["DETECTOR_FOR_GEOMETRY", "Detector", "Slab", "available_detectors", "get_detector"]


@dataclass(frozen=True)
class Slab:
    """One homogeneous slab of the stack.

    Attributes:
        material: Material name (see :mod:`physgen.calo.simulate.materials`).
        thickness_mm: Thickness along the beam, mm.
        active: True if deposits in this slab are read out.
        readout_layer: Layer id in the readout geometry, or None (dead material).
    """

    material: str
    thickness_mm: float
    active: bool = False
    readout_layer: int | None = None


@dataclass(frozen=True)
class Detector:
    """A sampling (or homogeneous) calorimeter.

    Attributes:
        name: Detector name.
        slabs: The stack, front to back.
        geometry: Readout binning.
        particles: Particles this detector is validated for (``"electron"``,
            ``"positron"``, ``"photon"``).
        energy_range_mev: Validated range of incident energies (MeV), inclusive.
        description: One line for humans.
    """

    name: str
    slabs: tuple[Slab, ...]
    geometry: Geometry
    particles: tuple[str, ...]
    energy_range_mev: tuple[float, float]
    description: str = ""
    _arrays: dict[str, npt.NDArray[np.generic]] = field(
        init=False, repr=False, compare=False, default_factory=dict
    )

    def __post_init__(self) -> None:
        ids = {layer.id for layer in self.geometry.relevant_layers}
        for i, slab in enumerate(self.slabs):
            if slab.thickness_mm <= 0:
                raise SimulationError(f"detector {self.name!r}: slab {i} has thickness <= 0")
            if slab.readout_layer is not None and slab.readout_layer not in ids:
                raise SimulationError(
                    f"detector {self.name!r}: slab {i} reads out into layer "
                    f"{slab.readout_layer}, not a layer of geometry {self.geometry.name!r}"
                )
            get_material(slab.material)

    @property
    def materials(self) -> tuple[Material, ...]:
        """Distinct materials of the stack, in order of first appearance."""
        seen: dict[str, Material] = {}
        for slab in self.slabs:
            mat = get_material(slab.material)
            seen.setdefault(mat.name, mat)
        return tuple(seen.values())

    @property
    def total_depth_mm(self) -> float:
        """Depth of the stack, mm."""
        return float(round(sum(s.thickness_mm for s in self.slabs), 9))

    def slab_arrays(self) -> dict[str, npt.NDArray[np.generic]]:
        """The stack as flat arrays for compiled kernels.

        Returns:
            Dict with ``"z_edges"`` (float64, ``(n_slabs + 1,)``, mm),
            ``"material"`` (int64 index into :attr:`materials`), ``"active"``
            (bool) and ``"readout"`` (int64 index into
            ``geometry.relevant_layers``, -1 for none).
        """
        if not self._arrays:
            names = [m.name for m in self.materials]
            layer_index = {layer.id: i for i, layer in enumerate(self.geometry.relevant_layers)}
            z = np.concatenate([[0.0], np.cumsum([s.thickness_mm for s in self.slabs])])
            self._arrays.update(
                z_edges=z.astype(np.float64),
                material=np.array(
                    [names.index(get_material(s.material).name) for s in self.slabs], dtype=np.int64
                ),
                active=np.array([s.active for s in self.slabs], dtype=np.bool_),
                readout=np.array(
                    [
                        layer_index[s.readout_layer]
                        if (s.readout_layer is not None and s.active)
                        else -1
                        for s in self.slabs
                    ],
                    dtype=np.int64,
                ),
            )
        return self._arrays

    def check_request(self, particle: str, energies_mev: npt.ArrayLike) -> None:
        """Raise a clear error if the particle or energies are outside the validated range.

        Raises:
            SimulationError: Unknown particle or energy out of range.
        """
        if particle not in self.particles:
            raise SimulationError(
                f"detector {self.name!r} is validated for {', '.join(self.particles)}, "
                f"not {particle!r}"
            )
        e = np.asarray(energies_mev, dtype=np.float64)
        lo, hi = self.energy_range_mev
        if e.size and (e.min() < lo * (1 - 1e-9) or e.max() > hi * (1 + 1e-9)):
            raise SimulationError(
                f"--energy: detector {self.name!r} is validated for {lo / 1e3:g} GeV to "
                f"{hi / 1e3:g} GeV, got {e.min() / 1e3:g}-{e.max() / 1e3:g} GeV"
            )


def _par04(geometry: str) -> Detector:
    slabs = []
    for k in range(90):
        layer = k // 2
        slabs.append(Slab("W", 1.4, active=False, readout_layer=layer))
        slabs.append(Slab("Si", 0.3, active=True, readout_layer=layer))
    return Detector(
        name="par04",
        slabs=tuple(slabs),
        geometry=get_geometry(geometry),
        particles=("electron", "positron", "photon"),
        energy_range_mev=(1.0e3, 1.0e6),
        description="Geant4 Par04 W/Si: 90 x (1.4 mm W + 0.3 mm Si), Si readout, 45 layers",
    )


def _periods(
    passive: str, d_passive: float, active: str, d_active: float, n: int, layer: int
) -> list[Slab]:
    out = []
    for _ in range(n):
        out.append(Slab(passive, d_passive, active=False, readout_layer=layer))
        out.append(Slab(active, d_active, active=True, readout_layer=layer))
    return out


def _atlas_like() -> Detector:
    # Approximation of the ATLAS barrel at |eta| ~ 0.2 (LAr and Tile TDRs), documented
    # in the README: ~1.7 X0 of dead material (cryostat + solenoid) in front of an 11 mm
    # LAr presampler, 0.5 X0 dead between presampler and EMB1, then accordion Pb/LAr
    # approximated as flat 1.53 mm Pb + 4.2 mm LAr periods: EMB1 ~4.3 X0 (14 periods),
    # EMB2 ~16 X0 (53), EMB3 ~2 X0 (7); ~0.5 X0 of cryostat steel, then TileBar0 as
    # 14 mm Fe + 3 mm scintillator periods over ~300 mm.
    slabs = [Slab("Fe", 30.0)]  # 1.7 X0
    slabs.append(Slab("LAr", 11.0, active=True, readout_layer=0))
    slabs.append(Slab("Fe", 9.0))  # 0.5 X0
    slabs += _periods("Pb", 1.53, "LAr", 4.2, 14, 1)
    slabs += _periods("Pb", 1.53, "LAr", 4.2, 53, 2)
    slabs += _periods("Pb", 1.53, "LAr", 4.2, 7, 3)
    slabs.append(Slab("Fe", 9.0))
    slabs += _periods("Fe", 14.0, "Scint", 3.0, 18, 12)
    return Detector(
        name="atlas-like",
        slabs=tuple(slabs),
        geometry=get_geometry("1-photons"),
        particles=("photon", "electron", "positron"),
        energy_range_mev=(256.0, 4194304.0),
        description="ATLAS-like barrel: presampler, Pb/LAr EMB1-3, steel/scintillator TileBar0",
    )


def _calogan() -> Detector:
    # 80 periods of 2 mm Pb + 4 mm LAr; readout boundaries at 90 and 437 mm from the
    # front split the slab they fall in.
    bounds = (90.0, 437.0, 480.0)
    slabs: list[Slab] = []
    z = 0.0
    for _ in range(80):
        for mat, d, act in (("Pb", 2.0, False), ("LAr", 4.0, True)):
            start, end = z, z + d
            cuts = [start] + [b for b in bounds if start < b < end] + [end]
            for a, b in zip(cuts, cuts[1:]):
                mid = 0.5 * (a + b)
                layer = 0 if mid < bounds[0] else (1 if mid < bounds[1] else 2)
                slabs.append(Slab(mat, round(b - a, 9), active=act, readout_layer=layer))
            z = end
    return Detector(
        name="calogan",
        slabs=tuple(slabs),
        geometry=get_geometry("calogan"),
        particles=("positron", "electron", "photon"),
        energy_range_mev=(1.0e3, 1.0e5),
        description="CaloGAN Pb/LAr: 80 x (2 mm Pb + 4 mm LAr), LAr readout, depths 90/347/43 mm",
    )


#: Default detector for each built-in geometry.
DETECTOR_FOR_GEOMETRY = {
    "2": "par04",
    "3": "par04",
    "1-photons": "atlas-like",
    "calogan": "calogan",
}


def available_detectors() -> tuple[str, ...]:
    """Names of the built-in detectors."""
    return ("par04", "atlas-like", "calogan")


def get_detector(name: str | None = None, geometry: str | None = None) -> Detector:
    """Build a built-in detector.

    Args:
        name: ``"par04"``, ``"atlas-like"`` or ``"calogan"``; default: the detector
            behind ``geometry``.
        geometry: Readout geometry name (``"2"`` or ``"3"`` for ``par04``).

    Raises:
        SimulationError: Unknown detector, or a geometry the detector cannot read out.
    """
    if name is None:
        if geometry is None:
            raise SimulationError("give a detector name or a geometry")
        if geometry not in DETECTOR_FOR_GEOMETRY:
            raise SimulationError(
                f"--geometry: no built-in detector simulates geometry {geometry!r}; "
                f"simulatable: {', '.join(DETECTOR_FOR_GEOMETRY)}"
            )
        name = DETECTOR_FOR_GEOMETRY[geometry]
    if name == "par04":
        geo = geometry or "2"
        if geo not in ("2", "3"):
            raise SimulationError(f"detector 'par04' reads out geometry 2 or 3, not {geo!r}")
        return _par04(geo)
    if name == "atlas-like":
        if geometry not in (None, "1-photons"):
            raise SimulationError(
                f"detector 'atlas-like' reads out geometry 1-photons, not {geometry!r}"
            )
        return _atlas_like()
    if name == "calogan":
        if geometry not in (None, "calogan"):
            raise SimulationError(
                f"detector 'calogan' reads out geometry calogan, not {geometry!r}"
            )
        return _calogan()
    raise SimulationError(
        f"unknown detector {name!r}; built-in: {', '.join(available_detectors())}"
    )
