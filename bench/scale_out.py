"""Scale-out (issue 19): Dask against one process and the ``--workers`` pool, and the inputs
and arithmetic of the billion-shower plan.

``scaling``: wall time of ``physgen simulate`` (cascade, GFlash) and ``physgen generate`` (a
dataset-2 flow and GAN) run as command lines, one at a time, on this machine: one process,
the ``--workers 2`` pool (simulate), and ``--cluster local:1`` / ``local:2`` (one thread per
worker). Every configuration of a job must give the same file (SHA-256 checked).

``plan``: per-core throughput on dataset 2 (geometry 2, log-uniform 1 GeV-1 TeV) of the
cascade, GFlash and the five surrogate families (production presets trained for a few steps:
timing does not depend on the weights), through ``physgen timing`` with one thread; bytes per
shower on disk with gzip and lzf for geometries 1-photons, 2 and 3 (GFlash showers, and
cascade showers for geometry 2); the writer's own rate (one gzip stream); and the arithmetic
for 10^9 dataset-2 showers.

    python bench/scale_out.py all

Writes ``bench/results/scale_out.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
RESULTS = BENCH / "results"
FAMILIES = ("cfm", "flow", "diffusion", "gan", "vae")
DS2 = ("--geometry", "2", "--energy", "1GeV:1TeV")


def physgen(*args: object, threads: int | None = None) -> tuple[float, str]:
    """Wall seconds and stdout of ``physgen ARGS`` in a fresh process."""
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    if threads is not None:
        env["OMP_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "physgen", *map(str, args)], env=env,
                          capture_output=True, text=True)  # fmt: skip
    dt = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"physgen {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return dt, proc.stdout


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _ds2_runs(steps: int) -> dict[str, Path]:
    from onnx_timing import CACHE, _run_dir, _showers

    data = _showers("2", 2000)
    return {m: _run_dir(m, "2", data, steps, CACHE / "runs") for m in FAMILIES}


def scaling(args: argparse.Namespace, tmp: Path) -> list[dict[str, Any]]:
    """Every job in every configuration; the same bytes in each."""
    runs = _ds2_runs(args.train_steps)
    sim = ("simulate", *DS2, "--particle", "e-", "--seed", "1", "--no-progress")
    jobs = [
        ("simulate cascade", [*sim, "--engine", "cascade", "--n", args.n_cascade], 10, True),
        ("simulate gflash", [*sim, "--engine", "gflash", "--n", args.n_gflash], 2000, True),
        ("generate flow (ds2)", ["generate", runs["flow"], *DS2[2:], "--seed", "1",
                                 "--no-progress", "--n", args.n_flow], 1000, False),
        ("generate gan (ds2)", ["generate", runs["gan"], *DS2[2:], "--seed", "1",
                                "--no-progress", "--n", args.n_gan], 10000, False),
    ]  # fmt: skip
    rows = []
    for name, cmd, task, pool in jobs:
        configs: list[tuple[str, list[object], int | None]] = [
            ("1 process, 1 thread", [], 1),
            ("1 process, 2 threads" if not pool else "--workers 2 pool", [] if not pool
             else ["--workers", 2], 2 if not pool else 1),
            ("--cluster local:1", ["--cluster", "local:1", "--task-size", task], 1),
            ("--cluster local:2", ["--cluster", "local:2", "--task-size", task], 1),
        ]  # fmt: skip
        n = int(cmd[cmd.index("--n") + 1])
        files = []
        for label, extra, threads in configs:
            out = tmp / f"{name.split()[1]}-{len(rows)}.h5"
            wall, _ = physgen(*cmd, "--out", out, *extra, threads=threads)
            files.append(out)
            rows.append({"job": name, "config": label, "n": n, "wall_s": wall,
                         "showers_per_s": n / wall, "threads": threads})  # fmt: skip
            print(f"{name:22s} {label:22s} {wall:7.1f} s {n / wall:9.1f} showers/s", flush=True)
        ref = files[0]
        for r, f in zip(rows[-len(configs) :], files):
            r["same_bytes"] = _sha(f) == _sha(ref)
            r["max_rel_diff"] = _max_rel_diff(ref, f)
            if r["threads"] == 1 and not r["same_bytes"]:
                raise SystemExit(f"{name} {r['config']}: not the bytes of the 1-thread process")
        for f in files:
            f.unlink()
    return rows


def _max_rel_diff(a: Path, b: Path) -> float:
    """Largest relative difference of the voxels of two files of the same showers."""
    import h5py
    import numpy as np

    with h5py.File(a) as fa, h5py.File(b) as fb:
        xa, xb = fa["showers"][()], fb["showers"][()]
    return float(np.max(np.abs(xa - xb) / np.maximum(np.abs(xa), 1e-3), initial=0.0))


def _bytes_per_shower(tmp: Path) -> list[dict[str, Any]]:
    from physgen.calo.simulate.run import simulate

    cases = [("1-photons", "photon", "ds1", "gflash", 2000),
             ("2", "electron", "1GeV:1TeV", "gflash", 2000),
             ("2", "electron", "1GeV:1TeV", "cascade", 150),
             ("3", "electron", "1GeV:1TeV", "gflash", 500)]  # fmt: skip
    rows = []
    for geo, particle, energy, engine, n in cases:
        row: dict[str, Any] = {"geometry": geo, "engine": engine, "n": n}
        for comp in ("gzip", "lzf", "none"):
            out = tmp / f"b-{geo}-{engine}-{comp}.h5"
            simulate(geo, particle, n, energy, 2, out, engine=engine, compression=comp,
                     progress=False)  # fmt: skip
            row[comp] = out.stat().st_size / n
            if comp == "gzip" and geo == "2" and engine == "gflash":
                row["write_gzip_showers_per_s"] = _write_rate(out)
            out.unlink()
        rows.append(row)
        print(f"bytes/shower {geo} {engine}: gzip {row['gzip']:.0f}, lzf {row['lzf']:.0f}, "
              f"none {row['none']:.0f}", flush=True)  # fmt: skip
    return rows


def _write_rate(path: Path) -> float:
    """Showers per second through one gzip ShowerWriter (the merge step of a --cluster run)."""
    from physgen.calo.io import ShowerWriter, read_showers

    e, x = read_showers(path)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        with ShowerWriter(Path(d) / "w.h5", x.shape[1], compression="gzip") as w:
            w.append(e, x)
        return len(e) / (time.perf_counter() - t0)


def plan(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    runs = _ds2_runs(args.train_steps)
    rates: dict[str, float] = {}
    for eng, bs in (("cascade", 40), ("gflash", 2000)):
        _, out = physgen("timing", *DS2, "--engine", eng, "--batch-sizes", bs, "--repeats", 2,
                         "--json", threads=1)  # fmt: skip
        rates[eng] = 1e3 / json.loads(out)["batches"][0]["ms_per_shower_mean"]
        print(f"{eng}: {rates[eng]:.1f} showers/s per core", flush=True)
    for m in FAMILIES:
        _, out = physgen("timing", *DS2, "--run", runs[m], "--batch-sizes", args.plan_batch,
                         "--repeats", 2, "--json", threads=1)  # fmt: skip
        rates[m] = 1e3 / json.loads(out)["batches"][0]["ms_per_shower_mean"]
        print(f"{m}: {rates[m]:.1f} showers/s per core", flush=True)
    return {"per_core": rates, "bytes": _bytes_per_shower(tmp)}


def markdown(res: dict[str, Any], args: argparse.Namespace) -> list[str]:
    lines = ["# Scale-out: Dask scaling and the billion-shower plan", "",
             f"{res['machine']}; {res['date']}. Command: `{res['command']}`.", ""]  # fmt: skip
    if "scaling" in res:
        lines += ["## Dask against one process and the --workers pool", "",
                  "Wall time of the whole command (start-up, cluster start, writing included). "
                  "Dask workers run one thread each; every one-thread configuration wrote the "
                  "bytes of the one-process, one-thread run (SHA-256). A process with 2 torch "
                  "threads may differ by float32 round-off (last column: max relative "
                  "difference of the voxels above 1 keV).", "",
                  "| job | showers | configuration | wall s | showers/s | vs 1 process, 1 thread "
                  "| same bytes | max rel. diff |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        base: dict[str, float] = {}
        for r in res["scaling"]:
            base.setdefault(r["job"], r["wall_s"])
            lines.append(f"| {r['job']} | {r['n']:,} | {r['config']} | {r['wall_s']:.1f} | "
                         f"{r['showers_per_s']:.1f} | {base[r['job']] / r['wall_s']:.2f}x | "
                         f"{'yes' if r['same_bytes'] else 'no'} | {r['max_rel_diff']:.1e} |")  # fmt: skip
        lines.append("")
    if "plan" in res:
        lines += plan_markdown(res["plan"], res.get("scaling", []), args)
    return lines


def plan_markdown(
    p: dict[str, Any], scal: list[dict[str, Any]], args: argparse.Namespace
) -> list[str]:
    rates = p["per_core"]
    b2 = next(b for b in p["bytes"] if b["geometry"] == "2" and b["engine"] == "cascade")
    g2 = next(b for b in p["bytes"] if b["geometry"] == "2" and b["engine"] == "gflash")
    eff = 1.0
    two = [r for r in scal if r["job"] == "simulate cascade"]
    if len(two) == 4:  # Dask 1 -> 2 workers on the cascade: local:1 wall / local:2 wall / 2
        eff = two[2]["wall_s"] / two[3]["wall_s"] / 2
    cores, total = args.node_cores, 1e9
    lines = ["## The billion-shower plan (dataset 2: 6480 voxels, 1 GeV-1 TeV log-uniform)", "",
             "Bytes per shower on disk (float32 voxels + float64 energy, HDF5 chunks of ~1 MB):",
             "", "| geometry | showers from | n | gzip B | lzf B | none B |", "|---|---|---|---|---|---|"]  # fmt: skip
    for b in p["bytes"]:
        lines.append(f"| {b['geometry']} | {b['engine']} | {b['n']:,} | {b['gzip']:,.0f} | "
                     f"{b['lzf']:,.0f} | {b['none']:,.0f} |")  # fmt: skip
    lines += ["", f"Parallel efficiency used below: {eff:.2f} per worker (the cascade's Dask "
              "scaling from local:1 to local:2, measured above). A node = "
              f"{cores} cores (one single-threaded Dask worker per core); CPU figures from this "
              "machine's cores. No GPU was available in this session (GPU rows: not measured).",
              "", "| generator | showers/s per core | per node | node-hours for 10^9 | nodes for 24 h "
              "| write rate per node, gzip MB/s |", "|---|---|---|---|---|---|"]  # fmt: skip
    for name, r in rates.items():
        node = r * cores * eff
        hours = total / node / 3600
        lines.append(f"| {name} | {r:,.1f} | {node:,.0f} | {hours:,.0f} | {hours / 24:,.1f} | "
                     f"{node * b2['gzip'] / 1e6:,.2f} |")  # fmt: skip
    tb = total * b2["gzip"] / 1e12
    w = g2.get("write_gzip_showers_per_s", float("nan"))
    lines += ["", "Arithmetic: per node = per core x cores x efficiency; node-hours = 10^9 / (per "
              "node x 3600); nodes for 24 h = node-hours / 24; write rate = per node x gzip bytes "
              f"of a cascade shower ({b2['gzip']:,.0f} B).", "",
              f"Storage: 10^9 dataset-2 showers x {b2['gzip']:,.0f} B (gzip, cascade showers) = "
              f"**{tb:,.1f} TB** (lzf {total * b2['lzf'] / 1e12:,.1f} TB, uncompressed "
              f"{total * b2['none'] / 1e12:,.1f} TB).", "",
              f"One writer (one gzip stream, the last step of a `--cluster` run): {w:,.0f} "
              f"showers/s = {w * g2['gzip'] / 1e6:,.1f} MB/s of output here. A single output file "
              f"therefore caps a campaign at {w:,.0f} showers/s ({total / w / 3600:,.0f} h for "
              "10^9): write one file per run of 10^6-10^7 showers (each its own seed, one "
              "`--cluster` command each, several at once on one cluster) and let the analysis "
              "read them as one sample.", ""]  # fmt: skip
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=("scaling", "plan", "all"))
    ap.add_argument("--n-cascade", type=int, default=200)
    ap.add_argument("--n-gflash", type=int, default=20_000)
    ap.add_argument("--n-flow", type=int, default=4000)
    ap.add_argument("--n-gan", type=int, default=40_000)
    ap.add_argument("--train-steps", type=int, default=20)
    ap.add_argument("--plan-batch", type=int, default=1000, help="surrogate batch size")
    ap.add_argument("--node-cores", type=int, default=64, help="cores of a production node")
    args = ap.parse_args()
    res: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": "python bench/scale_out.py " + " ".join(sys.argv[1:]),
    }
    old = RESULTS / "scale_out.json"
    if args.part != "all" and old.exists():  # keep the other part's last results
        prev = json.loads(old.read_text())
        res.update({k: prev[k] for k in ("scaling", "plan") if k in prev})
        res["command"] = f"{prev.get('command', '')}; then {res['command']}"
    with tempfile.TemporaryDirectory(dir=RESULTS.parent) as d:
        if args.part in ("scaling", "all"):
            res["scaling"] = scaling(args, Path(d))
        if args.part in ("plan", "all"):
            res["plan"] = plan(args, Path(d))
    lines = markdown(res, args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale_out.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "scale_out.json").write_text(json.dumps(res, indent=1))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
