"""Training showers from a CaloChallenge file or from in-memory arrays: seeded split, in
memory or streamed from HDF5.

Every batch is a pure function of ``(seed, epoch, batch index)``, so an interrupted run
resumes on exactly the batches it would have seen, whatever the storage mode; arrays give the
same split and batches as a file holding the same rows that is read into memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from physgen.calo.config import DataConfig
from physgen.calo.geometry import Geometry
from physgen.calo.io import ENERGY_KEY, SHOWER_KEY, check_values, open_showers
from physgen.errors import DataFormatError
from physgen.train.data import _EPOCH, _FIT, _MAX_VALIDATION, _SPLIT

__all__ = ["ARRAYS_NAME", "ShowerArrays", "ShowerData", "ShowerSource", "shower_arrays"]

F32 = npt.NDArray[np.float32]
#: In-memory training data: ``(incident_energies (N,) or (N, 1) MeV, showers (N, V) MeV)``,
#: numpy arrays or torch tensors (any device; gradients are ignored).
ShowerArrays: TypeAlias = tuple[npt.ArrayLike, npt.ArrayLike]
#: A CaloChallenge file or :data:`ShowerArrays`.
ShowerSource: TypeAlias = str | Path | ShowerArrays
#: How error messages name in-memory data.
ARRAYS_NAME = "in-memory data"


def _as_array(a: Any, what: str) -> npt.NDArray[Any]:
    """``a`` as a numeric numpy array in its own dtype (torch tensors on any device too)."""
    try:
        if hasattr(a, "detach") and hasattr(a, "cpu"):  # a torch tensor
            a = a.detach().cpu().numpy()
        out = np.asarray(a)
    except (TypeError, ValueError) as exc:
        raise DataFormatError(f"{ARRAYS_NAME}: {what} must be a numeric array ({exc})") from exc
    if out.dtype.kind not in "biuf":
        raise DataFormatError(f"{ARRAYS_NAME}: {what} must be numeric, got dtype {out.dtype}")
    return out


def shower_arrays(
    data: ShowerArrays, geometry: Geometry
) -> tuple[npt.NDArray[np.float64], F32, dict[str, Any]]:
    """Check in-memory showers and bring them to the dtypes training reads a file in.

    Args:
        data: ``(incident_energies (N,) or (N, 1) MeV, showers (N, V) MeV)``, numpy arrays
            or torch tensors, V the geometry's voxel count.
        geometry: Their geometry.

    Returns:
        ``(energies (N, 1) float64, showers (N, V) float32, record)``: the arrays as training
        reads them (not copied where they already have these dtypes and are contiguous), and
        the provenance record ``{"source": "in-memory arrays", "incident_energies": {"shape",
        "dtype"}, "showers": {"shape", "dtype"}, "sha256"}``: shapes and dtypes as given, and
        the SHA-256 of the energies' bytes as float64 ``(N,)`` followed by the showers' bytes
        as float32 ``(N, V)`` (C order, little-endian), i.e. of the data training sees.

    Raises:
        DataFormatError: Not a pair, non-numeric, wrong shapes, no rows, NaN/inf, negative
            voxel energies or incident energies <= 0 (checked as a file's values are).
    """
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise DataFormatError(
            f"{ARRAYS_NAME}: expected a file path or a pair (incident_energies, showers), "
            f"got {type(data).__name__}"
        )
    given_e = _as_array(data[0], "incident energies")
    given_x = _as_array(data[1], "showers")
    if given_x.ndim != 2 or given_x.shape[1] != geometry.n_voxels:
        raise DataFormatError(
            f"{ARRAYS_NAME}: showers must be (N, {geometry.n_voxels}) for geometry "
            f"{geometry.name!r}, got {given_x.shape}"
        )
    if not (given_e.ndim == 1 or (given_e.ndim == 2 and given_e.shape[1] == 1)):
        raise DataFormatError(
            f"{ARRAYS_NAME}: incident energies must be (N,) or (N, 1), got {given_e.shape}"
        )
    if len(given_e) != len(given_x):
        raise DataFormatError(
            f"{ARRAYS_NAME}: {len(given_e)} incident energies but {len(given_x)} showers"
        )
    if len(given_x) == 0:
        raise DataFormatError(f"{ARRAYS_NAME}: no showers (0 rows)")
    e = np.ascontiguousarray(given_e.reshape(-1, 1), dtype=np.float64)
    x = np.ascontiguousarray(given_x, dtype=np.float32)
    check_values(Path(ARRAYS_NAME), e, x, 0, clip_negative=False)
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(e, dtype="<f8").data)
    digest.update(np.ascontiguousarray(x, dtype="<f4").data)
    record = {
        "source": "in-memory arrays",
        ENERGY_KEY: {"shape": list(given_e.shape), "dtype": str(given_e.dtype)},
        SHOWER_KEY: {"shape": list(given_x.shape), "dtype": str(given_x.dtype)},
        "sha256": digest.hexdigest(),
    }
    return e, x, record


class ShowerData:
    """Train/validation access to one shower file or to in-memory showers.

    Args:
        data: The CaloChallenge file, or :data:`ShowerArrays` ``(incident_energies (N,) or
            (N, 1) MeV, showers (N, V) MeV)``.
        geometry: Their geometry (the voxel count is checked).
        config: Data options (validation fraction, memory limit, block size).
        seed: Run seed (split and batch order).

    Files larger than ``config.max_in_memory_gb`` are streamed: rows are grouped in blocks of
    ``config.stream_block`` contiguous rows, the split assigns whole blocks, and each epoch
    reads the training blocks in a seeded random order, shuffling rows within groups of 16
    blocks. Arrays are never streamed (they are in memory already; they are not copied when
    they are C-contiguous float64 energies and float32 showers): their split and batches are
    those of a file holding the same rows that is read into memory.

    Attributes:
        path: The file (None for arrays).
        provenance: What the run's ``provenance.json`` records as ``data``: the file's resolved
            path, or the arrays' record of :func:`shower_arrays` (shapes, dtypes, SHA-256).
    """

    def __init__(
        self, data: ShowerSource, geometry: Geometry, config: DataConfig, seed: int
    ) -> None:
        self.config = config
        self.seed = int(seed)
        self._energies: npt.NDArray[np.float64] | None = None
        self._showers: F32 | None = None
        self.path: Path | None
        self.provenance: str | dict[str, Any]
        if isinstance(data, (str, Path)):
            self.path = Path(data)
            self.provenance = str(self.path.resolve())
            name = str(self.path)
            with open_showers(self.path, geometry) as f:
                self.n_showers = f.n_showers
                self.n_voxels = f.n_voxels
                e = np.asarray(f.energies[()], dtype=np.float64).reshape(-1)
            check_values(self.path, e.reshape(-1, 1), np.zeros((e.size, 0), np.float32), 0, False)
            size_gb = self.n_showers * self.n_voxels * 4 / 1e9
            self.streaming = size_gb > config.max_in_memory_gb
        else:
            self.path = None
            name = ARRAYS_NAME
            self._energies, self._showers, self.provenance = shower_arrays(data, geometry)
            self.n_showers, self.n_voxels = self._showers.shape
            e = self._energies.reshape(-1)
            self.streaming = False
        self.energy_range_mev = (float(e.min()), float(e.max()))
        self.block = config.stream_block if self.streaming else 1
        n_blocks = -(-self.n_showers // self.block)
        rng = np.random.default_rng([self.seed, _SPLIT])
        perm = rng.permutation(n_blocks)
        n_val = max(1, round(config.validation_fraction * n_blocks))
        if n_val >= n_blocks:
            raise DataFormatError(
                f"{name}: {self.n_showers} showers are too few for a train/validation split"
            )
        self.val_blocks = np.sort(perm[:n_val])
        self.train_blocks = np.sort(perm[n_val:])
        if not self.streaming and self.path is not None:
            with open_showers(self.path, geometry) as f:
                self._showers = np.asarray(f.showers[()], dtype=np.float32)
            self._energies = e.reshape(-1, 1)
            check_values(self.path, self._energies, self._showers, 0, clip_negative=False)

    # ------------------------------------------------------------------ sizes
    def _rows(self, blocks: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        if self.block == 1:
            return blocks.astype(np.int64)
        rows = (blocks[:, None] * self.block + np.arange(self.block)[None, :]).reshape(-1)
        return rows[rows < self.n_showers].astype(np.int64)

    @property
    def n_train(self) -> int:
        """Training showers."""
        return int(self._rows(self.train_blocks).size)

    @property
    def n_validation(self) -> int:
        """Validation showers (capped at 50,000)."""
        return int(min(self._rows(self.val_blocks).size, _MAX_VALIDATION))

    def steps_per_epoch(self, batch_size: int) -> int:
        """Full batches per epoch (the last partial batch is dropped)."""
        return max(1, self.n_train // batch_size)

    # ------------------------------------------------------------------ reading
    def _read(self, rows: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.float64], F32]:
        """Rows (sorted) -> (energies (n, 1), showers (n, V))."""
        if self._showers is not None and self._energies is not None:
            return self._energies[rows], self._showers[rows]
        assert self.path is not None  # streaming reads a file
        with open_showers(self.path) as f:
            e = np.asarray(f.energies[rows], dtype=np.float64).reshape(-1, 1)
            x = np.asarray(f.showers[rows], dtype=np.float32)
        if not np.isfinite(x).all() or (x < 0).any():  # name the file and row, not a transform
            bad = int(np.flatnonzero(~(np.isfinite(x) & (x >= 0)).all(axis=1))[0])
            check_values(self.path, e[bad : bad + 1], x[bad : bad + 1], int(rows[bad]), False)
        return e, x

    def validation(self) -> tuple[npt.NDArray[np.float64], F32]:
        """The validation showers ``(energies (n, 1) MeV, showers (n, V) MeV)``."""
        return self._read(self._rows(self.val_blocks)[:_MAX_VALIDATION])

    def fit_sample(self) -> tuple[npt.NDArray[np.float64], F32]:
        """Up to ``fit_samples`` training showers (seeded), for fitting the preprocessing."""
        rows = self._rows(self.train_blocks)
        if rows.size > self.config.fit_samples:
            rng = np.random.default_rng([self.seed, _FIT])
            rows = np.sort(rng.choice(rows, self.config.fit_samples, replace=False))
        return self._read(rows)

    def batches(
        self, epoch: int, batch_size: int, *, skip: int = 0, rank: int = 0, world: int = 1
    ) -> Iterator[tuple[npt.NDArray[np.float64], F32]]:
        """The training batches of one epoch, from batch ``skip`` on.

        Every process draws the same global batch of ``batch_size`` rows and keeps rows
        ``rank::world`` of it, so the union over processes is the single-process batch.

        Yields:
            ``(energies (b, 1) MeV, showers (b, V) MeV)`` with ``b = batch_size // world``
            (or one more for low ranks).
        """
        rng = np.random.default_rng([self.seed, _EPOCH, epoch])
        n_steps = self.steps_per_epoch(batch_size)
        if not self.streaming:
            perm = rng.permutation(self._rows(self.train_blocks))
            for b in range(skip, n_steps):
                rows = np.sort(perm[b * batch_size : (b + 1) * batch_size][rank::world])
                yield self._read(rows)
            return
        order = rng.permutation(self.train_blocks)
        group = 16
        pending_e: list[npt.NDArray[np.float64]] = []
        pending_x: list[F32] = []
        b = 0
        for g in range(0, order.size, group):
            rows = np.sort(self._rows(order[g : g + group]))
            e, x = self._read(rows)
            p = rng.permutation(rows.size)
            pending_e.append(e[p])
            pending_x.append(x[p])
            buf_e, buf_x = np.concatenate(pending_e), np.concatenate(pending_x)
            n_full = buf_e.shape[0] // batch_size
            for i in range(n_full):
                if b >= n_steps:
                    return
                if b >= skip:
                    sl = slice(i * batch_size, (i + 1) * batch_size)
                    yield buf_e[sl][rank::world], buf_x[sl][rank::world]
                b += 1
            pending_e = [buf_e[n_full * batch_size :]]
            pending_x = [buf_x[n_full * batch_size :]]
