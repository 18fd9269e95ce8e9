"""Benchmark: the `official` and `fast` classifier presets on synthetic 1-photons showers.

Two independent samples of a simple Monte Carlo shower model (below) serve as
"reference" and "generated"; the generated one is then distorted:

* ``scale_1.05``: every voxel x 1.05;
* ``drop_layer_<id>``: one layer's voxels set to 0;
* ``radial_shift``: every layer's radial profile moved out by one bin (energy kept);
* ``none``: no distortion (null test, AUC should be ~0.5).

For each distortion both presets are trained once (same seed, same samples) on the
low-level inputs (``cls-low``), and the calibrated AUC / JSD and wall time are
recorded. The official preset (9.15 M parameters, 50 epochs) is far too slow on
CPU for the official 121k showers per class, so the default sizes here are
smaller (``--n-official``); the table says how many showers each preset saw, and
the official network runs in float32 (official code: float64) unless
``--official-float64`` is given.

Usage::

    python bench/classifier_presets.py [--n-official 4000] [--n-fast 20000] [--threads 1]

Writes ``bench/results/classifier_presets.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import platform
import time
from pathlib import Path

import numpy as np

from physgen.calo.evaluate.classifier import ClassifierConfig, run_classifier
from physgen.calo.geometry import Geometry, get_geometry

RESULTS = Path(__file__).resolve().parent / "results"
#: Finished trainings are cached here (one JSON per run, keyed by its settings), so a
#: long comparison interrupted by the end of a session resumes where it stopped.
CACHE = (
    Path(os.environ.get("PHYSGEN_CACHE", Path.home() / ".cache" / "physgen")) / "classifier-presets"
)
#: Bump when `toy_showers` or `distortions` change: cached runs of another model are stale.
TOY_MODEL_VERSION = 1


def toy_showers(
    n: int, geometry: str | Geometry = "1-photons", seed: int = 0, n_hits: int = 300
) -> tuple[np.ndarray, np.ndarray]:
    """A simple random shower model binned into a polar geometry.

    Incident energy log-uniform in [1, 100] GeV; visible fraction
    N(0.95, 0.02 + 0.05 / sqrt(E / GeV)); a gamma longitudinal profile over the
    layers whose shape grows with log E and fluctuates per shower; ``n_hits``
    deposits per shower with exponential weights, radius ``scale_l * Gamma(1.5)``
    (per-layer scale, per-shower fluctuation), uniform azimuth around a shower
    axis displaced by N(0, 3 mm). Hits outside the last radial edge leak.
    """
    geo = get_geometry(geometry)
    rng = np.random.default_rng(seed)
    layers = geo.relevant_layers
    n_l = len(layers)
    e = 10 ** rng.uniform(3.0, 5.0, size=(n, 1))
    frac = np.clip(rng.normal(0.95, 0.02 + 0.05 / np.sqrt(e[:, 0] / 1e3)), 0.5, 1.2)
    shape = 1.5 + 0.4 * np.log(e[:, 0] / 1e3) + rng.normal(0.0, 0.3, n)
    depth = (np.arange(n_l) + 0.5) * 1.2
    logw = (np.clip(shape, 1.05, None)[:, None] - 1) * np.log(depth)[None, :] - depth[None, :]
    w = np.exp(logw - logw.max(axis=1, keepdims=True))
    cdf = np.cumsum(w / w.sum(axis=1, keepdims=True), axis=1)
    lay = (rng.random((n, n_hits))[..., None] > cdf[:, None, :]).sum(-1)
    lay = np.minimum(lay, n_l - 1)
    hit_w = rng.exponential(1.0, (n, n_hits))
    hit_e = hit_w / hit_w.sum(axis=1, keepdims=True) * (frac * e[:, 0])[:, None]
    base_scale = np.array([max(lyr.r_edges[-1], 1.0) / 12.0 for lyr in layers])
    scale = base_scale[lay] * np.exp(rng.normal(0.0, 0.1, (n, 1)))
    r = scale * rng.gamma(1.5, 1.0, (n, n_hits))
    phi = rng.uniform(-math.pi, math.pi, (n, n_hits))
    x = r * np.cos(phi) + rng.normal(0.0, 3.0, (n, 1))
    y = r * np.sin(phi) + rng.normal(0.0, 3.0, (n, 1))
    r, alpha = np.hypot(x, y), np.arctan2(y, x)
    vox = np.full((n, n_hits), -1, dtype=np.int64)
    offsets = list(geo.layer_slices().values())
    for li, lyr in enumerate(layers):
        m = lay == li
        rb = np.searchsorted(np.asarray(lyr.r_edges), r[m], side="right") - 1
        ab = np.floor((alpha[m] + math.pi) / (2 * math.pi / lyr.n_alpha)).astype(np.int64)
        ab = np.clip(ab, 0, lyr.n_alpha - 1)
        ok = (rb >= 0) & (rb < lyr.n_radial)
        vox[m] = np.where(ok, offsets[li].start + ab * lyr.n_radial + rb, -1)
    rows = np.broadcast_to(np.arange(n)[:, None], vox.shape)
    keep = vox >= 0
    flat = rows[keep] * geo.n_voxels + vox[keep]
    showers = np.bincount(flat, weights=hit_e[keep], minlength=n * geo.n_voxels)
    return e, showers.reshape(n, geo.n_voxels)


def drop_layer(x: np.ndarray, geometry: Geometry, layer_id: int) -> np.ndarray:
    out = x.copy()
    out[:, geometry.layer_slice(layer_id)] = 0.0
    return out


def radial_shift(x: np.ndarray, geometry: Geometry) -> np.ndarray:
    """Move every layer's energy one radial bin outwards (the last bin keeps its own)."""
    out = x.copy()
    for lyr in geometry.relevant_layers:
        sl = geometry.layer_slice(lyr.id)
        g = x[:, sl].reshape(len(x), lyr.n_alpha, lyr.n_radial)
        s = np.zeros_like(g)
        s[..., 1:] = g[..., :-1]
        s[..., -1] += g[..., -1]
        out[:, sl] = s.reshape(len(x), -1)
    return out


def distortions(geometry: Geometry) -> dict[str, object]:
    return {
        "none": lambda x: x,
        "scale_1.05": lambda x: x * 1.05,
        "drop_layer_3": lambda x: drop_layer(x, geometry, 3),
        "radial_shift": lambda x: radial_shift(x, geometry),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-official", type=int, default=3000, help="showers per class, both presets")
    ap.add_argument(
        "--n-fast", type=int, default=15000, help="showers per class, extra fast-only run"
    )
    ap.add_argument("--official-float64", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu", help="torch device for the classifiers (cuda)")
    ap.add_argument(
        "--seeds", default="0", help="comma-separated seeds (new samples and training each)"
    )
    ap.add_argument(
        "--low", default="none,scale_1.05,drop_layer_3,radial_shift", help="distortions for cls-low"
    )
    ap.add_argument("--high", default="scale_1.05", help="distortions for cls-high")
    ap.add_argument("--out", default=str(RESULTS / "classifier_presets"))
    ap.add_argument("--no-cache", action="store_true", help=f"ignore and do not write {CACHE}")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    geo = get_geometry("1-photons")
    official = ClassifierConfig.official()
    if not args.official_float64:
        official = dataclasses.replace(official, dtype="float32")
    fast = ClassifierConfig.fast()
    n_max = max(args.n_official, args.n_fast)
    seeds = [int(v) for v in args.seeds.split(",")]
    t0 = time.perf_counter()
    data = {
        s: (toy_showers(n_max, geo, seed=1000 + s), toy_showers(n_max, geo, seed=2000 + s))
        for s in seeds
    }
    t_gen = time.perf_counter() - t0
    dist = distortions(geo)
    jobs = [("cls-low", d) for d in args.low.split(",") if d] + [
        ("cls-high", d) for d in args.high.split(",") if d
    ]

    def cache_file(mode: str, name: str, cfg: ClassifierConfig, n: int, s: int) -> Path:
        key = json.dumps(
            [TOY_MODEL_VERSION, mode, name, cfg.to_dict(), n, n_max, s, args.device],
            sort_keys=True,
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return CACHE / f"{mode}-{name}-{cfg.name}-n{n}-s{s}-{digest}.json"

    def run(mode: str, name: str, cfg: ClassifierConfig, n: int, s: int) -> dict[str, object]:
        cached = cache_file(mode, name, cfg, n, s)
        if not args.no_cache and cached.is_file():
            result: dict[str, object] = json.loads(cached.read_text())
            print(
                f"{mode:9s} {name:14s} {cfg.name:8s} seed={s} n={n:6d} AUC={result['auc']:.4f} (cached)"
            )
            return result
        result = train(mode, name, cfg, n, s)
        if not args.no_cache:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(f".{cached.name}.tmp-{os.getpid()}")
            tmp.write_text(json.dumps(result))
            os.replace(tmp, cached)
        return result

    def train(mode: str, name: str, cfg: ClassifierConfig, n: int, s: int) -> dict[str, object]:
        (e_ref, x_ref), (e_gen, x_gen) = data[s]
        xd = dist[name](x_gen[:n])  # type: ignore[operator]
        t = time.perf_counter()
        res = run_classifier(
            (e_ref[:n], x_ref[:n]), (e_gen[:n], xd), geo, mode, cfg, seed=s, device=args.device
        )
        wall = time.perf_counter() - t
        print(
            f"{mode:9s} {name:14s} {cfg.name:8s} seed={s} n={n:6d} AUC={res.auc:.4f} JSD={res.jsd:.4f} "
            f"epochs={res.epochs_run[0]} wall={wall:.0f}s",
            flush=True,
        )
        return {
            "seed": s,
            "n_per_class": n,
            "auc": res.auc,
            "jsd": res.jsd,
            "auc_uncalibrated": res.auc_uncalibrated,
            "jsd_uncalibrated": res.jsd_uncalibrated,
            "epochs_run": res.epochs_run[0],
            "best_epoch": res.repeats[0].best_epoch,
            "n_parameters": res.n_parameters,
            "wall_s": wall,
            "split_per_class": list(res.split),
        }

    def summary(runs: list[dict[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {
            k: float(np.mean([r[k] for r in runs])) for k in ("auc", "jsd", "epochs_run", "wall_s")
        }  # type: ignore[misc]
        out["auc_per_seed"] = [r["auc"] for r in runs]
        out["n_per_class"] = runs[0]["n_per_class"]
        out["runs"] = runs
        return out

    # Seed-major order: every row gets its first seed before any gets its second, so an
    # interrupted run (resumed from the cache) has a complete first pass.
    runs: dict[tuple[str, str, str, int], dict[str, object]] = {}
    for s in seeds:
        for mode, name in jobs:
            for cfg in (fast, official):
                runs[mode, name, cfg.name, s] = run(mode, name, cfg, args.n_official, s)
    rows = []
    for mode, name in jobs:
        row: dict[str, object] = {"mode": mode, "distortion": name}
        row["fast"] = summary([runs[mode, name, fast.name, s] for s in seeds])
        row["official"] = summary([runs[mode, name, official.name, s] for s in seeds])
        if args.n_fast and args.n_fast != args.n_official:
            row["fast_large"] = summary([run(mode, name, fast, args.n_fast, seeds[0])])
        rows.append(row)
    meta = {
        "geometry": "1-photons",
        "seeds": seeds,
        "torch_threads": args.threads,
        "device": args.device,
        "official_dtype": official.dtype,
        "official_config": official.to_dict(),
        "fast_config": fast.to_dict(),
        "data_generation_s": t_gen,
        "total_wall_s": time.perf_counter() - t0,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs (shared)",
        "torch": torch.__version__,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    os.replace(tmp, out.with_suffix(".json"))
    cmd = (
        f"python bench/classifier_presets.py --n-official {args.n_official} --n-fast {args.n_fast} "
        f"--threads {args.threads} --device {args.device} --seeds {args.seeds}{' --official-float64' if args.official_float64 else ''}"
    )
    lines = [
        "# Classifier presets: official vs fast (synthetic 1-photons showers)",
        "",
        f"Command: `{cmd}`",
        "",
        f"Both presets see the same **{args.n_official} showers per class** (the official test uses 121,000;"
        " the official 9.15 M-parameter network for 50 epochs is too slow on CPU for that), 60/20/20 split,"
        f" one training per seed, seeds {seeds}: each seed draws new reference and generated samples and"
        " trains anew; AUC/JSD/epochs/wall are means over seeds, per-seed AUCs in brackets."
        f" Official network in {official.dtype} (official code: float64)."
        f" The last two columns repeat the fast preset on {args.n_fast} showers per class (first seed only)."
        f" {args.threads} torch thread(s) on {meta['machine']}; wall times include input building and"
        " depend on the load of the shared machine. Reference and generated samples are two independent"
        " draws of the toy shower model `toy_showers`; the distortion is applied to the generated one.",
        "",
        "| mode | distortion | fast AUC | official AUC | fast JSD | official JSD | fast epochs | official epochs "
        "| fast wall [s] | official wall [s] | fast AUC, large n | fast wall [s], large n |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]

    def auc_text(x: dict[str, object]) -> str:
        vals = x["auc_per_seed"]
        text = f"{x['auc']:.4f}"
        if len(vals) > 1:  # type: ignore[arg-type]
            text += " (" + ", ".join(f"{v:.3f}" for v in vals) + ")"  # type: ignore[union-attr]
        return text

    for row in rows:
        f, o = row["fast"], row["official"]  # type: ignore[index]
        big = row.get("fast_large")
        big_auc = f"{big['auc']:.4f}" if big else "-"  # type: ignore[index]
        big_wall = f"{big['wall_s']:.0f}" if big else "-"  # type: ignore[index]
        lines.append(
            f"| {row['mode']} | {row['distortion']} | {auc_text(f)} | {auc_text(o)} | {f['jsd']:.4f} | {o['jsd']:.4f} "
            f"| {f['epochs_run']:.0f} | {o['epochs_run']:.0f} | {f['wall_s']:.0f} | {o['wall_s']:.0f} | {big_auc} | {big_wall} |"
        )
    lines += [
        "",
        f"Total wall time {meta['total_wall_s']:.0f} s (data generation {t_gen:.0f} s).",
        "",
    ]
    tmp = out.with_suffix(".md.tmp")
    tmp.write_text("\n".join(lines))
    os.replace(tmp, out.with_suffix(".md"))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
