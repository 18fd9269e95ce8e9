"""Generate showers with a trained surrogate into a CaloChallenge file (streaming, sharded).

Randomness is organised in blocks of :data:`SEED_BLOCK` showers: block ``b`` of a run with
seed ``s`` always uses a generator seeded from ``(s, b)`` and is sampled in one model call.
So the output does not depend on ``batch_size`` (rows per write) and the K shards of a
sharded run, merged in order, are the unsharded file.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch

from physgen._version import __version__
from physgen.calo.distributed import DEFAULT_TASK_SHOWERS, cluster_client
from physgen.calo.io import ShowerWriter, open_showers
from physgen.calo.shards import SEED_BLOCK, Shard, parse_shard
from physgen.checks import check_seed
from physgen.errors import ConfigError, DataFormatError
from physgen.models.base import ShowerGenerator
from physgen.outputs import check_output

if TYPE_CHECKING:
    from physgen.calo.refine import ShowerRefiner
    from physgen.export.runtime import OnnxShowerModel

__all__ = ["SEED_BLOCK", "Shard", "generate_showers", "parse_shard", "sample_blocks"]

log = logging.getLogger(__name__)


def _block_generator(seed: int, block: int) -> torch.Generator:
    s = int(np.random.SeedSequence([seed, 0x47454E, block]).generate_state(1)[0])
    return torch.Generator().manual_seed(s)


def sample_blocks(
    model: ShowerGenerator | OnnxShowerModel,
    energies: npt.NDArray[np.float64],
    seed: int,
    start: int,
    stop: int,
) -> Iterator[tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float32]]]:
    """``(first row, energies (b, 1), showers (b, V) float32)`` of each seed block of rows
    ``[start, stop)`` (``start`` on a block boundary) of a run with incident energies
    ``energies`` (N,) MeV: one model call per block, with the block's own generator."""
    for b0 in range(start, stop, SEED_BLOCK):
        b1 = min(b0 + SEED_BLOCK, stop)
        e = energies[b0:b1].reshape(-1, 1)
        g = _block_generator(seed, b0 // SEED_BLOCK)
        x = model(torch.from_numpy(e)).sample(generator=g)
        yield b0, e, x.cpu().numpy().astype(np.float32, copy=False)


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
    cluster: Any = None,
    task_showers: int = DEFAULT_TASK_SHOWERS["generate"],
    refiner: ShowerRefiner | None = None,
) -> Path:
    """Sample showers for given incident energies and write them atomically.

    With ``cluster`` the seed blocks are sampled by tasks on a Dask cluster (the model is
    sent to every worker) and the file written is byte-identical to the single-process
    one (:mod:`physgen.calo.distributed`).

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
        cluster: None (this process), a ``--cluster`` string (``local:4``,
            ``tcp://host:8786``...), a :class:`physgen.dist.ClusterSpec` or a
            ``distributed.Client``. Not with ``shard``.
        task_showers: Showers per cluster task (rounded to whole seed blocks).
        refiner: A DCTR refiner (:mod:`physgen.calo.refine`) for this run: its weights,
            normalised to mean 1 per incident energy over the rows written (the shard's,
            when sharded), go into the ``weights`` dataset, and their effective sample
            size into the attribute ``weights_ess``. The caller checks that the refiner
            belongs to the model (:meth:`~physgen.calo.refine.ShowerRefiner.check_compatible`).

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
    if cluster is not None and shard.count > 1:
        raise ConfigError("--shard and --cluster: use one (the cluster runs all shards)")
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
    with contextlib.ExitStack() as stack:
        source: Iterator[tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float32]]]
        job = None
        if cluster is None:
            source = sample_blocks(model, e_all, seed, start, stop)
        else:
            client = stack.enter_context(cluster_client(cluster))
            job, source = _cluster_blocks(client, model, out_p, e_all, seed, meta, task_showers,
                                          progress)  # fmt: skip
        w = stack.enter_context(
            ShowerWriter(out_p, model.codec.n_voxels, compression=compression, attrs=meta)
        )
        bar = stack.enter_context(
            tqdm(
                total=stop - start,
                disable=True if job is not None else None if progress is None else not progress,
                unit="shower",
                desc="generate",
            )
        )
        pending_e: list[npt.NDArray[np.float64]] = []
        pending_x: list[npt.NDArray[np.float32]] = []
        ratios: list[npt.NDArray[np.float64]] = []
        n_pending = 0
        for b0, e, x in source:
            b1 = b0 + e.shape[0]
            if refiner is not None:
                ratios.append(refiner.ratios(e, x))
            pending_e.append(e)
            pending_x.append(x)
            n_pending += b1 - b0
            if n_pending >= batch_size or b1 == stop:
                w.append(np.concatenate(pending_e), np.concatenate(pending_x))
                pending_e, pending_x, n_pending = [], [], 0
            bar.update(b1 - b0)
        if refiner is not None:
            from physgen.trust.dctr import condition_groups, effective_sample_size, regularise

            groups = condition_groups(e_all[start:stop])
            wts = regularise(np.concatenate(ratios), refiner.reweighter.clip, groups)
            w.set_weights(wts)
            w.add_attrs(
                {
                    "weights_ess_fraction": effective_sample_size(wts) / wts.size,
                    "refiner": refiner.summary(),
                }
            )
    if job is not None:
        job.cleanup()
    return out_p


def _cluster_blocks(
    client: Any,
    model: Any,
    out: Path,
    e_all: npt.NDArray[np.float64],
    seed: int,
    meta: dict[str, Any],
    task_showers: int,
    progress: bool | None,
) -> tuple[Any, Iterator[tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float32]]]]:
    """The seed blocks of the run, sampled by cluster tasks and read back in order."""
    from physgen.calo.distributed import generate_task, part_matches, read_parts, task_rows
    from physgen.dist import PartsJob

    rows = task_rows(e_all.size, task_showers, SEED_BLOCK)
    sampling = {k: getattr(model.config, k) for k in getattr(type(model), "sampling_options", ())}
    plan = {"command": "generate", **meta, "model_state": _model_digest(model), "sampling": sampling,
            "energies_sha256": hashlib.sha256(e_all.tobytes()).hexdigest()}  # fmt: skip
    # replicated on every worker: a dying worker must not take the only copy with it
    args = (client.scatter(model, broadcast=True), client.scatter(e_all, broadcast=True), seed)
    job = PartsJob(client, out, plan, rows, generate_task, args,
                   check_part=lambda i, p: part_matches(p, rows[i]), desc="generate",
                   unit="shower", progress=progress)  # fmt: skip
    return job, read_parts(job.run(), rows, e_all, SEED_BLOCK)


def _model_digest(model: Any) -> str:
    """SHA-256 of the model's weights (torch) or file (ONNX): parts of another model are
    never reused."""
    h = hashlib.sha256()
    path = getattr(model, "path", None)
    if isinstance(path, Path):
        h.update(path.read_bytes())
        return h.hexdigest()
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
