"""Speed and memory of ``physgen evaluate``.

Writes toy CaloChallenge files (the smooth toy shower model of the test suite) and
times the ``hist`` mode on them, each run in a fresh process whose peak resident
memory (ru_maxrss) is recorded:

* two geometry-2 files of 100k showers each: target <= 60 s on the 2-core machine;
* two geometry-3 files of 50k showers each (8 GB each as float32): target peak < 4 GB;
* optionally (``--classifier``) the fast classifier on the geometry-2 pair: target <= 10 min.

Usage:
    python bench/evaluate_speed.py [--n2 100000] [--n3 50000] [--skip-ds3] [--classifier]

Results: bench/results/evaluate_speed.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

CHILD = r"""
import json, resource, sys, time
from physgen.evaluate.pipeline import evaluate
t = time.perf_counter()
res = evaluate(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5],
               plots=sys.argv[6] == "1", batch_size=None)
wall = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"wall_s": wall, "peak_mb": peak, "timing": res.results["timing_s"],
                  "classifier": res.results.get("classifier")}))
"""


def write_toy(path: Path, n: int, geometry: str, seed: int, chunk: int = 5000) -> None:
    from physgen.io import ShowerWriter
    from showerdata import toy_showers

    if path.exists():
        return
    from physgen.geometry import get_geometry

    with ShowerWriter(path, get_geometry(geometry).n_voxels, compression=None) as w:
        for i in range(0, n, chunk):
            e, x = toy_showers(min(chunk, n - i), geometry, seed=seed * 100003 + i)
            w.append(e, x)


def run(gen: Path, ref: Path, geometry: str, mode: str, out: Path, plots: bool) -> dict:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            str(gen),
            str(ref),
            geometry,
            mode,
            str(out),
            "1" if plots else "0",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n2", type=int, default=100_000)
    ap.add_argument("--n3", type=int, default=50_000)
    ap.add_argument("--skip-ds3", action="store_true")
    ap.add_argument("--classifier", action="store_true")
    ap.add_argument(
        "--workdir", type=Path, default=None, help="where the toy files go (default: a temp dir)"
    )
    args = ap.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="physgen-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    t = time.perf_counter()
    a2, b2 = work / "ds2_gen.h5", work / "ds2_ref.h5"
    write_toy(a2, args.n2, "2", 1)
    write_toy(b2, args.n2, "2", 2)
    print(f"wrote geometry-2 files in {time.perf_counter() - t:.0f} s", flush=True)
    for plots in (False, True):
        r = run(a2, b2, "2", "hist", work / "ev2", plots)
        rows.append(
            {
                "case": f"hist, geometry 2, {args.n2} vs {args.n2}"
                + (", with 363 plots" if plots else ""),
                "wall_s": round(r["wall_s"], 1),
                "peak_mb": round(r["peak_mb"]),
                "target": "<= 60 s",
                "detail": r["timing"],
            }
        )
        print(rows[-1], flush=True)
    if args.classifier:
        r = run(a2, b2, "2", "cls-low", work / "ev2c", False)
        rows.append(
            {
                "case": f"cls-low (fast preset), geometry 2, {args.n2} vs {args.n2}",
                "wall_s": round(r["wall_s"], 1),
                "peak_mb": round(r["peak_mb"]),
                "target": "<= 600 s",
                "detail": r["classifier"],
            }
        )
        print(rows[-1], flush=True)
    if not args.skip_ds3:
        a3, b3 = work / "ds3_gen.h5", work / "ds3_ref.h5"
        t = time.perf_counter()
        write_toy(a3, args.n3, "3", 3, chunk=1000)
        write_toy(b3, args.n3, "3", 4, chunk=1000)
        print(f"wrote geometry-3 files in {time.perf_counter() - t:.0f} s", flush=True)
        r = run(a3, b3, "3", "hist", work / "ev3", False)
        rows.append(
            {
                "case": f"hist, geometry 3, {args.n3} vs {args.n3} ({os.path.getsize(a3) / 1e9:.1f} GB each)",
                "wall_s": round(r["wall_s"], 1),
                "peak_mb": round(r["peak_mb"]),
                "target": "peak < 4000 MB",
                "detail": r["timing"],
            }
        )
        print(rows[-1], flush=True)
    res_dir = HERE / "results"
    res_dir.mkdir(exist_ok=True)
    old = res_dir / "evaluate_speed.json"
    if old.exists():  # keep rows of earlier runs that this run did not repeat
        seen = {r["case"] for r in rows}
        rows = [r for r in json.loads(old.read_text())["rows"] if r["case"] not in seen] + rows
    (res_dir / "evaluate_speed.json").write_text(
        json.dumps({"cpu_count": os.cpu_count(), "rows": rows}, indent=2)
    )
    lines = ["| case | wall time (s) | peak memory (MB) | target |", "|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['wall_s']} | {r['peak_mb']} | {r['target']} |" for r in rows]
    text = "\n".join(lines) + f"\n\n`python bench/evaluate_speed.py` on {os.cpu_count()} cores.\n"
    (res_dir / "evaluate_speed.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
