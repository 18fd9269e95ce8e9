"""Benchmark: unbinned unfolding (OmniFold, generative, IBU) and the reference OmniFold package.

Three benchmarks (issue 17), each a sub-command; ``all`` runs them in order:

* ``gaussian``: the 1-D example of the OmniFold paper (arXiv:1911.09107; the hep-lbdl
  notebook): simulation N(0, 1), nature N(0.2, 0.8), Gaussian smearing σ = 0.5, 10 %
  inefficiency and 10 % fakes. OmniFold, generative unfolding (flow, CFM) and IBU; the
  unfolded mean and width against nature's, with bootstrap errors.
* ``zjet``: pp → Z(→νν)+jet at 13 TeV from Pythia 8 (``physgen.events``), the six jet
  observables of the OmniFold benchmark, "simulation" = the ``sim`` configuration, "nature" =
  ``nature``. Per observable the Wasserstein distance ×10 and the triangular discriminator ×10³
  between each unfolded result and nature's particle level (conventions of arXiv:2404.18807),
  a 6-D classifier AUC unfolded vs truth, and the coverage of nature's truth by the bootstrap
  bands.
* ``noise``: OmniFold's training noise: the Z+jet events unfolded with several classifier
  seeds, one classifier per step against an ensemble; the metrics' spread over the seeds.
* ``closure``: a reweighted closure test on Z+jet: half of ``sim`` reweighted at particle
  level to nature's shape is the pseudo-data, so the response is the MC's own; OmniFold
  against IBU without the model dependence of ``sim`` → ``nature``.
* ``reference``: the same Z+jet events, iterations and network (3 × 100 LeakyReLU) with the
  reference package ``omnifold`` 0.1.36 (TensorFlow, run in its own venv by
  ``bench/omnifold_peer.py``; ``bash bench/make_omnifold_venv.sh``): metrics and CPU time side
  by side.

Samples are cached by their settings (``~/.cache/physgen/events``), every stage's result under
``~/.cache/physgen/unfold-bench``; an interrupted run resumes. Writes ``bench/results/unfold.md``,
``unfold.json`` and figures ``bench/results/unfold_*.png``.

Usage::

    python bench/unfold.py gaussian
    python bench/unfold.py zjet --n 60000 --workers 1
    bash bench/make_omnifold_venv.sh && python bench/unfold.py reference --n 60000
    python bench/unfold.py report        # tabulate cached results only
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
CACHE = Path(os.environ.get("PHYSGEN_CACHE", Path.home() / ".cache" / "physgen")) / "unfold-bench"
PEER_PYTHON = BENCH.parent / ".venv-bench-omnifold" / "bin" / "python"
#: Bump when physgen's unfolding defaults or this script's protocol change.
PROTOCOL = 1


# --------------------------------------------------------------------------- helpers


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps([PROTOCOL, *parts], sort_keys=True).encode()).hexdigest()[:12]


def _cached(name: str, parts: Any, fn: Any, use_cache: bool = True) -> dict[str, Any]:
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"{name}-{_key(parts)}.json"
    if use_cache and path.exists():
        out: dict[str, Any] = json.loads(path.read_text())
        print(f"[cache] {name}: {path.name}", flush=True)
        return out
    out = fn()
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(out, indent=1))
    tmp.replace(path)
    return out


def _moments(x: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    m = float(np.average(x, weights=w))
    return m, float(np.sqrt(np.average((x - m) ** 2, weights=w)))


def _machine() -> str:
    return f"{platform.machine()} {os.cpu_count()} CPUs"


def bench_classifier(name: str) -> Any:
    """The unfolding classifier: a preset name, or ``3x100`` = physgen's ``small`` unfolding
    preset (Adam 1e-3, batch 1000, at most 30 epochs, patience 5 on the held-out loss,
    standardised inputs) with 3 hidden layers of 100 LeakyReLU units: the network of the
    side-by-side run with the reference package; ``package`` = that network with the
    package's schedule (batch 128, Adam 1e-4, at most 50 epochs, patience 10)."""
    import dataclasses

    from physgen.unfold.omnifold import PRESETS

    three = dataclasses.replace(PRESETS["small"], name="3x100", hidden=100)
    if name == "package":  # the reference package's schedule on the same network
        return dataclasses.replace(
            three, name="package", batch_size=128, lr=1e-4, max_epochs=50, patience=10
        )
    return three if name == "3x100" else name


# --------------------------------------------------------------------------- gaussian


def gaussian_sample(n: int, mu: float, sigma: float, seed: int) -> Any:
    """The OmniFold paper's 1-D example: truth N(mu, sigma), smearing 0.5, 10 % inefficiency
    (gen-passing events that fail reco) and 10 % fakes (reco-passing events without a
    particle-level partner, reco ~ N(0, 1.2) in both samples)."""
    from physgen.unfold.data import make_mc

    rng = np.random.default_rng(seed)
    gen = rng.normal(mu, sigma, n)
    reco = gen + rng.normal(0.0, 0.5, n)
    pass_gen = rng.random(n) >= 0.1  # 10 % of the rows are fakes
    pass_reco = np.where(pass_gen, rng.random(n) >= 0.1, True)  # 10 % inefficiency
    reco = np.where(pass_gen, reco, rng.normal(0.0, 1.2, n))
    gen = np.where(pass_gen, gen, 0.0)
    reco = np.where(pass_reco, reco, 0.0)
    return make_mc(
        gen[:, None], reco[:, None], pass_gen=pass_gen, pass_reco=pass_reco, columns=["x"]
    )


def run_gaussian(args: argparse.Namespace) -> dict[str, Any]:
    from physgen.unfold.data import data_from_truth
    from physgen.unfold.generative import generative_unfold
    from physgen.unfold.ibu import ibu
    from physgen.unfold.omnifold import omnifold

    n, boot = args.n_gauss, args.bootstrap
    mc = gaussian_sample(n, 0.0, 1.0, seed=1)
    nature = gaussian_sample(n, 0.2, 0.8, seed=2)
    data = data_from_truth(nature)
    truth = nature.gen[nature.pass_gen, 0]
    rows: dict[str, Any] = {
        "settings": {
            "n": n,
            "bootstrap": boot,
            "iterations": args.gauss_iterations,
            "gen_iterations": args.gen_iterations,
            "gen_max_time": args.gen_max_time,
        },
        "truth": _moments(truth, np.ones_like(truth)),
        "prior": _moments(mc.gen[mc.pass_gen, 0], np.ones(int(mc.pass_gen.sum()))),
    }

    def of() -> dict[str, Any]:
        t0 = time.process_time()
        r = omnifold(
            mc,
            data,
            iterations=args.gauss_iterations,
            bootstrap=boot,
            classifier="small",
            seed=0,
            threads=args.threads,
        )
        x, w = r.unfolded(mc)
        wb = r.bootstrap_weights(mc)
        reps = [_moments(x[:, 0], b) for b in wb]
        m = mc.pass_gen
        per_it = [_moments(x[:, 0], r.push[i][m] * mc.weight[m]) for i in range(r.push.shape[0])]
        return {
            "moments": _moments(x[:, 0], w),
            "per_iteration": per_it,
            "boot_std": np.std(reps, axis=0, ddof=1).tolist(),
            "cpu_s": time.process_time() - t0,
        }

    rows["omnifold"] = _cached("gauss-omnifold", [rows["settings"]], of, not args.no_cache)

    for model in args.gauss_generative:

        def gen(model: str = model, seed: int = 0) -> dict[str, Any]:
            t0 = time.process_time()
            r = generative_unfold(
                mc,
                data,
                model=model,
                iterations=args.gen_iterations,
                samples_per_event=1,
                classifier="small",  # prior, purity and efficiency: OmniFold's classifier
                seed=seed,
                max_time=args.gen_max_time,
            )
            per_it = [[t["unfolded_mean"], t["unfolded_std"]] for t in r.training]
            x, w = r.samples.reshape(-1, 1)[:, 0], r.weights.reshape(-1)
            # data bootstrap: Poisson(1) weights per measured event, carried by its samples
            rng = np.random.default_rng(7)
            s = r.samples.shape[1]
            reps = [
                _moments(x, w * np.repeat(rng.poisson(1.0, r.samples.shape[0]), s))
                for _ in range(max(boot, 2))
            ]
            cal = r.calibration.as_dict() if r.calibration is not None else None
            return {
                "moments": _moments(x, w),
                "boot_std": np.std(reps, axis=0, ddof=1).tolist(),
                "calibration": cal,
                "per_iteration": per_it,
                "cpu_s": time.process_time() - t0,
            }

        rows[f"generative-{model}"] = _cached(
            f"gauss-gen-{model}", [rows["settings"]], gen, not args.no_cache
        )
        if args.gen_seeds > 1:  # the training's own spread: the whole chain with other seeds
            runs = [rows[f"generative-{model}"]["moments"]] + [
                _cached(
                    f"gauss-gen-{model}",
                    [rows["settings"], seed],
                    lambda seed=seed, model=model: gen(model, seed),
                    not args.no_cache,
                )["moments"]
                for seed in range(1, args.gen_seeds)
            ]
            rows[f"generative-{model}"]["train_std"] = np.std(runs, axis=0, ddof=1).tolist()
            rows[f"generative-{model}"]["seed_moments"] = runs

    def ib() -> dict[str, Any]:
        edges = np.linspace(-4, 4, 41)
        r = ibu(mc, data, 0, edges, iterations=args.gauss_iterations, bootstrap=boot, seed=0)
        centres = 0.5 * (edges[1:] + edges[:-1])
        cnt = np.clip(r.final, 0, None)
        reps = [_moments(centres, np.clip(b, 0, None) + 1e-300) for b in r.bootstrap]
        return {
            "moments": _moments(centres, cnt + 1e-300),
            "boot_std": np.std(reps, axis=0, ddof=1).tolist(),
            "note": "bin centres, 40 bins in [-4, 4]",
        }

    rows["ibu"] = _cached("gauss-ibu", [rows["settings"]], ib, not args.no_cache)
    return rows


# --------------------------------------------------------------------------- Z+jet


def zjet_samples(args: argparse.Namespace) -> tuple[Any, Any]:
    from physgen.events import generate_sample
    from physgen.unfold.data import read_mc

    samples = [
        generate_sample(config=cfg, n=args.n, seed=seed, workers=args.workers, progress=True)
        for cfg, seed in (("sim", 11), ("nature", 12))
    ]
    return read_mc(samples[0].path), read_mc(samples[1].path)


def run_zjet(args: argparse.Namespace) -> dict[str, Any]:
    from physgen.metrics.twosample import two_sample_test
    from physgen.unfold.data import data_from_truth
    from physgen.unfold.generative import generative_unfold
    from physgen.unfold.ibu import event_weights, ibu
    from physgen.unfold.metrics import (
        bin_coverage,
        bootstrap_band,
        default_bins,
        density_histogram,
        summary_table,
    )
    from physgen.unfold.omnifold import omnifold

    mc, nature = zjet_samples(args)
    data = data_from_truth(nature)
    cols = list(mc.columns)
    truth = (nature.gen[nature.pass_gen], nature.weight[nature.pass_gen])
    prior = (mc.gen[mc.pass_gen], mc.weight[mc.pass_gen])
    settings = {
        "n": args.n,
        "iterations": args.iterations,
        "bootstrap": args.bootstrap,
        "bootstrap_mc": args.bootstrap_mc,
        "classifier": args.classifier,
        "n_mc": mc.n_events,
        "n_data": data.n_events,
    }
    bins = {c: default_bins(truth[0][:, j], truth[1]) for j, c in enumerate(cols)}
    out: dict[str, Any] = {"settings": settings, "columns": cols}

    def of() -> dict[str, Any]:
        t0 = time.process_time()
        r = omnifold(
            mc,
            data,
            iterations=args.iterations,
            ensemble=args.ensemble,
            bootstrap=args.bootstrap,
            bootstrap_mc=args.bootstrap_mc,
            efficiency=args.efficiency,
            classifier=bench_classifier(args.classifier),
            seed=0,
            threads=args.threads,
            progress=True,
        )
        cpu = time.process_time() - t0
        np.savez(CACHE / f"zjet-omnifold-{_key(of_settings)}.npz", push=r.push, boot=r.bootstrap)
        return {"cpu_s": cpu, "timings": r.timings}

    # (ensembles change only OmniFold: IBU and the generative results keep their cache keys)
    of_settings = settings if args.ensemble == 1 else {**settings, "ensemble": args.ensemble}
    if args.efficiency != "keep":
        of_settings = {**of_settings, "efficiency": args.efficiency}
    out["omnifold"] = _cached("zjet-omnifold", [of_settings], of, not args.no_cache)
    out["omnifold"]["ensemble"] = args.ensemble
    z = np.load(CACHE / f"zjet-omnifold-{_key(of_settings)}.npz")
    m = mc.pass_gen
    methods: dict[str, Any] = {"prior (sim)": prior}
    for it in range(1, z["push"].shape[0]):
        methods[f"omnifold it{it}"] = (mc.gen[m], z["push"][it][m] * mc.weight[m])

    def ib() -> dict[str, Any]:
        t0 = time.process_time()
        res, cover = {}, {}
        for j, c in enumerate(cols):
            # binned in the simulation's particle-level range (not the truth's): IBU's own
            # binning, 40 bins or integer bins, as for the metrics
            edges = default_bins(prior[0][:, j], prior[1])
            r = ibu(
                mc,
                data,
                j,
                edges,
                iterations=args.iterations,
                bootstrap=args.bootstrap,
                bootstrap_mc=args.bootstrap_mc,
                seed=0,
            )
            w = event_weights(r, mc)
            res[c] = w.tolist()
            if args.bootstrap >= 2:  # the same band and truth histogram as for OmniFold
                wb = np.clip(event_weights(r, mc, counts=r.bootstrap), 0, None)
                nom, _ = density_histogram(prior[0][:, j], bins[c], w)
                _, std = bootstrap_band(prior[0][:, j], wb, bins[c])
                tr, _ = density_histogram(truth[0][:, j], bins[c], truth[1])
                cover[c] = bin_coverage(nom, nom - std, nom + std, tr)
        return {"weights": res, "coverage": cover, "cpu_s": time.process_time() - t0}

    ibu_out = _cached("zjet-ibu", [settings], ib, not args.no_cache)
    out["ibu_cpu_s"] = ibu_out["cpu_s"]
    out["ibu_coverage"] = ibu_out["coverage"]
    # IBU unfolds each observable on its own: per observable the MC events reweighted by the
    # bin ratios of that observable (metrics below use only that column)
    ibu_w = {c: np.asarray(ibu_out["weights"][c]) for c in cols}

    gen_results: dict[str, Any] = {}
    for model in args.generative:

        def gen(model: str = model) -> dict[str, Any]:
            t0 = time.process_time()
            r = generative_unfold(
                mc,
                data,
                model=model,
                iterations=args.gen_iterations,
                samples_per_event=1,
                classifier=bench_classifier(args.classifier),
                seed=0,
                max_time=args.gen_max_time,
                progress=True,
            )
            x, w = r.flat()
            np.savez(
                CACHE
                / f"zjet-gen-{model}-{_key(settings, args.gen_max_time, args.gen_iterations)}.npz",
                x=x,
                w=w,
            )
            return {"cpu_s": time.process_time() - t0, "summary": r.summary()}

        gen_results[model] = _cached(
            f"zjet-gen-{model}",
            [settings, args.gen_max_time, args.gen_iterations],
            gen,
            not args.no_cache,
        )
        g = np.load(
            CACHE / f"zjet-gen-{model}-{_key(settings, args.gen_max_time, args.gen_iterations)}.npz"
        )
        methods[f"generative {model}"] = (g["x"], g["w"])
    out["generative"] = gen_results

    table = summary_table(truth, methods, cols, bins=bins)
    for c in cols:  # IBU, one observable at a time
        j = cols.index(c)
        t1 = summary_table(
            (truth[0][:, [j]], truth[1]),
            {"ibu": (prior[0][:, [j]], ibu_w[c])},
            [c],
            bins={c: bins[c]},
        )
        table.setdefault("ibu", {})[c] = t1["ibu"][c]
    out["table"] = table

    # coverage of nature's truth by the bootstrap bands (nominal ± bootstrap std)
    cover = {}
    final = z["push"][-1][m] * mc.weight[m]
    boot = z["boot"][:, m] * mc.weight[m][None, :]
    if boot.shape[0] >= 2:
        for j, c in enumerate(cols):
            nom, _ = density_histogram(prior[0][:, j], bins[c], final)
            _, std = bootstrap_band(prior[0][:, j], boot, bins[c])
            tr, _ = density_histogram(truth[0][:, j], bins[c], truth[1])
            cover[c] = bin_coverage(nom, nom - std, nom + std, tr)
    out["coverage"] = cover

    def aucs() -> dict[str, Any]:
        res = {}
        for name, (x, w) in methods.items():
            if name.startswith("omnifold it") and name != f"omnifold it{args.iterations}":
                continue
            r = two_sample_test(
                truth[0], x, w0=truth[1], w1=w, config="fast", seed=0, threads=args.threads
            )
            res[name] = {"auc": r.auc, "auc_std": r.auc_std}
        return res

    out["auc"] = _cached(
        "zjet-auc",
        [of_settings, list(methods), args.gen_max_time, args.gen_iterations],
        aucs,
        not args.no_cache,
    )

    if not args.no_plots:
        from physgen.unfold.report import write_report

        rep = {
            f"OmniFold ({args.iterations} it.)": (
                mc.gen[m],
                final,
                boot if boot.shape[0] else None,
            ),
        }
        for model in args.generative:
            rep[f"generative {model}"] = (*methods[f"generative {model}"], None)
        d = Path(tempfile.mkdtemp(prefix="unfold-report-"))
        write_report(
            d,
            columns=cols,
            prior=prior,
            data_reco=(data.reco, data.weight),
            unfolded=rep,
            truth=truth,
            title="Z+jet: sim → nature",
            bins=bins,
        )
        for png in sorted(d.glob("*.png")):
            shutil.copy(png, RESULTS / f"unfold_zjet_{png.name}")
        shutil.rmtree(d, ignore_errors=True)
    return out


def ibu_metrics(mc: Any, data: Any, truth: Any, bins: Any, iterations: int) -> dict[str, Any]:
    """IBU of each observable on its own (40 bins or integer bins over the MC's particle-level
    range), its metrics against the truth per observable."""
    from physgen.unfold.ibu import event_weights, ibu
    from physgen.unfold.metrics import default_bins, summary_table

    g = mc.pass_gen
    rows = {}
    for j, c in enumerate(mc.columns):
        edges = default_bins(mc.gen[g, j], mc.weight[g])
        r = ibu(mc, data, j, edges, iterations, bootstrap=0)
        t1 = summary_table(
            (truth[0][:, [j]], truth[1]),
            {"ibu": (mc.gen[g][:, [j]], event_weights(r, mc))},
            [c],
            {c: bins[c]},
        )
        rows[c] = t1["ibu"][c]
    return rows


# --------------------------------------------------------------------------- noise


def run_noise(args: argparse.Namespace) -> dict[str, Any]:
    """OmniFold's training noise on Z+jet: the same events unfolded with several classifier
    seeds, for one classifier per step and for an ensemble; W1 and Δ of the final iteration,
    mean and spread over the seeds, beside IBU (deterministic)."""
    from physgen.unfold.data import data_from_truth
    from physgen.unfold.metrics import default_bins, summary_table
    from physgen.unfold.omnifold import omnifold

    mc, nature = zjet_samples(args)
    data = data_from_truth(nature)
    cols = list(mc.columns)
    truth = (nature.gen[nature.pass_gen], nature.weight[nature.pass_gen])
    bins = {c: default_bins(truth[0][:, j], truth[1]) for j, c in enumerate(cols)}
    m = mc.pass_gen
    out: dict[str, Any] = {
        "settings": {"n": args.n, "iterations": args.iterations, "classifier": args.classifier},
        "columns": cols,
        "runs": {},
    }
    for ens in args.noise_ensembles:
        for seed in range(args.noise_seeds):
            settings = {**out["settings"], "ensemble": ens, "seed": seed}
            if args.efficiency != "keep":
                settings["efficiency"] = args.efficiency

            def run(ens: int = ens, seed: int = seed) -> dict[str, Any]:
                t0 = time.process_time()
                r = omnifold(
                    mc,
                    data,
                    iterations=args.iterations,
                    ensemble=ens,
                    efficiency=args.efficiency,
                    classifier=bench_classifier(args.classifier),
                    seed=seed,
                    threads=args.threads,
                )
                cpu = time.process_time() - t0
                t = summary_table(
                    truth, {"of": (mc.gen[m], r.push[-1][m] * mc.weight[m])}, cols, bins
                )
                return {"cpu_s": cpu, "table": t["of"]}

            out["runs"][f"{ens}-{seed}"] = _cached(
                "noise-omnifold", [settings], run, not args.no_cache
            )
            print(f"ensemble {ens} seed {seed}: cpu {out['runs'][f'{ens}-{seed}']['cpu_s']:.0f} s")
    out["ibu"] = ibu_metrics(mc, data, truth, bins, args.iterations)
    return out


# --------------------------------------------------------------------------- closure


def run_closure(args: argparse.Namespace) -> dict[str, Any]:
    """Reweighted closure test: the method's accuracy when the response is the MC's own.

    The ``sim`` sample's even rows are the MC; its odd rows, reweighted at particle level by
    ``w(z) = p_nature(z) / p_sim(z)`` (a classifier between the two samples' particle-level
    events), are the pseudo-data (their reco values with weights ``w``; fakes weight 1) and,
    at particle level, the truth. The truth's shape is nature's, the detector response is
    the MC's by construction: what remains is the unfolding method's own error, without the
    model dependence of the ``sim`` → ``nature`` benchmark (whose response differs, see the
    README)."""
    import dataclasses

    from physgen.metrics.twosample import fit_likelihood_ratio
    from physgen.unfold.data import make_data
    from physgen.unfold.metrics import default_bins, summary_table
    from physgen.unfold.omnifold import omnifold

    sim, nature = zjet_samples(args)
    cols = list(sim.columns)
    even = np.arange(sim.n_events) % 2 == 0

    def rows(mask: np.ndarray) -> Any:
        return dataclasses.replace(
            sim,
            gen=sim.gen[mask],
            reco=sim.reco[mask],
            pass_gen=sim.pass_gen[mask],
            pass_reco=sim.pass_reco[mask],
            weight=sim.weight[mask],
        )

    mc, odd = rows(even), rows(~even)
    g = sim.pass_gen
    lr = fit_likelihood_ratio(
        sim.gen[g], nature.gen[nature.pass_gen], config="fast", seed=0, threads=args.threads
    )
    w = np.ones(odd.n_events)
    w[odd.pass_gen] = lr(odd.gen[odd.pass_gen])
    w *= odd.pass_gen.sum() / w[odd.pass_gen].sum()
    data = make_data(odd.reco[odd.pass_reco], weight=w[odd.pass_reco], columns=cols)
    truth = (odd.gen[odd.pass_gen], w[odd.pass_gen])
    prior = (mc.gen[mc.pass_gen], mc.weight[mc.pass_gen])
    bins = {c: default_bins(truth[0][:, j], truth[1]) for j, c in enumerate(cols)}
    settings = {"n": args.n, "iterations": args.iterations, "ensemble": args.ensemble}
    if args.efficiency != "keep":
        settings["efficiency"] = args.efficiency

    def of() -> dict[str, Any]:
        t0 = time.process_time()
        r = omnifold(
            mc,
            data,
            iterations=args.iterations,
            ensemble=args.ensemble,
            efficiency=args.efficiency,
            classifier=bench_classifier(args.classifier),
            seed=0,
            threads=args.threads,
        )
        m = mc.pass_gen
        methods = {
            f"omnifold it{i}": (mc.gen[m], r.push[i][m] * mc.weight[m])
            for i in range(1, args.iterations + 1)
        }
        table = summary_table(truth, {"prior (sim)": prior, **methods}, cols, bins)
        return {"cpu_s": time.process_time() - t0, "table": table}

    out = _cached("closure-omnifold", [settings], of, not args.no_cache)
    out["table"]["ibu"] = ibu_metrics(mc, data, truth, bins, args.iterations)
    ess = float(w.sum() ** 2 / (w * w).sum())
    return {**out, "settings": settings, "columns": cols, "data_ess": ess}


# --------------------------------------------------------------------------- reference


def run_reference(args: argparse.Namespace) -> dict[str, Any]:
    from physgen.unfold.data import data_from_truth
    from physgen.unfold.metrics import summary_table
    from physgen.unfold.omnifold import omnifold

    if not PEER_PYTHON.exists():
        raise SystemExit(f"{PEER_PYTHON} missing: run `bash bench/make_omnifold_venv.sh` first")
    mc, nature = zjet_samples(args)
    data = data_from_truth(nature)
    cols = list(mc.columns)
    truth = (nature.gen[nature.pass_gen], nature.weight[nature.pass_gen])
    settings = {
        "n": args.n,
        "iterations": args.iterations,
        "epochs": args.ref_epochs,
        "batch": args.ref_batch,
        "lr": args.ref_lr,
        "patience": args.ref_patience,
        "threads": args.threads,
    }
    cfg = bench_classifier("3x100")  # the same network for both: 3 x 100 LeakyReLU

    def ours() -> dict[str, Any]:
        t0, w0 = time.process_time(), time.perf_counter()
        r = omnifold(
            mc, data, iterations=args.iterations, classifier=cfg, seed=0, threads=args.threads
        )
        cpu, wall = time.process_time() - t0, time.perf_counter() - w0
        np.save(CACHE / f"ref-physgen-{_key(settings)}.npy", r.push[-1])
        return {"cpu_s": cpu, "wall_s": wall}

    def peer() -> dict[str, Any]:
        # standardise with the MC's moments, as the Z+jet demo of 1911.09107 does
        mu = mc.gen[mc.pass_gen].mean(0)
        sd = mc.gen[mc.pass_gen].std(0)
        mur, sdr = mc.reco[mc.pass_reco].mean(0), mc.reco[mc.pass_reco].std(0)
        with tempfile.TemporaryDirectory() as tmp:
            inp, outp = Path(tmp) / "in.npz", Path(tmp) / "out.npz"
            np.savez(
                inp,
                mc_gen=(mc.gen - mu) / sd,
                mc_reco=(mc.reco - mur) / sdr,
                mc_pass_gen=mc.pass_gen,
                mc_pass_reco=mc.pass_reco,
                mc_weight=mc.weight,
                data_reco=(data.reco - mur) / sdr,
                data_weight=data.weight,
            )
            cmd = [
                str(PEER_PYTHON),
                str(BENCH / "omnifold_peer.py"),
                "--inputs",
                str(inp),
                "--out",
                str(outp),
                "--iterations",
                str(args.iterations),
                "--epochs",
                str(args.ref_epochs),
                "--batch-size",
                str(args.ref_batch),
                "--lr",
                str(args.ref_lr),
                "--patience",
                str(args.ref_patience),
                "--layers",
                "100,100,100",
                "--activation",
                "leaky_relu",
                "--threads",
                str(args.threads),
            ]
            subprocess.run(cmd, check=True, cwd=tmp)
            z = np.load(outp)
            np.save(CACHE / f"ref-peer-{_key(settings)}.npy", z["push"][-1])
            return {"cpu_s": float(z["cpu_s"]), "wall_s": float(z["wall_s"])}

    out: dict[str, Any] = {"settings": settings}
    out["physgen"] = _cached("ref-physgen", [settings], ours, not args.no_cache)
    out["omnifold-pkg"] = _cached("ref-peer", [settings], peer, not args.no_cache)
    m = mc.pass_gen
    methods = {
        "prior (sim)": (mc.gen[m], mc.weight[m]),
        "physgen": (
            mc.gen[m],
            np.load(CACHE / f"ref-physgen-{_key(settings)}.npy")[m] * mc.weight[m],
        ),
        "omnifold-pkg": (
            mc.gen[m],
            np.load(CACHE / f"ref-peer-{_key(settings)}.npy")[m] * mc.weight[m],
        ),
    }
    out["table"] = summary_table(truth, methods, cols)
    return out


# --------------------------------------------------------------------------- report


def _fmt_table(table: dict[str, Any], cols: list[str], key: str) -> list[str]:
    lines = ["| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for name, row in table.items():
        lines.append(f"| {name} | " + " | ".join(f"{row[c][key]:.3f}" for c in cols) + " |")
    return lines


def _noise_md(z: dict[str, Any]) -> list[str]:
    cols = z["columns"]
    md = [
        "## OmniFold's training noise (Z+jet, the same events, several classifier seeds)",
        "",
        f"Settings: {z['settings']}. Mean ± standard deviation over the seeds of the final "
        "iteration's metrics; IBU (one observable at a time, no training) for comparison.",
        "",
    ]
    for key, label in (("w1_x10", "W1 ×10"), ("delta_x1e3", "Δ ×10³")):
        md += [f"{label}:", "", "| method | seeds | CPU [s] | " + " | ".join(cols) + " |"]
        md.append("|---|---|---|" + "---|" * len(cols))
        for ens in sorted({int(k.split("-")[0]) for k in z["runs"]}):
            runs = [v for k, v in z["runs"].items() if int(k.split("-")[0]) == ens]
            vals = np.array([[r["table"][c][key] for c in cols] for r in runs])
            cpu = np.mean([r["cpu_s"] for r in runs])
            sd = vals.std(0, ddof=1) if len(runs) > 1 else np.full(len(cols), np.nan)
            md.append(
                f"| OmniFold, ensemble {ens} | {len(runs)} | {cpu:.0f} | "
                + " | ".join(
                    f"{a:.3f} ± {b:.3f}" if len(runs) > 1 else f"{a:.3f}"
                    for a, b in zip(vals.mean(0), sd)
                )
                + " |"
            )
        md.append("| IBU | – | – | " + " | ".join(f"{z['ibu'][c][key]:.3f}" for c in cols) + " |")
        md.append("")
    return md


def write_results(res: dict[str, Any], command: str) -> None:
    RESULTS.mkdir(exist_ok=True)
    old = {}
    jpath = RESULTS / "unfold.json"
    if jpath.exists():
        old = json.loads(jpath.read_text())
    old.update(res)
    old["machine"] = _machine()
    tmp = jpath.with_suffix(".tmp")
    tmp.write_text(json.dumps(old, indent=1))
    tmp.replace(jpath)
    md = [
        "# Unfolding: OmniFold, generative unfolding, IBU (bench/unfold.py)",
        "",
        f"Last command: `{command}`; {_machine()} (shared).",
        "",
    ]
    if "gaussian" in old:
        g = old["gaussian"]
        md += [
            "## Gaussian example (sim N(0,1), nature N(0.2,0.8), σ_smear 0.5, 10 % "
            "inefficiency, 10 % fakes)",
            "",
            f"{g['settings']['n']} events per sample, {g['settings']['iterations']} iterations, "
            f"{g['settings']['bootstrap']} bootstrap replicas of the data.",
            "",
            "| method | mean | width | CPU [s] |",
            "|---|---|---|---|",
            f"| truth (nature) | {g['truth'][0]:.4f} | {g['truth'][1]:.4f} | |",
            f"| prior (sim) | {g['prior'][0]:.4f} | {g['prior'][1]:.4f} | |",
        ]
        for k in ("omnifold", "generative-flow", "generative-cfm", "ibu"):
            if k in g:
                r = g[k]
                e = np.asarray(r.get("boot_std", [float("nan")] * 2))
                if "train_std" in r:  # data bootstrap ⊕ spread over training seeds
                    e = np.hypot(e, np.asarray(r["train_std"]))
                md.append(
                    f"| {k} | {r['moments'][0]:.4f} ± {e[0]:.4f} | "
                    f"{r['moments'][1]:.4f} ± {e[1]:.4f} | {r.get('cpu_s', float('nan')):.0f} |"
                )
        md += ["", "Per iteration (mean, width):", ""]
        for k in ("omnifold", "generative-flow", "generative-cfm"):
            if k in g and g[k].get("per_iteration"):
                its = [np.ravel(v).tolist() for v in g[k]["per_iteration"]]
                first = 0 if k == "omnifold" else 1  # OmniFold's list starts with the prior
                md.append(
                    f"- {k}, iterations {first}–{first + len(its) - 1}: "
                    + ", ".join(f"({a:.3f}, {b:.3f})" for a, b in its)
                )
        md += [
            "",
            "Errors: OmniFold and IBU, the spread over the bootstrap replicas of the data (each "
            "OmniFold replica retrains its classifiers); generative, the data bootstrap (Poisson "
            "weights on the measured events)"
            + (
                f" ⊕ the spread of the whole IcINN chain over {n_seeds} training seeds; the "
                if (n_seeds := len(g.get("generative-flow", {}).get("seed_moments", []))) > 1
                else " (the training's own spread not included); the "
            )
            + f"truth's own statistical error is about {g['truth'][1] / np.sqrt(g['settings']['n']):.4f}.",
            "",
        ]
    if "zjet" in old:
        z = old["zjet"]
        cols = z["columns"]
        md += [
            "## Z+jet, six observables (Pythia 8 `sim` → `nature`)",
            "",
            f"Settings: {z['settings']}.",
            "",
            "Wasserstein distance ×10 to nature's particle level:",
            "",
        ]
        md += _fmt_table(z["table"], cols, "w1_x10")
        md += ["", "Triangular discriminator ×10³:", ""]
        md += _fmt_table(z["table"], cols, "delta_x1e3")
        md += [
            "",
            "6-D classifier AUC, unfolded vs nature's particle level:",
            "",
            "| method | AUC |",
            "|---|---|",
        ]
        md += [f"| {k} | {v['auc']:.4f} |" for k, v in z["auc"].items()]
        md += [
            "",
            "Coverage of nature's truth by the OmniFold bootstrap band (nominal ± 1σ):",
            "",
            "| " + " | ".join(cols) + " |",
            "|" + "---|" * len(cols),
            "| " + " | ".join(f"{z['coverage'].get(c, float('nan')):.2f}" for c in cols) + " |",
            "",
            "The same for IBU (its own bootstrap replicas, one observable at a time):",
            "",
            "| " + " | ".join(cols) + " |",
            "|" + "---|" * len(cols),
            "| " + " | ".join(f"{z['ibu_coverage'].get(c, float('nan')):.2f}" for c in cols) + " |",
            "",
            f"CPU: OmniFold {z['omnifold']['cpu_s']:.0f} s (ensemble "
            f"{z['omnifold'].get('ensemble', 1)}, with bootstrap), IBU {z['ibu_cpu_s']:.0f} s, "
            + ", ".join(f"generative {k} {v['cpu_s']:.0f} s" for k, v in z["generative"].items()),
            "",
        ]
    for key in sorted(k for k in old if k.startswith("noise")):
        md += _noise_md(old[key])
    for key in sorted(k for k in old if k.startswith("closure-")):
        c = old[key]
        md += [
            "## Reweighted closure (the MC's own response; `sim` odd rows reweighted to nature)",
            "",
            f"Settings: {c['settings']}; pseudo-data effective size {c['data_ess']:.0f}.",
            "",
            "W1 ×10:",
            "",
            *_fmt_table(c["table"], c["columns"], "w1_x10"),
            "",
            "Δ ×10³:",
            "",
            *_fmt_table(c["table"], c["columns"], "delta_x1e3"),
            "",
        ]
    if "reference" in old:
        r = old["reference"]
        cols = list(next(iter(r["table"].values())).keys())
        md += [
            "## Side by side with the reference package `omnifold` 0.1.36",
            "",
            f"Settings: {r['settings']}; both 3 × 100 LeakyReLU.",
            "",
            f"CPU: physgen {r['physgen']['cpu_s']:.0f} s ({r['physgen']['wall_s']:.0f} s wall), "
            f"omnifold {r['omnifold-pkg']['cpu_s']:.0f} s ({r['omnifold-pkg']['wall_s']:.0f} s wall): "
            f"{r['omnifold-pkg']['cpu_s'] / max(r['physgen']['cpu_s'], 1e-9):.1f}×.",
            "",
            "W1 ×10:",
            "",
        ]
        md += _fmt_table(r["table"], cols, "w1_x10")
        md += ["", "Δ ×10³:", ""]
        md += _fmt_table(r["table"], cols, "delta_x1e3")
        md.append("")
    (RESULTS / "unfold.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "what", choices=["gaussian", "zjet", "noise", "closure", "reference", "all", "report"]
    )
    ap.add_argument("--n", type=int, default=50_000, help="Z+jet events per sample")
    ap.add_argument("--n-gauss", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--gauss-iterations", type=int, default=8, help="OmniFold, Gaussian")
    ap.add_argument("--gen-iterations", type=int, default=3, help="IcINN iterations")
    ap.add_argument("--gauss-generative", default="flow,cfm", help="families, Gaussian")
    ap.add_argument(
        "--gen-seeds", type=int, default=1, help="Gaussian: generative chains (training spread)"
    )
    ap.add_argument("--bootstrap", type=int, default=10)
    ap.add_argument("--ensemble", type=int, default=1, help="OmniFold classifiers per step")
    ap.add_argument(
        "--bootstrap-mc",
        action="store_true",
        help="Z+jet: replicas fluctuate the MC too (OmniFold, IBU): bands with MC statistics",
    )
    ap.add_argument(
        "--efficiency",
        default="keep",
        choices=["keep", "learn"],
        help="OmniFold: pull weights of events failing reco (package 'keep' or 'learn')",
    )
    ap.add_argument("--noise-seeds", type=int, default=4, help="noise: seeds per ensemble size")
    ap.add_argument("--noise-ensembles", default="1,5", help="noise: ensemble sizes")
    ap.add_argument("--classifier", default="3x100", help="3x100, package, small, fast or official")
    ap.add_argument("--generative", default="flow", help="families for Z+jet (flow,cfm)")
    ap.add_argument("--gen-max-time", default="6m", help="per training")
    ap.add_argument("--ref-epochs", type=int, default=50)
    ap.add_argument("--ref-batch", type=int, default=128)
    ap.add_argument("--ref-lr", type=float, default=1e-4)
    ap.add_argument("--ref-patience", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-cache", action="store_true")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args()
    args.generative = [s for s in args.generative.split(",") if s]
    args.gauss_generative = [s for s in args.gauss_generative.split(",") if s]
    args.noise_ensembles = [int(s) for s in args.noise_ensembles.split(",") if s]
    import torch

    torch.set_num_threads(args.threads)
    command = "python bench/unfold.py " + " ".join(sys.argv[1:])
    res: dict[str, Any] = {}
    if args.what in ("gaussian", "all"):
        res["gaussian"] = run_gaussian(args)
    if args.what in ("zjet", "all"):
        res["zjet"] = run_zjet(args)
    tag = "" if args.efficiency == "keep" else f"-{args.efficiency}"
    if args.what in ("noise", "all"):
        cls = "" if args.classifier == "3x100" else f"-{args.classifier}"
        res[f"noise{tag}{cls}"] = run_noise(args)
    if args.what in ("closure", "all"):
        res[f"closure{tag}-e{args.ensemble}"] = run_closure(args)
    if args.what in ("reference", "all"):
        res["reference"] = run_reference(args)
    write_results(res, command)


if __name__ == "__main__":
    main()
