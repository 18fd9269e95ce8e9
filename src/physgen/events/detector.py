"""A parametrised detector response: particles in, detector objects out (seeded, vectorised).

A toy particle-flow detector in the spirit of the Delphes CMS card used for the OmniFold
Z+jets sample (arXiv:1911.09107), reduced to efficiencies and resolutions. Every visible
final-state particle becomes at most one detector object; the objects are then clustered
like the particles (:mod:`physgen.events.jets`). The default parameters
(:class:`DetectorResponse`):

* **Tracks** (charged particles, ``|eta| < 2.5`` and ``pT > 0.5 GeV``): reconstructed with
  efficiency 0.9; ``pT`` smeared by a Gaussian of relative width
  ``σ/pT = 0.5 % ⊕ 0.01 % · pT[GeV]`` (in quadrature); mass and direction unchanged (the
  true mass is kept: no pion-mass hypothesis). A lost track is lost: it is not picked up
  by the calorimeter.
* **Charged particles inside the tracker below 0.5 GeV** curl up in the magnetic field and
  are lost.
* **Charged particles outside the tracker** (``2.5 <= |eta| < 4.5``) reach the
  calorimeters only: electrons get the photon response, charged hadrons the neutral-hadron
  response (including its efficiency), muons are lost (minimum ionising).
* **Photons** (``|eta| < 4.5``): energy smeared with ``σ/E = 10 %/sqrt(E[GeV])``,
  efficiency 1.
* **Neutral hadrons** (every other neutral visible particle, ``|eta| < 4.5``): efficiency
  0.95, ``σ/E = 50 %/sqrt(E[GeV]) ⊕ 5 %``.
* **Calorimeter objects are massless**: the smeared energy ``E'`` along the true direction,
  ``pT' = E'/cosh(eta)``. A smeared energy (or track pT) ``<= 0`` means the object is lost
  (a few per cent of neutral hadrons below 1 GeV, never for tracks).
* **Directions are not smeared** (the calorimeter granularity is much finer than R = 0.4
  for what these observables need); beyond ``|eta| = 4.5`` nothing is seen.

Randomness: :meth:`DetectorResponse.apply` draws one uniform (efficiency) and one standard
normal (resolution) per input particle, in input order, from the generator it is given,
whichever class the particle falls in; the caller seeds that generator per block of events
(:mod:`physgen.events.sample`), so the detector objects of an event do not depend on how
the run was split into workers.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.errors import ConfigError
from physgen.events.particles import NEUTRINO_PIDS, Particles

__all__ = ["DetectorResponse"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class DetectorResponse:
    """Efficiencies and resolutions of the toy detector (defaults: see the module docstring).

    Attributes:
        tracker_eta_max: Tracker acceptance ``|eta| <`` this.
        track_pt_min: Tracks need ``pT >`` this (GeV).
        track_efficiency: Probability that a track in acceptance is reconstructed.
        track_resolution: Constant term of ``σ(pT)/pT``.
        track_resolution_slope: Term proportional to pT of ``σ(pT)/pT`` (per GeV).
        calo_eta_max: Calorimeter acceptance ``|eta| <`` this.
        photon_stochastic: ``a`` of ``σ/E = a/sqrt(E)`` for photons and electrons (GeV^½).
        hadron_stochastic: ``a`` of ``σ/E = a/sqrt(E) ⊕ b`` for hadrons (GeV^½).
        hadron_constant: ``b`` of the hadron resolution.
        hadron_efficiency: Probability that a hadron reaching the calorimeter is seen.
    """

    tracker_eta_max: float = 2.5
    track_pt_min: float = 0.5
    track_efficiency: float = 0.9
    track_resolution: float = 0.005
    track_resolution_slope: float = 1e-4
    calo_eta_max: float = 4.5
    photon_stochastic: float = 0.10
    hadron_stochastic: float = 0.50
    hadron_constant: float = 0.05
    hadron_efficiency: float = 0.95

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"detector: {f.name} must be a finite number >= 0, got {v!r}")
        for name in ("track_efficiency", "hadron_efficiency"):
            if getattr(self, name) > 1:
                raise ConfigError(f"detector: {name} must be in [0, 1], got {getattr(self, name)}")

    def config(self) -> dict[str, Any]:
        """The parameters as a JSON-ready dict (recorded in every output file)."""
        return dataclasses.asdict(self)

    def track_sigma(self, pt: FloatArray) -> FloatArray:
        """Relative track resolution ``σ(pT)/pT`` at ``pt`` (GeV)."""
        return np.hypot(self.track_resolution, self.track_resolution_slope * pt)

    def photon_sigma(self, e: FloatArray) -> FloatArray:
        """Relative photon (and electron) energy resolution ``σ(E)/E`` at ``e`` (GeV)."""
        return self.photon_stochastic / np.sqrt(np.maximum(e, 1e-12))

    def hadron_sigma(self, e: FloatArray) -> FloatArray:
        """Relative hadron energy resolution ``σ(E)/E`` at ``e`` (GeV)."""
        return np.hypot(
            self.hadron_stochastic / np.sqrt(np.maximum(e, 1e-12)), self.hadron_constant
        )

    def apply(self, particles: Particles, rng: np.random.Generator) -> Particles:
        """Detector objects of the visible particles of every event.

        Args:
            particles: Final-state particles (neutrinos are dropped here if present).
            rng: Draws ``n`` uniforms then ``n`` standard normals (``n`` input particles).

        Returns:
            The detector objects, events in the same order (an event may lose every
            particle); ``pid`` and ``charge`` are those of the particle each came from.
        """
        n = particles.pt.shape[0]
        u: FloatArray = np.asarray(rng.random(n), dtype=np.float64)
        g: FloatArray = np.asarray(rng.standard_normal(n), dtype=np.float64)
        pt, eta, mass = particles.pt, particles.eta, particles.mass
        apid = np.abs(particles.pid)
        abseta = np.abs(eta)
        charged = particles.charge != 0
        visible = ~np.isin(apid, NEUTRINO_PIDS)
        in_tracker = abseta < self.tracker_eta_max
        in_calo = abseta < self.calo_eta_max

        track = visible & charged & in_tracker & (pt > self.track_pt_min)
        track &= u < self.track_efficiency
        em = visible & in_calo & ((apid == 22) | (charged & ~in_tracker & (apid == 11)))
        hadron = visible & in_calo & ~em & (apid != 22) & (apid != 13)
        hadron &= ~charged | ~in_tracker  # charged hadrons in the tracker are tracks
        hadron &= u < self.hadron_efficiency

        cosh: FloatArray = np.cosh(eta)
        energy: FloatArray = np.sqrt((pt * cosh) ** 2 + mass**2)
        new_pt = np.zeros(n)
        new_mass = np.zeros(n)
        new_pt[track] = pt[track] * (1.0 + self.track_sigma(pt[track]) * g[track])
        new_mass[track] = mass[track]
        for sel, sigma in ((em, self.photon_sigma), (hadron, self.hadron_sigma)):
            e = energy[sel]
            new_pt[sel] = e * (1.0 + sigma(e) * g[sel]) / cosh[sel]
        keep = (track | em | hadron) & (new_pt > 0)
        objects = particles.select(keep)
        return dataclasses.replace(objects, pt=new_pt[keep], mass=new_mass[keep])
