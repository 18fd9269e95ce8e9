"""``physgen evaluate`` and ``physgen timing``: thin wrappers over :mod:`physgen.calo.evaluate`."""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from physgen.cli.cluster import ClusterConfig, cluster_spec
from physgen.cli.conventions import Quiet, Verbose, is_quiet, use_verbosity
from physgen.errors import ConfigError

if TYPE_CHECKING:
    from physgen.calo.evaluate.pipeline import EvaluationResult

__all__ = ["evaluate"]


def _parse_extra(items: list[str]) -> dict[str, Path]:
    out = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError(f"--extra: expected NAME=FILE, got {item!r}")
        out[name] = Path(path)
    return out


def evaluate(
    generated: Annotated[Path, typer.Argument(help="Generated showers (CaloChallenge HDF5, MeV).")],
    reference: Annotated[Path, typer.Argument(help="Reference showers (CaloChallenge HDF5, MeV).")],
    geometry: Annotated[
        str, typer.Option(help="Geometry: 1-photons, 1-pions, 2, 3, calogan or XML.")
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output folder for text files, plots, report.")
    ],
    mode: Annotated[
        str,
        typer.Option(
            help="Comma-separated modes: hist, avg, avg-E, cls-low, cls-low-normed, cls-high, "
            "cls-resnet, multiclass, fpd, kpd, prdc, all."
        ),
    ] = "hist",
    classifier: Annotated[
        str,
        typer.Option(
            help="Classifier preset: fast (minutes on a CPU) or official (CaloChallenge)."
        ),
    ] = "fast",
    repeats: Annotated[
        int, typer.Option(help="Classifier trainings, a count, with different seeds (mean ± std).")
    ] = 1,
    seed: Annotated[int, typer.Option(help="Seed of splits and trainings.")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda for the classifiers.")] = "cpu",
    extra: Annotated[
        Optional[list[str]],
        typer.Option(help="NAME=FILE: further samples for multiclass (repeatable)."),
    ] = None,
    label: Annotated[
        str, typer.Option(help="Name of the generated sample in plots and report.")
    ] = "generated",
    plots: Annotated[bool, typer.Option(help="Write figures (PNG, 150 dpi).")] = True,
    plot_format: Annotated[
        str,
        typer.Option(
            help="Figure formats, comma-separated: png (always written, the report embeds "
            "it), pdf, svg; e.g. 'png,pdf' for talk-ready vector figures."
        ),
    ] = "png",
    batch_size: Annotated[
        Optional[int], typer.Option(help="Showers per streamed batch (default: ~64 MB).")
    ] = None,
    cluster: Annotated[
        Optional[str],
        typer.Option(
            "--cluster",
            help="Run the per-file feature passes as batch tasks on a Dask cluster (local:N, "
            "tcp://host:port, slurm|htcondor|pbs; pip install 'physgen[dist]'); the workers "
            "must see the files. Same results as without.",
        ),
    ] = None,
    weights: Annotated[
        bool,
        typer.Option(
            help="Honour the generated file's per-shower 'weights' (physgen generate "
            "--refiner); --no-weights judges the unrefined showers."
        ),
    ] = True,
    ensemble: Annotated[
        Optional[str],
        typer.Option(
            help="Comma-separated members of an ensemble (>= 2): generated files, or run "
            "directories (each then generates for the reference's incident energies, seed "
            "--seed + i; a Bayesian flow run listed K times gives K weight draws). Every "
            "histogram gets the members' band, every separation power its spread.",
        ),
    ] = None,
    cluster_config: ClusterConfig = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print results.json to stdout.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Compare generated with reference showers: CaloChallenge metrics (MeV thresholds), plots, report."""
    from physgen.calo.evaluate.pipeline import evaluate as run

    use_verbosity(quiet, verbose)
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size: must be >= 1, got {batch_size}")
    spec = cluster_spec(cluster, cluster_config)

    def say(msg: str) -> None:
        # progress for people at a terminal; batch logs, pipes and --quiet stay clean
        if not as_json and not is_quiet() and sys.stderr.isatty():
            typer.echo(f"... {msg}", err=True)

    with contextlib.ExitStack() as stack:
        members = None
        if ensemble is not None:
            members = _ensemble_members(ensemble, geometry, reference, out, seed, stack, say)
        res = run(
            generated,
            reference,
            geometry,
            mode,
            out,
            classifier=classifier,
            repeats=repeats,
            seed=seed,
            device=device,
            extra_generated=dict(_parse_extra(extra or [])),
            batch_size=batch_size,
            label=label,
            plots=plots,
            plot_formats=[f for f in plot_format.split(",") if f.strip()],
            argv=["physgen", *sys.argv[1:]],
            progress=say,
            cluster=spec,
            use_weights=weights,
            ensemble=members,
        )
    _print(res, as_json)


def _ensemble_members(
    spec: str,
    geometry: str,
    reference: Path,
    out: Path,
    seed: int,
    stack: contextlib.ExitStack,
    say: Callable[[str], None],
) -> list[Path]:
    """The ``--ensemble`` entries as files: run directories generate for the reference's
    incident energies (seed ``seed + i``) into a temporary folder beside ``out``."""
    from physgen.calo.geometry import get_geometry
    from physgen.nn.bayesian import weight_draw

    entries = [Path(e.strip()) for e in spec.split(",") if e.strip()]
    if len(entries) < 2:
        raise ConfigError(f"--ensemble: needs >= 2 members, got {len(entries)}")
    geo = get_geometry(geometry).name
    files: list[Path] = []
    tmp: Path | None = None
    for i, entry in enumerate(entries):
        if not entry.is_dir():
            files.append(entry)
            continue
        from physgen.calo.generate import generate_showers
        from physgen.calo.rundir import load_run, read_run_config

        cfg = read_run_config(entry)
        if get_geometry(cfg.geometry).name != geo:
            raise ConfigError(
                f"--ensemble: member {entry} is a geometry {cfg.geometry!r} run, the "
                f"evaluation is geometry {geo!r}"
            )
        if tmp is None:
            out.resolve().parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(
                stack.enter_context(
                    tempfile.TemporaryDirectory(dir=out.resolve().parent, prefix=".ensemble-")
                )
            )
        say(f"generating ensemble member {i + 1} of {len(entries)} ({entry})")
        path = tmp / f"member-{i + 1}.h5"
        model = load_run(entry)
        with weight_draw(model, seed + i):  # a Bayesian run: one weight draw per listing
            generate_showers(model, path, energies_from=reference, seed=seed + i,
                             geometry=cfg.geometry, progress=False)  # fmt: skip
        files.append(path)
    return files


def _print(res: EvaluationResult, as_json: bool) -> None:
    r = res.results
    if as_json:
        typer.echo(json.dumps(r, indent=2, default=str))
        return
    typer.echo(
        f"evaluated {r['n_generated']} generated vs {r['n_reference']} reference showers "
        f"(geometry {r['geometry']}; modes {', '.join(r['modes'])})"
    )
    if "weights" in r:
        wd = r["weights"]
        typer.echo(
            f"weighted generated sample: effective sample size {wd['effective_sample_size']:.0f} "
            f"({100 * wd['ess_fraction']:.1f} %), largest weight {wd['max']:.3g}"
        )
    for w in [] if is_quiet() else r["warnings"]:
        typer.echo(f"warning: {w}")
    if "separation_power_summary" in r:
        typer.echo("separation power (mean / max over histograms):")
        for g, v in r["separation_power_summary"].items():
            typer.echo(f"  {g:<14} {v['mean']:.2e} / {v['max']:.2e}  ({v['n']} histograms)")
    if "ensemble" in r:
        ens = r["ensemble"]
        sep = [v["std"] / v["mean"] for v in ens["separation_power"].values() if v["mean"] > 0]
        typer.echo(
            f"ensemble of {ens['n_members']} members: bands drawn; separation powers vary by "
            f"{100 * float(sum(sep) / max(len(sep), 1)):.0f} % (std / mean, averaged over "
            "histograms; each in results.json)"
        )
    for m, d in r.get("classifier", {}).items():
        typer.echo(f"classifier {m:<15} AUC {d['auc']:.4f}  JSD {d['jsd']:.4f}")
    fk = r.get("fpd_kpd", {})
    for k in ("fpd", "kpd"):
        if k in fk:
            typer.echo(f"{k.upper()} x 10^3   {fk[k] * 1e3:.4f} ± {fk[k + '_err'] * 1e3:.4f}")
    if "prdc" in r:
        p = r["prdc"]
        typer.echo(
            "PRDC         "
            + ", ".join(f"{k} {p[k]:.3f}" for k in ("precision", "recall", "density", "coverage"))
        )
    if "multiclass" in r:
        for name, v in r["multiclass"]["log_posterior"].items():
            typer.echo(f"multiclass   {name}: mean ln p(reference | x) = {v:.3f}")
    typer.echo(f"report: {res.report}")
