"""Generate showers with a trained surrogate into a CaloChallenge file (streaming, sharded).

Randomness is organised in blocks of :data:`SEED_BLOCK` showers: block ``b`` of a run with
seed ``s`` always uses a generator seeded from ``(s, b)`` and is sampled in one model call.
So the output does not depend on ``batch_size`` (rows per write) and the K shards of a
sharded run, merged in order, are the unsharded file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch

from physgen._version import __version__
from physgen.calo.io import ShowerWriter, open_showers
from physgen.calo.shards import SEED_BLOCK, Shard, parse_shard
from physgen.checks import check_seed
from physgen.errors import ConfigError, DataFormatError
from physgen.models.base import ShowerGenerator
from physgen.outputs import check_output

if TYPE_CHECKING:
    from physgen.export.runtime import OnnxShowerModel

__all__ = ["SEED_BLOCK", "Shard", "generate_showers", "parse_shard"]

log = logging.getLogger(__name__)


def _block_generator(seed: int, block: int) -> torch.Generator:
    s = int(np.random.SeedSequence([seed, 0x47454E, block]).generate_state(1)[0])
    return torch.Generator().manual_seed(s)


def generate_showers(
    model: ShowerGenerator | OnnxShowerModel,
    out: str | Path,
    *,
    energies: npt.ArrayLike | None = None,
    energies_from: str | Path | None = None,
    seed: int = 0,
    batch_size: int = 10_000,
    shard: Shard = Shard(),
    geometry: str | None = None,
    compression: str | None = "gzip",
    progress: bool | None = None,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """Sample showers for given incident energies and write them atomically.

    Args:
        model: A trained surrogate (see :func:`physgen.calo.rundir.load_run`) or an exported
            one in ONNX Runtime (:func:`physgen.export.load_onnx`): the same seed blocks
            feed both.
        out: Output file; its folder must exist.
        energies: Incident energies (N,) or (N, 1) in MeV for the whole (unsharded) run.
        energies_from: Or: take the incident energies of this CaloChallenge file.
        seed: Run seed.
        batch_size: Rows per write (memory bound); does not change the showers.
        shard: Which part of the N rows to produce.
        geometry: Geometry name recorded in the provenance (and checked against
            ``energies_from`` when given).
        compression: HDF5 compression.
        progress: tqdm bar (None: only on a terminal).
        attrs: Extra provenance.

    Returns:
        The output path.

    Raises:
        ConfigError: No or both energy sources, bad batch size or seed, energies <= 0.
    """
    from tqdm.auto import tqdm

    out_p = Path(out)
    check_output(out_p, "--out", inputs=[energies_from])
    if (energies is None) == (energies_from is None):
        raise ConfigError("generate: give exactly one of energies or energies_from")
    if batch_size < 1:
        raise ConfigError(f"--batch-size: must be >= 1, got {batch_size}")
    check_seed(seed)
    if energies_from is not None:
        with open_showers(energies_from, geometry) as f:
            e_all = np.asarray(f.energies[()], dtype=np.float64).reshape(-1)
    else:
        e_all = np.asarray(energies, dtype=np.float64).reshape(-1)
    if e_all.size == 0 or not np.all(np.isfinite(e_all)) or np.any(e_all <= 0):
        raise DataFormatError("generate: incident energies must be finite and > 0 MeV")
    lo, hi = model.codec.training_range_mev
    outside = int(np.count_nonzero((e_all < lo * (1 - 1e-9)) | (e_all > hi * (1 + 1e-9))))
    if outside:
        log.warning(
            "%d of %d incident energies lie outside the training range %.4g-%.4g MeV: "
            "extrapolation, check these showers before trusting them",
            outside,
            e_all.size,
            lo,
            hi,
        )
    start, stop = shard.check(e_all.size)
    meta = {
        "generator": "physgen generate",
        "model": model.name,
        "seed": seed,
        "shard": f"{shard.index + 1}/{shard.count}",
        "rows": [start, stop],
        "n_total": int(e_all.size),
        "physgen_version": __version__,
        **({"geometry": geometry} if geometry else {}),
        **(attrs or {}),
    }
    model.eval()
    with (
        ShowerWriter(out_p, model.codec.n_voxels, compression=compression, attrs=meta) as w,
        tqdm(
            total=stop - start,
            disable=None if progress is None else not progress,
            unit="shower",
            desc="generate",
        ) as bar,
    ):
        pending_e: list[npt.NDArray[np.float64]] = []
        pending_x: list[npt.NDArray[np.float32]] = []
        n_pending = 0
        for b0 in range(start, stop, SEED_BLOCK):
            b1 = min(b0 + SEED_BLOCK, stop)
            e = e_all[b0:b1].reshape(-1, 1)
            g = _block_generator(seed, b0 // SEED_BLOCK)
            x = model(torch.from_numpy(e)).sample(generator=g)
            pending_e.append(e)
            pending_x.append(x.cpu().numpy().astype(np.float32, copy=False))
            n_pending += b1 - b0
            if n_pending >= batch_size or b1 == stop:
                w.append(np.concatenate(pending_e), np.concatenate(pending_x))
                pending_e, pending_x, n_pending = [], [], 0
            bar.update(b1 - b0)
    return out_p
