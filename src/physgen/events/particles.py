"""Final-state particles of a block of events, as flat numpy arrays with per-event counts.

One :class:`Particles` holds the particles of many events back to back (event ``i`` is
the slice ``offsets[i]:offsets[i + 1]``), in the hadron-collider coordinates every part of
:mod:`physgen.events` uses: transverse momentum ``pt`` (GeV), pseudorapidity ``eta``,
azimuth ``phi`` (rad, in ``(-pi, pi]``), mass ``mass`` (GeV), PDG code ``pid`` and
electric charge ``charge`` (units of e). The generator (:mod:`physgen.events.pythia`)
makes them, the detector response (:mod:`physgen.events.detector`) maps them to detector
objects of the same layout, and the jet clustering (:mod:`physgen.events.jets`) reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from physgen.errors import DataFormatError

__all__ = ["NEUTRINO_PIDS", "Particles", "four_momenta"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: PDG codes of the neutrinos (|pid|): invisible, never part of a jet at either level.
NEUTRINO_PIDS: tuple[int, ...] = (12, 14, 16)


def four_momenta(
    pt: npt.ArrayLike, eta: npt.ArrayLike, phi: npt.ArrayLike, mass: npt.ArrayLike
) -> FloatArray:
    """Four-momenta ``(px, py, pz, E)`` from ``(pt, eta, phi, mass)``.

    Args:
        pt: Transverse momenta (GeV), shape ``(n,)``.
        eta: Pseudorapidities, shape ``(n,)``.
        phi: Azimuths (rad), shape ``(n,)``.
        mass: Masses (GeV, >= 0), shape ``(n,)``.

    Returns:
        Array ``(n, 4)`` of ``px, py, pz, E`` in GeV, with
        ``E = sqrt((pt cosh eta)^2 + m^2)``.
    """
    pt_ = np.asarray(pt, dtype=np.float64)
    eta_ = np.asarray(eta, dtype=np.float64)
    phi_ = np.asarray(phi, dtype=np.float64)
    m_ = np.asarray(mass, dtype=np.float64)
    p = pt_ * np.cosh(eta_)
    return np.stack(
        [pt_ * np.cos(phi_), pt_ * np.sin(phi_), pt_ * np.sinh(eta_), np.sqrt(p * p + m_ * m_)],
        axis=-1,
    )


@dataclass(frozen=True, eq=False)
class Particles:
    """Particles of ``n_events`` events, flat (``n`` particles in all) with per-event counts.

    Attributes:
        pt: Transverse momentum (GeV), ``(n,)``.
        eta: Pseudorapidity, ``(n,)`` (finite).
        phi: Azimuth (rad), ``(n,)``.
        mass: Mass (GeV), ``(n,)``.
        pid: PDG code, ``(n,)`` int64 (detector objects keep the code of the particle
            they came from).
        charge: Electric charge (e), ``(n,)``.
        counts: Particles per event, ``(n_events,)`` int64, summing to ``n``.
    """

    pt: FloatArray
    eta: FloatArray
    phi: FloatArray
    mass: FloatArray
    pid: IntArray
    charge: FloatArray
    counts: IntArray

    def __post_init__(self) -> None:
        n = self.pt.shape[0]
        for name in ("pt", "eta", "phi", "mass", "pid", "charge"):
            a = getattr(self, name)
            if a.ndim != 1 or a.shape[0] != n:
                raise DataFormatError(f"particles: {name} has shape {a.shape}, expected ({n},)")
        if self.counts.ndim != 1 or int(self.counts.sum()) != n or (self.counts < 0).any():
            raise DataFormatError(
                f"particles: counts must be >= 0 and sum to the {n} particles, "
                f"got a sum of {int(self.counts.sum())}"
            )

    @property
    def n_events(self) -> int:
        """Number of events (also those without particles)."""
        return int(self.counts.shape[0])

    @property
    def offsets(self) -> IntArray:
        """``(n_events + 1,)`` start of every event in the flat arrays, then the total."""
        out = np.zeros(self.n_events + 1, dtype=np.int64)
        np.cumsum(self.counts, out=out[1:])
        return out

    def event_index(self) -> IntArray:
        """``(n,)`` the event every particle belongs to."""
        return np.repeat(np.arange(self.n_events, dtype=np.int64), self.counts)

    def select(self, keep: npt.NDArray[np.bool_]) -> Particles:
        """The particles where ``keep`` (``(n,)`` bool) is True, events unchanged."""
        counts = np.bincount(self.event_index()[keep], minlength=self.n_events).astype(np.int64)
        return Particles(
            pt=self.pt[keep],
            eta=self.eta[keep],
            phi=self.phi[keep],
            mass=self.mass[keep],
            pid=self.pid[keep],
            charge=self.charge[keep],
            counts=counts,
        )

    def momenta(self) -> FloatArray:
        """``(n, 4)`` four-momenta ``px, py, pz, E`` (GeV)."""
        return four_momenta(self.pt, self.eta, self.phi, self.mass)

    @classmethod
    def from_momenta(
        cls,
        px: FloatArray,
        py: FloatArray,
        pz: FloatArray,
        mass: FloatArray,
        pid: IntArray,
        charge: FloatArray,
        counts: IntArray,
    ) -> Particles:
        """Particles from Cartesian momenta (GeV); a particle along the beam (``pt = 0``) gets
        ``eta = +-1e6`` (outside every acceptance) instead of an infinity."""
        pt = np.hypot(px, py)
        with np.errstate(divide="ignore", invalid="ignore"):
            eta = np.where(pt > 0, np.arcsinh(pz / np.where(pt > 0, pt, 1.0)), np.sign(pz) * 1e6)
        return cls(
            pt=pt.astype(np.float64),
            eta=eta.astype(np.float64),
            phi=np.arctan2(py, px).astype(np.float64),
            mass=np.maximum(np.asarray(mass, dtype=np.float64), 0.0),
            pid=np.asarray(pid, dtype=np.int64),
            charge=np.asarray(charge, dtype=np.float64),
            counts=np.asarray(counts, dtype=np.int64),
        )
