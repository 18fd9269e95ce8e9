"""``physgen pythia``: Pythia 8 events: Z(→νν)+jet unfolding pairs, or LHCO-like dijets.

``--process zjet`` (default) writes unfolding pairs (:func:`physgen.events.generate_sample`);
``--process qcd-dijet`` or ``wprime`` writes the five CATHODE features and a label of
LHC-Olympics-like dijet events (:func:`physgen.events.generate_dijets`) as HDF5 or as the LHCO
``(N, 6)`` ``.npy`` array. A thin layer over these functions; library errors propagate to
:func:`physgen.cli.main.main`, which prints ``error: <message>`` and exits with status 2.
(``physgen events`` is the neural-importance-sampling event generator.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from physgen.cli.conventions import NoProgress, Quiet, Verbose, progress, use_verbosity
from physgen.errors import ConfigError

__all__ = ["pythia"]


def pythia(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Output file, written atomically; its folder must exist. zjet: .h5 "
            "(datasets gen, reco (N, 6): m [GeV], M, w, tau21, zg, lnrho; pass_gen, "
            "pass_reco, weight, gen_pt, reco_pt [GeV], event). qcd-dijet, wprime: .h5 "
            "(features (N, 5): m_jj, m_j1, delta_mj [TeV], tau21_j1, tau21_j2; label, "
            "jet_pt [TeV], event) or .npy (LHCO array (N, 6): the features, then the "
            "label 0 QCD / 1 signal).",
        ),
    ],
    process: Annotated[
        str,
        typer.Option(
            "--process",
            help="zjet (pp -> Z(->nu nu)+jet unfolding pairs), qcd-dijet (LHCO-like QCD "
            "dijets, pTHatMin 1000 GeV) or wprime (W' 3.5 TeV -> X 500 GeV + Y 100 GeV -> "
            "4 quarks). Dijets: anti-kT R=1.0, leading jet pT > 1.2 TeV, particle level.",
        ),
    ] = "zjet",
    config: Annotated[
        str | None,
        typer.Option(
            "--config",
            help="--process zjet only: sim (Pythia's default tune, the default) or nature "
            "(weaker shower, broader hadronisation, less underlying event: moves all six "
            "observables).",
        ),
    ] = None,
    n: Annotated[
        int,
        typer.Option(
            "--n",
            help="Events to write (>= 1): zjet: events passing the particle or detector "
            "level; dijets: accepted events.",
        ),
    ] = 50_000,
    seed: Annotated[
        int, typer.Option("--seed", help="Run seed (>= 0): same seed, same bytes.")
    ] = 0,
    workers: Annotated[
        int, typer.Option("--workers", help="Worker processes; the output does not depend on it.")
    ] = 1,
    settings: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Extra Pythia setting 'Key = value' (repeatable), applied after the "
            "process's and configuration's, e.g. --set 'TimeShower:alphaSvalue = 0.12'.",
        ),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            help="Neither read nor store the sample in the cache ($PHYSGEN_CACHE/events, "
            "default ~/.cache/physgen/events).",
        ),
    ] = False,
    no_progress: NoProgress = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object (path, n, n_generated, pass fractions or "
            "acceptance, seed, elapsed_s, events_per_s, from_cache) instead of the summary "
            "line.",
        ),
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Generate Pythia 8 events at 13 TeV: Z(->nu nu)+jet unfolding pairs or LHCO-like dijets.

    zjet: particle level = visible final state with |eta| < 4.5; detector level: a
    parametrised response (tracks, photons, neutral hadrons). Leading anti-kT R=0.4 jet with
    |y| < 2.5, pass: pT > 200 GeV; reco must match gen within dR < 0.2. qcd-dijet, wprime:
    particle level only, anti-kT R=1.0 jets with |y| < 2.5, leading jet pT > 1.2 TeV, the
    five CATHODE features in TeV and a label. Needs pip install 'physgen[events]'.
    """
    from physgen.events import DIJET_PROCESSES
    from physgen.outputs import check_output

    use_verbosity(quiet, verbose)
    check_output(out, "--out")
    extra = tuple(settings or ())
    if process in DIJET_PROCESSES:
        if config is not None:
            raise ConfigError(
                f"--config: applies to --process zjet only ({process} uses Pythia's default "
                "tune; change it with --set)"
            )
        _dijets(process, out, n, seed, workers, extra, not no_cache, no_progress, as_json)
        return
    if process != "zjet":
        raise ConfigError(
            f"--process: unknown process {process!r}; choose zjet, {' or '.join(DIJET_PROCESSES)}"
        )
    config = "sim" if config is None else config
    from physgen.events import generate_sample

    sample = generate_sample(
        config=config,
        n=n,
        seed=seed,
        workers=workers,
        extra_settings=extra,
        cache=not no_cache,
        out=out,
        progress=progress(no_progress),
    )
    k = len(sample)
    n_generated = int(sample.attrs.get("n_generated", 0))
    elapsed = sample.elapsed_s
    d = {
        "path": str(sample.path),
        "config": config,
        "n": k,
        "n_generated": n_generated,
        "pass_gen": float(sample.pass_gen.mean()),
        "pass_reco": float(sample.pass_reco.mean()),
        "n_unmatched": int(sample.attrs.get("n_unmatched", 0)),
        "seed": seed,
        "from_cache": sample.from_cache,
        "elapsed_s": round(elapsed, 3),
        "events_per_s": n_generated / elapsed if elapsed > 0 else None,
    }
    if as_json:
        typer.echo(json.dumps(d))
        return
    how = (
        "from the cache"
        if sample.from_cache
        else f"{n_generated} generated in {elapsed:.1f} s ({n_generated / max(elapsed, 1e-9):.3g} events/s)"
    )
    typer.echo(
        f"wrote {sample.path}: {k} {config} events ({how}); pass gen {d['pass_gen']:.3f}, "
        f"pass reco {d['pass_reco']:.3f}"
    )


def _dijets(
    process: str,
    out: Path,
    n: int,
    seed: int,
    workers: int,
    extra: tuple[str, ...],
    cache: bool,
    no_progress: bool,
    as_json: bool,
) -> None:
    from physgen.events import generate_dijets

    sample = generate_dijets(
        process=process,
        n=n,
        seed=seed,
        workers=workers,
        extra_settings=extra,
        cache=cache,
        out=out,
        progress=progress(no_progress),
    )
    k = len(sample)
    n_generated = int(sample.attrs.get("n_generated", 0))
    elapsed = sample.elapsed_s
    d: dict[str, Any] = {
        "path": str(sample.path),
        "process": process,
        "n": k,
        "n_generated": n_generated,
        "acceptance": k / n_generated if n_generated > 0 else None,
        "seed": seed,
        "from_cache": sample.from_cache,
        "elapsed_s": round(elapsed, 3),
        "events_per_s": n_generated / elapsed if elapsed > 0 else None,
    }
    if as_json:
        typer.echo(json.dumps(d))
        return
    how = (
        "from the cache"
        if sample.from_cache
        else f"{n_generated} generated in {elapsed:.1f} s ({n_generated / max(elapsed, 1e-9):.3g} events/s)"
    )
    acc = f"; acceptance {d['acceptance']:.3f}" if d["acceptance"] is not None else ""
    typer.echo(f"wrote {sample.path}: {k} {process} events ({how}){acc}")
