"""Where the classifier's inputs live between epochs: memory, a disk cache, or nowhere.

The classifier test reads every training row once per epoch, in a new random
order each time. Building the inputs (HDF5 read, threshold, normalisation) costs
far more than training on them when it is redone every epoch, so each sample's
inputs are built once, in file order, and kept in the cheapest store that fits:

1. **memory**: a float32 matrix, when it fits ``max_bytes``;
2. **disk**: a float32 matrix in an anonymous temporary file (deleted by the
   operating system when closed, also after a crash), when it fits
   ``max_disk_bytes`` and the folder has room. Random rows are read with
   positioned reads into a preallocated batch, so the process holds one batch,
   not the matrix (the operating system's page cache keeps the file's pages
   while memory is free and drops them, not the process, when it is not);
3. **stream**: nothing stored; every batch is rebuilt from the source rows.

All three return the same float32 bytes for the same rows, so the choice never
changes a result.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from physgen.calo.geometry import Geometry
from physgen.calo.io import open_showers
from physgen.errors import DataFormatError

__all__ = ["InputPool", "SampleInputs", "build_rows"]

logger = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]
Sample = str | Path | tuple[npt.ArrayLike, npt.ArrayLike]
Builder = Callable[[npt.NDArray[Any], npt.NDArray[Any]], F32]

#: Rows read from the source at once (about this many bytes of float32 voxels).
READ_BYTES = 64 * 2**20
#: Voxels per input-building chunk: the float64 temporaries stay around 12 MB, which
#: keeps them in reused heap memory (large fresh allocations page-fault on every chunk
#: and made building 2-15x slower).
BUILD_ELEMENTS = 1_500_000
#: Free space left on the disk after the cache is written.
DISK_MARGIN_BYTES = 2 * 2**30


def build_rows(n_voxels: int) -> int:
    """Rows per input-building chunk for showers of ``n_voxels``."""
    return max(1, min(4096, BUILD_ELEMENTS // max(1, n_voxels)))


class SampleInputs:
    """Classifier inputs of one sample (arrays or a file) in one of the three stores.

    Args:
        sample: A CaloChallenge file or ``(incident_energies, showers)``.
        geometry: The binning the showers must match.
        label: Name used in error messages (``"reference"``, ``"generated"``, ...).
        dim: Input columns per shower.
        build: ``(E (b, 1), X (b, n_voxels)) -> (b, dim)`` float32 inputs.
        max_bytes: Largest matrix kept in memory.
        max_disk_bytes: Largest matrix written to the disk cache (0: never).
        cache_dir: Folder of the disk cache (None: the system's temporary folder).

    Raises:
        DataFormatError: Malformed arrays, bad energies or NaN/inf inputs.
    """

    def __init__(
        self,
        sample: Sample,
        geometry: Geometry,
        label: str,
        dim: int,
        build: Builder,
        max_bytes: float,
        max_disk_bytes: float = 0.0,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.geometry, self.label, self.dim, self._build_fn = geometry, label, dim, build
        self._file = None
        if isinstance(sample, (str, Path)):
            self._file = open_showers(sample, geometry)
            self._e: Any = self._file.energies
            self._x: Any = self._file.showers
            self.n = self._file.n_showers
        else:
            try:
                e, x = sample
            except (TypeError, ValueError) as exc:
                raise DataFormatError(
                    f"{label} sample: expected a file path or an (incident_energies, showers) pair"
                ) from exc
            self._e = np.asarray(e, dtype=np.float64).reshape(-1, 1)
            self._x = x if hasattr(x, "shape") and hasattr(x, "__getitem__") else np.asarray(x)
            if len(self._x.shape) != 2 or self._x.shape[1] != geometry.n_voxels:
                raise DataFormatError(
                    f"{label} sample: showers must have shape (N, {geometry.n_voxels}) for "
                    f"geometry {geometry.name!r}, got {tuple(self._x.shape)}"
                )
            if self._e.shape[0] != self._x.shape[0]:
                raise DataFormatError(
                    f"{label} sample: {self._e.shape[0]} incident energies but "
                    f"{self._x.shape[0]} showers"
                )
            self.n = int(self._x.shape[0])
        self._memory: F32 | None = None
        self._disk: IO[bytes] | None = None
        nbytes = self.n * self.dim * 4
        try:
            if nbytes <= max_bytes:
                memory = np.empty((self.n, self.dim), dtype=np.float32)
                for i, block in self._blocks():
                    memory[i : i + len(block)] = block
                self._memory = memory
                self.close_source()
            elif nbytes <= max_disk_bytes and _has_room(cache_dir, nbytes, label):
                self._disk = tempfile.TemporaryFile(  # noqa: SIM115 - closed by close()
                    prefix=".physgen-classifier-", suffix=".f32", dir=cache_dir
                )
                for _, block in self._blocks():
                    self._disk.write(np.ascontiguousarray(block).data)
                self._disk.flush()
                self.close_source()
        except BaseException:
            self.close()
            raise

    @property
    def store(self) -> str:
        """``"memory"``, ``"disk"`` or ``"stream"``."""
        if self._memory is not None:
            return "memory"
        return "disk" if self._disk is not None else "stream"

    @property
    def streaming(self) -> bool:
        return self.store == "stream"

    def _blocks(self) -> Iterator[tuple[int, F32]]:
        """``(first row, inputs)`` in file order: large reads, small build chunks."""
        read = max(1, READ_BYTES // (4 * self.geometry.n_voxels))
        chunk = build_rows(self.geometry.n_voxels)
        for i in range(0, self.n, read):
            j = min(i + read, self.n)
            try:
                e, x = np.asarray(self._e[i:j]), np.asarray(self._x[i:j])
            except (OSError, RuntimeError) as exc:  # truncated / corrupt HDF5
                raise DataFormatError(
                    f"{self.label} sample: cannot read rows {i}-{j} ({exc})"
                ) from exc
            for k in range(0, j - i, chunk):
                yield i + k, self._build(e[k : k + chunk], x[k : k + chunk])

    def _build(self, e: npt.NDArray[Any], x: npt.NDArray[Any]) -> F32:
        if not (np.all(np.isfinite(e)) and np.all(e > 0)):
            raise DataFormatError(f"{self.label} sample: incident energies must be finite and > 0")
        out = self._build_fn(e, x)
        if not np.all(np.isfinite(out)):
            raise DataFormatError(f"{self.label} sample: showers contain NaN or inf")
        return out

    def rows(self, idx: npt.NDArray[np.int64]) -> F32:
        """Inputs of the showers ``idx`` (any order, unique)."""
        if self._memory is not None:
            return self._memory[idx]
        out = np.empty((len(idx), self.dim), dtype=np.float32)
        if self._disk is not None:
            _read_rows(self._disk, idx, out)
            return out
        order = np.argsort(idx, kind="stable")
        sidx = idx[order]
        chunk = build_rows(self.geometry.n_voxels)
        for k in range(0, len(sidx), chunk):
            part = sidx[k : k + chunk]
            out[order[k : k + chunk]] = self._build(
                np.asarray(self._e[part]), np.asarray(self._x[part])
            )
        return out

    def close_source(self) -> None:
        """Close the HDF5 file (the stored inputs, if any, stay)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        """Close the source and delete the disk cache."""
        self.close_source()
        if self._disk is not None:
            self._disk.close()
            self._disk = None


def _has_room(cache_dir: str | Path | None, nbytes: int, label: str) -> bool:
    folder = Path(cache_dir) if cache_dir is not None else Path(tempfile.gettempdir())
    try:
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        logger.warning(
            "classifier: no disk cache in %s (%s); rebuilding inputs per batch", folder, exc
        )
        return False
    if free - nbytes < DISK_MARGIN_BYTES:
        logger.warning(
            "classifier: %s inputs need %.1f GB but %s has %.1f GB free; rebuilding them per "
            "batch (slower)",
            label,
            nbytes / 1e9,
            folder,
            free / 1e9,
        )
        return False
    return True


def _read_rows(fh: IO[bytes], idx: npt.NDArray[np.int64], out: F32) -> None:
    """``out[k] = row idx[k]`` of the float32 matrix in ``fh`` (positioned reads)."""
    row_bytes = out.shape[1] * 4
    fd = fh.fileno()
    preadv = getattr(os, "preadv", None)
    for k, i in enumerate(idx.tolist()):
        buf = memoryview(out[k]).cast("B")
        if preadv is not None:
            got = preadv(fd, [buf], i * row_bytes)
        else:  # pragma: no cover - platforms without preadv (Windows)
            fh.seek(i * row_bytes)
            data = fh.read(row_bytes)
            got = len(data)
            if got == row_bytes:
                buf[:] = data
        if got != row_bytes:
            raise DataFormatError(
                f"classifier disk cache: short read of row {i} ({got} of {row_bytes} bytes)"
            )


class InputPool:
    """Several labelled samples behind one global row index ``[0, sum n)``."""

    def __init__(self, sources: list[SampleInputs]) -> None:
        self.sources = sources
        self.offsets = np.cumsum([0] + [s.n for s in sources])

    def rows(self, gidx: npt.NDArray[np.int64]) -> F32:
        out = np.empty((len(gidx), self.sources[0].dim), dtype=np.float32)
        which = np.searchsorted(self.offsets, gidx, side="right") - 1
        for k, src in enumerate(self.sources):
            sel = np.nonzero(which == k)[0]
            if sel.size:
                out[sel] = src.rows(gidx[sel] - self.offsets[k])
        return out

    def close(self) -> None:
        for s in self.sources:
            s.close()
