"""``generate_sample``: Pythia 8 Z+jet unfolding pairs, on several processes, cached on disk.

The block, worker and cache machinery here (:class:`BlockJob`, :func:`run_blocks`,
:func:`cache_key`, :func:`cache_dir`) is shared with the dijet samples of
:mod:`physgen.events.dijet`; what a block is reduced to is the job's ``reduce`` function.

A run of ``n`` rows with seed ``s`` generates blocks ``k = 0, 1, 2, ...`` of
:data:`~physgen.events.sample.BLOCK_EVENTS` events (block ``k`` is seeded by ``(s, config,
k)``, :func:`~physgen.events.sample.process_block`), keeps the events passing gen or reco,
concatenates the blocks in order and stops after the first ``n`` rows. Blocks run in order
on ``workers`` spawned processes (a few blocks ahead, results taken back in block order),
so the output is the same bytes for any number of workers.

Cache: a finished sample is stored as
``<cache>/events/<config>-<n>-<seed>-<key>.h5`` where ``<cache>`` is ``$PHYSGEN_CACHE``,
else ``$XDG_CACHE_HOME/physgen``, else ``~/.cache/physgen``, and ``<key>`` is a hash of
everything that fixes the bytes: all Pythia settings, the Pythia version, the detector
parameters, the selection, the block size and :data:`~physgen.events.sample.
EVENTS_CODE_VERSION`. A later call with the same arguments reads it back (a cache file that
cannot be read is regenerated).

Speed (one core, the other core busy): 100-130 generated events/s, 75-95 leading
particle-level jets with pT > 200 GeV per second, everything included (Pythia's event
generation is about 75 % of the time, the observables 15 %, the clustering 5-10 %); the
``nature`` configuration is about twice as fast (fewer particles).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import logging
import math
import multiprocessing
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import numpy as np

from physgen._optional import require
from physgen._version import __version__
from physgen.checks import check_seed, check_workers
from physgen.errors import ConfigError, DataFormatError
from physgen.events.detector import DetectorResponse
from physgen.events.jets import JET_RADIUS, JET_Y_MAX
from physgen.events.pythia import (
    PARTICLE_ETA_MAX,
    PythiaGenerator,
    check_settings,
    config_tag,
    derive_seed,
    pythia_version,
    resolved_settings,
)
from physgen.events.sample import (
    BLOCK_EVENTS,
    DUMMY,
    EVENTS_CODE_VERSION,
    JET_PT_MIN,
    MATCH_DR,
    BlockRows,
    EventSample,
    process_block,
    read_sample,
    storable_attrs,
    write_sample,
)
from physgen.outputs import atomic_path, check_output, raise_if_interrupted

__all__ = [
    "BlockJob",
    "cache_dir",
    "cache_key",
    "cache_path",
    "check_request",
    "fastjet_version",
    "generate_sample",
    "read_cached",
    "run_blocks",
]

log = logging.getLogger(__name__)

#: Rows per generated event, to size the first request (measured: 0.70-0.75).
_ROWS_PER_EVENT = 0.7


class _Rows(Protocol):
    """What a reduced block must tell the runner."""

    @property
    def n_rows(self) -> int: ...


R = TypeVar("R", bound=_Rows)


@dataclass(frozen=True)
class BlockJob(Generic[R]):
    """Everything a worker needs to make any block of a run (picklable; equal jobs share
    one initialised Pythia per process).

    Attributes:
        config: Configuration or process name; it enters the seeds
            (:func:`~physgen.events.pythia.config_tag`) and the progress bar.
        settings: All Pythia settings.
        seed: Run seed.
        reduce: Module-level function ``(generator, job, block) -> rows`` that generates
            block ``block`` and reduces it to the rows written (``n_rows`` of them).
        label: What was asked for, for the message of a failed Pythia init.
        detector: The detector response, if the sample has a detector level.
    """

    config: str
    settings: tuple[str, ...]
    seed: int
    reduce: Callable[[PythiaGenerator, BlockJob[R], int], R]
    label: str = ""
    detector: DetectorResponse | None = None

    @property
    def entropy(self) -> tuple[int, int]:
        return (self.seed, config_tag(self.config))


def _zjet_block(generator: PythiaGenerator, job: BlockJob[BlockRows], block: int) -> BlockRows:
    detector = job.detector if job.detector is not None else DetectorResponse()
    return process_block(generator, detector, job.entropy, block)


def _zjet_job(
    config: str, settings: tuple[str, ...], seed: int, extra: tuple[str, ...]
) -> BlockJob[BlockRows]:
    label = " ".join([f"--config {config}", *(f"--set '{s}'" for s in extra)])
    return BlockJob(config, settings, seed, _zjet_block, label, DetectorResponse())


def check_request(n: Any, seed: Any, workers: Any) -> tuple[int, int, int]:
    """``(n, seed, workers)`` checked: ``n >= 1`` rows, a seed in ``[0, 2**63)``, ``workers >= 1``.

    Raises:
        ConfigError: One line naming the option.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ConfigError(f"--n: expected an integer >= 1 (rows to write), got {n!r}")
    seed = check_seed(seed)
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"--workers: expected an integer >= 1, got {workers!r}")
    return int(n), seed, workers


def fastjet_version() -> str:
    """The installed ``fastjet`` version, ``"unknown"`` if absent."""
    try:
        import importlib.metadata

        return importlib.metadata.version("fastjet")
    except Exception:  # pragma: no cover - only the version string is lost
        return "unknown"


def cache_dir() -> Path:
    """``$PHYSGEN_CACHE/events``, else ``$XDG_CACHE_HOME/physgen/events``, else
    ``~/.cache/physgen/events`` (not created here)."""
    root = os.environ.get("PHYSGEN_CACHE")
    if root:
        return Path(root).expanduser() / "events"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "physgen" / "events"


def _provenance(job: BlockJob[BlockRows], extra: tuple[str, ...]) -> dict[str, Any]:
    """Attributes that fix the output (the cache key hashes them), without n and seed."""
    detector = job.detector if job.detector is not None else DetectorResponse()
    return {
        "generator": "physgen pythia (Pythia 8 + FastJet)",
        "process": "pp -> Z(->nu nu) + jet, 13 TeV, pTHatMin 150 GeV",
        "config": job.config,
        "settings": list(job.settings),
        "extra_settings": list(extra),
        "pythia_version": pythia_version(),
        "fastjet_version": fastjet_version(),
        "events_code_version": EVENTS_CODE_VERSION,
        "block_events": BLOCK_EVENTS,
        "particle_level": f"visible final state (no neutrinos), |eta| < {PARTICLE_ETA_MAX}",
        "detector": detector.config(),
        "jets": f"anti-kT R={JET_RADIUS}, E-scheme; leading = hardest with |y| < {JET_Y_MAX}",
        "jet_pt_min_gev": JET_PT_MIN,
        "jet_y_max": JET_Y_MAX,
        "match_dr": MATCH_DR,
        "dummy_value": DUMMY,
        "units": "m: GeV; M: count; w, tau21, zg, lnrho: dimensionless; gen_pt, reco_pt: GeV",
        "conventions": (
            "one row per event passing gen or reco; pass_reco requires dR(reco, gen) < "
            f"{MATCH_DR} when both pass; an unmatched event gives two rows (gen-only miss, "
            "reco-only fake; n_unmatched events); "
            f"failing levels hold {DUMMY}"
        ),
    }


def cache_key(provenance: dict[str, Any]) -> str:
    """12 hex digits of a hash of the provenance (all but the FastJet version)."""
    fixed = {k: v for k, v in provenance.items() if k not in ("fastjet_version",)}
    text = json.dumps(fixed, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _settings(
    config: str, extra_settings: Sequence[str] | str
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``(all settings, the user's extra settings)``, both in normal form
    (:func:`~physgen.events.pythia.parse_setting`: ``"Key = value"``), so that spellings of
    one setting share a cache key; a bare string is one setting, not its characters.

    Raises:
        ConfigError: Unknown config or a malformed setting.
    """
    extra = (extra_settings,) if isinstance(extra_settings, str) else tuple(extra_settings)
    settings = resolved_settings(config, extra)
    return settings, settings[len(settings) - len(extra) :]


def cache_path(config: str, n: int, seed: int, extra_settings: Sequence[str] | str = ()) -> Path:
    """Where :func:`generate_sample` caches this request (see the module docstring).

    Raises:
        ConfigError: Unknown config or a malformed setting.
    """
    settings, extra = _settings(config, extra_settings)
    key = cache_key(_provenance(_zjet_job(config, settings, seed, extra), extra))
    return cache_dir() / f"{config}-{n}-{seed}-{key}.h5"


# ------------------------------------------------------------------ workers

_MAKERS: dict[BlockJob[Any], PythiaGenerator] = {}


def _generator(job: BlockJob[Any]) -> PythiaGenerator:
    gen = _MAKERS.get(job)
    if gen is None:
        _MAKERS.clear()
        gen = PythiaGenerator(job.settings, derive_seed(*job.entropy), job.label)
        _MAKERS[job] = gen
    return gen


def _worker_init() -> None:
    # Ctrl-C reaches the whole process group: the parent handles it and ends the pool
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_block(job: BlockJob[R], block: int) -> R:
    """One block in a worker process (initialises Pythia on its first block)."""
    return job.reduce(_generator(job), job, block)


def _main_is_importable() -> bool:
    """False when ``__main__`` came from stdin: spawned workers could not re-import it."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if path is None or getattr(main, "__spec__", None) is not None:
        return True
    return Path(path).is_file()


def _blocks(job: BlockJob[R], workers: int) -> Generator[R, None, None]:
    """Blocks 0, 1, 2, ... in order, made on ``workers`` processes (endless)."""
    if workers == 1:
        gen = _generator(job)
        k = 0
        while True:
            yield job.reduce(gen, job, k)
            k += 1
    ctx = multiprocessing.get_context("spawn")
    pool = ctx.Pool(workers, initializer=_worker_init)
    try:
        pending: collections.deque[Any] = collections.deque()
        k = 0
        while True:
            while len(pending) < 2 * workers:
                pending.append(pool.apply_async(_worker_block, (job, k)))
                k += 1
            head = pending[0]
            while not head.ready():
                head.wait(0.25)
                raise_if_interrupted()
            pending.popleft()
            yield head.get()
    finally:
        pool.terminate()
        pool.join()


def _run(job: BlockJob[R], n: int, workers: int, progress: bool | None) -> tuple[list[R], int]:
    from tqdm.auto import tqdm

    kept: list[R] = []
    rows = 0
    blocks = _blocks(job, workers)
    try:
        with tqdm(
            total=n,
            unit="event",
            desc=f"pythia ({job.config})",
            disable=None if progress is None else not progress,
            smoothing=0.05,
        ) as bar:
            for block in blocks:
                raise_if_interrupted()
                take = min(block.n_rows, n - rows)
                kept.append(block)
                rows += take
                bar.update(take)
                if rows >= n:
                    break
    finally:
        blocks.close()  # ends the worker pool now, not when garbage collected
    return kept, rows


def run_blocks(
    job: BlockJob[R], n: int, workers: int, progress: bool | None, rows_per_block: float
) -> list[R]:
    """Blocks ``0, 1, 2, ...`` of ``job`` until they hold ``n`` rows, in block order.

    Args:
        job: The run.
        n: Rows wanted (>= 1).
        workers: Processes (>= 1; capped at the CPUs and at the blocks expected); the
            blocks do not depend on it.
        progress: Progress bar on stderr (None: only on a terminal; False: never).
        rows_per_block: Expected rows per block (sizes the worker cap only).

    Returns:
        The blocks; the last one may hold more rows than needed.
    """
    workers = check_workers(workers, max(1, math.ceil(n / rows_per_block)))
    if workers > 1 and not _main_is_importable():
        log.warning("workers=%d: __main__ cannot be re-imported; using 1 (same output)", workers)
        workers = 1
    log.info("generating %d %s events (seed %d) on %d worker(s)", n, job.config, job.seed, workers)
    blocks, _ = _run(job, n, workers, progress)
    return blocks


def _assemble(blocks: list[BlockRows], n: int) -> tuple[dict[str, np.ndarray[Any, Any]], int, int]:
    """The first ``n`` rows, the events generated up to the last one, the unmatched count."""
    offsets = np.cumsum([0] + [b.n_events for b in blocks[:-1]])
    arrays = {
        "gen": np.concatenate([b.gen for b in blocks])[:n],
        "reco": np.concatenate([b.reco for b in blocks])[:n],
        "pass_gen": np.concatenate([b.pass_gen for b in blocks])[:n],
        "pass_reco": np.concatenate([b.pass_reco for b in blocks])[:n],
        "gen_pt": np.concatenate([b.gen_pt for b in blocks])[:n],
        "reco_pt": np.concatenate([b.reco_pt for b in blocks])[:n],
        "event": np.concatenate([b.event + o for b, o in zip(blocks, offsets)])[:n],
    }
    um = np.concatenate([b.unmatched for b in blocks])[:n] & arrays["pass_gen"]
    unmatched = int(um.sum())  # events (their gen-only rows)
    n_generated = int(arrays["event"][-1]) + 1
    return arrays, n_generated, unmatched


T = TypeVar("T")


def read_cached(path: Path, reader: Callable[[Path], T]) -> T | None:
    """``reader(path)``, or None if there is no such file or it cannot be read (a warning)."""
    if not path.is_file():
        return None
    try:
        return reader(path)
    except DataFormatError as exc:
        log.warning("cache file %s is unreadable (%s): generating it again", path, exc)
        return None


def _load_cached(path: Path) -> EventSample | None:
    return read_cached(path, read_sample)


def generate_sample(
    config: str = "sim",
    n: int = 10_000,
    seed: int = 0,
    workers: int = 1,
    extra_settings: Sequence[str] | str = (),
    cache: bool = True,
    out: str | Path | None = None,
    progress: bool | None = None,
) -> EventSample:
    """Z(→νν)+jet events as unfolding pairs of the six leading-jet observables.

    Args:
        config: ``"sim"`` (Pythia's default tune) or ``"nature"`` (the variation of
            :mod:`physgen.events.pythia`).
        n: Rows to produce: events passing gen or reco (>= 1); about 3 ``n`` events are
            generated.
        seed: Run seed (``0 <= seed < 2**63``): same seed, same bytes.
        workers: Processes (>= 1; capped at the CPUs); the output does not depend on it.
        extra_settings: Pythia settings ``"Key = value"`` applied after the
            configuration's (not ``Random:seed``/``Random:setSeed``); a single string is
            one setting. Spacing around ``=`` does not matter (nor for the cache key).
        cache: Read the sample from, or store it in, the cache (:func:`cache_dir`).
        out: Also write the sample to this HDF5 file (atomically; its folder must exist).
        progress: Progress bar on stderr (None: only on a terminal; False: never).

    Returns:
        The sample; ``path`` is ``out``, else the cache file, else None.

    Raises:
        ConfigError: Unknown config, ``n < 1``, bad seed or workers, a setting Pythia
            rejects (named), or an init failure; raised before anything is written.
        MissingDependencyError: pythia8mc, fastjet or awkward missing
            (``pip install 'physgen[events]'``).
    """
    n, seed, workers = check_request(n, seed, workers)
    settings, extra = _settings(config, extra_settings)
    out_path = check_output(out) if out is not None else None
    require("pythia8mc", "events", "Pythia 8 events")
    require("fastjet", "events", "jet clustering")
    require("awkward", "events", "jet clustering")
    check_settings(settings)

    job = _zjet_job(config, settings, seed, extra)
    provenance = _provenance(job, extra)
    key = cache_key(provenance)
    cached = cache_dir() / f"{config}-{n}-{seed}-{key}.h5" if cache else None
    sample = _load_cached(cached) if cached is not None else None
    if sample is not None and cached is not None:
        log.info("read %d events from the cache %s", len(sample), cached)
        if out_path is not None:
            with atomic_path(out_path) as tmp:
                shutil.copyfile(cached, tmp)
        return dataclasses.replace(sample, path=out_path or cached, from_cache=True)

    t0 = time.perf_counter()
    blocks = run_blocks(job, n, workers, progress, _ROWS_PER_EVENT * BLOCK_EVENTS)
    arrays, n_generated, n_unmatched = _assemble(blocks, n)
    elapsed = time.perf_counter() - t0
    attrs = storable_attrs(
        {
            **provenance,
            "seed": seed,
            "n": n,
            "n_generated": n_generated,
            "n_unmatched": n_unmatched,
            "settings_hash": key,
            "physgen_version": __version__,
        }
    )
    sample = EventSample(
        gen=arrays["gen"],
        reco=arrays["reco"],
        pass_gen=arrays["pass_gen"],
        pass_reco=arrays["pass_reco"],
        weight=np.ones(n),
        gen_pt=arrays["gen_pt"],
        reco_pt=arrays["reco_pt"],
        event=arrays["event"],
        attrs=attrs,
        elapsed_s=elapsed,
    )
    log.info(
        "%d events generated in %.1f s (%.1f events/s), %d rows",
        n_generated,
        elapsed,
        n_generated / max(elapsed, 1e-9),
        n,
    )
    path: Path | None = None
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        path = write_sample(cached, sample)
    if out_path is not None:
        path = write_sample(out_path, sample)
    return dataclasses.replace(sample, path=path)
