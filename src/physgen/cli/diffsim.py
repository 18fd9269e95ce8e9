"""``physgen diffsim``: differentiable simulation from the shell (thin layer over
:mod:`physgen.diffsim`).

``fit-alphas`` fits alpha_s(M_Z) to e+e- event shapes with one moved sample of the
Discrete-QCD shower: pseudo-data at a hidden value (``--pseudo-data-alphas``) or per-event
observables from a file (``--data``: HDF5, NumPy, Parquet or ROOT columns named after the
observables, or chosen with ``--columns``). With
``--out`` it writes ``results.json`` and ``chi2.png`` (the moved sample's chi2 curve beside
independent samples on a grid). Everything is checked before any work; outputs are staged
and moved into ``--out`` only when complete.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import typer

from physgen._version import __version__
from physgen.checks import check_seed
from physgen.cli.conventions import Quiet, Verbose, is_quiet, use_verbosity
from physgen.errors import ConfigError, DataFormatError
from physgen.outputs import check_output, json_ready, publish_staged, staging_dir

__all__ = ["diffsim_app", "fit_alphas"]

diffsim_app = typer.Typer(
    help="Differentiable simulation: move events by gradients (alpha_s fit, detector design).",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _register() -> None:
    from physgen.cli.diffsim_calo import optimise_calorimeter

    diffsim_app.command("optimise-calorimeter")(optimise_calorimeter)


def _read_data(path: Path, names: tuple[str, ...], columns: str | None) -> np.ndarray:
    """Per-event observables of ``path`` (HDF5, NumPy, Parquet or ROOT; see
    :mod:`physgen.columns`), one column per observable in the order of ``names``."""
    from physgen.columns import parse_columns, read_columns

    specs = list(names) if columns is None else [c.strip() for c in columns.split(",")]
    if len(parse_columns(specs)) != len(names):
        raise ConfigError(
            f"--columns: give one column per observable ({', '.join(names)}), got {columns!r}"
        )
    x = read_columns(path, specs)
    if x.shape[1] != len(names):
        raise DataFormatError(
            f"--data {path}: {x.shape[1]} columns for {len(names)} observables; name one "
            "column each with --columns"
        )
    return x


@diffsim_app.command("fit-alphas")
def fit_alphas(
    pseudo_data_alphas: Annotated[
        Optional[float],
        typer.Option(help="Hidden alpha_s(M_Z) of pseudo-data drawn with fresh random numbers."),
    ] = None,
    data: Annotated[
        Optional[Path],
        typer.Option(
            help="Per-event observables: HDF5, NumPy, Parquet or ROOT columns named like "
            "--observables (or see --columns)."
        ),
    ] = None,
    columns: Annotated[
        Optional[str],
        typer.Option(help="With --data: the file's column per observable, comma-separated."),
    ] = None,
    n: Annotated[int, typer.Option(help="Events of the pseudo-data, a count.")] = 20_000,
    n_mc: Annotated[
        Optional[int], typer.Option(help="Events of the moved sample, a count (default --n).")
    ] = None,
    observables: Annotated[
        str, typer.Option(help="Comma-separated observables: tau (1-T), rho, c, y23.")
    ] = "tau,rho,c,y23",
    bins: Annotated[int, typer.Option(help="Equal-probability bins per observable.")] = 20,
    bootstrap: Annotated[
        int, typer.Option(help="Bootstrap replicas for the error, a count (0: chi2 curvature).")
    ] = 50,
    start: Annotated[float, typer.Option(help="alpha_s(M_Z) where the fit starts.")] = 0.118,
    sqrt_s: Annotated[float, typer.Option(help="Centre-of-mass energy, GeV.")] = 91.1876,
    q0: Annotated[float, typer.Option(help="Shower cutoff in k_perp, GeV.")] = 1.0,
    curve_points: Annotated[
        int, typer.Option(help="alpha_s values of the chi2 curves in chi2.png (with --out).")
    ] = 11,
    seed: Annotated[int, typer.Option(help="Seed of pseudo-data, moved sample, bootstrap.")] = 0,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Folder for results.json and chi2.png.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Fit alpha_s(M_Z) to e+e- event shapes by moving one simulated sample (2208.02274)."""
    from physgen.diffsim.alphas import check_observables, fit_alpha_s, pseudo_data
    from physgen.diffsim.shower import DiscreteQCDShower, check_alpha_s

    use_verbosity(quiet, verbose)
    check_seed(seed)
    names = check_observables(tuple(o.strip() for o in observables.split(",") if o.strip()))
    if (pseudo_data_alphas is None) == (data is None):
        raise ConfigError("give exactly one of --pseudo-data-alphas and --data")
    if pseudo_data_alphas is not None:
        check_alpha_s(pseudo_data_alphas, "--pseudo-data-alphas")
    check_alpha_s(start, "--start")
    for opt, v, least in (("--n", n, 10 * bins), ("--n-mc", n_mc, 10 * bins),
                          ("--bootstrap", bootstrap, 0), ("--curve-points", curve_points, 0)):  # fmt: skip
        if v is not None and v < least:
            raise ConfigError(f"{opt} must be at least {least}, got {v}")
    if curve_points == 1:
        raise ConfigError("--curve-points must be 0 (no curves) or at least 2")
    shower = DiscreteQCDShower(sqrt_s=sqrt_s, q0=q0)
    created = False
    if out is not None:
        check_output(out, "--out", kind="dir", inputs=[data])
        created = not out.exists()
    if columns is not None and data is None:
        raise ConfigError("--columns needs --data")
    x = _read_data(data, names, columns) if data is not None else None

    t0 = time.perf_counter()
    truth = pseudo_data_alphas
    if x is None:
        assert truth is not None
        x = pseudo_data(truth, n, seed, names, shower)
    fit = fit_alpha_s(x, n_mc=n_mc or x.shape[0], seed=seed, start=start, observables=names,
                      bins=bins, bootstrap=bootstrap, shower=shower)  # fmt: skip
    res: dict[str, Any] = {
        "alpha_s": fit.alpha_s,
        "error": fit.error,
        "error_kind": f"bootstrap ({bootstrap} replicas)" if bootstrap > 1 else "chi2 curvature",
        "curvature_error": fit.curvature_error,
        "chi2": fit.chi2,
        "ndf": fit.ndf,
        "steps": len(fit.path) - 1,
        "path": fit.path,
        "n_data": fit.n_data,
        "n_mc": fit.n_mc,
        "observables": list(names),
        "truth": truth,
        "pull": None if truth is None else (fit.alpha_s - truth) / fit.error,
        "sqrt_s_gev": sqrt_s,
        "q0_gev": q0,
        "seed": seed,
        "fit_s": time.perf_counter() - t0,
        "physgen_version": __version__,
    }
    if out is not None:
        _write(out, created, res, x, fit, names, bins, curve_points, seed, shower)
    if as_json:
        typer.echo(json.dumps(json_ready(res)))
    elif not is_quiet():
        extra = "" if truth is None else f"; hidden value {truth:g}, pull {res['pull']:+.2f}"
        typer.echo(
            f"alpha_s(M_Z) = {fit.alpha_s:.5f} +- {fit.error:.5f} ({res['error_kind']}); "
            f"chi2/ndf = {fit.chi2:.1f}/{fit.ndf}; {res['steps']} steps; "
            f"{fit.n_data:,} data and {fit.n_mc:,} simulated events{extra}"
        )
        if out is not None:
            typer.echo(f"wrote {out / 'results.json'}")


def _write(out: Path, created: bool, res: dict[str, Any], x: np.ndarray, fit: Any,
           names: tuple[str, ...], bins: int, points: int, seed: int, shower: Any) -> None:  # fmt: skip
    from physgen.diffsim.alphas import chi2_curve

    with staging_dir(out) as stage:
        if points >= 2:
            half = max(4.0 * fit.error, 0.004)
            alphas = np.linspace(fit.alpha_s - half, fit.alpha_s + half, points)
            kw = {"n_mc": fit.n_mc, "seed": seed, "observables": names, "bins": bins,
                  "shower": shower}  # fmt: skip
            moved = chi2_curve(x, alphas, independent=False, **kw)
            grid = chi2_curve(x, alphas, independent=True, **kw)
            res["curves"] = {"alpha_s": alphas, "moved": moved, "independent": grid}
            try:
                from physgen.diffsim.alphas_plot import chi2_figure

                fig = chi2_figure(alphas, moved, grid, res, res["truth"], stage / "chi2.png")
                import matplotlib.pyplot as plt

                plt.close(fig)
            except ImportError as exc:  # the plot extra is missing: results only
                res["figure"] = f"not drawn: {exc}"
        (stage / "results.json").write_text(json.dumps(json_ready(res), indent=2))
        publish_staged(stage, out, created=created, last="results.json")


_register()
