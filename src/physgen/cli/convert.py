"""``physgen convert``: shower files between CaloChallenge HDF5, ROOT TTrees and NumPy .npz.

A thin layer over :func:`physgen.calo.convert.convert_showers`; library errors propagate
to :func:`physgen.cli.main.main`, which prints ``error: <message>`` and exits with status 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from physgen.cli.conventions import Quiet, Verbose, use_verbosity

__all__ = ["convert"]


def convert(
    source: Annotated[
        Path,
        typer.Argument(
            help="Input shower file: .h5/.hdf5 (CaloChallenge), .root (TTree) or .npz; MeV."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Output file; its suffix (.h5/.hdf5, .root, .npz) picks the format. Written "
            "atomically; its folder must exist.",
        ),
    ],
    tree: Annotated[
        str | None,
        typer.Option(
            "--tree",
            help="ROOT TTree to read (default: 'showers', or the file's only TTree) or to "
            "write (default: showers).",
        ),
    ] = None,
    energy_branch: Annotated[
        str,
        typer.Option("--energy-branch", help="ROOT branch of the incident energy (MeV)."),
    ] = "incident_energy",
    shower_branch: Annotated[
        str,
        typer.Option(
            "--shower-branch", help="ROOT fixed-size array branch of the voxel energies (MeV)."
        ),
    ] = "showers",
    geometry: Annotated[
        str | None,
        typer.Option(
            "--geometry",
            help="Geometry the voxel count must match (default: any built-in one).",
        ),
    ] = None,
    compression: Annotated[
        str | None,
        typer.Option(
            "--compression",
            help="HDF5: gzip (default), lzf, none; ROOT: zlib (default), lzma, lz4, zstd, "
            "none; npz: none (default), deflate.",
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option("--batch-size", help="Showers per streamed batch (default: ~32 MB)."),
    ] = None,
    clip_negative: Annotated[
        bool,
        typer.Option(
            "--clip-negative",
            help="Clip negative voxel energies (MeV) to 0 instead of failing.",
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON object (path, n_showers, n_voxels, formats)."),
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Convert a shower file (energies in MeV) between HDF5, ROOT and .npz, bit for bit.

    Values keep their dtype and bits; the file's provenance attributes go along (as a
    JSON string in ROOT and .npz).
    """
    from physgen.calo.convert import convert_showers

    use_verbosity(quiet, verbose)
    res = convert_showers(
        source,
        out,
        tree=tree,
        energy_branch=energy_branch,
        shower_branch=shower_branch,
        geometry=geometry,
        compression=compression,
        batch_size=batch_size,
        clip_negative=clip_negative,
    )
    if as_json:
        d = {
            "path": str(res.path),
            "n_showers": res.n_showers,
            "n_voxels": res.n_voxels,
            "geometry": res.geometry,
            "source_format": res.source_format,
            "target_format": res.target_format,
        }
        typer.echo(json.dumps(d))
        return
    typer.echo(
        f"wrote {res.path}: {res.n_showers} showers ({res.n_voxels} voxels, geometry "
        f"{res.geometry}), {res.source_format} -> {res.target_format}"
    )
