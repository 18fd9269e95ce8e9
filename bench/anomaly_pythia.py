"""The Pythia 8 LHCO-like part of ``bench/anomaly.py`` (issue 18): samples, every method, the
CATHODE bump hunt and the null test. Run through ``python bench/anomaly.py pythia``."""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from anomaly import RESULTS, _cached_arrays, _table, performance_rows

#: The SR-enriched extra QCD (idealized template and test background): a generator window in
#: the partonic mass around the SR, wide enough that the SR's m_jj is not cut into (checked:
#: ``window_check`` compares its SR events with the full sample's).
SR_WINDOW = ("PhaseSpace:mHatMin = 2800", "PhaseSpace:mHatMax = 4600")
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
                    hunts = bump_hunt(
                        data.mjj[ok], res.scores[ok], effs, range=_fit(args), skip_failed=True
                    )
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
            hunts = bump_hunt(
                half.mjj[ok], res.scores[ok], effs, range=_fit(args), skip_failed=True
            )
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
