"""Named numeric columns from the files physicists keep them in, and back.

:func:`read_columns` reads columns from HDF5 (``.h5``/``.hdf5``), NumPy (``.npy``, ``.npz``),
Parquet (``.parquet``, needs ``pyarrow``) and ROOT TTrees (``.root``, needs ``uproot``) into
one ``(N, k)`` float64 array; :func:`write_columns` writes named columns to the same formats
(atomically).

Column specifications (:func:`parse_columns`), comma-separated:

* a name: an HDF5 dataset, ``.npz`` key, Parquet column or TTree branch; a 2-D dataset (or a
  Parquet fixed-size list column, a TTree fixed-size array branch) gives all its columns;
* ``name[i]`` or ``name[i:j]``: some columns of a 2-D dataset;
* for a plain ``.npy`` 2-D array: indices ``0,2`` or ranges ``0:3``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen._optional import require
from physgen.errors import ConfigError, DataFormatError
from physgen.outputs import atomic_path

__all__ = ["ColumnSpec", "parse_columns", "read_columns", "read_named_columns", "write_columns"]

F64 = npt.NDArray[np.float64]
_SPEC = re.compile(r"^\s*([^\[\]]+?)\s*(?:\[\s*(-?\d*)\s*(?:(:)\s*(-?\d*)\s*)?\])?\s*$")
FORMATS = (".h5", ".hdf5", ".npy", ".npz", ".parquet", ".root")


@dataclass(frozen=True)
class ColumnSpec:
    """One entry of a column list: a name and an optional column slice of a 2-D dataset.

    Attributes:
        name: Dataset, key, column or branch name (for ``.npy``: a column index or range).
        start: First column (None: from the start; with ``stop`` None and ``single``: one).
        stop: End column (exclusive).
        single: ``name[i]``: one column.
        text: The specification as written (for messages).
    """

    name: str
    start: int | None = None
    stop: int | None = None
    single: bool = False
    text: str = ""

    def select(self, values: npt.NDArray[Any], where: str) -> F64:
        """Apply the slice to a ``(N,)`` or ``(N, m)`` array -> ``(N, k)`` float64."""
        a = np.asarray(values)
        if a.ndim == 1:
            a = a[:, None]
        if a.ndim != 2:
            raise DataFormatError(
                f"{where}: column {self.text!r} has shape {a.shape}, expected 1-D or 2-D"
            )
        if not np.issubdtype(a.dtype, np.number) and a.dtype != np.bool_:
            raise DataFormatError(f"{where}: column {self.text!r} is not numeric ({a.dtype})")
        m = a.shape[1]
        if self.single:
            i = self.start if self.start is not None else 0
            if not -m <= i < m:
                raise ConfigError(f"{where}: {self.text!r}: column {i} out of range (width {m})")
            return np.asarray(a[:, [i]], dtype=np.float64)
        if self.start is None and self.stop is None:
            return np.asarray(a, dtype=np.float64)
        out = a[:, slice(self.start, self.stop)]
        if out.shape[1] == 0:
            raise ConfigError(f"{where}: {self.text!r} selects no column (width {m})")
        return np.asarray(out, dtype=np.float64)


def parse_columns(text: str | Sequence[str]) -> list[ColumnSpec]:
    """``"a,b[0:2],c[3]"`` (or a list of such entries) -> column specifications.

    Raises:
        ConfigError: Empty list or malformed entry.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for raw in items:
        if not raw.strip():
            continue
        m = _SPEC.match(raw)
        if m is None:
            raise ConfigError(f"column {raw.strip()!r}: expected NAME, NAME[i] or NAME[i:j]")
        name, a, colon, b = m.group(1), m.group(2), m.group(3), m.group(4)
        single = "[" in raw and colon is None
        if single and not a:
            raise ConfigError(f"column {raw.strip()!r}: empty index")
        try:
            start, stop = (int(a) if a else None), (int(b) if b else None)
        except ValueError:
            raise ConfigError(
                f"column {raw.strip()!r}: indices must be integers (NAME[i] or NAME[i:j])"
            ) from None
        out.append(ColumnSpec(name, start, stop, single, raw.strip()))
    if not out:
        raise ConfigError("no columns given")
    return out


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(f"{path}: unknown file type {suffix!r}; use one of {', '.join(FORMATS)}")
    return suffix


def _unknown(path: Path, spec: ColumnSpec, available: Sequence[str]) -> ConfigError:
    shown = ", ".join(sorted(available)[:20]) or "none"
    return ConfigError(f"{path}: no column {spec.name!r}; available: {shown}")


def _read_npy(path: Path, specs: list[ColumnSpec]) -> list[F64]:
    a = np.load(path, allow_pickle=False)
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise DataFormatError(f"{path}: expected a 1-D or 2-D array, got shape {a.shape}")
    out = []
    for s in specs:
        try:
            if ":" in s.text:
                lo, _, hi = s.text.partition(":")
                idx = ColumnSpec(
                    "", int(lo) if lo else None, int(hi) if hi else None, False, s.text
                )
            else:
                idx = ColumnSpec("", int(s.text), None, True, s.text)
        except ValueError:
            raise ConfigError(
                f"{path}: a .npy file has no column names; give indices (0,1) or ranges (0:3), "
                f"got {s.text!r}"
            ) from None
        out.append(idx.select(a, str(path)))
    return out


def _read_mapping(path: Path, specs: list[ColumnSpec], data: Mapping[str, Any]) -> list[F64]:
    out = []
    for s in specs:
        if s.text in data:  # an exact column name, brackets and all
            out.append(ColumnSpec(s.text, text=s.text).select(np.asarray(data[s.text]), str(path)))
            continue
        if s.name not in data:
            raise _unknown(path, s, list(data.keys()))
        out.append(s.select(np.asarray(data[s.name]), str(path)))
    return out


def _read_h5(path: Path, specs: list[ColumnSpec]) -> list[F64]:
    import h5py

    with h5py.File(path, "r") as f:
        names: list[str] = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        out = []
        for s in specs:
            if s.text in names:
                out.append(ColumnSpec(s.text, text=s.text).select(f[s.text][()], str(path)))
                continue
            if s.name not in names:
                raise _unknown(path, s, names)
            out.append(s.select(f[s.name][()], str(path)))
        return out


def _read_parquet(path: Path, specs: list[ColumnSpec]) -> list[F64]:
    require("pyarrow.parquet", "io", f"{path}: Parquet files")
    import pyarrow as pa  # type: ignore[import-untyped]
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    table = pq.read_table(path)
    data = {}
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_fixed_size_list(col.type) and col.null_count == 0:  # a 2-D column
            flat = col.combine_chunks().flatten().to_numpy(zero_copy_only=False)
            data[name] = flat.reshape(len(col), col.type.list_size)
        else:
            data[name] = col.to_numpy()
    return _read_mapping(path, specs, data)


def _read_root(path: Path, specs: list[ColumnSpec], tree: str | None) -> list[F64]:
    require("uproot", "io", f"{path}: ROOT files")
    import uproot  # type: ignore[import-untyped]

    with uproot.open(path) as f:
        trees = [
            k.split(";")[0]
            for k, v in f.classnames().items()
            if v.startswith("TTree") or v == "ROOT::RNTuple"
        ]
        if tree is None:
            if len(trees) != 1:
                raise ConfigError(
                    f"{path}: {len(trees)} TTrees ({', '.join(trees) or 'none'}); name one with "
                    "FILE.root:TREE"
                )
            tree = trees[0]
        if tree not in trees:
            raise ConfigError(f"{path}: no TTree {tree!r}; TTrees: {', '.join(trees) or 'none'}")
        t = f[tree]
        branches = list(t.keys())
        out = []
        for s in specs:
            exact = s.text in branches
            if not exact and s.name not in branches:
                raise _unknown(path, s, branches)
            key = s.text if exact else s.name
            if exact:
                s = ColumnSpec(s.text, text=s.text)
            try:
                values = t[key].array(library="np")
            except Exception as exc:
                raise DataFormatError(f"{path}:{tree}: branch {key!r}: {exc}") from exc
            if values.dtype == object:
                raise DataFormatError(
                    f"{path}:{tree}: branch {key!r} is jagged (variable length per entry); "
                    "only fixed-size numeric branches can be read as columns"
                )
            out.append(s.select(values, f"{path}:{tree}"))
        return out


def read_columns(
    path: str | Path, columns: str | Sequence[str], *, allow_nonfinite: bool = False
) -> F64:
    """Read columns into one ``(N, k)`` float64 array.

    Args:
        path: The file; for ROOT, ``FILE.root:TREE`` names the TTree (optional when the file
            holds one).
        columns: Column specifications (see the module docstring).
        allow_nonfinite: Accept NaN/inf values.

    Raises:
        ConfigError: Unknown file type or column (the message lists the available ones).
        DataFormatError: Missing or unreadable file, non-numeric or jagged columns, columns of
            different lengths, NaN or inf.
    """
    return read_named_columns(path, columns, allow_nonfinite=allow_nonfinite)[0]


def read_named_columns(
    path: str | Path, columns: str | Sequence[str], *, allow_nonfinite: bool = False
) -> tuple[F64, list[str]]:
    """Like :func:`read_columns`, also returning one name per column: the specification for a
    single column, ``name[i]`` for column i of a 2-D dataset (``i`` for ``.npy``), so that
    every name is itself a valid specification."""
    text = str(path)
    tree = None
    if ".root:" in text:
        text, _, tree = text.partition(".root:")
        text += ".root"
    p = Path(text)
    suffix = _suffix(p)
    if not p.is_file():
        raise DataFormatError(f"{p}: no such file")
    specs = parse_columns(columns)
    try:
        if suffix == ".npy":
            parts = _read_npy(p, specs)
        elif suffix == ".npz":
            with np.load(p, allow_pickle=False) as z:
                parts = _read_mapping(p, specs, {k: z[k] for k in z.files})
        elif suffix in (".h5", ".hdf5"):
            parts = _read_h5(p, specs)
        elif suffix == ".parquet":
            parts = _read_parquet(p, specs)
        else:
            parts = _read_root(p, specs, tree)
    except (ConfigError, DataFormatError):
        raise
    except (OSError, ValueError) as exc:
        raise DataFormatError(f"{p}: cannot read as {suffix[1:]} ({exc})") from exc
    lengths = {a.shape[0] for a in parts}
    if len(lengths) != 1:
        sizes = ", ".join(f"{s.text}: {a.shape[0]}" for s, a in zip(specs, parts))
        raise DataFormatError(f"{p}: columns of different lengths ({sizes})")
    out = np.concatenate(parts, axis=1)
    if not allow_nonfinite and not np.isfinite(out).all():
        bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
        raise DataFormatError(
            f"{p}: {bad.size} rows hold NaN or inf (first: row {int(bad[0])}); remove them first"
        )
    names: list[str] = []
    for spec, part in zip(specs, parts):
        if part.shape[1] == 1:
            names.append(spec.text)
            continue
        if suffix == ".npy":
            lo = int(spec.text.partition(":")[0] or 0)
            names += [str(lo + i) for i in range(part.shape[1])]
        else:
            lo = spec.start or 0
            names += [f"{spec.name}[{lo + i}]" for i in range(part.shape[1])]
    return out, names


def write_columns(path: str | Path, columns: Mapping[str, npt.ArrayLike]) -> Path:
    """Write named 1-D or 2-D columns of equal length, atomically.

    HDF5 and ``.npz``: one dataset per name (gzip for HDF5); ``.npy``: the columns
    concatenated into one 2-D array; Parquet and ROOT: one column/branch per name, a 2-D
    column split into ``name_0, name_1...``.

    Raises:
        ConfigError: Unknown file type or columns of different lengths.
    """
    p = Path(path)
    suffix = _suffix(p)
    arrays = {k: np.asarray(v) for k, v in columns.items()}
    if len({a.shape[0] for a in arrays.values()}) > 1:
        raise DataFormatError("write_columns: columns of different lengths")
    flat: dict[str, npt.NDArray[Any]] = {}
    for k, a in arrays.items():
        if a.ndim == 2:
            flat.update({f"{k}_{i}": a[:, i] for i in range(a.shape[1])})
        else:
            flat[k] = a
    with atomic_path(p) as tmp:
        if suffix in (".h5", ".hdf5"):
            import h5py

            with h5py.File(tmp, "w") as f:
                for k, a in arrays.items():
                    f.create_dataset(k, data=a, compression="gzip")
        elif suffix == ".npz":
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)  # type: ignore[arg-type]
        elif suffix == ".npy":
            parts = [a[:, None] if a.ndim == 1 else a.reshape(len(a), -1) for a in arrays.values()]
            with open(tmp, "wb") as fh:
                np.save(fh, np.concatenate(parts, axis=1))
        elif suffix == ".parquet":
            require("pyarrow.parquet", "io", f"{p}: Parquet files")
            import pyarrow as pa  # type: ignore[import-untyped]
            import pyarrow.parquet as pq  # type: ignore[import-untyped]

            pq.write_table(pa.table(flat), tmp)
        else:
            require("uproot", "io", f"{p}: ROOT files")
            import uproot  # type: ignore[import-untyped]

            with uproot.recreate(tmp) as f:  # a TTree (uproot's default would be an RNTuple)
                tree = f.mktree("events", {k: a.dtype for k, a in flat.items()})
                tree.extend(flat)
    return p
