"""The ``physgen simulate`` driver: energies, seeds, workers, and the output file.

:func:`simulate` checks every input before it creates anything, draws the
incident energies from the run seed, derives one seed per shower,

    ``seed_i = SeedSequence([seed, i]).generate_state(1, uint64)[0]``,

runs the showers in chunks on ``workers`` processes, puts them back in index
order, divides the raw active-material energies by the engine's sampling
fraction and streams them into a CaloChallenge file through
:class:`physgen.calo.io.ShowerWriter` (temporary name, renamed on success). Since
every shower depends only on its own seed and blocks are written in a fixed
size, the same seed gives the same bytes with 1 or 16 workers.

Energy specifications: :mod:`physgen.calo.simulate.energies` (re-exported here).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import multiprocessing
import pickle
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen._version import __version__
from physgen.calo.distributed import DEFAULT_TASK_SHOWERS
from physgen.calo.shards import Shard
from physgen.calo.simulate.detector import Detector, get_detector
from physgen.calo.simulate.energies import (
    DS1_ENERGIES_MEV,
    DS1_FREQUENCIES,
    EnergySpec,
    parse_energy_spec,
)
from physgen.calo.simulate.engine import ShowerEngine, available_engines, get_engine
from physgen.calo.simulate.pool import poll_results, run_chunk, start_pool, stop_pool, worker_chunk
from physgen.checks import check_memory, check_seed, check_workers
from physgen.errors import ConfigError
from physgen.outputs import (
    check_free_space,
    check_output,
    deferred_signals,
    raise_if_interrupted,
)

__all__ = [
    "DS1_ENERGIES_MEV",
    "DS1_FREQUENCIES",
    "PARTICLE_ALIASES",
    "EnergySpec",
    "parse_energy_spec",
    "shower_seeds",
    "simulate",
]

log = logging.getLogger(__name__)

#: Accepted particle names and aliases.
PARTICLE_ALIASES = {
    "electron": "electron",
    "e-": "electron",
    "e": "electron",
    "positron": "positron",
    "e+": "positron",
    "photon": "photon",
    "gamma": "photon",
    "g": "photon",
}
_COMPRESSIONS = ("gzip", "lzf", "none")
#: Bytes of float32 showers buffered before one write (fixed, so bytes never depend on workers).
_WRITE_BLOCK_BYTES = 16 << 20


def shower_seeds(seed: int, n: int, start: int = 0) -> npt.NDArray[np.uint64]:
    """Per-shower seeds ``SeedSequence([seed, i]).generate_state(1, uint64)[0]``."""
    return np.array(
        [
            np.random.SeedSequence([seed, i]).generate_state(1, np.uint64)[0]
            for i in range(start, start + n)
        ],
        dtype=np.uint64,
    )


def _chunks(
    particle: str, energies: npt.NDArray[np.float64], seed: int, size: int, offset: int = 0
) -> Iterator[tuple[str, npt.NDArray[np.float64], npt.NDArray[np.uint64]]]:
    """Chunks of ``size`` showers; ``energies[0]`` is shower ``offset`` of the run."""
    for start in range(0, energies.size, size):
        e = energies[start : start + size]
        yield particle, e, shower_seeds(seed, e.size, offset + start)


# -- driver -----------------------------------------------------------------------------


def _main_is_importable() -> bool:
    """False when ``__main__`` came from stdin (``python -``): spawned workers would try to
    re-run a file called ``<stdin>`` and the pool would restart them forever."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None or getattr(main, "__spec__", None) is not None:
        return True  # -c, interactive, or -m module: nothing to re-import / importable
    return Path(path).is_file()


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _json_safe(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)


def _engine_config(engine: ShowerEngine) -> dict[str, Any]:
    config = getattr(engine, "config", None)
    out: dict[str, Any] = {}
    if callable(config):
        out.update(config())
    elif isinstance(config, dict):
        out.update(config)
    cuts = getattr(engine, "cuts", None)
    if cuts is not None and "cuts" not in out:
        out["cuts"] = cuts
    safe: dict[str, Any] = json.loads(json.dumps(out, sort_keys=True, default=_json_safe))
    return safe


#: Bytes of memory per requested shower before any is simulated: the incident
#: energy (float64), its seed (uint64) and the sampler's temporaries.
_BYTES_PER_SHOWER = 32


def _check_inputs(n: Any, seed: Any, workers: Any, compression: str | None, out: Path) -> str:
    if not _is_int(n) or n <= 0:
        raise ConfigError(f"--n: expected a positive number of showers, got {n!r}")
    check_memory(n * _BYTES_PER_SHOWER, "--n", f"the incident energies and seeds of {n} showers")
    check_seed(seed)
    if not _is_int(workers) or workers < 1:
        raise ConfigError(f"--workers: expected an integer >= 1, got {workers!r}")
    comp = "none" if compression is None else str(compression).lower()
    if comp not in _COMPRESSIONS:
        raise ConfigError(
            f"--compression: expected one of {', '.join(_COMPRESSIONS)}, got {compression!r}"
        )
    check_output(out, "--out")
    return comp


def simulate(
    geometry: str,
    particle: str,
    n: int,
    energy: str | EnergySpec,
    seed: int,
    out: str | Path,
    engine: str = "cascade",
    workers: int = 1,
    compression: str | None = "gzip",
    progress: bool = True,
    detector: str | None = None,
    engine_options: dict[str, Any] | None = None,
    shard: Shard = Shard(),
    cluster: Any = None,
    task_showers: int = DEFAULT_TASK_SHOWERS["simulate"],
) -> Path:
    """Simulate ``n`` showers and write them to a CaloChallenge HDF5 file.

    With ``shard`` only that shard's rows of the ``n``-shower run are simulated and
    written (every shower has its own seed, so shards are cut on single rows); shards
    ``1/K ... K/K`` merged in order with :func:`physgen.calo.merge.merge_files` hold the
    unsharded run's energies and showers.

    Args:
        geometry: Readout geometry (``"2"``, ``"3"``, ``"1-photons"``, ``"calogan"``).
        particle: ``"electron"``, ``"positron"`` or ``"photon"`` (aliases e-, e+, gamma).
        n: Number of showers (> 0).
        energy: Energy specification (see :func:`parse_energy_spec`).
        seed: Run seed (>= 0); fixes the energies and every shower.
        out: Output file; its folder must exist; replaced atomically on success.
        engine: ``"cascade"`` or ``"gflash"``.
        workers: Processes to use (results do not depend on it).
        compression: ``"gzip"``, ``"lzf"`` or ``"none"``.
        progress: Show a tqdm bar (only on a terminal).
        detector: Detector name (default: the one behind ``geometry``).
        engine_options: Extra keyword arguments for the engine's constructor.
        shard: Which rows of the run to produce (default: all); recorded as ``shard``
            (``"I/K"``), ``rows`` (``[start, stop)``) and ``n_total`` attributes.
        cluster: Run on a Dask cluster instead of ``workers`` processes: a ``--cluster``
            string (``local:4``, ``tcp://host:8786``...), a :class:`physgen.dist.ClusterSpec`
            or a ``distributed.Client``; tasks of ``task_showers`` showers write parts
            that are merged in order into a file byte-identical to the single-process one
            (:mod:`physgen.calo.distributed`). Not with ``shard``.
        task_showers: Showers per cluster task.

    Returns:
        The path written.

    Raises:
        PhysgenError: ConfigError/SimulationError/GeometryError on bad input (also a
            shard with no rows, when ``n`` < K), raised before any file is created.
    """
    out = Path(out)
    comp = _check_inputs(n, seed, workers, compression, out)
    start, stop = shard.check(n, block=1)
    if cluster is not None and shard.count > 1:
        raise ConfigError("--shard and --cluster: use one (the cluster runs all shards)")
    spec = parse_energy_spec(energy)
    particle_name = PARTICLE_ALIASES.get(str(particle).strip().lower())
    if particle_name is None:
        raise ConfigError(
            f"--particle: unknown particle {particle!r}; expected electron, positron or photon"
        )
    if engine not in available_engines():
        raise ConfigError(
            f"--engine: unknown engine {engine!r}; choose one of {', '.join(available_engines())}"
        )
    options = dict(engine_options or {})
    det, eng = _engine(engine, detector or _default_detector(geometry), geometry, options)
    det.check_request(particle_name, spec.bounds_mev)
    validate = getattr(eng, "validate", None)
    if callable(validate):
        validate(particle_name, spec.bounds_mev)
    sampling_fraction = float(eng.sampling_fraction)
    if not (math.isfinite(sampling_fraction) and sampling_fraction > 0):
        raise ConfigError(
            f"--engine {engine}: sampling fraction must be > 0, got {sampling_fraction}"
        )

    n_total = n
    energies = spec.sample(n, seed)[start:stop]  # the whole run's energies, then this shard's
    n = stop - start
    n_voxels = det.geometry.n_voxels
    attrs = {
        "geometry": det.geometry.name,
        "detector": det.name,
        "particle": particle_name,
        "engine": eng.name,
        "generator": f"physgen simulate --engine {eng.name}",
        "seed": int(seed),
        "energy": spec.text,
        "energy_spec": spec.describe(),
        "sampling_fraction": sampling_fraction,
        "physgen_version": __version__,
        "config": json.dumps(
            {"engine": _engine_config(eng), "detector": det.name, "engine_options": options},
            sort_keys=True,
            default=_json_safe,
        ),
        "n_showers": int(n),
        "shard": f"{shard.index + 1}/{shard.count}",
        "rows": [int(start), int(stop)],
        "n_total": int(n_total),
    }
    if comp == "none":  # the size is known: refuse now rather than at the end
        check_free_space(out, 4.0 * n * n_voxels + 8.0 * n + (1 << 20))
    workers = check_workers(workers, n)
    block = max(1, min(n, _WRITE_BLOCK_BYTES // (4 * n_voxels)))
    chunk = max(1, min(16, math.ceil(n / (4 * workers))))
    log.info(
        "simulating %d %s showers (%s) in %s with %s, %d worker(s)",
        n,
        particle_name,
        spec.describe(),
        det.name,
        eng.name,
        workers,
    )
    from tqdm.auto import tqdm

    from physgen.calo.io import ShowerWriter

    if workers > 1 and not _main_is_importable():
        log.warning(
            "workers=%d: the main program is not a file that spawned worker processes can "
            "re-import (stdin or an interactive session); simulating with 1 worker (same output)",
            workers,
        )
        workers = 1
    t0 = time.perf_counter()
    pool = job = None
    with deferred_signals() as interrupted, contextlib.ExitStack() as stack:
        try:
            if cluster is not None:  # connect (or fail) before anything is written
                from physgen.calo.distributed import cluster_client, simulate_parts

                client = stack.enter_context(cluster_client(cluster))
                task = {"geometry": geometry, "particle": particle_name, "n": n_total,
                        "energy": spec, "seed": int(seed), "engine": engine,
                        "detector": det.name, "engine_options": options}  # fmt: skip
                job, parts = simulate_parts(client, out, task, attrs, energies, task_showers,
                                            progress)  # fmt: skip
            with (
                ShowerWriter(out, n_voxels, compression=comp, attrs=attrs) as writer,
                tqdm(
                    total=n,
                    unit="shower",
                    desc=f"simulate ({eng.name})",
                    disable=None if progress and job is None else True,
                    smoothing=0.05,
                ) as bar,
            ):
                if job is not None:
                    results: Iterator[npt.NDArray[np.float32]] = parts
                elif workers == 1:
                    results = (
                        run_chunk(eng, sampling_fraction, p, e, s)
                        for p, e, s in _chunks(particle_name, energies, int(seed), 1, start)
                    )
                else:
                    ctx = multiprocessing.get_context("spawn")
                    pool = start_pool(
                        ctx, workers, (engine, det.name, geometry, options, sampling_fraction)
                    )
                    raise_if_interrupted()
                    tasks = _chunks(particle_name, energies, int(seed), chunk, start)
                    results = poll_results(pool.imap(worker_chunk, tasks), interrupted)
                buffer: list[npt.NDArray[np.float32]] = []
                buffered = written = 0
                for raw in results:
                    raise_if_interrupted()
                    buffer.append(raw)
                    buffered += raw.shape[0]
                    bar.update(raw.shape[0])
                    while buffered >= block or (buffered and written + buffered == n):
                        rows = np.concatenate(buffer)
                        take = min(block, rows.shape[0])
                        writer.append(energies[written : written + take], rows[:take])
                        written += take
                        buffer = [rows[take:]] if rows.shape[0] > take else []
                        buffered -= take
                raise_if_interrupted()
                if pool is not None:
                    pool.close()
                    pool.join()
                    pool = None
        finally:
            if pool is not None:
                stop_pool(pool)
    if job is not None:
        job.cleanup()
    elapsed = time.perf_counter() - t0
    log.info(
        "wrote %s: %d showers in %.1f s (%.2f showers/s)", out, n, elapsed, n / max(elapsed, 1e-9)
    )
    return out


#: The last detector and engine built in each thread, reused by the next call with the same
#: settings (an engine keeps its scratch buffers between showers; showers depend only on
#: their seeds). Cluster tasks call :func:`simulate` many times per worker thread.
_LAST_ENGINE = threading.local()


def _engine(
    engine: str, detector: str, geometry: str, options: dict[str, Any]
) -> tuple[Detector, ShowerEngine]:
    key = pickle.dumps((engine, detector, str(geometry), sorted(options.items())))
    cached = getattr(_LAST_ENGINE, "value", None)
    if cached is not None and cached[0] == key:
        return cached[1], cached[2]  # type: ignore[no-any-return]
    det = get_detector(detector, geometry=geometry)
    eng = get_engine(engine, det, **options)
    _LAST_ENGINE.value = (key, det, eng)
    return det, eng


def _default_detector(geometry: str) -> str:
    """The built-in detector behind a geometry (raises the detector module's error)."""
    from physgen.calo.simulate.detector import DETECTOR_FOR_GEOMETRY

    name = DETECTOR_FOR_GEOMETRY.get(str(geometry))
    if name is None:
        get_detector(None, geometry=str(geometry))  # raises a one-line SimulationError
    return str(name)
