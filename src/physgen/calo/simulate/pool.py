"""The worker pool of ``physgen simulate --workers N``: spawned processes that each build the
engine once, signal-safe start and stop (see :func:`start_pool`, :func:`stop_pool`)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.calo.simulate.detector import Detector, get_detector
from physgen.calo.simulate.engine import ShowerEngine, get_engine
from physgen.outputs import Interrupted, interrupt_signal, request_hard_exit

__all__ = ["poll_results", "run_chunk", "start_pool", "stop_pool", "worker_chunk"]

_WORKER: dict[str, Any] = {}


def _build_engine(
    engine: str, detector: str, geometry: str, options: dict[str, Any]
) -> tuple[Detector, ShowerEngine]:
    det = get_detector(detector, geometry=geometry)
    return det, get_engine(engine, det, **options)


def _worker_init(
    engine: str,
    detector: str,
    geometry: str,
    options: dict[str, Any],
    sampling_fraction: float,
    ready: Any = None,
) -> None:
    # The parent handles Ctrl-C and SIGTERM (also when they reach the whole process group)
    # and stops the workers with SIGKILL: a worker that died of the signal by itself could
    # do so holding the pool's queue lock, and the parent's clean-up would wait forever.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):  # blocked while spawning: now handled as above
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    if ready is not None:
        ready.release()
    _WORKER["engine"] = _build_engine(engine, detector, geometry, options)[1]
    _WORKER["sampling_fraction"] = sampling_fraction


def stop_pool(pool: Any) -> None:
    """Stop a pool whose workers ignore SIGTERM: SIGKILL them, then let the pool clean up.

    A killed worker may have held the task queue's lock, on which ``Pool.terminate`` can
    then wait forever; the clean-up runs in a daemon thread given 5 s, and the command
    line leaves with ``os._exit`` so that no exit handler waits on it either.
    """
    for proc in list(getattr(pool, "_pool", [])):
        if proc.exitcode is None:
            proc.kill()
    cleanup = threading.Thread(target=pool.terminate, daemon=True, name="physgen-pool-stop")
    cleanup.start()
    cleanup.join(timeout=5.0)
    if cleanup.is_alive():
        request_hard_exit()
    # a worker the pool started in place of a killed one ignores SIGTERM too, and the
    # interpreter's exit handler would wait for it: kill what is left
    for proc in multiprocessing.active_children():
        proc.kill()
        proc.join(timeout=1.0)


def run_chunk(
    engine: ShowerEngine,
    sampling_fraction: float,
    particle: str,
    energies: npt.NDArray[np.float64],
    seeds: npt.NDArray[np.uint64],
) -> npt.NDArray[np.float32]:
    """Calibrated float32 showers: ``float32(raw_float64 / sampling_fraction)``, in any process."""
    rows = [engine.simulate_one(particle, float(e), int(s)) for e, s in zip(energies, seeds)]
    raw = np.stack(rows).astype(np.float64, copy=False)
    return (raw / sampling_fraction).astype(np.float32)


def worker_chunk(
    args: tuple[str, npt.NDArray[np.float64], npt.NDArray[np.uint64]],
) -> npt.NDArray[np.float32]:
    particle, energies, seeds = args
    return run_chunk(_WORKER["engine"], _WORKER["sampling_fraction"], particle, energies, seeds)


def start_pool(ctx: Any, workers: int, initargs: tuple[Any, ...]) -> Any:
    """A spawned pool whose workers cannot be caught half-started by a signal.

    A terminal's Ctrl-C (or a batch system's SIGTERM) reaches the whole process group; a
    worker still unpickling its start-up data, or whose pipe the parent has just closed,
    would print a traceback. So SIGINT and SIGTERM stay blocked in the parent until every
    worker has installed its own handlers (the workers inherit the blocked mask through
    exec and unblock it in :func:`_worker_init`); a signal that arrives meanwhile is
    delivered to the parent as soon as the block ends, so none is lost.
    """
    blockable = threading.current_thread() is threading.main_thread() and hasattr(
        signal, "pthread_sigmask"
    )
    if not blockable:
        return ctx.Pool(workers, initializer=_worker_init, initargs=initargs)
    # multiprocessing's resource tracker unblocks SIGINT/SIGTERM after starting itself:
    # start it first, so that it does so before the block below rather than inside it
    from multiprocessing import resource_tracker

    # After an interrupt the pool's semaphores may be left to the tracker to unlink (see
    # stop_pool); it does so, and need not warn about it on the user's terminal.
    old = os.environ.get("PYTHONWARNINGS")
    os.environ["PYTHONWARNINGS"] = ",".join(
        w for w in (old, "ignore:resource_tracker:UserWarning") if w
    )
    try:
        resource_tracker.ensure_running()
    finally:
        if old is None:
            os.environ.pop("PYTHONWARNINGS", None)
        else:
            os.environ["PYTHONWARNINGS"] = old
    ready = ctx.Semaphore(0)
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    pool = None
    try:
        pool = ctx.Pool(workers, initializer=_worker_init, initargs=(*initargs, ready))
        # each worker releases once its handlers are in place; a signal that arrives
        # meanwhile ends the wait at once (the workers are then killed, see stop_pool)
        started, deadline = 0, time.monotonic() + 120
        while started < workers and time.monotonic() < deadline:
            if signal.sigpending() & {signal.SIGINT, signal.SIGTERM}:
                break
            if ready.acquire(timeout=0.05):
                started += 1
    finally:
        try:  # a signal that arrived meanwhile is raised here: stop the new pool first
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
        except BaseException:
            if pool is not None:
                stop_pool(pool)
            raise
    return pool


def poll_results(
    results: Any, interrupted: threading.Event, every_s: float = 0.25
) -> Iterator[npt.NDArray[np.float32]]:
    """Ordered results of ``Pool.imap``, waking up regularly to notice an interrupt."""
    while True:
        try:
            yield results.next(timeout=every_s)
        except multiprocessing.TimeoutError:
            if interrupted.is_set():
                raise Interrupted(interrupt_signal()) from None
        except StopIteration:
            return
