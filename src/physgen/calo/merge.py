"""Merging shard files into one CaloChallenge file, refusing shards that do not belong together.

Shards come from ``physgen simulate`` or ``physgen generate --shard I/K`` runs. The merged
file keeps, exactly as stored, the attributes that all shards share, and records every
shard's source path, row count, rows in the merged file, seed and full provenance in the
``shards`` attribute (JSON).

When the shards are the complete shard set ``1/K ... K/K`` of one ``generate`` run, in
order, the merged file is that run's unsharded output: the datasets are equal bit for bit
(values, dtypes, shapes, chunks, compression when ``--compression`` is the same), and the
attributes are equal apart from the two that ``merge`` adds, ``merged_from`` and
``shards`` (``shard`` becomes ``"1/1"`` and ``rows`` ``[0, n_total]``, as the unsharded run
writes them).
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
from physgen.calo.io import (
    ShowerWriter,
    check_values,
    iter_batches,
    open_showers,
    raw_attrs,
    read_weights,
)
from physgen.errors import ConfigError, DataFormatError

__all__ = ["ADDED_ATTRS", "MERGE_KEYS", "merge_files"]

log = logging.getLogger(__name__)

#: Provenance attributes that shards of one sample must share (``merge`` refuses
#: shards that differ in any of them unless ``allow_mixed``).
MERGE_KEYS = ("geometry", "particle", "detector", "engine", "model", "run_dir", "units")

#: Attributes that a merged file holds and the unsharded run's file does not.
ADDED_ATTRS = ("merged_from", "shards")


def _shard_info(path: Path, geometry: str | Geometry | None) -> dict[str, Any]:
    with open_showers(path, geometry) as f:
        return {
            "path": f.path,
            "n_showers": f.n_showers,
            "n_voxels": f.n_voxels,
            "dtype": np.dtype(f.showers.dtype),
            "energy_dtype": np.dtype(f.energies.dtype),
            "attrs": dict(f.attrs),
            "raw": raw_attrs(f.handle),
        }


def _same(a: Any, b: Any) -> bool:
    """Two raw attribute values are the same, type included (arrays elementwise)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and bool(np.array_equal(a, b))
    return bool(a == b)


def _check_shards(infos: list[dict[str, Any]], allow_mixed: bool) -> None:
    paths = [i["path"] for i in infos]
    for k, p in enumerate(paths):
        for q in paths[:k]:
            if p.resolve() == q.resolve() or os.path.samefile(p, q):
                raise ConfigError(
                    f"merge: {p} is given twice (as {q}); every shower would be duplicated"
                )
    for k, a in enumerate(infos):
        for b in infos[:k]:
            ra, rb = a["raw"], b["raw"]
            if "seed" in ra and ra.keys() == rb.keys() and all(_same(ra[k], rb[k]) for k in ra):
                raise DataFormatError(
                    f"merge: {a['path']} and {b['path']} record the same seed and provenance, "
                    "so they hold the same showers; every shower would be duplicated"
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


def _shard_label(attrs: dict[str, Any]) -> tuple[int, int] | None:
    """``"2/3"`` -> (2, 3); None if the file records no shard."""
    i, sep, k = str(attrs.get("shard", "")).partition("/")
    if not sep or not i.isdigit() or not k.isdigit():
        return None
    return int(i), int(k)


def _complete_run(infos: list[dict[str, Any]], common: dict[str, Any]) -> int | None:
    """``n_total`` if the shards are shards 1/K..K/K of one run, in order, covering every row."""
    labels = [_shard_label(i["attrs"]) for i in infos]
    if any(lab is None for lab in labels) or "seed" not in common or "n_total" not in common:
        return None
    k = len(infos)
    if labels != [(j + 1, k) for j in range(k)]:
        if len({lab[1] for lab in labels if lab is not None}) == 1:
            order = ", ".join(str(i["attrs"]["shard"]) for i in infos)
            log.warning(
                "merge: shards %s of one run are not the complete set 1/K..K/K in order: the "
                "merged file is not the unsharded run's file",
                order,
            )
        return None
    n_total = int(common["n_total"])
    start = 0
    for info in infos:
        rows = info["attrs"].get("rows")
        if not (isinstance(rows, list) and len(rows) == 2 and rows[0] == start):
            return None
        start = int(rows[1])
        if rows[1] - rows[0] != info["n_showers"]:
            return None
    return n_total if start == n_total else None


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
    detector, engine, model, run directory, units) and the same generator command. Two
    files that record a seed and the same provenance hold the same showers and are
    refused. Shower and incident-energy dtypes are promoted (float32 with float64 gives
    float64; equal dtypes are kept). Every value is checked as by
    :func:`~physgen.calo.io.validate_file` while copying.

    Attributes of the output: every attribute that all shards share, copied as stored;
    ``n_showers``; ``merged_from`` (the shard paths, JSON); ``shards`` (JSON list, one
    entry per shard: ``path``, ``n_showers``, ``rows`` = ``[start, stop)`` of its showers
    in the merged file, ``seed`` (None if not recorded), ``provenance`` = all its
    attributes). For the complete, ordered shard set of one ``generate --shard I/K`` run,
    also ``shard = "1/1"`` and ``rows = [0, n_total]``: the output then differs from the
    unsharded run's file only by :data:`ADDED_ATTRS` (tested).

    Args:
        shards: Shard files, merged in this order.
        out: Output file (its folder must exist).
        geometry: Geometry all shards must match (default: any built-in one).
        compression: ``"gzip"``, ``"lzf"`` or ``None``.
        batch_size: Rows per streamed batch (default about 64 MB).
        clip_negative: Clip negative voxel energies (MeV) to 0 instead of failing.
        allow_mixed: Merge shards that differ in :data:`MERGE_KEYS` or generator.

    Returns:
        The output path.

    Raises:
        DataFormatError: A shard given twice, duplicated showers, disagreeing shards, or
            a bad shard (nothing is left at ``out`` then).
        ConfigError: No shards, or ``out`` is one of the shards or cannot be written.
    """
    if not shards:
        raise ConfigError("merge: give at least one shard file")
    out_p = outputs.check_output(out, "--out", inputs=shards)
    infos = [_shard_info(Path(s), geometry) for s in shards]
    _check_shards(infos, allow_mixed)
    first = infos[0]["raw"]
    common = {
        k: v
        for k, v in first.items()
        if k != "n_showers" and all(k in i["raw"] and _same(i["raw"][k], v) for i in infos[1:])
    }
    n_total = _complete_run(infos, {k: infos[0]["attrs"][k] for k in common})
    if n_total is not None:
        common["shard"] = "1/1"
        common["rows"] = [0, n_total]
    entries = []
    start = 0
    for i in infos:
        entries.append(
            {
                "path": str(i["path"]),
                "n_showers": i["n_showers"],
                "rows": [start, start + i["n_showers"]],
                "seed": i["attrs"].get("seed"),
                "provenance": i["attrs"],
            }
        )
        start += i["n_showers"]
    attrs: dict[str, Any] = {
        **common,
        "merged_from": [str(i["path"]) for i in infos],
        "shards": entries,
    }
    weights = [read_weights(s, geometry) for s in shards]
    if any(w is None for w in weights) and any(w is not None for w in weights):
        have = [str(s) for s, w in zip(shards, weights) if w is not None]
        raise DataFormatError(
            f"merge: only some shards hold per-shower weights ({', '.join(have)}); merge "
            "refined shards only with refined shards"
        )
    dtype = np.result_type(*[i["dtype"] for i in infos])
    energy_dtype = np.result_type(*[i["energy_dtype"] for i in infos])
    with ShowerWriter(
        out_p,
        infos[0]["n_voxels"],
        compression=compression,
        attrs=attrs,
        dtype=dtype,
        energy_dtype=energy_dtype,
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
        if weights[0] is not None:
            w.set_weights(np.concatenate([a for a in weights if a is not None]))
    return out_p
