"""The ``physgen`` command line: a thin layer over the library.

Every command parses its options, calls the library and prints. Library errors
(:class:`physgen.errors.PhysgenError`) become one line ``error: <message>`` on
stderr and exit status 2, without a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from physgen import outputs
from physgen._version import __version__
from physgen.cli import conventions
from physgen.cli.conventions import Quiet, Verbose, set_root_verbosity, use_verbosity
from physgen.errors import PhysgenError

app = typer.Typer(
    name="physgen",
    help=(
        "physgen: simulate calorimeter showers, train generative surrogates, and evaluate "
        "them with the CaloChallenge metrics; fit and sample conditional densities of any "
        "columns (fit, sample). Energies are in MeV unless a unit is given; lengths in mm."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"physgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    # -q/-v here set the level of every command; a command's own -q/-v win
    set_root_verbosity(quiet, verbose)


# ------------------------------------------------------------------ geometry


@app.command("geometry")
def geometry_cmd(
    name: Annotated[
        str,
        typer.Argument(
            help="Built-in geometry (1-photons, 1-pions, 2, 3, calogan) or a binning XML file."
        ),
    ],
    particle: Annotated[
        str | None,
        typer.Option(help="For an XML file: the <Bin name=...> to use (photon, pion, electron)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (edges in mm).")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Show a voxel binning: layers, radial edges (mm), angular bins, voxel count."""
    from physgen.calo.geometry import get_geometry

    use_verbosity(quiet, verbose)

    geo = get_geometry(name, particle)
    if as_json:
        typer.echo(json.dumps(geo.to_dict(), indent=2))
        return
    typer.echo(f"geometry {geo.name}: {geo.description or geo.particle}")
    typer.echo(
        f"particle {geo.particle} (pid {geo.pid}), {geo.n_voxels} voxels in {geo.n_layers} layers, "
        f"evaluation threshold {geo.threshold_mev * 1e3:.4g} keV"
    )
    typer.echo(f"{'layer':>5} {'bins':>10} {'voxels':>7}  edges (mm)")
    for layer in geo.relevant_layers:
        if layer.kind == "cartesian":
            bins = f"{layer.n_y}y x {layer.n_x}x"
            edges = f"x {layer.x_edges[0]:g}..{layer.x_edges[-1]:g}, y {layer.y_edges[0]:g}..{layer.y_edges[-1]:g}"
        else:
            bins = f"{layer.n_alpha}a x {layer.n_radial}r"
            shown = ", ".join(f"{v:g}" for v in layer.r_edges)
            edges = "r " + (shown if len(shown) < 60 else shown[:57] + "...")
        sl = geo.layer_slice(layer.id)
        typer.echo(f"{layer.id:>5} {bins:>10} {layer.n_voxels:>7}  {edges}  [{sl.start}:{sl.stop}]")


# ---------------------------------------------------------------------- info


def _fmt_energy(mev: float) -> str:
    for unit, scale in (("TeV", 1e6), ("GeV", 1e3), ("MeV", 1.0)):
        if abs(mev) >= scale:
            return f"{mev / scale:.4g} {unit}"
    return f"{mev * 1e3:.4g} keV"


@app.command("info")
def info_cmd(
    file: Annotated[Path, typer.Argument(help="CaloChallenge HDF5 file (energies in MeV).")],
    geometry: Annotated[
        str | None, typer.Option(help="Expected geometry (default: matched by voxel count).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Summarise a shower file: counts, geometry, energies (MeV), E_tot/E_inc, sparsity, provenance."""
    from physgen.calo.io import file_summary

    use_verbosity(quiet, verbose)

    s = file_summary(file, geometry)
    if as_json:
        typer.echo(json.dumps(s, indent=2, default=str))
        return
    ie = s["incident_energy_mev"]
    dist = ie["distribution"]
    lines = [
        f"file         {s['path']} ({s['file_size_bytes'] / 1e6:.3g} MB)",
        f"showers      {s['n_showers']}",
        f"voxels       {s['n_voxels']} (geometry {s['geometry']})",
        f"dtype        energies {s['dtype']['incident_energies']}, showers {s['dtype']['showers']}; "
        f"compression {s['compression']}, chunks {s['chunks']}",
        f"E_inc        {_fmt_energy(ie['min'])} .. {_fmt_energy(ie['max'])}, {dist['kind']}",
    ]
    if dist["kind"] == "discrete":
        vals = ", ".join(
            f"{_fmt_energy(v)} x{c}" for v, c in zip(dist["values_mev"], dist["counts"])
        )
        lines.append(f"             {vals}")
    else:
        q = dist["log10_quantiles"]
        lines.append(
            f"             median {_fmt_energy(10 ** q['0.5'])}, 5-95% {_fmt_energy(10 ** q['0.05'])}"
            f" .. {_fmt_energy(10 ** q['0.95'])}"
            + (", consistent with log-uniform" if dist["log_uniform_like"] else "")
        )
    r = s["etot_over_einc"]
    lines.append(
        f"E_tot/E_inc  mean {r['mean']:.4f}, std {r['std']:.4f}, median {r['median']:.4f}, "
        f"range {r['min']:.4f} .. {r['max']:.4f}"
    )
    sp = s["sparsity"]
    lines.append(
        f"sparsity     {100 * sp['zero_fraction']:.1f}% voxels zero, "
        f"{100 * sp['below_threshold_fraction']:.1f}% below {sp['threshold_mev'] * 1e3:.4g} keV"
    )
    if s["negative_voxels"]:
        lines.append(f"warning      {s['negative_voxels']} negative voxel energies")
    prov: dict[str, Any] = s["provenance"]
    if prov:
        lines.append("provenance")
        for k in sorted(prov):
            v = prov[k]
            text = json.dumps(v, default=str) if isinstance(v, (dict, list)) else str(v)
            lines.append(f"  {k:<18} {text if len(text) < 100 else text[:97] + '...'}")
    typer.echo("\n".join(lines))


# ------------------------------------------------------------------ validate


@app.command("validate")
def validate_cmd(
    file: Annotated[Path, typer.Argument(help="CaloChallenge HDF5 file to check.")],
    geometry: Annotated[
        str | None,
        typer.Option(
            help="Geometry the file must match (1-photons, 1-pions, 2, 3, calogan, or XML)."
        ),
    ] = None,
    clip_negative: Annotated[
        bool,
        typer.Option(
            help="Accept negative voxel energies (MeV) with a warning instead of failing."
        ),
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object (path, valid, n_showers, geometry, n_voxels) if valid.",
        ),
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Check a shower file: keys, shapes, voxel count, finite non-negative MeV values. Exit 0 if valid, 2 if not."""
    from physgen.calo.io import validate_file

    use_verbosity(quiet, verbose)
    f = validate_file(file, geometry, clip_negative=clip_negative)
    geo = f.geometry.name if f.geometry is not None else None
    if as_json:
        d = {
            "path": str(file),
            "valid": True,
            "n_showers": f.n_showers,
            "geometry": geo,
            "n_voxels": f.n_voxels,
        }
        typer.echo(json.dumps(d))
        return
    geo = geo or "?"
    typer.echo(f"ok: {file} holds {f.n_showers} showers of geometry {geo} ({f.n_voxels} voxels)")


# --------------------------------------------------------------------- merge


@app.command("merge")
def merge_cmd(
    shards: Annotated[list[Path], typer.Argument(help="Shard files to concatenate, in order.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (written atomically).")],
    geometry: Annotated[str | None, typer.Option(help="Geometry all shards must match.")] = None,
    compression: Annotated[str, typer.Option(help="gzip, lzf or none.")] = "gzip",
    clip_negative: Annotated[
        bool, typer.Option(help="Clip negative voxel energies (MeV) to 0 instead of failing.")
    ] = False,
    allow_mixed: Annotated[
        bool,
        typer.Option(
            help="Merge shards of different particles, detectors, engines or models "
            "(each shard's provenance is still recorded)."
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (path, n_showers, n_shards).")
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Concatenate shard files (showers in MeV) into one, checking that they belong together."""
    from physgen.calo.io import open_showers
    from physgen.calo.merge import merge_files

    use_verbosity(quiet, verbose)
    path = merge_files(
        shards,
        out,
        geometry=geometry,
        compression=compression,
        clip_negative=clip_negative,
        allow_mixed=allow_mixed,
    )
    with open_showers(path) as f:
        n = f.n_showers
    if as_json:
        typer.echo(json.dumps({"path": str(path), "n_showers": n, "n_shards": len(shards)}))
        return
    typer.echo(f"wrote {path}: {n} showers from {len(shards)} shards")


def _register_commands() -> None:
    """Commands whose modules live in their own files."""
    from physgen.cli.anomaly import anomaly
    from physgen.cli.cluster import job_script
    from physgen.cli.convert import convert
    from physgen.cli.density import fit, sample
    from physgen.cli.distill import distill
    from physgen.cli.evaluate import evaluate
    from physgen.cli.export import export
    from physgen.cli.nis import events, integrate
    from physgen.cli.pythia import pythia
    from physgen.cli.simulate import simulate
    from physgen.cli.surrogate import front, generate, train
    from physgen.cli.timing import timing
    from physgen.cli.trust import refine
    from physgen.cli.unfold import unfold

    app.command("simulate")(simulate)
    app.command("train")(train)
    app.command("generate")(generate)
    app.command("refine")(refine)
    app.command("distill")(distill)
    app.command("export")(export)
    app.command("job-script")(job_script)
    bench = typer.Typer(
        help="Benchmarks across models: the quality-versus-speed front.",
        no_args_is_help=True,
        rich_markup_mode=None,
    )
    bench.command("front")(front)
    app.add_typer(bench, name="bench")
    app.command("evaluate")(evaluate)
    app.command("timing")(timing)
    app.command("integrate")(integrate)
    app.command("events")(events)
    app.command("pythia")(pythia)
    app.command("fit")(fit)
    app.command("sample")(sample)
    app.command("convert")(convert)
    app.command("unfold")(unfold)
    app.command("anomaly")(anomaly)
    from physgen.cli.diffsim import diffsim_app

    app.add_typer(diffsim_app, name="diffsim")


_register_commands()


def _interrupted_message() -> str:
    outs = outputs.claimed_outputs()
    where = f" at {', '.join(str(o) for o in outs)}" if outs else ""
    return f"interrupted: nothing written{where}"


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit status.

    Library errors (:class:`~physgen.errors.PhysgenError`) and a full disk become one
    line ``error: ...`` and status 2; SIGINT and SIGTERM end the command with the
    command's temporary files removed, one line ``interrupted: ...`` and status 130
    or 143. Nothing is left at an output path after a failure.
    """
    outputs.reset()
    code: int
    with outputs.handle_signals(), conventions.scope():
        try:
            rv = app(args=argv, prog_name="physgen", standalone_mode=False)
            code = rv if isinstance(rv, int) else 0
        except PhysgenError as exc:
            outputs.remove_pending()
            typer.echo(f"error: {' '.join(str(exc).split())}", err=True)  # always one line
            return 2
        except KeyboardInterrupt as exc:
            outputs.remove_pending()
            typer.echo(_interrupted_message(), err=True)
            return 128 + int(getattr(exc, "signum", signal.SIGINT))
        except SystemExit as exc:
            c = exc.code
            code = c if isinstance(c, int) else (0 if c is None else 1)
        except Exception as exc:
            outputs.remove_pending()
            if hasattr(exc, "show") and hasattr(exc, "exit_code"):  # click's usage errors
                exc.show()
                return int(exc.exit_code)
            if type(exc).__name__ == "Abort":  # click's form of Ctrl-C at a prompt
                typer.echo(_interrupted_message(), err=True)
                return 130
            if isinstance(exc, OSError) and exc.filename and not outputs.is_disk_full(exc):
                # the operating system refused a path: permissions, a name too long, a loop
                name = str(exc.filename)
                name = name if len(name) <= 120 else name[:117] + "..."
                typer.echo(f"error: {name}: {exc.strerror or exc}", err=True)
                return 2
            if outputs.is_disk_full(exc):
                outs = outputs.claimed_outputs()
                where = str(outs[0]) if outs else "the output"
                typer.echo(f"error: disk full while writing {where}: nothing written", err=True)
                outputs.request_hard_exit()
                return 2
            raise
        if outputs.interrupt_requested():  # typer turned the interrupt into exit status 130
            outputs.remove_pending()
            typer.echo(_interrupted_message(), err=True)
            return 128 + outputs.interrupt_signal()
    return code


def run() -> None:
    """Console entry point: :func:`main`, then exit with its status.

    After a full disk inside HDF5 the process leaves with ``os._exit``: HDF5's
    handles of the abandoned file must not be flushed again at shutdown.
    """
    code = main()
    if outputs.hard_exit_requested():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
