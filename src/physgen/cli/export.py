"""``physgen export``: a trained surrogate as one verified ONNX graph."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from physgen.cli.conventions import Quiet, Verbose, use_verbosity

__all__ = ["export"]


def export(
    run: Annotated[Path, typer.Argument(help="Run directory written by physgen train.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="The .onnx file to write (atomically).")],
    steps: Annotated[
        Optional[int],
        typer.Option(help="Sampling steps unrolled in the graph (cfm ODE, diffusion sampler)."),
    ] = None,
    solver: Annotated[
        Optional[str],
        typer.Option(help="cfm: euler, midpoint or rk4; diffusion: ddim, dpm++2m or ddpm."),
    ] = None,
    opset: Annotated[int, typer.Option(help="ONNX opset (>= 17).")] = 17,
    check: Annotated[
        bool,
        typer.Option(
            help="Compare ONNX Runtime with torch on the same noise before writing (max "
            "relative difference <= 1e-4 above threshold, same threshold pattern)."
        ),
    ] = True,
    check_n: Annotated[int, typer.Option(help="Showers compared by the check.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the check's noise and energies.")] = 0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the model's metadata as one JSON object.")
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Export a surrogate's whole sampler (z, incident_energy MeV) -> showers MeV to ONNX."""
    from physgen.export.onnx import export_onnx

    use_verbosity(quiet, verbose)
    meta = export_onnx(
        run, out, steps=steps, solver=solver, opset=opset, check=check, check_n=check_n, seed=seed
    )
    if as_json:
        typer.echo(json.dumps(meta))
        return
    latent = meta["physgen.latent"]["shape"][1]
    n_vox = meta["physgen.showers"]["shape"][1]
    line = (
        f"wrote {out}: {meta['physgen.family']} surrogate, geometry {meta['physgen.geometry']}, "
        f"z [N, {latent}] + incident_energy [N, 1] MeV -> showers [N, {n_vox}] MeV, "
        f"opset {opset}"
    )
    chk = meta.get("physgen.check")
    if chk:
        line += (
            f"; check on {chk['n_showers']} showers: max relative difference "
            f"{chk['max_rel_diff']:.2g}, threshold pattern identical"
            + (f" but for {chk['borderline']} voxels at threshold" if chk["borderline"] else "")
        )
    typer.echo(line)
