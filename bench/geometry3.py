"""Benchmark: a first surrogate for CaloChallenge dataset 3 (40,500 voxels), on CPU.

Dataset 3's geometry (45 layers x 50 angular x 18 radial bins, Par04 W/Si) with showers
from physgen's GFlash engine (about 280 showers/s with 2 workers; the cascade needs about
0.085 CPU s per shower at 1 GeV - 1 TeV, ``bench/results/simulate_scaling.md``). Steps, each cached under ``~/.cache/physgen/geometry3``:

1. ``simulate``: ``--n-train`` training and ``--n-ref`` reference electrons, log-uniform
   1 GeV - 1 TeV (the dataset's range), seeds 31 and 32.
2. ``train``: ``physgen train --model MODEL --geometry 3`` with the preset (``cfm-3``: a
   transformer with one token per layer, CaloDREAM's shape-network idea) for
   ``--max-time``, in a child process whose peak resident memory is recorded.
3. ``judge``: 10,000-shower comparison with the fast classifier (low- and high-level),
   FPD/KPD, and ms/shower at the batch sizes given (``--batch-sizes``).

Usage (the README's numbers)::

    python bench/geometry3.py simulate --n-train 20000 --n-ref 10000
    python bench/geometry3.py train --model cfm --max-time 40m
    python bench/geometry3.py judge --model cfm --repeats 2 --batch-sizes 1,100,1000

Writes ``bench/results/geometry3.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = Path.home() / ".cache" / "physgen" / "geometry3"
SEEDS = {"train": 31, "ref": 32}


def _data(kind: str, n: int) -> Path:
    return CACHE / f"gflash-3-{n}-{SEEDS[kind]}.h5"


def _record() -> dict[str, Any]:
    p = RESULTS / "geometry3.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def _save(rec: dict[str, Any]) -> None:
    from physgen.outputs import atomic_write_text

    atomic_write_text(RESULTS / "geometry3.json", json.dumps(rec, indent=2) + "\n")
    atomic_write_text(RESULTS / "geometry3.md", _markdown(rec))


def _physgen(*args: str) -> float:
    """Run ``physgen ARGS`` in a child process; its wall time in seconds."""
    cmd = [sys.executable, "-m", "physgen", *args]
    print("+ physgen " + " ".join(args), flush=True)
    t0 = time.monotonic()
    subprocess.run(cmd, check=True)
    return time.monotonic() - t0


def simulate(args: argparse.Namespace) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    rec = _record()
    for kind, n in (("train", args.n_train), ("ref", args.n_ref)):
        path = _data(kind, n)
        if path.is_file():
            print(f"reusing {path}")
            continue
        dt = _physgen("simulate", "--geometry", "3", "--engine", "gflash", "--particle",
                      "electron", "--n", str(n), "--energy", "1GeV:1TeV", "--seed",
                      str(SEEDS[kind]), "--workers", "2", "--out", str(path), "-q")  # fmt: skip
        rec.setdefault("simulation", {})[kind] = {"n": n, "seed": SEEDS[kind], "seconds": dt}
    rec["data"] = {"n_train": args.n_train, "n_ref": args.n_ref, "engine": "gflash"}
    _save(rec)


def train(args: argparse.Namespace) -> None:
    rec = _record()
    data = _data("train", rec["data"]["n_train"])
    run = CACHE / "runs" / f"{args.model}-3"
    run.parent.mkdir(parents=True, exist_ok=True)
    extra = ["--resume"] if (run / "checkpoint.pt").is_file() else [
        "--model", args.model, "--geometry", "3", "--seed", "1"]  # fmt: skip
    dt = _physgen("train", *extra, "--data", str(data), "--out", str(run), "--max-time",
                  args.max_time, "--device", "cpu", "--no-progress")  # fmt: skip
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summary = json.loads((run / "summary.json").read_text())
    rec.setdefault("training", {})[args.model] = {
        "run": run.name,
        "max_time": args.max_time,
        "wall_s": dt,
        "peak_rss_gb": peak_kb / 1024**2,
        "summary": summary,
    }
    _save(rec)


def judge(args: argparse.Namespace) -> None:
    import torch

    from physgen.calo.front import judge_run

    torch.set_num_threads(args.threads)
    rec = _record()
    ref = _data("ref", rec["data"]["n_ref"])
    run = CACHE / "runs" / f"{args.model}-3"
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    t0 = time.monotonic()
    entry = judge_run(run, ref, CACHE / "judged", repeats=args.repeats, batch_sizes=sizes)
    home = str(Path.home())
    rec.setdefault("judged", {})[args.model] = {
        **{
            k: v.replace(home, "~", 1) if isinstance(v, str) else v
            for k, v in entry.to_dict().items()
        },
        "judge_s": time.monotonic() - t0,
        "machine": f"{platform.machine()}, {args.threads} threads",
    }
    _save(rec)
    print(_markdown(rec))


def _markdown(rec: dict[str, Any]) -> str:
    d = rec.get("data", {})
    lines = [
        "# Dataset 3 (40,500 voxels): a first surrogate",
        "",
        f"Data: physgen GFlash electrons, log-uniform 1 GeV - 1 TeV, {d.get('n_train', '?'):,} "
        f"for training (seed 31), {d.get('n_ref', '?'):,} as reference (seed 32).",
        "",
        "| model | params | training | peak RSS (GB) | AUC low | AUC high | FPD | "
        "ms/shower by batch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for m, j in rec.get("judged", {}).items():
        t = rec.get("training", {}).get(m, {})
        s = t.get("summary", {})
        ms = ", ".join(f"b{k}: {v[0]:.3g}" for k, v in j["ms_per_shower"].items())
        lines.append(
            f"| {m} | {j['n_parameters']:,} | {s.get('status', '?')}, {s.get('step', '?')} "
            f"steps, {t.get('wall_s', 0) / 60:.0f} min | {t.get('peak_rss_gb', float('nan')):.1f}"
            f" | {j['auc_low'][0]:.3f} ± {j['auc_low'][1]:.3f} | {j['auc_high'][0]:.3f} ± "
            f"{j['auc_high'][1]:.3f} | {j['fpd'][0]:.3g} | {ms} |"
        )
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("simulate")
    s.add_argument("--n-train", type=int, default=20_000)
    s.add_argument("--n-ref", type=int, default=10_000)
    t = sub.add_parser("train")
    t.add_argument("--model", default="cfm")
    t.add_argument("--max-time", default="40m")
    j = sub.add_parser("judge")
    j.add_argument("--model", default="cfm")
    j.add_argument("--repeats", type=int, default=2)
    j.add_argument("--threads", type=int, default=2)
    j.add_argument("--batch-sizes", default="1,100,1000")
    args = ap.parse_args()
    {"simulate": simulate, "train": train, "judge": judge}[args.cmd](args)


if __name__ == "__main__":
    main()
