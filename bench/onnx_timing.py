"""ONNX Runtime against torch: generation time per shower of every family (issue 19).

For each model family, a run with the shipped preset of the geometry (the production network
sizes) is trained for a few steps on GFlash showers -- timing does not depend on the weights --
then exported with ``physgen.export.export_onnx`` (the check on: ONNX Runtime against torch on
1000 showers) and both are timed with the same energies, threads and batch sizes through
``physgen.calo.evaluate.timing.time_generator`` (the function behind ``physgen timing``).

    python bench/onnx_timing.py --geometry 1-photons --threads 2

Writes bench/results/onnx_timing.md and .json.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).parent / "results"
CACHE = Path.home() / ".cache" / "physgen" / "onnx-bench"


def _showers(geometry: str, n: int) -> Path:
    """GFlash training showers, cached by their settings."""
    from physgen.calo.simulate.run import simulate

    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"gflash-{geometry}-{n}.h5"
    if not path.exists():
        simulate(geometry, "photon", n, "1GeV:1TeV", 1, path, engine="gflash", progress=False)
    return path


def _run_dir(model: str, geometry: str, data: Path, steps: int, out: Path) -> Path:
    from physgen.calo.config import load_config
    from physgen.calo.train import train

    run = out / f"{model}-{geometry}-{data.stem}-{steps}"
    if not (run / "weights.pt").exists():
        cfg = load_config(model, geometry)
        train(cfg, data, run, stop_after_steps=steps, device="cpu", progress=False)
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--geometry", default="1-photons")
    ap.add_argument("--models", default="cfm,flow,diffusion,gan,vae")
    ap.add_argument("--batch-sizes", default="1,100,10000")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2, help="torch and ONNX Runtime threads")
    ap.add_argument("--train-showers", type=int, default=2000)
    ap.add_argument("--train-steps", type=int, default=20)
    args = ap.parse_args()

    from physgen.calo.evaluate.timing import count_parameters, time_generator
    from physgen.calo.rundir import load_run
    from physgen.export import export_onnx, load_onnx

    torch.set_num_threads(args.threads)
    sizes = [int(v) for v in args.batch_sizes.split(",")]
    data = _showers(args.geometry, args.train_showers)
    rows: list[dict[str, Any]] = []
    for name in args.models.split(","):
        run = _run_dir(name, args.geometry, data, args.train_steps, CACHE / "runs")
        path = CACHE / f"{name}-{args.geometry}.onnx"
        t0 = time.perf_counter()
        meta = export_onnx(run, path)
        t_export = time.perf_counter() - t0
        model = load_run(run)
        onnx_model = load_onnx(path, threads=args.threads)
        g_t, g_o = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)

        def torch_gen(n: int, e: np.ndarray, m: Any = model, g: Any = g_t) -> Any:
            return m(torch.from_numpy(e)).sample(generator=g)

        def onnx_gen(n: int, e: np.ndarray, m: Any = onnx_model, g: Any = g_o) -> Any:
            return m(torch.from_numpy(e)).sample(generator=g)

        row: dict[str, Any] = {
            "model": name,
            "parameters": count_parameters(model),
            "sampling": meta["physgen.sampling"],
            "export_s": round(t_export, 1),
            "onnx_mb": round(path.stat().st_size / 1e6, 2),
            "check": meta["physgen.check"],
        }
        for backend, fn in (("torch", torch_gen), ("onnxruntime", onnx_gen)):
            res = time_generator(fn, args.geometry, sizes, repeats=args.repeats, seed=0)
            row[backend] = {str(b.batch_size): b.ms_per_shower_mean for b in res.batches}
            print(name, backend, row[backend], flush=True)
        rows.append(row)
    record = {
        "geometry": args.geometry,
        "threads": args.threads,
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads",
        "command": "python bench/onnx_timing.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
        "rows": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "onnx_timing.json").write_text(json.dumps(record, indent=2) + "\n")
    lines = [
        f"# ONNX Runtime vs torch, geometry {args.geometry}, {args.threads} threads each (CPU)",
        "",
        "ms per shower at batch " + " / ".join(map(str, sizes)) + "; the export check compares "
        "ONNX Runtime with torch on 1000 showers of the same noise (max relative difference "
        "above threshold, voxels above threshold in one backend only).",
        "",
        "| model | parameters | sampling | torch | ONNX Runtime | speed-up at "
        f"{sizes[-1]} | check: max rel. diff | pattern mismatches | .onnx MB | export s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        t = " / ".join(f"{r['torch'][str(b)]:.3g}" for b in sizes)
        o = " / ".join(f"{r['onnxruntime'][str(b)]:.3g}" for b in sizes)
        big = str(sizes[-1])
        samp = ", ".join(f"{k} {v}" for k, v in r["sampling"].items() if k in ("steps", "solver",
                         "sampler")) or "one pass"  # fmt: skip
        lines.append(
            f"| {r['model']} | {r['parameters']:,} | {samp} | {t} | {o} | "
            f"{r['torch'][big] / r['onnxruntime'][big]:.2f}x | {r['check']['max_rel_diff']:.1e} | "
            f"{r['check']['pattern_mismatches']} | {r['onnx_mb']} | {r['export_s']} |"
        )
    lines += ["", f"Command: `{record['command']}`; {record['machine']}."]
    (RESULTS / "onnx_timing.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
