"""Benchmark: physgen's posterior estimators side by side with the `sbi` package on sbibm tasks.

For every task, simulation budget and seed, one training set is drawn with our simulators
(``bench/sbi_tasks.py``, checked against sbibm's) and given to every method:

* ``physgen-flow``: :func:`physgen.sbi.npe` (conditional neural spline flow, NPE);
* ``physgen-cfm``: :func:`physgen.sbi.fmpe` (conditional flow matching, FMPE);
* ``sbi-npe-maf``, ``sbi-npe-nsf``, ``sbi-fmpe``: sbi 0.27 with its defaults, run in the bench
  venv (``bash bench/make_sbi_venv.sh``) by ``bench/sbi_peer.py``.

Each method draws 10,000 posterior samples for each of the 10 sbibm observations; the metric
is sbibm's C2ST against the 10,000 shipped reference samples (``bench/sbi_c2st.py``), averaged
over the observations. Training CPU time (``time.process_time`` of the training process, all
threads) and sampling wall time are recorded. Every (task, budget, seed, method) result is
cached under ``~/.cache/physgen/sbi-bench`` so an interrupted run resumes.

With ``--sbc``, simulation-based calibration of ``physgen-flow`` on two_moons and slcp at the
largest budget, for one flow and for an ensemble of ``--sbc-ensemble`` flows (the
equal-weight mixture, ``physgen.sbi.npe(..., ensemble=k)``): expected coverage at 50/68/95 %
and the figures ``bench/results/sbi_sbc_<task>[_ens<k>].png``.

Usage::

    bash bench/make_sbi_venv.sh && .venv/bin/python bench/sbi_tasks.py export
    python bench/sbi.py --tasks two_moons,slcp --budgets 1000,10000 --seeds 0 --threads 1
    python bench/sbi.py --sbc

Writes ``bench/results/sbi.md`` and ``sbi.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from sbi_c2st import c2st  # noqa: E402
from sbi_tasks import NUM_OBSERVATIONS, TASK_NAMES, get_task  # noqa: E402

RESULTS = BENCH / "results"
CACHE = Path(os.environ.get("PHYSGEN_CACHE", Path.home() / ".cache" / "physgen")) / "sbi-bench"
PEER_PYTHON = BENCH.parent / ".venv-bench-sbi" / "bin" / "python"
PHYSGEN_METHODS = ("physgen-flow", "physgen-cfm")
SBI_METHODS = ("sbi-npe-maf", "sbi-npe-nsf", "sbi-fmpe")
#: Bump when physgen's estimators or this script's protocol change: cached results are stale.
PROTOCOL = 3


def dataset(task_name: str, n: int, seed: int) -> Path:
    """The cached training set (theta, x, observations) of one task, budget and seed."""
    path = CACHE / "data" / f"{task_name}-n{n}-s{seed}.npz"
    if path.is_file():
        return path
    task = get_task(task_name)
    theta, x = task.simulate_dataset(n, seed=10_000 + seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        np.savez(fh, theta=theta, x=x, observations=task.observations(), task=task_name)
    os.replace(tmp, path)
    return path


def run_physgen(method: str, data: Path, seed: int, n_samples: int, threads: int) -> dict[str, Any]:
    """Train a physgen posterior on ``data`` and sample every observation."""
    import torch

    from physgen import sbi

    torch.set_num_threads(threads)
    with np.load(data) as z:
        theta, x, obs, task_name = z["theta"], z["x"], z["observations"], str(z["task"])
    task = get_task(task_name)
    prior = None
    if task.prior_bounds is not None:
        prior = sbi.BoxUniform(task.prior_bounds[0].tolist(), task.prior_bounds[1].tolist())
    model = "flow" if method == "physgen-flow" else "cfm"
    c0, w0 = time.process_time(), time.perf_counter()
    post = sbi.npe(theta, x, prior=prior, model=model, seed=seed, progress=False)
    train_cpu, train_wall = time.process_time() - c0, time.perf_counter() - w0
    samples, times = [], []
    for k in range(obs.shape[0]):
        t = time.perf_counter()
        samples.append(post.sample(obs[k], n_samples, seed=seed + 1 + k))
        times.append(time.perf_counter() - t)
    s = post.estimator.summary
    return {
        "samples": np.stack(samples).astype(np.float32),
        "train_cpu_s": train_cpu,
        "train_wall_s": train_wall,
        "sample_wall_s": times,
        "epochs": s.get("epoch"),
        "steps": s.get("step"),
        "status": s.get("status"),
    }


def run_peer(method: str, data: Path, seed: int, n_samples: int, threads: int) -> dict[str, Any]:
    """Run the sbi package's estimator in the bench venv."""
    if not PEER_PYTHON.is_file():
        raise SystemExit(f"{PEER_PYTHON} missing: run `bash bench/make_sbi_venv.sh` first")
    out = CACHE / "tmp" / f"{data.stem}-{method}-s{seed}.npz"
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(PEER_PYTHON),
        str(BENCH / "sbi_peer.py"),
        "--data",
        str(data),
        "--method",
        method.removeprefix("sbi-"),
        "--seed",
        str(seed),
        "--n-samples",
        str(n_samples),
        "--out",
        str(out),
        "--threads",
        str(threads),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    with np.load(out) as z:
        res = {
            "samples": z["samples"],
            "train_cpu_s": float(z["train_cpu_s"]),
            "train_wall_s": float(z["train_wall_s"]),
            "sample_wall_s": z["sample_wall_s"].tolist(),
            "epochs": int(z["epochs"]),
            "status": "completed",
        }
    out.unlink()
    return res


def evaluate(
    task_name: str, n: int, seed: int, method: str, args: argparse.Namespace
) -> dict[str, Any] | None:
    """One cached (task, budget, seed, method) result with its C2ST per observation.

    The trained method's posterior samples and every observation's C2ST are cached as they
    come (sbibm's C2ST is the expensive part on 10-D tasks: its MLP runs to convergence, minutes
    per observation on one core), so an interrupted run resumes where it stopped. With
    ``--observations k`` only observations 1..k are scored (the table says so)."""
    key = json.dumps([PROTOCOL, task_name, n, seed, method, args.n_samples, args.threads])
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    stem = f"{task_name}-n{n}-s{seed}-{method}-{digest}"
    cached = CACHE / "results" / f"{stem}.json"
    n_obs = min(args.observations, NUM_OBSERVATIONS)
    metric = "c2st_es" if args.c2st_early_stopping else "c2st"
    if cached.is_file() and not args.no_cache:
        done = json.loads(cached.read_text())
        if len(done.get(metric, [])) >= n_obs or args.report_only:
            return done  # type: ignore[no-any-return]
    if args.report_only:
        return None
    samples_file = CACHE / "samples" / f"{stem}.npz"
    partial = CACHE / "results" / f".{stem}.partial.json"
    if samples_file.is_file() and partial.is_file() and not args.no_cache:
        out = json.loads(partial.read_text())
        samples = np.load(samples_file)["samples"]
    else:
        data = dataset(task_name, n, seed)
        runner = run_physgen if method in PHYSGEN_METHODS else run_peer
        res = runner(method, data, seed, args.n_samples, args.threads)
        samples = np.asarray(res["samples"], np.float64)
        samples_file.parent.mkdir(parents=True, exist_ok=True)
        np.savez(samples_file, samples=samples)
        out = {k: v for k, v in res.items() if k != "samples"}
        out.update(task=task_name, n=n, seed=seed, method=method, c2st=[])
        _write_json(partial, out)
    if cached.is_file() and not args.no_cache:  # the other metric is already there
        out = {**json.loads(cached.read_text()), **{metric: out.get(metric, [])}}
    task = get_task(task_name)
    scores: list[float] = list(out.get(metric, []))
    for k in range(len(scores) + 1, n_obs + 1):
        _, ref, _ = task.reference(k)
        es = args.c2st_early_stopping
        scores.append(float(c2st(ref, samples[k - 1], seed=k, early_stopping=es)))
        out[metric] = scores
        _write_json(partial, out)
    _write_json(cached, out)
    print(
        f"{task_name:17s} n={n:<7d} seed={seed} {method:13s} {metric}={np.mean(scores):.3f} "
        f"({len(scores)} obs.) train CPU {out['train_cpu_s']:.0f} s",
        flush=True,
    )
    return out


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(obj))
    os.replace(tmp, path)


def run_sbc(args: argparse.Namespace, budget: int) -> list[dict[str, Any]]:
    """Simulation-based calibration of physgen-flow (one flow and an ensemble) on two_moons
    and slcp."""
    import torch

    from physgen import sbi

    torch.set_num_threads(args.threads)
    rows = []
    ensembles = sorted({1, args.sbc_ensemble})
    for name, k in ((t, e) for t in ("two_moons", "slcp") for e in ensembles):
        key_items: list[Any] = [PROTOCOL, "sbc", name, budget, args.sbc_n, args.threads]
        if k > 1:
            key_items.append(k)
        digest = hashlib.sha256(json.dumps(key_items).encode()).hexdigest()[:12]
        tag = f"-ens{k}" if k > 1 else ""
        cached = CACHE / "results" / f"sbc-{name}{tag}-n{budget}-{digest}.json"
        fig_path = RESULTS / f"sbi_sbc_{name}{tag.replace('-', '_')}.png"
        if cached.is_file() and fig_path.is_file() and not args.no_cache:
            rows.append(json.loads(cached.read_text()))
            continue
        if args.report_only:
            continue
        task = get_task(name)
        with np.load(dataset(name, budget, 0)) as z:
            theta, x = z["theta"], z["x"]
        prior = sbi.BoxUniform(task.prior_bounds[0].tolist(), task.prior_bounds[1].tolist())
        c0 = time.process_time()
        post = sbi.npe(theta, x, prior=prior, model="flow", seed=0, ensemble=k, progress=False)
        train_cpu = time.process_time() - c0
        res = sbi.sbc(post, prior, task.simulate, n=args.sbc_n, n_posterior=1000, seed=7)
        res.plot(fig_path, names=[f"$\\theta_{{{j + 1}}}$" for j in range(task.theta_dim)])
        row = {
            "task": name,
            "budget": budget,
            "ensemble": k,
            "train_cpu_s": train_cpu,
            "n_sbc": args.sbc_n,
            **{f"coverage_{a}": res.coverage_at(a) for a in (0.5, 0.68, 0.95)},
            **{f"coverage_marginal_{a}": res.coverage_at(a, "marginal") for a in (0.5, 0.68, 0.95)},
            "passes": res.passes(),
            "rank_uniformity_p": res.uniformity_pvalues().tolist(),
            "figure": str(fig_path.relative_to(BENCH.parent)),
        }
        print(json.dumps(row), flush=True)
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(json.dumps(row))
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", default=",".join(TASK_NAMES))
    ap.add_argument("--budgets", default="1000,10000,100000")
    ap.add_argument("--seeds", default="0")
    ap.add_argument("--methods", default=",".join(PHYSGEN_METHODS + SBI_METHODS))
    ap.add_argument("--n-samples", type=int, default=10_000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--sbc", action="store_true", help="also run simulation-based calibration")
    ap.add_argument("--sbc-n", type=int, default=300, help="SBC test simulations")
    ap.add_argument(
        "--sbc-ensemble", type=int, default=5, help="flows in the SBC ensemble (1: none)"
    )
    ap.add_argument(
        "--sbc-budget", type=int, default=None, help="SBC simulations (default: largest budget)"
    )
    ap.add_argument(
        "--c2st-early-stopping",
        action="store_true",
        help="score with the early-stopped C2ST variant (not sbibm's; see bench/sbi_c2st.py)",
    )
    ap.add_argument(
        "--observations",
        type=int,
        default=NUM_OBSERVATIONS,
        help="score C2ST on observations 1..k only (default all 10; the table says how many)",
    )
    ap.add_argument("--out", default=str(RESULTS / "sbi"))
    ap.add_argument(
        "--report-only", action="store_true", help="tabulate cached results only (run nothing)"
    )
    args = ap.parse_args()
    tasks = [t for t in args.tasks.split(",") if t]
    budgets = [int(b) for b in args.budgets.split(",") if b]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    methods = [m for m in args.methods.split(",") if m]
    t0 = time.perf_counter()
    results = [
        r
        for t in tasks
        for n in budgets
        for s in seeds
        for m in methods
        if (r := evaluate(t, n, s, m, args)) is not None
    ]
    sbc_budget = args.sbc_budget or max(budgets)
    sbc_rows = run_sbc(args, sbc_budget) if args.sbc else []
    meta = {
        "tasks": tasks,
        "budgets": budgets,
        "seeds": seeds,
        "methods": methods,
        "n_samples": args.n_samples,
        "torch_threads": args.threads,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs (shared)",
        "total_wall_s": time.perf_counter() - t0,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"meta": meta, "results": results, "sbc": sbc_rows}, indent=1))
    os.replace(tmp, out.with_suffix(".json"))
    lines = [
        "# Neural posterior estimation: physgen vs sbi 0.27 on sbibm tasks",
        "",
        f"Command: `python bench/sbi.py --tasks {args.tasks} --budgets {args.budgets} --seeds "
        f"{args.seeds} --methods {args.methods} --threads {args.threads}"
        f"{f' --observations {args.observations}' if args.observations < NUM_OBSERVATIONS else ''}"
        f"{f' --sbc --sbc-n {args.sbc_n} --sbc-ensemble {args.sbc_ensemble}' if args.sbc else ''}"
        f"{f' --sbc-budget {args.sbc_budget}' if args.sbc and args.sbc_budget else ''}"
        f"{' --report-only' if args.report_only else ''}`",
        "",
        "C2ST (sbibm's definition; 0.5 = indistinguishable from the reference posterior) between "
        f"{args.n_samples} posterior samples and sbibm's 10,000 reference samples, mean ± standard "
        "deviation over the 10 observations (and over seeds); training CPU time (all threads of "
        "the training process) and sampling wall time for 10,000 samples of one observation. "
        f"Every method trains on the same simulations; {args.threads} torch thread(s), "
        f"{meta['machine']}. C2ST-ES: the same test with the classifier stopped early on a 10 % "
        "validation split (not sbibm's definition; `bench/sbi_c2st.py`): sbibm's MLP runs until "
        "its training loss stalls, which on the 10-D tasks takes about an hour of CPU per "
        "observation; the 2-D tasks show how the two compare.",
        "",
        "| task | simulations | method | C2ST | C2ST-ES | train CPU [s] | sample [s] | epochs |",
        "|---|---|---|---|---|---|---|---|",
    ]
    not_run: list[str] = []
    for t in tasks:
        for n in budgets:
            for m in methods:
                rs = [r for r in results if r["task"] == t and r["n"] == n and r["method"] == m]
                if not rs:
                    not_run.append(f"{t} {n} {m}")
                    continue
                cpu = np.mean([r["train_cpu_s"] for r in rs])
                smp = np.mean([np.mean(r["sample_wall_s"]) for r in rs])
                ep = np.mean([r["epochs"] or 0 for r in rs])
                cells = []
                for metric in ("c2st", "c2st_es"):
                    per = [r.get(metric, []) for r in rs]
                    if not all(per):
                        cells.append("—")
                        continue
                    scores = np.concatenate(per)
                    n_obs = min(len(p) for p in per)
                    obs = "" if n_obs >= NUM_OBSERVATIONS else f" (obs. 1–{n_obs})"
                    cells.append(f"{scores.mean():.3f} ± {scores.std():.3f}{obs}")
                lines.append(
                    f"| {t} | {n} | {m} | {cells[0]} | {cells[1]} | {cpu:.0f} | {smp:.2f} | {ep:.0f} |"
                )
    if not_run:
        lines += ["", f"Not run (no cached result): {'; '.join(not_run)}."]
    if sbc_rows:
        lines += [
            "",
            "## Simulation-based calibration of physgen-flow",
            "",
            "Expected coverage (joint highest-density regions; marginal central intervals in "
            "brackets) at nominal 50 / 68 / 95 %, target within ± 0.05; one flow, and the "
            "equal-weight mixture of flows trained with seeds 0..k-1 (`npe(..., ensemble=k)`). "
            "Training CPU time of the whole estimator.",
            "",
            "| task | simulations | flows | train CPU [s] | SBC draws | 50 % | 68 % | 95 % | passes "
            "| figure |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in sbc_rows:
            cells = " | ".join(
                f"{r[f'coverage_{a}']:.3f} ({r[f'coverage_marginal_{a}']:.3f})"
                for a in (0.5, 0.68, 0.95)
            )
            cpu = r.get("train_cpu_s")
            lines.append(
                f"| {r['task']} | {r['budget']} | {r.get('ensemble', 1)} | "
                f"{'' if cpu is None else f'{cpu:.0f}'} | {r['n_sbc']} | {cells} | {r['passes']} "
                f"| {r['figure']} |"
            )
    if args.report_only:
        lines += ["", "Tabulated from the cached results of the runs above (`--report-only`).", ""]
    else:
        lines += ["", f"Total wall time {meta['total_wall_s']:.0f} s.", ""]
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, out.with_suffix(".md"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
