"""Benchmark: differentiable simulation (issue 21), the event-moving half.

Sub-commands (each updates ``bench/results/diffsim.json`` and rewrites ``diffsim.md``):

* ``gaussian``: the Gaussian example x = mu + sigma Phi^-1(z): pathwise derivatives from
  autograd against the closed form; the soft-binning bias against its leading-order formula.
* ``derivatives``: the Discrete-QCD shower's pathwise derivatives d p / d alpha_s against
  central finite differences on the same random numbers (events whose structure is
  unchanged), and d<O>/d alpha_s of the sample mean, pathwise vs finite difference (which
  also holds the jumps: emissions crossing the cutoff, reordered cascades).
* ``closure``: pseudo-data at a hidden alpha_s with fresh random numbers, fitted with one
  moved sample (``physgen.diffsim.alphas.fit_alpha_s``), ``--seeds`` times: pulls, how many
  within 1 and 3 sigma, the statistical error. Figure ``diffsim_pulls.png``.
* ``bruteforce``: the same pseudo-data fitted the brute-force way: an independent sample at
  each of ``--grid`` alpha_s values, a parabola through the chi2 values; spread of the
  result over seeds against the moved fit's. Figure ``diffsim_chi2.png`` (one seed's curves).
* ``mcnoise``: the simulation-induced error alone: one large pseudo-data set, the simulated
  samples' seeds varied; spread of the moved fit against the brute-force grid's, and the
  ratio of simulated events the grid needs for the same error.
* ``sampling``: the stochastic term of the cascade and of GFlash for two Pb/LAr stacks (the
  ATLAS barrel's, measured at about 10 %/sqrt(E); the optimum of ``bench/diffsim_calo.py``),
  beside Wigmans' rule 2.7 % sqrt(d_active / f_mip).
* ``pythia``: d<1-T>/d alpha_s at parton level, Pythia 8 (e+e- -> Z -> partons, finite
  differences in ``TimeShower:alphaSvalue``) beside the Discrete-QCD shower (pathwise and
  finite difference). Different models: the comparison is reported, not tuned.

Usage::

    python bench/diffsim.py gaussian
    python bench/diffsim.py derivatives --n 20000
    python bench/diffsim.py closure --seeds 20 --n 20000 --threads 2
    python bench/diffsim.py bruteforce --seeds 10 --n 20000 --grid 11
    python bench/diffsim.py mcnoise --seeds 20 --n 20000 --n-data 200000 --grid 11
    python bench/diffsim.py pythia --n 20000
    python bench/diffsim.py sampling --n 2000
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
TRUTH = 0.125


def _record(section: str, value: dict[str, Any], command: str) -> dict[str, Any]:
    path = RESULTS / "diffsim.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    value["command"] = command
    value["machine"] = f"{platform.machine()}, {torch.get_num_threads()} torch threads"
    old[section] = value
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(old, indent=1, default=float))
    tmp.replace(path)
    _write_md(old)
    return old


def gaussian(args: argparse.Namespace) -> dict[str, Any]:
    from physgen.diffsim.moving import (
        gaussian_derivatives,
        gaussian_simulator,
        pathwise_derivative,
        soft_histogram,
        soft_histogram_bias,
    )

    g = torch.Generator().manual_seed(1)
    u = torch.rand(100_000, dtype=torch.float64, generator=g)
    theta = torch.tensor([0.3, 1.7], dtype=torch.float64)
    _, jac = pathwise_derivative(lambda u, t: gaussian_simulator(u, t[:, 0], t[:, 1]), u, theta)
    d_mu, d_sigma = gaussian_derivatives(u)
    err = max(float((jac[:, 0, 0] - d_mu).abs().max()), float((jac[:, 0, 1] - d_sigma).abs().max()))
    # soft-binning bias: expected soft counts of N(0,1) by quadrature vs the formula
    edges = torch.linspace(-3, 3, 13, dtype=torch.float64)
    xs = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    pdf = torch.exp(-0.5 * xs**2) / math.sqrt(2 * math.pi)
    dx = float(xs[1] - xs[0])
    rows = []
    for tau in (0.05, 0.1, 0.2):
        hard = soft_histogram(xs, edges, 1e-9, pdf * dx)
        soft = soft_histogram(xs, edges, tau, pdf * dx)
        pred = soft_histogram_bias(
            edges, tau, lambda e: -e * torch.exp(-0.5 * e**2) / math.sqrt(2 * math.pi)
        )
        rows.append({"tau": tau, "max_bias": float((soft - hard).abs().max()),
                     "max_formula_error": float((soft - hard - pred).abs().max())})  # fmt: skip
    return {"max_abs_derivative_error": err, "n": u.numel(), "soft_bias": rows}


def derivatives(args: argparse.Namespace) -> dict[str, Any]:
    from physgen.diffsim.alphas import shower_observables
    from physgen.diffsim.shower import DiscreteQCDShower, event_seeds

    sh = DiscreteQCDShower()
    seeds = event_seeds(args.seed, args.n)
    a0, h = 0.118, 1e-5
    ev = sh.run(a0, seeds=seeds)
    up, dn = sh.run(a0 + h, seeds=seeds), sh.run(a0 - h, seeds=seeds)
    same = (up.n_partons == dn.n_partons) & (up.n_partons == ev.n_partons)
    fd = (up.momenta - dn.momenta) / (2 * h)
    scale = np.abs(ev.dmomenta[same]).max(axis=(1, 2)) + 1e-12
    rel = np.abs(fd[same] - ev.dmomenta[same]).max(axis=(1, 2)) / scale
    names = ("tau", "rho", "c", "y23")
    x, dx, mult = shower_observables(sh, a0, seeds, names)
    means: dict[str, Any] = {"pathwise": dict(zip(names, dx.mean(0)))}
    for step in (0.002, 0.005):
        xu, _, mu = shower_observables(sh, a0 + step, seeds, names)
        xd, _, md = shower_observables(sh, a0 - step, seeds, names)
        means[f"fd_{step}"] = dict(zip(names, (xu.mean(0) - xd.mean(0)) / (2 * step)))
        means[f"fd_{step}"]["multiplicity"] = float((mu.mean() - md.mean()) / (2 * step))
    return {
        "n": args.n,
        "alpha_s": a0,
        "fd_step": h,
        "unchanged_structure": float(same.mean()),
        "rel_diff_median": float(np.median(rel)),
        "rel_diff_99": float(np.quantile(rel, 0.99)),
        "momentum_conservation_gev": float(np.abs(ev.momenta.sum(1)[:, 1:]).max()),
        "energy_conservation_gev": float(np.abs(ev.momenta.sum(1)[:, 0] - sh.sqrt_s).max()),
        "mean_multiplicity": float(mult.mean()),
        "mean_observables": dict(zip(names, x.mean(0))),
        "dmean_dalpha": means,
    }


def _fit(data: np.ndarray, seed: int, n_mc: int, bootstrap: int) -> Any:
    from physgen.diffsim.alphas import fit_alpha_s

    return fit_alpha_s(data, n_mc=n_mc, seed=seed, bootstrap=bootstrap)


def closure(args: argparse.Namespace) -> dict[str, Any]:
    from physgen.diffsim.alphas import pseudo_data

    rows = []
    for s in range(args.seeds):
        t0 = time.perf_counter()
        data = pseudo_data(TRUTH, args.n, seed=1000 + s)
        f = _fit(data, 1000 + s, args.n, args.bootstrap)
        rows.append({"seed": 1000 + s, "alpha_s": f.alpha_s, "error": f.error,
                     "curvature_error": f.curvature_error, "chi2": f.chi2, "ndf": f.ndf,
                     "steps": len(f.path) - 1, "time_s": time.perf_counter() - t0})  # fmt: skip
        print(f"seed {1000 + s}: {f.alpha_s:.5f} +- {f.error:.5f} pull "
              f"{(f.alpha_s - TRUTH) / f.error:+.2f} ({rows[-1]['time_s']:.0f} s)", flush=True)  # fmt: skip
    pulls = np.array([(r["alpha_s"] - TRUTH) / r["error"] for r in rows])
    from physgen.diffsim.alphas_plot import pulls_figure

    pulls_figure(pulls, RESULTS / "diffsim_pulls.png", label=f"(N = {args.n:,} data and simulated)")
    fitted = np.array([r["alpha_s"] for r in rows])
    blocks = [int(np.sum(np.abs(pulls[i : i + 20]) <= 1)) for i in range(0, pulls.size - 19, 20)]
    return {
        "within_1sigma_per_20": blocks,
        "fraction_within_1sigma": float(np.mean(np.abs(pulls) <= 1)),
        "truth": TRUTH,
        "n_data": args.n,
        "n_mc": args.n,
        "bootstrap": args.bootstrap,
        "within_1sigma": int(np.sum(np.abs(pulls) <= 1)),
        "within_3sigma": int(np.sum(np.abs(pulls) <= 3)),
        "seeds": args.seeds,
        "mean_error": float(np.mean([r["error"] for r in rows])),
        "spread_of_fits": float(np.std(fitted, ddof=1)),
        "mean_fit": float(fitted.mean()),
        "pull_mean": float(pulls.mean()),
        "pull_std": float(pulls.std(ddof=1)),
        "mean_time_s": float(np.mean([r["time_s"] for r in rows])),
        "rows": rows,
    }


def bruteforce(args: argparse.Namespace) -> dict[str, Any]:
    from physgen.diffsim.alphas import chi2_curve, pseudo_data
    from physgen.diffsim.alphas_plot import chi2_figure

    alphas = np.linspace(TRUTH - 0.006, TRUTH + 0.006, args.grid)
    moved_fits, bf_fits, bf_curv = [], [], []
    for s in range(args.seeds):
        t0 = time.perf_counter()
        data = pseudo_data(TRUTH, args.n, seed=2000 + s)
        f = _fit(data, 2000 + s, args.n, 0)
        grid = chi2_curve(data, alphas, args.n, 2000 + s, independent=True)
        c2, c1, _ = np.polyfit(alphas, grid, 2)
        bf = -c1 / (2 * c2) if c2 > 0 else float("nan")
        moved_fits.append(f.alpha_s)
        bf_fits.append(bf)
        bf_curv.append(1 / math.sqrt(c2) if c2 > 0 else float("nan"))
        print(f"seed {2000 + s}: moved {f.alpha_s:.5f}, brute force {bf:.5f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
        if s == 0:
            fine = np.linspace(TRUTH - 0.006, TRUTH + 0.006, 4 * args.grid - 3)
            moved = chi2_curve(data, fine, args.n, 2000 + s, independent=False)
            fig = chi2_figure(fine, moved, None, {"alpha_s": f.alpha_s, "error": f.curvature_error,
                              "n_mc": args.n, "error_kind": "chi2 curvature"}, TRUTH)  # fmt: skip
            ax = fig.axes[0]
            ref = float(np.min(moved))
            ax.plot(alphas, grid - ref, "o", color="#bd1f01", ms=6,
                    label=f"independent sample per point ({args.grid} x {args.n:,})")  # fmt: skip
            ax.legend(loc="upper center", frameon=False, fontsize=10)
            fig.savefig(RESULTS / "diffsim_chi2.png", dpi=150, bbox_inches="tight")
    m, b = np.array(moved_fits), np.array(bf_fits)
    return {
        "truth": TRUTH,
        "n_per_sample": args.n,
        "grid_points": args.grid,
        "grid": [float(alphas[0]), float(alphas[-1])],
        "seeds": args.seeds,
        "events_moved": args.n,
        "events_bruteforce": args.n * args.grid,
        "rms_moved": float(np.sqrt(np.mean((m - TRUTH) ** 2))),
        "rms_bruteforce": float(np.sqrt(np.nanmean((b - TRUTH) ** 2))),
        "spread_moved": float(np.std(m, ddof=1)),
        "spread_bruteforce": float(np.nanstd(b, ddof=1)),
        "moved": moved_fits,
        "bruteforce": bf_fits,
    }


def mcnoise(args: argparse.Namespace) -> dict[str, Any]:
    """Simulation-induced error of both methods: one large pseudo-data set, MC seeds varied."""
    from physgen.diffsim.alphas import chi2_curve, pseudo_data

    data = pseudo_data(TRUTH, args.n_data, seed=3000)
    alphas = np.linspace(TRUTH - 0.006, TRUTH + 0.006, args.grid)
    moved, brute = [], []
    for s in range(args.seeds):
        t0 = time.perf_counter()
        moved.append(_fit(data, 3001 + s, args.n, 0).alpha_s)
        grid = chi2_curve(data, alphas, args.n, 3001 + s, independent=True)
        c2, c1, _ = np.polyfit(alphas, grid, 2)
        brute.append(-c1 / (2 * c2) if c2 > 0 else float("nan"))
        print(f"MC seed {3001 + s}: moved {moved[-1]:.5f}, brute force {brute[-1]:.5f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)  # fmt: skip
    sm, sb = float(np.std(moved, ddof=1)), float(np.nanstd(brute, ddof=1))
    # sigma scales as 1/sqrt(events): the moved fit needs (sb/sm)^2 x n events for sb
    ratio = args.grid * (sb / sm) ** 2
    rel = 1 / math.sqrt(2 * (args.seeds - 1))  # relative error of a standard deviation
    return {
        "truth": TRUTH,
        "n_data": args.n_data,
        "n_mc": args.n,
        "grid_points": args.grid,
        "seeds": args.seeds,
        "spread_moved": sm,
        "spread_bruteforce": sb,
        "mean_moved": float(np.mean(moved)),
        "mean_bruteforce": float(np.nanmean(brute)),
        "event_ratio_same_error": ratio,
        "event_ratio_error": ratio * 2 * math.sqrt(2) * rel,
        "moved": moved,
        "bruteforce": brute,
    }


#: Pb/LAr stacks: (label, absorber mm, active mm, measured or expected stochastic term).
SAMPLING_STACKS = (
    ("ATLAS barrel accordion, flat (1.53 mm Pb, 4.2 mm LAr); measured ~10 %/sqrt(E)", 1.53, 4.2),
    ("the optimum of diffsim_calo (4.94 mm Pb, 4.0 mm LAr)", 4.94, 4.0),
)


def sampling(args: argparse.Namespace) -> dict[str, Any]:
    """Stochastic term of the cascade and of GFlash for Pb/LAr stacks, 10 GeV electrons."""
    from physgen.diffsim.calo_medium import period_medium
    from physgen.diffsim.detector import CalorimeterDesign, cascade_check

    rows = []
    for label, d_abs, d_act in SAMPLING_STACKS:
        design = CalorimeterDesign(absorber="Pb", active="LAr", active_mm=d_act, depth_x0=25.0)
        (row,) = cascade_check(design, [d_abs / d_act], 10.0, n=args.n, seed=args.seed)
        t = {"dtype": torch.float64}
        medium = period_medium("Pb", torch.tensor(d_abs, **t), "LAr", torch.tensor(d_act, **t))
        f_mip = float(medium.f_mip)
        rows.append({"stack": label, "absorber_mm": d_abs, "active_mm": d_act, "f_mip": f_mip,
                     "wigmans": 0.027 * math.sqrt(d_act / f_mip),
                     "cascade": row["cascade"]["resolution"] * math.sqrt(10.0),
                     "cascade_error": row["cascade"]["error"] * math.sqrt(10.0),
                     "gflash": row["gflash"]["resolution"] * math.sqrt(10.0),
                     "gflash_error": row["gflash"]["error"] * math.sqrt(10.0)})  # fmt: skip
        print(rows[-1], flush=True)
    return {"n": args.n, "energy_gev": 10.0, "rows": rows}


def _pythia_tau(alpha: float, n: int, seed: int) -> tuple[float, float]:
    import pythia8mc

    from physgen.diffsim.observables import event_shapes

    py = pythia8mc.Pythia("", False)
    for s in ("Beams:idA = 11", "Beams:idB = -11", "Beams:eCM = 91.1876", "PDF:lepton = off",
              "WeakSingleBoson:ffbar2gmZ = on", "WeakZ0:gmZmode = 2", "23:onMode = off",
              "23:onIfAny = 1 2 3 4 5", "HadronLevel:all = off", "Print:quiet = on",
              "Next:numberCount = 0", f"TimeShower:alphaSvalue = {alpha}", "Random:setSeed = on",
              f"Random:seed = {seed}"):  # fmt: skip
        py.readString(s)
    py.init()
    rows, p = [], np.zeros((n, 128, 4))
    nmax = 0
    for _ in range(n):
        if not py.next():
            continue
        k = 0
        for prt in py.event:
            if prt.isFinal() and (prt.isQuark() or prt.isGluon()) and k < 128:
                p[len(rows), k] = (prt.e(), prt.px(), prt.py(), prt.pz())
                k += 1
        nmax = max(nmax, k)
        rows.append(k)
    cnt = np.array(rows)
    mom = torch.as_tensor(p[: cnt.size, :nmax])
    mask = torch.arange(nmax)[None, :] < torch.as_tensor(cnt)[:, None]
    tau = event_shapes(mom, mask, ("tau",))["tau"].numpy()
    return float(tau.mean()), float(tau.std(ddof=1) / math.sqrt(tau.size))


def pythia(args: argparse.Namespace) -> dict[str, Any]:
    from physgen.diffsim.alphas import shower_observables
    from physgen.diffsim.shower import DiscreteQCDShower, event_seeds

    out: dict[str, Any] = {"n": args.n}
    py = {a: _pythia_tau(a, args.n, 7) for a in (0.12, 0.1365, 0.15)}
    out["pythia_parton_tau"] = {str(a): v for a, v in py.items()}
    out["pythia_slope"] = (py[0.15][0] - py[0.12][0]) / 0.03
    out["pythia_slope_error"] = math.hypot(py[0.15][1], py[0.12][1]) / 0.03
    sh = DiscreteQCDShower()
    seeds = event_seeds(7, args.n)
    dq: dict[str, Any] = {}
    for a in (0.12, 0.1365, 0.15):
        x, dx, _ = shower_observables(sh, a, seeds, ("tau",))
        dq[str(a)] = {"mean": float(x.mean()), "pathwise_slope": float(dx.mean())}
    out["discrete_qcd_tau"] = dq
    out["discrete_qcd_slope"] = (dq["0.15"]["mean"] - dq["0.12"]["mean"]) / 0.03
    return out


def _write_md(res: dict[str, Any]) -> None:
    md = ["# Differentiable simulation: event moving and the alpha_s fit (issue 21)", ""]
    md.append(f"Machine: {platform.machine()}, {platform.python_version()}. Commands per section.")
    if "gaussian" in res:
        g = res["gaussian"]
        md += ["", f"## Gaussian example (`{g['command']}`)", "",
               f"Pathwise derivatives of x = mu + sigma Phi^-1(z) from autograd vs the closed form "
               f"over {g['n']:,} events: max |difference| = {g['max_abs_derivative_error']:.1e} "
               "(target 1e-6).", "",
               "| tau | max soft-binning bias (N(0,1), 12 bins of 0.5) | max error of the formula |",
               "|---|---|---|"]  # fmt: skip
        md += [
            f"| {r['tau']} | {r['max_bias']:.2e} | {r['max_formula_error']:.2e} |"
            for r in g["soft_bias"]
        ]
    if "derivatives" in res:
        d = res["derivatives"]
        md += ["", f"## Shower derivatives (`{d['command']}`)", "",
               f"{d['n']:,} events at alpha_s = {d['alpha_s']}; mean multiplicity "
               f"{d['mean_multiplicity']:.2f} partons; momentum conservation "
               f"{d['momentum_conservation_gev']:.1e} GeV, energy {d['energy_conservation_gev']:.1e} GeV.",
               f"Finite differences (step {d['fd_step']:g}) on the same random numbers: "
               f"{100 * d['unchanged_structure']:.1f} % of events keep their structure; on them the "
               f"relative difference to the complex-step derivative is {d['rel_diff_median']:.1e} "
               f"(median), {d['rel_diff_99']:.1e} (99 %).", "",
               "| observable | mean | d<O>/d alpha_s pathwise | finite difference +-0.002 | +-0.005 |",
               "|---|---|---|---|---|"]  # fmt: skip
        dm = d["dmean_dalpha"]
        for k, v in d["mean_observables"].items():
            md.append(f"| {k} | {v:.4f} | {dm['pathwise'][k]:.4f} | {dm['fd_0.002'][k]:.4f} | "
                      f"{dm['fd_0.005'][k]:.4f} |")  # fmt: skip
        md.append(f"| multiplicity | {d['mean_multiplicity']:.2f} | 0 (discrete) | "
                  f"{dm['fd_0.002']['multiplicity']:.1f} | {dm['fd_0.005']['multiplicity']:.1f} |")  # fmt: skip
    if "closure" in res:
        c = res["closure"]
        md += ["", f"## Closure (`{c['command']}`)", "",
               f"Hidden alpha_s = {c['truth']}, {c['n_data']:,} pseudo-data and {c['n_mc']:,} "
               f"moved events per seed, error = bootstrap ({c['bootstrap']} replicas, data and "
               f"simulation): within 1 sigma **{c['within_1sigma']}/{c['seeds']}**, within 3 sigma "
               f"**{c['within_3sigma']}/{c['seeds']}** (per block of 20 seeds within 1 sigma: "
               f"{', '.join(str(b) for b in c.get('within_1sigma_per_20', []))}); mean error "
               f"{c['mean_error']:.5f}, spread "
               f"of the fits {c['spread_of_fits']:.5f}, mean fit {c['mean_fit']:.5f}; pulls "
               f"{c['pull_mean']:+.2f} +- {c['pull_std']:.2f}; {c['mean_time_s']:.0f} s per fit. "
               "![pulls](diffsim_pulls.png)"]  # fmt: skip
    if "bruteforce" in res:
        b = res["bruteforce"]
        md += ["", f"## One moved sample vs a brute-force grid (`{b['command']}`)", "",
               f"Same pseudo-data ({b['n_per_sample']:,} events, hidden {b['truth']}), "
               f"{b['seeds']} seeds. Moved: one sample of {b['events_moved']:,} events; brute "
               f"force: {b['grid_points']} independent samples of {b['n_per_sample']:,} on "
               f"[{b['grid'][0]:.3f}, {b['grid'][1]:.3f}] ({b['events_bruteforce']:,} events), "
               "parabola through chi2.", "",
               "| method | simulated events | rms(fit - truth) | spread over seeds |",
               "|---|---|---|---|",
               f"| moved | {b['events_moved']:,} | {b['rms_moved']:.5f} | {b['spread_moved']:.5f} |",
               f"| brute force | {b['events_bruteforce']:,} | {b['rms_bruteforce']:.5f} | "
               f"{b['spread_bruteforce']:.5f} |", "", "![chi2](diffsim_chi2.png)"]  # fmt: skip
    if "mcnoise" in res:
        m = res["mcnoise"]
        md += ["", f"## Simulation-induced error, moved vs brute force (`{m['command']}`)", "",
               f"One pseudo-data set of {m['n_data']:,} events (hidden {m['truth']}); {m['seeds']} "
               f"simulation seeds. Spread of the fitted alpha_s over the seeds: moved sample of "
               f"{m['n_mc']:,} events **{m['spread_moved']:.5f}**; brute force, {m['grid_points']} "
               f"independent samples of {m['n_mc']:,} ({m['grid_points'] * m['n_mc']:,} events) "
               f"**{m['spread_bruteforce']:.5f}**. With errors scaling as 1/sqrt(events), the "
               f"brute-force grid needs **{m['event_ratio_same_error']:.1f} +- "
               f"{m['event_ratio_error']:.1f}** times the moved fit's events for the same error. "
               f"Means: moved {m['mean_moved']:.5f}, brute force {m['mean_bruteforce']:.5f}."]  # fmt: skip
    if "sampling" in res:
        sm = res["sampling"]
        md += ["", f"## Sampling term of Pb/LAr stacks (`{sm['command']}`)", "",
               f"sigma_E/E x sqrt(10 GeV) of {sm['n']:,} electrons of 10 GeV, 25 X0 deep:", "",
               "| stack | f_mip | Wigmans 2.7 % sqrt(d/f_mip) | cascade | numba GFlash |",
               "|---|---|---|---|---|"]  # fmt: skip
        for r in sm["rows"]:
            md.append(f"| {r['stack']} | {r['f_mip']:.3f} | {100 * r['wigmans']:.1f} % | "
                      f"{100 * r['cascade']:.1f} +- {100 * r['cascade_error']:.1f} % | "
                      f"{100 * r['gflash']:.1f} +- {100 * r['gflash_error']:.1f} % |")  # fmt: skip
    if "pythia" in res:
        p = res["pythia"]
        md += ["", f"## Cross-check with Pythia 8 at parton level (`{p['command']}`)", "",
               "| alpha_s | Pythia <1-T> (partons) | Discrete-QCD <1-T> | Discrete-QCD pathwise d<1-T>/d alpha_s |",
               "|---|---|---|---|"]  # fmt: skip
        for a, (m, e) in p["pythia_parton_tau"].items():
            dq = p["discrete_qcd_tau"][a]
            md.append(
                f"| {a} | {m:.4f} +- {e:.4f} | {dq['mean']:.4f} | {dq['pathwise_slope']:.3f} |"
            )
        md += ["", f"Slope d<1-T>/d alpha_s between 0.12 and 0.15: Pythia {p['pythia_slope']:.3f} "
               f"+- {p['pythia_slope_error']:.3f}, Discrete-QCD {p['discrete_qcd_slope']:.3f} "
               f"({p['n']:,} events per point)."]  # fmt: skip
    (RESULTS / "diffsim.md").write_text("\n".join(md) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "section",
        choices=[
            "gaussian",
            "derivatives",
            "closure",
            "bruteforce",
            "mcnoise",
            "pythia",
            "sampling",
        ],
    )
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--n-data", type=int, default=200_000, help="mcnoise: pseudo-data events")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bootstrap", type=int, default=50)
    ap.add_argument("--grid", type=int, default=11)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    RESULTS.mkdir(exist_ok=True)
    t0 = time.perf_counter()
    res = globals()[args.section](args)
    res["wall_s"] = time.perf_counter() - t0
    _record(args.section, res, "python bench/diffsim.py " + " ".join(argv or sys.argv[1:]))
    print(json.dumps({k: v for k, v in res.items() if k != "rows"}, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
