"""The `sbi` package's posterior estimators on given training simulations (bench venv).

Runs in .venv-bench-sbi (see bench/make_sbi_venv.sh), never in physgen's main venv. Reads an .npz
with ``theta`` (N, P), ``x`` (N, D) and ``observations`` (K, D) (``python bench/sbi_tasks.py
simulate`` writes one; an optional ``task`` entry names the sbibm task), trains one of sbi 0.27's
amortised estimators with its default settings, draws ``--n-samples`` posterior samples for
every observation and writes an .npz with

    samples          (K, n_samples, P) float32
    train_cpu_s      training CPU time of this process (time.process_time, all threads)
    train_wall_s     training wall time
    sample_wall_s    (K,) sampling wall time per observation;  sample_cpu_s likewise
    epochs           epochs trained
    plus method, seed, threads, sbi_version, torch_version, n_train

and one JSON line with the same scalars to stdout (sbi's own messages go to stderr).

Methods (sbi 0.27 API):
    npe-maf   sbi.inference.NPE (= NPE_C) with density_estimator="maf" (sbi's default)
    npe-nsf   sbi.inference.NPE with density_estimator="nsf"
    fmpe      sbi.inference.FMPE (flow matching, vector field "mlp", ODE sampling: defaults)

The prior is the task's (from bench/sbi_tasks.py: box uniform or Gaussian) when the task is known
(``--task`` or the npz's ``task``): NPE then rejects samples outside the prior's support
(sbi's default leakage correction), as sbibm's NPE runs did. Without a task, no prior is passed.

    .venv-bench-sbi/bin/python bench/sbi_peer.py --data sims.npz --method npe-maf --seed 1 \
        --n-samples 10000 --out samples.npz --threads 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np

# bench/sbi.py (physgen's side of the benchmark) would shadow the `sbi` package: import
# packages first, and find bench/ modules (sbi_tasks) only after site-packages.
_BENCH = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _BENCH] + [str(_BENCH)]

METHODS = ("npe-maf", "npe-nsf", "fmpe")


class NullTracker:
    """sbi's tracker protocol, doing nothing (its default writes TensorBoard logs to cwd)."""

    log_dir = None

    def log_metric(self, name, value, step=None):
        pass

    def log_metrics(self, metrics, step=None):
        pass

    def log_params(self, params):
        pass

    def add_figure(self, name, figure, step=None):
        pass

    def flush(self):
        pass


def make_prior(task_name: Optional[str]):
    if not task_name:
        return None
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from sbi_tasks import get_task

    return get_task(task_name).torch_prior()


def make_inference(method: str, prior):
    from sbi.inference import FMPE, NPE

    common = dict(prior=prior, show_progress_bars=False, tracker=NullTracker())
    if method == "npe-maf":
        return NPE(density_estimator="maf", **common)
    if method == "npe-nsf":
        return NPE(density_estimator="nsf", **common)
    if method == "fmpe":
        return FMPE(**common)
    raise ValueError(f"unknown method {method!r}; one of {', '.join(METHODS)}")


def run(
    data: str,
    method: str,
    seed: int,
    n_samples: int,
    out: str,
    threads: int,
    task: Optional[str] = None,
    max_observations: Optional[int] = None,
    max_num_epochs: Optional[int] = None,
) -> dict:
    import sbi
    import torch
    from sbi.utils.sbiutils import seed_all_backends

    torch.set_num_threads(threads)
    blob = np.load(data, allow_pickle=False)
    theta = torch.as_tensor(blob["theta"], dtype=torch.float32)
    x = torch.as_tensor(blob["x"], dtype=torch.float32)
    observations = torch.as_tensor(np.atleast_2d(blob["observations"]), dtype=torch.float32)
    if max_observations:
        observations = observations[:max_observations]
    if task is None and "task" in blob.files:
        task = str(blob["task"])
    if theta.shape[0] != x.shape[0]:
        raise ValueError(f"theta has {theta.shape[0]} rows, x {x.shape[0]}")

    seed_all_backends(seed)
    prior = make_prior(task)

    with contextlib.redirect_stdout(sys.stderr):
        inference = make_inference(method, prior)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        train_kwargs = {} if max_num_epochs is None else {"max_num_epochs": max_num_epochs}
        estimator = inference.append_simulations(theta, x).train(**train_kwargs)
        train_cpu, train_wall = time.process_time() - cpu0, time.perf_counter() - wall0
        posterior = inference.build_posterior(estimator)

        samples = np.empty((observations.shape[0], n_samples, theta.shape[1]), np.float32)
        sample_wall = np.empty(observations.shape[0])
        sample_cpu = np.empty(observations.shape[0])
        for k, x_o in enumerate(observations):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            with torch.no_grad():
                s = posterior.sample((n_samples,), x=x_o[None], show_progress_bars=False)
            sample_cpu[k] = time.process_time() - cpu0
            sample_wall[k] = time.perf_counter() - wall0
            samples[k] = s.reshape(n_samples, -1).cpu().numpy()

    epochs = inference._summary.get("epochs_trained", [None])[-1]  # sbi keeps it there
    summary = dict(
        method=method,
        seed=seed,
        threads=threads,
        task=task or "",
        n_train=int(theta.shape[0]),
        n_observations=int(observations.shape[0]),
        n_samples=n_samples,
        epochs=int(epochs) if epochs is not None else -1,
        train_cpu_s=round(train_cpu, 3),
        train_wall_s=round(train_wall, 3),
        sample_wall_s_total=round(float(sample_wall.sum()), 3),
        sample_cpu_s_total=round(float(sample_cpu.sum()), 3),
        sbi_version=sbi.__version__,
        torch_version=torch.__version__,
        finite=bool(np.isfinite(samples).all()),
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        out,
        samples=samples,
        sample_wall_s=sample_wall,
        sample_cpu_s=sample_cpu,
        **{k: v for k, v in summary.items()},
    )
    return summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help=".npz with theta, x, observations")
    parser.add_argument("--method", choices=METHODS, default="npe-maf")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-samples", type=int, default=10_000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument(
        "--task", default=None, help="sbibm task name for the prior (default: the npz's 'task')"
    )
    parser.add_argument(
        "--max-observations",
        type=int,
        default=None,
        help="use only the first K observations (smoke tests)",
    )
    parser.add_argument(
        "--max-num-epochs",
        type=int,
        default=None,
        help="cap on training epochs (smoke tests; default: sbi's, no cap)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    summary = run(
        args.data,
        args.method,
        args.seed,
        args.n_samples,
        args.out,
        args.threads,
        task=args.task,
        max_observations=args.max_observations,
        max_num_epochs=args.max_num_epochs,
    )
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
