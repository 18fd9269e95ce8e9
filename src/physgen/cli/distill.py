"""``physgen distill``: a few-step student of a flow-matching run."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

from physgen.checks import check_seed, parse_duration
from physgen.cli.conventions import Quiet, Verbose, use_verbosity
from physgen.errors import ConfigError

log = logging.getLogger(__name__)


def distill(
    teacher: Annotated[Path, typer.Argument(help="The teacher: a cfm run directory.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The student's run directory (new or empty).")
    ],
    energies_from: Annotated[
        Optional[Path],
        typer.Option(
            help="Draw the pairs' incident energies from this CaloChallenge file (the "
            "teacher's training file is the natural choice)."
        ),
    ] = None,
    energy: Annotated[
        Optional[str],
        typer.Option(help="Or an energy spec (a bare number is MeV): 10GeV, 1GeV:1TeV, ds1."),
    ] = None,
    steps: Annotated[int, typer.Option(help="Euler steps of the student (1-16).")] = 1,
    pairs: Annotated[
        int, typer.Option(help="Teacher samples to learn from (10 % validate).")
    ] = 20_000,
    max_steps: Annotated[int, typer.Option(help="Optimiser steps.")] = 20_000,
    max_time: Annotated[
        Optional[str],
        typer.Option(
            help="Wall-clock limit of the training part, e.g. 10m (the best student "
            "so far is kept)."
        ),
    ] = None,
    lr: Annotated[float, typer.Option(help="Adam learning rate (cosine decay to 10 %).")] = 1e-4,
    batch_size: Annotated[int, typer.Option(help="Pairs per optimiser step.")] = 256,
    seed: Annotated[int, typer.Option(help="Seed of the pairs and the training order.")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Distil a cfm run into a student that samples in --steps Euler steps.

    The student learns the straight line from each noise vector to the teacher's shower
    (rectified-flow reflow, arXiv:2209.03003) and is written as an ordinary cfm run.
    """
    import numpy as np

    from physgen.calo.distill import DistillSettings, distill
    from physgen.calo.io import open_showers

    use_verbosity(quiet, verbose)
    check_seed(seed)
    settings = DistillSettings(
        steps=steps,
        pairs=pairs,
        batch_size=batch_size,
        lr=lr,
        max_steps=max_steps,
        max_time_s=None if max_time is None else parse_duration(max_time, "--max-time"),
        seed=seed,
    )
    settings.check()
    if (energies_from is None) == (energy is None):
        raise ConfigError("distill: give exactly one of --energies-from or --energy")
    if energy is not None:
        from physgen.calo.simulate.run import parse_energy_spec

        e = parse_energy_spec(energy).sample(pairs, seed)
    else:
        assert energies_from is not None
        with open_showers(energies_from) as f:
            e = np.asarray(f.energies[()], dtype=np.float64).reshape(-1)
    summary = distill(
        teacher, out, e, settings, progress=None if quiet else lambda s: log.info("%s", s)
    )
    if as_json:
        typer.echo(json.dumps({"path": str(out), **summary}))
        return
    typer.echo(
        f"{summary['status']}: {steps}-step student after {summary['optimiser_steps']} steps "
        f"-> {out}; endpoint MSE vs the teacher {summary['endpoint_mse_student']:.4g} "
        f"(the teacher itself at {steps} Euler steps: "
        f"{summary['endpoint_mse_teacher_at_k_euler_steps']:.4g})"
    )
