"""``physgen diffsim optimise-calorimeter``: design a sampling calorimeter by gradient descent.

A thin layer over :mod:`physgen.diffsim.detector`: the absorber/active thickness ratio of a
sampling calorimeter of fixed depth (in X0) that reaches ``--target-resolution`` at the
``--energy`` values at minimal cost, found by gradient descent through the differentiable
GFlash (:class:`physgen.diffsim.calorimeter.DiffGFlash`), checked by a grid scan with the
numba GFlash engine and optionally by cascade Monte Carlo spot checks. Every option is
checked before any work; the outputs are staged beside ``--out`` and moved there only when
complete, so a failure leaves nothing. Library errors propagate to
:func:`physgen.cli.main.main` (one line, exit status 2).

Outputs in ``--out``: ``results.json`` (settings, the descent path, the grid with its 1 sigma
errors, the optimum of each, the cascade checks, timings in s) and ``optimum.png`` (the
path against the scan).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from physgen._version import __version__
from physgen.checks import check_seed
from physgen.cli.conventions import Quiet, Verbose, is_quiet, use_verbosity
from physgen.errors import ConfigError
from physgen.outputs import check_output, json_ready, publish_staged, staging_dir

__all__ = ["optimise_calorimeter"]


def _energies_gev(text: str) -> list[float]:
    from physgen.calo.simulate.energies import parse_energy_spec

    out = []
    for item in (t.strip() for t in text.split(",")):
        spec = parse_energy_spec(item) if item else None
        if spec is None or spec.kind != "fixed":
            raise ConfigError(
                f"--energy: expected comma-separated energies (10GeV,50GeV; a bare number is MeV), "
                f"got {text!r}"
            )
        out.append(spec.low_mev / 1e3)
    return out


def _grid(text: str) -> list[float]:
    parts = text.split(":")
    try:
        lo, hi, count = float(parts[0]), float(parts[1]), int(parts[2])
    except (ValueError, IndexError):
        raise ConfigError(f"--grid: expected LOW:HIGH:COUNT (0.5:2.5:12), got {text!r}") from None
    if len(parts) != 3 or not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo < hi):
        raise ConfigError(f"--grid: expected LOW:HIGH:COUNT with 0 < LOW < HIGH, got {text!r}")
    if count < 2:
        raise ConfigError(f"--grid: COUNT must be >= 2, got {count}")
    return [float(v) for v in np.geomspace(lo, hi, count)]


def _ratios(text: str) -> list[float]:
    if not text.strip():
        return []
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ConfigError(f"--cascade: expected comma-separated ratios, got {text!r}") from None
    if not all(math.isfinite(v) and v > 0 for v in values):
        raise ConfigError(f"--cascade: ratios must be positive, got {text!r}")
    return values


def optimise_calorimeter(
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Output folder (created; must be new or empty)."),
    ],
    absorber: Annotated[str, typer.Option(help="Absorber material (Pb, W, Fe, Cu).")] = "Pb",
    active: Annotated[str, typer.Option(help="Active material (LAr, Scint, Si).")] = "LAr",
    active_mm: Annotated[float, typer.Option(help="Active-layer thickness, mm (fixed).")] = 4.0,
    depth_x0: Annotated[float, typer.Option(help="Total depth, radiation lengths.")] = 25.0,
    target_resolution: Annotated[
        float, typer.Option(help="Largest sigma_E/E allowed at every --energy (fraction).")
    ] = 0.05,
    energy: Annotated[
        str,
        typer.Option(
            help="Reference energies, comma-separated with units (10GeV,50GeV); a bare number is MeV."
        ),
    ] = "10GeV",
    particle: Annotated[str, typer.Option(help="electron, positron or photon.")] = "electron",
    cost_ratio: Annotated[
        float, typer.Option(help="Cost of active material per volume / that of the absorber.")
    ] = 10.0,
    containment_rm: Annotated[
        float, typer.Option(help="Tower radius of the cost model, Moliere radii.")
    ] = 2.0,
    n: Annotated[
        int, typer.Option(help="Showers per energy of the fixed gradient sample.")
    ] = 20000,
    steps: Annotated[int, typer.Option(help="Gradient-descent steps.")] = 150,
    lr: Annotated[float, typer.Option(help="Learning rate on ln(ratio).")] = 0.1,
    start_ratio: Annotated[float, typer.Option(help="Starting d_absorber/d_active.")] = 1.0,
    grid: Annotated[
        str, typer.Option(help="Ratios of the check scan, LOW:HIGH:COUNT (log-spaced).")
    ] = "0.5:2.5:15",
    grid_n: Annotated[int, typer.Option(help="Numba-GFlash showers per grid point.")] = 5000,
    cascade: Annotated[
        str,
        typer.Option(
            help="Ratios for cascade-MC spot checks at the lowest --energy, comma-separated "
            "('' none)."
        ),
    ] = "",
    cascade_n: Annotated[int, typer.Option(help="Cascade showers per spot check.")] = 500,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same result.")] = 0,
    threads: Annotated[int, typer.Option(help="torch threads.")] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print results.json.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Find the cheapest absorber/active thickness ratio that reaches a target energy
    resolution, by gradient descent through a differentiable GFlash; check it with a grid
    scan (numba GFlash, 1 sigma bands) and cascade spot checks."""
    from physgen._optional import require
    from physgen.diffsim.detector import CalorimeterDesign, resolution
    from physgen.metrics.classifier import torch_threads

    t0 = time.perf_counter()
    use_verbosity(quiet, verbose)
    check_seed(seed)
    design = CalorimeterDesign(
        absorber, active, active_mm, depth_x0, cost_ratio, containment_rm, particle
    )
    if not (math.isfinite(target_resolution) and 0 < target_resolution < 1):
        raise ConfigError(
            f"--target-resolution: expected a fraction in (0, 1), got {target_resolution}"
        )
    energies = _energies_gev(energy)
    ratios, spots = _grid(grid), _ratios(cascade)
    for name, value, low in (
        ("--n", n, 10),
        ("--steps", steps, 1),
        ("--grid-n", grid_n, 10),
        ("--cascade-n", cascade_n, 10),
        ("--threads", threads, 1),
    ):
        if value < low:
            raise ConfigError(f"{name}: expected an integer >= {low}, got {value}")
    for name, v in (("--lr", lr), ("--start-ratio", start_ratio)):
        if not (math.isfinite(v) and v > 0):
            raise ConfigError(f"{name}: expected a positive number, got {v}")
    check_output(out, "--out", kind="dir")
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"--out {out}: exists and is not an empty folder")
    require("matplotlib.pyplot", "plot", "the optimisation figure")
    require("mplhep", "plot", "the optimisation figure")
    opts: dict[str, Any] = {
        "n": n, "steps": steps, "lr": lr, "start_ratio": start_ratio, "grid_n": grid_n,
        "cascade_n": cascade_n, "seed": seed, "as_json": as_json,
    }  # fmt: skip
    command = (
        f"physgen diffsim optimise-calorimeter --absorber {absorber} --active {active} "
        f"--active-mm {active_mm:g} --depth-x0 {depth_x0:g} --target-resolution "
        f"{target_resolution:g} --energy {energy} --particle {particle} --cost-ratio "
        f"{cost_ratio:g} --containment-rm {containment_rm:g} --n {n} --steps {steps} --lr {lr:g} "
        f"--start-ratio {start_ratio:g} --grid {grid} --grid-n {grid_n} --cascade '{cascade}' "
        f"--cascade-n {cascade_n} --seed {seed} --threads {threads} --out {out}"
    )
    with torch_threads(threads):
        resolution(design, start_ratio, energies, 10, seed)  # energies inside GFlash's range
        results, timings = _run(design, target_resolution, energies, ratios, spots, opts)
    results["command"] = command
    results["timings_s"] = {**timings, "total": time.perf_counter() - t0}
    created = not out.exists()
    with staging_dir(out) as stage:
        from physgen.diffsim.calo_plot import optimum_figure

        optimum_figure(results, stage / "optimum.png")
        text = json.dumps(json_ready(results), indent=2) + "\n"
        (stage / "results.json").write_text(text)
        publish_staged(stage, out, created=created)
    if as_json:
        typer.echo(text.rstrip())
        return
    opt, best = results["optimisation"], results["grid"]["optimum"]
    typer.echo(
        f"gradient optimum: r = d_abs/d_act = {opt['ratio']:.4f} +- {opt['ratio_error']:.4f} "
        f"({opt['absorber_mm']:.3g} mm {absorber} / {active_mm:g} mm {active}), cost "
        f"{opt['cost']:.4g} l, sigma_E/E = {', '.join(f'{v:.4f}' for v in opt['resolution'])}"
    )
    if best is None:
        typer.echo("grid scan: the resolution does not cross the target inside --grid")
    else:
        typer.echo(
            f"grid scan (numba GFlash): r = {best[0]:.4f}, 1 sigma band [{best[1]:.4f}, "
            f"{best[2]:.4f}]; gradient optimum {'inside' if results['within_band'] else 'OUTSIDE'}"
        )
    for row in results["cascade"]:
        c, g = row["cascade"], row["gflash"]
        typer.echo(
            f"cascade check r = {row['ratio']:.4g}: sigma_E/E {c['resolution']:.4f} +- "
            f"{c['error']:.4f} (GFlash {g['resolution']:.4f} +- {g['error']:.4f})"
        )
    typer.echo(f"wrote {out}/results.json, {out}/optimum.png")


def _run(
    design: Any,
    target: float,
    energies: list[float],
    ratios: list[float],
    spots: list[float],
    opts: dict[str, Any],
) -> tuple[dict[str, Any], dict[str, float]]:
    """Descent, fixed-sample curve, grid scan and cascade checks; results and timings."""
    import torch

    from physgen.diffsim.detector import cascade_check, grid_scan, optimise, resolution

    def say(msg: str) -> None:
        if not opts["as_json"] and not is_quiet() and sys.stderr.isatty():
            typer.echo(f"... {msg}", err=True)

    times: dict[str, float] = {}
    t = time.perf_counter()
    say(f"gradient descent, {opts['steps']} steps on {opts['n']} showers per energy")
    opt = optimise(
        design, target, energies, n=opts["n"], steps=opts["steps"], lr=opts["lr"],
        start_ratio=opts["start_ratio"], seed=opts["seed"],
    )  # fmt: skip
    times["optimise"] = time.perf_counter() - t
    t = time.perf_counter()
    fine = [float(v) for v in np.geomspace(min(ratios), max(ratios), 60)]
    with torch.no_grad():
        curve = [resolution(design, r, energies, opts["n"], opts["seed"]).tolist() for r in fine]
    times["curve"] = time.perf_counter() - t
    t = time.perf_counter()
    say(f"grid scan, {len(ratios)} ratios x {opts['grid_n']} numba-GFlash showers")
    scan = grid_scan(design, ratios, target, energies, n=opts["grid_n"], seed=opts["seed"])
    times["grid"] = time.perf_counter() - t
    t = time.perf_counter()
    checks = []
    if spots:
        say(f"cascade spot checks at {len(spots)} ratios x {opts['cascade_n']} showers")
        checks = cascade_check(design, spots, min(energies), n=opts["cascade_n"], seed=opts["seed"])
    times["cascade"] = time.perf_counter() - t
    best = scan.optimum
    results: dict[str, Any] = {
        "physgen_version": __version__,
        "design": asdict(design),
        "target": target,
        "energies_gev": energies,
        "seed": opts["seed"],
        "optimisation": opt.to_dict(),
        "diff_curve": {"ratios": fine, "resolution": curve},
        "grid": scan.to_dict(),
        "within_band": best is not None and best[1] <= opt.ratio <= best[2],
        "cascade": checks,
    }
    return results, times
