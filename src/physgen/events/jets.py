"""Anti-kT jets of a block of events: the leading jet, or the k hardest, of each (FastJet).

Jets are clustered with FastJet's anti-kT algorithm (Cacciari, Salam and Soyez, JHEP 04
(2008) 063, arXiv:0802.1189), R = 0.4 by default (the Z+jet sample; the dijet sample of
:mod:`physgen.events.dijet` uses R = 1.0), E-scheme recombination, through the awkward-array
interface of the ``fastjet`` Python package: one ``ClusterSequence`` call clusters every
event of a block in C++, about four times faster than building ``PseudoJet`` lists in
Python. Only jets with ``|y| < 2.5`` (:data:`JET_Y_MAX`; rapidity of the E-scheme jet) and
``pT >= pt_min`` are considered; the *leading jet* of an event is the highest-pT one
(:func:`leading_jets`), :func:`hardest_jets` gives the ``k`` highest-pT ones with their
four-momenta. FastJet's banner is switched off (the library never prints).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen._optional import require
from physgen.events.particles import Particles

__all__ = ["JET_RADIUS", "JET_Y_MAX", "HardestJets", "LeadingJets", "hardest_jets", "leading_jets"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Anti-kT radius parameter.
JET_RADIUS = 0.4
#: The leading jet is the hardest jet with ``|y| <`` this.
JET_Y_MAX = 2.5

_quiet: list[bool] = []


def _fastjet() -> Any:
    """The ``fastjet`` module, its banner silenced (once per process)."""
    fj = require("fastjet", "events", "jet clustering")
    if not _quiet:
        # the classic (SWIG) interface owns the banner stream of the shared C++ library
        swig = require("fastjet._swig", "events", "jet clustering")
        swig.ClusterSequence.set_fastjet_banner_stream(None)
        _quiet.append(True)
    return fj


@dataclass(frozen=True, eq=False)
class LeadingJets:
    """The leading jet of every event of a block (zeros where an event has none).

    Attributes:
        found: ``(n_events,)`` an event has a jet with ``|y| < y_max`` and ``pT >= pt_min``.
        pt: ``(n_events,)`` jet pT (GeV).
        y: ``(n_events,)`` jet rapidity.
        phi: ``(n_events,)`` jet azimuth (rad, ``(-pi, pi]``).
        constituents: ``n_events`` arrays of indices into the flat particle arrays
            (empty where ``found`` is False).
    """

    found: npt.NDArray[np.bool_]
    pt: FloatArray
    y: FloatArray
    phi: FloatArray
    constituents: tuple[IntArray, ...]


@dataclass(frozen=True, eq=False)
class HardestJets:
    """The ``k`` hardest jets of every event of a block, in decreasing pT (zeros where an
    event has fewer).

    Attributes:
        count: ``(n_events,)`` jets found (``<= k``) with ``|y| < y_max``, ``pT >= pt_min``.
        p4: ``(n_events, k, 4)`` jet four-momenta ``px, py, pz, E`` (GeV, E-scheme).
        pt: ``(n_events, k)`` jet pT (GeV).
        y: ``(n_events, k)`` jet rapidity.
        phi: ``(n_events, k)`` jet azimuth (rad, ``(-pi, pi]``).
        constituents: per event, ``count[e]`` arrays of indices into the flat particle
            arrays, hardest jet first.
    """

    count: IntArray
    p4: FloatArray
    pt: FloatArray
    y: FloatArray
    phi: FloatArray
    constituents: tuple[tuple[IntArray, ...], ...]

    @property
    def mass(self) -> FloatArray:
        """``(n_events, k)`` jet masses (GeV; 0 for a missing jet or ``m² <= 0``)."""
        p = self.p4
        m2 = p[..., 3] ** 2 - p[..., 0] ** 2 - p[..., 1] ** 2 - p[..., 2] ** 2
        return np.sqrt(np.maximum(m2, 0.0))


def hardest_jets(
    particles: Particles,
    k: int,
    *,
    radius: float = JET_RADIUS,
    y_max: float = JET_Y_MAX,
    pt_min: float = 100.0,
) -> HardestJets:
    """Cluster every event with anti-kT and keep its ``k`` hardest jets.

    Args:
        particles: The particles (or detector objects) of a block of events.
        k: Jets to keep per event (>= 1).
        radius: Anti-kT R.
        y_max: Only jets with ``|y| < y_max`` are kept.
        pt_min: Jets below this pT (GeV) are not considered (saves time; keep it below
            the analysis cut).

    Returns:
        The ``k`` hardest jets of every event.

    Raises:
        MissingDependencyError: fastjet (or awkward) is not installed (``physgen[events]``).
    """
    fj = _fastjet()
    ak = require("awkward", "events", "jet clustering")
    n_events = particles.n_events
    p4 = particles.momenta()
    records = ak.zip({"px": p4[:, 0], "py": p4[:, 1], "pz": p4[:, 2], "E": p4[:, 3]}, depth_limit=1)
    events = ak.unflatten(records, particles.counts)
    cs = fj.ClusterSequence(events, fj.JetDefinition(fj.antikt_algorithm, float(radius)))
    jets = cs.inclusive_jets(min_pt=float(pt_min))
    index = cs.constituent_index(min_pt=float(pt_min))

    n_jets = np.asarray(ak.to_numpy(ak.num(jets, axis=1)), dtype=np.int64)
    jx, jy, jz, je = (
        np.asarray(ak.to_numpy(ak.flatten(jets[f])), dtype=np.float64)
        for f in ("px", "py", "pz", "E")
    )
    jpt = np.hypot(jx, jy)
    mt = np.sqrt(np.maximum(je * je - jz * jz, 1e-300))
    jrap = np.arcsinh(jz / mt)
    jphi = np.arctan2(jy, jx)
    owner = np.repeat(np.arange(n_events, dtype=np.int64), n_jets)

    per_jet = ak.flatten(index, axis=1)  # (total jets) * var * int
    sizes = np.asarray(ak.to_numpy(ak.num(per_jet, axis=1)), dtype=np.int64)
    flat_index = np.asarray(ak.to_numpy(ak.flatten(per_jet)), dtype=np.int64)
    starts = np.zeros(sizes.shape[0] + 1, dtype=np.int64)
    np.cumsum(sizes, out=starts[1:])

    count = np.zeros(n_events, dtype=np.int64)
    out_p4 = np.zeros((n_events, k, 4))
    pt = np.zeros((n_events, k))
    rap = np.zeros((n_events, k))
    phi = np.zeros((n_events, k))
    chosen = np.full((n_events, k), -1, dtype=np.int64)
    ok = np.flatnonzero(np.abs(jrap) < y_max)
    if ok.size:
        # accepted jets sorted by (event, -pt); the rank within its event picks the k hardest
        order = ok[np.lexsort((-jpt[ok], owner[ok]))]
        ev_sorted = owner[order]
        first = np.ones(order.size, dtype=bool)
        first[1:] = ev_sorted[1:] != ev_sorted[:-1]
        group_start = np.maximum.accumulate(np.where(first, np.arange(order.size), 0))
        rank = np.arange(order.size) - group_start
        keep = rank < k
        best, ev, r = order[keep], ev_sorted[keep], rank[keep]
        chosen[ev, r] = best
        np.add.at(count, ev, 1)
        out_p4[ev, r] = np.stack([jx[best], jy[best], jz[best], je[best]], axis=-1)
        pt[ev, r] = jpt[best]
        rap[ev, r] = jrap[best]
        phi[ev, r] = jphi[best]
    offsets = particles.offsets
    constituents = tuple(
        tuple(flat_index[starts[j] : starts[j + 1]] + offsets[e] for j in row if j >= 0)
        for e, row in enumerate(chosen.tolist())
    )
    return HardestJets(count=count, p4=out_p4, pt=pt, y=rap, phi=phi, constituents=constituents)


def leading_jets(
    particles: Particles,
    *,
    radius: float = JET_RADIUS,
    y_max: float = JET_Y_MAX,
    pt_min: float = 100.0,
) -> LeadingJets:
    """Cluster every event with anti-kT and find its leading jet.

    Args:
        particles: The particles (or detector objects) of a block of events.
        radius: Anti-kT R.
        y_max: Only jets with ``|y| < y_max`` can be the leading jet.
        pt_min: Jets below this pT (GeV) are not considered (saves time; keep it below
            the analysis cut).

    Returns:
        The leading jet of every event.

    Raises:
        MissingDependencyError: fastjet (or awkward) is not installed (``physgen[events]``).
    """
    jets = hardest_jets(particles, 1, radius=radius, y_max=y_max, pt_min=pt_min)
    empty = np.zeros(0, dtype=np.int64)
    return LeadingJets(
        found=jets.count > 0,
        pt=jets.pt[:, 0].copy(),
        y=jets.y[:, 0].copy(),
        phi=jets.phi[:, 0].copy(),
        constituents=tuple(c[0] if c else empty for c in jets.constituents),
    )
