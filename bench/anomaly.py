"""Benchmark: resonant anomaly detection (issue 18) on real LHC Olympics events and on a Pythia 8
LHCO-like sample.

Sub-commands (``all`` runs them in order, ``report`` tabulates the cached results only):

* ``lhco``: the real LHC Olympics 2020 R&D signal-region arrays published with CATHODE
  (``../shared/lhco``; Pythia 8 + Delphes). No sidebands ship with them, so only the
  classifier-step methods run: the **supervised** reference (54,527 extra signal events vs the
  59,605 background events of the SR "data", labels known) and the **idealized** detector (SR
  data, 60,000 events with 395 signal, vs the background rows of one half of the test file);
  plus the unsupervised **autoencoder** and **flow density** (in the given and in log/logit
  coordinates). All are evaluated on the same events never trained on: the other half of the
  test file and 20,000 held-out extra signal events. Median SIC curves and bands over
  ``--runs`` trainings, as CATHODE plots them.
* ``pythia``: a full LHCO-like sample with sidebands from ``physgen.events`` (QCD dijets and
  the W' -> X(500 GeV) Y(100 GeV) signal injected at the LHCO S/sqrt(B) of 1.6 in the SR):
  CATHODE, CWoLa hunting, ANODE, the idealized detector and the supervised reference, the
  bump hunt after the CATHODE selection; and the **null test** (no signal, ``--null-seeds``
  seeds: local significance of the SR excess after the selection).

Results are cached under ``~/.cache/physgen/anomaly-bench`` by their settings; an
interrupted run resumes. Writes ``bench/results/anomaly.md``, ``anomaly.json`` and figures
``bench/results/anomaly_*.png``.

Usage::

    python bench/anomaly.py lhco --runs 5
    python bench/anomaly.py pythia --n-qcd 300000 --workers 2
    python bench/anomaly.py report
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
LHCO = BENCH.parent.parent / "shared" / "lhco"
CACHE = Path(os.environ.get("PHYSGEN_CACHE", Path.home() / ".cache" / "physgen")) / "anomaly-bench"
#: Bump when physgen's anomaly defaults or this script's protocol change.
PROTOCOL = 1
#: Published max SIC at the LHCO R&D injection (CATHODE repository, commit 629e86db; the
#: release commit 1d0d7eab in brackets): shared reference notes, section 9.
PUBLISHED = {
    "supervised": 17.65,
    "idealized": 15.08,
    "cathode": 13.99,
    "cwola": 10.75,
    "anode": 6.46,
}
#: SIC read off CATHODE's performance figure at eps_S = 0.2 and 0.4 (+-1).
PUBLISHED_SIC = {"supervised": (17, 13), "idealized": (14, 10.5), "cathode": (14, 10.5),
                 "cwola": (10.5, 7), "anode": (6.3, 5)}  # fmt: skip


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps([PROTOCOL, *parts], sort_keys=True).encode()).hexdigest()[:12]


def _cached_arrays(name: str, parts: Any, fn: Any) -> dict[str, Any]:
    """``fn()`` -> dict of arrays and JSON values, cached as an ``.npz`` plus ``.json``."""
    CACHE.mkdir(parents=True, exist_ok=True)
    stem = CACHE / f"{name}-{_key(parts)}"
    if stem.with_suffix(".json").exists():
        meta = json.loads(stem.with_suffix(".json").read_text())
        with np.load(stem.with_suffix(".npz")) as z:
            meta.update({k: z[k] for k in z.files})
        print(f"[cache] {name}", flush=True)
        return meta  # type: ignore[no-any-return]
    out = fn()
    arrays = {k: v for k, v in out.items() if isinstance(v, np.ndarray)}
    meta = {k: v for k, v in out.items() if not isinstance(v, np.ndarray)}
    tmp = stem.with_name(stem.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, stem.with_suffix(".npz"))
    stem.with_suffix(".json").write_text(json.dumps(meta, indent=1))
    return out  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- real LHCO arrays


def lhco_split(seed: int = 0) -> dict[str, Any]:
    """The real SR arrays split into training and evaluation sets (fixed by ``seed``)."""
    from physgen.anomaly import AnomalyEvents, read_events

    data = read_events(LHCO / "innerdata_train.npy", labels="last")
    test = read_events(LHCO / "innerdata_test.npy", labels="last")
    sig = read_events(LHCO / "innerdata_extrasig.npy", labels="last")
    rng = np.random.default_rng(seed)
    half = rng.permutation(len(test)) < len(test) // 2
    sig_order = rng.permutation(len(sig))
    sig_eval, sig_train = sig.select(sig_order[:20_000]), sig.select(sig_order[20_000:])
    template = test.select(half & (test.labels == 0))  # type: ignore[operator]
    evaluation = test.select(~half).concat(sig_eval)
    bkg_data = data.select(data.labels == 0)  # type: ignore[operator]
    assert isinstance(evaluation, AnomalyEvents)
    return {
        "data": data,
        "template": template,
        "evaluation": evaluation,
        "signal_train": sig_train,
        "background_train": bkg_data,
    }


def run_lhco(args: argparse.Namespace) -> dict[str, Any]:
    """Supervised, idealized, autoencoder and flow density on the real SR arrays."""
    import torch

    from physgen.anomaly import Regions, autoencoder, flow_density, idealized, supervised

    torch.set_num_threads(args.threads)
    s = lhco_split()
    data, ev = s["data"], s["evaluation"]
    regions = Regions((3.3, 3.7))
    methods: dict[str, Any] = {
        "supervised": lambda seed: supervised(
            s["signal_train"], s["background_train"], test=ev, folds=args.folds, seed=seed
        ),
        "idealized": lambda seed: idealized(
            data, s["template"], regions, test=ev, folds=args.folds, seed=seed
        ),
        "autoencoder": lambda seed: autoencoder(data, test=ev, seed=seed),
        "flow-density": lambda seed: flow_density(
            data, test=ev, seed=seed, flow={"max_time": args.flow_time}, progress=False
        ),
    }
    out: dict[str, Any] = {
        "sizes": {
            "data": len(data),
            "data_signal": int(data.labels.sum()),
            "idealized_template": len(s["template"]),
            "supervised_signal": len(s["signal_train"]),
            "supervised_background": len(s["background_train"]),
            "evaluation": len(ev),
            "evaluation_signal": int(ev.labels.sum()),
        },
        "labels": ev.labels,
    }
    for name in args.methods.split(","):
        if name not in methods:
            continue
        for run in range(args.runs):
            parts = ["lhco", name, run, args.folds, args.flow_time, args.threads]

            def job(name: str = name, run: int = run) -> dict[str, Any]:
                t = time.perf_counter()
                res = methods[name](run)
                print(f"lhco {name} run {run}: CPU {res.train_cpu_s:.0f} s", flush=True)
                d = {"test_scores": res.test_scores, "train_cpu_s": res.train_cpu_s}
                d["wall_s"] = time.perf_counter() - t
                if "test_other" in res.extra:
                    d["test_other"] = res.extra["test_other"]
                return d

            out[f"{name}/{run}"] = _cached_arrays("lhco", parts, job)
    return out


def performance_rows(
    raw: dict[str, Any], methods: list[str], figure: Path, title: str
) -> dict[str, Any]:
    """Median SIC curves, max SIC, AUC and CPU per method from cached runs; the SIC figure."""
    from physgen.anomaly import auc, performance_band
    from physgen.anomaly.plots import plot_performance

    labels = raw["labels"]
    n_bkg = int((labels == 0).sum())
    rows: dict[str, Any] = {}
    bands = {}
    for name in methods:
        runs = [raw[k] for k in raw if k.startswith(f"{name}/")]
        if not runs:
            continue
        variants = [("", "test_scores")]
        if "test_other" in runs[0]:
            variants.append((" (log/logit coordinates)", "test_other"))
        for suffix, key in variants:
            scores = [r[key] for r in runs]
            band = performance_band(scores, labels, rejection_eps_s=(0.2, 0.4))
            strict = performance_band(scores, labels, min_eps_b=10 / n_bkg)
            label = name + suffix
            bands[label] = band
            ok = np.isfinite(band.sic_median)
            sic = [
                float(np.interp(e, band.eps_s[ok], band.sic_median[ok], left=np.nan))
                for e in (0.2, 0.4)
            ]
            rows[label] = {
                "runs": len(runs),
                "auc": float(np.median([auc(sc, labels) for sc in scores])),
                "max_sic": band.max_sic,
                "max_sic_10_events": strict.max_sic,
                "max_sic_runs": band.max_sic_per_run.tolist(),
                "sic_at_0.2": sic[0],
                "sic_at_0.4": sic[1],
                "rejection_at_0.2": float(band.rejection_median[0]),
                "rejection_at_0.4": float(band.rejection_median[1]),
                "train_cpu_s": float(np.mean([r["train_cpu_s"] for r in runs])),
            }
    if bands:
        refs = {f"published {k}": v for k, v in PUBLISHED.items() if k in bands}
        plot_performance(bands, figure, title=title, references=refs)
    return {"rows": rows, "sizes": raw["sizes"], "n_eval_background": n_bkg, "figure": str(figure)}


def summarize_lhco(raw: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    return performance_rows(
        raw,
        args.methods.split(","),
        RESULTS / "anomaly_lhco_sic.png",
        "LHCO R&D signal region (real)",
    )


def _f(v: float) -> str:
    return "—" if not np.isfinite(v) else f"{v:.1f}"


def _table(rows: dict[str, Any]) -> list[str]:
    lines = [
        "| method | runs | AUC | max SIC | max SIC (>= 10 bkg) | SIC at eps_S 0.2 / 0.4 | "
        "published max SIC (SIC at 0.2 / 0.4) | 1/eps_B at 0.2 / 0.4 | train CPU [s] |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        pub, ps = PUBLISHED.get(name), PUBLISHED_SIC.get(name)
        ptxt = f"{pub} ({ps[0]} / {ps[1]})" if pub and ps else ""
        lines.append(
            f"| {name} | {r['runs']} | {r['auc']:.3f} | {r['max_sic']:.1f} | "
            f"{r['max_sic_10_events']:.1f} | {_f(r['sic_at_0.2'])} / {_f(r['sic_at_0.4'])} | {ptxt} | "
            f"{r['rejection_at_0.2']:.0f} / {r['rejection_at_0.4']:.0f} | {r['train_cpu_s']:.0f} |"
        )
    return lines


def lhco_markdown(s: dict[str, Any], args: argparse.Namespace) -> list[str]:
    z = s["sizes"]
    lines = [
        "## Real LHC Olympics R&D signal-region events",
        "",
        f"Data: {z['data']:,} SR events with {z['data_signal']} signal. Idealized template: "
        f"{z['idealized_template']:,} background events (half of the test file). Supervised: "
        f"{z['supervised_signal']:,} extra signal vs the {z['supervised_background']:,} "
        f"background events of the data. Evaluation: {z['evaluation']:,} events never trained "
        f"on ({z['evaluation_signal']:,} signal). {args.folds}-fold classifiers (3 x 64), "
        "median over runs. max SIC = max of the median SIC curve with CATHODE's cut eps_B > "
        f"1.84e-5 (here: at least one of the {s['n_eval_background']:,} evaluation background "
        "events); also with at least 10 background events passing.",
        "",
    ]
    lines += _table(s["rows"])
    lines += ["", f"Figure: `{Path(s['figure']).relative_to(BENCH.parent)}`", ""]
    return lines


# --------------------------------------------------------------------------- Pythia LHCO-like

#: The SR-enriched extra QCD (idealized template and test background): a generator window in
#: the partonic mass around the SR, wide enough that the SR's m_jj is not cut into (checked:
#: ``window_check`` compares its SR events with the full sample's).
SR_WINDOW = ("PhaseSpace:mHatMin = 2800", "PhaseSpace:mHatMax = 4600")
#: S / sqrt(B) in the SR of the LHCO R&D benchmark: 395 signal in 60,000 SR events.
LHCO_S_OVER_SQRT_B = 395 / np.sqrt(60_000 - 395)


def _dijets(process: str, n: int, seed: int, workers: int, extra: tuple[str, ...] = ()) -> Any:
    from physgen.anomaly import AnomalyEvents
    from physgen.events.dijet import generate_dijets

    t = time.perf_counter()
    s = generate_dijets(
        process, n=n, seed=seed, workers=workers, extra_settings=extra, progress=True
    )
    print(f"{process} n={n} seed={seed} {extra}: {time.perf_counter() - t:.0f} s"
          f"{' (cache)' if s.from_cache else ''}", flush=True)  # fmt: skip
    return AnomalyEvents(s.features[:, 0], s.features[:, 1:], s.label, s.columns[1:], process)


def pythia_samples(args: argparse.Namespace) -> dict[str, Any]:
    """QCD (full range), the SR-enriched extra QCD and the W' signal, split for the study."""
    from physgen.anomaly import Regions

    regions = Regions((3.3, 3.7))
    qcd = _dijets("qcd-dijet", args.n_qcd, 1, args.workers)
    extra = _dijets("qcd-dijet", args.n_extra, 2, args.workers, SR_WINDOW)
    sig = _dijets("wprime", args.n_signal, 3, args.workers)
    rng = np.random.default_rng(0)
    extra_sr = extra.select(regions.in_sr(extra.mjj))
    half = rng.permutation(len(extra_sr)) < len(extra_sr) // 2
    b_sr = int(regions.in_sr(qcd.mjj).sum())
    f_sr = float(regions.in_sr(sig.mjj).mean())
    n_inj = round(LHCO_S_OVER_SQRT_B * np.sqrt(b_sr) / f_sr)
    order = rng.permutation(len(sig))
    injected, rest = sig.select(order[:n_inj]), sig.select(order[n_inj:])
    rest_sr = rest.select(regions.in_sr(rest.mjj))
    n_test_sig = min(len(rest_sr) // 2, 10_000)
    return {
        "regions": regions,
        "qcd": qcd,
        "data": qcd.concat(injected),
        "injected": n_inj,
        "injected_sr": int(regions.in_sr(injected.mjj).sum()),
        "template": extra_sr.select(half),
        "test": extra_sr.select(~half).concat(rest_sr.select(np.arange(n_test_sig))),
        "signal_train": rest_sr.select(np.arange(n_test_sig, len(rest_sr))),
        "window_check": _window_check(qcd, extra_sr, regions),
    }


def _window_check(qcd: Any, extra_sr: Any, regions: Any) -> dict[str, Any]:
    """KS distance per feature between the SR events of the full QCD sample and of the
    mHat-window sample (the window must not bias the SR)."""
    from scipy import stats

    a = qcd.select(regions.in_sr(qcd.mjj))
    out = {"n_full": len(a), "n_window": len(extra_sr)}
    for j, name in enumerate(("m_jj", *a.names)):
        x = a.mjj if j == 0 else a.features[:, j - 1]
        y = extra_sr.mjj if j == 0 else extra_sr.features[:, j - 1]
        r = stats.ks_2samp(x, y)
        out[name] = {"ks": float(r.statistic), "p": float(r.pvalue)}
    return out


def run_pythia(args: argparse.Namespace) -> dict[str, Any]:
    """Every method on the LHCO-like sample with signal, the CATHODE bump hunt, the null test."""
    import torch

    from physgen.anomaly import anode, bump_hunt, cathode, cwola, idealized, supervised

    torch.set_num_threads(args.threads)
    s = pythia_samples(args)
    data, reg, test = s["data"], s["regions"], s["test"]
    flow = {"max_time": args.flow_time}
    methods: dict[str, Any] = {
        "supervised": lambda seed: supervised(
            s["signal_train"], s["template"], events=data, test=test, folds=args.folds, seed=seed
        ),
        "idealized": lambda seed: idealized(
            data, s["template"], reg, test=test, folds=args.folds, seed=seed
        ),
        "cathode": lambda seed: cathode(
            data, reg, test=test, folds=args.folds, seed=seed, flow=flow, progress=False
        ),
        "cwola": lambda seed: cwola(data, reg, test=test, folds=args.folds, seed=seed),
        "anode": lambda seed: anode(data, reg, test=test, flow=flow, seed=seed, progress=False),
    }
    base = [args.n_qcd, args.n_extra, args.n_signal, args.folds, args.flow_time, args.threads]
    out: dict[str, Any] = {
        "labels": test.labels,
        "sizes": {
            "data": len(data),
            "data_sr": int(reg.in_sr(data.mjj).sum()),
            "injected": s["injected"],
            "injected_sr": s["injected_sr"],
            "template": len(s["template"]),
            "test": len(test),
            "test_signal": int(test.labels.sum()),
            "signal_train": len(s["signal_train"]),
        },
        "window_check": s["window_check"],
    }
    effs = (0.1, 0.01, 0.001)
    for name in args.methods_pythia.split(","):
        for run in range(args.runs):

            def job(name: str = name, run: int = run) -> dict[str, Any]:
                res = methods[name](run)
                print(f"pythia {name} run {run}: CPU {res.train_cpu_s:.0f} s", flush=True)
                d: dict[str, Any] = {"test_scores": res.test_scores, "train_cpu_s": res.train_cpu_s}
                if name == "cathode" and run == 0:
                    ok = np.isfinite(res.scores)
                    hunts = bump_hunt(data.mjj[ok], res.scores[ok], effs, skip_failed=True)
                    d["bump_hunt"] = [h.to_dict() for h in hunts]
                    d["scores"] = res.scores
                return d

            out[f"{name}/{run}"] = _cached_arrays("pythia", ["signal", name, run, *base], job)
    null_z = []
    for seed in range(args.null_seeds):

        def null_job(seed: int = seed) -> dict[str, Any]:
            qcd = s["qcd"]
            half = qcd.select(np.random.default_rng(100 + seed).random(len(qcd)) < 0.5)
            res = cathode(half, reg, folds=args.folds, seed=seed, flow=flow, progress=False)
            ok = np.isfinite(res.scores)
            hunts = bump_hunt(half.mjj[ok], res.scores[ok], effs, skip_failed=True)
            print(f"null seed {seed}: Z {[round(h.significance, 2) for h in hunts]}", flush=True)
            return {"bump_hunt": [h.to_dict() for h in hunts], "train_cpu_s": res.train_cpu_s,
                    "mjj": half.mjj[ok], "scores": res.scores[ok]}  # fmt: skip

        null_z.append(_cached_arrays("null", ["null", seed, *base], null_job))
    out["null"] = null_z
    return out


def summarize_pythia(raw: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Tables, the SIC figure, the CATHODE bump-hunt figure and the null test."""
    from physgen.anomaly import Regions, bump_hunt
    from physgen.anomaly.plots import plot_bump_hunt

    methods = args.methods_pythia.split(",")
    out = performance_rows(raw, methods, RESULTS / "anomaly_pythia_sic.png", "Pythia 8 LHCO-like")
    out["window_check"] = raw["window_check"]
    effs = (0.1, 0.01, 0.001)
    cath = raw.get("cathode/0")
    if cath is not None and "scores" in cath:
        data = pythia_samples(args)["data"]
        ok = np.isfinite(cath["scores"])
        hunts = bump_hunt(data.mjj[ok], cath["scores"][ok], effs, skip_failed=True)
        plot_bump_hunt(
            [h for h in hunts if h.fit is not None], RESULTS / "anomaly_pythia_bumphunt.png"
        )
        out["bump_hunt"] = [h.to_dict() for h in hunts]
    null = []
    fits = []
    for k, r in enumerate(raw["null"]):
        zs = [h["fit"]["significance"] if h["fit"] else None for h in r["bump_hunt"]]
        null.append({"seed": k, "z": zs, "train_cpu_s": r["train_cpu_s"]})
        (h1,) = bump_hunt(r["mjj"], r["scores"], (0.01,), signal_region=Regions().signal_region,
                          skip_failed=True)  # fmt: skip
        if h1.fit is not None:
            fits.append((h1, f"null seed {k}, top 1 %"))
    for part in range(0, len(fits), 5):
        chunk = fits[part : part + 5]
        plot_bump_hunt([h for h, _ in chunk], RESULTS / f"anomaly_null_{part // 5}.png",
                       titles=[t for _, t in chunk])  # fmt: skip
    out["null"] = null
    return out


def pythia_markdown(s: dict[str, Any], args: argparse.Namespace) -> list[str]:
    z = s["sizes"]
    lines = [
        "## Pythia 8 LHCO-like sample (QCD dijets + W' -> X Y, sidebands included)",
        "",
        f"Data: {z['data']:,} events ({z['data_sr']:,} in the SR), {z['injected']} signal "
        f"injected ({z['injected_sr']} in the SR: S/sqrt(B) = "
        f"{z['injected_sr'] / np.sqrt(max(z['data_sr'] - z['injected_sr'], 1)):.2f}, LHCO "
        f"R&D {LHCO_S_OVER_SQRT_B:.2f}). Idealized template {z['template']:,} SR background "
        f"events; test {z['test']:,} ({z['test_signal']:,} signal); supervised signal "
        f"{z['signal_train']:,}. {args.folds}-fold classifiers, flows limited to "
        f"{args.flow_time}.",
        "",
    ]
    lines += _table(s["rows"])
    lines += [
        "",
        "Bump hunt after the CATHODE selection (local significance, 4-parameter dijet fit):",
        "",
    ]
    lines += [
        "| kept | selected | SR observed | SR background | local Z | chi2/ndf |",
        "|---|---|---|---|---|---|",
    ]
    for h in s.get("bump_hunt", []):
        f = h["fit"]
        if f is None:
            lines.append(
                f"| {100 * h['efficiency']:g} % | {h['n_selected']} | fit failed: {h['error']} | | | |"
            )
            continue
        lines.append(
            f"| {100 * h['efficiency']:g} % | {h['n_selected']} | {f['n_observed']} | "
            f"{f['background']:.1f} ± {f['background_error']:.1f} | {f['significance']:.2f} | "
            f"{f['chi2']:.1f}/{f['ndf']} |"
        )
    zs = [max((v for v in r["z"] if v is not None), default=float("nan")) for r in s["null"]]
    passed = sum(v <= 2 for v in zs)
    lines += ["", f"Null test (no signal; CATHODE on a random half of the QCD sample per seed): "
              f"largest local Z over the cuts 10 / 1 / 0.1 % per seed: "
              f"{', '.join(f'{v:.2f}' for v in zs)}; {passed} of {len(zs)} seeds <= 2.", ""]  # fmt: skip
    w = s["window_check"]
    lines.append(
        "Extra QCD generated in the window " + ", ".join(SR_WINDOW) + ": KS distance of its SR "
        "events vs the full sample's ("
        + f"{w['n_window']:,} vs {w['n_full']:,}): "
        + ", ".join(
            f"{k} {v['ks']:.3f} (p {v['p']:.2f})" for k, v in w.items() if isinstance(v, dict)
        )
        + "."
    )
    return lines


# --------------------------------------------------------------------------- report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("part", choices=("lhco", "pythia", "report", "all"))
    ap.add_argument("--runs", type=int, default=5, help="trainings per method (seeds 0..runs-1)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--flow-time", default="5m", help="time limit per flow")
    ap.add_argument("--methods", default="supervised,idealized,autoencoder,flow-density")
    ap.add_argument("--methods-pythia", default="supervised,idealized,cathode,cwola,anode")
    ap.add_argument("--n-qcd", type=int, default=200_000, help="QCD events (full m_jj range)")
    ap.add_argument("--n-extra", type=int, default=60_000, help="extra QCD in the SR window")
    ap.add_argument("--n-signal", type=int, default=20_000, help="W' signal pool")
    ap.add_argument("--workers", type=int, default=2, help="Pythia worker processes")
    ap.add_argument("--null-seeds", type=int, default=10)
    args = ap.parse_args()
    t0 = time.perf_counter()
    RESULTS.mkdir(exist_ok=True)
    out: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs",
        "args": vars(args),
    }
    lines = ["# Resonant anomaly detection: physgen.anomaly", ""]
    if args.part in ("lhco", "all", "report"):
        raw = run_lhco(args)
        s = summarize_lhco(raw, args)
        out["lhco"] = s
        lines += lhco_markdown(s, args)
    if args.part in ("pythia", "all"):
        raw_p = run_pythia(args)
        sp = summarize_pythia(raw_p, args)
        out["pythia"] = sp
        lines += pythia_markdown(sp, args)
    cmd = f"python bench/anomaly.py {args.part} --runs {args.runs} --folds {args.folds} "
    cmd += f"--threads {args.threads} --flow-time {args.flow_time}"
    if args.part in ("pythia", "all"):
        cmd += f" --n-qcd {args.n_qcd} --n-extra {args.n_extra} --n-signal {args.n_signal}"
        cmd += f" --null-seeds {args.null_seeds}"
    lines.append(f"Command: `{cmd}`; wall {time.perf_counter() - t0:.0f} s; {out['machine']}.")
    (RESULTS / "anomaly.md").write_text("\n".join(lines) + "\n")
    (RESULTS / "anomaly.json").write_text(json.dumps(out, indent=1, default=float))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
