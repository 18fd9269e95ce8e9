"""``physgen integrate`` and ``physgen events``: neural importance sampling from the shell.

Thin layers over :func:`physgen.nis.integrate` and :func:`physgen.nis.generate_events`;
library errors (:class:`physgen.errors.PhysgenError`) propagate to
:func:`physgen.cli.main.main`, which prints ``error: <message>`` and exits with status 2.
Progress bars (training calls, evaluation points, accepted events) go to stderr on a
terminal only, as for every physgen command; ``--no-progress`` or ``-q`` hides them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from physgen.checks import check_memory, check_seed
from physgen.cli import conventions
from physgen.cli.conventions import NoProgress, Quiet, Verbose, use_verbosity
from physgen.errors import ConfigError
from physgen.outputs import check_output

__all__ = ["events", "integrate"]

_THREADS_HELP = (
    "torch threads (default 1: the flows are small, so more threads gain little and, on a "
    "machine shared with other jobs, oversubscribed cores make training up to 10x slower)."
)


def _fmt(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads; the previous setting is restored after."""
    import torch

    if n < 1:
        raise ConfigError(f"--threads: expected a positive number of threads, got {n}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def integrate(
    integrand: Annotated[
        str,
        typer.Option(
            "--integrand",
            help="camel, ring, polynomial, breit-wigner, dy3, dy3-mc (3 channels), ee-mumu, "
            "ee-qqg.",
        ),
    ],
    dim: Annotated[
        int | None, typer.Option("--dim", help="Dimension (toys only; fixed for the others).")
    ] = None,
    method: Annotated[
        str, typer.Option("--method", help="nis (VEGAS grid + spline flow), vegas or uniform.")
    ] = "nis",
    calls: Annotated[int, typer.Option("--calls", help="Integrand calls for training.")] = 500_000,
    eval_calls: Annotated[
        int, typer.Option("--eval-calls", help="Fresh points for the estimate.")
    ] = 1_000_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed: same seed, same result.")] = 0,
    loss: Annotated[str, typer.Option("--loss", help="variance or kl.")] = "variance",
    buffered_steps: Annotated[
        int, typer.Option("--buffered-steps", help="Extra steps on stored points per batch.")
    ] = 3,
    vegas_fraction: Annotated[
        float, typer.Option("--vegas-fraction", help="Share of calls for the VEGAS grid (0-1).")
    ] = 0.2,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict", help="Fail (exit 2) instead of falling back when coverage is unproven."
        ),
    ] = False,
    allow_negative: Annotated[
        bool, typer.Option("--allow-negative", help="Accept negative integrand values.")
    ] = False,
    threads: Annotated[int, typer.Option("--threads", help=_THREADS_HELP)] = 1,
    no_progress: NoProgress = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Integrate a built-in integrand over the unit hypercube and report the error."""
    from physgen.nis import TrainConfig, get_integrand
    from physgen.nis import integrate as run

    use_verbosity(quiet, verbose)
    check_seed(seed)
    f = get_integrand(integrand, dim)
    for opt, count in (("--calls", calls), ("--eval-calls", eval_calls)):
        if count > 0:  # points (float64), weights and the flow's activations per point
            check_memory(count * (f.dim * 8 * 4 + 64), opt, f"{count} points in {f.dim} dims")
    cfg = TrainConfig(loss=loss, buffered_steps=buffered_steps, vegas_fraction=vegas_fraction)
    with _torch_threads(threads):
        res = run(
            f,
            method=method,
            calls=calls,
            eval_calls=eval_calls,
            seed=seed,
            config=cfg,
            strict=strict,
            allow_negative=allow_negative,
            progress=conventions.progress(no_progress),
        )
    d = res.to_dict()
    if as_json:
        typer.echo(json.dumps({k: _fmt(v) for k, v in d.items()}, sort_keys=True))
        return
    exact = "" if res.exact is None else f"  (exact {res.exact:.8g}, pull {res.pull:+.2f})"
    unit = "" if res.unit in ("", "1") else f" {res.unit}"
    typer.echo(
        f"{res.integrand} [{res.method}]: {res.integral:.8g} +- {res.error:.2g}{unit}{exact}"
    )
    typer.echo(
        f"rel. std/point {res.rel_std:.4g}; unweighting efficiency "
        f"{res.unweighting_efficiency:.4g} (0.1% xs over-weights), "
        f"{res.unweighting_efficiency_true_max:.4g} (true max)"
    )
    typer.echo(
        f"coverage {res.coverage}; train {res.train_seconds:.1f} s on {res.train_calls} "
        f"calls; sampling {res.throughput:.3g} points/s"
    )


def events(
    process: Annotated[str, typer.Option("--process", help="ee-mumu or ee-qqg.")],
    n: Annotated[int, typer.Option("--n", help="Number of unweighted events (> 0).")],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Output file: .lhe (Les Houches), .h5/.hdf5, or .parquet/.root (TTree "
            "'events'; pip install 'physgen[io]'): one row per event, per-particle columns "
            "pdg_id, status, px, py, pz, E, m in GeV and the weight in pb. Written "
            "atomically; its folder must exist.",
        ),
    ],
    method: Annotated[str, typer.Option("--method", help="nis, vegas or uniform.")] = "nis",
    calls: Annotated[
        int | None,
        typer.Option(
            "--calls",
            help="Integrand calls for training (default: 2 per event, at least 50000 and at "
            "most 500000).",
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed: same seed, same events.")] = 0,
    overweight: Annotated[
        float,
        typer.Option("--overweight", help="Cross-section share allowed in over-weights."),
    ] = 1e-3,
    threads: Annotated[int, typer.Option("--threads", help=_THREADS_HELP)] = 1,
    no_progress: NoProgress = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object (path, n_events, cross section in pb, unweighting "
            "efficiency, training calls and seconds).",
        ),
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Generate unweighted events of a physics process into an LHE, HDF5, Parquet or ROOT file.

    The training budget grows with --n (2 integrand calls per event, clipped to
    50000..500000) unless --calls sets it.
    """
    from physgen.nis import (
        default_training_calls,
        generate_events,
        get_process,
        write_events_hdf5,
        write_lhe,
    )
    from physgen.nis.tabular import TABLE_FORMATS, require_table_format, write_events_table

    use_verbosity(quiet, verbose)
    suffix = out.suffix.lower()
    if suffix not in (".lhe", ".h5", ".hdf5", *TABLE_FORMATS):
        raise ConfigError(
            f"--out: expected a .lhe, .h5, .hdf5, .parquet or .root file, got '{out.name}'"
        )
    if suffix in TABLE_FORMATS:
        require_table_format(out)  # before any work: the io extra is installed
    check_output(out, "--out")
    check_seed(seed)
    if n < 1:
        raise ConfigError(f"--n: expected a positive number of events, got {n}")
    check_memory(n * 8 * 4 * 4 * 3, "--n", f"the momenta and weights of {n} events")
    if calls is None:
        calls = default_training_calls(n)
    if calls > 0:
        check_memory(calls * 8 * 64, "--calls", f"{calls} training points")
    proc = get_process(process)
    with _torch_threads(threads):
        ev = generate_events(
            proc,
            n,
            method=method,
            calls=calls,
            seed=seed,
            overweight_xs=overweight,
            progress=conventions.progress(no_progress),
        )
    provenance = {"process": proc.name, "sqrt_s_GeV": proc.sqrt_s, **ev.info}
    if suffix in TABLE_FORMATS:
        write_events_table(
            out,
            ev.beams,
            ev.pdg,
            ev.momenta,
            proc.beam_pdg,
            ev.cross_section,
            ev.cross_section_error,
            provenance,
        )
    elif suffix == ".lhe":
        header = json.dumps(provenance)
        write_lhe(
            out,
            ev.beams,
            ev.pdg,
            ev.momenta,
            proc.beam_pdg,
            proc.colors,
            ev.cross_section,
            ev.cross_section_error,
            header=header,
        )
    else:
        write_events_hdf5(out, ev)
    if as_json:
        d = {
            "path": str(out),
            "process": proc.name,
            "n_events": n,
            "method": method,
            "seed": seed,
            "cross_section_pb": _fmt(float(ev.cross_section)),
            "cross_section_error_pb": _fmt(float(ev.cross_section_error)),
            "unweighting_efficiency": _fmt(float(ev.info["unweighting_efficiency"])),
            "train_calls": ev.info["train_calls"],
            "train_seconds": ev.info["train_seconds"],
        }
        typer.echo(json.dumps(d))
        return
    typer.echo(
        f"{n} events of {proc.name} -> {out}; cross section {ev.cross_section:.6g} +- "
        f"{ev.cross_section_error:.2g} pb; unweighting efficiency "
        f"{ev.info['unweighting_efficiency']:.3g}; trained on {ev.info['train_calls']} calls in "
        f"{ev.info['train_seconds']:.1f} s"
    )
