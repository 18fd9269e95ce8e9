"""CaloChallenge HDF5 shower files: read, stream, validate, write atomically.

A CaloChallenge file holds exactly two HDF5 datasets at its root:

* ``incident_energies`` - shape ``(N, 1)``, energy of the incoming particle in MeV;
* ``showers`` - shape ``(N, n_voxels)``, voxel energies in MeV, flattened as in
  :mod:`physgen.calo.geometry`.

Files written by physgen add provenance as root *attributes* only (``geometry``,
``seed``, ``generator``, ``physgen_version``, ``config`` as JSON...), so code that
knows only the two keys reads them unchanged.

Writing always goes to a temporary file in the target folder, renamed onto the
target only when the writer closes cleanly: an interrupted or killed run never
leaves a truncated file at the target path.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from physgen.calo.io import write_showers, read_showers
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "s.h5"
    >>> e = np.array([[1000.0], [2000.0]]); x = np.ones((2, 368), np.float32)
    >>> _ = write_showers(path, e, x, attrs={"geometry": "1-photons"})
    >>> read_showers(path)[1].shape
    (2, 368)
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from physgen import outputs
from physgen._version import __version__
from physgen.calo.geometry import Geometry, get_geometry, match_geometry
from physgen.errors import ConfigError, DataFormatError

__all__ = [
    "ENERGY_KEY",
    "SHOWER_KEY",
    "ShowerFile",
    "ShowerWriter",
    "check_values",
    "file_summary",
    "iter_batches",
    "open_showers",
    "raw_attrs",
    "read_showers",
    "validate_file",
    "write_showers",
]

log = logging.getLogger(__name__)

ENERGY_KEY = "incident_energies"
SHOWER_KEY = "showers"
_COMPRESSIONS = ("gzip", "lzf", "none")
#: Target bytes of one HDF5 chunk and of one streamed batch.
_CHUNK_BYTES = 1 << 20
_BATCH_BYTES = 64 << 20
#: HDF5 files abandoned after a full disk: kept referenced so that their handles are
#: never flushed again (the CLI then leaves with ``os._exit``).
_ABANDONED: list[h5py.File] = []


def _compression_args(compression: str | None) -> dict[str, Any]:
    comp = "none" if compression is None else compression.lower()
    if comp not in _COMPRESSIONS:
        raise ConfigError(
            f"--compression: expected one of {', '.join(_COMPRESSIONS)}, got {compression!r}"
        )
    if comp == "gzip":
        return {"compression": "gzip", "compression_opts": 4, "shuffle": True}
    if comp == "lzf":
        return {"compression": "lzf", "shuffle": True}
    return {}


def _attr_value(value: Any) -> Any:
    """HDF5-storable form of a provenance value (dicts/lists as JSON strings).

    Values read raw from another file (:func:`raw_attrs`: strings, bytes, NumPy scalars
    and numeric arrays) pass unchanged, so copying attributes keeps their HDF5 types.
    """
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    if value is None:
        return "null"
    if isinstance(value, (str, bytes, int, float, bool, np.integer, np.floating, np.bool_)):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufS":
        return value
    return str(value)


def raw_attrs(handle: h5py.File) -> dict[str, Any]:
    """Root attributes exactly as stored (no JSON decoding), for copying them to another file.

    Returns:
        Name -> value as h5py reads it: ``str``, ``bytes``, NumPy scalar or array.
    """
    return {str(k): v for k, v in handle.attrs.items()}


class ShowerWriter:
    """Append showers to a new CaloChallenge file, atomically.

    Args:
        path: Target file. Its folder must exist. An existing file is replaced only
            when the writer closes cleanly.
        n_voxels: Number of voxels per shower.
        compression: ``"gzip"`` (default), ``"lzf"`` or ``None``/``"none"``.
        attrs: Provenance stored as root attributes (dicts/lists become JSON).
        dtype: Storage dtype of ``showers`` (default float32); ``None`` keeps the dtype
            of the first appended batch.
        energy_dtype: Storage dtype of ``incident_energies`` (default float64, exact
            for any float32/float64 input).

    Use as a context manager; on an exception (including ``KeyboardInterrupt``)
    the temporary file is deleted and nothing appears at ``path``.

    Raises:
        DataFormatError: Missing folder, bad compression, or bad batches.
    """

    def __init__(
        self,
        path: str | Path,
        n_voxels: int,
        *,
        compression: str | None = "gzip",
        attrs: Mapping[str, Any] | None = None,
        dtype: npt.DTypeLike | None = np.float32,
        energy_dtype: npt.DTypeLike = np.float64,
    ) -> None:
        self.path = Path(path)
        outputs.check_output(self.path, "output")
        if n_voxels < 1:
            raise ConfigError(f"{self.path}: n_voxels must be >= 1, got {n_voxels}")
        self.n_voxels = int(n_voxels)
        self._comp = _compression_args(compression)
        self._attrs = dict(attrs or {})
        self._dtype = None if dtype is None else np.dtype(dtype)
        self._edtype = np.dtype(energy_dtype)
        self._atomic: contextlib.AbstractContextManager[Path] | None = None
        self._tmp: Path | None = None
        self._file: h5py.File | None = None
        self._n = 0
        self._raw_bytes = 0

    @property
    def n_written(self) -> int:
        """Number of showers appended so far."""
        return self._n

    def __enter__(self) -> ShowerWriter:
        outputs.quiet_disk_full_errors()
        self._atomic = outputs.atomic_path(self.path)
        self._tmp = self._atomic.__enter__()
        try:
            self._file = h5py.File(self._tmp, "w")
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        return self

    def _check_space(self, n_bytes: int) -> None:
        """Stop before HDF5 meets a full disk (it cannot recover from one cleanly).

        The next batch needs at most its raw size (less, by the compression ratio
        seen so far, when compressed) plus 1 MiB for the HDF5 metadata.
        """
        assert self._tmp is not None
        ratio = 1.0
        if self._comp and self._raw_bytes > (8 << 20):
            try:
                ratio = min(1.0, 2.0 * self._tmp.stat().st_size / self._raw_bytes)
            except OSError:
                ratio = 1.0
        outputs.check_free_space(self.path, n_bytes * ratio + (1 << 20))

    def _create(self, dtype: np.dtype[Any]) -> None:
        assert self._file is not None
        rows = max(1, min(4096, _CHUNK_BYTES // (self.n_voxels * dtype.itemsize)))
        self._file.create_dataset(
            ENERGY_KEY,
            shape=(0, 1),
            maxshape=(None, 1),
            dtype=self._edtype,
            chunks=(max(rows, 1024), 1),
            **self._comp,
        )
        self._file.create_dataset(
            SHOWER_KEY,
            shape=(0, self.n_voxels),
            maxshape=(None, self.n_voxels),
            dtype=dtype,
            chunks=(rows, self.n_voxels),
            **self._comp,
        )

    def append(self, incident_energies: npt.ArrayLike, showers: npt.ArrayLike) -> None:
        """Append a batch.

        Args:
            incident_energies: ``(N,)`` or ``(N, 1)`` in MeV.
            showers: ``(N, n_voxels)`` in MeV.

        Raises:
            DataFormatError: On inconsistent shapes.
        """
        if self._file is None:
            raise RuntimeError("ShowerWriter.append() outside a 'with' block")
        e = np.asarray(incident_energies)
        x = np.asarray(showers)
        if e.ndim == 1:
            e = e[:, None]
        if e.ndim != 2 or e.shape[1] != 1:
            raise DataFormatError(
                f"{self.path}: incident_energies must be (N,) or (N, 1), got {e.shape}"
            )
        if x.ndim != 2 or x.shape[1] != self.n_voxels:
            raise DataFormatError(
                f"{self.path}: showers must be (N, {self.n_voxels}), got {x.shape}"
            )
        if x.shape[0] != e.shape[0]:
            raise DataFormatError(
                f"{self.path}: {e.shape[0]} incident energies but {x.shape[0]} showers in a batch"
            )
        if SHOWER_KEY not in self._file:
            self._create(self._dtype if self._dtype is not None else x.dtype)
        outputs.raise_if_interrupted()
        n = x.shape[0]
        ds_e = self._file[ENERGY_KEY]
        ds_x = self._file[SHOWER_KEY]
        n_bytes = n * (ds_x.dtype.itemsize * self.n_voxels + ds_e.dtype.itemsize)
        self._check_space(n_bytes)
        try:
            ds_e.resize(self._n + n, axis=0)
            ds_x.resize(self._n + n, axis=0)
            ds_e[self._n : self._n + n] = e
            ds_x[self._n : self._n + n] = x
        except (OSError, RuntimeError) as exc:
            if outputs.is_disk_full(exc):
                self._abandon()
                raise outputs.DiskFullError(self.path) from exc
            raise
        self._n += n
        self._raw_bytes += n_bytes

    def _abandon(self) -> None:
        """HDF5 hit a full disk: never flush this file again, just drop the temporary."""
        f, self._file = self._file, None
        if f is not None:
            _ABANDONED.append(f)  # closing would retry the failed writes (and may crash)
            outputs.request_hard_exit()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        f = self._file
        atomic, self._atomic = self._atomic, None
        assert atomic is not None
        try:
            try:
                if exc_type is None and f is not None:
                    if SHOWER_KEY not in f:
                        self._create(self._dtype or np.dtype(np.float32))
                    for key, value in self._attrs.items():
                        f.attrs[key] = _attr_value(value)
                    if "physgen_version" not in f.attrs:
                        f.attrs["physgen_version"] = __version__
                    f.attrs["n_showers"] = self._n
                    outputs.check_free_space(self.path, 1 << 20)
            finally:
                self._file = None
                if f is not None:
                    f.close()
        except BaseException as err:
            if isinstance(err, (OSError, RuntimeError)) and outputs.is_disk_full(err):
                outputs.request_hard_exit()
            if atomic.__exit__(type(err), err, err.__traceback__):
                return
            raise
        atomic.__exit__(exc_type, exc, tb)


def write_showers(
    path: str | Path,
    incident_energies: npt.ArrayLike,
    showers: npt.ArrayLike,
    *,
    compression: str | None = "gzip",
    attrs: Mapping[str, Any] | None = None,
    batch_size: int | None = None,
) -> Path:
    """Write a whole file at once, keeping the input dtypes (atomic, see :class:`ShowerWriter`).

    Args:
        path: Target file.
        incident_energies: ``(N,)`` or ``(N, 1)``, MeV.
        showers: ``(N, n_voxels)``, MeV.
        compression: ``"gzip"``, ``"lzf"`` or ``None``.
        attrs: Provenance attributes.
        batch_size: Rows per append (default: about 64 MB per batch).

    Returns:
        The path written.
    """
    e = np.asarray(incident_energies)
    x = np.asarray(showers)
    if x.ndim != 2:
        raise DataFormatError(f"{path}: showers must be 2-D (N, n_voxels), got shape {x.shape}")
    step = batch_size or max(1, _BATCH_BYTES // max(1, x.shape[1] * x.dtype.itemsize))
    with ShowerWriter(
        path, x.shape[1], compression=compression, attrs=attrs, dtype=None, energy_dtype=e.dtype
    ) as w:
        for i in range(0, x.shape[0], step):
            w.append(e[i : i + step], x[i : i + step])
    return Path(path)


# ------------------------------------------------------------------- reading


@dataclass
class ShowerFile:
    """An open CaloChallenge file (use :func:`open_showers`; close it, or use ``with``).

    Attributes:
        path: The file.
        n_showers: Number of showers N.
        n_voxels: Voxels per shower.
        geometry: The built-in geometry with that many voxels, or None.
        attrs: Root attributes (provenance), JSON strings decoded where possible.
    """

    path: Path
    handle: h5py.File
    n_showers: int
    n_voxels: int
    geometry: Geometry | None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def energies(self) -> h5py.Dataset:
        """The ``incident_energies`` dataset (lazy, MeV)."""
        return self.handle[ENERGY_KEY]

    @property
    def showers(self) -> h5py.Dataset:
        """The ``showers`` dataset (lazy, MeV)."""
        return self.handle[SHOWER_KEY]

    def default_batch_size(self) -> int:
        """Rows of about 64 MB."""
        itemsize = int(self.showers.dtype.itemsize)
        return max(1, _BATCH_BYTES // max(1, self.n_voxels * itemsize))

    def iter_batches(
        self, batch_size: int | None = None, start: int = 0, stop: int | None = None
    ) -> Iterator[tuple[npt.NDArray[Any], npt.NDArray[Any]]]:
        """Yield ``(incident_energies (b, 1), showers (b, n_voxels))`` without loading the file."""
        bs = batch_size or self.default_batch_size()
        if bs < 1:
            raise ConfigError(f"--batch-size: must be >= 1, got {bs}")
        end = self.n_showers if stop is None else min(stop, self.n_showers)
        for i in range(start, end, bs):
            j = min(i + bs, end)
            try:
                yield self.energies[i:j], self.showers[i:j]
            except (OSError, RuntimeError) as exc:
                raise DataFormatError(
                    f"{self.path}: cannot read rows {i}-{j} (truncated or corrupt HDF5: {exc})"
                ) from exc

    def close(self) -> None:
        """Close the HDF5 handle."""
        self.handle.close()

    def __enter__(self) -> ShowerFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _decode_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def open_showers(path: str | Path, geometry: str | Geometry | None = None) -> ShowerFile:
    """Open a file and check its layout (keys, shapes, row counts, voxel count).

    Values are not scanned: use :func:`validate_file` for NaN/inf/negative checks.

    Args:
        path: The file.
        geometry: If given, the voxel count must match this geometry.

    Raises:
        DataFormatError: Not HDF5, truncated, missing/extra keys, bad shapes,
            differing row counts, empty, voxel count matching no/the wrong geometry.
    """
    p = Path(path)
    try:
        p.stat()
    except FileNotFoundError:
        raise DataFormatError(f"{p}: no such file") from None
    except (OSError, RuntimeError) as exc:  # too long a name, a symlink loop, permissions
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DataFormatError(f"{str(p)[:120]}: cannot access ({why})") from None
    if p.is_dir():
        raise DataFormatError(f"{p}: is a folder, expected a CaloChallenge HDF5 file")
    if not p.is_file():
        raise DataFormatError(f"{p}: not a regular file")
    if not h5py.is_hdf5(p):
        raise DataFormatError(f"{p}: not an HDF5 file (expected a CaloChallenge .h5/.hdf5 file)")
    try:
        handle = h5py.File(p, "r")
    except (OSError, RuntimeError) as exc:
        raise DataFormatError(f"{p}: cannot open HDF5 file (truncated or corrupt: {exc})") from exc
    try:
        return _inspect(p, handle, geometry)
    except BaseException:
        handle.close()
        raise


def _inspect(p: Path, handle: h5py.File, geometry: str | Geometry | None) -> ShowerFile:
    try:
        keys = list(handle.keys())
    except (OSError, RuntimeError) as exc:
        raise DataFormatError(f"{p}: cannot list HDF5 keys (truncated or corrupt: {exc})") from exc
    for key in (ENERGY_KEY, SHOWER_KEY):
        if key not in keys:
            raise DataFormatError(
                f"{p}: missing key {key!r}; a CaloChallenge file has "
                f"'{ENERGY_KEY}' (N, 1) and '{SHOWER_KEY}' (N, n_voxels), found {keys}"
            )
    extra = [k for k in keys if k not in (ENERGY_KEY, SHOWER_KEY)]
    if extra:
        raise DataFormatError(
            f"{p}: unknown key(s) {extra}; expected only '{ENERGY_KEY}' and '{SHOWER_KEY}'"
        )
    e, x = handle[ENERGY_KEY], handle[SHOWER_KEY]
    if not isinstance(e, h5py.Dataset) or not isinstance(x, h5py.Dataset):
        raise DataFormatError(
            f"{p}: '{ENERGY_KEY}' and '{SHOWER_KEY}' must be datasets, not groups"
        )
    if e.ndim != 2 or e.shape[1] != 1:
        raise DataFormatError(f"{p}: '{ENERGY_KEY}' must have shape (N, 1), got {e.shape}")
    if x.ndim != 2:
        raise DataFormatError(f"{p}: '{SHOWER_KEY}' must have shape (N, n_voxels), got {x.shape}")
    for key, ds in ((ENERGY_KEY, e), (SHOWER_KEY, x)):
        if ds.dtype.kind not in "fiu":
            raise DataFormatError(f"{p}: '{key}' must be numeric, got dtype {ds.dtype}")
    if e.shape[0] != x.shape[0]:
        raise DataFormatError(
            f"{p}: row counts differ: '{ENERGY_KEY}' has {e.shape[0]}, '{SHOWER_KEY}' has {x.shape[0]}"
        )
    if x.shape[0] == 0:
        raise DataFormatError(f"{p}: empty file (0 showers)")
    n_vox = int(x.shape[1])
    if geometry is not None:
        geo: Geometry | None = get_geometry(geometry)
        assert geo is not None
        if geo.n_voxels != n_vox:
            raise DataFormatError(
                f"{p}: '{SHOWER_KEY}' has {n_vox} voxels, geometry {geo.name!r} expects {geo.n_voxels}"
            )
    else:
        geo = match_geometry(n_vox)
        if geo is None:
            raise DataFormatError(
                f"{p}: '{SHOWER_KEY}' has {n_vox} voxels, which matches no built-in geometry "
                "(368 1-photons, 533 1-pions, 6480 '2', 40500 '3', 504 calogan); pass --geometry"
            )
    attrs = {k: _decode_attr(v) for k, v in handle.attrs.items()}
    return ShowerFile(p, handle, int(x.shape[0]), n_vox, geo, attrs)


def iter_batches(
    path: str | Path, batch_size: int | None = None, geometry: str | Geometry | None = None
) -> Iterator[tuple[npt.NDArray[Any], npt.NDArray[Any]]]:
    """Stream ``(incident_energies (b, 1), showers (b, n_voxels))`` from a file.

    Memory stays bounded by one batch (default about 64 MB), whatever the file size.
    """
    with open_showers(path, geometry) as f:
        yield from f.iter_batches(batch_size)


def read_showers(
    path: str | Path, geometry: str | Geometry | None = None, *, check_values: bool = False
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Read a whole file into memory.

    Args:
        path: The file.
        geometry: Expected geometry (checked on the voxel count).
        check_values: Also run the value checks of :func:`validate_file`.

    Returns:
        ``(incident_energies (N, 1), showers (N, n_voxels))`` in the stored dtypes, MeV.
    """
    if check_values:
        validate_file(path, geometry)
    with open_showers(path, geometry) as f:
        try:
            return f.energies[()], f.showers[()]
        except (OSError, RuntimeError) as exc:
            raise DataFormatError(
                f"{path}: cannot read data (truncated or corrupt HDF5: {exc})"
            ) from exc


def check_values(
    p: Path, e: npt.NDArray[Any], x: npt.NDArray[Any], offset: int, clip_negative: bool
) -> int:
    """Check one batch of file ``p`` starting at row ``offset``.

    Returns:
        The number of negative voxels (allowed only with ``clip_negative``).

    Raises:
        DataFormatError: NaN/inf or non-positive incident energies, NaN/inf voxels, or
            negative voxels without ``clip_negative``; the message names file, key, row.
    """
    if not np.all(np.isfinite(e)):
        row = offset + int(np.flatnonzero(~np.isfinite(e).ravel())[0])
        raise DataFormatError(f"{p}: '{ENERGY_KEY}' holds NaN or inf (row {row})")
    if np.any(e <= 0):
        row = offset + int(np.flatnonzero(e.ravel() <= 0)[0])
        raise DataFormatError(
            f"{p}: '{ENERGY_KEY}' must be > 0 MeV, row {row} has {float(e.ravel()[row - offset])}"
        )
    finite = np.isfinite(x)
    if not finite.all():
        row = offset + int(np.flatnonzero(~finite.all(axis=1))[0])
        raise DataFormatError(f"{p}: '{SHOWER_KEY}' holds NaN or inf (row {row})")
    neg = x < 0
    n_neg = int(neg.sum())
    if n_neg and not clip_negative:
        row = offset + int(np.flatnonzero(neg.any(axis=1))[0])
        raise DataFormatError(
            f"{p}: '{SHOWER_KEY}' holds {n_neg} negative voxel energies (first in row {row}); "
            "use --clip-negative to set them to 0"
        )
    return n_neg


def validate_file(
    path: str | Path,
    geometry: str | Geometry | None = None,
    *,
    clip_negative: bool = False,
    batch_size: int | None = None,
) -> ShowerFile:
    """Check layout and every value of a file, streaming.

    Args:
        path: The file.
        geometry: Expected geometry, or None to accept any built-in one.
        clip_negative: Accept negative voxel energies (a warning is logged) instead
            of failing; readers then clip them with ``np.clip(x, 0, None)``.
        batch_size: Rows per streamed batch.

    Returns:
        The (closed) :class:`ShowerFile` description.

    Raises:
        DataFormatError: On the first problem found, naming file, key and row.
    """
    with open_showers(path, geometry) as f:
        n_neg = 0
        offset = 0
        for e, x in f.iter_batches(batch_size):
            n_neg += check_values(f.path, e, x, offset, clip_negative)
            offset += e.shape[0]
    if n_neg:
        log.warning("%s: %d negative voxel energies (clipped to 0 when read)", path, n_neg)
    return f


def file_summary(path: str | Path, geometry: str | Geometry | None = None) -> dict[str, Any]:
    """Summarise a file for ``physgen info`` (streaming; values checked, negatives counted).

    Returns:
        A JSON-serialisable dict: path, size, n_showers, n_voxels, geometry, dtype,
        compression, chunks, incident-energy range and distribution, E_tot/E_inc
        summary, sparsity, negative-voxel count, provenance attributes.
    """
    with open_showers(path, geometry) as f:
        geo = f.geometry
        ds = f.showers
        energies = np.asarray(f.energies[()], dtype=np.float64).ravel()
        ratios = np.empty(f.n_showers)
        zero = 0
        below = 0
        neg = 0
        thr = geo.threshold_mev if geo is not None else 0.0
        offset = 0
        for e, x in f.iter_batches():
            check_values(f.path, e, x, offset, clip_negative=True)
            xs = np.asarray(x, dtype=np.float64)
            ratios[offset : offset + len(e)] = xs.sum(axis=1) / np.asarray(e, np.float64).ravel()
            zero += int(np.count_nonzero(xs == 0))
            below += int(np.count_nonzero(xs < thr)) if thr > 0 else int(np.count_nonzero(xs <= 0))
            neg += int(np.count_nonzero(xs < 0))
            offset += len(e)
        n_cells = f.n_showers * f.n_voxels
        uniq, counts = np.unique(energies, return_counts=True)
        if len(uniq) <= 64:
            dist: dict[str, Any] = {
                "kind": "discrete",
                "values_mev": [float(u) for u in uniq],
                "counts": [int(c) for c in counts],
            }
        else:
            logs = np.log10(energies)
            # A log-uniform sample has a flat histogram in log E.
            hist, _ = np.histogram(logs, bins=10)
            flat = float(hist.std() / max(hist.mean(), 1e-12))
            dist = {
                "kind": "continuous",
                "log10_quantiles": {
                    q: float(np.quantile(logs, float(q)))
                    for q in ("0.05", "0.25", "0.5", "0.75", "0.95")
                },
                "log_uniform_like": bool(flat < 0.2),
            }
        return {
            "path": str(f.path),
            "file_size_bytes": f.path.stat().st_size,
            "n_showers": f.n_showers,
            "n_voxels": f.n_voxels,
            "geometry": geo.name if geo is not None else None,
            "dtype": {"incident_energies": str(f.energies.dtype), "showers": str(ds.dtype)},
            "compression": ds.compression or "none",
            "chunks": list(ds.chunks) if ds.chunks else None,
            "incident_energy_mev": {
                "min": float(energies.min()),
                "max": float(energies.max()),
                "distribution": dist,
            },
            "etot_over_einc": {
                "mean": float(np.mean(ratios)),
                "std": float(np.std(ratios)),
                "min": float(np.min(ratios)),
                "median": float(np.median(ratios)),
                "max": float(np.max(ratios)),
            },
            "sparsity": {
                "zero_fraction": zero / n_cells,
                "below_threshold_fraction": below / n_cells,
                "threshold_mev": thr,
            },
            "negative_voxels": neg,
            "provenance": f.attrs,
        }
