"""``physgen pythia``: Pythia 8 Z(→νν)+jet events as unfolding pairs in an HDF5 file.

A thin layer over :func:`physgen.events.generate_sample`; library errors propagate to
:func:`physgen.cli.main.main`, which prints ``error: <message>`` and exits with status 2.
(``physgen events`` is the neural-importance-sampling event generator.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from physgen.cli.conventions import NoProgress, Quiet, Verbose, progress, use_verbosity

__all__ = ["pythia"]


def pythia(
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Output .h5 file (datasets gen, reco (N, 6): m [GeV], M, w, tau21, zg, "
            "lnrho; pass_gen, pass_reco, weight, gen_pt, reco_pt [GeV], event). Written "
            "atomically; its folder must exist.",
        ),
    ],
    config: Annotated[
        str,
        typer.Option(
            "--config",
            help="sim (Pythia's default tune) or nature (weaker shower, broader "
            "hadronisation, less underlying event: moves all six observables).",
        ),
    ] = "sim",
    n: Annotated[
        int,
        typer.Option(
            "--n", help="Events to write: events passing the particle or detector level (>= 1)."
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
            "configuration's, e.g. --set 'TimeShower:alphaSvalue = 0.12'.",
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
            help="Print one JSON object (path, n, n_generated, pass fractions, seed, "
            "elapsed_s, events_per_s, from_cache) instead of the summary line.",
        ),
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Generate pp -> Z(->nu nu)+jet events at 13 TeV with Pythia 8 and write unfolding pairs.

    Particle level: visible final state with |eta| < 4.5; detector level: a parametrised
    response (tracks, photons, neutral hadrons). Leading anti-kT R=0.4 jet with |y| < 2.5,
    pass: pT > 200 GeV; reco must match gen within dR < 0.2. Needs pip install
    'physgen[events]'.
    """
    from physgen.events import generate_sample
    from physgen.outputs import check_output

    use_verbosity(quiet, verbose)
    check_output(out, "--out")
    sample = generate_sample(
        config=config,
        n=n,
        seed=seed,
        workers=workers,
        extra_settings=tuple(settings or ()),
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
