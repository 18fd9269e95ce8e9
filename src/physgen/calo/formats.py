"""CaloChallenge showers in three file formats, read and written in row batches.

* **HDF5** (``.h5``, ``.hdf5``): the CaloChallenge layout of :mod:`physgen.calo.io`,
  ``incident_energies`` (N, 1) and ``showers`` (N, n_voxels) in MeV, provenance as root
  attributes.
* **ROOT** (``.root``, needs ``uproot``, the ``io`` extra): one TTree (default name
  ``showers``), one entry per shower, a scalar branch ``incident_energy`` (MeV) and a
  fixed-size array branch ``showers`` of ``n_voxels`` values (MeV); the provenance as a
  JSON ``TObjString`` named ``<tree>_provenance`` beside the tree.
* **NumPy** (``.npz``): the arrays ``incident_energies`` (N, 1) and ``showers``
  (N, n_voxels) as ``np.savez`` writes them, and the provenance as a 0-d string array
  ``provenance`` (JSON); ``np.load(path)`` reads it.

A :class:`ShowerSource` holds the incident energies (N values, small) in memory and
yields the showers in batches; the writers append batches. So converting a file needs
one batch of showers in memory, whatever its size.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from physgen._optional import require
from physgen.calo.geometry import Geometry, get_geometry, match_geometry
from physgen.calo.io import ENERGY_KEY, SHOWER_KEY, open_showers, raw_attrs
from physgen.calo.provenance import provenance_from_json
from physgen.errors import ConfigError, DataFormatError

__all__ = [
    "DEFAULT_TREE",
    "ENERGY_BRANCH",
    "FORMATS",
    "NPZ_PROVENANCE_KEY",
    "SHOWER_BRANCH",
    "ShowerSource",
    "import_uproot",
    "open_source",
    "shower_format",
]

#: File suffix -> format name.
FORMATS = {".h5": "hdf5", ".hdf5": "hdf5", ".root": "root", ".npz": "npz"}
DEFAULT_TREE = "showers"
ENERGY_BRANCH = "incident_energy"
SHOWER_BRANCH = "showers"
NPZ_PROVENANCE_KEY = "provenance"


def shower_format(path: str | Path, option: str = "file") -> str:
    """``hdf5``, ``root`` or ``npz`` from the file suffix.

    Raises:
        ConfigError: Another suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(
            f"{option} {path}: unknown shower file type {suffix or '(none)'!r}; use .h5/.hdf5 "
            "(CaloChallenge HDF5), .root (ROOT TTree) or .npz (NumPy)"
        )
    return FORMATS[suffix]


def import_uproot(path: Path) -> Any:
    """The ``uproot`` module (imported here, not at import time).

    Raises:
        MissingDependencyError: uproot is not installed (the message names the ``io`` extra).
    """
    return require("uproot", "io", f"{path}: ROOT files")


# --------------------------------------------------------------------------- reading


class ShowerSource:
    """An open shower file of any format (use :func:`open_source`, as a context manager).

    Attributes:
        path: The file.
        format: ``hdf5``, ``root`` or ``npz``.
        energies: Incident energies ``(N, 1)`` in MeV, in the stored dtype (native order).
        shower_dtype: The stored dtype of the showers (native byte order).
        n_voxels: Voxels per shower.
        geometry: The geometry the voxel count matches.
        attrs: File-level provenance (attribute values as stored, see
            :func:`provenance_to_json`).
    """

    def __init__(
        self,
        path: Path,
        fmt: str,
        energies: npt.NDArray[Any],
        shower_shape: tuple[int, ...],
        shower_dtype: np.dtype[Any],
        attrs: dict[str, Any],
        geometry: str | Geometry | None,
    ) -> None:
        self.path, self.format, self.attrs = path, fmt, attrs
        e = np.asarray(energies)
        if e.ndim == 1:
            e = e[:, None]
        if e.ndim != 2 or e.shape[1] != 1:
            raise DataFormatError(
                f"{path}: incident energies must be (N,) or (N, 1), got {e.shape}"
            )
        if len(shower_shape) != 2:
            raise DataFormatError(
                f"{path}: showers must be (N, n_voxels), got shape {shower_shape}"
            )
        for what, dt in (("incident energies", e.dtype), ("showers", shower_dtype)):
            if dt.kind not in "fiu":
                raise DataFormatError(f"{path}: {what} must be numeric, got dtype {dt}")
        if e.shape[0] != shower_shape[0]:
            raise DataFormatError(
                f"{path}: row counts differ: {e.shape[0]} incident energies, "
                f"{shower_shape[0]} showers"
            )
        if e.shape[0] == 0:
            raise DataFormatError(f"{path}: empty file (0 showers)")
        self.energies = e.astype(e.dtype.newbyteorder("="), copy=False)
        self.shower_dtype: np.dtype[Any] = np.dtype(shower_dtype.newbyteorder("="))
        self.n_voxels = int(shower_shape[1])
        self.geometry = _geometry(path, self.n_voxels, geometry)

    @property
    def n_showers(self) -> int:
        """Number of showers N."""
        return int(self.energies.shape[0])

    def default_batch_size(self, target_bytes: int = 32 << 20) -> int:
        """Rows of about ``target_bytes``."""
        return max(1, target_bytes // max(1, self.n_voxels * int(self.shower_dtype.itemsize)))

    def iter_showers(self, batch_size: int | None = None) -> Iterator[npt.NDArray[Any]]:
        """Yield the showers in order, ``(b, n_voxels)`` batches in native byte order."""
        bs = batch_size or self.default_batch_size()
        if bs < 1:
            raise ConfigError(f"--batch-size: must be >= 1, got {bs}")
        for i in range(0, self.n_showers, bs):
            j = min(i + bs, self.n_showers)
            x = self._read(i, j)
            if x.shape != (j - i, self.n_voxels):
                raise DataFormatError(f"{self.path}: rows {i}-{j} have shape {x.shape}")
            yield x.astype(x.dtype.newbyteorder("="), copy=False)

    def _read(self, start: int, stop: int) -> npt.NDArray[Any]:  # pragma: no cover
        raise NotImplementedError

    def close(self) -> None:
        """Release the file."""

    def __enter__(self) -> ShowerSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _geometry(path: Path, n_vox: int, geometry: str | Geometry | None) -> Geometry:
    if geometry is not None:
        geo = get_geometry(geometry)
        if geo.n_voxels != n_vox:
            raise DataFormatError(
                f"{path}: showers have {n_vox} voxels, geometry {geo.name!r} expects {geo.n_voxels}"
            )
        return geo
    found = match_geometry(n_vox)
    if found is None:
        raise DataFormatError(
            f"{path}: showers have {n_vox} voxels, which matches no built-in geometry "
            "(368 1-photons, 533 1-pions, 6480 '2', 40500 '3', 504 calogan); pass --geometry"
        )
    return found


class _H5Source(ShowerSource):
    def __init__(self, path: Path, geometry: str | Geometry | None) -> None:
        self._f = open_showers(path, geometry)
        try:
            try:
                e = self._f.energies[()]
            except (OSError, RuntimeError) as exc:
                raise DataFormatError(f"{path}: cannot read '{ENERGY_KEY}' ({exc})") from exc
            ds = self._f.showers
            super().__init__(
                path, "hdf5", e, ds.shape, ds.dtype, raw_attrs(self._f.handle), geometry
            )
        except BaseException:
            self._f.close()
            raise

    def _read(self, start: int, stop: int) -> npt.NDArray[Any]:
        try:
            return np.asarray(self._f.showers[start:stop])
        except (OSError, RuntimeError) as exc:
            raise DataFormatError(
                f"{self.path}: cannot read rows {start}-{stop} (truncated or corrupt HDF5: {exc})"
            ) from exc

    def close(self) -> None:
        self._f.close()


def _trees(f: Any) -> list[str]:
    names = [k.split(";")[0] for k, v in f.classnames().items() if str(v).startswith("TTree")]
    return list(dict.fromkeys(names))


class _RootSource(ShowerSource):
    def __init__(
        self,
        path: Path,
        tree: str | None,
        energy_branch: str,
        shower_branch: str,
        geometry: str | Geometry | None,
    ) -> None:
        uproot = import_uproot(path)
        try:
            self._file = uproot.open(path, array_cache=None)  # no cache: one batch in memory
        except Exception as exc:
            raise DataFormatError(f"{path}: cannot open as a ROOT file ({exc})") from exc
        try:
            self._init(path, tree, energy_branch, shower_branch, geometry)
        except BaseException:
            self._file.close()
            raise

    def _init(
        self,
        path: Path,
        tree: str | None,
        energy_branch: str,
        shower_branch: str,
        geometry: str | Geometry | None,
    ) -> None:
        trees = _trees(self._file)
        if tree is None:
            if DEFAULT_TREE in trees or len(trees) != 1:
                tree = DEFAULT_TREE
            else:
                tree = trees[0]
        if tree not in trees:
            raise DataFormatError(
                f"{path}: no TTree {tree!r}; TTrees: {', '.join(trees) or 'none'} (use --tree)"
            )
        t = self._file[tree]
        branches = list(t.keys())
        shapes: dict[str, tuple[np.dtype[Any], tuple[int, ...]]] = {}
        for b, option in ((energy_branch, "--energy-branch"), (shower_branch, "--shower-branch")):
            if b not in branches:
                raise DataFormatError(
                    f"{path}:{tree}: no branch {b!r} ({option}); branches: "
                    f"{', '.join(branches[:20]) or 'none'}"
                )
            try:
                dt = np.dtype(t[b].interpretation.to_dtype)
            except Exception:
                raise DataFormatError(
                    f"{path}:{tree}: branch {b!r} is not a fixed-size numeric branch "
                    f"({t[b].interpretation}); jagged branches cannot hold CaloChallenge showers"
                ) from None
            shapes[b] = (dt.base, dt.shape)
        e_shape = shapes[energy_branch][1]
        if e_shape not in ((), (1,)):
            raise DataFormatError(
                f"{path}:{tree}: branch {energy_branch!r} must hold one incident energy per "
                f"entry, got shape {e_shape}"
            )
        x_dt, x_shape = shapes[shower_branch]
        if len(x_shape) != 1:
            raise DataFormatError(
                f"{path}:{tree}: branch {shower_branch!r} must be a 1-D array of n_voxels per "
                f"entry, got shape {x_shape or '(scalar)'}"
            )
        n = int(t.num_entries)
        try:
            e = t[energy_branch].array(library="np")
        except Exception as exc:
            raise DataFormatError(f"{path}:{tree}: branch {energy_branch!r}: {exc}") from exc
        attrs: dict[str, Any] = {}
        key = f"{tree}_provenance"
        if key in self._file:
            attrs = provenance_from_json(str(self._file[key]), f"{path}:{key}")
        self._branch = t[shower_branch]
        self.tree = tree
        super().__init__(
            path, "root", np.reshape(e, (n, 1)), (n, x_shape[0]), x_dt, attrs, geometry
        )

    def _read(self, start: int, stop: int) -> npt.NDArray[Any]:
        try:
            return np.asarray(self._branch.array(entry_start=start, entry_stop=stop, library="np"))
        except Exception as exc:
            raise DataFormatError(
                f"{self.path}:{self.tree}: cannot read entries {start}-{stop} ({exc})"
            ) from exc

    def close(self) -> None:
        self._file.close()


def _npy_header(fp: IO[bytes], where: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        raise DataFormatError(f"{where}: unsupported .npy format version {version}")
    return tuple(shape), bool(fortran), np.dtype(dtype)


class _NpzSource(ShowerSource):
    def __init__(self, path: Path, geometry: str | Geometry | None) -> None:
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise DataFormatError(f"{path}: not a NumPy .npz file ({exc})") from exc
        self._fp: IO[bytes] | None = None
        try:
            self._init(path, geometry)
        except BaseException:
            self.close()
            raise

    def _array(self, key: str) -> npt.NDArray[Any]:
        with self._zip.open(f"{key}.npy") as fp:
            return np.lib.format.read_array(fp, allow_pickle=False)

    def _init(self, path: Path, geometry: str | Geometry | None) -> None:
        keys = [n[:-4] for n in self._zip.namelist() if n.endswith(".npy")]
        for key in (ENERGY_KEY, SHOWER_KEY):
            if key not in keys:
                raise DataFormatError(
                    f"{path}: missing array {key!r}; a CaloChallenge .npz holds "
                    f"'{ENERGY_KEY}' (N, 1) and '{SHOWER_KEY}' (N, n_voxels), found {keys}"
                )
        extra = [k for k in keys if k not in (ENERGY_KEY, SHOWER_KEY, NPZ_PROVENANCE_KEY)]
        if extra:
            raise DataFormatError(
                f"{path}: unknown array(s) {extra}; expected '{ENERGY_KEY}', '{SHOWER_KEY}' "
                f"and optionally '{NPZ_PROVENANCE_KEY}'"
            )
        try:
            e = self._array(ENERGY_KEY)
            attrs: dict[str, Any] = {}
            if NPZ_PROVENANCE_KEY in keys:
                text = self._array(NPZ_PROVENANCE_KEY)
                attrs = provenance_from_json(str(text[()]), f"{path}:{NPZ_PROVENANCE_KEY}")
            self._fp = self._zip.open(f"{SHOWER_KEY}.npy")
            shape, fortran, dtype = _npy_header(self._fp, f"{path}:{SHOWER_KEY}")
        except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
            raise DataFormatError(f"{path}: cannot read as .npz ({exc})") from exc
        self._whole = None
        if fortran:  # column-major: rows are not contiguous, read it at once
            self._fp.close()
            self._fp = None
            self._whole = self._array(SHOWER_KEY)
        super().__init__(path, "npz", e, shape, dtype, attrs, geometry)
        self._stored = dtype
        self._next = 0

    def _read(self, start: int, stop: int) -> npt.NDArray[Any]:
        if self._whole is not None:
            return np.asarray(self._whole[start:stop])
        if self._fp is None or start != self._next:
            raise RuntimeError("the showers of an .npz source are read once, in order")
        n_bytes = (stop - start) * self.n_voxels * self._stored.itemsize
        try:
            data = self._fp.read(n_bytes)
        except (OSError, zipfile.BadZipFile, EOFError) as exc:
            raise DataFormatError(f"{self.path}: cannot read rows {start}-{stop} ({exc})") from exc
        if len(data) != n_bytes:
            raise DataFormatError(f"{self.path}: '{SHOWER_KEY}' is truncated at row {start}")
        self._next = stop
        return np.frombuffer(data, dtype=self._stored).reshape(stop - start, self.n_voxels)

    def close(self) -> None:
        if self._fp is not None:
            self._fp.close()
        self._zip.close()


def open_source(
    path: str | Path,
    *,
    tree: str | None = None,
    energy_branch: str = ENERGY_BRANCH,
    shower_branch: str = SHOWER_BRANCH,
    geometry: str | Geometry | None = None,
) -> ShowerSource:
    """Open a shower file of any format (layout and voxel count checked, values not).

    Args:
        path: ``.h5``/``.hdf5``, ``.root`` or ``.npz`` file.
        tree: ROOT: the TTree (default ``showers``, or the file's only TTree).
        energy_branch: ROOT: the incident-energy branch (MeV).
        shower_branch: ROOT: the voxel-array branch (MeV).
        geometry: Geometry the voxel count must match (default: any built-in one).

    Raises:
        ConfigError: Unknown suffix.
        MissingDependencyError: A ROOT file without uproot installed.
        DataFormatError: Missing file, wrong layout, voxel count of no/the wrong geometry.
    """
    p = Path(path)
    fmt = shower_format(p)
    if not p.is_file():
        raise DataFormatError(f"{p}: no such file" if not p.exists() else f"{p}: not a file")
    if fmt == "hdf5":
        return _H5Source(p, geometry)
    if fmt == "root":
        return _RootSource(p, tree, energy_branch, shower_branch, geometry)
    return _NpzSource(p, geometry)
