"""``--cluster`` specifications, jobqueue YAML, job scripts and the bad-input contract.

Nothing here starts a cluster (see ``test_dask_runs.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clitools import Run, one_line_error
from physgen.dist import ClusterSpec, job_script, jobqueue_options, parse_cluster
from physgen.errors import ConfigError

pytest.importorskip("distributed")
pytest.importorskip("dask_jobqueue")

SIM = ["simulate", "--geometry", "2", "--particle", "e-", "--n", "20", "--energy", "10GeV",
       "--engine", "gflash"]  # fmt: skip


def test_parse_forms(tmp_path: Path) -> None:
    assert parse_cluster("local:3") == ClusterSpec("local", workers=3, text="local:3")
    assert parse_cluster("local").workers >= 1
    a = parse_cluster("tcp://login01:8786")
    assert (a.kind, a.address) == ("address", "tcp://login01:8786")
    cfg = tmp_path / "q.yaml"
    cfg.write_text("queue: short\ncores: 4\nmemory: 8GB\nwalltime: '01:00:00'\njobs: 3\n")
    s = parse_cluster("SLURM", cfg)
    assert (s.kind, s.jobs) == ("slurm", 3)
    assert dict(s.options) == {"queue": "short", "cores": 4, "memory": "8GB",
                               "walltime": "01:00:00"}  # fmt: skip
    # a dask configuration file works as well
    nested = tmp_path / "dask.yaml"
    nested.write_text("jobqueue:\n  pbs:\n    cores: 2\n    memory: 4GB\n    queue: q\n")
    assert dict(parse_cluster("pbs", nested).options) == {"cores": 2, "memory": "4GB", "queue": "q"}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("loca:2", "expected local:N"),
        ("local:0", "N >= 1"),
        ("local:x", "N >= 1"),
        ("tcp://host", "needs a port"),
        ("tcp://host:port", "needs a port"),
        ("", "expected local:N"),
        ("slurmm", "expected local:N"),
    ],
)
def test_unparsable_specs(text: str, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        parse_cluster(text)


@given(st.text(max_size=30))
def test_parse_never_crashes(text: str) -> None:
    """Any text is either a specification or a ConfigError, never another exception."""
    try:
        spec = parse_cluster(text)
    except ConfigError as exc:
        assert "--cluster" in str(exc)
    else:
        assert spec.kind in ("local", "address")


def test_yaml_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("queue: q\ncores: 2\nmemory: 2GB\nwaltime: '1:00:00'\n")
    with pytest.raises(ConfigError, match=r"unknown key 'waltime'.*did you mean 'walltime'"):
        parse_cluster("slurm", bad)
    bad.write_text("cores: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_cluster("slurm", bad)
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        parse_cluster("htcondor", bad)
    bad.write_text("cores: 1\nmemory: 1GB\njobs: 0\n")
    with pytest.raises(ConfigError, match="jobs must be"):
        parse_cluster("slurm", bad)
    bad.write_text("jobqueue:\n  slurm:\n    cores: 1\n")
    with pytest.raises(ConfigError, match="without 'pbs'"):
        parse_cluster("pbs", bad)
    with pytest.raises(ConfigError, match="cannot read"):
        parse_cluster("slurm", tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="only used with a batch system"):
        parse_cluster("local:2", bad)


def test_known_options_are_jobqueue_parameters() -> None:
    for system in ("slurm", "htcondor", "pbs"):
        known = jobqueue_options(system)
        assert {"cores", "memory", "job_extra_directives", "walltime"} <= known or (
            system == "htcondor" and {"cores", "memory", "disk"} <= known
        )
        assert "kwargs" not in known and "scheduler" not in known


def test_slurm_job_script(tmp_path: Path, run: Run) -> None:
    cfg = tmp_path / "slurm.yaml"
    cfg.write_text(
        "queue: gpu\naccount: phys\ncores: 8\nprocesses: 2\nmemory: 32GB\nwalltime: '02:00:00'\n"
        "job_extra_directives: ['--gres=gpu:1']\njobs: 4\n"
    )
    script = job_script(parse_cluster("slurm", cfg))
    for line in ("#SBATCH -p gpu", "#SBATCH -A phys", "#SBATCH --cpus-per-task=8",
                 "#SBATCH -t 02:00:00", "#SBATCH --gres=gpu:1", "--nworkers 2"):  # fmt: skip
        assert line in script, (line, script)
    assert "distributed.cli.dask_worker" in script
    rc, out, err = run("job-script", "--cluster", "slurm", "--cluster-config", cfg)
    assert rc == 0, err
    assert "#SBATCH --gres=gpu:1" in out
    rc, _, err = run("job-script", "--cluster", "local:2", "--cluster-config", cfg)
    one_line_error(rc, err, "--cluster-config")


def test_the_shipped_slurm_recipe_parses() -> None:
    """``examples/slurm/jobqueue.yaml`` of the README builds a job script."""
    cfg = Path(__file__).parents[2] / "examples" / "slurm" / "jobqueue.yaml"
    script = job_script(parse_cluster("slurm", cfg))
    assert script.startswith("#!/usr/bin/env bash") and "#SBATCH" in script


def test_cli_bad_cluster_input_writes_nothing(tmp_path: Path, run: Run) -> None:
    out = tmp_path / "x.h5"
    bad = tmp_path / "bad.yaml"
    bad.write_text("queue: q\nmemroy: 2GB\n")
    cases = [
        (["--cluster", "loca:2"], "--cluster"),
        (["--cluster", "slurm", "--cluster-config", bad], "unknown key 'memroy'"),
        (["--cluster-config", bad], "--cluster-config"),
        (["--cluster", "local:2", "--workers", "2"], "--workers and --cluster"),
        (["--cluster", "local:2", "--shard", "1/2"], "--shard and --cluster"),
    ]
    for extra, needle in cases:
        rc, _, err = run(*SIM, "--out", out, *extra)
        one_line_error(rc, err, needle)
    assert list(tmp_path.iterdir()) == [bad]


def test_scheduler_that_does_not_answer(tmp_path: Path, run: Run) -> None:
    """A closed port: a clear timeout, exit 2, nothing written."""
    import socket

    import dask.config

    with socket.socket() as s:  # a free port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "x.h5"
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        rc, _, err = run(*SIM, "--out", out, "--cluster", f"tcp://127.0.0.1:{port}")
    one_line_error(rc, err, f"tcp://127.0.0.1:{port}", "no Dask scheduler answered within 2 s")
    assert list(tmp_path.iterdir()) == []


def test_the_torchrun_sbatch_script_launches_one_torchrun_per_node() -> None:
    """``examples/slurm/train-torchrun.sbatch``: valid bash; in a 4-node allocation it starts
    torchrun with a c10d rendezvous on the first node (DRY_RUN prints the command)."""
    import subprocess

    script = Path(__file__).parents[2] / "examples" / "slurm" / "train-torchrun.sbatch"
    subprocess.run(["bash", "-n", str(script)], check=True)
    env = {"PATH": "/usr/bin:/bin", "DRY_RUN": "1", "SLURM_NNODES": "4", "SLURM_JOB_ID": "42",
           "SLURM_JOB_NODELIST": "gpu07", "SLURM_GPUS_ON_NODE": "4", "SLURM_CPUS_PER_TASK": "32"}  # fmt: skip
    out = subprocess.run(["bash", str(script), "--data", "d.h5", "--out", "run"], env=env,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert out.split() == [
        "srun", "--ntasks-per-node", "1", "torchrun", "--nnodes", "4", "--nproc-per-node", "4",
        "--rdzv-id", "42", "--rdzv-backend", "c10d", "--rdzv-endpoint", "gpu07:29500",
        "-m", "physgen", "train", "--data", "d.h5", "--out", "run",
    ]  # fmt: skip


def test_dask_config_files_and_odd_specs(tmp_path: Path) -> None:
    """Hyphenated keys of a dask configuration file; non-ASCII digits; other schemes."""
    cfg = tmp_path / "dask.yaml"
    cfg.write_text(
        "distributed:\n  comm:\n    timeouts:\n      connect: 10s\n"
        "jobqueue:\n  slurm:\n    cores: 2\n    memory: 4GB\n    job-extra-directives: ['-C gpu']\n"
    )
    assert dict(parse_cluster("slurm", cfg).options)["job_extra_directives"] == ["-C gpu"]
    cfg.write_text("jobqueue:\n  slurm: 3\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_cluster("slurm", cfg)
    for bad in ("local:²", "tcp://host:8²", "tls://host:8786", "inproc://x"):
        with pytest.raises(ConfigError, match="--cluster"):
            parse_cluster(bad)


def test_a_foreign_parts_folder_is_never_removed(tmp_path: Path) -> None:
    """``OUT.parts`` without physgen's plan.json is somebody's data: refused, kept."""
    from physgen.dist import PartsJob
    from physgen.errors import ConfigError as CE

    keep = tmp_path / "out.h5.parts"
    keep.mkdir()
    (keep / "mine.txt").write_text("data")
    job = PartsJob(None, tmp_path / "out.h5", {"a": 1}, [(0, 1)], print)
    with pytest.raises(CE, match="not a physgen parts folder"):
        next(job.run())
    assert (keep / "mine.txt").read_text() == "data"
