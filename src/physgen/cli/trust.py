"""``physgen refine``: train a DCTR refiner for a calorimeter surrogate (thin wrapper)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from physgen.checks import check_device, check_seed
from physgen.cli.conventions import Quiet, Verbose, is_quiet, use_verbosity
from physgen.outputs import check_output

__all__ = ["refine"]


def refine(
    run: Annotated[Path, typer.Argument(help="Run directory of the surrogate (physgen train).")],
    reference: Annotated[
        Path, typer.Option(help="Reference showers to refine towards (CaloChallenge HDF5, MeV).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Refiner file to write (.pt).")],
    generated: Annotated[
        Optional[Path],
        typer.Option(
            help="Showers of this run for the reference's incident energies (default: "
            "generate them now with --seed)."
        ),
    ] = None,
    inputs: Annotated[
        str,
        typer.Option(
            help="Classifier inputs: cls-low (log10 E_inc, voxel/E_inc), cls-low-normed or "
            "cls-high (the high-level features)."
        ),
    ] = "cls-low",
    classifier: Annotated[str, typer.Option(help="Classifier preset: fast or official.")] = "fast",
    clip: Annotated[
        float, typer.Option(help="Largest weight before the per-energy normalisation (> 1).")
    ] = 10.0,
    members: Annotated[
        int,
        typer.Option(help="Classifiers averaged, a count (mean log ratio: smoother weights)."),
    ] = 1,
    seed: Annotated[int, typer.Option(help="Seed of generation, split and training.")] = 0,
    threads: Annotated[Optional[int], typer.Option(help="torch threads.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the refiner's metadata as JSON.")
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Train a DCTR refiner: per-shower weights that move this surrogate's showers onto the
    reference (judge it with `generate --refiner` on other showers and another reference)."""
    from physgen.calo.generate import generate_showers
    from physgen.calo.io import open_showers
    from physgen.calo.refine import fit_refiner, run_digest
    from physgen.calo.rundir import load_run, read_run_config

    use_verbosity(quiet, verbose)
    check_seed(seed)
    check_device(device)
    cfg = read_run_config(run)
    inputs_ = [reference] + ([generated] if generated is not None else [])
    check_output(out, "--out", inputs=inputs_, read_dirs=[run])
    with open_showers(reference, cfg.geometry):
        pass  # layout and geometry checked before any work

    def say(msg: str) -> None:
        if not as_json and not is_quiet() and sys.stderr.isatty():
            typer.echo(f"... {msg}", err=True)

    digest = run_digest(run)
    with tempfile.TemporaryDirectory(dir=out.resolve().parent, prefix=".refine-") as tmp:
        gen = generated
        if gen is None:
            say("generating showers for the reference's incident energies")
            gen = Path(tmp) / "generated.h5"
            generate_showers(
                load_run(run, device),
                gen,
                energies_from=reference,
                seed=seed,
                geometry=cfg.geometry,
                progress=False,
            )
        refiner = fit_refiner(
            gen,
            reference,
            cfg.geometry,
            inputs=inputs,
            config=classifier,
            clip=clip,
            seed=seed,
            threads=threads,
            device=device,
            model=cfg.model,
            digest=digest,
            progress=say,
            members=members,
        )
        refiner.info["generated"] = str(generated) if generated is not None else f"seed {seed}"
        refiner.info["run_dir"] = str(run.resolve())
        refiner.save(out)
    d = refiner.info.get("holdout") or refiner.info["train_diagnostics"]
    if as_json:
        typer.echo(json.dumps({"path": str(out), **refiner.info}, default=str))
        return
    typer.echo(
        f"wrote {out}: refiner for {cfg.model} on geometry {cfg.geometry} ({inputs} inputs, "
        f"clip {clip:g}, temperature {refiner.info.get('temperature', 1.0):.2f}); on held-out "
        f"showers ESS {100 * d['ess_fraction']:.1f} %, {100 * d['clipped_fraction']:.2f} % clipped"
    )
