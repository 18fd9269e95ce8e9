"""``physgen evaluate`` and ``physgen timing``: thin wrappers over :mod:`physgen.calo.evaluate`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from physgen.cli.cluster import ClusterConfig, cluster_spec
from physgen.cli.conventions import Quiet, Verbose, is_quiet, use_verbosity
from physgen.errors import ConfigError

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
    )
    r = res.results
    if as_json:
        typer.echo(json.dumps(r, indent=2, default=str))
        return
    typer.echo(
        f"evaluated {r['n_generated']} generated vs {r['n_reference']} reference showers "
        f"(geometry {r['geometry']}; modes {', '.join(r['modes'])})"
    )
    for w in [] if is_quiet() else r["warnings"]:
        typer.echo(f"warning: {w}")
    if "separation_power_summary" in r:
        typer.echo("separation power (mean / max over histograms):")
        for g, v in r["separation_power_summary"].items():
            typer.echo(f"  {g:<14} {v['mean']:.2e} / {v['max']:.2e}  ({v['n']} histograms)")
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
