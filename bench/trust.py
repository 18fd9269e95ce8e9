"""Benchmark: trusting generated samples (issue 20).

Sub-commands:

* ``toy``: the statistical power of generated samples (GANplification, arXiv:2008.06545) on
  the paper's kind of toys: a 1-D "camel" (two Gaussians, ``0.5 N(-1.5, 0.5²) + 0.5 N(1.5,
  0.5²)``) and a 5-D spherical shell (radius ``N(1, 0.1²)``, direction uniform). For each
  repeat, ``N_train = 100`` (``--n-train``) true events train a small unconditional spline
  flow (``physgen.density.fit``, :data:`FLOW_CONFIG`) and a fit of the correct functional form (two-Gaussian maximum
  likelihood; radius mean and width); samples of growing size are compared with the truth
  in equal-probability bins (:mod:`physgen.trust.amplification`): the mean discrepancy, the
  number of true events the sample is worth and the amplification ``N_equiv / N_train``.

* ``coverage``: model uncertainty from ensembles (deep, bootstrap, Bayesian flow) on a 2-D toy
  with a known density: the coverage of the ±1σ bands and their width in core and tails
  (:mod:`trust_coverage`).

* ``dctr`` and ``showers``: DCTR refinement and the amplification factor of trained
  1-photons surrogates (GAN and CFM presets) on cascade showers (:mod:`trust_showers`).

Usage::

    python bench/trust.py toy --repeats 10 --epochs 60 --threads 1
    python bench/trust.py coverage --members 8 --datasets 2 --n-train 2000 --cov-epochs 30
    python bench/trust.py dctr --families gan,cfm --repeats 3 --threads 2
    python bench/trust.py showers --families gan,cfm

Writes ``bench/results/trust.md``, ``trust.json`` and ``trust_amplification_<toy>.png``;
each repeat's fit is cached under ``~/.cache/physgen/trust-bench``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import optimize, stats

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
CACHE = Path(os.environ.get("PHYSGEN_CACHE", Path.home() / ".cache" / "physgen")) / "trust-bench"
#: Bump when the protocol changes: cached results are stale.
PROTOCOL = 1
SIZES = [100, 300, 1_000, 3_000, 10_000, 30_000, 100_000]
#: A small spline flow for 100 training events: two transforms of 16 x 16 hidden units, a fixed
#: number of steps (batch 30, no early stopping: 10 validation events cannot select an epoch),
#: AdamW weight decay 1e-3 as the regulariser that lets it interpolate.
FLOW_CONFIG = {
    "shape_transforms": 2,
    "shape_hidden": [16, 16],
    "shape_bins": 8,
    "energy_transforms": 2,
    "energy_hidden": [16, 16],
}
FLOW_OPTIM = {"patience": 0, "batch_size": 30, "weight_decay": 1e-3}


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps([PROTOCOL, *parts], sort_keys=True).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------- toys


def camel(n: int, rng: np.random.Generator) -> np.ndarray:
    """``0.5 N(-1.5, 0.5²) + 0.5 N(1.5, 0.5²)``, shape ``(n, 1)``."""
    sign = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return (1.5 * sign + 0.5 * rng.normal(size=n))[:, None]


def shell(n: int, rng: np.random.Generator, dim: int = 5) -> np.ndarray:
    """Radius ``N(1, 0.1²)``, direction uniform on the (dim-1)-sphere, shape ``(n, dim)``."""
    u = rng.normal(size=(n, dim))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    return u * rng.normal(1.0, 0.1, size=(n, 1))


def camel_fit(x: np.ndarray) -> Callable[[int, int], np.ndarray]:
    """Maximum-likelihood two-Gaussian mixture (the correct functional form)."""
    v = x[:, 0]

    def nll(p: np.ndarray) -> float:
        f = 1 / (1 + np.exp(-p[0]))
        dens = f * stats.norm.pdf(v, p[1], np.exp(p[2])) + (1 - f) * stats.norm.pdf(
            v, p[3], np.exp(p[4])
        )
        return float(-np.sum(np.log(dens + 1e-300)))

    p = optimize.minimize(
        nll,
        [0.0, -1.0, np.log(0.7), 1.0, np.log(0.7)],
        method="Nelder-Mead",
        options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-8},
    ).x
    f = 1 / (1 + np.exp(-p[0]))

    def sample(n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        first = rng.random(n) < f
        out = np.where(first, rng.normal(p[1], np.exp(p[2]), n), rng.normal(p[3], np.exp(p[4]), n))
        return out[:, None]

    return sample


def shell_fit(x: np.ndarray) -> Callable[[int, int], np.ndarray]:
    """Radius mean and width, uniform direction (the correct functional form)."""
    r = np.linalg.norm(x, axis=1)
    mu, sd = float(r.mean()), float(r.std(ddof=1))

    def sample(n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        u = rng.normal(size=(n, x.shape[1]))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        return u * rng.normal(mu, sd, size=(n, 1))

    return sample


def shell_binning(k_r: int, k_a: int, dim: int = 5) -> Any:
    """Bins: ``k_r`` radius quantiles x ``k_a`` quantiles of ``x1 / r`` (independent for a
    uniform direction, so every cell has probability exactly ``1 / (k_r k_a)``)."""
    from physgen.trust import Binning

    r_edges = stats.norm.ppf(np.arange(1, k_r) / k_r, 1.0, 0.1)
    # x1 / r on the (dim-1)-sphere: (c + 1) / 2 ~ Beta((dim-1)/2, (dim-1)/2)
    a = (dim - 1) / 2
    c_edges = 2 * stats.beta.ppf(np.arange(1, k_a) / k_a, a, a) - 1

    def assign(v: np.ndarray) -> np.ndarray:
        v = np.atleast_2d(v)
        r = np.linalg.norm(v, axis=1)
        c = v[:, 0] / np.where(r > 0, r, 1.0)
        return (np.searchsorted(r_edges, r) * k_a + np.searchsorted(c_edges, c)).astype(np.int64)

    return Binning(assign, np.full(k_r * k_a, 1.0 / (k_r * k_a)), f"{k_r} radius x {k_a} angle")


TOYS: dict[str, dict[str, Any]] = {
    "camel": {"sample": camel, "fit": camel_fit, "dim": 1},
    "shell5d": {"sample": shell, "fit": shell_fit, "dim": 5},
}


def binnings(toy: str) -> dict[str, Any]:
    from physgen.trust import quantile_binning

    if toy == "camel":
        truth = camel(2_000_000, np.random.default_rng(99))
        return {f"{k} quantiles": quantile_binning(truth, k) for k in (5, 10, 20, 50)}
    return {f"{kr}x{ka}": shell_binning(kr, ka) for kr, ka in ((5, 2), (10, 4))}


# --------------------------------------------------------------------------- run


def flow_sampler(x: np.ndarray, seed: int, epochs: int, threads: int) -> Any:
    """A spline flow on the training set, cached as a large sample (sampling is the cost)."""
    import torch

    from physgen import density

    torch.set_num_threads(threads)
    path = CACHE / f"flow-{_key(x.tolist(), seed, epochs, FLOW_CONFIG, FLOW_OPTIM)}.npy"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        est = density.fit(
            x,
            model="flow",
            config=FLOW_CONFIG,
            optim=FLOW_OPTIM,
            epochs=epochs,
            seed=seed,
            progress=False,
        )
        big = np.asarray(est().sample(max(SIZES) * 4, seed=seed), dtype=np.float64)
        big = big.reshape(-1, x.shape[1])
        np.save(path.with_suffix(".tmp.npy"), big)
        os.replace(path.with_suffix(".tmp.npy"), path)
    big = np.load(path)

    def sample(n: int, s: int) -> np.ndarray:
        idx = np.random.default_rng(s).choice(big.shape[0], size=n, replace=False)
        return big[idx]

    return sample


def run_toy(args: argparse.Namespace) -> dict[str, Any]:
    from physgen.trust import amplification

    out: dict[str, Any] = {}
    for toy, spec in TOYS.items():
        t0 = time.process_time()
        train = [
            spec["sample"](args.n_train, np.random.default_rng([7, r])) for r in range(args.repeats)
        ]
        draw = spec["sample"]
        truth_gen = [
            (lambda n, s, draw=draw: draw(n, np.random.default_rng([8, s]))) for _ in train
        ]
        models = {
            "flow": [flow_sampler(t, r, args.epochs, args.threads) for r, t in enumerate(train)],
            "fit": [spec["fit"](t) for t in train],
            "truth": truth_gen,
        }
        res: dict[str, Any] = {}
        for bname, b in binnings(toy).items():
            res[bname] = {
                m: amplification(g, train, b, SIZES, seed=1).as_dict() for m, g in models.items()
            }
            line = ", ".join(f"{m} {r['amplification'][-1]:.2f}" for m, r in res[bname].items())
            print(f"{toy} {bname}: amplification at n = {SIZES[-1]}: {line}", flush=True)
        out[toy] = {"results": res, "cpu_s": time.process_time() - t0}
        _plot(toy, res, args.n_train)
    out["settings"] = {
        "n_train": args.n_train,
        "repeats": args.repeats,
        "flow_epochs": args.epochs,
        "flow_config": FLOW_CONFIG,
        "flow_optim": FLOW_OPTIM,
        "sizes": SIZES,
    }
    return out


def _plot(toy: str, res: dict[str, Any], n_train: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mplhep as hep

    plt.style.use(hep.style.ROOT)
    names = list(res)
    fig, axes = plt.subplots(1, len(names), figsize=(6.5 * len(names), 6), squeeze=False)
    styles = {
        "flow": ("C0", "o", "spline flow"),
        "fit": ("C1", "s", "correct-form fit"),
        "truth": ("k", "", "true events"),
    }
    for ax, bname in zip(axes[0], names):
        for m, r in res[bname].items():
            c, mk, label = styles[m]
            n = np.asarray(r["sizes"])
            d, e = np.asarray(r["discrepancy"]), np.asarray(r["discrepancy_err"])
            ax.errorbar(
                n,
                d,
                yerr=e,
                color=c,
                marker=mk,
                ms=5,
                lw=1.5,
                capsize=2,
                ls="--" if m == "truth" else "-",
                label=label,
            )
        d_train = res[bname]["flow"]["train_discrepancy"]
        ax.axhline(d_train, color="grey", ls=":", lw=1.5, label=f"training set ({n_train})")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("generated events n")
        ax.set_ylabel(r"discrepancy $D=\sum_j (f_j-p_j)^2/p_j$")
        ax.set_title(f"{toy}: {bname}", fontsize=16)
        ax.legend(fontsize=12, loc="lower left")
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    fig.savefig(RESULTS / f"trust_amplification_{toy}.png", dpi=90)
    plt.close(fig)


# --------------------------------------------------------------------------- report


def write_results(res: dict[str, Any], command: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    jpath = RESULTS / "trust.json"
    old = json.loads(jpath.read_text()) if jpath.exists() else {}
    for key, value in res.items():  # dctr and showers: one family per run is merged in
        if key in ("dctr", "showers") and isinstance(old.get(key), dict):
            merged = dict(old[key])
            if key == "showers":
                fams = {**merged.get("families", {}), **value.get("families", {})}
                merged.update(value)
                merged["families"] = fams
            else:
                merged.update(value)
            old[key] = merged
        else:
            old[key] = value
    old["machine"] = f"{platform.machine()} {os.cpu_count()} CPUs"
    tmp = jpath.with_suffix(".tmp")
    tmp.write_text(json.dumps(old, indent=1))
    tmp.replace(jpath)
    md = [
        "# Trusting generated samples (bench/trust.py)",
        "",
        f"Last command: `{command}`; {old['machine']}.",
        "",
    ]
    if "toy" in old:
        t = old["toy"]
        s = t["settings"]
        md += [
            "## Statistical power of generated samples (arXiv:2008.06545)",
            "",
            f"N_train = {s['n_train']} true events per repeat, {s['repeats']} repeats (mean "
            f"discrepancy over repeats); flow: {s['flow_config']}, {s['flow_epochs']} epochs of "
            f"100 steps, {s['flow_optim']}. "
            "Amplification = N_equiv / N_train with N_equiv = (K − 1) / D; "
            "'truth' is a sample of true events of the same size (its amplification is n / "
            "N_train by construction).",
            "",
        ]
        for toy in TOYS:
            if toy not in t:
                continue
            md += [
                f"### {toy}",
                "",
                "| binning | model | "
                + " | ".join(f"n={n}" for n in s["sizes"])
                + " | training set |",
                "|---|---|" + "---|" * (len(s["sizes"]) + 1),
            ]
            for bname, per in t[toy]["results"].items():
                for m, r in per.items():
                    tr = r["train_equivalent"] / r["n_train"]
                    md.append(
                        f"| {bname} | {m} | "
                        + " | ".join(f"{a:.2f}" for a in r["amplification"])
                        + f" | {tr:.2f} |"
                    )
            md += [
                "",
                f"CPU: {t[toy]['cpu_s']:.0f} s.",
                "",
                f"![{toy}](trust_amplification_{toy}.png)",
                "",
            ]
    if "coverage" in old:
        md += coverage_markdown(old["coverage"])
    if "dctr" in old:
        md += dctr_markdown(old["dctr"])
    if "showers" in old:
        md += showers_markdown(old["showers"])
    (RESULTS / "trust.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def coverage_markdown(c: dict[str, Any]) -> list[str]:
    """The coverage section of trust.md."""
    s = c["settings"]
    md = [
        "## Model uncertainty: ensemble bands and their coverage",
        "",
        f"`{c.get('command', '')}`: 2-D toy (x1 camel, x2 | x1 Gaussian), N_train = "
        f"{s['n_train']}, K = {s['members']} members, {s['datasets']} independent data sets, "
        f"{s['n_sample']:,} events per member, bins of x1 on [-3.5, 3.5] (35); flow "
        f"{s['flow']}, {s['epochs']} epochs of 100 steps (Bayesian: twice as many). Core = "
        "bins with true probability above the median, tails = the rest.",
        "",
        "| ensemble | coverage | core | tails | rel. width core | rel. width tails | "
        "rms pull | trainings per band | training time (all data sets) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, r in c["kinds"].items():
        md.append(
            f"| {kind} | {r['coverage']:.2f} | {r['coverage_core']:.2f} | "
            f"{r['coverage_tails']:.2f} | {r['rel_width_core']:.3f} | "
            f"{r['rel_width_tails']:.3f} | {r['pull_rms']:.2f} | {r['trainings_per_band']} | "
            f"{r['train_seconds_total']:.0f} s |"
        )
    md += ["", "![coverage](trust_coverage.png)", ""]
    return md


def dctr_markdown(d: dict[str, Any]) -> list[str]:
    """The DCTR section of trust.md."""
    st = d["settings"]
    md = [
        "## DCTR refinement of 1-photons surrogates",
        "",
        f"`{d.get('command', '')}`. Refiner: {st.get('refiner_members', 1)} fast classifiers "
        f"on `{st['inputs']}` inputs (mean log ratio), trained on 8,000 generated vs 8,000 "
        "cascade showers (reference A, seed 12; the other 2,000 + 2,000 fix the temperature), "
        "weights clipped at the `clip` column's value and normalised per incident energy. Judged on 10,000 new "
        "generated showers against reference B (seed 13, never seen by the refiner), fast "
        f"classifier, {st['repeats']} trainings (mean ± std).",
        "",
        "| family | clip | AUC low unrefined | AUC low refined | AUC high unrefined | "
        "AUC high refined | ESS | FPD x10³ unref. / ref. | sep. E_tot/E unref. / ref. | "
        "refiner training |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for fam, r in d.items():
        if fam in ("settings", "command"):
            continue
        u, f = r["unrefined"], r["refined"]

        def auc(x: Any) -> str:
            return "–" if x is None else f"{x[0]:.3f} ± {x[1]:.3f}"

        fpd = "–"
        if u.get("fpd") is not None and f.get("fpd") is not None:
            fpd = f"{1e3 * u['fpd']:.1f} / {1e3 * f['fpd']:.1f}"
        sep = "–"
        if "E_tot_per_E" in u["separation"]:
            sep = f"{u['separation']['E_tot_per_E']:.4f} / {f['separation']['E_tot_per_E']:.4f}"
        md.append(
            f"| {fam} | {r.get('clip', st['clip']):g} | {auc(u['auc_low'])} | "
            f"**{auc(f['auc_low'])}** | {auc(u['auc_high'])} | "
            f"{auc(f['auc_high'])} | {100 * f['weights']['ess_fraction']:.1f} % | {fpd} | {sep} | "
            f"{r['refiner_train_s']:.0f} s |"
        )
    md += ["", "![dctr](trust_dctr.png)", ""]
    return md


def showers_markdown(d: dict[str, Any]) -> list[str]:
    """The shower amplification section of trust.md."""
    md = [
        "## Statistical power of surrogate showers",
        "",
        f"`{d.get('command', '')}`: truth = {d['n_truth']:,} cascade showers (references A and "
        f"B; their own noise (K − 1) / {d['n_truth']:,} subtracted from every discrepancy), "
        f"N_train = {d['n_train']:,} (the surrogates' training set); equal-probability bins "
        "at each of the 15 incident energies (K = 15 × quantiles); generated showers for "
        "incident energies drawn from the truth. Amplification = N_equiv / N_train.",
        "",
    ]
    for fam, res in d["families"].items():
        keys = [k for k in res if isinstance(res[k], dict) and "sizes" in res[k]]
        if not keys:
            continue
        sizes = res[keys[0]]["sizes"]
        md += [
            f"### {fam} ({res['n_generated_max']:,} showers generated in {res['generate_s']:.0f} s)",
            "",
            "| feature | training set | " + " | ".join(f"n={n:,}" for n in sizes) + " |",
            "|---|---|" + "---|" * len(sizes),
        ]
        for k in keys:
            r = res[k]
            tr = r["train_equivalent"] / r["n_train"]
            md.append(
                f"| {k} | {tr:.2f} | " + " | ".join(f"{a:.2f}" for a in r["amplification"]) + " |"
            )
        md.append("")
    return md


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("what", choices=["toy", "coverage", "dctr", "showers"])
    ap.add_argument("--families", default="gan,cfm", help="dctr/showers: surrogate families")
    ap.add_argument("--inputs", default="cls-low", help="dctr: refiner inputs")
    ap.add_argument("--clip", type=float, default=3.0, help="dctr: largest weight")
    ap.add_argument("--refiner-members", type=int, default=5, help="dctr: classifiers averaged")
    ap.add_argument(
        "--run-suffix", default="", help="dctr: run variant (-long: GAN trained longer)"
    )
    ap.add_argument("--tag", default="", help="dctr: suffix of the result's name (e.g. -clip1.5)")
    ap.add_argument("--repeats", type=int, default=None, help="toy: 10; dctr: classifier runs (3)")
    ap.add_argument("--modes", default="cls-low,cls-high,hist,fpd,kpd", help="dctr: modes")
    ap.add_argument("--sizes", default="2500,5000,10000,20000,50000,100000,200000")
    ap.add_argument("--quantiles", default="5,10", help="showers: quantiles per energy")
    ap.add_argument("--max-generated", type=int, default=30_000, help="showers: non-GAN")
    ap.add_argument("--gan-max", type=int, default=200_000, help="showers: GAN showers")
    ap.add_argument("--n-train", type=int, default=None, help="toy: 100; coverage: 2000")
    ap.add_argument("--members", type=int, default=8, help="coverage: ensemble size K")
    ap.add_argument("--datasets", type=int, default=2, help="coverage: independent data sets")
    ap.add_argument("--n-sample", type=int, default=200_000, help="coverage: events per member")
    ap.add_argument("--cov-epochs", type=int, default=30, help="coverage: epochs of 100 steps")
    ap.add_argument("--epochs", type=int, default=60, help="flow: epochs of 100 steps")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    command = "python bench/trust.py " + " ".join(sys.argv[1:])
    res = {}
    args.families = [f for f in args.families.split(",") if f]
    args.sizes = [int(v) for v in args.sizes.split(",")]
    args.quantiles = [int(v) for v in args.quantiles.split(",")]
    if args.what == "toy":
        args.n_train = args.n_train or 100
        args.repeats = args.repeats or 10
        res["toy"] = run_toy(args)
    elif args.what == "dctr":
        from trust_showers import plot_dctr, run_dctr

        args.repeats = args.repeats or 3
        res["dctr"] = run_dctr(args)
        res["dctr"]["command"] = command
    elif args.what == "showers":
        from trust_showers import run_showers

        res["showers"] = run_showers(args)
        res["showers"]["command"] = command
    elif args.what == "coverage":
        from trust_coverage import plot_coverage, run_coverage

        args.n_train = args.n_train or 2000
        args.epochs = args.cov_epochs
        res["coverage"] = run_coverage(args)
        res["coverage"]["command"] = command
        plot_coverage(res["coverage"], RESULTS / "trust_coverage.png")
    write_results(res, command)
    if args.what == "dctr":  # every family measured so far, from the merged results
        from trust_showers import plot_dctr

        plot_dctr(
            json.loads((RESULTS / "trust.json").read_text())["dctr"], RESULTS / "trust_dctr.png"
        )


if __name__ == "__main__":
    main()
