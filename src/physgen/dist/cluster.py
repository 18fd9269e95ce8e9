"""Dask clusters from a ``--cluster`` specification: a local one, a running scheduler, or
workers started through a batch system by ``dask-jobqueue``.

Specifications (:func:`parse_cluster`):

* ``local:N`` (or ``local``: one worker per CPU) starts a ``distributed.LocalCluster`` of N
  worker processes with one thread each;
* ``tcp://host:port`` joins a running scheduler
  (``dask scheduler`` on a login node, workers started by hand or by a batch job);
* ``slurm``, ``htcondor`` or ``pbs`` start workers as batch jobs through ``dask-jobqueue``,
  with its options (``queue``, ``cores``, ``memory``, ``walltime``,
  ``job_extra_directives``...) from a YAML file (``--cluster-config``). The file is a flat
  mapping of those options plus ``jobs`` (how many batch jobs to start, default 1), or a
  dask configuration file (``jobqueue: {slurm: {...}}``). Unknown keys are refused before
  anything is started.

Everything here imports ``distributed``/``dask_jobqueue`` lazily (extra ``physgen[dist]``).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import inspect
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from physgen._optional import require
from physgen.errors import ConfigError, PhysgenError

__all__ = [
    "BATCH_SYSTEMS",
    "ClusterSpec",
    "SchedulerTimeoutError",
    "job_script",
    "jobqueue_options",
    "open_client",
    "parse_cluster",
    "require_distributed",
]

log = logging.getLogger(__name__)

#: Batch systems and their ``dask-jobqueue`` cluster classes.
BATCH_SYSTEMS = {"slurm": "SLURMCluster", "htcondor": "HTCondorCluster", "pbs": "PBSCluster"}
#: Keys of a jobqueue YAML that physgen itself reads (not passed to ``dask-jobqueue``).
PHYSGEN_KEYS = ("jobs",)
#: Constructor parameters that are not user options.
_INTERNAL = {"self", "scheduler", "name", "config_name", "base_class_kwargs", "job_kwargs",
             "job_cls", "loop", "asynchronous", "n_workers"}  # fmt: skip
_ADDRESS = re.compile(r"^tcp://\S+$")


class SchedulerTimeoutError(PhysgenError):
    """A Dask scheduler did not answer within the time limit."""


@dataclass(frozen=True)
class ClusterSpec:
    """Where tasks run.

    Attributes:
        kind: ``"local"``, ``"address"`` or a batch system (``"slurm"``, ``"htcondor"``,
            ``"pbs"``).
        workers: Worker processes of a local cluster.
        address: Scheduler address of ``"address"``.
        options: ``dask-jobqueue`` options of a batch system.
        jobs: Batch jobs to start.
        text: The specification as given.
    """

    kind: str
    workers: int = 0
    address: str = ""
    options: Mapping[str, Any] = field(default_factory=dict)
    jobs: int = 1
    text: str = ""

    def describe(self) -> str:
        """One line for logs and provenance."""
        if self.kind == "local":
            return f"local cluster, {self.workers} worker process(es)"
        if self.kind == "address":
            return f"scheduler {self.address}"
        return f"{self.kind} via dask-jobqueue, {self.jobs} job(s)"


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"--cluster-config: cannot read {path}: {exc.strerror or exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"--cluster-config: {path} is not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--cluster-config: {path} must hold a mapping of options")
    return data


def jobqueue_options(system: str) -> set[str]:
    """The option names ``dask-jobqueue`` accepts for ``system`` (cluster and job classes).

    Raises:
        MissingDependencyError: ``dask-jobqueue`` is not installed (names the extra).
    """
    dj = require("dask_jobqueue", "dist", f"batch-system clusters (--cluster {system})")
    cls = getattr(dj, BATCH_SYSTEMS[system])
    names: set[str] = set()
    for c in (*cls.__mro__, *cls.job_cls.__mro__):
        init = c.__dict__.get("__init__")
        if init is None or not c.__module__.startswith("dask_jobqueue"):
            continue  # dask's own base classes: their parameters are set by dask-jobqueue
        names |= {
            p.name
            for p in inspect.signature(init).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        }
    return {n for n in names if n not in _INTERNAL and not n.startswith("_")}


def _batch_options(system: str, config: Path | None) -> tuple[dict[str, Any], int]:
    data = _read_yaml(config) if config is not None else {}
    nested = data.get("jobqueue")
    if isinstance(nested, dict):  # a dask configuration file: only jobqueue.<system> counts
        if system not in nested:
            raise ConfigError(
                f"--cluster-config: {config} has a jobqueue section without {system!r} "
                f"(it has {', '.join(map(str, nested)) or 'nothing'})"
            )
        section = nested[system] or {}
        if not isinstance(section, dict):
            raise ConfigError(f"--cluster-config: {config}: jobqueue.{system} must be a mapping")
        data = dict(section)
    # dask's configuration files spell the keys with hyphens (job-extra-directives)
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    known = jobqueue_options(system)
    for key in data:
        if key in PHYSGEN_KEYS or key in known:
            continue
        close = difflib.get_close_matches(str(key), sorted(known | set(PHYSGEN_KEYS)), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(
            f"--cluster-config: {config}: unknown key {key!r} for {system}{hint}; known: "
            f"{', '.join(sorted(known | set(PHYSGEN_KEYS)))}"
        )
    jobs = data.pop("jobs", 1)
    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ConfigError(f"--cluster-config: jobs must be an integer >= 1, got {jobs!r}")
    return data, jobs


def parse_cluster(text: str, config: str | Path | None = None) -> ClusterSpec:
    """Parse a ``--cluster`` value (and a batch system's ``--cluster-config`` YAML).

    Args:
        text: ``local:N``, ``local``, a scheduler address (``tcp://host:port``) or a batch
            system (``slurm``, ``htcondor``, ``pbs``).
        config: YAML of ``dask-jobqueue`` options; only with a batch system.

    Returns:
        The specification; nothing is started.

    Raises:
        ConfigError: Unparsable specification, a config file where none is used, a YAML
            that cannot be read or holds an unknown key (one line, with the known keys).
        MissingDependencyError: A batch system without ``dask-jobqueue``.
    """
    t = str(text).strip()
    cfg = None if config is None else Path(config)
    if t.lower() in BATCH_SYSTEMS:
        options, jobs = _batch_options(t.lower(), cfg)
        return ClusterSpec(t.lower(), options=options, jobs=jobs, text=t)
    if cfg is not None:
        raise ConfigError(
            f"--cluster-config: only used with a batch system ({', '.join(BATCH_SYSTEMS)}), "
            f"not with --cluster {t}"
        )
    if t == "local":
        return ClusterSpec("local", workers=os.cpu_count() or 1, text=t)
    kind, sep, n = t.partition(":")
    if kind == "local" and sep:
        if not n.isdecimal() or not n.isascii() or int(n) < 1:
            raise ConfigError(
                f"--cluster {t}: local:N needs a number of workers N >= 1, e.g. local:4"
            )
        return ClusterSpec("local", workers=int(n), text=t)
    if _ADDRESS.match(t):
        port = t.rsplit(":", 1)[-1]
        if not (port.isascii() and port.isdecimal()):
            raise ConfigError(f"--cluster {t}: a scheduler address needs a port, e.g. "
                              "tcp://login01:8786")  # fmt: skip
        return ClusterSpec("address", address=t, text=t)
    raise ConfigError(
        f"--cluster {t!r}: expected local:N, a scheduler address such as tcp://host:8786, or "
        f"a batch system ({', '.join(BATCH_SYSTEMS)}) with --cluster-config FILE.yaml"
    )


def _batch_cluster(spec: ClusterSpec, options: Mapping[str, Any] | None = None) -> Any:
    dj = require("dask_jobqueue", "dist", f"batch-system clusters (--cluster {spec.kind})")
    cls = getattr(dj, BATCH_SYSTEMS[spec.kind])
    try:
        return cls(**(spec.options if options is None else options))
    except (ValueError, TypeError, RuntimeError) as exc:  # e.g. cores/memory missing
        msg = str(exc).removeprefix("Cluster failed to start: ")
        raise ConfigError(
            f"--cluster {spec.kind}: dask-jobqueue refused the options: {msg}"
        ) from None


def require_distributed(spec: ClusterSpec) -> None:
    """Raise :class:`~physgen.errors.MissingDependencyError` (naming ``physgen[dist]``)
    unless Dask's ``distributed`` imports."""
    require("distributed", "dist", f"Dask clusters (--cluster {spec.text or spec.kind})")


def job_script(spec: ClusterSpec) -> str:
    """The batch job script ``dask-jobqueue`` would submit for ``spec`` (nothing submitted).

    Raises:
        ConfigError: ``spec`` is not a batch system, or ``dask-jobqueue`` refuses its options.
    """
    if spec.kind not in BATCH_SYSTEMS:
        raise ConfigError(f"--cluster {spec.text}: a job script exists only for a batch system")
    # the scheduler is started here only to render the script: on this machine's loopback,
    # so that a login node's interface (the workers keep theirs) need not exist here
    options = dict(spec.options)
    options["scheduler_options"] = {**dict(options.get("scheduler_options") or {}),
                                    "interface": "lo"}  # fmt: skip
    logs = options.get("log_directory")
    created = logs is not None and not Path(str(logs)).exists()
    cluster = None
    try:
        cluster = _batch_cluster(spec, options)
        return str(cluster.job_script())
    finally:
        if cluster is not None:
            cluster.close()
        if created:  # dask-jobqueue makes it when the cluster is built: printing makes nothing
            with contextlib.suppress(OSError):
                Path(str(logs)).rmdir()


@contextlib.contextmanager
def open_client(spec: ClusterSpec, *, timeout_s: float | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` on ``spec``'s cluster; the cluster (if started here) is
    closed on exit.

    Args:
        spec: From :func:`parse_cluster`.
        timeout_s: How long a scheduler address may take to answer (None: dask's
            ``distributed.comm.timeouts.connect``, 30 s unless configured, e.g. by
            ``DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=10s``).

    Raises:
        SchedulerTimeoutError: The scheduler did not answer in ``timeout_s``.
        MissingDependencyError: ``distributed`` is not installed (names ``physgen[dist]``).
    """
    require_distributed(spec)
    with _quiet_logs(logging.WARNING):
        client, cluster = _connect(spec, timeout_s)
    try:
        with _quiet_logs(logging.WARNING):
            yield client
    finally:
        # closing races the workers' own shutdown: tracebacks of closed connections then
        # say nothing a user needs
        with _quiet_logs(logging.CRITICAL):
            client.close()
            if cluster is not None:
                cluster.close()


@contextlib.contextmanager
def _quiet_logs(level: int) -> Iterator[None]:
    """Dask's and tornado's loggers at ``level`` or above (unless physgen runs verbose)."""
    loggers = [logging.getLogger(n) for n in ("distributed", "tornado", "asyncio")]
    old = [lg.level for lg in loggers]
    if logging.getLogger("physgen").getEffectiveLevel() > logging.DEBUG:
        for lg in loggers:
            lg.setLevel(level)
    try:
        yield
    finally:
        for lg, lv in zip(loggers, old):
            lg.setLevel(lv)


def _local_cluster(workers: int) -> Any:
    from distributed import LocalCluster

    return LocalCluster(
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        silence_logs=logging.ERROR,
    )


def _connect(spec: ClusterSpec, timeout_s: float | None) -> tuple[Any, Any]:
    import dask.config
    from dask.utils import parse_timedelta
    from distributed import Client

    if timeout_s is None:
        timeout_s = float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect")))

    cluster: Any = None
    if spec.kind == "local":
        environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})
        # dask sets MALLOC_TRIM_THRESHOLD_=65536 in its workers, which turns off glibc's
        # adaptive mmap threshold: every large torch temporary is then mmapped and unmapped
        # again (measured: a dataset-2 flow samples 25 % slower). physgen's tasks keep few,
        # large arrays: leave glibc's default.
        environ.pop("MALLOC_TRIM_THRESHOLD_", None)
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            cluster = _local_cluster(spec.workers)
        client = Client(cluster)
    elif spec.kind == "address":
        try:
            client = Client(spec.address, timeout=f"{timeout_s}s")
        except (OSError, TimeoutError, asyncio.TimeoutError) as exc:  # distinct before 3.11
            raise SchedulerTimeoutError(
                f"--cluster {spec.address}: no Dask scheduler answered within {timeout_s:g} s "
                f"({type(exc).__name__}); start one (dask scheduler) or check the address"
            ) from None
    else:
        cluster = _batch_cluster(spec)
        cluster.scale(jobs=spec.jobs)
        client = Client(cluster)
    return client, cluster
