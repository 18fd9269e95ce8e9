"""``bench/trust.py dctr`` and ``bench/trust.py showers``: refinement and statistical power of
trained 1-photons surrogates.

Data (cascade simulator, ``physgen simulate --geometry 1-photons --particle photon --n 10000
--energy ds1 --seed S``, cached under ``~/.cache/physgen/trust-bench/calo``): seed 11 trains the
surrogates (``physgen train --model gan|cfm --geometry 1-photons --seed 1 --max-time ...``,
runs in ``~/.cache/physgen/trust-bench/runs``), seed 12 (reference A) trains the refiners,
seed 13 (reference B) judges them, so the judged showers and reference events are ones the
refiner never saw.

``dctr``, per family: generate for reference A's energies (seed 101), train the refiner on
(generated A, reference A), generate for reference B's energies (seed 202) with the refiner,
then ``physgen evaluate`` that file against reference B twice: ``--no-weights`` (the
unrefined surrogate) and with the weights (refined). Fast classifier, ``--repeats``
trainings.

``showers``: the amplification factor (arXiv:2008.06545) of E_tot/E_inc and of the two
main layers' energy fractions, in equal-probability bins at each of the 15 incident
energies; truth = references A and B together (20,000 cascade showers, their own noise
subtracted), N_train = the 10,000 training showers.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

CACHE = Path(os.environ.get("PHYSGEN_CACHE", Path.home() / ".cache" / "physgen")) / "trust-bench"
CALO, RUNS = CACHE / "calo", CACHE / "runs"
GEO = "1-photons"
FILES = {"train": 11, "ref_a": 12, "ref_b": 13}


def _home(p: Path) -> str:
    """A path for the results files: ``~/...`` under the home folder (no machine paths)."""
    try:
        return "~/" + str(Path(p).resolve().relative_to(Path.home()))
    except ValueError:
        return str(p)


def data_file(key: str) -> Path:
    """A cached cascade file (simulated by the commands in the module docstring)."""
    p = CALO / f"ds1-cascade-10000-{FILES[key]}.h5"
    if not p.exists():
        raise SystemExit(
            f"{p} missing: physgen simulate --geometry 1-photons --particle photon --n 10000 "
            f"--energy ds1 --seed {FILES[key]} --workers 2 --out {p}"
        )
    return p


def run_dir(family: str, suffix: str = "") -> Path:
    """The cached run of ``family``; ``suffix`` picks a variant (``-long``: the GAN resumed
    with ``physgen train ... --resume --max-time 36m``, to 56,338 steps)."""
    d = RUNS / f"{family}-1-photons{suffix}"
    if not (d / "weights.pt").exists():
        raise SystemExit(
            f"{d} missing: physgen train --model {family} --geometry 1-photons --seed 1 "
            f"--max-time 45m --data {data_file('train')} --out {d}"
        )
    return d


def _generate(run: Path, energies_from: Path, seed: int, out: Path, refiner: Any = None) -> Path:
    from physgen.calo.generate import generate_showers
    from physgen.calo.rundir import load_run

    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        generate_showers(load_run(run), out, energies_from=energies_from, seed=seed,
                         geometry=GEO, progress=False, refiner=refiner)  # fmt: skip
    return out


def _summary(r: dict[str, Any]) -> dict[str, Any]:
    cls = r.get("classifier", {})
    return {
        "auc_low": [cls["cls-low"]["auc"], cls["cls-low"]["auc_std"]] if "cls-low" in cls else None,
        "auc_high": [cls["cls-high"]["auc"], cls["cls-high"]["auc_std"]]
        if "cls-high" in cls
        else None,
        "fpd": r.get("fpd_kpd", {}).get("fpd"),
        "kpd": r.get("fpd_kpd", {}).get("kpd"),
        "separation": {g: v["mean"] for g, v in r.get("separation_power_summary", {}).items()},
        "weights": r.get("weights"),
    }


def run_dctr(args: Any) -> dict[str, Any]:
    import torch

    from physgen.calo.evaluate.pipeline import evaluate
    from physgen.calo.refine import ShowerRefiner, fit_refiner, run_digest

    torch.set_num_threads(args.threads)
    out: dict[str, Any] = {}
    for fam in args.families:
        run = run_dir(fam, args.run_suffix)
        digest = run_digest(run)
        work = CACHE / "dctr" / f"{fam}-{digest[:10]}"
        t0 = time.perf_counter()
        gen_a = _generate(run, data_file("ref_a"), 101, work / "gen-a.h5")
        t_gen = time.perf_counter() - t0
        settings = [args.inputs, args.clip, 0, args.refiner_members, "temperature", "rule-3"]
        rkey = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:8]
        rpath = work / f"refiner-{args.inputs}-{rkey}.pt"
        t0 = time.perf_counter()
        if rpath.exists():
            refiner = ShowerRefiner.load(rpath)
        else:
            refiner = fit_refiner(gen_a, data_file("ref_a"), GEO, inputs=args.inputs,
                                  clip=args.clip, seed=0, threads=args.threads, model=fam,
                                  digest=digest, members=args.refiner_members)  # fmt: skip
            refiner.info["train_seconds"] = time.perf_counter() - t0
            refiner.save(rpath)
        t_fit = float(refiner.info.get("train_seconds", 0.0))
        gen_b = _generate(run, data_file("ref_b"), 202, work / f"gen-b-{rkey}.h5", refiner)
        res: dict[str, Any] = {"run": _home(run), "refiner": _home(rpath),
                               "temperature": refiner.info.get("temperature"),
                               "clip": args.clip, "refiner_members": args.refiner_members,
                               "generated_b": _home(gen_b),
                               "refiner_holdout": refiner.info.get("holdout"),
                               "refiner_train_s": t_fit, "generate_a_s": t_gen,
                               "refiner_train_diagnostics": refiner.info.get("train_diagnostics")}  # fmt: skip
        for label, use in (("unrefined", False), ("refined", True)):
            ev = work / f"eval-{label}-{rkey}"
            print(f"{fam}: evaluating {label}", flush=True)
            r = evaluate(gen_b, data_file("ref_b"), GEO, args.modes, ev, repeats=args.repeats,
                         threads=args.threads, use_weights=use, label=f"{fam} ({label})",
                         plots=label == "refined").results  # fmt: skip
            res[label] = _summary(r)
            res[label]["eval_dir"] = _home(ev)
        out[fam + args.tag] = res
        u, f = res["unrefined"], res["refined"]
        print(f"{fam}: AUC low {u['auc_low'][0]:.3f} -> {f['auc_low'][0]:.3f}, high "
              f"{u['auc_high'][0]:.3f} -> {f['auc_high'][0]:.3f}, ESS "
              f"{100 * f['weights']['ess_fraction']:.1f} %", flush=True)  # fmt: skip
    out["settings"] = {"inputs": args.inputs, "clip": args.clip, "repeats": args.repeats,
                       "run_suffix": args.run_suffix,
                       "modes": args.modes, "refiner_members": args.refiner_members}  # fmt: skip
    return out


def _features(path: Path | tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``(N, 4)``: E_inc, E_tot / E_inc and the two main layers' E_layer / E_inc."""
    from physgen.calo.evaluate.features import compute_features

    f = compute_features(path, GEO)
    e = f.incident_energy
    return np.stack([e, f.etot_over_einc(), f.e_layer[:, 1] / e, f.e_layer[:, 2] / e], axis=1)


def run_showers(args: Any) -> dict[str, Any]:
    import torch

    from physgen.calo.rundir import load_run
    from physgen.errors import DataFormatError
    from physgen.trust import amplification, conditional_quantile_binning

    torch.set_num_threads(args.threads)
    truth = np.concatenate([_features(data_file("ref_a")), _features(data_file("ref_b"))])
    train = _features(data_file("train"))
    names = {1: "E_tot/E_inc", 2: "E_layer1/E_inc", 3: "E_layer2/E_inc"}
    out: dict[str, Any] = {"n_truth": len(truth), "n_train": len(train), "families": {}}
    for fam in args.families:
        run = run_dir(fam)
        n_max = args.gan_max if fam == "gan" else args.max_generated
        path = CACHE / "amplification" / f"{fam}-{n_max}-{_digest(run)}.npz"
        if not path.exists():
            t0 = time.perf_counter()
            path.parent.mkdir(parents=True, exist_ok=True)
            model = load_run(run).eval()
            e = np.random.default_rng(5).choice(truth[:, 0], size=n_max)
            xs = []
            with torch.no_grad():
                for i in range(0, n_max, 5000):
                    g = torch.Generator().manual_seed(1000 + i)
                    eb = torch.from_numpy(e[i : i + 5000].reshape(-1, 1))
                    xs.append(model(eb).sample(generator=g).numpy())
            feats = _features((e.reshape(-1, 1), np.concatenate(xs)))
            np.savez(path.with_suffix(".tmp.npz"), feats=feats, seconds=time.perf_counter() - t0)
            os.replace(path.with_suffix(".tmp.npz"), path)
        with np.load(path) as z:
            big, t_gen = z["feats"], float(z["seconds"])
        sizes = [s for s in args.sizes if s <= len(big)]

        def gen(n: int, s: int, big: np.ndarray = big) -> np.ndarray:
            return big[np.random.default_rng(s).choice(len(big), size=n, replace=False)]

        res: dict[str, Any] = {"n_generated_max": len(big), "generate_s": t_gen}
        for col, name in names.items():
            for q in args.quantiles:
                try:
                    b = conditional_quantile_binning(truth[:, [0, col]], q)
                except DataFormatError as exc:  # e.g. a layer without energy at low E_inc
                    print(f"{fam} {name} {q} quantiles: skipped ({exc})", flush=True)
                    res[f"{name} q{q}"] = {"skipped": str(exc)}
                    continue
                a = amplification([lambda n, s, c=col: gen(n, s)[:, [0, c]]], [train[:, [0, col]]],
                                  b, sizes, seed=3, truth_events=len(truth))  # fmt: skip
                res[f"{name} q{q}"] = a.as_dict()
                print(f"{fam} {name} {q} quantiles x 15 energies: amplification "
                      + ", ".join(f"{n}: {v:.2f}" for n, v in zip(sizes, a.amplification)),
                      flush=True)  # fmt: skip
        out["families"][fam] = res
    return out


def _digest(run: Path) -> str:
    from physgen.calo.refine import run_digest

    return run_digest(run)[:10]


def plot_dctr(res: dict[str, Any], path: Path) -> None:
    """Per family: E_tot/E_inc of reference B, the unrefined and the refined showers, and the
    distribution of the weights."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as hep

    from physgen.calo.io import read_showers, read_weights

    plt.style.use(hep.style.ROOT)
    fams = [f for f in ("gan", "cfm", "flow", "diffusion", "vae") if f in res]
    fig, axes = plt.subplots(2, len(fams), figsize=(7 * len(fams), 10), squeeze=False)
    e_r, x_r = read_showers(data_file("ref_b"))
    edges = np.linspace(0.4, 1.2, 61)
    for i, fam in enumerate(fams):
        gen = Path(res[fam]["generated_b"]).expanduser()
        e_g, x_g = read_showers(gen)
        w = read_weights(gen)
        assert w is not None
        ax = axes[0, i]
        for v, ww, lab, col, kw in (
            (
                x_r.sum(1) / e_r[:, 0],
                None,
                "cascade (reference B)",
                "k",
                {"histtype": "fill", "alpha": 0.3},
            ),
            (x_g.sum(1) / e_g[:, 0], None, f"{fam}, unrefined", "C0", {"histtype": "step"}),
            (x_g.sum(1) / e_g[:, 0], w, f"{fam}, refined (DCTR)", "C1", {"histtype": "step"}),
        ):
            h, _ = np.histogram(v, edges, weights=ww)
            h2, _ = np.histogram(v, edges, weights=None if ww is None else ww**2)
            norm = h.sum() * np.diff(edges)
            hep.histplot(
                h / norm, edges, yerr=np.sqrt(h2) / norm, ax=ax, label=lab, color=col, **kw
            )
        u, f = res[fam]["unrefined"], res[fam]["refined"]
        ax.set_title(
            f"{fam}: low-level AUC {u['auc_low'][0]:.3f} → {f['auc_low'][0]:.3f}", fontsize=16
        )
        ax.set_xlabel("$E_{tot}/E_{inc}$")
        ax.set_ylabel("normalised entries / bin width")
        ax.set_yscale("log")
        ax.legend(fontsize=12, loc="upper left")
        ax2 = axes[1, i]
        ax2.hist(
            w,
            bins=np.logspace(-3, np.log10(max(w.max(), 10) * 1.1), 60),
            histtype="step",
            color="C1",
            lw=1.5,
        )
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ess = f["weights"]["ess_fraction"]
        ax2.set_title(f"{fam}: DCTR weights (ESS {100 * ess:.0f} %)", fontsize=16)
        ax2.set_xlabel("DCTR weight (clipped, then mean 1 per energy)", fontsize=16)
        ax2.set_ylabel("showers")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
