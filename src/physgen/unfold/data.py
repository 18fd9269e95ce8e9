"""Unfolding inputs: Monte Carlo pairs (particle level, detector level) and measured data.

An unfolding needs a Monte Carlo sample of *pairs*: every event has a particle-level
("gen", truth) record ``z`` and a detector-level ("reco", simulated measurement) record ``x``
of the same ``D`` observables, with flags saying whether the event passes the particle-level
selection (``pass_gen``) and the detector-level selection (``pass_reco``). Events that pass
reco but fail gen are *fakes*; events that pass gen but fail reco are *inefficiencies*. The
data are detector-level records only (optionally with their truth, for pseudo-data).

File formats (read by :func:`read_mc` / :func:`read_data`, written by :func:`write_mc` /
:func:`write_data`, atomically):

* **HDF5** (``.h5``/``.hdf5``): datasets ``gen (N, D)``, ``reco (N, D)``, optional
  ``pass_gen``, ``pass_reco`` ``(N,)`` (bool or 0/1; default all True) and ``weight (N,)``
  (default 1). Column names in the root attribute ``columns`` (a list of str; default
  ``x0, x1, ...``). A data file holds ``reco (M, D)`` and optional ``weight``; with ``gen``
  (and ``pass_gen``/``pass_reco``) it is pseudo-data with known truth: the full record is
  kept as :attr:`UnfoldingData.truth` and the observed data are its rows passing reco.
* **ROOT** TTrees (``.root``, or ``FILE.root:TREE``; needs ``uproot``, ``pip install
  'physgen[io]'``): one branch per observable and level, ``gen_<col>`` and ``reco_<col>``,
  plus optional ``pass_gen``, ``pass_reco`` and ``weight`` branches. The columns are the
  ``reco_<col>`` branches in tree order (for MC, those with a ``gen_<col>`` partner).

Values of a level in rows that fail that level are dummies and are never used; they may be
anything, NaN and inf included (ROOT ntuples often hold NaN for a missing object): such
non-finite dummies are replaced by 0. NaN or inf in a row that *passes* is an error.
Negative MC weights are accepted only for a background sample (``background=True``), whose
weights must be normalised to the data's luminosity (they are subtracted from the data).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.errors import ConfigError, DataFormatError
from physgen.unfold.files import read_arrays, select_columns, write_arrays

__all__ = [
    "UnfoldingData",
    "UnfoldingMC",
    "check_compatible",
    "data_from_truth",
    "make_data",
    "make_mc",
    "read_data",
    "read_mc",
    "write_data",
    "write_mc",
]

F64 = npt.NDArray[np.float64]
BoolArr = npt.NDArray[np.bool_]


@dataclass(frozen=True, eq=False)
class UnfoldingMC:
    """Monte Carlo pairs for unfolding (use :func:`make_mc` or :func:`read_mc`).

    Attributes:
        gen: Particle-level observables ``(N, D)``; rows failing gen hold a dummy value.
        reco: Detector-level observables ``(N, D)``; rows failing reco hold a dummy value.
        pass_gen: Particle-level selection ``(N,)``.
        pass_reco: Detector-level selection ``(N,)``.
        weight: MC event weights ``(N,)`` (negative only for a background sample).
        columns: ``D`` observable names.
    """

    gen: F64
    reco: F64
    pass_gen: BoolArr
    pass_reco: BoolArr
    weight: F64
    columns: tuple[str, ...]

    @property
    def n_events(self) -> int:
        """``N``."""
        return int(self.gen.shape[0])

    def column_index(self, column: int | str) -> int:
        """Index of a column given by name or position.

        Raises:
            ConfigError: Unknown name or index out of range.
        """
        return _column_index(self.columns, column)


@dataclass(frozen=True, eq=False)
class UnfoldingData:
    """Measured (or pseudo-) data at detector level (use :func:`make_data` or :func:`read_data`).

    Attributes:
        reco: Detector-level observables ``(M, D)``, every row passing reco.
        weight: Event weights ``(M,)`` (1 for real data), >= 0.
        columns: ``D`` observable names.
        truth: For pseudo-data with known truth, the full Monte Carlo record it came from
            (``reco`` are its rows passing reco); None for real data.
    """

    reco: F64
    weight: F64
    columns: tuple[str, ...]
    truth: UnfoldingMC | None = None

    @property
    def n_events(self) -> int:
        """``M``."""
        return int(self.reco.shape[0])


def _column_index(columns: Sequence[str], column: int | str) -> int:
    if isinstance(column, str):
        if column not in columns:
            raise ConfigError(f"column {column!r}: not one of {', '.join(columns)}")
        return list(columns).index(column)
    if not -len(columns) <= int(column) < len(columns):
        raise ConfigError(f"column {column}: out of range for {len(columns)} columns")
    return int(column) % len(columns)


# ------------------------------------------------------------------ validation


def _matrix(name: str, values: Any, where: str) -> F64:
    try:
        a = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{where}: {name}: not numeric ({exc})") from None
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2 or a.shape[1] < 1:
        raise DataFormatError(f"{where}: {name}: expected shape (N, D), got {a.shape}")
    if a.shape[0] == 0:
        raise DataFormatError(f"{where}: {name}: no events")
    return a


def _flags(name: str, values: Any, n: int, where: str) -> BoolArr:
    if values is None:
        return np.ones(n, dtype=np.bool_)
    a = np.asarray(values)
    if a.ndim != 1 or a.shape[0] != n:
        raise DataFormatError(f"{where}: {name}: expected {n} flags (one per event), got {a.shape}")
    numeric01 = np.issubdtype(a.dtype, np.number) and bool(np.isin(a, (0, 1)).all())
    if a.dtype != np.bool_ and not numeric01:
        raise DataFormatError(f"{where}: {name}: expected booleans or 0/1 values")
    return np.asarray(a, dtype=np.bool_)


def _weights(name: str, values: Any, n: int, where: str, negative_ok: bool) -> F64:
    if values is None:
        return np.ones(n)
    try:
        w = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataFormatError(f"{where}: {name}: not numeric") from None
    if w.ndim != 1 or w.shape[0] != n:
        raise DataFormatError(
            f"{where}: {name}: expected {n} weights (one per event), got {w.shape}"
        )
    if not np.isfinite(w).all():
        raise DataFormatError(f"{where}: {name}: contains NaN or inf")
    if not negative_ok and (w < 0).any():
        bad = np.flatnonzero(w < 0)
        raise DataFormatError(
            f"{where}: {name}: {bad.size} negative weights (first: row {int(bad[0])}); negative "
            "weights are allowed only for a background sample"
        )
    return w


def _finite_where_passing(name: str, a: F64, passing: BoolArr, where: str, level: str) -> F64:
    bad_rows = ~np.isfinite(a).all(axis=1)
    bad = np.flatnonzero(bad_rows & passing)
    if bad.size:
        raise DataFormatError(
            f"{where}: {name}: {bad.size} rows passing {level} hold NaN or inf (first: row "
            f"{int(bad[0])}); only rows failing {level} (pass_{level} = 0) may"
        )
    if bad_rows.any():  # dummies of failing rows: never used, made finite
        a = np.where(np.isfinite(a), a, 0.0)
    return a


def _column_names(columns: Sequence[str] | None, d: int, where: str) -> tuple[str, ...]:
    if columns is None:
        return tuple(f"x{i}" for i in range(d))
    names = tuple(str(c) for c in columns)
    if len(names) != d:
        raise DataFormatError(f"{where}: {len(names)} column names for {d} observables")
    if any(not n.strip() for n in names) or len(set(names)) != len(names):
        raise DataFormatError(f"{where}: column names must be non-empty and distinct: {names}")
    return names


def make_mc(
    gen: Any,
    reco: Any,
    *,
    pass_gen: Any = None,
    pass_reco: Any = None,
    weight: Any = None,
    columns: Sequence[str] | None = None,
    background: bool = False,
    where: str = "mc",
) -> UnfoldingMC:
    """Validated Monte Carlo pairs.

    Args:
        gen: Particle-level observables ``(N, D)`` (or ``(N,)`` for one).
        reco: Detector-level observables ``(N, D)``.
        pass_gen: ``(N,)`` bool or 0/1 (None: all pass).
        pass_reco: ``(N,)`` bool or 0/1 (None: all pass).
        weight: ``(N,)`` event weights (None: 1).
        columns: ``D`` names (None: ``x0, x1, ...``).
        background: A background sample: negative weights allowed.
        where: The file or argument named in error messages.

    Raises:
        DataFormatError: Row counts of gen and reco differ, observable counts differ, flags or
            weights of the wrong length, NaN/inf in a passing row, negative weights (without
            ``background``), no events.
    """
    g = _matrix("gen", gen, where)
    r = _matrix("reco", reco, where)
    if g.shape[0] != r.shape[0]:
        raise DataFormatError(
            f"{where}: gen has {g.shape[0]} rows but reco has {r.shape[0]}; MC pairs need one "
            "row per event in both"
        )
    if g.shape[1] != r.shape[1]:
        raise DataFormatError(
            f"{where}: gen has {g.shape[1]} observables but reco has {r.shape[1]}"
        )
    n = g.shape[0]
    pg = _flags("pass_gen", pass_gen, n, where)
    pr = _flags("pass_reco", pass_reco, n, where)
    w = _weights("weight", weight, n, where, background)
    if not background and w[pg | pr].sum() <= 0:
        raise DataFormatError(f"{where}: weight: the passing events' weights sum to 0")
    g = _finite_where_passing("gen", g, pg, where, "gen")
    r = _finite_where_passing("reco", r, pr, where, "reco")
    return UnfoldingMC(g, r, pg, pr, w, _column_names(columns, g.shape[1], where))


def make_data(
    reco: Any,
    *,
    weight: Any = None,
    columns: Sequence[str] | None = None,
    truth: UnfoldingMC | None = None,
    where: str = "data",
) -> UnfoldingData:
    """Validated detector-level data.

    Args:
        reco: Observables ``(M, D)`` (every row passes reco).
        weight: ``(M,)`` weights >= 0 (None: 1).
        columns: ``D`` names (None: ``x0, x1, ...``, or the truth's names).
        truth: The full record of pseudo-data (``reco`` must be its rows passing reco).
        where: The file or argument named in error messages.

    Raises:
        DataFormatError: Bad shapes, NaN/inf, negative weights, a truth record that does not
            match.
    """
    r = _matrix("reco", reco, where)
    if not np.isfinite(r).all():
        bad = np.flatnonzero(~np.isfinite(r).all(axis=1))
        raise DataFormatError(
            f"{where}: reco: {bad.size} rows hold NaN or inf (first: row {int(bad[0])})"
        )
    w = _weights("weight", weight, r.shape[0], where, False)
    if w.sum() <= 0:
        raise DataFormatError(f"{where}: weight: the weights sum to 0")
    if columns is None and truth is not None:
        columns = truth.columns
    names = _column_names(columns, r.shape[1], where)
    n_truth = -1 if truth is None else int(truth.pass_reco.sum())
    if truth is not None and (n_truth != r.shape[0] or truth.columns != names):
        raise DataFormatError(
            f"{where}: the truth record does not match the data: {n_truth} rows pass reco for "
            f"{r.shape[0]} data rows, columns {truth.columns} vs {names}"
        )
    return UnfoldingData(r, w, names, truth)


def data_from_truth(truth: UnfoldingMC) -> UnfoldingData:
    """Pseudo-data from a full Monte Carlo record: its rows passing reco, with the truth kept.

    Raises:
        DataFormatError: No row passes reco, or negative weights among them.
    """
    m = truth.pass_reco
    if not m.any():
        raise DataFormatError("pseudo-data: no event passes reco")
    return make_data(truth.reco[m], weight=truth.weight[m], columns=truth.columns, truth=truth)


def check_compatible(
    mc: UnfoldingMC,
    data: UnfoldingData,
    background: UnfoldingMC | None = None,
    *,
    names: tuple[str, str, str] = ("mc", "data", "background"),
) -> None:
    """The MC, the data (and the background) describe the same observables.

    Raises:
        DataFormatError: Different observable counts or column names.
    """
    others: list[tuple[str, tuple[str, ...], int]] = [(names[1], data.columns, data.reco.shape[1])]
    if background is not None:
        others.append((names[2], background.columns, background.reco.shape[1]))
    d = mc.reco.shape[1]
    for name, cols, dd in others:
        if dd != d:
            raise DataFormatError(
                f"{name}: {dd} observables but {names[0]} has {d}; both need the same columns"
            )
        if cols != mc.columns:
            raise DataFormatError(
                f"{name}: columns {', '.join(cols)} differ from {names[0]}'s {', '.join(mc.columns)}"
            )


# ------------------------------------------------------------------ files (layouts: physgen.unfold.files)


def _read_selected(
    path: str | Path, tree: str | None, columns: Sequence[str] | None, data: bool
) -> tuple[Path, dict[str, Any], tuple[str, ...]]:
    """The file's arrays with the requested columns (default names ``x0, x1, ...``)."""
    p, arrays, names = read_arrays(path, tree, data=data)
    width = np.asarray(arrays["reco"]).reshape(len(arrays["reco"]), -1).shape[1]
    names = names or tuple(f"x{i}" for i in range(width))
    arrays, names = select_columns(arrays, names, columns, str(p))
    return p, arrays, names


def read_mc(
    path: str | Path,
    *,
    columns: Sequence[str] | None = None,
    tree: str | None = None,
    background: bool = False,
) -> UnfoldingMC:
    """Read Monte Carlo pairs from HDF5 or a ROOT TTree (see the module docstring).

    Args:
        path: ``.h5``/``.hdf5`` or ``.root`` (``FILE.root:TREE`` names the tree).
        columns: Observables to keep, by name, in this order (None: all).
        tree: The TTree (None: the only one, or the one in ``path``).
        background: A background sample (negative weights allowed).

    Raises:
        ConfigError: Unknown file type or TTree.
        DataFormatError: Missing file or dataset, unknown column, bad shapes or values.
    """
    p, arrays, names = _read_selected(path, tree, columns, data=False)
    return make_mc(
        arrays["gen"],
        arrays["reco"],
        pass_gen=arrays["pass_gen"],
        pass_reco=arrays["pass_reco"],
        weight=arrays["weight"],
        columns=names,
        background=background,
        where=str(p),
    )


def read_data(
    path: str | Path, *, columns: Sequence[str] | None = None, tree: str | None = None
) -> UnfoldingData:
    """Read detector-level data (and the truth of pseudo-data) from HDF5 or ROOT.

    A file with ``gen`` is pseudo-data: the full record becomes :attr:`UnfoldingData.truth`
    and the data are its rows passing reco. Without ``gen``, rows with ``pass_reco`` = 0 (if
    the flag is present) are dropped.

    Raises:
        ConfigError: Unknown file type or TTree.
        DataFormatError: Missing file or dataset, unknown column, bad shapes or values.
    """
    p, arrays, names = _read_selected(path, tree, columns, data=True)
    if arrays["gen"] is not None:
        truth = make_mc(
            arrays["gen"],
            arrays["reco"],
            pass_gen=arrays["pass_gen"],
            pass_reco=arrays["pass_reco"],
            weight=arrays["weight"],
            columns=names,
            where=str(p),
        )
        if not truth.pass_reco.any():
            raise DataFormatError(f"{p}: no event passes reco")
        m = truth.pass_reco
        return make_data(
            truth.reco[m], weight=truth.weight[m], columns=names, truth=truth, where=str(p)
        )
    reco = _matrix("reco", arrays["reco"], str(p))
    keep = _flags("pass_reco", arrays["pass_reco"], reco.shape[0], str(p))
    w = arrays["weight"]
    w = None if w is None else _weights("weight", w, reco.shape[0], str(p), False)[keep]
    if not keep.any():
        raise DataFormatError(f"{p}: no event passes reco")
    return make_data(reco[keep], weight=w, columns=names, where=str(p))


def write_mc(path: str | Path, mc: UnfoldingMC) -> Path:
    """Write MC pairs atomically to HDF5 or ROOT (tree ``events``); see the module docstring."""
    arrays = {
        "gen": mc.gen,
        "reco": mc.reco,
        "pass_gen": mc.pass_gen,
        "pass_reco": mc.pass_reco,
        "weight": mc.weight,
    }
    return write_arrays(path, arrays, mc.columns, "unfolding-mc")


def write_data(path: str | Path, data: UnfoldingData) -> Path:
    """Write data atomically to HDF5 or ROOT; pseudo-data are written as their full truth
    record (``gen``, ``reco``, ``pass_gen``, ``pass_reco``, ``weight``)."""
    if data.truth is not None:
        t = data.truth
        arrays = {
            "gen": t.gen,
            "reco": t.reco,
            "pass_gen": t.pass_gen,
            "pass_reco": t.pass_reco,
            "weight": t.weight,
        }
    else:
        arrays = {"reco": data.reco, "weight": data.weight}
    return write_arrays(path, arrays, data.columns, "unfolding-data")
