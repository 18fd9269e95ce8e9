"""CaloChallenge HDF5 shower files: read, stream, validate, summarise (and write).

A CaloChallenge file holds exactly two HDF5 datasets at its root:

* ``incident_energies`` - shape ``(N, 1)``, energy of the incoming particle in MeV;
* ``showers`` - shape ``(N, n_voxels)``, voxel energies in MeV, flattened as in
  :mod:`physgen.calo.geometry`.

Files written by physgen add provenance as root *attributes* (``geometry``,
``seed``, ``generator``, ``physgen_version``, ``config`` as JSON...), and refined samples
(``physgen generate --refiner``) one optional dataset ``weights`` ``(N,)``, the per-shower
DCTR weights; code that knows only the two keys reads them unchanged.

This module reads: :func:`open_showers` checks a file's layout, :func:`iter_batches`
streams it, :func:`read_showers` loads it, :func:`validate_file` checks every value and
:func:`file_summary` describes it for ``physgen info``. Writing, always to a temporary
file renamed onto the target only when the writer closes cleanly, is in
:mod:`physgen.calo.h5writer`; the keys and the attribute encoding are in
:mod:`physgen.calo.h5layout`. Both are re-exported here, so ``physgen.calo.io`` stays the
one import for shower files.

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

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from physgen.calo.geometry import Geometry, get_geometry, match_geometry
from physgen.calo.h5layout import (
    BATCH_BYTES,
    ENERGY_KEY,
    SHOWER_KEY,
    WEIGHT_KEY,
    check_weights,
    decode_attr,
    raw_attrs,
)
from physgen.calo.h5writer import ShowerWriter, write_showers
from physgen.errors import ConfigError, DataFormatError

__all__ = [
    "ENERGY_KEY",
    "SHOWER_KEY",
    "WEIGHT_KEY",
    "ShowerFile",
    "ShowerWriter",
    "check_values",
    "check_weights",
    "file_summary",
    "iter_batches",
    "open_showers",
    "raw_attrs",
    "read_showers",
    "read_weights",
    "validate_file",
    "write_showers",
]

log = logging.getLogger(__name__)


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

    @property
    def has_weights(self) -> bool:
        """Whether the file holds per-shower ``weights`` (a refined sample)."""
        return WEIGHT_KEY in self.handle

    def weights(self) -> npt.NDArray[np.float64] | None:
        """The per-shower weights ``(N,)`` float64, checked (finite, >= 0, total > 0), or
        None for an unweighted file."""
        if not self.has_weights:
            return None
        try:
            w = np.asarray(self.handle[WEIGHT_KEY][()], dtype=np.float64).reshape(-1)
        except (OSError, RuntimeError) as exc:
            raise DataFormatError(f"{self.path}: cannot read '{WEIGHT_KEY}' ({exc})") from exc
        return check_weights(w, f"{self.path}: '{WEIGHT_KEY}'")

    def default_batch_size(self) -> int:
        """Rows of about 64 MB."""
        itemsize = int(self.showers.dtype.itemsize)
        return max(1, BATCH_BYTES // max(1, self.n_voxels * itemsize))

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
    extra = [k for k in keys if k not in (ENERGY_KEY, SHOWER_KEY, WEIGHT_KEY)]
    if extra:
        raise DataFormatError(
            f"{p}: unknown key(s) {extra}; expected only '{ENERGY_KEY}' and '{SHOWER_KEY}' "
            f"(and optionally '{WEIGHT_KEY}')"
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
    if WEIGHT_KEY in keys:
        w = handle[WEIGHT_KEY]
        if not isinstance(w, h5py.Dataset) or w.dtype.kind not in "fiu":
            raise DataFormatError(f"{p}: '{WEIGHT_KEY}' must be a numeric dataset")
        if w.size != x.shape[0] or w.ndim not in (1, 2) or (w.ndim == 2 and w.shape[1] != 1):
            raise DataFormatError(
                f"{p}: '{WEIGHT_KEY}' must have shape (N,) with N = {x.shape[0]}, got {w.shape}"
            )
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
    attrs = {k: decode_attr(v) for k, v in handle.attrs.items()}
    return ShowerFile(p, handle, int(x.shape[0]), n_vox, geo, attrs)


def read_weights(
    path: str | Path, geometry: str | Geometry | None = None
) -> npt.NDArray[np.float64] | None:
    """The checked per-shower ``weights`` of a file ``(N,)``, or None if it has none."""
    with open_showers(path, geometry) as f:
        return f.weights()


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
