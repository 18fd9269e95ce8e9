"""Writing CaloChallenge HDF5 files: :class:`ShowerWriter` and :func:`write_showers`.

Writing always goes to a temporary file in the target folder, renamed onto the target
only when the writer closes cleanly: an interrupted or killed run never leaves a
truncated file at the target path. Provenance goes into root attributes
(:func:`~physgen.calo.h5layout.encode_attr`), with ``physgen_version`` and ``n_showers``
added. Before each batch the free disk space is checked, as HDF5 cannot recover from a
full disk cleanly.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from physgen import outputs
from physgen._version import __version__
from physgen.calo.h5layout import (
    BATCH_BYTES,
    ENERGY_KEY,
    SHOWER_KEY,
    WEIGHT_KEY,
    check_weights,
    encode_attr,
)
from physgen.errors import ConfigError, DataFormatError

__all__ = ["ShowerWriter", "write_showers"]

_COMPRESSIONS = ("gzip", "lzf", "none")
#: Target bytes of one HDF5 chunk.
_CHUNK_BYTES = 1 << 20
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
        self._weights: npt.NDArray[np.float64] | None = None

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

    def add_attrs(self, attrs: Mapping[str, Any]) -> None:
        """More provenance attributes, written when the writer closes."""
        self._attrs.update(attrs)

    def set_weights(self, weights: npt.ArrayLike) -> None:
        """Per-shower weights ``(N,)`` for all showers appended (written as the optional
        ``weights`` dataset when the writer closes; must match the final row count)."""
        self._weights = check_weights(weights, f"{self.path}: weights")

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
                    if self._weights is not None:
                        if self._weights.size != self._n:
                            raise DataFormatError(
                                f"{self.path}: {self._weights.size} weights for {self._n} showers"
                            )
                        f.create_dataset(WEIGHT_KEY, data=self._weights, **self._comp)
                    for key, value in self._attrs.items():
                        f.attrs[key] = encode_attr(value)
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
    step = batch_size or max(1, BATCH_BYTES // max(1, x.shape[1] * x.dtype.itemsize))
    with ShowerWriter(
        path, x.shape[1], compression=compression, attrs=attrs, dtype=None, energy_dtype=e.dtype
    ) as w:
        for i in range(0, x.shape[0], step):
            w.append(e[i : i + step], x[i : i + step])
    return Path(path)
