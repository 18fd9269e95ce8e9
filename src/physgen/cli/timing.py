"""``physgen timing``: generation time per shower, CaloChallenge style."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import numpy as np
import numpy.typing as npt
import typer

from physgen.checks import check_device, check_memory, check_seed
from physgen.cli.conventions import Quiet, Verbose, use_verbosity
from physgen.errors import ConfigError
from physgen.outputs import atomic_write_text, check_output

__all__ = ["timing"]

Generator = Callable[[int, npt.NDArray[np.float64]], Any]


def _engine_generator(
    engine: str, geometry: str, particle: str, seed: int, energy: str | None = None
) -> Generator:
    from physgen.calo.simulate.detector import get_detector
    from physgen.calo.simulate.engine import get_engine
    from physgen.calo.simulate.run import shower_seeds

    det = get_detector(None, geometry=geometry)
    if energy is not None:  # the same range check as physgen simulate
        from physgen.calo.simulate.run import parse_energy_spec

        det.check_request(particle, parse_energy_spec(energy).bounds_mev)
    eng = get_engine(engine, det)
    counter = [0]

    def generate(n: int, energies: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        seeds = shower_seeds(seed, n, start=counter[0])
        counter[0] += n
        raw = np.stack(
            [eng.simulate_one(particle, float(e), int(s)) for e, s in zip(energies[:, 0], seeds)]
        )
        return raw / eng.sampling_fraction

    return generate


def _callable_generator(spec: str) -> Generator:
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise ConfigError(f"--callable: expected MODULE:FUNCTION, got {spec!r}")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ConfigError(f"--callable: cannot import module {mod_name!r} ({exc})") from exc
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"--callable: {mod_name!r} has no callable {attr!r}")
    return fn  # type: ignore[no-any-return]


def run_generator(
    run_dir: Path, device: str, seed: int, overrides: dict[str, Any] | None = None
) -> tuple[Generator, Any]:
    """A trained run directory as a timing callable ``(n, energies) -> showers`` and its model."""
    import torch

    from physgen.calo.rundir import load_run

    model = load_run(run_dir, device, overrides=overrides)
    gen = torch.Generator().manual_seed(seed)

    def generate(n: int, energies: npt.NDArray[np.float64]) -> Any:
        return model(torch.from_numpy(np.asarray(energies, dtype=np.float64))).sample(generator=gen)

    return generate, model


def onnx_generator(path: Path, seed: int) -> tuple[Generator, str]:
    """An exported model (physgen export) as a timing callable, and its geometry."""
    import torch

    from physgen.export.runtime import load_onnx

    model = load_onnx(path)
    gen = torch.Generator().manual_seed(seed)

    def generate(n: int, energies: npt.NDArray[np.float64]) -> Any:
        return model(torch.from_numpy(np.asarray(energies, dtype=np.float64))).sample(generator=gen)

    return generate, str(model.metadata.get("physgen.geometry", ""))


def _energy_sampler(spec: str | None, geometry: str) -> Any:
    if spec is None:
        return geometry
    from physgen.calo.simulate.run import parse_energy_spec

    es = parse_energy_spec(spec)

    def sample(n: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
        return np.asarray(es.sample(n, int(rng.integers(2**31))), dtype=np.float64).reshape(n, 1)

    return sample


def timing(
    geometry: Annotated[
        str, typer.Option(help="Geometry of the generated showers (1-photons, 2, 3, calogan).")
    ],
    engine: Annotated[
        Optional[str], typer.Option(help="Time a physgen simulator engine: cascade or gflash.")
    ] = None,
    callable_: Annotated[
        Optional[str],
        typer.Option(
            "--callable",
            help="Time a Python callable MODULE:FUNCTION(n, energies (n,1) MeV) -> showers.",
        ),
    ] = None,
    run: Annotated[
        Optional[Path],
        typer.Option(help="Time a trained surrogate (run directory of physgen train)."),
    ] = None,
    onnx: Annotated[
        Optional[Path],
        typer.Option(help="Time an exported surrogate (physgen export) in ONNX Runtime, CPU."),
    ] = None,
    steps: Annotated[
        Optional[int], typer.Option(help="Sampling steps, a count (cfm ODE steps) for --run.")
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N (for --run).")] = "cpu",
    particle: Annotated[str, typer.Option(help="Particle for simulator engines.")] = "electron",
    energy: Annotated[
        Optional[str],
        typer.Option(
            help="Incident energies (a bare number is MeV): 100GeV, 1GeV:1TeV or ds1 "
            "(default: the geometry's range)."
        ),
    ] = None,
    batch_sizes: Annotated[
        str, typer.Option(help="Batch sizes, showers per call, comma-separated.")
    ] = "1,100,10000",
    repeats: Annotated[
        int, typer.Option(help="Timed calls per batch size (warm-up excluded).")
    ] = 10,
    warmup: Annotated[int, typer.Option(help="Untimed calls per batch size.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of energies and showers.")] = 0,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", "-o", help="Also write the result as JSON to this file."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (milliseconds per shower).")
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Time a generator at batch sizes 1/100/10000: milliseconds per shower, mean ± std."""
    from physgen.calo.evaluate.timing import time_generator
    from physgen.calo.geometry import get_geometry

    use_verbosity(quiet, verbose)

    get_geometry(geometry)
    check_seed(seed)
    check_device(device)
    if out is not None:
        check_output(out, "--out", inputs=[onnx], read_dirs=[run])
    if sum(v is not None for v in (engine, callable_, run, onnx)) != 1:
        raise ConfigError("timing: give exactly one of --engine, --callable, --run or --onnx")
    if onnx is not None and device != "cpu":
        raise ConfigError("--onnx runs in ONNX Runtime on the CPU; leave --device at cpu")
    try:
        sizes = [int(v) for v in batch_sizes.split(",") if v.strip()]
    except ValueError as exc:
        raise ConfigError(
            f"--batch-sizes: expected comma-separated integers, got {batch_sizes!r}"
        ) from exc
    n_voxels = get_geometry(geometry).n_voxels
    for size in sizes:  # showers (float64) and the generator's working copies
        check_memory(size * n_voxels * 8 * 4, "--batch-sizes", f"batches of {size} showers")
    n_params = None
    if run is not None:
        from physgen.calo.evaluate.timing import count_parameters
        from physgen.calo.rundir import read_run_config

        run_geo = read_run_config(run).geometry
        if run_geo != geometry:
            raise ConfigError(f"--geometry {geometry!r} differs from the run's {run_geo!r}")
        gen, model = run_generator(run, device, seed, {"steps": steps} if steps else None)
        n_params = count_parameters(model)
    elif onnx is not None:
        gen, onnx_geo = onnx_generator(onnx, seed)
        if onnx_geo != geometry:
            raise ConfigError(f"--geometry {geometry!r} differs from the model's {onnx_geo!r}")
    elif engine:
        gen = _engine_generator(engine, geometry, particle, seed, energy)
    else:
        gen = _callable_generator(callable_ or "")
    res = time_generator(
        gen,
        _energy_sampler(energy, geometry),
        sizes,
        repeats=repeats,
        warmup=warmup,
        seed=seed,
        device=device,
    )
    name = engine or callable_ or str(run if onnx is None else onnx)
    d = {"generator": name, "geometry": geometry, **res.to_dict()}
    if onnx is not None:
        d["backend"] = "onnxruntime"
    if n_params is not None:
        d["n_parameters"] = n_params
    if out is not None:
        atomic_write_text(out, json.dumps(d, indent=2))
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    params = f", {n_params:,} trainable parameters" if n_params is not None else ""
    typer.echo(
        f"{d['generator']} on {res.device}, geometry {geometry}{params}: ms per shower (mean ± std)"
    )
    for b in res.batches:
        typer.echo(
            f"  batch {b.batch_size:>6}: {b.ms_per_shower_mean:10.4g} ± {b.ms_per_shower_std:.2g}"
            f"  ({b.repeats} repeats)"
        )
