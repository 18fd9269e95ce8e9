"""Benchmark: the differentiable calorimeter (DiffGFlash) against numba GFlash and the cascade.

(a) **Distribution check.** ``--n`` geometry-2 electron showers, incident energies
log-uniform in ``--energy`` (default the CaloChallenge datasets-2/3 spectrum 1 GeV-1 TeV),
from the numba engine through the ``physgen simulate --engine gflash`` driver
(:func:`physgen.calo.simulate.run.simulate`, seed ``--seed``) and from
:class:`physgen.diffsim.calorimeter.DiffGFlash` in hard-binning mode for the *same*
incident energies (noise seed ``--seed + 1000``), both calibrated (raw / visible fraction).
The CaloChallenge low-level classifier (``cls-low``: log10 E_inc and voxel/E_inc; the
``fast`` preset of :func:`physgen.calo.evaluate.classifier.run_classifier`, 60/20/20 split)
separates them; also compared: E_tot/E_inc (mean, width) per energy decade, the mean layer
energies, the longitudinal centre of gravity and the number of non-zero voxels.
Samples are cached under ``~/.cache/physgen/diffsim/`` keyed by the settings.

(b) **Optimisation.** Pb/LAr (4 mm LAr), 25 X0, 10 GeV electrons, target sigma_E/E = 5 %,
active material 10x the absorber's cost (cost model in :mod:`physgen.diffsim.detector`):
gradient descent on ``r = d_Pb / d_LAr`` through DiffGFlash (``--opt-n`` showers, fixed
random numbers), the grid scan with the numba engine on real slab stacks (``--grid-n``
showers per ratio, bootstrap 1 sigma), and cascade-MC spot checks (``--cascade-n`` showers
at a few ratios).

Usage::

    NUMBA_NUM_THREADS=1 python bench/diffsim_calo.py --threads 1

Writes ``bench/results/diffsim_calo.md``, ``.json`` and ``diffsim_calo_optimum.png``.
Timings depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
CACHE = Path(os.environ.get("PHYSGEN_CACHE", Path.home() / ".cache" / "physgen")) / "diffsim"
GEO = "2"


def _home(p: Path) -> str:
    try:
        return "~/" + str(Path(p).resolve().relative_to(Path.home()))
    except ValueError:
        return str(p)


def _numba_sample(n: int, energy: str, seed: int) -> tuple[Path, float]:
    from physgen.calo.simulate.run import simulate

    tag = energy.replace(":", "-")
    path = CACHE / f"gflash-numba-{GEO}-electron-{tag}-n{n}-seed{seed}.h5"
    t = 0.0
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        simulate(GEO, "electron", n, energy, seed, path, engine="gflash", workers=1,
                 compression="lzf", progress=False)  # fmt: skip
        t = time.perf_counter() - t0
    return path, t


def _diff_sample(e_inc: np.ndarray, energy: str, seed: int) -> tuple[np.ndarray, float]:
    import torch

    from physgen.diffsim.calorimeter import DiffGFlash, par04_stack

    tag = energy.replace(":", "-")
    path = CACHE / f"diffgflash-hard-{GEO}-electron-{tag}-n{e_inc.size}-seed{seed}.npy"
    if path.exists():
        return np.load(path), 0.0
    t0 = time.perf_counter()
    sim = DiffGFlash(par04_stack(), GEO)
    out = np.zeros((e_inc.size, 6480), dtype=np.float32)
    batch = 200
    with torch.no_grad():
        for a in range(0, e_inc.size, batch):
            b = min(a + batch, e_inc.size)
            noise = sim.noise(b - a, seed, start=a)
            sh = sim.simulate(torch.as_tensor(e_inc[a:b], dtype=torch.float64), noise)
            out[a:b] = sh.calibrated.numpy().astype(np.float32)
    t = time.perf_counter() - t0
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, out)
    return out, t


def _moments(x: np.ndarray) -> dict[str, float]:
    n = x.size
    return {"mean": float(x.mean()), "mean_err": float(x.std() / np.sqrt(n)),
            "std": float(x.std(ddof=1)), "std_err": float(x.std() / np.sqrt(2 * (n - 1)))}  # fmt: skip


def part_a(args: argparse.Namespace) -> dict[str, Any]:
    from physgen.calo.evaluate.classifier import run_classifier
    from physgen.calo.io import read_showers

    path, t_numba = _numba_sample(args.n, args.energy, args.seed)
    e, ref = read_showers(path, GEO)
    e_inc = e[:, 0].astype(np.float64)
    diff, t_diff = _diff_sample(e_inc, args.energy, args.seed + 1000)
    ref = ref.astype(np.float32)
    out: dict[str, Any] = {
        "n": args.n, "energy": args.energy, "particle": "electron", "geometry": GEO,
        "numba_file": _home(path), "numba_seed": args.seed, "diff_noise_seed": args.seed + 1000,
        "time_numba_s": t_numba or None, "time_diff_s": t_diff or None,
    }  # fmt: skip
    etot = {}
    for lo, hi in ((1e3, 1e4), (1e4, 1e5), (1e5, 1e6 + 1)):
        sel = (e_inc >= lo) & (e_inc < hi)
        key = f"{lo / 1e3:g}-{min(hi, 1e6) / 1e3:g} GeV"
        etot[key] = {
            "n": int(sel.sum()),
            "numba": _moments(ref[sel].sum(1) / e_inc[sel]),
            "diff": _moments(diff[sel].sum(1) / e_inc[sel]),
        }
    out["etot_over_einc"] = etot
    la, lb = ref.reshape(-1, 45, 144).sum(-1), diff.reshape(-1, 45, 144).sum(-1)
    fa, fb = la / e_inc[:, None], lb / e_inc[:, None]
    out["layer_fraction"] = {
        "numba_mean": fa.mean(0).tolist(), "numba_err": (fa.std(0) / np.sqrt(args.n)).tolist(),
        "diff_mean": fb.mean(0).tolist(), "diff_err": (fb.std(0) / np.sqrt(args.n)).tolist(),
    }  # fmt: skip
    depth = np.arange(45)
    out["centre_of_gravity_layer"] = {
        "numba": _moments((la * depth).sum(1) / la.sum(1)),
        "diff": _moments((lb * depth).sum(1) / lb.sum(1)),
    }
    thr = 0.5e-3 / 0.033
    out["nonzero_voxels"] = {"numba": _moments((ref > thr).sum(1).astype(float)),
                             "diff": _moments((diff > thr).sum(1).astype(float))}  # fmt: skip
    if not args.skip_classifier:
        t0 = time.perf_counter()
        res = run_classifier((e, ref), (e, diff), GEO, mode="cls-low", config="fast",
                             seed=args.seed, threads=args.threads)  # fmt: skip
        out["classifier"] = {**res.to_dict(), "time_s": time.perf_counter() - t0}
        print(f"(a) classifier cls-low AUC {res.auc:.4f} (JSD {res.jsd:.4f})", flush=True)
    return out


def part_b(args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from physgen.diffsim.detector import (
        CalorimeterDesign,
        cascade_check,
        crossing,
        grid_scan,
        optimise,
        resolution,
    )

    design, target, energies = CalorimeterDesign(), 0.05, [10.0]
    t0 = time.perf_counter()
    opt = optimise(design, target, energies, n=args.opt_n, steps=args.steps, seed=args.seed)
    print(f"(b) gradient optimum r = {opt.ratio:.4f} +- {opt.ratio_error:.4f} "
          f"({opt.time_s:.1f} s)", flush=True)  # fmt: skip
    ratios = [float(v) for v in np.geomspace(0.5, 2.5, 15)]
    fine = [float(v) for v in np.geomspace(0.5, 2.5, 60)]
    t1 = time.perf_counter()
    with torch.no_grad():
        curve = [resolution(design, r, energies, args.opt_n, args.seed).tolist() for r in fine]
    t_curve = time.perf_counter() - t1
    scan = grid_scan(design, ratios, target, energies, n=args.grid_n, seed=args.seed,
                     bootstrap=300)  # fmt: skip
    print(f"(b) grid optimum {scan.optimum} ({scan.time_s:.1f} s)", flush=True)
    spots = sorted({0.6, 1.0, round(opt.ratio, 4), 1.6, 2.5})
    checks = cascade_check(design, spots, energies[0], n=args.cascade_n, seed=args.seed,
                           bootstrap=300)  # fmt: skip
    rs = np.array([c["ratio"] for c in checks])
    cres = np.array([c["cascade"]["resolution"] for c in checks])
    cerr = np.array([c["cascade"]["error"] for c in checks])
    best = scan.optimum
    return {
        "design": design.__dict__, "target": target, "energies_gev": energies,
        "optimisation": opt.to_dict(), "diff_curve": {"ratios": fine, "resolution": curve},
        "time_curve_s": t_curve, "grid": scan.to_dict(), "cascade": checks,
        "cascade_crossing": crossing(rs, cres, cerr, target),
        "within_band": best is not None and best[1] <= opt.ratio <= best[2],
        "time_s": time.perf_counter() - t0,
    }  # fmt: skip


def _pm(v: float, e: float, d: int = 4) -> str:
    return f"{v:.{d}f} ± {e:.{d}f}"


def write_markdown(res: dict[str, Any], path: Path) -> None:
    lines = [
        "# Differentiable calorimeter: DiffGFlash vs numba GFlash, and a detector optimisation",
        "",
        f"Command: `{res['command']}`  ",
        f"physgen {res['physgen_version']}, {res['machine']}, torch threads {res['threads']}, "
        f"total {res['time_s'] / 60:.1f} min. Produced by `bench/diffsim_calo.py`.",
        "",
    ]
    a = res.get("a")
    if a:
        lines += [
            "## (a) DiffGFlash (hard binning) vs `physgen simulate --engine gflash`, geometry 2",
            "",
            f"{a['n']} vs {a['n']} electrons, incident energies log-uniform {a['energy']} "
            f"(the same energies for both; numba file {a['numba_file']}, seed "
            f"{a['numba_seed']}; DiffGFlash noise seed {a['diff_noise_seed']}); both calibrated "
            "(raw / visible fraction 0.0255).",
            "",
        ]
        c = a.get("classifier")
        if c:
            lines += [
                f"**Classifier (cls-low, fast preset, {c['split_per_class']} per class, "
                f"{c['n_repeats']} training): AUC {c['auc']:.4f}, JSD {c['jsd']:.4f}** "
                f"(uncalibrated AUC {c['auc_uncalibrated']:.4f}; {c['time_s']:.0f} s). "
                "Target: AUC ≤ 0.55.",
                "",
            ]
        lines += ["| E_inc | n | E_tot/E_inc numba | DiffGFlash | width numba | DiffGFlash |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for k, v in a["etot_over_einc"].items():
            nb, df = v["numba"], v["diff"]
            lines.append(
                f"| {k} | {v['n']} | {_pm(nb['mean'], nb['mean_err'])} | "
                f"{_pm(df['mean'], df['mean_err'])} | {_pm(nb['std'], nb['std_err'])} | "
                f"{_pm(df['std'], df['std_err'])} |"
            )
        cg, nz = a["centre_of_gravity_layer"], a["nonzero_voxels"]
        lines += [
            "",
            f"Centre of gravity (layer): numba {_pm(cg['numba']['mean'], cg['numba']['mean_err'], 3)}"
            f" (width {cg['numba']['std']:.3f}), DiffGFlash {_pm(cg['diff']['mean'], cg['diff']['mean_err'], 3)}"
            f" (width {cg['diff']['std']:.3f}). Voxels above the 15 keV threshold: numba "
            f"{_pm(nz['numba']['mean'], nz['numba']['mean_err'], 1)}, DiffGFlash "
            f"{_pm(nz['diff']['mean'], nz['diff']['mean_err'], 1)}.",
            "",
            "Mean layer energy / E_inc (x 1e-3), every third layer:",
            "",
            "| layer | numba | DiffGFlash | pull |",
            "|---|---|---|---|",
        ]
        lf = a["layer_fraction"]
        for i in range(0, 45, 3):
            nb, df = lf["numba_mean"][i], lf["diff_mean"][i]
            err = np.hypot(lf["numba_err"][i], lf["diff_err"][i])
            lines.append(f"| {i} | {1e3 * nb:.3f} | {1e3 * df:.3f} | {(df - nb) / err:+.1f} |")
        pulls = (np.array(lf["diff_mean"]) - np.array(lf["numba_mean"])) / np.hypot(
            lf["numba_err"], lf["diff_err"]
        )
        lines += ["", f"All 45 layers: largest |pull| {np.abs(pulls).max():.1f}.", ""]
        if a.get("time_numba_s") or a.get("time_diff_s"):
            lines += [f"Sample times (s, when not cached): numba {a.get('time_numba_s')}, "
                      f"DiffGFlash {a.get('time_diff_s')}.", ""]  # fmt: skip
    b = res.get("b")
    if b:
        o, g, d = b["optimisation"], b["grid"], b["design"]
        lines += [
            "## (b) Sampling-calorimeter optimisation",
            "",
            f"{d['absorber']}/{d['active']}, active {d['active_mm']} mm fixed, depth "
            f"{d['depth_x0']} X0, {b['energies_gev']} GeV electrons, target σ_E/E ≤ "
            f"{100 * b['target']:g} %; cost = π (2 R_M)² · D X0_eff · (r + 10)/(1 + r) "
            "(litres of absorber-equivalent volume, active material 10x the absorber's cost).",
            "",
            f"**Gradient descent** ({o['settings']['steps']} steps of SGD + augmented "
            f"Lagrangian on ln r, {o['settings']['n']} fixed showers, {o['time_s']:.1f} s): "
            f"**r = {_pm(o['ratio'], o['ratio_error'])}** ({o['absorber_mm']:.3f} mm "
            f"{d['absorber']} per {d['active_mm']} mm {d['active']}), cost {o['cost']:.3f} l, "
            f"σ_E/E = {o['resolution'][0]:.5f}.",
            "",
        ]
        if g["optimum"] is not None:
            best = g["optimum"]
            lines += [
                f"**Grid scan** (numba GFlash on slab stacks, {g['settings']['n']} independent "
                f"showers per ratio, bootstrap 1σ, {g['time_s']:.0f} s): crossing at **r = "
                f"{best[0]:.4f}, 1σ band [{best[1]:.4f}, {best[2]:.4f}]**; the gradient "
                f"optimum lies {'inside' if b['within_band'] else 'OUTSIDE'} the band.",
                "",
            ]
        lines += ["| r | cost (l) | σ_E/E numba GFlash | DiffGFlash (fixed sample) |",
                  "|---|---|---|---|"]  # fmt: skip
        curve_r = np.array(b["diff_curve"]["ratios"])
        curve_s = np.array(b["diff_curve"]["resolution"])[:, 0]
        for r, cost, s, e in zip(g["ratios"], g["cost"], g["resolution"], g["error"]):
            lines.append(
                f"| {r:.3f} | {cost:.2f} | {_pm(s[0], e[0])} | {np.interp(r, curve_r, curve_s):.4f} |"
            )
        lines += [
            "",
            "**Cascade spot checks** (particle-by-particle MC, same slab stacks, same showers "
            "count for numba GFlash):",
            "",
            "| r | n | σ_E/E cascade | σ_E/E numba GFlash | cascade/GFlash | "
            "E_active cascade / GFlash raw (MeV) | cascade s |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in b["cascade"]:
            c, gf = row["cascade"], row["gflash"]
            lines.append(
                f"| {row['ratio']:.4g} | {row['n']} | {_pm(c['resolution'], c['error'])} | "
                f"{_pm(gf['resolution'], gf['error'])} | {c['resolution'] / gf['resolution']:.3f} | "
                f"{c['mean_active_mev']:.0f} / {gf['mean_active_mev']:.0f} | {c['time_s']:.1f} |"
            )
        cc = b.get("cascade_crossing")
        lines += [
            "",
            "Cascade crossing of the target (interpolated between the spot checks): "
            + (f"r = {cc[0]:.3f} [{cc[1]:.3f}, {cc[2]:.3f}]." if cc else "none in range."),
            "",
            "![optimum](diffsim_calo_optimum.png)",
            "",
        ]
    path.write_text("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10000, help="showers per sample in (a)")
    ap.add_argument("--energy", default="1GeV:1TeV", help="incident energies of (a)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--opt-n", type=int, default=20000, help="fixed showers of the descent")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--grid-n", type=int, default=10000, help="numba showers per grid ratio")
    ap.add_argument("--cascade-n", type=int, default=2000, help="cascade showers per check")
    ap.add_argument("--skip-a", action="store_true")
    ap.add_argument("--skip-b", action="store_true")
    ap.add_argument("--skip-classifier", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    import torch

    from physgen._version import __version__
    from physgen.outputs import atomic_write_text, json_ready

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    res: dict[str, Any] = {
        "command": "python bench/diffsim_calo.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        "physgen_version": __version__,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "threads": args.threads,
        "date": time.strftime("%Y-%m-%d"),
    }
    if not args.skip_a:
        res["a"] = part_a(args)
    if not args.skip_b:
        res["b"] = part_b(args)
    res["time_s"] = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "diffsim_calo.json", json.dumps(json_ready(res), indent=2) + "\n")
    if "b" in res:
        from physgen.diffsim.calo_plot import optimum_figure

        optimum_figure(res["b"], args.out / "diffsim_calo_optimum.png")
    write_markdown(res, args.out / "diffsim_calo.md")
    print((args.out / "diffsim_calo.md").read_text())


if __name__ == "__main__":
    main()
