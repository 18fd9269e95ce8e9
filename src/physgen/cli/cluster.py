"""``--cluster`` options shared by ``simulate`` and ``generate``, and ``physgen job-script``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from physgen.cli.conventions import Quiet, Verbose, use_verbosity
from physgen.errors import ConfigError

__all__ = ["Cluster", "ClusterConfig", "TaskSize", "cluster_spec", "job_script"]

Cluster = Annotated[
    str | None,
    typer.Option(
        "--cluster",
        help="Run on a Dask cluster (pip install 'physgen[dist]'): local:N (N worker "
        "processes here), tcp://host:port (a running scheduler), or slurm, htcondor, pbs "
        "(batch jobs through dask-jobqueue, options in --cluster-config). The output is "
        "byte-identical to a run without it (generate: to one with OMP_NUM_THREADS=1, the "
        "workers' torch threads); parts are kept in OUT.parts until the output "
        "is written, and the same command resumes from them.",
    ),
]
ClusterConfig = Annotated[
    Path | None,
    typer.Option(
        "--cluster-config",
        help="YAML of dask-jobqueue options for slurm/htcondor/pbs (queue, cores, memory, "
        "walltime, job_extra_directives...) and jobs (batch jobs to start).",
    ),
]
TaskSize = Annotated[
    int | None,
    typer.Option(
        "--task-size",
        help="Showers per cluster task (default: simulate 100, generate 10000; generate "
        "rounds to whole seed blocks of 1000). Does not change the output.",
    ),
]


def cluster_spec(
    cluster: str | None, config: Path | None, *, workers: int = 1, shard: str | None = None
) -> Any:
    """The parsed ``--cluster`` (None without it), checked against the other options
    before any work.

    Raises:
        ConfigError: An unparsable specification or config, ``--cluster-config`` without
            ``--cluster``, or ``--cluster`` with ``--workers > 1`` or ``--shard``.
    """
    if cluster is None:
        if config is not None:
            raise ConfigError("--cluster-config: needs --cluster slurm, htcondor or pbs")
        return None
    from physgen.dist.cluster import parse_cluster, require_distributed

    spec = parse_cluster(cluster, config)
    require_distributed(spec)
    if workers != 1:
        raise ConfigError("--workers and --cluster: use one (the cluster's workers do the work)")
    if shard is not None:
        raise ConfigError("--shard and --cluster: use one (the cluster runs every shard)")
    return spec


def job_script(
    cluster: Annotated[
        str, typer.Option("--cluster", help="Batch system: slurm, htcondor or pbs.")
    ],
    config: Annotated[
        Path,
        typer.Option("--cluster-config", help="YAML of dask-jobqueue options (and jobs)."),
    ],
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Print the batch job script dask-jobqueue would submit for --cluster (submits nothing).

    Checks a cluster configuration before a long run: every option is known, dask-jobqueue
    accepts them, and the script has the directives you expect.
    """
    from physgen.dist import job_script as build

    use_verbosity(quiet, verbose)
    from physgen.dist import parse_cluster

    typer.echo(build(parse_cluster(cluster, config)), nl=False)
