"""``physgen fit`` and ``physgen sample``: conditional densities of columns in files."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from physgen.checks import check_device, check_seed
from physgen.cli.conventions import NoProgress, Quiet, Verbose, progress, use_verbosity
from physgen.errors import ConfigError
from physgen.outputs import check_output

__all__ = ["fit", "sample"]


def _root_path(text: str) -> Path:
    """``FILE.root:TREE`` -> ``FILE.root`` (the file itself, for the output checks)."""
    return Path(text.partition(".root:")[0] + ".root") if ".root:" in text else Path(text)


def _bounds(text: str | None, width: int) -> list[Any] | None:
    """``"0:1,none,0:,:5"`` -> ``[(0, 1), None, (0, None), (None, 5)]`` (an empty side or
    ``inf`` is open)."""
    if text is None:
        return None
    items = [v.strip() for v in text.split(",")]
    if len(items) != width:
        raise ConfigError(f"--bounds: {len(items)} entries for {width} x columns")
    out: list[Any] = []
    for item in items:
        if item.lower() in ("", "none", "-"):
            out.append(None)
            continue
        lo, sep, hi = item.partition(":")
        try:
            if not sep or not (lo.strip() or hi.strip()):
                raise ValueError(item)
            out.append((float(lo) if lo.strip() else None, float(hi) if hi.strip() else None))
        except ValueError:
            raise ConfigError(
                f"--bounds: expected LO:HI, LO: (open above), :HI (open below) or none per "
                f"column, got {item!r}"
            ) from None
    return out


def fit(
    data: Annotated[
        str, typer.Option(help="Input file: .h5, .npy, .npz, .parquet or .root (FILE.root:TREE).")
    ],
    x: Annotated[str, typer.Option(help="Columns to model, e.g. 'pt,eta' or 'theta[0:3]'.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory to create.")],
    c: Annotated[
        Optional[str], typer.Option(help="Condition columns (none: an unconditional density).")
    ] = None,
    model: Annotated[str, typer.Option(help="flow, cfm, diffusion, gan or vae.")] = "flow",
    bounds: Annotated[
        Optional[str],
        typer.Option(
            help="Support of each x column: 'LO:HI', 'LO:' (e.g. '0:' for a mass), ':HI' or "
            "'none', comma-separated."
        ),
    ] = None,
    config: Annotated[
        Optional[Path], typer.Option(help="YAML with model_config and optim options.")
    ] = None,
    epochs: Annotated[
        Optional[int], typer.Option(help="Epochs, passes over the data (default: ~20k steps).")
    ] = None,
    max_time: Annotated[
        Optional[str],
        typer.Option(help="Wall-clock limit: stop with the best weights after e.g. 10m, 2h."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    no_progress: NoProgress = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Fit a conditional density p(x | c) to columns of a file; writes a run directory.

    The run directory holds config.yaml, codec.json, weights.pt (best EMA weights),
    metrics.jsonl, provenance.json and summary.json; sample it with `physgen sample` or
    `physgen.density.load` in Python.
    """
    from physgen.columns import read_named_columns
    from physgen.density import fit as fit_density
    from physgen.typed_config import read_yaml

    use_verbosity(quiet, verbose)
    check_seed(seed)
    check_device(device)
    check_output(out, "--out", kind="dir", inputs=[_root_path(data), config])
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"--out {out}: exists and is not an empty folder")
    options: dict[str, Any] = read_yaml(config) if config is not None else {}
    unknown = sorted(set(options) - {"model_config", "optim"})
    if unknown:
        raise ConfigError(f"{config}: unknown keys {', '.join(unknown)} (model_config, optim)")
    xa, x_names = read_named_columns(data, x)
    ca, c_names = read_named_columns(data, c) if c else (None, None)
    t0 = time.monotonic()
    est = fit_density(
        xa,
        ca,
        model=model,
        config=options.get("model_config"),
        optim=options.get("optim"),
        bounds=_bounds(bounds, xa.shape[1]),
        epochs=epochs,
        max_time=max_time,
        seed=seed,
        x_names=x_names,
        c_names=c_names,
        out=out,
        device=device,
        progress=progress(no_progress),
    )
    s = est.summary
    d = {
        "run_dir": str(out),
        "status": s.get("status"),
        "steps": s.get("step"),
        "best_val_loss": s.get("best_val_loss"),
        "n_parameters": s.get("n_parameters"),
        "elapsed_s": round(time.monotonic() - t0, 2),
    }
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    typer.echo(
        f"{d['status']}: {d['steps']} steps, best validation loss {d['best_val_loss']:.4g}, "
        f"{d['n_parameters']:,} parameters, {d['elapsed_s']:.1f} s -> {out}"
    )


def sample(
    run: Annotated[Path, typer.Argument(help="Run directory written by physgen fit.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Output file: .h5, .npy, .npz, .parquet or .root.")
    ],
    c: Annotated[
        Optional[str], typer.Option(help="File with the condition columns (as named at fit).")
    ] = None,
    c_columns: Annotated[
        Optional[str], typer.Option(help="Condition columns in --c (default: the fit's names).")
    ] = None,
    n: Annotated[
        int, typer.Option(help="Samples per condition row (or in all, unconditional).")
    ] = 1,
    seed: Annotated[int, typer.Option(help="Seed (same seed, same samples).")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda or cuda:N.")] = "cpu",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (path, n_samples, columns).")
    ] = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Sample a density fitted by `physgen fit`; rows m*n..(m+1)*n-1 belong to condition m.

    The output holds the sampled columns (under the fit's names) and the conditions they
    were drawn for, plus `condition_row`, the row of --c each sample belongs to.
    """
    import numpy as np

    from physgen.columns import read_columns, write_columns
    from physgen.density import load

    use_verbosity(quiet, verbose)
    check_seed(seed)
    check_device(device)
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    check_output(out, "--out", inputs=[_root_path(c) if c else None], read_dirs=[run])
    est = load(run, device=device)
    cfg = est.config
    if cfg.c_dim:
        if c is None:
            raise ConfigError(
                f"{run}: a conditional density; give --c FILE with {cfg.c_dim} columns"
            )
        cols = c_columns or ",".join(cfg.c_names)
        if not cols:
            raise ConfigError("--c-columns: the run has no recorded condition names; give them")
        ca = read_columns(c, cols)
        if ca.shape[1] != cfg.c_dim:
            raise ConfigError(
                f"--c: {ca.shape[1]} columns, the density was fitted with {cfg.c_dim}"
            )
        xs = np.asarray(est(ca).sample(n, seed=seed))  # (n, M, D)
        xs = np.swapaxes(xs, 0, 1).reshape(-1, cfg.x_dim)
        rows = np.repeat(np.arange(ca.shape[0]), n)
        cond = np.repeat(ca, n, axis=0)
    else:
        if c is not None:
            raise ConfigError(f"{run}: an unconditional density; drop --c")
        xs = np.asarray(est(n=n).sample(seed=seed))
        rows, cond = np.zeros(n, dtype=np.int64), np.zeros((n, 0))
    x_names = cfg.x_names or [f"x{i}" for i in range(cfg.x_dim)]
    c_names = cfg.c_names or [f"c{i}" for i in range(cfg.c_dim)]
    if out.suffix.lower() == ".npy":
        columns: dict[str, Any] = {"x": xs}
    else:
        columns = {name: xs[:, i] for i, name in enumerate(x_names)}
        columns.update({name: cond[:, i] for i, name in enumerate(c_names)})
        columns["condition_row"] = rows
    write_columns(out, columns)
    if as_json:
        d = {"path": str(out), "n_samples": int(xs.shape[0]), "columns": list(columns)}
        typer.echo(json.dumps(d))
        return
    typer.echo(f"wrote {out}: {xs.shape[0]} samples of {cfg.x_dim} columns")
