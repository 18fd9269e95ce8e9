"""``physgen simulate/generate --cluster``: the same bytes as one process, also when a worker
is SIGKILLed mid-task, and a resume after the driver itself was killed."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from clitools import Run

distributed = pytest.importorskip("distributed")

RUNS = Path(__file__).parents[1] / "fixtures" / "legacy_runs"
SIM = ["simulate", "--geometry", "2", "--particle", "e-", "--energy", "1GeV:100GeV",
       "--engine", "gflash", "--seed", "7", "--no-progress"]  # fmt: skip
GEN = ["generate", str(RUNS / "diffusion-0"), "--energy", "1GeV:100GeV", "--seed", "3",
       "--no-progress"]  # fmt: skip


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cli(*args: object, **kw: Any) -> subprocess.Popen[str]:
    """``physgen ARGS`` in a new process (its own session, so that its group can be killed)."""
    return subprocess.Popen(
        [sys.executable, "-m", "physgen", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kw,
    )


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """References in this process with the workers' one torch thread: torch's float32 sums
    may differ in the last bits with the thread count."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes (one thread each) behind a scheduler the tests can reach."""
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as c,
        Client(c) as client,
    ):
        yield client


def kill_a_busy_worker(client: Any, timeout_s: float = 120) -> int:
    """SIGKILL the process of a worker that is running one of physgen's tasks."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for addr, keys in client.processing().items():
            if any(str(k).startswith("physgen-") for k in keys):
                pid = int(client.run(os.getpid, workers=[addr])[addr])
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(0.02)
    raise AssertionError("no physgen task started on the cluster")


def test_local_cluster_gives_the_single_process_bytes(run: Run, tmp_path: Path) -> None:
    one, two = tmp_path / "one.h5", tmp_path / "two.h5"
    rc, _, err = run(*SIM, "--n", 60, "--out", one)
    assert rc == 0, err
    rc, _, err = run(*SIM, "--n", 60, "--out", two, "--cluster", "local:2", "--task-size", 7)
    assert rc == 0, err
    assert sha(one) == sha(two)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one.h5", "two.h5"]  # parts removed
    g1, g2 = tmp_path / "g1.h5", tmp_path / "g2.h5"
    rc, _, err = run(*GEN, "--n", 2500, "--batch-size", 700, "--out", g1)
    assert rc == 0, err
    rc, _, err = run(*GEN, "--n", 2500, "--batch-size", 700, "--out", g2,
                     "--cluster", "local:2", "--task-size", 1000)  # fmt: skip
    assert rc == 0, err
    assert sha(g1) == sha(g2)
    assert not (tmp_path / "g2.h5.parts").exists()


@pytest.mark.parametrize(
    ("args", "n", "task"),
    [(SIM, 400, 10), (GEN, 6000, 1000)],
    ids=["simulate", "generate"],
)
def test_a_killed_worker_changes_nothing(
    cluster: Any, run: Run, tmp_path: Path, args: list[str], n: int, task: int
) -> None:
    """SIGKILL one worker mid-task: Dask runs its task again, the output has every shower
    once, in order (the bytes of an undisturbed single-process run)."""
    ref, out = tmp_path / "ref.h5", tmp_path / "out.h5"
    rc, _, err = run(*args, "--n", n, "--out", ref)
    assert rc == 0, err
    addr = cluster.scheduler.address
    proc = cli(*args, "--n", n, "--out", out, "--cluster", addr, "--task-size", task)
    killed = kill_a_busy_worker(cluster)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert killed not in cluster.run(os.getpid).values()  # the nanny started a new process
    assert sha(out) == sha(ref)
    with h5py.File(out) as f:
        assert f["showers"].shape[0] == n
    assert not (tmp_path / "out.h5.parts").exists()


def test_resume_after_the_driver_is_killed(run: Run, tmp_path: Path) -> None:
    ref, out = tmp_path / "ref.h5", tmp_path / "out.h5"
    n = 600
    rc, _, err = run(*SIM, "--n", n, "--out", ref)
    assert rc == 0, err
    cmd = [*SIM, "--n", n, "--out", out, "--cluster", "local:2", "--task-size", 10]
    proc = cli(*cmd)
    parts = tmp_path / "out.h5.parts"
    deadline = time.monotonic() + 180
    while len(list(parts.glob("part-*.h5"))) < 3:
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and its local cluster
    proc.wait()
    assert not out.exists()
    written = len(list(parts.glob("part-*.h5")))
    assert 3 <= written < 60
    rc, _, err = run(*cmd)
    assert rc == 0, err
    assert "resuming:" in err and f"of {n // 10} parts already written" in err
    assert sha(out) == sha(ref)
    assert not parts.exists()


def test_parts_of_other_settings_are_not_reused(cluster: Any, tmp_path: Path, caplog: Any) -> None:
    from physgen.calo.simulate.run import simulate

    kw = {"geometry": "2", "particle": "e-", "n": 30, "energy": "10GeV", "engine": "gflash",
          "progress": False}  # fmt: skip
    simulate(out=tmp_path / "ref.h5", seed=1, **kw)
    parts = tmp_path / "out.h5.parts"
    parts.mkdir()
    (parts / "plan.json").write_text('{"plan": "another run"}')
    (parts / "part-000000-of-000003.h5").write_bytes(b"junk")
    simulate(out=tmp_path / "out.h5", seed=1, cluster=cluster, task_showers=10, **kw)
    assert "starting over" in caplog.text
    assert sha(tmp_path / "out.h5") == sha(tmp_path / "ref.h5")
    assert not parts.exists()


def test_task_rows_cover_the_run_once() -> None:
    from physgen.calo.distributed import task_rows

    for n, size, block in [(1, 5, 1), (10, 3, 1), (2500, 1000, 1000), (9999, 1, 1000), (7, 7, 1)]:
        rows = task_rows(n, size, block)
        assert rows[0][0] == 0 and rows[-1][1] == n
        assert all(a < b for a, b in rows)
        assert all(rows[i][1] == rows[i + 1][0] for i in range(len(rows) - 1))
        assert all(a % block == 0 for a, _ in rows)
    assert len(task_rows(10_000, 2500, 1000)) == 4


@pytest.mark.parametrize("name", ["cfm-1", "diffusion-0", "flow-0", "gan-0", "vae-1", "onnx"])
def test_every_family_on_a_client(cluster: Any, tmp_path: Path, name: str) -> None:
    """The library call with a client: models pickled to the workers (an ONNX Runtime model
    by its path), the single-process bytes."""
    from physgen.calo.generate import generate_showers
    from physgen.calo.rundir import load_run

    if name == "onnx":
        pytest.importorskip("onnxruntime")
        from physgen.export import export_onnx, load_onnx

        export_onnx(RUNS / "gan-0", tmp_path / "m.onnx", check_n=50)
        model: Any = load_onnx(tmp_path / "m.onnx")
    else:
        model = load_run(RUNS / name)
    e = np.geomspace(1e3, 1e5, 1500)
    generate_showers(model, tmp_path / "a.h5", energies=e, seed=2, progress=False)
    generate_showers(model, tmp_path / "b.h5", energies=e, seed=2, progress=False,
                     cluster=cluster, task_showers=1000)  # fmt: skip
    assert sha(tmp_path / "a.h5") == sha(tmp_path / "b.h5")


def test_evaluate_per_file_passes_on_the_cluster(cluster: Any, run: Run, tmp_path: Path) -> None:
    """hist and avg-E with the feature passes as cluster tasks: the same results."""
    import json

    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    for path, seed in ((a, 1), (b, 2)):
        rc, _, err = run(*SIM, "--n", 500, "--out", path, "--seed", seed)
        assert rc == 0, err
    common = ["evaluate", a, b, "--geometry", "2", "--mode", "hist,avg-E", "--no-plots",
              "--batch-size", 64]  # fmt: skip
    rc, _, err = run(*common, "--out", tmp_path / "here")
    assert rc == 0, err
    rc, _, err = run(*common, "--out", tmp_path / "there", "--cluster", cluster.scheduler.address)
    assert rc == 0, err
    here, there = (
        json.loads((tmp_path / d / "results.json").read_text()) for d in ("here", "there")
    )
    for r in (here, there):
        r.pop("timing_s")
    assert here == there
    assert here["separation_power_summary"]
    prefixes = cluster.run_on_scheduler(lambda dask_scheduler: list(dask_scheduler.task_prefixes))
    assert "batch_task" in prefixes  # the passes did run on the cluster
