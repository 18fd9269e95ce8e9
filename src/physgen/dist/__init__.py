"""Scale-out on Dask clusters (extra ``physgen[dist]``): cluster specifications and jobs run
as independent part-writing tasks.

``physgen simulate``/``generate --cluster SPEC`` use these through
:mod:`physgen.calo.distributed`; the output does not depend on the cluster.
"""

from physgen.dist.cluster import (
    BATCH_SYSTEMS,
    ClusterSpec,
    SchedulerTimeoutError,
    job_script,
    jobqueue_options,
    open_client,
    parse_cluster,
)
from physgen.dist.parts import PartsJob, parts_dir

__all__ = [
    "BATCH_SYSTEMS",
    "ClusterSpec",
    "PartsJob",
    "SchedulerTimeoutError",
    "job_script",
    "jobqueue_options",
    "open_client",
    "parse_cluster",
    "parts_dir",
]
