"""Particle-by-particle EM cascade Monte Carlo (the default engine of ``physgen simulate``).

A stochastic 3D simulation of electrons, positrons and photons in the planar slab
stack of a :class:`~physgen.calo.simulate.detector.Detector`:

* bremsstrahlung: complete-screening spectrum times the Bethe-Heitler screening
  ratio (few-MeV electrons radiate less), continuous below ``brems_cut_mev``, discrete
  above, Migdal (LPM) suppression optional;
* pair production: Bethe-Heitler with screening functions (threshold behaviour kept,
  empirical Coulomb factor below 50 MeV); Compton scattering: Klein-Nishina on Z
  electrons; photoelectric absorption: Z- and E-power law fitted to the Elam
  photo/Compton crossovers (W 467 keV, Si 57 keV), photo-electrons tracked;
* continuous ionisation loss: Rohrlich-Carlson (ICRU 37) with the Sternheimer-Peierls
  density effect (no discrete delta rays);
* multiple scattering: Highland, generalised to large angles, with correlated lateral
  displacement and the true-path to geometric-path correction;
* positron annihilation at rest into two back-to-back 511 keV photons.

Steps stop at every slab boundary; an e+/e- whose CSDA range is shorter than its distance
to the nearest slab face (and than ``CascadeCuts.final_range_mm``) cannot leave its slab
and is finished in one step (a discrete brems on the way is placed by the integral
method). Deposits are scored in active slabs and voxelised by (readout layer, alpha,
r). The physics and its validation targets are in ``../shared/reference/em-showers.md``
(sections 2 and 9); the measured results are in ``bench/results/physics_validation.md``
(produced by ``bench/validate_physics.py``; the measurements themselves are
:mod:`physgen.calo.simulate.cascade_validation`).

The cost grows linearly with the incident energy, as for Geant4. Each shower is
seeded by its own 64-bit integer, so the same seed gives the same bytes in any
process, independent of batching.

Example:
    >>> from physgen.calo.simulate.detector import get_detector
    >>> engine = CascadeEngine(get_detector("par04", geometry="2"))  # doctest: +SKIP
    >>> raw = engine.simulate_one("electron", 10_000.0, seed=1)  # doctest: +SKIP
    >>> calibrated = raw / engine.sampling_fraction  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from physgen.calo.geometry import Geometry, Layer
from physgen.calo.simulate.cascade_physics import build_tables
from physgen.calo.simulate.detector import Detector, Slab
from physgen.calo.simulate.materials import ELECTRON_MASS_MEV, get_material
from physgen.calo.simulate.voxelise import accumulate_deposits, voxel_table
from physgen.errors import ConfigError, SimulationError

__all__ = [
    "SAMPLING_FRACTIONS",
    "CascadeCuts",
    "CascadeEngine",
    "ShowerStats",
    "bulk_detector",
]

logger = logging.getLogger(__name__)

_PARTICLES = {"photon": 0, "electron": 1, "positron": 2}

#: Calibration constants E_active / E_incident (raw, all radii, no leakage correction) of
#: the cascade engine with the default :class:`CascadeCuts`, measured with
#: ``bench/validate_physics.py`` (bench/results/physics_validation.json): par04 - mean
#: over 1, 10, 100 GeV and 1 TeV electrons (1000/300/100/30 showers; the four energies
#: agree within 0.6 %, the statistical error at 1 GeV being 0.4 %); atlas-like - 10 and
#: 100 GeV photons (60/12 showers; Pb/LAr with LAr presampler and steel/scintillator
#: active layers); calogan - 1, 10, 100 GeV positrons (200/60/12 showers, LAr). The
#: driver divides the raw voxel energies by it.
SAMPLING_FRACTIONS: dict[str, float] = {
    "par04": 0.02479,
    "atlas-like": 0.2089,
    "calogan": 0.1643,
}


@dataclass(frozen=True)
class CascadeCuts:
    """Tracking cuts and step controls of the cascade engine.

    Attributes:
        electron_cut_mev: e+/e- are followed down to this kinetic energy (MeV); the rest
            is deposited where the particle is (positrons then annihilate at rest).
        photon_cut_mev: Photons below this energy (MeV) are deposited locally.
        brems_cut_mev: Bremsstrahlung photons below this energy (MeV) are a continuous
            loss, above it they are produced and tracked.
        max_step_x0: Largest e+/e- step in radiation lengths of the current material.
        max_loss_fraction: Largest fractional continuous energy loss per e+/e- step.
        lpm: Apply Migdal (LPM) suppression to soft bremsstrahlung at high energy.
        count_cut_mev: Created charged tracks above this kinetic energy (MeV) are
            counted in the diagnostics (:class:`ShowerStats`).
        bremsstrahlung: False switches radiative losses off (for validating multiple
            scattering and ionisation alone; never for production).
        final_range_mm: An e+/e- whose CSDA range (mm, from the same continuous loss)
            is at most this, at most the max step and at most its distance to the
            nearest slab face is finished in one step: it cannot leave its slab, so all
            its energy stays there whatever its path (a discrete brems emission on the way
            is still placed, by the integral method, where the brems interaction lengths
            to rest run out). Like Geant4's ``finalRange`` of the e+/e- step function (1 mm
            in its standard EM physics), but only where no boundary is in reach, so the
            energy shared between slabs (the sampling fraction) and the boundary
            crossings are unchanged; the deposit goes to the mean point of the track
            (less than the range, well below a voxel, away from the start) and the
            track length counts the CSDA range. 0 switches it off (every step is then
            limited by ``max_loss_fraction``). Most tracks of a W/Si shower are sub-MeV
            electrons in the absorber: in Par04 the e+/e- steps drop from 7.6 to 3.4 per
            track (``bench/results/physics_validation.md``: sampling fraction and
            resolution unchanged).
    """

    electron_cut_mev: float = 0.1
    photon_cut_mev: float = 0.01
    brems_cut_mev: float = 0.1
    max_step_x0: float = 0.2
    max_loss_fraction: float = 0.2
    lpm: bool = True
    count_cut_mev: float = 1.0
    bremsstrahlung: bool = True
    final_range_mm: float = 1.0

    def __post_init__(self) -> None:
        for name in ("electron_cut_mev", "photon_cut_mev", "brems_cut_mev", "count_cut_mev"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(
                    f"CascadeCuts.{name}: expected a positive energy in MeV, got {v!r}"
                )
        if not (0.0 < self.max_step_x0 <= 5.0):
            raise ConfigError(
                f"CascadeCuts.max_step_x0: expected 0 < value <= 5, got {self.max_step_x0!r}"
            )
        if not (0.0 < self.max_loss_fraction <= 0.5):
            raise ConfigError(
                f"CascadeCuts.max_loss_fraction: expected 0 < value <= 0.5, got {self.max_loss_fraction!r}"
            )
        v = self.final_range_mm
        if not (
            isinstance(v, (int, float))
            and not isinstance(v, bool)
            and math.isfinite(v)
            and 0.0 <= v <= 100.0
        ):
            raise ConfigError(
                f"CascadeCuts.final_range_mm: expected a length in mm, 0 <= value <= 100, got {v!r}"
            )

    def as_array(self) -> npt.NDArray[np.float64]:
        """The kernel's parameter vector (see :mod:`physgen.calo.simulate.cascade_kernel`)."""
        return np.array(
            [
                self.electron_cut_mev,
                self.photon_cut_mev,
                self.brems_cut_mev,
                self.max_step_x0,
                self.max_loss_fraction,
                1.0 if self.lpm else 0.0,
                self.count_cut_mev,
                self.final_range_mm,
            ],
            dtype=np.float64,
        )


@dataclass(frozen=True)
class ShowerStats:
    """Diagnostics of one simulated shower.

    Attributes:
        voxels: ``(n_voxels,)`` raw active deposits, MeV.
        slab_energy: ``(n_slabs,)`` energy deposited in every slab (any material), MeV.
        leak_front: Energy leaving through the front face (backscatter), MeV.
        leak_back: Energy leaving through the back face, MeV.
        n_charged_above_cut: Charged tracks created above ``count_cut_mev``.
        n_charged: All charged tracks.
        n_photons: Photons created (brems and annihilation).
        track_length_mm: Total charged track length, mm.
        n_steps: Number of charged-particle steps.
        first_interaction_mm: Depth of the first interaction of a primary photon, mm.
        first_pair_fraction: Electron total-energy fraction of that interaction if it
            was a conversion, else -1.
        primary_exit: ``(5,)`` direction (ux, uy, uz) and position (x, y) in mm of the
            primary when it leaves the stack (zeros if it does not).
        incident_energy_mev: Kinetic energy of the primary (MeV).
        available_energy_mev: Energy to account for: kinetic energy plus 2 m_e for a
            positron primary (annihilation), MeV.
    """

    voxels: npt.NDArray[np.float64]
    slab_energy: npt.NDArray[np.float64]
    leak_front: float
    leak_back: float
    n_charged_above_cut: int
    n_charged: int
    n_photons: int
    track_length_mm: float
    n_steps: int
    first_interaction_mm: float
    first_pair_fraction: float
    primary_exit: npt.NDArray[np.float64]
    incident_energy_mev: float
    available_energy_mev: float

    @property
    def deposited_energy(self) -> float:
        """Energy deposited anywhere in the stack, MeV."""
        return float(self.slab_energy.sum())

    @property
    def active_energy(self) -> float:
        """Energy deposited in active slabs (inside or outside the readout bins), MeV."""
        return float(self.voxels.sum())


class CascadeEngine:
    """EM cascade Monte Carlo in a detector's slab stack.

    Args:
        detector: The stack and its readout geometry.
        cuts: Tracking cuts (defaults: :class:`CascadeCuts`).
    """

    name = "cascade"

    def __init__(self, detector: Detector, cuts: CascadeCuts | None = None) -> None:
        self.detector = detector
        self.cuts = cuts if cuts is not None else CascadeCuts()
        arrays = detector.slab_arrays()
        self._z_edges = np.ascontiguousarray(arrays["z_edges"], dtype=np.float64)
        self._mat = np.ascontiguousarray(arrays["material"], dtype=np.int64)
        self._active = np.ascontiguousarray(arrays["active"], dtype=np.bool_)
        self._readout = np.ascontiguousarray(arrays["readout"], dtype=np.int64)
        self._tables = build_tables(
            detector.materials, self.cuts.brems_cut_mev, self.cuts.bremsstrahlung
        )
        self._params = self.cuts.as_array()
        # e- rows then e+ rows (the kernel's layout)
        t = self._tables
        self._dedx = np.ascontiguousarray(np.vstack([t.dedx_em, t.dedx_ep]))
        self._range = np.ascontiguousarray(np.vstack([t.range_em, t.range_ep]))
        self._blam = np.ascontiguousarray(np.vstack([t.brems_lambda_em, t.brems_lambda_ep]))
        self._table = voxel_table(detector.geometry)
        self.n_voxels = int(self._table.n_voxels)
        self._stack_cap = 1 << 16
        self._st_t = np.zeros(self._stack_cap, dtype=np.int64)
        self._st_f = np.zeros((self._stack_cap, 7), dtype=np.float64)
        self._dep_cap = 1 << 16
        self._alloc_deposits(self._dep_cap)

    def _alloc_deposits(self, cap: int) -> None:
        self._dep_cap = cap
        self._dl = np.zeros(cap, dtype=np.int64)
        self._dx = np.zeros(cap, dtype=np.float64)
        self._dy = np.zeros(cap, dtype=np.float64)
        self._de = np.zeros(cap, dtype=np.float64)

    @property
    def sampling_fraction(self) -> float:
        """Calibration constant E_active / E_incident of this detector (see
        :data:`SAMPLING_FRACTIONS`).

        Raises:
            SimulationError: If no constant was measured for this detector.
        """
        value = SAMPLING_FRACTIONS.get(self.detector.name, float("nan"))
        if not math.isfinite(value):
            raise SimulationError(
                f"cascade engine: no measured sampling fraction for detector "
                f"{self.detector.name!r}; known: {', '.join(SAMPLING_FRACTIONS)}"
            )
        return value

    def _check(self, particle: str, energy_mev: float, seed: int) -> int:
        if particle not in _PARTICLES:
            raise SimulationError(
                f"cascade engine: particle must be one of {', '.join(_PARTICLES)}, got {particle!r}"
            )
        e = float(energy_mev)
        if not (math.isfinite(e) and e > 0.0):
            raise SimulationError(
                f"cascade engine: energy must be a positive number of MeV, got {energy_mev!r}"
            )
        if e > 1.0e8:
            raise SimulationError(f"cascade engine: energy {e:g} MeV above the 100 TeV limit")
        s = int(seed)
        if s < 0 or s >= 2**64:
            raise SimulationError(f"cascade engine: seed must be in [0, 2**64), got {seed!r}")
        return s

    def _run(
        self, particle: str, energy_mev: float, seed: int
    ) -> tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        from physgen.calo.simulate.cascade_kernel import N_STATS, run_shower

        s = self._check(particle, energy_mev, seed)
        seed_i = s - 2**64 if s >= 2**63 else s  # same bits as a signed int64
        t = self._tables
        slab_e = np.zeros(self._mat.shape[0], dtype=np.float64)
        stats = np.zeros(N_STATS, dtype=np.float64)
        for _ in range(8):
            n = run_shower(
                _PARTICLES[particle],
                float(energy_mev),
                np.int64(seed_i),
                self._z_edges,
                self._mat,
                self._active,
                self._readout,
                t.mu_photo,
                t.mu_compt,
                t.mu_pair,
                self._dedx,
                t.brems_rate,
                self._range,
                self._blam,
                t.x0_mm,
                t.pair_z,
                t.e_lpm,
                self._params,
                self._st_t,
                self._st_f,
                slab_e,
                self._dl,
                self._dx,
                self._dy,
                self._de,
                stats,
            )
            if n < 0:
                self._stack_cap *= 4
                logger.debug("cascade: particle stack grown to %d", self._stack_cap)
                self._st_t = np.zeros(self._stack_cap, dtype=np.int64)
                self._st_f = np.zeros((self._stack_cap, 7), dtype=np.float64)
                continue
            if n > self._dep_cap:
                logger.debug("cascade: deposit buffer grown to %d", n)
                self._alloc_deposits(int(n * 1.25) + 1024)
                continue
            return int(n), slab_e, stats
        raise SimulationError("cascade engine: buffers could not hold the shower")

    def _to_voxels(self, n: int) -> npt.NDArray[np.float64]:
        tb = self._table
        out = np.zeros(self.n_voxels, dtype=np.float64)
        accumulate_deposits(
            n,
            self._dl,
            self._dx,
            self._dy,
            self._de,
            out,
            tb.kind,
            tb.offset,
            tb.n_a,
            tb.n_b,
            tb.b_edges,
            tb.b_start,
            tb.a_edges,
            tb.a_start,
        )
        return out

    def simulate_one(self, particle: str, energy_mev: float, seed: int) -> npt.NDArray[np.float64]:
        """Simulate one shower.

        Args:
            particle: ``"electron"``, ``"positron"`` or ``"photon"``.
            energy_mev: Kinetic energy of the primary, MeV.
            seed: Shower seed, an integer in [0, 2**64).

        Returns:
            ``(n_voxels,)`` float64 raw deposits in the active material, MeV (divide by
            :attr:`sampling_fraction` to calibrate).

        Raises:
            SimulationError: Unknown particle, non-positive energy or bad seed.
        """
        n, _, _ = self._run(particle, energy_mev, seed)
        return self._to_voxels(n)

    def simulate_with_stats(self, particle: str, energy_mev: float, seed: int) -> ShowerStats:
        """Like :meth:`simulate_one`, with the diagnostics of :class:`ShowerStats`."""
        n, slab_e, st = self._run(particle, energy_mev, seed)
        e = float(energy_mev)
        return ShowerStats(
            voxels=self._to_voxels(n),
            slab_energy=slab_e,
            leak_front=float(st[0]),
            leak_back=float(st[1]),
            n_charged_above_cut=int(st[2]),
            n_charged=int(st[6]),
            n_photons=int(st[7]),
            track_length_mm=float(st[3]),
            n_steps=int(st[4]),
            first_interaction_mm=float(st[8]),
            first_pair_fraction=float(st[9]),
            primary_exit=st[10:15].copy(),
            incident_energy_mev=e,
            available_energy_mev=e + (2 * ELECTRON_MASS_MEV if particle == "positron" else 0.0),
        )


def bulk_detector(
    material: str = "W",
    depth_mm: float = 175.0,
    slab_mm: float = 0.5,
    r_edges_mm: tuple[float, ...] | None = None,
) -> Detector:
    """A homogeneous block split into thin slabs, all active, one readout layer each.

    Used for validation in bulk material: the voxels are the (depth, radius) profile.

    Args:
        material: Material name.
        depth_mm: Depth of the block, mm.
        slab_mm: Thickness of each slab (= depth bin), mm.
        r_edges_mm: Radial bin edges (one angular bin), mm; default 0-500 mm in 0.5 mm
            bins up to 20 mm then coarser.

    Raises:
        SimulationError: Unknown material or inconsistent sizes.
    """
    mat = get_material(material)
    if not (slab_mm > 0 and depth_mm >= slab_mm):
        raise SimulationError(
            f"bulk_detector: need 0 < slab_mm <= depth_mm, got {slab_mm}, {depth_mm}"
        )
    n = round(depth_mm / slab_mm)
    if r_edges_mm is None:
        r_edges_mm = tuple(
            np.round(np.concatenate([np.arange(0.0, 20.0, 0.5), np.geomspace(20.0, 2000.0, 41)]), 6)
        )
    layers = tuple(
        Layer(id=i, r_edges=tuple(float(v) for v in r_edges_mm), n_alpha=1) for i in range(n)
    )
    geo = Geometry(
        name=f"bulk-{mat.name}",
        particle="electron",
        layers=layers,
        description=f"bulk {mat.name}: {n} x {slab_mm} mm",
    )
    slabs = tuple(Slab(mat.name, slab_mm, active=True, readout_layer=i) for i in range(n))
    return Detector(
        name=f"bulk-{mat.name}",
        slabs=slabs,
        geometry=geo,
        particles=("electron", "positron", "photon"),
        energy_range_mev=(1.0, 1.0e7),
        description=f"bulk {mat.name} block, {n} x {slab_mm} mm slabs, all active",
    )
