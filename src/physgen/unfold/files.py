"""Low-level reading and writing of unfolding files (HDF5 and ROOT TTrees) as plain arrays.

:mod:`physgen.unfold.data` turns the arrays into validated :class:`~physgen.unfold.data.
UnfoldingMC` / :class:`~physgen.unfold.data.UnfoldingData` objects; the layouts are
described there. Nothing here validates values: it finds the datasets or branches, reads
them and names the columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from physgen._optional import require
from physgen._version import __version__
from physgen.errors import ConfigError, DataFormatError
from physgen.outputs import atomic_path

__all__ = ["read_arrays", "select_columns", "write_arrays"]

_SUFFIXES = (".h5", ".hdf5", ".root")


def _split_tree(path: str | Path) -> tuple[Path, str | None]:
    text = str(path)
    if ".root:" in text:
        head, _, tree = text.partition(".root:")
        return Path(head + ".root"), tree or None
    return Path(text), None


def _suffix(p: Path) -> str:
    s = p.suffix.lower()
    if s not in _SUFFIXES:
        raise ConfigError(f"{p}: unknown file type {s!r}; use .h5, .hdf5 or .root")
    return s


def select_columns(
    arrays: dict[str, Any], names: tuple[str, ...], columns: Sequence[str] | None, where: str
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Keep the requested columns of the (N, D) arrays ``gen`` and ``reco``."""
    if columns is None:
        return arrays, names
    want = [str(c) for c in columns]
    for c in want:
        if c not in names:
            raise DataFormatError(f"{where}: no column {c!r}; columns: {', '.join(names)}")
    idx = [names.index(c) for c in want]
    out = dict(arrays)
    for key in ("gen", "reco"):
        if out.get(key) is not None:
            out[key] = np.asarray(out[key])[:, idx]
    return out, tuple(want)


def _read_h5(p: Path, data: bool) -> tuple[dict[str, Any], tuple[str, ...] | None]:
    import h5py

    try:
        with h5py.File(p, "r") as f:
            out: dict[str, Any] = {}
            for key in ("gen", "reco", "pass_gen", "pass_reco", "weight"):
                if key not in f:
                    out[key] = None
                    continue
                obj = f[key]
                if not isinstance(obj, h5py.Dataset) or obj.dtype.kind not in "biuf":
                    raise DataFormatError(f"{p}: {key} is not a numeric dataset")
                out[key] = obj[()]
            names = f.attrs.get("columns")
    except OSError as exc:
        raise DataFormatError(f"{p}: cannot read as HDF5 ({exc})") from None
    if out["reco"] is None or (not data and out["gen"] is None):
        need = "'reco'" if data else "'gen' and 'reco'"
        raise DataFormatError(f"{p}: needs the datasets {need} (N, D)")
    if names is None:
        return out, None
    cols = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in np.atleast_1d(names))
    width = np.asarray(out["reco"]).reshape(len(out["reco"]), -1).shape[1]
    if len(cols) != width:
        raise DataFormatError(f"{p}: attribute 'columns' names {len(cols)} of {width} observables")
    return out, cols


def _read_root(
    p: Path, tree: str | None, data: bool
) -> tuple[dict[str, Any], tuple[str, ...] | None]:
    require("uproot", "io", f"{p}: ROOT files")
    import uproot  # type: ignore[import-untyped]

    try:
        f = uproot.open(p)
    except Exception as exc:
        raise DataFormatError(f"{p}: cannot read as ROOT ({exc})") from None
    with f:
        trees = [k.split(";")[0] for k, v in f.classnames().items() if v.startswith("TTree")]
        if tree is None:
            if len(trees) != 1:
                raise ConfigError(
                    f"{p}: {len(trees)} TTrees ({', '.join(trees) or 'none'}); name one with "
                    "FILE.root:TREE"
                )
            tree = trees[0]
        if tree not in trees:
            raise ConfigError(f"{p}: no TTree {tree!r}; TTrees: {', '.join(trees) or 'none'}")
        t = f[tree]
        branches = list(t.keys())
        reco_cols = [b[5:] for b in branches if b.startswith("reco_") and len(b) > 5]
        paired = [c for c in reco_cols if f"gen_{c}" in branches]
        cols = reco_cols if data else paired
        with_gen = bool(cols) and len(paired) == len(cols)
        if not cols:
            raise DataFormatError(
                f"{p}:{tree}: no observable branches (expected reco_<col>"
                + (")" if data else " and gen_<col>)")
            )

        def read(name: str) -> Any:
            try:
                a = t[name].array(library="np")
            except Exception as exc:
                raise DataFormatError(f"{p}:{tree}: branch {name!r}: {exc}") from None
            if a.dtype == object or a.ndim != 1:
                raise DataFormatError(f"{p}:{tree}: branch {name!r} is not a flat numeric branch")
            return a

        out: dict[str, Any] = {"gen": None}
        if with_gen:
            out["gen"] = np.stack([read(f"gen_{c}") for c in cols], axis=1)
        out["reco"] = np.stack([read(f"reco_{c}") for c in cols], axis=1)
        for key in ("pass_gen", "pass_reco", "weight"):
            out[key] = read(key) if key in branches else None
    return out, tuple(cols)


def read_arrays(
    path: str | Path, tree: str | None, data: bool
) -> tuple[Path, dict[str, Any], tuple[str, ...] | None]:
    """Read ``gen``, ``reco`` (``(N, D)``, None if absent), ``pass_gen``, ``pass_reco`` and
    ``weight`` (``(N,)`` or None) from an HDF5 file or a TTree.

    Args:
        path: ``.h5``/``.hdf5`` or ``.root`` (``FILE.root:TREE`` names the tree).
        tree: The TTree (None: the one in ``path``, or the file's only one).
        data: A data file (``gen`` optional) rather than MC pairs (``gen`` required).

    Returns:
        ``(file path, arrays, column names or None when the file names none)``.

    Raises:
        ConfigError: Unknown file type or TTree.
        DataFormatError: Missing file, dataset or branch; unreadable or non-numeric values.
    """
    p, tree_in_path = _split_tree(path)
    suffix = _suffix(p)
    if not p.is_file():
        raise DataFormatError(f"{p}: no such file")
    if suffix == ".root":
        arrays, names = _read_root(p, tree or tree_in_path, data)
    else:
        arrays, names = _read_h5(p, data)
    return p, arrays, names


def _h5_write(tmp: Path, arrays: dict[str, Any], columns: tuple[str, ...], kind: str) -> None:
    import h5py

    with h5py.File(tmp, "w") as f:
        for k, a in arrays.items():
            f.create_dataset(k, data=a, compression="gzip")
        f.attrs["columns"] = list(columns)
        f.attrs["kind"] = kind
        f.attrs["physgen_version"] = __version__


def _root_write(tmp: Path, arrays: dict[str, Any], columns: tuple[str, ...]) -> None:
    require("uproot", "io", f"{tmp}: ROOT files")
    import uproot

    flat: dict[str, Any] = {}
    for level in ("gen", "reco"):
        if level in arrays:
            for i, c in enumerate(columns):
                flat[f"{level}_{c}"] = np.ascontiguousarray(arrays[level][:, i])
    for k in ("pass_gen", "pass_reco", "weight"):
        if k in arrays:
            flat[k] = np.ascontiguousarray(arrays[k])
    with uproot.recreate(tmp) as f:
        t = f.mktree("events", {k: a.dtype for k, a in flat.items()})
        t.extend(flat)


def write_arrays(
    path: str | Path, arrays: dict[str, Any], columns: tuple[str, ...], kind: str
) -> Path:
    """Write ``arrays`` (keys as :func:`read_arrays` returns them) atomically: HDF5 datasets
    with the root attributes ``columns``, ``kind`` and ``physgen_version``, or a TTree
    ``events`` with branches ``gen_<col>``, ``reco_<col>``, ``pass_gen``, ``pass_reco``,
    ``weight``."""
    p = Path(path)
    suffix = _suffix(p)
    with atomic_path(p) as tmp:
        if suffix == ".root":
            _root_write(tmp, arrays, columns)
        else:
            _h5_write(tmp, arrays, columns, kind)
    return p
