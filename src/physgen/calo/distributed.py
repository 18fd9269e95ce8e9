"""``physgen simulate`` and ``physgen generate`` on a Dask cluster (``--cluster``).

The run is cut into tasks on its existing seed units, every shower of ``simulate`` (own
seed) and every block of :data:`~physgen.calo.shards.SEED_BLOCK` showers of ``generate``
(own generator): task ``i`` of K produces exactly the rows ``Shard(i, K).rows(n, block)``
of the run and writes them to a part file (:class:`physgen.dist.PartsJob`). The driver
reads the parts in order and writes the output through the same writer, with the same
attributes and write blocks, as the single-process run: the file is byte-identical to it,
whatever the number of workers, the order in which tasks finish, or workers killed and
tasks re-run on the way (tested). For ``generate`` "the single-process run" means one with
the workers' one torch thread (``OMP_NUM_THREADS=1``; Dask's nanny sets it): torch's
float32 reductions may split differently over more threads and differ in the last bits
(measured on the production dataset-2 flow with 2 threads: up to 3e-5 relative).

Parts are written with LZF (fast; they live only until the output is written).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from physgen.calo.h5layout import ENERGY_KEY, SHOWER_KEY, decode_attr
from physgen.calo.shards import SEED_BLOCK, Shard
from physgen.errors import ConfigError, DataFormatError

__all__ = [
    "DEFAULT_TASK_SHOWERS",
    "cluster_client",
    "generate_task",
    "read_parts",
    "simulate_parts",
    "simulate_task",
    "task_rows",
]

#: Showers per task by default: ``simulate`` (each shower its own seed) and ``generate``
#: (whole seed blocks).
DEFAULT_TASK_SHOWERS = {"simulate": 100, "generate": 10 * SEED_BLOCK}
#: Compression of the temporary part files.
PART_COMPRESSION = "lzf"


@contextlib.contextmanager
def cluster_client(cluster: Any) -> Iterator[Any]:
    """A client for ``cluster``: a ``--cluster`` string, a :class:`physgen.dist.ClusterSpec`,
    or a ``distributed.Client`` (used as is, not closed)."""
    from physgen.dist import ClusterSpec, open_client, parse_cluster

    if hasattr(cluster, "submit"):
        yield cluster
        return
    spec = cluster if isinstance(cluster, ClusterSpec) else parse_cluster(str(cluster))
    with open_client(spec) as client:
        yield client


def task_rows(n: int, task_showers: int, block: int) -> list[tuple[int, int]]:
    """Rows ``[start, stop)`` of each task: ``K = ceil(n / task_showers)`` shards of the run,
    cut on ``block`` boundaries (at most one task per block).

    Raises:
        ConfigError: ``task_showers < 1``.
    """
    if task_showers < 1:
        raise ConfigError(f"--task-size: must be >= 1 shower, got {task_showers}")
    n_blocks = -(-n // block)
    k = max(1, min(n_blocks, math.ceil(n / task_showers)))
    return [Shard(i, k).rows(n, block) for i in range(k)]


def part_matches(path: Path, rows: tuple[int, int]) -> bool:
    """A part file of an earlier run is complete and holds ``rows`` of the run."""
    try:
        with h5py.File(path, "r") as f:
            recorded = decode_attr(f.attrs.get("rows"))
            return bool(recorded == list(rows) and f[SHOWER_KEY].shape[0] == rows[1] - rows[0])
    except (OSError, KeyError, ValueError):
        return False


def read_parts(
    parts: Iterator[tuple[int, Path]],
    rows: Sequence[tuple[int, int]],
    energies: npt.NDArray[np.float64],
    chunk: int,
) -> Iterator[tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float32]]]:
    """``(first row, incident energies (b, 1), showers (b, V))`` of the parts in order, in chunks of
    ``chunk`` rows aligned on the run's rows (the last chunk of a part may be shorter).

    ``energies`` are the run's (N,) energies: each part's are checked against them, so a
    part of another run is never merged.

    Raises:
        DataFormatError: A part's rows or energies are not the expected ones.
    """
    for index, path in parts:
        start, stop = rows[index]
        with h5py.File(path, "r") as f:
            e_part, x_part = f[ENERGY_KEY], f[SHOWER_KEY]
            if x_part.shape[0] != stop - start:
                raise DataFormatError(
                    f"{path}: {x_part.shape[0]} showers, expected rows {start}-{stop}"
                )
            for a in range(start, stop, chunk):
                b = min(a + chunk, stop)
                e = np.asarray(e_part[a - start : b - start], dtype=np.float64).reshape(-1, 1)
                if not np.array_equal(e[:, 0], energies[a:b]):
                    raise DataFormatError(
                        f"{path}: incident energies differ from this run's (rows {a}-{b}); "
                        f"remove {path.parent} and run again"
                    )
                yield a, e, np.asarray(x_part[a - start : b - start], dtype=np.float32)


def simulate_task(
    kwargs: dict[str, Any], count: int, index: int, rows: tuple[int, int], path: str
) -> str:
    """Task: rows ``Shard(index, count)`` (= ``rows``) of a ``simulate`` run into ``path``."""
    from physgen.calo.simulate.run import simulate

    simulate(
        **kwargs,
        out=path,
        shard=Shard(index, count),
        workers=1,
        progress=False,
        compression=PART_COMPRESSION,
    )
    return path


def generate_task(
    model: Any,
    energies: npt.NDArray[np.float64],
    seed: int,
    index: int,
    rows: tuple[int, int],
    path: str,
) -> str:
    """Task: ``rows`` (whole seed blocks) of a ``generate`` run into ``path``,
    sampled with one torch thread (whatever the worker's environment: the bytes must not
    depend on how the workers were started)."""
    import torch

    from physgen.calo.generate import sample_blocks
    from physgen.calo.io import ShowerWriter

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    start, stop = rows
    model.eval()
    attrs = {"rows": [start, stop], "seed": seed}
    with ShowerWriter(path, model.codec.n_voxels, compression=PART_COMPRESSION, attrs=attrs) as w:
        for _, e, x in sample_blocks(model, energies, seed, start, stop):
            w.append(e, x)
    return path


def simulate_parts(
    client: Any,
    out: Path,
    task: dict[str, Any],
    attrs: dict[str, Any],
    energies: npt.NDArray[np.float64],
    task_showers: int,
    progress: bool | None,
) -> tuple[Any, Iterator[npt.NDArray[np.float32]]]:
    """Submit a ``simulate`` run's tasks; the job and its showers (float32) in run order.

    Args:
        client: ``distributed.Client``.
        out: The run's output file.
        task: Keyword arguments of :func:`physgen.calo.simulate.run.simulate` for a task
            (all but ``out``, ``shard``, ``workers``, ``progress``, ``compression``).
        attrs: The run's file attributes (its whole provenance: the job's plan).
        energies: The run's incident energies (N,) MeV.
        task_showers: Showers per task.
        progress: Progress bar over all tasks.
    """
    from physgen.dist import PartsJob

    rows = task_rows(len(energies), task_showers, 1)
    job = PartsJob(
        client,
        out,
        {"command": "simulate", **attrs},
        rows,
        simulate_task,
        (task, len(rows)),
        check_part=lambda i, p: part_matches(p, rows[i]),
        desc=f"simulate ({attrs.get('engine', '')})",
        unit="shower",
        progress=progress,
    )
    return job, (x for _, _, x in read_parts(job.run(), rows, energies, 1024))
