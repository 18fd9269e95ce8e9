"""Streaming passes over a shower sample on two threads, with reused read buffers.

Each thread reads its own batch (h5py serialises the reads) and processes it while the
other computes: numpy, h5py's reads and physgen's compiled kernels release the GIL.

Inside :func:`on_cluster` the batches of a *file* are processed by tasks on a Dask cluster
instead (each task reads its own batch; the file must be visible to the workers), and their
results come back in order: the same per-batch work, folded in the same order, so the
results are identical to the threads' (``physgen evaluate --cluster``).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from physgen.calo.evaluate.features import Sample
from physgen.calo.geometry import Geometry
from physgen.calo.io import open_showers
from physgen.checks import cpu_count
from physgen.errors import DataFormatError

__all__ = ["WORKERS", "batch_reader", "in_threads", "on_cluster"]

_T = TypeVar("_T")
#: Threads of the streaming passes (reading overlaps the arithmetic; more than two
#: gain little, as the passes are bound by memory bandwidth).
WORKERS = min(2, cpu_count())

_LOCAL = threading.local()
#: The ``distributed.Client`` of :func:`on_cluster` (None: threads of this process).
_CLIENT: contextvars.ContextVar[Any] = contextvars.ContextVar("physgen_eval_client", default=None)


@contextlib.contextmanager
def on_cluster(client: Any) -> Iterator[None]:
    """Within the block, :func:`in_threads` runs the batches of files as tasks on ``client``
    (a ``distributed.Client``; None: no change)."""
    token = _CLIENT.set(client)
    try:
        yield
    finally:
        _CLIENT.reset(token)


def _batch_task(
    sample: Path,
    geometry: Geometry,
    batch_size: int | None,
    work: Callable[[int, npt.NDArray[Any], npt.NDArray[Any]], _T],
    i: int,
    j: int,
) -> _T:
    """One batch of a file, read and processed on a cluster worker."""
    with batch_reader(sample, geometry, batch_size) as (_, read):
        e, x = read(i, j)
        return work(i, e, x)


def _on_client(
    client: Any,
    sample: Path,
    geometry: Geometry,
    batch_size: int | None,
    work: Callable[[int, npt.NDArray[Any], npt.NDArray[Any]], _T],
) -> Iterator[_T]:
    """The batches of a file as cluster tasks, results in order, a bounded number in flight."""
    with batch_reader(sample, geometry, batch_size) as (ranges, _):
        pass
    yield from _in_order(
        ranges,
        lambda i, j: client.submit(
            _batch_task, sample, geometry, batch_size, work, i, j, pure=False
        ),
        max(4, 2 * len(client.nthreads())),
    )


def _in_order(
    ranges: list[tuple[int, int]], submit: Callable[[int, int], Any], window: int
) -> Iterator[Any]:
    """Results of ``submit(i, j)`` futures (thread-pool or Dask) for every range, in order,
    at most ``window`` submitted ahead; the rest is cancelled when the consumer stops."""
    pending: deque[Any] = deque()
    try:
        for i, j in ranges:
            pending.append(submit(i, j))
            while len(pending) > window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for fut in pending:
            fut.cancel()


@contextlib.contextmanager
def batch_reader(
    sample: Sample, geometry: Geometry, batch_size: int | None
) -> Iterator[tuple[list[tuple[int, int]], Callable[[int, int], tuple[Any, Any]]]]:
    """Row ranges of a sample and a function that reads one range, safe to call from
    several threads (h5py serialises the reads). A file's showers are read into a
    per-thread buffer reused from batch to batch: fresh 64 MB arrays cost more in page
    faults than the arithmetic."""
    if not isinstance(sample, (str, Path)):
        e_all = np.asarray(sample[0]).reshape(-1, 1)
        x_all = np.asarray(sample[1])
        step = batch_size or max(1, (64 << 20) // max(1, x_all.shape[1] * 8))
        n = len(e_all)
        yield (
            [(i, min(n, i + step)) for i in range(0, n, step)],
            lambda i, j: (
                e_all[i:j],
                x_all[i:j],
            ),
        )
        return
    with open_showers(sample, geometry) as f:
        step = batch_size or f.default_batch_size()
        n = f.n_showers
        ds = f.showers

        def read(i: int, j: int) -> tuple[Any, Any]:
            buf = getattr(_LOCAL, "read_buffer", None)
            if (
                buf is None
                or buf.dtype != ds.dtype
                or buf.shape[1] != ds.shape[1]
                or len(buf) < j - i
            ):
                buf = np.empty((step, ds.shape[1]), dtype=ds.dtype)
                _LOCAL.read_buffer = buf
            try:
                ds.read_direct(buf, np.s_[i:j], np.s_[0 : j - i])
                e = f.energies[i:j]
            except (OSError, RuntimeError) as exc:
                raise DataFormatError(
                    f"{f.path}: cannot read rows {i}-{j} (truncated or corrupt HDF5: {exc})"
                ) from exc
            return e, buf[: j - i]

        yield [(i, min(n, i + step)) for i in range(0, n, step)], read


def in_threads(
    sample: Sample,
    geometry: Geometry,
    batch_size: int | None,
    work: Callable[[int, npt.NDArray[Any], npt.NDArray[Any]], _T],
    workers: int,
) -> Iterator[_T]:
    """``work(offset, e, x)`` for every batch of a sample, in order, on ``workers`` threads.

    Each thread reads its batch and processes it: numpy, h5py's reads and the compiled
    kernels release the GIL, so one thread reads while the other computes. At most
    ``2 * workers`` batches are in flight. Inside :func:`on_cluster`, a file's batches run on
    the cluster instead.
    """
    client = _CLIENT.get()
    if client is not None and isinstance(sample, (str, Path)):
        yield from _on_client(client, Path(sample).resolve(), geometry, batch_size, work)
        return
    with batch_reader(sample, geometry, batch_size) as (ranges, read):

        def task(i: int, j: int) -> _T:
            e, x = read(i, j)
            return work(i, e, x)

        if workers <= 1:
            for i, j in ranges:
                yield task(i, j)
            return
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="physgen-eval") as pool:
            yield from _in_order(ranges, lambda i, j: pool.submit(task, i, j), workers)
