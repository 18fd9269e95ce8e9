"""``physgen train`` and ``physgen generate``: fit a surrogate, sample showers from it."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from physgen.checks import check_device, check_memory, check_seed, parse_duration
from physgen.cli.cluster import Cluster, ClusterConfig, TaskSize, cluster_spec
from physgen.cli.conventions import NoProgress, Quiet, Verbose, progress, use_verbosity
from physgen.errors import ConfigError
from physgen.outputs import check_output

__all__ = ["generate", "parse_duration", "train"]


def _int_list(text: str, option: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ConfigError(f"{option}: expected comma-separated positive integers, got {text!r}")
    return values


def train(
    data: Annotated[Path, typer.Option(help="Training showers (CaloChallenge HDF5).")],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Run directory to create (or to continue with --resume)."),
    ],
    model: Annotated[
        Optional[str],
        typer.Option(
            help="Model: cfm, diffusion, flow, gan or vae (physgen.models.available_models())."
        ),
    ] = None,
    geometry: Annotated[
        Optional[str], typer.Option(help="Geometry of the data: 1-photons, 2, 3, calogan...")
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option(help="YAML config (full or partial) over the preset.")
    ] = None,
    preset: Annotated[
        Optional[str],
        typer.Option(help="Preset name (default MODEL-GEOMETRY when shipped; 'tiny' for demos)."),
    ] = None,
    seed: Annotated[Optional[int], typer.Option(help="Run seed (overrides the config).")] = None,
    epochs: Annotated[
        Optional[int], typer.Option(help="Epochs, passes over the data (overrides the config).")
    ] = None,
    max_time: Annotated[
        Optional[str],
        typer.Option(help="Wall-clock limit: stop cleanly with a checkpoint after e.g. 2h, 90m."),
    ] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue the run in --out from its checkpoint.")
    ] = False,
    device: Annotated[
        Optional[str], typer.Option(help="cpu, cuda or cuda:N (default: CUDA when available).")
    ] = None,
    no_progress: NoProgress = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Train a generative surrogate on simulated showers; writes a run directory.

    The run directory holds config.yaml, transforms.json, weights.pt (best EMA weights),
    checkpoint.pt, metrics.jsonl, provenance.json and summary.json. Launch with
    `torchrun --nproc-per-node K -m physgen train ...` for data-parallel training.
    """
    from physgen.calo.config import load_config
    from physgen.calo.rundir import read_run_config
    from physgen.calo.train import train as run_training

    use_verbosity(quiet, verbose)
    seconds = parse_duration(max_time) if max_time is not None else None
    if seed is not None:
        check_seed(seed)
    if device is not None:
        check_device(device)
    check_output(out, "--out", kind="dir", inputs=[data, config])
    overrides: dict[str, Any] = {}
    if seed is not None:
        overrides["seed"] = seed
    if epochs is not None:
        overrides.setdefault("optim", {})["epochs"] = epochs
    if resume:
        saved = read_run_config(out)
        for opt, given, have in (
            ("--model", model, saved.model),
            ("--geometry", geometry, saved.geometry),
        ):
            if given is not None and given != have:
                raise ConfigError(
                    f"{opt} {given!r} differs from the run's {have!r} ({out}/config.yaml)"
                )
        if config is not None or preset is not None or overrides:
            raise ConfigError(
                "--resume continues the saved config; drop --config/--preset/--seed/--epochs"
            )
        cfg = None
    else:
        if model is None or geometry is None:
            raise ConfigError("train: --model and --geometry are required for a new run")
        cfg = load_config(model, geometry, preset=preset, config_file=config, overrides=overrides)
    t0 = time.monotonic()
    res = run_training(
        cfg,
        data,
        out,
        resume=resume,
        max_time_s=seconds,
        device=device,
        progress=progress(no_progress),
    )
    d = {
        "run_dir": str(res.run_dir),
        "status": res.status,
        "steps": res.step,
        "epochs": res.epoch,
        "best_val_loss": res.best_val_loss,
        "n_parameters": res.n_parameters,
        "elapsed_s": round(time.monotonic() - t0, 2),
    }
    if os.environ.get("RANK", "0") != "0":  # under torchrun only rank 0 reports
        return
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    typer.echo(
        f"{res.status}: {res.step} steps, best validation loss {res.best_val_loss:.4g}, "
        f"{res.n_parameters:,} parameters, {d['elapsed_s']:.1f} s -> {res.run_dir}"
    )
    if res.status in ("max-time", "interrupted"):
        typer.echo(f"continue with: physgen train --resume --data {data} --out {res.run_dir}")


def _list_pretrained(as_json: bool) -> None:
    """Print the shipped models (``physgen generate --pretrained list``)."""
    from physgen.calo.pretrained import available_pretrained

    known = available_pretrained()
    if as_json:
        rows = [
            {
                "name": i.name,
                "model": i.model,
                "geometry": i.geometry,
                "description": i.description,
                "size_bytes": i.size_bytes,
                "provenance": i.provenance,
            }
            for i in known.values()
        ]
        typer.echo(json.dumps(rows))
        return
    if not known:
        typer.echo("no pretrained models are shipped with this installation")
    for i in known.values():
        typer.echo(f"{i.name}  ({i.model}, geometry {i.geometry}, {i.size_bytes / 1e6:.1f} MB)")
        typer.echo(f"    {i.description}")
        for key in ("data", "training"):
            val = i.provenance.get(key)
            for line in [val] if isinstance(val, str) else (val or []):
                typer.echo(f"    {key}: {line}")


def _model_attrs(run: Path, onnx: bool, pretrained: str | None) -> dict[str, str]:
    """Where the showers of a generated file came from (file attributes)."""
    if pretrained is not None:
        return {"pretrained": pretrained}
    return {"onnx_model" if onnx else "run_dir": str(run.resolve())}


def generate(
    run: Annotated[
        Optional[Path],
        typer.Argument(
            help="Run directory written by physgen train (or, with --backend onnxruntime, a "
            "model written by physgen export); or use --pretrained."
        ),
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", "-o", help="Output .h5 file (written atomically)."),
    ] = None,
    pretrained: Annotated[
        Optional[str],
        typer.Option(
            help="Generate with a model shipped in the package instead of a run directory; "
            "'list' prints the shipped models with their provenance."
        ),
    ] = None,
    energies_from: Annotated[
        Optional[Path], typer.Option(help="Use the incident energies of this CaloChallenge file.")
    ] = None,
    n: Annotated[
        Optional[int],
        typer.Option(
            help="Number of showers of the run, all shards together (with --energy, or the "
            "first N of --energies-from)."
        ),
    ] = None,
    energy: Annotated[
        Optional[str],
        typer.Option(
            help="Incident energies (a bare number is MeV): 100GeV, log-uniform 1GeV:1TeV, "
            "ds1 or ds1:even."
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(help="Showers per write; the output does not depend on it.")
    ] = 10_000,
    seed: Annotated[int, typer.Option(help="Run seed (same seed, same showers).")] = 0,
    shard: Annotated[
        Optional[str],
        typer.Option(
            help="Produce shard I of K (e.g. 3/8); merge 1/K..K/K with physgen merge. Shards "
            "are cut on seed blocks of 1000 showers, so K may be at most ceil(N / 1000); a "
            "shard that would be empty is refused before any work."
        ),
    ] = None,
    steps: Annotated[
        Optional[int],
        typer.Option(help="Sampling steps, a count (cfm ODE steps, diffusion sampler steps)."),
    ] = None,
    solver: Annotated[
        Optional[str],
        typer.Option(help="cfm: euler, midpoint, rk4, adaptive; diffusion: ddim, dpm++2m or ddpm."),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    backend: Annotated[
        str,
        typer.Option(
            help="torch (a run directory) or onnxruntime (an exported .onnx model, CPU; the "
            "same seed gives the torch showers up to float32 round-off)."
        ),
    ] = "torch",
    compression: Annotated[str, typer.Option(help="gzip, lzf or none.")] = "gzip",
    weight_draw: Annotated[
        Optional[int],
        typer.Option(
            help="Bayesian flow runs (model_config.bayesian_layers > 0): sample with this "
            "draw of the network weights (one member of the Bayesian ensemble; default: the "
            "mean weights)."
        ),
    ] = None,
    refiner: Annotated[
        Optional[Path],
        typer.Option(
            help="A DCTR refiner of this run (physgen refine): its per-shower weights go "
            "into the file's extra 'weights' dataset (physgen evaluate honours them)."
        ),
    ] = None,
    cluster: Cluster = None,
    cluster_config: ClusterConfig = None,
    task_size: TaskSize = None,
    no_progress: NoProgress = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print one JSON object (path, n_showers, rows, seed, elapsed_s...) instead "
            "of the summary line.",
        ),
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Generate showers (MeV) with a trained surrogate into a CaloChallenge file."""
    import numpy as np

    from physgen.calo.distributed import DEFAULT_TASK_SHOWERS
    from physgen.calo.generate import generate_showers, parse_shard
    from physgen.calo.io import open_showers
    from physgen.calo.rundir import load_run, read_run_config, sampling_overrides

    use_verbosity(quiet, verbose)
    if pretrained == "list":
        _list_pretrained(as_json)
        return
    if (run is None) == (pretrained is None):
        raise ConfigError("generate: give a run directory or --pretrained NAME (one of them)")
    if out is None:
        raise ConfigError("generate: --out is required (the .h5 file to write)")
    onnx_model = None
    shipped = None
    if pretrained is not None:
        from physgen.calo.pretrained import available_pretrained, unknown_pretrained

        known = available_pretrained()
        if pretrained not in known:
            raise unknown_pretrained(pretrained, known)
        if backend != "torch" or refiner is not None or weight_draw is not None:
            raise ConfigError(
                "--pretrained: works with the torch backend, without --refiner or --weight-draw"
            )
        shipped = known[pretrained]
        family, geometry = shipped.model, shipped.geometry
        check_output(out, "--out", inputs=[energies_from])
        run = shipped.path
    elif backend == "torch":
        assert run is not None
        cfg = read_run_config(run)
        family, geometry = cfg.model, cfg.geometry
        check_output(out, "--out", inputs=[energies_from], read_dirs=[run])
    elif backend == "onnxruntime":
        from physgen.export.runtime import load_onnx

        assert run is not None

        if run.is_dir():
            raise ConfigError(
                f"--backend onnxruntime: {run} is a run directory; give the .onnx file of "
                "physgen export"
            )
        if steps is not None or solver is not None:
            raise ConfigError(
                "--steps/--solver: fixed in an exported model; export again with "
                "physgen export --steps/--solver"
            )
        if device != "cpu":
            raise ConfigError("--backend onnxruntime runs on the CPU; leave --device at cpu")
        check_output(out, "--out", inputs=[energies_from, run])
        onnx_model = load_onnx(run)
        family = onnx_model.name
        geometry = str(onnx_model.metadata.get("physgen.geometry", ""))
    else:
        raise ConfigError(f"--backend: expected torch or onnxruntime, got {backend!r}")
    check_seed(seed)
    check_device(device)
    shard_ = parse_shard(shard)
    spec = cluster_spec(cluster, cluster_config, shard=shard)
    if spec is not None and device != "cpu":
        raise ConfigError("--device and --cluster: cluster workers sample on their CPUs")
    if (energies_from is None) == (energy is None):
        raise ConfigError("generate: give exactly one of --energies-from or --energy (with --n)")
    if n is not None and n < 1:
        raise ConfigError(f"--n: must be >= 1, got {n}")
    if n is not None:  # energies (float64) and one block of showers in memory
        check_memory(n * 8 * 2, "--n", f"the incident energies of {n} showers")
    energies = None
    if energy is not None:
        if n is None:
            raise ConfigError("generate: --energy needs --n")
        from physgen.calo.simulate.run import parse_energy_spec

        energies = parse_energy_spec(energy).sample(n, seed)
    else:
        assert energies_from is not None
        with open_showers(energies_from, geometry or None) as f:
            e = np.asarray(f.energies[()], dtype=np.float64).reshape(-1)
        if n is not None:
            if n > e.size:
                raise ConfigError(f"--n {n} exceeds the {e.size} showers of {energies_from}")
            e = e[:n]
        energies = e
    start, stop = shard_.check(len(energies))  # an empty shard: say why before loading
    refiner_ = None
    if refiner is not None:
        from physgen.calo.refine import ShowerRefiner, run_digest

        refiner_ = ShowerRefiner.load(refiner)
        digest = run_digest(run) if onnx_model is None else None
        refiner_.check_compatible(geometry, family, digest)
    if shipped is not None:
        from physgen.calo.pretrained import load_pretrained

        overrides = sampling_overrides(family, steps, solver)
        model: Any = load_pretrained(shipped.name, device, overrides=overrides or None)
    elif onnx_model is None:
        overrides = sampling_overrides(family, steps, solver)
        model = load_run(run, device, overrides=overrides or None)
    else:
        model = onnx_model
    draw: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
    if weight_draw is not None:
        from physgen.nn.bayesian import VariationalLinear
        from physgen.nn.bayesian import weight_draw as draw_weights

        if onnx_model is not None or not any(
            isinstance(m, VariationalLinear) for m in model.modules()
        ):
            raise ConfigError(
                "--weight-draw: only for Bayesian flow runs (model_config.bayesian_layers > 0)"
            )
        draw = draw_weights(model, weight_draw)
    t0 = time.monotonic()
    with draw:
        path = generate_showers(
            model,
            out,
            energies=energies,
            seed=seed,
            batch_size=batch_size,
            shard=shard_,
            geometry=geometry,
            compression=None if compression == "none" else compression,
            progress=progress(no_progress),
            attrs={
                **_model_attrs(run, onnx_model is not None, pretrained),
                "backend": backend,
                "energy": energy or f"from {energies_from}",
                **({} if weight_draw is None else {"weight_draw": weight_draw}),
            },
            cluster=spec,
            task_showers=DEFAULT_TASK_SHOWERS["generate"] if task_size is None else task_size,
            refiner=refiner_,
        )
    dt = time.monotonic() - t0
    with open_showers(path) as f:
        k = f.n_showers
        ess = f.attrs.get("weights_ess_fraction")
    if as_json:
        d = {
            "path": str(path),
            "n_showers": k,
            "n_total": len(energies),
            "shard": f"{shard_.index + 1}/{shard_.count}",
            "rows": [start, stop],
            "model": family,
            "backend": backend,
            "geometry": geometry,
            "seed": seed,
            "elapsed_s": round(dt, 3),
            "ms_per_shower": 1e3 * dt / max(k, 1),
            **({} if ess is None else {"weights_ess_fraction": ess}),
        }
        typer.echo(json.dumps(d))
        return
    typer.echo(
        f"wrote {path}: {k} showers ({family}, {backend}, geometry {geometry}), {dt:.1f} s "
        f"= {1e3 * dt / max(k, 1):.3g} ms/shower"
    )
    if ess is not None:
        typer.echo(f"refined: per-shower weights written, effective sample size {100 * ess:.1f} %")


def front(
    geometry: Annotated[str, typer.Option(help="Geometry: 1-photons, 2, 3...")],
    train_file: Annotated[Path, typer.Option("--train", help="Training showers (simulated).")],
    reference: Annotated[Path, typer.Option(help="Independent reference showers.")],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Output folder (front.md, front.json, front.png)."),
    ],
    models: Annotated[
        str, typer.Option(help="Comma-separated models.")
    ] = "cfm,flow,diffusion,gan,vae",
    runs: Annotated[
        Optional[Path],
        typer.Option(help="Run directories (reused/resumed when present; default OUT/runs)."),
    ] = None,
    train_time: Annotated[
        Optional[str],
        typer.Option(
            help="Wall-clock training budget per model, e.g. 2h, 90m (default: the preset's "
            "epochs)."
        ),
    ] = None,
    repeats: Annotated[int, typer.Option(help="Classifier trainings per model.")] = 3,
    device: Annotated[str, typer.Option(help="Device for generation timing.")] = "cpu",
    preset: Annotated[
        Optional[str], typer.Option(help="Preset for new runs (default MODEL-GEOMETRY; 'tiny').")
    ] = None,
    batch_sizes: Annotated[
        str, typer.Option(help="Timing batch sizes, showers per call, comma-separated.")
    ] = "1,100,10000",
    sampling: Annotated[
        Optional[list[str]],
        typer.Option(
            metavar="<model:key=value>",
            help="Sampling options of one model over its run's config, repeatable: "
            "MODEL:KEY=VALUE[,KEY=VALUE], e.g. diffusion:sampler=ddpm,steps=200.",
        ),
    ] = None,
    seed: Annotated[
        int,
        typer.Option(
            help="Seed of each model's generated sample (training seeds come from each "
            "model's preset, classifier seeds are evaluate's defaults)."
        ),
    ] = 1,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print front.json to stdout instead of front.md.")
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Train (or load) each model, evaluate and time it; write the quality-vs-speed table and plot."""
    from physgen.calo.front import parse_sampling, run_front

    use_verbosity(quiet, verbose)
    check_seed(seed)
    check_device(device)
    check_output(out, "--out", kind="dir", inputs=[train_file, reference])
    names = [m.strip() for m in models.split(",") if m.strip()]
    rec = run_front(
        geometry,
        names,
        train_file,
        reference,
        out,
        runs_dir=runs,
        max_time_s=parse_duration(train_time, "--train-time") if train_time else None,
        repeats=repeats,
        device=device,
        preset=preset,
        batch_sizes=_int_list(batch_sizes, "--batch-sizes"),
        sampling=parse_sampling(sampling or []),
        seed=seed,
        progress=progress(),
    )
    if as_json:
        typer.echo(json.dumps(rec, indent=2, default=str))
        return
    typer.echo((out / "front.md").read_text().rstrip())
    typer.echo(f"{len(rec['entries'])} models -> {out}/front.md, front.json, front.png")
