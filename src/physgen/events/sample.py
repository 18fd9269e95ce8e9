"""Events as unfolding pairs: leading jets at both levels, selection, matching, the file.

Every generated event gives its leading particle-level jet ("gen", from the visible final
state) and its leading detector-level jet ("reco", from the detector objects of
:mod:`physgen.events.detector`), both anti-kT R = 0.4, the hardest jet with ``|y| < 2.5``
(:mod:`physgen.events.jets`). Conventions (one row per event):

* ``pass_gen``: the leading particle-level jet exists and has ``pT > 200 GeV``
  (:data:`JET_PT_MIN`).
* ``pass_reco``: the same at detector level, **and**, when the event also passes gen, the
  reco jet lies within ``ΔR < 0.2`` (R/2, :data:`MATCH_DR`; ``ΔR² = Δy² + Δφ²``) of the gen
  jet. An event whose passing jets do not match is written as **two rows** with the same
  ``event`` index and weight: the particle-level jet the detector missed (``pass_gen`` only)
  and the detector jet without a particle-level partner (``pass_reco`` only, a fake). The
  detector-level selection therefore never looks at the truth, as a measurement cannot; the
  number of such events is the file attribute ``n_unmatched`` (a few per mille). Efficiency
  = ``P(pass_reco | pass_gen)`` and fake rate = ``P(!pass_gen | pass_reco)`` are read off the
  flags directly.
* Only events passing at least one level are written; ``n`` is the number of rows.
* Observables and jet pT of a level an event fails are the dummy value 0
  (:data:`DUMMY`; never NaN): use the flags, not the values, to select.

File layout (HDF5, the input format of :mod:`physgen.unfold`): datasets ``gen`` and
``reco`` ``(N, 6)`` float64 in the column order of :data:`OBSERVABLES` (attribute
``columns``), ``pass_gen``/``pass_reco`` ``(N,)`` bool, ``weight`` ``(N,)`` float64 (ones),
``gen_pt``/``reco_pt`` ``(N,)`` float64 (leading-jet pT, GeV) and ``event`` ``(N,)`` int64
(the index of the generated event in the run); attributes recording the generator
settings, seed, tune, detector, selection and versions.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.errors import DataFormatError
from physgen.events.detector import DetectorResponse
from physgen.events.jets import LeadingJets, leading_jets
from physgen.events.particles import Particles
from physgen.events.pythia import PythiaGenerator, derive_seed
from physgen.events.substructure import OBSERVABLES, jet_observables
from physgen.outputs import atomic_path

__all__ = [
    "BLOCK_EVENTS",
    "DUMMY",
    "EVENTS_CODE_VERSION",
    "JET_PT_MIN",
    "MATCH_DR",
    "BlockRows",
    "EventSample",
    "event_rows",
    "match_levels",
    "process_block",
    "read_sample",
    "storable_attrs",
    "write_sample",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

#: Leading jets must have pT above this (GeV) to pass a level.
JET_PT_MIN = 200.0
#: A passing reco jet matches the passing gen jet within this ΔR (R/2).
MATCH_DR = 0.2
#: Value of the observables (and jet pT) of a level an event fails.
DUMMY = 0.0
#: Generated events per seed block (fixed: the output depends on it).
BLOCK_EVENTS = 100
#: Version of the physics code of physgen.events (bumped when a change alters the output;
#: part of the cache key).
EVENTS_CODE_VERSION = 2

_DATASETS = ("gen", "reco", "pass_gen", "pass_reco", "weight", "gen_pt", "reco_pt", "event")


def match_levels(
    gen_pass: BoolArray,
    gen_y: FloatArray,
    gen_phi: FloatArray,
    reco_pass: BoolArray,
    reco_y: FloatArray,
    reco_phi: FloatArray,
    max_dr: float = MATCH_DR,
) -> tuple[BoolArray, BoolArray, BoolArray]:
    """The flags of the module's convention from the leading jets of both levels.

    Args:
        gen_pass: ``(n,)`` the leading gen jet passes the cuts.
        gen_y: ``(n,)`` its rapidity.
        gen_phi: ``(n,)`` its azimuth (rad).
        reco_pass: ``(n,)`` the leading reco jet passes the cuts.
        reco_y: ``(n,)`` its rapidity.
        reco_phi: ``(n,)`` its azimuth (rad).
        max_dr: Matching distance.

    Returns:
        ``(pass_gen, pass_reco, unmatched)``: ``unmatched`` marks events where both jets
        pass but lie ``ΔR >= max_dr`` apart (``pass_reco`` is then False).
    """
    gen_pass = np.asarray(gen_pass, dtype=bool)
    reco_pass = np.asarray(reco_pass, dtype=bool)
    dphi = (np.asarray(reco_phi) - np.asarray(gen_phi) + math.pi) % (2 * math.pi) - math.pi
    dr = np.hypot(np.asarray(reco_y) - np.asarray(gen_y), dphi)
    unmatched = gen_pass & reco_pass & ~(dr < max_dr)
    return gen_pass.copy(), reco_pass & ~unmatched, unmatched


def event_rows(
    pass_gen: BoolArray, pass_reco: BoolArray, unmatched: BoolArray
) -> tuple[IntArray, BoolArray, BoolArray]:
    """The rows of the module's convention from the flags of :func:`match_levels`.

    Args:
        pass_gen: ``(n,)`` per event.
        pass_reco: ``(n,)`` per event (False where ``unmatched``).
        unmatched: ``(n,)`` both levels passed but the jets did not match.

    Returns:
        ``(event (m,), pass_gen (m,), pass_reco (m,))``: one row per event passing a level, in
        event order, plus a second, reco-only row right after every unmatched event's
        gen-only row.
    """
    pg_e = np.asarray(pass_gen, dtype=bool)
    pr_e = np.asarray(pass_reco, dtype=bool)
    um = np.asarray(unmatched, dtype=bool)
    rows = np.flatnonzero(pg_e | pr_e).astype(np.int64)
    extra = np.flatnonzero(um).astype(np.int64)
    event = np.concatenate([rows, extra])
    pg = np.concatenate([pg_e[rows], np.zeros(extra.size, dtype=bool)])
    pr = np.concatenate([pr_e[rows], np.ones(extra.size, dtype=bool)])
    order = np.argsort(event, kind="stable")
    return event[order], pg[order], pr[order]


@dataclass(frozen=True, eq=False)
class BlockRows:
    """The written rows of one seed block (events passing gen or reco).

    Attributes:
        block: Block index ``k``.
        n_events: Events generated in the block.
        event: ``(m,)`` index of each row's event within the block.
        gen: ``(m, 6)`` particle-level observables.
        reco: ``(m, 6)`` detector-level observables.
        pass_gen: ``(m,)`` flags.
        pass_reco: ``(m,)`` flags.
        gen_pt: ``(m,)`` leading gen jet pT (GeV).
        reco_pt: ``(m,)`` leading reco jet pT (GeV).
        unmatched: ``(m,)`` the row belongs to an event whose jets passed but did not match
            (two rows per such event).
    """

    block: int
    n_events: int
    event: IntArray
    gen: FloatArray
    reco: FloatArray
    pass_gen: BoolArray
    pass_reco: BoolArray
    gen_pt: FloatArray
    reco_pt: FloatArray
    unmatched: BoolArray

    @property
    def n_rows(self) -> int:
        """Rows in the block."""
        return int(self.event.shape[0])


def _observables(particles: Particles, jets: LeadingJets, rows: IntArray) -> FloatArray:
    out = np.full((rows.shape[0], len(OBSERVABLES)), DUMMY)
    for r, e in enumerate(rows.tolist()):
        idx = jets.constituents[e]
        out[r] = jet_observables(
            particles.pt[idx], particles.eta[idx], particles.phi[idx], particles.mass[idx]
        )
    return out


def process_block(
    generator: PythiaGenerator,
    detector: DetectorResponse,
    entropy: tuple[int, ...],
    block: int,
    n_events: int = BLOCK_EVENTS,
) -> BlockRows:
    """Generate block ``block`` of a run and reduce it to rows.

    Args:
        generator: An initialised generator.
        detector: The detector response.
        entropy: The run's seed entropy ``(seed, config_tag)``.
        block: Block index ``k``: Pythia seed ``derive_seed(*entropy, k)``, detector
            generator ``SeedSequence([*entropy, k, 1])``.
        n_events: Events to generate.

    Returns:
        The rows of the events passing at least one level.
    """
    particles = generator.generate(n_events, derive_seed(*entropy, block))
    rng = np.random.default_rng(np.random.SeedSequence([*entropy, block, 1]))
    objects = detector.apply(particles, rng)
    cut = 0.5 * JET_PT_MIN
    gen_jets = leading_jets(particles, pt_min=cut)
    reco_jets = leading_jets(objects, pt_min=cut)
    gen_ok = gen_jets.found & (gen_jets.pt > JET_PT_MIN)
    reco_ok = reco_jets.found & (reco_jets.pt > JET_PT_MIN)
    pass_gen, pass_reco, unmatched = match_levels(
        gen_ok, gen_jets.y, gen_jets.phi, reco_ok, reco_jets.y, reco_jets.phi
    )
    rows, pg, pr = event_rows(pass_gen, pass_reco, unmatched)
    gen = np.full((rows.shape[0], len(OBSERVABLES)), DUMMY)
    reco = np.full((rows.shape[0], len(OBSERVABLES)), DUMMY)
    gen[pg] = _observables(particles, gen_jets, rows[pg])
    reco[pr] = _observables(objects, reco_jets, rows[pr])
    return BlockRows(
        block=int(block),
        n_events=particles.n_events,
        event=rows,
        gen=gen,
        reco=reco,
        pass_gen=pg,
        pass_reco=pr,
        gen_pt=np.where(pg, gen_jets.pt[rows], DUMMY),
        reco_pt=np.where(pr, reco_jets.pt[rows], DUMMY),
        unmatched=unmatched[rows],
    )


@dataclass(frozen=True, eq=False)
class EventSample:
    """Unfolding pairs of leading-jet observables (see the module docstring).

    Attributes:
        gen: ``(N, 6)`` particle-level observables (:data:`OBSERVABLES`; dummy 0 where
            ``pass_gen`` is False).
        reco: ``(N, 6)`` detector-level observables (dummy 0 where ``pass_reco`` is False).
        pass_gen: ``(N,)`` particle-level selection.
        pass_reco: ``(N,)`` detector-level selection (matched, see the module docstring).
        weight: ``(N,)`` event weights (ones).
        gen_pt: ``(N,)`` leading gen jet pT (GeV; 0 where failing).
        reco_pt: ``(N,)`` leading reco jet pT (GeV; 0 where failing).
        event: ``(N,)`` index of the generated event in the run.
        attrs: Provenance (settings, seed, versions...) as stored in the file
            (:func:`storable_attrs`: lists and dicts as JSON text).
        path: The file the sample was read from or written to, if any.
        from_cache: The sample was read from the cache instead of generated.
        elapsed_s: Seconds spent generating (0 for a sample read from a file).
    """

    gen: FloatArray
    reco: FloatArray
    pass_gen: BoolArray
    pass_reco: BoolArray
    weight: FloatArray
    gen_pt: FloatArray
    reco_pt: FloatArray
    event: IntArray
    attrs: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None
    from_cache: bool = False
    elapsed_s: float = 0.0

    @property
    def columns(self) -> tuple[str, ...]:
        """Observable names, the column order of ``gen`` and ``reco``."""
        return OBSERVABLES

    def __len__(self) -> int:
        return int(self.pass_gen.shape[0])

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """The datasets of the file, by name."""
        return {name: getattr(self, name) for name in _DATASETS}


def storable_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    """Provenance values as the file stores them: lists and dicts as JSON text, numpy
    scalars as Python numbers (``columns`` is stored by :func:`write_sample` itself)."""
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        if key == "columns":
            continue
        if isinstance(value, (dict, list, tuple)):
            value = json.dumps(value, sort_keys=True)
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, bytes):
            value = value.decode()
        out[key] = value
    return out


def write_sample(path: str | Path, sample: EventSample) -> Path:
    """Write ``sample`` to an HDF5 file atomically (temporary name, renamed on success).

    The bytes depend only on the arrays and attributes (no timestamps).

    Returns:
        The path written.
    """
    import h5py

    p = Path(path)
    with atomic_path(p) as tmp, h5py.File(tmp, "w", track_order=True) as f:
        for name, a in sample.arrays().items():
            f.create_dataset(name, data=a, track_times=False)
        f.attrs["columns"] = list(OBSERVABLES)
        for key, value in storable_attrs(sample.attrs).items():
            f.attrs[key] = value
    return p


def read_sample(path: str | Path) -> EventSample:
    """Read a file written by :func:`write_sample`.

    Raises:
        DataFormatError: Not HDF5, a dataset missing or of the wrong shape, NaN values.
    """
    import h5py

    p = Path(path)
    try:
        with h5py.File(p, "r") as f:
            missing = [k for k in _DATASETS if k not in f]
            if missing:
                raise DataFormatError(f"{p}: missing dataset(s) {', '.join(missing)}")
            data = {k: f[k][()] for k in _DATASETS}
            columns = f.attrs.get("columns", [])
            attrs = storable_attrs(dict(f.attrs.items()))
    except OSError as exc:
        raise DataFormatError(f"{p}: cannot read as HDF5 ({exc})") from None
    n = data["pass_gen"].shape[0]
    for key in ("gen", "reco"):
        if data[key].shape != (n, len(OBSERVABLES)):
            raise DataFormatError(
                f"{p}: {key} has shape {data[key].shape}, expected ({n}, {len(OBSERVABLES)})"
            )
    for key in _DATASETS:
        if data[key].shape[0] != n:
            raise DataFormatError(f"{p}: {key} has {data[key].shape[0]} rows, expected {n}")
        if data[key].dtype.kind == "f" and not np.isfinite(data[key]).all():
            raise DataFormatError(f"{p}: {key} holds NaN or inf")
    names = [c.decode() if isinstance(c, bytes) else str(c) for c in np.atleast_1d(columns)]
    if tuple(names) != OBSERVABLES:
        raise DataFormatError(f"{p}: columns {names}, expected {list(OBSERVABLES)}")
    return EventSample(
        gen=np.asarray(data["gen"], dtype=np.float64),
        reco=np.asarray(data["reco"], dtype=np.float64),
        pass_gen=np.asarray(data["pass_gen"], dtype=bool),
        pass_reco=np.asarray(data["pass_reco"], dtype=bool),
        weight=np.asarray(data["weight"], dtype=np.float64),
        gen_pt=np.asarray(data["gen_pt"], dtype=np.float64),
        reco_pt=np.asarray(data["reco_pt"], dtype=np.float64),
        event=np.asarray(data["event"], dtype=np.int64),
        attrs=attrs,
        path=p,
    )
