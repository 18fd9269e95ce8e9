"""Merging shard files into one CaloChallenge file, refusing shards that do not belong together.

Shards come from ``physgen simulate`` or ``physgen generate --shard I/K`` runs; the merged
file keeps what all shards share and records each shard's provenance (path, rows, seed...).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from physgen import outputs
from physgen.calo.geometry import Geometry
from physgen.calo.io import ShowerWriter, check_values, iter_batches, open_showers
from physgen.errors import ConfigError, DataFormatError

__all__ = ["MERGE_KEYS", "merge_files"]

log = logging.getLogger(__name__)

#: Provenance attributes that shards of one sample must share (``merge`` refuses
#: shards that differ in any of them unless ``allow_mixed``).
MERGE_KEYS = ("geometry", "particle", "detector", "engine", "model", "run_dir", "units")


def _shard_info(path: Path, geometry: str | Geometry | None) -> dict[str, Any]:
    with open_showers(path, geometry) as f:
        return {
            "path": f.path,
            "n_showers": f.n_showers,
            "n_voxels": f.n_voxels,
            "dtype": np.dtype(f.showers.dtype),
            "energy_dtype": np.dtype(f.energies.dtype),
            "attrs": dict(f.attrs),
        }


def _check_shards(infos: list[dict[str, Any]], allow_mixed: bool) -> None:
    paths = [i["path"] for i in infos]
    for k, p in enumerate(paths):
        for q in paths[:k]:
            if p.resolve() == q.resolve() or os.path.samefile(p, q):
                raise ConfigError(
                    f"merge: {p} is given twice (as {q}); every shower would be duplicated"
                )
    n_vox = {i["n_voxels"] for i in infos}
    if len(n_vox) > 1:
        detail = ", ".join(f"{i['path'].name}: {i['n_voxels']}" for i in infos)
        raise DataFormatError(f"merge: shards have different voxel counts ({detail})")
    recorded = {str(i["attrs"]["geometry"]) for i in infos if "geometry" in i["attrs"]}
    if len(recorded) > 1:
        raise DataFormatError(f"merge: shards record different geometries {sorted(recorded)}")
    if allow_mixed:
        return
    checks: list[tuple[str, Any]] = [(k, lambda i, k=k: i["attrs"].get(k)) for k in MERGE_KEYS]
    checks.append(("generator", lambda i: str(i["attrs"].get("generator", "")).split(" --")[0]))
    for name, get in checks:
        values = {json.dumps(get(i), sort_keys=True, default=str) for i in infos}
        if len(values) > 1:
            detail = ", ".join(f"{i['path'].name}: {get(i)}" for i in infos)
            raise DataFormatError(
                f"merge: shards differ in {name} ({detail}); pass --allow-mixed to merge anyway"
            )


def merge_files(
    shards: Sequence[str | Path],
    out: str | Path,
    *,
    geometry: str | Geometry | None = None,
    compression: str | None = "gzip",
    batch_size: int | None = None,
    clip_negative: bool = False,
    allow_mixed: bool = False,
) -> Path:
    """Concatenate shard files into one (streaming, atomic).

    The shards must be distinct files with the same voxel count and, unless
    ``allow_mixed``, the same provenance in :data:`MERGE_KEYS` (geometry, particle,
    detector, engine, model, run directory, units) and the same generator command.
    Shower dtypes are promoted (float32 with float64 gives float64). Every value is
    checked as by :func:`validate_file` while copying. The output keeps the attributes
    that all shards share and records each shard's path, row count and full
    provenance in the ``shards`` attribute (JSON).

    Raises:
        DataFormatError: No shards, a shard given twice, disagreeing shards, or a bad
            shard (nothing is left at ``out`` then).
        ConfigError: ``out`` is one of the shards or cannot be written.
    """
    if not shards:
        raise ConfigError("merge: give at least one shard file")
    out_p = outputs.check_output(out, "--out", inputs=shards)
    infos = [_shard_info(Path(s), geometry) for s in shards]
    _check_shards(infos, allow_mixed)
    first = infos[0]["attrs"]
    common = {
        k: v
        for k, v in first.items()
        if k != "n_showers" and all(i["attrs"].get(k, object()) == v for i in infos[1:])
    }
    attrs: dict[str, Any] = {
        **common,
        "merged_from": [str(i["path"]) for i in infos],
        "shards": [
            {"path": str(i["path"]), "n_showers": i["n_showers"], "provenance": i["attrs"]}
            for i in infos
        ],
    }
    dtype = np.result_type(*[i["dtype"] for i in infos])
    with ShowerWriter(
        out_p, infos[0]["n_voxels"], compression=compression, attrs=attrs, dtype=dtype
    ) as w:
        for s in shards:
            offset = 0
            for e, x in iter_batches(s, batch_size, geometry):
                n_neg = check_values(Path(s), e, x, offset, clip_negative)
                if n_neg:
                    log.warning("%s: clipped %d negative voxel energies to 0", s, n_neg)
                    x = np.clip(x, 0, None)
                offset += len(e)
                w.append(e, x)
    return out_p
