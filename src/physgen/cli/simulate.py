"""``physgen simulate``: reference showers into a CaloChallenge HDF5 file.

A thin layer over :func:`physgen.calo.simulate.run.simulate`; library errors
propagate to :func:`physgen.cli.main.main`, which prints ``error: <message>``
and exits with status 2.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer

from physgen.cli.cluster import Cluster, ClusterConfig, TaskSize, cluster_spec
from physgen.cli.conventions import NoProgress, Quiet, Verbose, progress, use_verbosity

__all__ = ["simulate"]

_ENERGY_HELP = (
    "Incident energy. Three forms: a value with units, e.g. 100GeV, 500MeV, 1TeV, 2.5e3MeV "
    "(a bare number is MeV); a log-uniform range LOW:HIGH, e.g. 1GeV:1TeV; or ds1 (the 15 "
    "CaloChallenge dataset-1 energies 2^8..2^22 MeV with the dataset-1 frequencies; ds1:even "
    "cycles through them)."
)


def simulate(
    geometry: Annotated[
        str,
        typer.Option(
            "--geometry",
            help="Readout geometry: 2 or 3 (Par04 W/Si), 1-photons (ATLAS-like), calogan.",
        ),
    ],
    particle: Annotated[
        str, typer.Option("--particle", help="electron, positron or photon (e-, e+, gamma).")
    ],
    n: Annotated[
        int, typer.Option("--n", help="Number of showers of the run (> 0; all shards together).")
    ],
    energy: Annotated[str, typer.Option("--energy", help=_ENERGY_HELP)],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Output .h5 file; its folder must exist. Written atomically."
        ),
    ],
    seed: Annotated[
        int, typer.Option("--seed", help="Run seed (>= 0): same seed, same bytes.")
    ] = 0,
    engine: Annotated[
        str,
        typer.Option(
            "--engine",
            help="cascade (particle-by-particle Monte Carlo, slow) or gflash (parametrised, fast).",
        ),
    ] = "cascade",
    workers: Annotated[
        int, typer.Option("--workers", help="Worker processes; the output does not depend on it.")
    ] = 1,
    compression: Annotated[
        str, typer.Option("--compression", help="HDF5 compression: gzip, lzf or none.")
    ] = "gzip",
    detector: Annotated[
        str | None,
        typer.Option(
            "--detector",
            help="Detector stack: par04, atlas-like, calogan (default: the geometry's own).",
        ),
    ] = None,
    shard: Annotated[
        str | None,
        typer.Option(
            "--shard",
            help="Simulate only shard I of K (e.g. 3/8) of the --n showers; every shower has "
            "its own seed, so any K <= --n works, and shards 1/K..K/K merged in order with "
            "physgen merge are the unsharded run.",
        ),
    ] = None,
    cluster: Cluster = None,
    cluster_config: ClusterConfig = None,
    task_size: TaskSize = None,
    no_progress: NoProgress = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object (path, n_showers, rows, seed, elapsed_s...) instead "
            "of the summary line.",
        ),
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Simulate electromagnetic showers in a sampling calorimeter (energies in MeV, lengths in mm).

    Writes incident_energies (N, 1) and showers (N, n_voxels) in MeV, calibrated by the
    engine's sampling fraction, with the provenance (seed, engine, energy spec...) as attributes.
    """
    from physgen.calo.distributed import DEFAULT_TASK_SHOWERS
    from physgen.calo.shards import parse_shard
    from physgen.calo.simulate.run import simulate as run_simulate

    use_verbosity(quiet, verbose)
    shard_ = parse_shard(shard)
    spec = cluster_spec(cluster, cluster_config, workers=workers, shard=shard)
    t0 = time.perf_counter()
    path = run_simulate(
        geometry=geometry,
        particle=particle,
        n=n,
        energy=energy,
        seed=seed,
        out=out,
        engine=engine,
        workers=workers,
        compression=compression,
        progress=progress(no_progress) is not False,
        detector=detector,
        shard=shard_,
        cluster=spec,
        task_showers=DEFAULT_TASK_SHOWERS["simulate"] if task_size is None else task_size,
    )
    elapsed = time.perf_counter() - t0
    start, stop = shard_.rows(n, block=1)
    k = stop - start
    if as_json:
        d = {
            "path": str(path),
            "n_showers": k,
            "n_total": n,
            "shard": f"{shard_.index + 1}/{shard_.count}",
            "rows": [start, stop],
            "particle": particle,
            "geometry": geometry,
            "engine": engine,
            "energy": energy,
            "seed": seed,
            "elapsed_s": round(elapsed, 3),
            "showers_per_s": k / max(elapsed, 1e-9),
        }
        typer.echo(json.dumps(d))
        return
    part = f" (shard {shard_.index + 1}/{shard_.count} of {n})" if shard_.count > 1 else ""
    typer.echo(
        f"wrote {path}: {k} {particle} showers{part}, geometry {geometry}, engine {engine}, "
        f"{elapsed:.1f} s ({k / max(elapsed, 1e-9):.3g} showers/s)"
    )
