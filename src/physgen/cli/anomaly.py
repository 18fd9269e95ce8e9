"""``physgen anomaly``: resonant anomaly detection and the bump hunt, from the shell.

A thin layer over :mod:`physgen.anomaly`. Everything is checked before any work (options,
files, columns, regions); outputs are staged beside ``--out`` and moved there only when
complete, so a failure leaves nothing. An option the method does not use is an error, not
silently ignored. Library errors propagate to :func:`physgen.cli.main.main`, which prints
one line ``error: <message>`` and exits with status 2.

Outputs in ``--out``: ``scores.h5`` (``m_jj``, ``score``, ``region`` (1 SR, 0 SB, -1
neither), ``label`` when known; ``test_m_jj``, ``test_score``, ``test_label`` with
``--test``), ``results.json`` (settings, training CPU time, AUC / max SIC / rejections and
the SIC curve with labelled test events, the bump-hunt fits) and ``report.html`` with
``performance.png`` and ``bumphunt.png``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from physgen._version import __version__
from physgen.checks import check_seed
from physgen.cli.conventions import NoProgress, Quiet, Verbose, progress, use_verbosity
from physgen.errors import ConfigError, DataFormatError
from physgen.outputs import (
    check_output,
    json_ready,
    publish_staged,
    raise_if_interrupted,
    staging_dir,
)

__all__ = ["anomaly"]

METHODS = (
    "cwola",
    "cathode",
    "anode",
    "idealized",
    "supervised",
    "autoencoder",
    "flow-density",
    "bumphunt",
)
#: Options only some methods use -> those methods.
_ONLY_FOR = {
    "--background": ("idealized", "supervised"),
    "--signal": ("supervised",),
    "--folds": ("cwola", "cathode", "anode", "idealized", "supervised"),
    "--keep-failed": ("bumphunt",),
    "--ensemble": ("cwola", "cathode", "idealized", "supervised"),
    "--classifier": ("cwola", "cathode", "idealized", "supervised"),
    "--flow-time": ("cathode", "anode", "flow-density"),
    "--oversample": ("cathode",),
    "--scores": ("bumphunt",),
}
_FILE = "an .npy array in the LHCO layout (column 0 = m_jj [TeV], then features, label last "
_FILE += "with --labels last) or HDF5/npz/Parquet/ROOT with named columns"


def _range(text: str | None, option: str) -> tuple[float, float] | None:
    if text is None:
        return None
    lo, sep, hi = text.partition(":")
    try:
        a, b = float(lo), float(hi)
    except ValueError:
        a = b = math.nan
    if not sep or not (math.isfinite(a) and math.isfinite(b) and a < b):
        raise ConfigError(f"{option}: expected LO:HI in TeV with LO < HI, got {text!r}")
    return a, b


def _floats(text: str, option: str) -> tuple[float, ...]:
    try:
        vals = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        vals = ()
    if not vals or not all(0 < v <= 1 for v in vals):
        raise ConfigError(f"{option}: expected comma-separated fractions in (0, 1], got {text!r}")
    return vals


def _check_used(method: str, given: dict[str, bool]) -> None:
    for opt, methods in _ONLY_FOR.items():
        if given.get(opt) and method not in methods:
            raise ConfigError(f"{opt}: not used by {method} (only by {', '.join(methods)})")


def _read(path: Path | None, labels: str | None, option: str, features: str | None = None) -> Any:
    from physgen.anomaly.data import read_events

    if path is None:
        return None
    ev = read_events(path, labels=labels, features=features)
    return type(ev)(ev.mjj, ev.features, ev.labels, ev.names, f"{option} {path}")


def _events(
    method: str, files: dict[str, Path | None], labels: str | None, features: str | None
) -> Any:
    """The data events: ``--events``, or ``--signal-region`` and ``--sideband`` together."""
    if files["--events"] is not None and (files["--signal-region"] or files["--sideband"]):
        raise ConfigError("--events: give either --events or --signal-region/--sideband")
    parts = [
        _read(files[o], labels, o, features)
        for o in ("--events", "--signal-region", "--sideband")
        if files[o]
    ]
    if not parts:
        if method == "supervised":
            return None
        raise ConfigError(f"{method}: give the data with --events or --signal-region/--sideband")
    ev = parts[0]
    for p in parts[1:]:
        ev = ev.concat(p)
    return ev


def _write_scores(path: Path, res: Any, events: Any, regions: Any, test: Any) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        if events is not None:
            f["m_jj"] = events.mjj
            region = np.where(
                regions.in_sr(events.mjj), 1, np.where(regions.in_sb(events.mjj), 0, -1)
            )
            f["region"] = region.astype(np.int8)
            if events.labels is not None:
                f["label"] = events.labels
        f["score" if events is not None else "train_score"] = res.scores
        if test is not None and res.test_scores is not None:
            f["test_m_jj"] = test.mjj
            f["test_score"] = res.test_scores
            if test.labels is not None:
                f["test_label"] = test.labels
        f.attrs["method"] = res.method
        f.attrs["physgen_version"] = __version__


def _run_method(method: str, ev: Any, regions: Any, test: Any, o: dict[str, Any]) -> Any:
    from physgen.anomaly import classify, densities, unsupervised

    common = {"test": test, "seed": o["seed"]}
    cls = {"folds": o["folds"] or 5, "ensemble": o["ensemble"], "classifier": o["classifier"]}
    cls["threads"] = o["threads"]
    flow = {"max_time": o["flow_time"]} if o["flow_time"] else None
    if method == "cwola":
        return classify.cwola(ev, regions, **common, **cls)
    if method == "idealized":
        return classify.idealized(ev, o["background"], regions, **common, **cls)
    if method == "supervised":
        return classify.supervised(o["signal"], o["background"], events=ev, **common, **cls)
    if method == "cathode":
        return densities.cathode(
            ev,
            regions,
            **common,
            **cls,
            flow=flow,
            oversample=o["oversample"],
            progress=o["progress"],
        )
    if method == "anode":
        return densities.anode(
            ev, regions, **common, flow=flow, folds=o["folds"] or 2, progress=o["progress"]
        )
    if method == "flow-density":
        return densities.flow_density(ev, **common, flow=flow, progress=o["progress"])
    return unsupervised.autoencoder(ev, **common, threads=o["threads"])


def anomaly(
    method: Annotated[str, typer.Argument(help=f"One of: {', '.join(METHODS)}.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder (created; must be new or empty).")
    ],
    events: Annotated[
        Path | None, typer.Option("--events", help=f"All data events (SR and SB): {_FILE}.")
    ] = None,
    signal_region: Annotated[
        Path | None, typer.Option("--signal-region", help="Data events in the signal region.")
    ] = None,
    sideband: Annotated[
        Path | None, typer.Option("--sideband", help="Data events in the sidebands.")
    ] = None,
    test: Annotated[
        Path | None,
        typer.Option("--test", help="Labelled test events for ROC/SIC (scored, never trained on)."),
    ] = None,
    background: Annotated[
        Path | None,
        typer.Option(
            "--background",
            help="Background-only events: the idealized detector's SR template, the supervised "
            "reference's background.",
        ),
    ] = None,
    signal: Annotated[
        Path | None, typer.Option("--signal", help="Signal events (supervised reference).")
    ] = None,
    scores: Annotated[
        Path | None,
        typer.Option("--scores", help="bumphunt: a file with m_jj and score columns (scores.h5)."),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            help="Truth labels in the files: 'last' (.npy: last column), a column name, or "
            "'auto' (a 'label' column if present). Default: none.",
        ),
    ] = None,
    test_labels: Annotated[
        str | None,
        typer.Option("--test-labels", help="Labels of the --test file (default: as --labels)."),
    ] = None,
    features: Annotated[
        str | None,
        typer.Option(
            "--features",
            help="Feature columns: names in named-column files (m_jj is 'm_jj'), indices for "
            ".npy. Default: .npy all columns between m_jj and the label; other files the LHCO "
            "set m_j1, delta_mj, tau21_j1, tau21_j2.",
        ),
    ] = None,
    sr: Annotated[str, typer.Option("--sr", help="Signal region LO:HI in TeV.")] = "3.3:3.7",
    fit_range: Annotated[
        str | None,
        typer.Option(
            "--fit-range",
            help="m_jj range LO:HI in TeV of the bump-hunt fit (default: --sidebands, else all "
            "events); keep it above the trigger turn-on, where the dijet function holds.",
        ),
    ] = None,
    keep_failed: Annotated[
        bool,
        typer.Option(
            "--keep-failed",
            help="bumphunt: record a fit that fails instead of stopping with an error.",
        ),
    ] = False,
    sidebands: Annotated[
        str | None,
        typer.Option("--sidebands", help="Outer edges LO:HI of the sidebands (default: all)."),
    ] = None,
    folds: Annotated[
        int | None,
        typer.Option("--folds", help="k-fold cross-fitting (>= 2; default 5, anode 2)."),
    ] = None,
    ensemble: Annotated[int, typer.Option("--ensemble", help="Classifiers per fold.")] = 1,
    classifier: Annotated[
        str, typer.Option("--classifier", help="anomaly (3 x 64 MLP), fast or official.")
    ] = "anomaly",
    flow_time: Annotated[
        str | None, typer.Option("--flow-time", help="Time limit per flow, e.g. 5m.")
    ] = None,
    oversample: Annotated[
        float, typer.Option("--oversample", help="CATHODE background samples per SR event.")
    ] = 4.0,
    efficiencies: Annotated[
        str, typer.Option("--efficiencies", help="Bump-hunt score cuts (fractions kept).")
    ] = "0.1,0.01,0.001",
    bins: Annotated[int, typer.Option("--bins", help="m_jj bins of the bump hunt.")] = 40,
    seed: Annotated[int, typer.Option("--seed", help="Seed (>= 0).")] = 0,
    threads: Annotated[
        int | None, typer.Option("--threads", help="Torch threads for the classifiers.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results.json.")] = False,
    no_progress: NoProgress = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Score events with a resonant anomaly-detection method, evaluate it on labelled test
    events and bump-hunt the score-selected m_jj spectrum.

    Examples: physgen anomaly cwola --events data.npy --test test.npy --labels last -o run;
    physgen anomaly bumphunt --scores run/scores.h5 -o hunt.
    """
    use_verbosity(quiet, verbose)
    t0 = time.perf_counter()
    if method not in METHODS:
        raise ConfigError(f"METHOD: expected one of {', '.join(METHODS)}, got {method!r}")
    given = {
        "--background": background is not None,
        "--signal": signal is not None,
        "--folds": folds is not None,
        "--keep-failed": keep_failed,
        "--ensemble": ensemble != 1,
        "--classifier": classifier != "anomaly",
        "--flow-time": flow_time is not None,
        "--oversample": oversample != 4.0,
        "--scores": scores is not None,
    }
    _check_used(method, given)
    check_seed(seed)
    for name, value, low in (
        ("--folds", 2 if folds is None else folds, 2),
        ("--ensemble", ensemble, 1),
        ("--bins", bins, 5),
    ):
        if value < low:
            raise ConfigError(f"{name}: expected an integer >= {low}, got {value}")
    from physgen.anomaly.classify import get_classifier
    from physgen.anomaly.data import Regions

    cfg = get_classifier(classifier)
    sr_range = _range(sr, "--sr") or (3.3, 3.7)
    regions = Regions(sr_range, _range(sidebands, "--sidebands"))
    fit = _range(fit_range, "--fit-range") or regions.sidebands
    effs = _floats(efficiencies, "--efficiencies")
    files = {
        "--events": events,
        "--signal-region": signal_region,
        "--sideband": sideband,
        "--test": test,
        "--background": background,
        "--signal": signal,
        "--scores": scores,
    }
    check_output(out, "--out", kind="dir", inputs=list(files.values()))
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: exists and is not an empty folder")
    if method == "bumphunt":
        return _bumphunt(scores, files, regions, effs, bins, fit, keep_failed, out, as_json, t0)
    if method == "idealized" and background is None:
        raise ConfigError("--background: the idealized detector needs a background-only sample")
    if method == "supervised" and (background is None or signal is None):
        raise ConfigError("--signal, --background: the supervised reference needs both")
    ev = _events(method, files, labels, features)
    tst = _read(test, test_labels or labels, "--test", features)
    test_info: dict[str, Any] = {}
    if tst is not None:
        tst.require_labels("--test (use --test-labels or --labels)")
        in_sr = regions.in_sr(tst.mjj)
        test_info = {"test_events": len(tst), "test_events_in_sr": int(in_sr.sum())}
        tst = tst.select(in_sr)  # SIC is defined for the signal region
        if len(tst) == 0:
            raise ConfigError(
                f"--test {test}: no events in the signal region {regions.signal_region}"
            )
    opts = {
        "seed": seed,
        "folds": folds,
        "ensemble": ensemble,
        "classifier": cfg,
        "threads": threads,
        "flow_time": flow_time,
        "oversample": oversample,
        "progress": progress(no_progress),
        "background": _read(background, labels, "--background", features),
        "signal": _read(signal, labels, "--signal", features),
    }
    from physgen.anomaly.report import summarize, write_report

    created = not out.exists()
    with staging_dir(out) as stage:
        res = _run_method(method, ev, regions, tst, opts)
        raise_if_interrupted()
        if ev is not None:
            summary = summarize(
                res, ev, regions, test=tst, efficiencies=effs, bins=bins, fit_range=fit
            )
        else:  # supervised without data: its training events' scores, the test performance
            summary = summarize(res, tst or opts["signal"], regions, test=tst, efficiencies=())
        _write_scores(stage / "scores.h5", res, ev, regions, tst)
        files_written = write_report(stage, summary, title=f"physgen anomaly {method}")
        data = {
            "physgen_version": __version__,
            "command": "anomaly",
            **summary.data,
            "inputs": {k: str(v) for k, v in files.items() if v is not None},
            "signal_region": list(regions.signal_region),
            "sidebands": regions.sidebands,
            "fit_range": fit,
            "features": list((ev or tst or opts["signal"]).names),
            **test_info,
            "seed": seed,
            "wall_s": time.perf_counter() - t0,
            "files": ["scores.h5", *files_written, "results.json"],
        }
        text = _publish(stage, out, created, data)
    _echo(method, data, text, as_json)


def _publish(stage: Path, out: Path, created: bool, data: dict[str, Any]) -> str:
    """Write ``results.json`` into the stage and move everything into ``out``."""
    text = json.dumps(json_ready(data), indent=2) + "\n"
    (stage / "results.json").write_text(text)
    publish_staged(stage, out, created=created)
    return text


def _echo(method: str, data: dict[str, Any], text: str, as_json: bool) -> None:
    if as_json:
        typer.echo(text.rstrip())
        return
    line = f"{method}:"
    if "train_cpu_s" in data:
        line += f" training CPU {data['train_cpu_s']:.0f} s"
    perf = data.get("performance")
    if perf:
        line += f"; test AUC {perf['auc']:.3f}, max SIC {perf['max_sic']:.2f}"
    typer.echo(line)
    for h in data.get("bump_hunt", []):
        f = h["fit"]
        what = (
            f"local Z {f['significance']:.2f} (SR {f['n_observed']} observed, "
            f"{f['background']:.1f} ± {f['background_error']:.1f} expected)"
            if f
            else f"fit failed: {h['error']}"
        )
        typer.echo(f"  top {100 * h['efficiency']:g} %: {what}")


def _bumphunt(
    scores: Path | None,
    files: dict[str, Path | None],
    regions: Any,
    effs: tuple[float, ...],
    bins: int,
    fit: tuple[float, float] | None,
    keep_failed: bool,
    out: Path,
    as_json: bool,
    t0: float,
) -> None:
    from physgen.anomaly.bumphunt import bump_hunt
    from physgen.anomaly.report import Summary, write_report
    from physgen.columns import read_columns

    if scores is None:
        raise ConfigError("--scores: bumphunt needs a file with m_jj and score columns")
    others = [k for k, v in files.items() if v is not None and k != "--scores"]
    if others:
        raise ConfigError(f"{others[0]}: not used by bumphunt (give --scores)")
    arr = read_columns(scores, ["m_jj", "score"], allow_nonfinite=True)
    if not np.isfinite(arr[:, 0]).all():
        bad = int(np.flatnonzero(~np.isfinite(arr[:, 0]))[0])
        raise DataFormatError(f"--scores {scores}: m_jj holds NaN or inf (first: row {bad})")
    keep = np.isfinite(arr[:, 1])  # NaN score: an event the method did not score
    hunts = bump_hunt(
        arr[keep, 0],
        arr[keep, 1],
        effs,
        signal_region=regions.signal_region,
        bins=bins,
        range=fit,
        skip_failed=keep_failed,
    )
    summary = Summary(
        hunts=hunts, data={"method": "bumphunt", "bump_hunt": [h.to_dict() for h in hunts]}
    )
    created = not out.exists()
    with staging_dir(out) as stage:
        written = write_report(stage, summary, title="physgen anomaly bumphunt")
        data = {
            "physgen_version": __version__,
            "command": "anomaly bumphunt",
            **summary.data,
            "inputs": {"--scores": str(scores)},
            "n_events": int(keep.sum()),
            "n_unscored": int((~keep).sum()),
            "fit_range": fit,
            "signal_region": list(regions.signal_region),
            "wall_s": time.perf_counter() - t0,
            "files": [*written, "results.json"],
        }
        text = _publish(stage, out, created, data)
    _echo("bumphunt", data, text, as_json)
