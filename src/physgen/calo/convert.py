"""Convert CaloChallenge shower files between HDF5, ROOT TTrees and NumPy ``.npz``.

The formats and their layouts are described in :mod:`physgen.calo.formats`. A
conversion streams the showers in batches (about 32 MB each; the N incident energies
are held in memory), writes to a temporary file beside the target and renames it only
when complete, and keeps every value bit for bit in its stored dtype (float32 stays
float32, including ``-0.0``). The values are checked as by ``physgen validate``: NaN or
inf, or incident energies <= 0, are refused; negative voxel energies are refused unless
``clip_negative`` (then, and only then, values change).

The file-level provenance goes with the showers: HDF5 root attributes, the ROOT
``<tree>_provenance`` string and the ``.npz`` ``provenance`` array hold the same
attributes (JSON in the last two, with NumPy dtypes recorded), so HDF5 -> ROOT/npz ->
HDF5 gives back the attributes with their values and types. Not carried over: HDF5
dataset-level attributes, chunking and compression settings (the target's own are
used), other objects in a ROOT file, and any ROOT branch other than the two read. An
HDF5 target also gets ``n_showers`` and ``physgen_version`` when the source lacks them
(every HDF5 file physgen writes has them).

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> from physgen.calo.io import write_showers
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> e = np.array([[1000.0], [2000.0]]); x = np.ones((2, 368), np.float32)
    >>> _ = write_showers(d / "s.h5", e, x, attrs={"seed": 3})
    >>> convert_showers(d / "s.h5", d / "s.npz").n_showers
    2
"""

from __future__ import annotations

import contextlib
import logging
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import numpy as np
import numpy.typing as npt

from physgen import outputs
from physgen.calo.formats import (
    DEFAULT_TREE,
    ENERGY_BRANCH,
    NPZ_PROVENANCE_KEY,
    SHOWER_BRANCH,
    ShowerSource,
    import_uproot,
    open_source,
    shower_format,
)
from physgen.calo.geometry import Geometry
from physgen.calo.io import ENERGY_KEY, SHOWER_KEY, ShowerWriter, check_values
from physgen.calo.provenance import provenance_to_json
from physgen.errors import ConfigError, DataFormatError

__all__ = [
    "COMPRESSIONS",
    "Conversion",
    "NpzShowerWriter",
    "RootShowerWriter",
    "convert_showers",
    "read_any",
]

log = logging.getLogger(__name__)

#: Accepted ``compression`` values per target format (the first is the default).
#: ``gzip``, ``zlib`` and ``deflate`` all name DEFLATE.
COMPRESSIONS = {
    "hdf5": ("gzip", "lzf", "none", "zlib", "deflate"),
    "root": ("zlib", "lzma", "lz4", "zstd", "none", "gzip", "deflate"),
    "npz": ("none", "deflate", "gzip", "zlib"),
}


@dataclass(frozen=True)
class Conversion:
    """What :func:`convert_showers` wrote.

    Attributes:
        path: The output file.
        source_format, target_format: ``hdf5``, ``root`` or ``npz``.
        n_showers: Showers written.
        n_voxels: Voxels per shower.
        geometry: Name of the geometry the voxel count matches.
        n_clipped: Negative voxel energies set to 0 (only with ``clip_negative``).
    """

    path: Path
    source_format: str
    target_format: str
    n_showers: int
    n_voxels: int
    geometry: str
    n_clipped: int = 0


# --------------------------------------------------------------------------- writing


class RootShowerWriter:
    """Append showers to a new ROOT file's TTree (write to a temporary path; see convert).

    Args:
        path: File to create (replaced if it exists).
        n_voxels: Voxels per shower.
        energy_dtype, shower_dtype: Branch dtypes (kept bit for bit).
        tree, energy_branch, shower_branch: Names.
        compression: An uproot compression object, or None.
        provenance: JSON text stored as ``<tree>_provenance`` (None: nothing stored).
    """

    def __init__(
        self,
        path: Path,
        n_voxels: int,
        energy_dtype: np.dtype[Any],
        shower_dtype: np.dtype[Any],
        *,
        tree: str = DEFAULT_TREE,
        energy_branch: str = ENERGY_BRANCH,
        shower_branch: str = SHOWER_BRANCH,
        compression: Any = None,
        provenance: str | None = None,
    ) -> None:
        if not tree or not energy_branch or not shower_branch or energy_branch == shower_branch:
            raise ConfigError(
                f"--tree/--energy-branch/--shower-branch: need three non-empty names, two "
                f"distinct branches; got {tree!r}, {energy_branch!r}, {shower_branch!r}"
            )
        self._uproot = import_uproot(path)
        self.path, self.tree_name, self.provenance = path, tree, provenance
        self._branches = (energy_branch, shower_branch)
        self._types = {
            energy_branch: np.dtype(energy_dtype),
            shower_branch: np.dtype((np.dtype(shower_dtype), (n_voxels,))),
        }
        self._compression = compression
        self._stack = contextlib.ExitStack()
        self._file: Any = None
        self._tree: Any = None

    def __enter__(self) -> RootShowerWriter:
        self._file = self._stack.enter_context(
            self._uproot.recreate(self.path, compression=self._compression)
        )
        self._tree = self._file.mktree(
            self.tree_name, self._types, title="CaloChallenge showers (MeV)"
        )
        return self

    def append(self, energies: npt.NDArray[Any], showers: npt.NDArray[Any]) -> None:
        """Append ``energies (b, 1)`` and ``showers (b, n_voxels)`` as b entries."""
        eb, xb = self._branches
        self._tree.extend({eb: np.ascontiguousarray(energies).reshape(-1), xb: showers})

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None and self.provenance is not None:
            self._file[f"{self.tree_name}_provenance"] = self.provenance
        self._stack.close()


class NpzShowerWriter:
    """Stream ``incident_energies`` and ``showers`` into a new ``.npz`` (as ``np.savez``).

    Args:
        path: File to create.
        energies: All incident energies ``(N, 1)`` in MeV (written first).
        n_voxels: Voxels per shower.
        shower_dtype: Stored dtype of the showers.
        deflate: Compress (as ``np.savez_compressed``) instead of storing.
        provenance: JSON text stored as the 0-d string array ``provenance``.
    """

    def __init__(
        self,
        path: Path,
        energies: npt.NDArray[Any],
        n_voxels: int,
        shower_dtype: np.dtype[Any],
        *,
        deflate: bool = False,
        provenance: str | None = None,
    ) -> None:
        self.path, self.energies, self.provenance = path, energies, provenance
        self._dtype = np.dtype(shower_dtype)
        self._shape = (int(energies.shape[0]), int(n_voxels))
        self._mode = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
        self._zip: zipfile.ZipFile | None = None
        self._fp: IO[bytes] | None = None
        self._rows = 0

    def __enter__(self) -> NpzShowerWriter:
        self._zip = zipfile.ZipFile(self.path, "w", compression=self._mode, allowZip64=True)
        with self._zip.open(f"{ENERGY_KEY}.npy", "w", force_zip64=True) as fp:
            np.lib.format.write_array(fp, np.ascontiguousarray(self.energies), allow_pickle=False)
        if self.provenance is not None:
            with self._zip.open(f"{NPZ_PROVENANCE_KEY}.npy", "w") as fp:
                np.lib.format.write_array(fp, np.array(self.provenance), allow_pickle=False)
        self._fp = self._zip.open(f"{SHOWER_KEY}.npy", "w", force_zip64=True)
        header = {
            "descr": np.lib.format.dtype_to_descr(self._dtype),
            "fortran_order": False,
            "shape": self._shape,
        }
        np.lib.format.write_array_header_1_0(self._fp, header)
        return self

    def append(self, energies: npt.NDArray[Any], showers: npt.NDArray[Any]) -> None:
        """Append showers ``(b, n_voxels)`` (the energies were written at the start)."""
        assert self._fp is not None
        x = np.ascontiguousarray(showers, dtype=self._dtype)
        self._fp.write(x.data.cast("B"))
        self._rows += x.shape[0]

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._fp is not None:
                self._fp.close()
        finally:
            if self._zip is not None:
                self._zip.close()
        if exc_type is None and self._rows != self._shape[0]:
            raise DataFormatError(
                f"{self.path}: wrote {self._rows} showers, the header says {self._shape[0]}"
            )


# ------------------------------------------------------------------------ converting


def _compression(fmt: str, compression: str | None) -> str:
    name = COMPRESSIONS[fmt][0] if compression is None else compression.strip().lower()
    if name not in COMPRESSIONS[fmt]:
        raise ConfigError(
            f"--compression: {fmt} output takes {', '.join(COMPRESSIONS[fmt])}, got {compression!r}"
        )
    return name


def _root_compression(name: str, path: Path) -> Any:
    uproot = import_uproot(path)
    if name == "none":
        return None
    cls = {"lzma": uproot.LZMA, "lz4": uproot.LZ4, "zstd": uproot.ZSTD}.get(name, uproot.ZLIB)
    return cls(4)


def _writer(
    fmt: str, tmp: Path, src: ShowerSource, comp: str, tree: str, branches: tuple[str, str]
) -> RootShowerWriter | NpzShowerWriter:
    text = provenance_to_json(src.attrs) if src.attrs else None
    if fmt == "root":
        return RootShowerWriter(
            tmp,
            src.n_voxels,
            src.energies.dtype,
            src.shower_dtype,
            tree=tree,
            energy_branch=branches[0],
            shower_branch=branches[1],
            compression=_root_compression(comp, tmp),
            provenance=text,
        )
    return NpzShowerWriter(
        tmp, src.energies, src.n_voxels, src.shower_dtype, deflate=comp != "none", provenance=text
    )


def _copy(
    src: ShowerSource,
    writer: ShowerWriter | RootShowerWriter | NpzShowerWriter,
    out: Path,
    batch_size: int | None,
    clip_negative: bool,
) -> int:
    """Copy every batch, checking values; returns the number of clipped voxels."""
    offset = 0
    n_neg = 0
    for x in src.iter_showers(batch_size):
        outputs.raise_if_interrupted()
        e = src.energies[offset : offset + x.shape[0]]
        neg = check_values(src.path, e, x, offset, clip_negative)
        if neg:
            x = np.clip(x, 0, None).astype(x.dtype, copy=False)
            n_neg += neg
        if not isinstance(writer, ShowerWriter):  # ShowerWriter checks its own space
            outputs.check_free_space(out, x.nbytes + e.nbytes + (1 << 20))
        writer.append(e, x)
        offset += x.shape[0]
    return n_neg


def convert_showers(
    source: str | Path,
    out: str | Path,
    *,
    tree: str | None = None,
    energy_branch: str = ENERGY_BRANCH,
    shower_branch: str = SHOWER_BRANCH,
    geometry: str | Geometry | None = None,
    compression: str | None = None,
    batch_size: int | None = None,
    clip_negative: bool = False,
) -> Conversion:
    """Convert a shower file to another format (or recompress it), streaming and atomic.

    The formats follow the suffixes: ``.h5``/``.hdf5``, ``.root``, ``.npz``.

    Args:
        source: Input file.
        out: Output file; its folder must exist; it must not be the input.
        tree: ROOT TTree to read (default ``showers`` or the only one) or write
            (default ``showers``).
        energy_branch: ROOT branch of the incident energy (MeV), read or written.
        shower_branch: ROOT fixed-size array branch of the voxel energies (MeV).
        geometry: Geometry the voxel count must match (default: any built-in one).
        compression: Of the output (default first of :data:`COMPRESSIONS` per format:
            HDF5 gzip, ROOT zlib, npz none (stored, as ``np.savez``)).
        batch_size: Showers per batch (default about 32 MB).
        clip_negative: Clip negative voxel energies to 0 instead of refusing them.

    Returns:
        A :class:`Conversion` summary.

    Raises:
        ConfigError: Unknown suffix or compression, the output is the input, missing
            folder.
        MissingDependencyError: uproot is not installed and ROOT is read or written.
        DataFormatError: A bad input (layout, voxel count, NaN/inf, energies <= 0,
            negative voxels without ``clip_negative``); nothing is written then.
    """
    src_p = Path(source)
    shower_format(src_p, "input")
    out_p = outputs.check_output(out, "--out", inputs=[src_p])
    fmt = shower_format(out_p, "--out")
    comp = _compression(fmt, compression)
    if fmt == "root":
        import_uproot(out_p)
    branches = (energy_branch, shower_branch)
    with open_source(
        src_p,
        tree=tree,
        energy_branch=energy_branch,
        shower_branch=shower_branch,
        geometry=geometry,
    ) as src:
        if fmt == "hdf5":
            h5 = ShowerWriter(
                out_p,
                src.n_voxels,
                compression="gzip" if comp in ("zlib", "deflate") else comp,
                attrs=src.attrs,
                dtype=src.shower_dtype,
                energy_dtype=src.energies.dtype,
            )
            with h5:
                n_neg = _copy(src, h5, out_p, batch_size, clip_negative)
        else:
            out_tree = DEFAULT_TREE if tree is None else tree
            with (
                outputs.atomic_path(out_p) as tmp,
                _writer(fmt, tmp, src, comp, out_tree, branches) as w,
            ):
                n_neg = _copy(src, w, out_p, batch_size, clip_negative)
        if n_neg:
            log.warning("%s: clipped %d negative voxel energies to 0", src.path, n_neg)
        return Conversion(
            out_p, src.format, fmt, src.n_showers, src.n_voxels, src.geometry.name, n_neg
        )


def read_any(
    path: str | Path,
    *,
    tree: str | None = None,
    energy_branch: str = ENERGY_BRANCH,
    shower_branch: str = SHOWER_BRANCH,
    geometry: str | Geometry | None = None,
) -> tuple[npt.NDArray[Any], npt.NDArray[Any], dict[str, Any]]:
    """Read a whole shower file of any format into memory (values not checked).

    Returns:
        ``(incident_energies (N, 1), showers (N, n_voxels), attrs)`` in the stored
        dtypes (native byte order), MeV; ``attrs`` as in :class:`ShowerSource`.
    """
    with open_source(
        path,
        tree=tree,
        energy_branch=energy_branch,
        shower_branch=shower_branch,
        geometry=geometry,
    ) as src:
        x = np.empty((src.n_showers, src.n_voxels), dtype=src.shower_dtype)
        i = 0
        for batch in src.iter_showers():
            x[i : i + batch.shape[0]] = batch
            i += batch.shape[0]
        return src.energies, x, src.attrs
