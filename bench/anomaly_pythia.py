"""The Pythia 8 LHCO-like part of ``bench/anomaly.py`` (issue 18): samples, every method, the
CATHODE bump hunt and the null test. Run through ``python bench/anomaly.py pythia``."""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from anomaly import RESULTS, _cached_arrays, _table, performance_rows

#: Version of the Pythia study's design, part of every cache key of this part. 2: the
#: idealized template and the test background come from an independent full-range QCD
#: sample, and the null test uses disjoint subsets of all QCD. (1 took them from a sample
#: generated in the window mHat 2.8-4.6 TeV: cheaper, but its SR events differ from the full
#: sample's in every feature, KS p < 0.01, which a classifier learns instead of the signal.)
#: 3: all SR events of the independent sample are the idealized template *and* the test
#: background, the idealized detector scoring them out of fold (2 split them in halves: a
#: template half the size of the SR data made the idealized detector weaker than CATHODE,
#: whose flow template is four times the SR data); the supervised reference trains on the
#: data's own SR background (labels known) instead of the template.
DESIGN = 3
#: Design of the null test (unchanged by 3: it does not use the test set).
NULL_DESIGN = 2
#: S / sqrt(B) in the SR of the LHCO R&D benchmark: 395 signal in 60,000 SR events.
LHCO_S_OVER_SQRT_B = 395 / np.sqrt(60_000 - 395)


def _fit(args: argparse.Namespace) -> tuple[float, float]:
    """The bump-hunt fit range: above the trigger turn-on (leading-jet pT > 1.2 TeV puts the
    m_jj spectrum's maximum near 2.6 TeV; the dijet function describes the falling part)."""
    lo, hi = (float(v) for v in args.fit_range.split(":"))
    return lo, hi


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
    """QCD (full range, the "data"), an independent QCD sample (idealized template and test
    background) and the W' signal, split for the study."""
    from physgen.anomaly import Regions

    regions = Regions((3.3, 3.7))
    qcd = _dijets("qcd-dijet", args.n_qcd, 1, args.workers)
    extra = _dijets("qcd-dijet", args.n_extra, 4, args.workers)
    sig = _dijets("wprime", args.n_signal, 3, args.workers)
    rng = np.random.default_rng(0)
    extra_sr = extra.select(regions.in_sr(extra.mjj))
    b_sr = int(regions.in_sr(qcd.mjj).sum())
    f_sr = float(regions.in_sr(sig.mjj).mean())
    n_inj = round(LHCO_S_OVER_SQRT_B * np.sqrt(b_sr) / f_sr)
    order = rng.permutation(len(sig))
    injected, rest = sig.select(order[:n_inj]), sig.select(order[n_inj:])
    rest_sr = rest.select(regions.in_sr(rest.mjj))
    n_test_sig = min(len(rest_sr) // 2, 10_000)
    test_signal = rest_sr.select(np.arange(n_test_sig))
    return {
        "regions": regions,
        "qcd": qcd,
        "qcd_all": qcd.concat(extra),
        "data": qcd.concat(injected),
        "data_background_sr": qcd.select(regions.in_sr(qcd.mjj)),
        "injected": n_inj,
        "injected_sr": int(regions.in_sr(injected.mjj).sum()),
        "template": extra_sr,
        "test_signal": test_signal,
        "test": extra_sr.concat(test_signal),
        "signal_train": rest_sr.select(np.arange(n_test_sig, len(rest_sr))),
    }


def _idealized_test_scores(res: Any) -> Any:
    """Test scores of the idealized detector in the order of ``test``: the template's own
    out-of-fold scores (it is the test background), then the test signal's."""
    return np.r_[res.extra["background_scores"], res.test_scores]


def null_subsets(qcd_all: Any, n_seeds: int) -> list[Any]:
    """``n_seeds`` disjoint random subsets of all QCD events, one per null-test seed, so that
    the seeds are independent samples (random halves of one sample would share its
    fluctuations)."""
    order = np.random.default_rng(100).permutation(len(qcd_all))
    return [qcd_all.select(np.sort(part)) for part in np.array_split(order, n_seeds)]


def run_pythia(args: argparse.Namespace) -> dict[str, Any]:
    """Every method on the LHCO-like sample with signal, the CATHODE bump hunt, the null test."""
    import torch

    from physgen.anomaly import anode, bump_hunt, cathode, cwola, idealized, supervised

    torch.set_num_threads(args.threads)
    s = pythia_samples(args)
    data, reg, test = s["data"], s["regions"], s["test"]
    flow = {"max_time": args.flow_time}
    # classifiers: k folds x ensemble
    common = {"folds": args.folds, "ensemble": args.pythia_ensemble}
    methods: dict[str, Any] = {
        "supervised": lambda seed: supervised(
            s["signal_train"],
            s["data_background_sr"],
            events=data,
            test=test,
            seed=seed,
            **common,
        ),
        "idealized": lambda seed: idealized(
            data, s["template"], reg, test=s["test_signal"], seed=seed, **common
        ),
        "cathode": lambda seed: cathode(
            data, reg, test=test, seed=seed, flow=flow, progress=False, **common
        ),
        "cwola": lambda seed: cwola(data, reg, test=test, seed=seed, **common),
        "anode": lambda seed: anode(data, reg, test=test, flow=flow, seed=seed, progress=False),
    }
    # the ensemble size enters the keys only when > 1: results of one classifier per fold were
    # cached before this option reached the Pythia part, under keys without it
    ens = [f"ensemble {args.pythia_ensemble}"] if args.pythia_ensemble != 1 else []
    base = [DESIGN, args.n_qcd, args.n_extra, args.n_signal, args.folds, args.flow_time,
            args.threads, *ens]  # fmt: skip
    out: dict[str, Any] = {
        "labels": test.labels,
        "sizes": {
            "data": len(data),
            "data_sr": int(reg.in_sr(data.mjj).sum()),
            "injected": s["injected"],
            "injected_sr": s["injected_sr"],
            "template": len(s["template"]),
            "supervised_background": len(s["data_background_sr"]),
            "test": len(test),
            "test_signal": int(test.labels.sum()),
            "signal_train": len(s["signal_train"]),
        },
    }
    effs = (0.1, 0.01, 0.001)
    for name in args.methods_pythia.split(","):
        for run in range(args.runs):

            def job(name: str = name, run: int = run) -> dict[str, Any]:
                res = methods[name](run)
                print(f"pythia {name} run {run}: CPU {res.train_cpu_s:.0f} s", flush=True)
                scores = _idealized_test_scores(res) if name == "idealized" else res.test_scores
                d: dict[str, Any] = {"test_scores": scores, "train_cpu_s": res.train_cpu_s}
                if name == "cathode" and run == 0:
                    ok = np.isfinite(res.scores)
                    hunts = bump_hunt(
                        data.mjj[ok], res.scores[ok], effs, range=_fit(args), skip_failed=True
                    )
                    d["bump_hunt"] = [h.to_dict() for h in hunts]
                    d["scores"] = res.scores
                return d

            out[f"{name}/{run}"] = _cached_arrays("pythia", ["signal", name, run, *base], job)
    null_z = []
    subsets = null_subsets(s["qcd_all"], args.null_seeds)
    for seed, sub in enumerate(subsets):

        def null_job(seed: int = seed, sub: Any = sub) -> dict[str, Any]:
            res = cathode(sub, reg, seed=seed, flow=flow, progress=False, **common)
            ok = np.isfinite(res.scores)
            hunts = bump_hunt(sub.mjj[ok], res.scores[ok], effs, range=_fit(args), skip_failed=True)
            print(f"null seed {seed}: Z {[round(h.significance, 2) for h in hunts]}", flush=True)
            return {"bump_hunt": [h.to_dict() for h in hunts], "train_cpu_s": res.train_cpu_s,
                    "mjj": sub.mjj[ok], "scores": res.scores[ok], "n_events": len(sub)}  # fmt: skip

        null_z.append(
            _cached_arrays(
                "null", ["null", seed, args.null_seeds, NULL_DESIGN, *base[1:]], null_job
            )
        )
    out["null"] = null_z
    return out


def summarize_pythia(raw: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Tables, the SIC figure, the CATHODE bump-hunt figure and the null test."""
    from physgen.anomaly import Regions, bump_hunt
    from physgen.anomaly.plots import plot_bump_hunt

    methods = args.methods_pythia.split(",")
    out = performance_rows(raw, methods, RESULTS / "anomaly_pythia_sic.png", "Pythia 8 LHCO-like")
    effs = (0.1, 0.01, 0.001)
    cath = raw.get("cathode/0")
    if cath is not None and "scores" in cath:
        data = pythia_samples(args)["data"]
        ok = np.isfinite(cath["scores"])
        hunts = bump_hunt(
            data.mjj[ok], cath["scores"][ok], effs, range=_fit(args), skip_failed=True
        )
        plot_bump_hunt(
            [h for h in hunts if h.fit is not None], RESULTS / "anomaly_pythia_bumphunt.png"
        )
        out["bump_hunt"] = [h.to_dict() for h in hunts]
    null = []
    fits = []
    for k, r in enumerate(raw["null"]):
        zs = [h["fit"]["significance"] if h["fit"] else None for h in r["bump_hunt"]]
        null.append({"seed": k, "z": zs, "train_cpu_s": r["train_cpu_s"],
                     "n_events": int(r["n_events"])})  # fmt: skip
        # the fit of the table (same range), shown for the 1 % cut
        (h1,) = bump_hunt(r["mjj"], r["scores"], (0.01,), signal_region=Regions().signal_region,
                          range=_fit(args), skip_failed=True)  # fmt: skip
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
        f"R&D {LHCO_S_OVER_SQRT_B:.2f}). Idealized template: the {z['template']:,} SR events "
        f"of an independent QCD sample, which are also the test background (the idealized "
        f"detector scores them out of fold, every other method never trains on them); test "
        f"{z['test']:,} events ({z['test_signal']:,} signal). Supervised: "
        f"{z['signal_train']:,} signal vs the data's {z['supervised_background']:,} SR "
        f"background events. {args.folds}-fold classifiers, {args.pythia_ensemble} per fold, flows "
        f"limited to "
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
    n_null = s["null"][0]["n_events"] if s["null"] else 0
    lines += ["", f"Null test (no signal; CATHODE on {len(zs)} disjoint random subsets of "
              f"all QCD events, {n_null:,} each): "
              f"largest local Z over the cuts 10 / 1 / 0.1 % per seed: "
              f"{', '.join(f'{v:.2f}' for v in zs)}; {passed} of {len(zs)} seeds <= 2.", ""]  # fmt: skip
    return lines
