"""Unweighted events as a table, one row per event: Parquet and ROOT TTree files for analyses
with pandas, awkward or uproot.

Layout (the same in both formats): every event of a process has the same particles, the two
beams (status -1) followed by the ``k`` final-state particles (status 1), in the order of the
LHE file (:mod:`physgen.nis.lhe`), so each per-particle column is a *fixed-size* array of
``k + 2`` values per event (4 for ``ee-mumu``, 5 for ``ee-qqg``):

=========== ================ ========== ==============================================
column      per event        dtype      meaning
=========== ================ ========== ==============================================
``pdg_id``  ``k + 2`` values int32      PDG particle id
``status``  ``k + 2`` values int32      -1 incoming beam, 1 final state (as in LHE)
``px``      ``k + 2`` values float64    momentum x component, GeV
``py``      ``k + 2`` values float64    momentum y component, GeV
``pz``      ``k + 2`` values float64    momentum z component (beam axis), GeV
``E``       ``k + 2`` values float64    energy, GeV
``m``       ``k + 2`` values float64    mass, GeV (the LHE mass column: ``E^2 - p^2 = m^2``)
``weight``  one value        float64    event weight in pb, cross section / number of events
=========== ================ ========== ==============================================

The numbers are those of the LHE file of the same seed (which writes them with 17
significant digits, so the two agree exactly); the weights sum to the cross section.

* **Parquet** (``.parquet``, needs ``pyarrow``): per-particle columns are
  ``fixed_size_list<non-null double>[k + 2]`` (int32 for ids and status), nothing nullable;
  the provenance is JSON in the schema metadata under ``physgen``.
  ``awkward.from_parquet(path)`` gives records ``N * {pdg_id: k+2 * int32, ..., weight:
  float64}`` (``ak.from_regular(ak.zip({...}), axis=1)`` makes per-particle records with
  jagged selection semantics, ``particles[particles.status == 1]``);
  ``pandas.read_parquet(path)`` one row per event with a NumPy array in each per-particle
  cell (``np.stack(df["px"])`` is ``(N, k + 2)``; ``df.explode([...])`` one row per
  particle, of object dtype until ``.astype``).
* **ROOT** (``.root``, needs ``uproot``): a TTree ``events`` with fixed-size array branches
  (leaf lists ``pdg_id[k+2]/I``, ``px[k+2]/D``..., as ROOT's own ``Branch("px", px,
  "px[4]/D")`` writes them) and a scalar branch ``weight/D``, and the provenance as a JSON
  ``TObjString`` ``events_provenance`` beside the tree. ``uproot.open(path)["events"]
  .arrays(library="np")`` gives ``(N, k + 2)`` arrays, ``.arrays()`` the same awkward
  records as the Parquet file.

Both read back with :func:`physgen.columns.read_columns` (``physgen fit --data``), e.g.
``"E[2:4],weight"``.

The provenance (both formats) holds the caller's entries (process, seed...) and
``n_events``, ``cross_section_pb``, ``cross_section_error_pb``, ``event_weight_pb``,
``physgen_version`` and the units of the columns.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from physgen._optional import require
from physgen._version import __version__
from physgen.errors import ConfigError, DataFormatError
from physgen.nis.lhe import particle_masses
from physgen.outputs import atomic_path

__all__ = ["TABLE_FORMATS", "TREE", "event_table", "require_table_format", "write_events_table"]

#: File suffix -> format name of :func:`write_events_table`.
TABLE_FORMATS = {".parquet": "parquet", ".root": "root"}
#: The TTree name of ROOT files (the provenance is ``<TREE>_provenance``).
TREE = "events"
#: Per-particle columns, in file order.
PARTICLE_COLUMNS = ("pdg_id", "status", "px", "py", "pz", "E", "m")
_BASKET_EVENTS = 100_000  # events per ROOT basket (a few MB per branch)


def require_table_format(path: str | Path) -> str:
    """The table format of ``path`` (``parquet`` or ``root``), its package importable.

    Raises:
        ConfigError: Another suffix.
        MissingDependencyError: pyarrow (Parquet) or uproot (ROOT) missing: the message
            names the ``io`` extra.
    """
    p = Path(path)
    fmt = TABLE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise ConfigError(f"{p}: expected a .parquet or .root file for an event table")
    if fmt == "parquet":
        require("pyarrow.parquet", "io", f"{p}: Parquet files")
    else:
        require("uproot", "io", f"{p}: ROOT files")
    return fmt


def event_table(
    beams: Tensor,
    pdg: Tensor,
    momenta: Tensor,
    beam_pdg: tuple[int, int],
    cross_section: float,
    masses: Tensor | None = None,
) -> dict[str, npt.NDArray[Any]]:
    """The columns of the event table (see the module docstring).

    Args:
        beams: Incoming momenta ``(n, 2, 4)`` in GeV, ``(E, px, py, pz)``.
        pdg: Final-state PDG ids ``(n, k)``.
        momenta: Final-state momenta ``(n, k, 4)`` in GeV.
        beam_pdg: PDG ids of the beams.
        cross_section: Total cross section in pb (each event weighs ``cross_section / n``).
        masses: Final-state masses ``(n, k)`` in GeV (default: :func:`particle_masses`, as
            in the LHE file).

    Returns:
        ``pdg_id``, ``status`` ``(n, k + 2)`` int32; ``px``, ``py``, ``pz``, ``E``, ``m``
        ``(n, k + 2)`` float64 GeV; ``weight`` ``(n,)`` float64 pb.

    Raises:
        DataFormatError: Inconsistent shapes.
    """
    n, k = pdg.shape
    if momenta.shape != (n, k, 4) or beams.shape != (n, 2, 4):
        raise DataFormatError("event_table: pdg, momenta and beams have inconsistent shapes")
    if masses is not None and tuple(masses.shape) != (n, k):
        raise DataFormatError(f"event_table: masses must have shape ({n}, {k}), got {masses.shape}")
    ids_b = torch.tensor([beam_pdg], dtype=torch.int64).expand(n, 2)
    mass = torch.cat(
        [
            particle_masses(ids_b, beams),
            particle_masses(pdg, momenta) if masses is None else masses.to(torch.float64),
        ],
        dim=1,
    ).numpy()
    p = torch.cat([beams, momenta], dim=1).to(torch.float64).numpy()
    status = np.concatenate([np.full((n, 2), -1, np.int32), np.ones((n, k), np.int32)], axis=1)
    return {
        "pdg_id": torch.cat([ids_b, pdg.to(torch.int64)], dim=1).numpy().astype(np.int32),
        "status": status,
        "px": np.ascontiguousarray(p[..., 1]),
        "py": np.ascontiguousarray(p[..., 2]),
        "pz": np.ascontiguousarray(p[..., 3]),
        "E": np.ascontiguousarray(p[..., 0]),
        "m": np.ascontiguousarray(mass),
        "weight": np.full(n, cross_section / max(n, 1), np.float64),
    }


def _write_parquet(tmp: Path, columns: dict[str, npt.NDArray[Any]], meta: str) -> None:
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    fields, arrays = [], []
    for name, a in columns.items():
        kind = pa.int32() if a.dtype == np.int32 else pa.float64()
        if a.ndim == 2:
            typ = pa.list_(pa.field("element", kind, nullable=False), a.shape[1])
            arr = pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1), kind), type=typ)
        else:
            typ, arr = kind, pa.array(a, kind)
        fields.append(pa.field(name, typ, nullable=False))
        arrays.append(arr)
    schema = pa.schema(fields, metadata={"physgen": meta})
    pq.write_table(pa.Table.from_arrays(arrays, schema=schema), tmp)


def _write_root(tmp: Path, columns: dict[str, npt.NDArray[Any]], meta: str) -> None:
    import uproot  # type: ignore[import-untyped]

    types = {
        name: np.dtype((a.dtype, a.shape[1:])) if a.ndim == 2 else a.dtype
        for name, a in columns.items()
    }
    n = len(columns["weight"])
    with uproot.recreate(tmp) as f:  # a TTree (uproot's default would be an RNTuple)
        tree = f.mktree(TREE, types)
        for i in range(0, n, _BASKET_EVENTS):
            tree.extend({name: a[i : i + _BASKET_EVENTS] for name, a in columns.items()})
        f[f"{TREE}_provenance"] = meta


def write_events_table(
    path: str | Path,
    beams: Tensor,
    pdg: Tensor,
    momenta: Tensor,
    beam_pdg: tuple[int, int],
    cross_section: float,
    cross_section_error: float,
    provenance: Mapping[str, Any] | None = None,
    masses: Tensor | None = None,
) -> Path:
    """Write events as a Parquet or ROOT table (by suffix), atomically.

    Args:
        path: Output ``.parquet`` or ``.root`` file; its folder must exist.
        beams: Incoming momenta ``(n, 2, 4)`` in GeV, ``(E, px, py, pz)``.
        pdg: Final-state PDG ids ``(n, k)``.
        momenta: Final-state momenta ``(n, k, 4)`` in GeV.
        beam_pdg: PDG ids of the beams.
        cross_section: Total cross section in pb.
        cross_section_error: Its uncertainty in pb.
        provenance: JSON-serialisable entries stored with the table (process, seed...).
        masses: Final-state masses ``(n, k)`` in GeV (default as in the LHE file).

    Returns:
        The path written.

    Raises:
        ConfigError: Another suffix, or the folder does not exist.
        DataFormatError: Inconsistent shapes.
        MissingDependencyError: pyarrow or uproot missing (the ``io`` extra).
    """
    p = Path(path)
    fmt = require_table_format(p)
    if not p.parent.exists():
        raise ConfigError(f"--out: folder {p.parent} does not exist")
    columns = event_table(beams, pdg, momenta, beam_pdg, cross_section, masses)
    n = len(columns["weight"])
    meta = {
        **(provenance or {}),
        "n_events": n,
        "cross_section_pb": float(cross_section),
        "cross_section_error_pb": float(cross_section_error),
        "event_weight_pb": float(cross_section / max(n, 1)),
        "physgen_version": __version__,
        "units": {**dict.fromkeys(("px", "py", "pz", "E", "m"), "GeV"), "weight": "pb"},
        "layout": "one row per event; per-particle columns hold the 2 beams (status -1), "
        "then the final state (status 1)",
    }
    text = json.dumps(meta)
    with atomic_path(p) as tmp:
        (_write_parquet if fmt == "parquet" else _write_root)(Path(tmp), columns, text)
    return p
