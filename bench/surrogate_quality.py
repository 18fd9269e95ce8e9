"""Benchmark: quality and speed of the physgen surrogates (cfm, flow) on cascade showers.

For one geometry, each model is trained with a wall-time budget on showers from physgen's
cascade simulator, generates as many showers as an independent cascade reference sample
(with the reference's incident energies), and is judged with ``physgen evaluate`` (fast
classifier, ``--repeats`` trainings; separation powers; FPD/KPD). Generation is timed with
the CaloChallenge harness at batch 1/100/10,000 on CPU, and the speed-up over the cascade is
measured at 100 GeV and 1 TeV in the same run. Optionally the best model (lowest low-level
AUC) is also judged once with the ``official`` classifier preset.

``--timing-geometry 2`` additionally times the shipped geometry-2 presets (untrained
networks of the preset size: with a fixed-step solver generation time does not depend on the
weights) against the issue's targets (flow <= 2 ms, cfm <= 20 ms per shower at batch 10,000).

Usage::

    python bench/surrogate_quality.py --geometry 1-photons --models cfm,flow \
        --train-minutes 25 [--train-file T.h5 --reference-file R.h5] [--official] \
        [--timing-geometry 2]

Data files are simulated with ``physgen simulate`` (cascade, seeds 11 and 12) when not
given. Runs are cached in ``bench/runs/`` (delete them to retrain). Writes
``bench/results/surrogate_quality_GEOMETRY.{md,json}`` and
``surrogate_learning_curves_GEOMETRY.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physgen.calo.config import load_config
from physgen.calo.evaluate.pipeline import evaluate
from physgen.calo.evaluate.timing import count_parameters
from physgen.calo.front import judge_run, time_model, train_or_load
from physgen.calo.io import open_showers
from physgen.calo.rundir import build_codec, load_run

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
TARGETS = {  # issue 5, 2-core CPU
    "1-photons": {"auc_low": 0.65, "auc_high": 0.60, "train_h": 2.0},
    "2": {"auc_low": 0.75, "train_h": 3.0},
}
TIME_TARGET_MS = {"flow": 2.0, "cfm": 20.0}  # geometry 2, batch 10,000, CPU
PARTICLE = {"1-photons": "photon", "2": "electron", "3": "electron", "calogan": "electron"}
ENERGY = {"1-photons": "ds1", "2": "1GeV:1TeV", "3": "1GeV:1TeV", "calogan": "1GeV:100GeV"}


def simulate(geometry: str, n: int, seed: int, out: Path, workers: int) -> None:
    cmd = [
        sys.executable,
        "-m",
        "physgen",
        "simulate",
        "--geometry",
        geometry,
        "--particle",
        PARTICLE[geometry],
        "--n",
        str(n),
        "--energy",
        ENERGY[geometry],
        "--seed",
        str(seed),
        "--workers",
        str(workers),
        "--out",
        str(out),
    ]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def cascade_ms(
    geometry: str, energies_gev: list[float], n_each: dict[float, int]
) -> dict[str, float]:
    """One-core CPU ms per cascade shower at fixed energies (after a warm-up shower)."""
    from physgen.calo.simulate.detector import get_detector
    from physgen.calo.simulate.engine import get_engine

    eng = get_engine("cascade", get_detector(None, geometry=geometry))
    eng.simulate_one(PARTICLE[geometry], 1e3, 0)
    out = {}
    for e in energies_gev:
        ts = []
        for s in range(n_each[e]):
            t0 = time.process_time()
            eng.simulate_one(PARTICLE[geometry], e * 1e3, 1000 + s)
            ts.append(time.process_time() - t0)
        out[f"{e:g}GeV"] = 1e3 * float(np.mean(ts))
    return out


def model_timing(model: Any, geometry: str, sizes: tuple[int, ...]) -> dict[str, Any]:
    """CaloChallenge timing columns, keyed by batch size as in front.json."""
    res = time_model(model, geometry, "cpu", sizes)
    return {str(b): list(v) for b, v in res.items()}


def fixed_energy_ms(model: Any, e_mev: float, n: int = 2_000) -> float:
    gen = torch.Generator().manual_seed(0)
    e = torch.full((n, 1), e_mev, dtype=torch.float64)
    model(e[:100]).sample(generator=gen)
    t0 = time.perf_counter()
    model(e).sample(generator=gen)
    return 1e3 * (time.perf_counter() - t0) / n


def learning_curves(runs: dict[str, Path], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(runs), figsize=(5.5 * len(runs), 4), squeeze=False)
    for ax, (name, run) in zip(axes[0], runs.items()):
        lines = [json.loads(ln) for ln in (run / "metrics.jsonl").open()]
        tr = [(d["elapsed_s"] / 60, d["loss"]) for d in lines if "loss" in d]
        va = [(d["elapsed_s"] / 60, d["val_loss"]) for d in lines if "val_loss" in d]
        if tr:
            ax.plot(*zip(*tr), lw=0.8, alpha=0.6, label="train (batch)")
        if va:
            ax.plot(*zip(*va), "o-", ms=3, label="validation (EMA)")
        ax.set_xlabel("wall time [min]")
        ax.set_ylabel("loss")
        ax.set_title(name)
        ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def time_presets(geometry: str, models: list[str]) -> dict[str, Any]:
    """Generation time of the shipped presets for ``geometry`` (untrained weights)."""
    out = {}
    for name in models:
        cfg = load_config(name, geometry)
        codec = build_codec(cfg)
        from physgen.calo.simulate.detector import get_detector
        from physgen.calo.simulate.engine import get_engine

        eng = get_engine("gflash", get_detector(None, geometry=geometry))
        e = np.exp(np.random.default_rng(0).uniform(np.log(1e3), np.log(1e6), 200))
        x = np.stack([eng.simulate_one(PARTICLE[geometry], float(v), i) for i, v in enumerate(e)])
        codec.fit(
            torch.from_numpy(x / eng.sampling_fraction).float(), torch.from_numpy(e.reshape(-1, 1))
        )
        torch.manual_seed(0)
        from physgen.models import build_model

        model = build_model(name, codec, cfg.model_config).eval()
        out[name] = {
            "n_parameters": count_parameters(model),
            "ms_per_shower": model_timing(model, geometry, (1, 100, 10_000)),
        }
        print(f"{name} geometry {geometry}: {out[name]}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--geometry", default="1-photons")
    ap.add_argument("--models", default="cfm,flow")
    ap.add_argument("--train-minutes", type=float, default=60.0)
    ap.add_argument("--train-file", type=Path)
    ap.add_argument("--reference-file", type=Path)
    ap.add_argument("--n-train", type=int, default=10_000)
    ap.add_argument("--n-reference", type=int, default=10_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--official", action="store_true", help="also the official classifier")
    ap.add_argument("--timing-geometry", default=None, help="also time that geometry's presets")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=Path, default=HERE / "runs")
    ap.add_argument(
        "--from-front",
        type=Path,
        default=None,
        help="front.json of `physgen bench front` whose entries to reuse",
    )
    ap.add_argument(
        "--no-retime",
        action="store_true",
        help="keep the timings of --from-front instead of timing again",
    )
    args = ap.parse_args()
    geo = args.geometry
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    data = args.runs / "data"
    data.mkdir(parents=True, exist_ok=True)
    train_file = args.train_file or data / f"{geo}-cascade-train.h5"
    ref_file = args.reference_file or data / f"{geo}-cascade-reference.h5"
    if not train_file.exists():
        simulate(geo, args.n_train, 11, train_file, args.workers)
    if not ref_file.exists():
        simulate(geo, args.n_reference, 12, ref_file, args.workers)
    with open_showers(train_file, geo) as f:
        n_train = f.n_showers
    with open_showers(ref_file, geo) as f:
        n_ref = f.n_showers

    record: dict[str, Any] = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads",
        "geometry": geo,
        "train_file": train_file.name,
        "n_train": n_train,
        "reference_file": ref_file.name,
        "n_reference": n_ref,
        "train_minutes_budget": args.train_minutes,
        "repeats": args.repeats,
        "models": {},
    }
    runs: dict[str, Path] = {}
    entries: dict[str, Any] = {}
    if args.from_front is not None:  # reuse `physgen bench front` results for these models
        front = json.loads(args.from_front.read_text())
        entries = {e["model"]: e for e in front["entries"] if e["model"] in models}
    for name in models:
        if name not in entries:
            run = train_or_load(
                name, geo, train_file, args.runs, max_time_s=60 * args.train_minutes
            )
            entries[name] = judge_run(
                run, ref_file, args.runs / "judged", repeats=args.repeats
            ).to_dict()
        runs[name] = Path(entries[name]["run_dir"])
    for name in models:
        e = entries[name]
        model = load_run(runs[name])
        record["models"][name] = {
            "run": e["run_dir"],
            "n_parameters": e["n_parameters"],
            "train_status": e["train"]["status"],
            "train_steps": e["train"]["steps"],
            "train_minutes": e["train"]["minutes"],
            "best_val_loss": e["train"]["best_val_loss"],
            "auc_low": e["auc_low"],
            "auc_high": e["auc_high"],
            "jsd_low": e["jsd_low"],
            "fpd": e["fpd"],
            "kpd": e["kpd"],
            "separation_power": e["separation"],
            # re-timed here, one job on the machine (front.json timings may have shared the CPU)
            "ms_per_shower": e["ms_per_shower"]
            if args.no_retime
            else model_timing(model, geo, (1, 100, 10_000)),
            "ms_per_shower_fixed_energy": {
                "100GeV": fixed_energy_ms(model, 1e5),
                "1000GeV": fixed_energy_ms(model, 1e6),
            },
        }
        print(json.dumps({name: record["models"][name]}, indent=1), flush=True)

    record["cascade_ms_per_shower"] = cascade_ms(geo, [100.0, 1000.0], {100.0: 10, 1000.0: 3})
    if args.official and record["models"]:
        best = min(record["models"], key=lambda m: record["models"][m]["auc_low"][0])
        off_dir = args.runs / f"eval-{best}-{geo}-official"
        if (off_dir / "results.json").is_file():  # e.g. run before with `physgen evaluate`
            off = json.loads((off_dir / "results.json").read_text())
        else:
            off = evaluate(
                entries[best]["generated_file"],
                ref_file,
                geo,
                "cls-low,cls-high",
                off_dir,
                classifier="official",
                repeats=1,
                label=best,
                plots=False,
            ).results
        record["official"] = {
            "model": best,
            "dir": str(off_dir),
            **{m: off["classifier"][m]["auc"] for m in ("cls-low", "cls-high")},
        }
    if args.timing_geometry:
        record["preset_timing"] = {
            "geometry": args.timing_geometry,
            "models": time_presets(args.timing_geometry, models),
        }
    RESULTS.mkdir(exist_ok=True)
    learning_curves(runs, RESULTS / f"surrogate_learning_curves_{geo}.png")
    (RESULTS / f"surrogate_quality_{geo}.json").write_text(json.dumps(record, indent=2) + "\n")
    (RESULTS / f"surrogate_quality_{geo}.md").write_text(render(record))
    print(render(record))


def render(rec: dict[str, Any]) -> str:
    geo = rec["geometry"]
    tgt = TARGETS.get(geo, {})
    casc = rec["cascade_ms_per_shower"]
    lines = [
        f"# physgen surrogates on geometry {geo}: quality and speed",
        "",
        f"{rec['date']}; {rec['machine']}. Training data: {rec['n_train']} cascade showers "
        f"(`{Path(rec['train_file']).name}`); reference: {rec['n_reference']} independent cascade "
        f"showers; each model generates showers for the reference's incident energies. Training "
        "wall time per model as in the table, on the 2-core machine shared with other jobs "
        "(several trainings ran at once). Classifier: `fast` preset, "
        f"{rec['repeats']} trainings (mean ± std).",
        "",
        "| model | params | trained | AUC low | AUC high | JSD low | FPD | KPD | "
        "ms/shower b1 | b100 | b10k | speed-up 100 GeV | 1 TeV |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in rec["models"].items():
        t = m["ms_per_shower"]
        fx = m["ms_per_shower_fixed_energy"]
        lines.append(
            f"| {name} | {m['n_parameters']:,} | {m['train_minutes']:.0f} min, {m['train_steps']} "
            f"steps ({m['train_status']}) | {m['auc_low'][0]:.3f} ± {m['auc_low'][1]:.3f} | "
            f"{m['auc_high'][0]:.3f} ± {m['auc_high'][1]:.3f} | {m['jsd_low']:.3f} | "
            f"{m['fpd'][0]:.3g} ± {m['fpd'][1]:.2g} | {m['kpd'][0]:.3g} ± {m['kpd'][1]:.2g} | "
            f"{t['1'][0]:.3g} | {t['100'][0]:.3g} | {t['10000'][0]:.3g} | "
            f"{casc['100GeV'] / fx['100GeV']:.0f}x | {casc['1000GeV'] / fx['1000GeV']:.0f}x |"
        )
    lines += [
        "",
        f"Cascade (same machine, same run, one core): {casc['100GeV']:.0f} ms per shower at "
        f"100 GeV, {casc['1000GeV']:.0f} ms at 1 TeV. Speed-up = cascade ms / model ms per "
        "shower at batch 10,000 and that fixed energy.",
        "",
        "Separation power summary (mean over features of each kind):",
        "",
    ]
    kinds = list(next(iter(rec["models"].values()))["separation_power"]) if rec["models"] else []
    lines += ["| model | " + " | ".join(kinds) + " |", "|---|" + "---|" * len(kinds)]
    for name, m in rec["models"].items():
        lines.append(
            f"| {name} | " + " | ".join(f"{m['separation_power'][k]:.4f}" for k in kinds) + " |"
        )
    if "official" in rec:
        o = rec["official"]
        lines += [
            "",
            f"Official classifier preset on the best model ({o['model']}): AUC low "
            f"{o['cls-low']:.3f}, high {o['cls-high']:.3f} (one training).",
        ]
    if tgt:
        train_min = max(m["train_minutes"] for m in rec["models"].values())
        best_low = min((m["auc_low"][0] for m in rec["models"].values()), default=float("nan"))
        best_high = min((m["auc_high"][0] for m in rec["models"].values()), default=float("nan"))
        lines += ["", "Targets (issue 5):", ""]
        lines.append(
            f"- low-level AUC <= {tgt['auc_low']} within {tgt['train_h']:g} h CPU: best "
            f"{best_low:.3f} after {train_min:.0f} min -> "
            f"{'met' if best_low <= tgt['auc_low'] else 'missed'}"
        )
        if "auc_high" in tgt:
            lines.append(
                f"- high-level AUC <= {tgt['auc_high']}: best {best_high:.3f} -> "
                f"{'met' if best_high <= tgt['auc_high'] else 'missed'}"
            )
    if "preset_timing" in rec:
        pt = rec["preset_timing"]
        lines += [
            "",
            f"Generation time of the geometry-{pt['geometry']} presets (CPU, untrained "
            "networks of the preset size; fixed-step solvers, so time does not depend on "
            "the weights):",
            "",
            "| model | params | b1 | b100 | b10k | target b10k |",
            "|---|---|---|---|---|---|",
        ]
        for name, m in pt["models"].items():
            t = m["ms_per_shower"]
            target = TIME_TARGET_MS.get(name)
            verdict = (
                ""
                if target is None
                else (f"<= {target:g} ms: {'met' if t['10000'][0] <= target else 'missed'}")
            )
            lines.append(
                f"| {name} | {m['n_parameters']:,} | {t['1'][0]:.3g} | {t['100'][0]:.3g} "
                f"| {t['10000'][0]:.3g} | {verdict} |"
            )
    lines += ["", f"![learning curves](surrogate_learning_curves_{geo}.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
