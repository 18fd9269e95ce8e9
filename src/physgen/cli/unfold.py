"""``physgen unfold``: correct detector-level data back to particle level, from the shell.

A thin layer over :func:`physgen.unfold.omnifold`, :func:`physgen.unfold.ibu` and
``physgen.unfold.generative.generative_unfold``. Everything is checked before any work (the
options, the files, their columns); the outputs are staged in a temporary folder beside
``--out`` and moved there only when all of them are complete, so a failure leaves nothing
(and creates no ``--out``); an option the method does not use (``--bootstrap`` with
generative, ``--ensemble`` other than with omnifold, ``--bins`` other than with ibu) is an
error, not silently ignored. Library errors propagate to :func:`physgen.cli.main.main`, which
prints one line ``error: <message>`` and exits with status 2.

Outputs in ``--out``: ``weights.h5`` (omnifold), ``ibu.h5`` (ibu) or ``samples.h5``
(generative); ``results.json`` (settings, timings in s, per-observable mean and standard
deviation of the prior, the data, the unfolded result and the truth when the data file holds
it); ``report.html``.
"""

from __future__ import annotations

import importlib
import json
import logging
import math
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import numpy.typing as npt
import typer

from physgen._version import __version__
from physgen.checks import check_device, check_seed
from physgen.cli.conventions import NoProgress, Quiet, Verbose, progress, use_verbosity
from physgen.errors import ConfigError, MissingDependencyError
from physgen.outputs import (
    check_output,
    json_ready,
    publish_staged,
    staging_dir,
)

__all__ = ["unfold"]

log = logging.getLogger("physgen.unfold")

F64 = npt.NDArray[np.float64]
#: A report entry: samples, weights, bootstrap weights, the observables it applies to (None:
#: all); see :func:`physgen.unfold.report.write_report`.
Entry = tuple[F64, F64, Optional[F64], Optional[tuple[str, ...]]]
METHODS = ("omnifold", "generative", "ibu")
_DEFAULT_ITERATIONS = {"omnifold": 4, "ibu": 4, "generative": 1}
_DEFAULT_BOOTSTRAP = {"omnifold": 0, "ibu": 20, "generative": 0}
_DEFAULT_ENSEMBLE, _DEFAULT_BINS = 1, 30
#: Options that only some methods use -> those methods (given with another: an error).
_ONLY_FOR = {
    "--bootstrap": ("omnifold", "ibu"),
    "--ensemble": ("omnifold",),
    "--bootstrap-mc": ("omnifold", "ibu"),
    "--warm-start": ("omnifold",),
    "--efficiency": ("omnifold",),
    "--bins": ("ibu",),
    "--classifier": ("omnifold", "generative"),
    "--model": ("generative",),
}


def _file(path: Path) -> Path:
    """The file of a ``FILE.root:TREE`` specification."""
    text = str(path)
    return Path(text.partition(".root:")[0] + ".root") if ".root:" in text else path


def _moments(x: F64, w: F64 | None = None) -> tuple[float, float]:
    if w is None:
        w = np.ones(len(x))
    total = float(w.sum())
    if len(x) == 0 or total <= 0:
        return math.nan, math.nan
    mu = float(np.dot(w, x) / total)
    return mu, float(np.sqrt(max(np.dot(w, (x - mu) ** 2) / total, 0.0)))


def _entry(x: F64, w: F64 | None = None, boot: F64 | None = None) -> dict[str, Any]:
    mu, sd = _moments(x, w)
    d: dict[str, Any] = {"mean": mu, "std": sd}
    if boot is not None and boot.shape[0] >= 2:
        stats = np.array([_moments(x, b) for b in boot])
        d["mean_err"] = float(stats[:, 0].std(ddof=1))
        d["std_err"] = float(stats[:, 1].std(ddof=1))
    return d


def _check_int(name: str, value: int, low: int) -> None:
    if value < low:
        raise ConfigError(f"{name}: expected an integer >= {low}, got {value}")


def _generative(
    mc: Any, data: Any, opts: dict[str, Any], stage: Path
) -> tuple[dict[str, Any], F64, F64]:
    """Run the generative method; writes ``samples.h5``, ``summary.json`` and ``model/``."""
    from physgen.metrics.classifier import torch_threads
    from physgen.unfold.generative import generative_unfold

    with torch_threads(opts["threads"]):
        res = generative_unfold(
            mc,
            data,
            model=opts["model"],
            iterations=opts["iterations"],
            classifier=opts["classifier"],
            seed=opts["seed"],
            device=opts["device"],
            progress=opts["progress"],
            out=stage,
        )
    samples, weights = res.flat()
    return {"model": opts["model"], "summary": res.summary()}, samples, weights


def unfold(
    mc: Annotated[
        Path,
        typer.Option(
            "--mc",
            help="MC pairs: HDF5 with datasets gen, reco (N, D) and optional pass_gen, "
            "pass_reco, weight (column names in the attribute 'columns'), or a ROOT TTree "
            "(FILE.root[:TREE]) with branches gen_<col>, reco_<col>, pass_gen, pass_reco, weight.",
        ),
    ],
    data: Annotated[
        Path,
        typer.Option(
            "--data",
            help="Data: reco (M, D) and optional weight; with gen (and pass flags) it is "
            "pseudo-data whose truth is compared with the result.",
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Output folder (created; must be new or empty; its parent must exist).",
        ),
    ],
    method: Annotated[
        str, typer.Option("--method", help="omnifold, generative or ibu.")
    ] = "omnifold",
    iterations: Annotated[
        Optional[int],
        typer.Option("--iterations", help="Iterations (default 4; generative 1)."),
    ] = None,
    ensemble: Annotated[
        Optional[int],
        typer.Option("--ensemble", help="omnifold: classifiers per step, averaged (default 1)."),
    ] = None,
    bootstrap: Annotated[
        Optional[int],
        typer.Option(
            "--bootstrap",
            help="omnifold, ibu: Poisson replicas of the data for statistical errors (default: "
            "ibu 20, omnifold 0; each omnifold replica is a full unfolding).",
        ),
    ] = None,
    bootstrap_mc: Annotated[
        bool,
        typer.Option(
            "--bootstrap-mc",
            help="omnifold, ibu: fluctuate the MC weights in every replica too, so the band "
            "holds the simulation's statistical uncertainty (needs --bootstrap).",
        ),
    ] = False,
    warm_start: Annotated[
        bool,
        typer.Option(
            "--warm-start",
            help="omnifold: start each iteration's classifiers from the previous iteration's "
            "(as the reference package does; fewer epochs per training).",
        ),
    ] = False,
    efficiency: Annotated[
        Optional[str],
        typer.Option(
            "--efficiency",
            help="omnifold: pull weights of events that fail reco: keep (the package's "
            "convention, default) or learn (their gen neighbours' update, one more classifier "
            "per iteration; converges like IBU).",
        ),
    ] = None,
    columns: Annotated[
        Optional[str], typer.Option("--columns", help="Observables to unfold, comma-separated.")
    ] = None,
    background: Annotated[
        Optional[Path],
        typer.Option(
            "--background",
            help="Background MC (same layout as --mc; weights normalised to the data's "
            "luminosity, may be negative), subtracted from the data.",
        ),
    ] = None,
    classifier: Annotated[
        Optional[str],
        typer.Option(
            "--classifier",
            help="omnifold, generative (prior and acceptance weights): classifier preset "
            "fast, official or small (default fast).",
        ),
    ] = None,
    model: Annotated[
        Optional[str], typer.Option("--model", help="generative: flow or cfm (default flow).")
    ] = None,
    bins: Annotated[
        Optional[int],
        typer.Option(
            "--bins",
            help="ibu: bins per observable, plus under/overflow (default 30; whole-number "
            "observables get bins centred on the integers, at most this many).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed: same seed, same result.")] = 0,
    threads: Annotated[int, typer.Option("--threads", help="torch threads.")] = 1,
    device: Annotated[str, typer.Option("--device", help="cpu, cuda or cuda:N.")] = "cpu",
    no_progress: NoProgress = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print results.json.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Unfold detector-level data to particle level with OmniFold, IBU or a generative model."""
    from physgen.unfold.data import check_compatible, read_data, read_mc
    from physgen.unfold.omnifold import get_classifier

    t0 = time.perf_counter()
    use_verbosity(quiet, verbose)
    if method not in METHODS:
        raise ConfigError(f"--method: expected one of {', '.join(METHODS)}, got {method!r}")
    given_options = (
        ("--bootstrap", bootstrap),
        ("--ensemble", ensemble),
        ("--bootstrap-mc", True if bootstrap_mc else None),
        ("--warm-start", True if warm_start else None),
        ("--efficiency", efficiency),
        ("--bins", bins),
        ("--classifier", classifier),
        ("--model", model),
    )
    for option, given in given_options:
        if given is not None and method not in _ONLY_FOR[option]:
            raise ConfigError(
                f"{option}: not used by --method {method} (only by {', '.join(_ONLY_FOR[option])})"
            )
    check_seed(seed)
    device = check_device(device)
    n_iter = _DEFAULT_ITERATIONS[method] if iterations is None else iterations
    n_boot = _DEFAULT_BOOTSTRAP[method] if bootstrap is None else bootstrap
    n_ens = _DEFAULT_ENSEMBLE if ensemble is None else ensemble
    n_bins = _DEFAULT_BINS if bins is None else bins
    for name, value, low in (
        ("--iterations", n_iter, 1),
        ("--ensemble", n_ens, 1),
        ("--bootstrap", n_boot, 0),
        ("--bins", n_bins, 1),
        ("--threads", threads, 1),
    ):
        _check_int(name, value, low)
    if bootstrap_mc and n_boot < 1:
        raise ConfigError("--bootstrap-mc: needs --bootstrap N with N >= 1 replicas")
    cfg = get_classifier(classifier or "fast", "--classifier")
    model = model or "flow"
    if method == "generative" and background is not None:
        raise ConfigError("--background: the generative method does not subtract a background")
    if model not in ("flow", "cfm"):
        raise ConfigError(f"--model: expected flow or cfm, got {model!r}")
    check_output(
        out, "--out", kind="dir", inputs=[_file(mc), _file(data), background and _file(background)]
    )
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: exists and is not an empty folder")
    cols = None if columns is None else [c.strip() for c in columns.split(",") if c.strip()]
    if cols is not None and not cols:
        raise ConfigError("--columns: no column names given")
    mc_s = read_mc(mc, columns=cols)
    data_s = read_data(data, columns=cols)
    bkg_s = None if background is None else read_mc(background, columns=cols, background=True)
    check_compatible(
        mc_s, data_s, bkg_s, names=(f"--mc {mc}", f"--data {data}", f"--background {background}")
    )
    t_read = time.perf_counter() - t0
    show = progress(no_progress)
    opts: dict[str, Any] = {
        "model": model,
        "iterations": n_iter,
        "seed": seed,
        "threads": threads,
        "device": device,
        "progress": show,
        "classifier": cfg,
    }
    created = not out.exists()
    with staging_dir(out) as stage:
        t1 = time.perf_counter()
        gen_m = mc_s.pass_gen
        prior = (mc_s.gen[gen_m], mc_s.weight[gen_m])
        boot_w: F64 | None = None
        unfolded: dict[str, Entry]
        extra: dict[str, Any] = {}
        per_column: dict[str, dict[str, Any]] = {}
        report_bins: dict[str, F64] = {}
        if method == "omnifold":
            from physgen.unfold.omnifold import omnifold

            res = omnifold(
                mc_s,
                data_s,
                iterations=n_iter,
                ensemble=n_ens,
                bootstrap=n_boot,
                bootstrap_mc=bootstrap_mc,
                warm_start=warm_start,
                efficiency=efficiency or "keep",
                classifier=cfg,
                background=bkg_s,
                seed=seed,
                threads=threads,
                progress=show,
                out=stage,
                device=device,
            )
            x, w = res.unfolded(mc_s)
            boot_w = res.bootstrap_weights(mc_s) if n_boot >= 2 else None
            unfolded = {"OmniFold": (x, w, boot_w, None)}
            extra = {
                "ensemble": n_ens,
                "warm_start": warm_start,
                "efficiency": efficiency or "keep",
                "classifier": cfg.to_dict(),
                "data_scale": res.data_scale,
            }
            per_column = {
                c: {"unfolded": _entry(x[:, i], w, boot_w)} for i, c in enumerate(mc_s.columns)
            }
        elif method == "ibu":
            from physgen.unfold.ibu import event_weights, ibu, write_ibu

            results = []
            unfolded = {}
            for c in mc_s.columns:
                r = ibu(
                    mc_s,
                    data_s,
                    c,
                    n_bins,
                    n_iter,
                    bkg_s,
                    bootstrap=n_boot,
                    bootstrap_mc=bootstrap_mc,
                    seed=seed,
                )
                results.append(r)
                report_bins[c] = r.edges
                centres = 0.5 * (r.edges[1:] + r.edges[:-1])
                boot = r.bootstrap if n_boot >= 2 else None
                per_column[c] = {
                    "unfolded": {**_entry(centres, r.final, boot), "binned": True},
                    "prior_binned": _entry(centres, r.prior),
                    "efficiency_mean": float(np.mean(r.efficiency[1:-1])),
                }
                # IBU reweights the MC in this observable only: scored and drawn only there
                key = "IBU" if len(mc_s.columns) == 1 else f"IBU ({c})"
                bw = event_weights(r, mc_s, r.bootstrap) if n_boot >= 2 else None
                unfolded[key] = (prior[0], event_weights(r, mc_s), bw, (c,))
            write_ibu(stage / "ibu.h5", results)
            extra = {"bins": n_bins}
        else:
            extra, x, w = _generative(mc_s, data_s, opts, stage)
            unfolded = {"generative": (x, w, None, None)}
            per_column = {c: {"unfolded": _entry(x[:, i], w)} for i, c in enumerate(mc_s.columns)}
        t_unfold = time.perf_counter() - t1
        truth, truth_w = None, None
        if data_s.truth is not None:
            tm = data_s.truth.pass_gen
            truth, truth_w = data_s.truth.gen[tm], data_s.truth.weight[tm]
        rm = mc_s.pass_reco
        for i, c in enumerate(mc_s.columns):
            per_column[c]["prior"] = _entry(prior[0][:, i], prior[1])
            per_column[c]["data_reco"] = _entry(data_s.reco[:, i], data_s.weight)
            per_column[c]["mc_reco"] = _entry(mc_s.reco[rm, i], mc_s.weight[rm])
            if truth is not None:
                per_column[c]["truth"] = _entry(truth[:, i], truth_w)
        t2 = time.perf_counter()
        report = _report(
            stage,
            mc_s.columns,
            prior,
            data_s,
            unfolded,
            None if truth is None or truth_w is None else (truth, truth_w),
            method,
            report_bins or None,
        )
        results_json = {
            "method": method,
            "settings": {
                "mc": str(mc),
                "data": str(data),
                "background": None if background is None else str(background),
                "columns": list(mc_s.columns),
                "iterations": n_iter,
                "bootstrap": n_boot,
                "bootstrap_mc": bootstrap_mc,
                "seed": seed,
                "threads": threads,
                "device": device,
                "n_mc": mc_s.n_events,
                "n_data": data_s.n_events,
                **extra,
            },
            "physgen_version": __version__,
            "timings_s": {
                "read": t_read,
                "unfold": t_unfold,
                "report": time.perf_counter() - t2,
                "total": time.perf_counter() - t0,
            },
            "observables": per_column,
            "files": [*sorted(p.name for p in stage.iterdir()), "results.json"],
            "report": report,
        }
        text = json.dumps(json_ready(results_json), indent=2) + "\n"
        (stage / "results.json").write_text(text)
        publish_staged(stage, out, created=created)
    if as_json:
        typer.echo(text.rstrip())
        return
    typer.echo(f"{method}: {len(mc_s.columns)} observables, {n_iter} iterations -> {out}")
    for c, d in per_column.items():
        u, p = d["unfolded"], d["prior"]
        line = f"  {c}: unfolded mean {u['mean']:.4g} std {u['std']:.4g}"
        line += f" (prior {p['mean']:.4g}, {p['std']:.4g}"
        if "truth" in d:
            line += f"; truth {d['truth']['mean']:.4g}, {d['truth']['std']:.4g}"
        typer.echo(line + ")")


def _report(
    stage: Path,
    columns: tuple[str, ...],
    prior: tuple[F64, F64],
    data: Any,
    unfolded: dict[str, Entry],
    truth: tuple[F64, F64] | None,
    method: str,
    bins: dict[str, F64] | None,
) -> str | None:
    """``report.html`` (with its figures and ``metrics.json``) via
    :func:`physgen.unfold.report.write_report`; None, with a warning, when the report
    module or its plotting packages are missing."""
    try:
        write_report = importlib.import_module("physgen.unfold.report").write_report
    except ImportError as exc:
        log.warning("report.html not written: physgen.unfold.report cannot be imported (%s)", exc)
        return None
    try:
        path = write_report(
            stage,
            columns=columns,
            prior=prior,
            data_reco=(data.reco, data.weight),
            unfolded=unfolded,
            truth=truth,
            title=f"physgen unfold --method {method}",
            bins=bins,
        )
    except MissingDependencyError as exc:
        log.warning("report.html not written: %s", exc)
        return None
    return Path(path).name
