"""Conditional densities ``p(x | c)`` from arrays: fit, sample, evaluate, save, load.

The public face of the generic core: any of the five families (``flow``, ``cfm``,
``diffusion``, ``gan``, ``vae``) trained by the one training loop on vectors ``x (N, D)`` with
conditions ``c (N, K)`` (K = 0: unconditional), through a standardising
:class:`~physgen.core.codec.VectorCodec` (bounded columns mapped through a logit)::

    import physgen
    est = physgen.density.fit(x, c, model="flow", max_time="5m", seed=0)
    dist = est(c_new)                # one distribution per row of c_new (M, K)
    xs = dist.sample()               # (M, D)
    lp = dist.log_prob(x_new)        # (M,), data space (flow only)
    est.save("run/");  est = physgen.density.load("run/")

Arrays come back as the type they went in (numpy in, numpy out; torch in, torch out).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import yaml

from physgen.errors import ConfigError, DataFormatError
from physgen.train.config import OptimConfig

__all__ = ["VECTOR_DEFAULTS", "DensityConfig", "DensityEstimator", "fit", "load"]

#: Model options for vector data (the families' own defaults are sized for showers).
VECTOR_DEFAULTS: dict[str, dict[str, Any]] = {
    "flow": {
        "energy_transforms": 3,
        "energy_hidden": [64, 64],
        "shape_transforms": 5,
        "shape_hidden": [64, 64],
        "shape_bins": 10,
        "shape_passes": 0,
    },
    "cfm": {
        "hidden": 128,
        "blocks": 3,
        "energy_hidden": 64,
        "energy_blocks": 2,
        "time_features": 32,
        "solver": "rk4",
        "steps": 24,
    },
    "diffusion": {
        "hidden": 128,
        "blocks": 3,
        "energy_hidden": 64,
        "energy_blocks": 2,
        "time_features": 32,
        "steps": 50,
    },
    "gan": {"latent": 16, "hidden": 128, "blocks": 2, "critic_hidden": 128, "critic_blocks": 2},
    "vae": {"latent": 8, "hidden": 128, "blocks": 2, "prior": "flow", "kl_warmup_steps": 500},
}

_KIND = "physgen-density"
_CHUNK = 100_000
#: Small data sets get epochs of at least this many steps (validation and patience units).
_MIN_STEPS_PER_EPOCH = 100


@dataclass
class CodecConfig:
    """Options of the vector codec.

    Attributes:
        bounds: Per column of ``x`` a ``[lo, hi]`` pair or None (unbounded); None: none bounded.
        first: Leading columns of ``x`` learnt as the first stage of ``p(a | c) p(b | a, c)``.
    """

    bounds: list[Any] | None = None
    first: int = 0


@dataclass
class DensityConfig:
    """Everything that defines a density fit; saved as ``config.yaml`` in the run directory.

    Attributes:
        model: Family: ``flow``, ``cfm``, ``diffusion``, ``gan`` or ``vae``.
        seed: Run seed (initial weights, split, batch order, noise).
        x_dim: D.
        c_dim: K.
        x_names: Names of the columns of x (for files and messages).
        c_names: Names of the columns of c.
        model_config: Options of the family (over :data:`VECTOR_DEFAULTS`).
        codec: Codec options.
        validation_fraction: Share of rows held out for early stopping.
        optim: Optimisation options.
    """

    model: str = "flow"
    seed: int = 0
    x_dim: int = 1
    c_dim: int = 0
    x_names: list[str] = field(default_factory=list)
    c_names: list[str] = field(default_factory=list)
    model_config: dict[str, Any] = field(default_factory=dict)
    codec: CodecConfig = field(default_factory=CodecConfig)
    validation_fraction: float = 0.1
    optim: OptimConfig = field(default_factory=OptimConfig)


def _as_array(name: str, a: Any, n: int | None = None) -> tuple[npt.NDArray[np.float64], bool]:
    """``a`` -> (float64 2-D array, whether it was a torch tensor)."""
    import torch

    is_torch = isinstance(a, torch.Tensor)
    arr = a.detach().cpu().numpy() if is_torch else np.asarray(a)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise DataFormatError(f"{name}: expected a numeric array, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise DataFormatError(f"{name}: expected shape (N, width), got {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise DataFormatError(f"{name} has {arr.shape[0]} rows, x has {n}")
    if not np.isfinite(arr).all():
        bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
        raise DataFormatError(f"{name}: contains NaN or inf (first at row {bad})")
    return arr.astype(np.float64, copy=False), is_torch


class ConditionalDensity:
    """``p(x | c)`` for M conditions, from :class:`DensityEstimator` ``(c)``."""

    def __init__(self, est: DensityEstimator, c: npt.NDArray[np.float64], torch_out: bool) -> None:
        self.est, self.c, self.torch_out = est, c, torch_out

    def _out(self, a: Any) -> Any:
        import torch

        t = a if isinstance(a, torch.Tensor) else torch.as_tensor(a)
        return t if self.torch_out else t.detach().cpu().numpy()

    def sample(
        self, shape: int | tuple[int, ...] = (), *, seed: int | None = None, generator: Any = None
    ) -> Any:
        """Samples of shape ``(*shape, M, D)``.

        Args:
            shape: Samples per condition (an int or a tuple); ``()``: one per condition.
            seed: Seed of the draw (same seed, same samples); None: ``generator``, or torch's
                global generator.
            generator: A CPU ``torch.Generator`` (used when ``seed`` is None).
        """
        import torch

        shape = tuple(int(v) for v in shape) if isinstance(shape, tuple) else (int(shape),)
        if seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        n_rep = int(np.prod(shape)) if shape else 1
        m = self.c.shape[0]
        c = torch.as_tensor(self.c, dtype=torch.float32)
        model = self.est.model
        x = torch.empty(n_rep * m, self.est.x_dim)
        for i in range(0, n_rep * m, _CHUNK):  # row r of the result is condition r % M
            rows = torch.arange(i, min(i + _CHUNK, n_rep * m)) % m
            x[i : i + len(rows)] = model.sample_data(c[rows], generator).cpu()
        return self._out(x.reshape(*shape, m, self.est.x_dim))

    def log_prob(self, x: Any) -> Any:
        """Log density ``(M,)`` of ``x (M, D)`` in data space (``flow`` only); the same array
        type as ``x``.

        Raises:
            NotImplementedError: The family has no tractable density.
            ConfigError: Wrong shape or non-finite values.
        """
        import torch

        arr, x_torch = _as_array("x", x)
        if arr.shape[0] != self.c.shape[0]:
            raise DataFormatError(
                f"x has {arr.shape[0]} rows but there are {self.c.shape[0]} conditions"
            )
        if arr.shape[1] != self.est.x_dim:
            raise ConfigError(f"x: expected {self.est.x_dim} columns, got {arr.shape[1]}")
        model = self.est.model
        c = torch.as_tensor(self.c, dtype=torch.float32)
        xt = torch.as_tensor(arr)
        with torch.no_grad():
            lp = (
                torch.cat(
                    [
                        model.log_prob(xt[i : i + _CHUNK], c[i : i + _CHUNK]).double().cpu()
                        for i in range(0, len(xt), _CHUNK)
                    ]
                )
                if len(xt)
                else torch.empty(0, dtype=torch.float64)
            )
        return lp if x_torch else lp.numpy()


class DensityEstimator:
    """A trained conditional density; call it with conditions to get distributions.

    Attributes:
        model: The underlying :class:`~physgen.core.generator.ConditionalGenerator`.
        config: The :class:`DensityConfig` it was trained with.
        summary: How training ended (status, steps, best validation loss, times).
    """

    def __init__(self, model: Any, config: DensityConfig, summary: dict[str, Any] | None = None):
        self.model = model
        self.config = config
        self.summary = dict(summary or {})

    @property
    def x_dim(self) -> int:
        """D."""
        return self.config.x_dim

    @property
    def c_dim(self) -> int:
        """K."""
        return self.config.c_dim

    def __call__(self, c: Any = None, *, n: int | None = None) -> ConditionalDensity:
        """Distributions for conditions ``c (M, K)``; unconditional models take ``n=M``."""
        if c is None:
            if self.c_dim:
                raise ConfigError(f"this density is conditional: give c of shape (M, {self.c_dim})")
            arr, torch_out = np.zeros((1 if n is None else int(n), 0)), False
        else:
            arr, torch_out = _as_array("c", c)
            if arr.shape[1] != self.c_dim:
                raise ConfigError(
                    f"c: the density was fitted with {self.c_dim} condition columns, got {arr.shape[1]}"
                )
        return ConditionalDensity(self, arr, torch_out)

    def save(self, path: str | Path) -> Path:
        """Write a run directory (``config.yaml``, ``codec.json``, ``weights.pt``) loadable by
        :func:`load`. An existing density run directory is overwritten file by file; any other
        non-empty folder is refused.

        Raises:
            ConfigError: ``path`` is a file or a non-empty folder of something else.
        """
        from physgen.outputs import atomic_write_text
        from physgen.train.rundir import save_torch
        from physgen.typed_config import to_mapping

        d = Path(path)
        if d.exists() and not d.is_dir():
            raise ConfigError(f"{d}: is a file, expected a run directory")
        if d.is_dir() and any(d.iterdir()):
            read_config(d)  # raises unless it is a density run directory (then overwritten)
        d.mkdir(parents=True, exist_ok=True)
        atomic_write_text(d / "config.yaml", _config_yaml(self.config))
        atomic_write_text(d / "codec.json", json.dumps(self.model.codec.summary(), indent=2) + "\n")
        save_torch(
            {"model": self.config.model, "state_dict": self.model.state_dict()}, d / "weights.pt"
        )
        if self.summary:
            atomic_write_text(
                d / "summary.json", json.dumps(to_mapping(self.summary), indent=2) + "\n"
            )
        return d


def _config_yaml(cfg: DensityConfig) -> str:
    from physgen.typed_config import to_mapping

    return yaml.safe_dump({"kind": _KIND, **to_mapping(cfg)}, sort_keys=False)


def _build(cfg: DensityConfig) -> Any:
    from physgen.core.codec import VectorCodec
    from physgen.models.registry import build_model

    bounds = cfg.codec.bounds
    codec = VectorCodec(
        cfg.x_dim,
        cfg.c_dim,
        bounds=[tuple(b) if b is not None else None for b in bounds] if bounds else None,
        first=cfg.codec.first,
    )
    options = {**VECTOR_DEFAULTS.get(cfg.model, {}), **cfg.model_config}
    return build_model(cfg.model, codec, options)


def _default_epochs(n_train: int, batch_size: int) -> int:
    """About 20,000 optimisation steps (at least one epoch)."""
    steps = max(_MIN_STEPS_PER_EPOCH, n_train // batch_size)
    return int(max(1, -(-20_000 // steps)))


def fit(
    x: Any,
    c: Any = None,
    *,
    model: str = "flow",
    config: dict[str, Any] | None = None,
    optim: dict[str, Any] | None = None,
    bounds: list[Any] | None = None,
    first: int = 0,
    max_time: str | float | None = None,
    epochs: int | None = None,
    seed: int = 0,
    validation_fraction: float = 0.1,
    x_names: list[str] | None = None,
    c_names: list[str] | None = None,
    out: str | Path | None = None,
    device: str | None = "cpu",
    progress: bool | None = None,
) -> DensityEstimator:
    """Fit ``p(x | c)`` with one of the model families.

    Args:
        x: Data ``(N, D)`` (numpy or torch; ``(N,)`` for D = 1).
        c: Conditions ``(N, K)``; None for an unconditional density.
        model: ``flow`` (exact ``log_prob``), ``cfm``, ``diffusion``, ``gan`` or ``vae``.
        config: Options of the family over :data:`VECTOR_DEFAULTS` (its ``Config`` fields).
        optim: Optimisation options (:class:`~physgen.train.config.OptimConfig` fields);
            default batch 256 (or N/8 when smaller), learning rate 1e-3, about 20,000 steps in
            epochs of at least 100 steps, validation every epoch or 1,000 steps, early
            stopping after 10 validations without a lower loss (the best weights are kept).
        bounds: Per column of x a ``(lo, hi)`` support or None; samples then stay inside.
        first: Leading columns of x learnt as the first stage of a two-stage chain.
        max_time: Wall-time limit (``"5m"``, ``"1h"`` or seconds); training stops cleanly and
            keeps the best weights.
        epochs: Epochs (default: see ``optim``).
        seed: Run seed; the same seed on the same machine gives the same weights.
        validation_fraction: Held-out share for early stopping and best-weight selection.
        x_names: Column names of x (recorded).
        c_names: Column names of c (recorded).
        out: Run directory to write (must be new or empty); None: train in a temporary one.
        device: ``cpu``, ``cuda`` or ``cuda:N``; None: CUDA when available.
        progress: tqdm bar (None: only on a terminal).

    Returns:
        The trained :class:`DensityEstimator` (best EMA weights, in eval mode).

    Raises:
        ConfigError: Mismatched rows, NaN/inf, bad options, an unknown model.
    """
    import tempfile

    import torch

    from physgen.checks import check_seed, parse_duration
    from physgen.models.registry import get_model_class
    from physgen.train.data import ArrayData
    from physgen.train.loop import RunSettings, _seed_from, run_guarded, run_loop
    from physgen.typed_config import from_mapping

    check_seed(seed)
    get_model_class(model)
    xa, _ = _as_array("x", x)
    ca = np.zeros((xa.shape[0], 0)) if c is None else _as_array("c", c, xa.shape[0])[0]
    n = xa.shape[0]
    if n < 10:
        raise DataFormatError(f"x: {n} rows are too few to fit a density (need >= 10)")
    for names, width, what in (
        (x_names, xa.shape[1], "x_names"),
        (c_names, ca.shape[1], "c_names"),
    ):
        if names is not None and len(names) != width:
            raise ConfigError(f"{what}: {len(names)} names for {width} columns")
    n_train = n - max(1, round(validation_fraction * n))
    o: dict[str, Any] = {
        "lr": 1e-3,
        "batch_size": int(min(256, max(16, n_train // 8))),
        "patience": 10,
        "warmup_steps": 100,
        "ema_decay": 0.995,
        **(optim or {}),
    }
    steps_per_epoch = max(_MIN_STEPS_PER_EPOCH, n_train // int(o["batch_size"]))
    o.setdefault("validate_every", min(steps_per_epoch, 1000))
    if epochs is not None:
        o["epochs"] = int(epochs)
    elif "epochs" not in (optim or {}):
        o["epochs"] = _default_epochs(n_train, int(o["batch_size"]))
    cfg = DensityConfig(
        model=model,
        seed=int(seed),
        x_dim=int(xa.shape[1]),
        c_dim=int(ca.shape[1]),
        x_names=list(x_names or []),
        c_names=list(c_names or []),
        model_config=dict(config or {}),
        codec=CodecConfig(
            bounds=[list(b) if b is not None else None for b in bounds] if bounds else None,
            first=int(first),
        ),
        validation_fraction=float(validation_fraction),
        optim=from_mapping(OptimConfig, o, "optim"),
    )
    if not 0 < cfg.validation_fraction < 1:
        raise ConfigError("validation_fraction must be in (0, 1)")
    if cfg.optim.epochs < 1 or cfg.optim.batch_size < 1 or cfg.optim.lr <= 0:
        raise ConfigError("optim: need epochs >= 1, batch_size >= 1 and lr > 0")
    if cfg.optim.min_delta < 0:
        raise ConfigError(f"optim.min_delta: must be >= 0, got {cfg.optim.min_delta}")
    seconds = None
    if max_time is not None:
        seconds = (
            parse_duration(max_time, "max_time")
            if isinstance(max_time, str)
            else parse_duration(str(float(max_time)), "max_time")
        )
    data = ArrayData(
        ca,
        xa,
        validation_fraction=cfg.validation_fraction,
        seed=cfg.seed,
        min_steps_per_epoch=_MIN_STEPS_PER_EPOCH,
    )

    tmp = None
    if out is None:
        tmp = tempfile.TemporaryDirectory(prefix="physgen-density-")
        run_dir = Path(tmp.name) / "run"
    else:
        run_dir = Path(out)
        if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
            raise ConfigError(f"out {run_dir}: exists and is not an empty folder")
    t_start = time.monotonic()
    try:
        with torch.random.fork_rng(devices=[]):  # the caller's global torch state is kept
            torch.manual_seed(_seed_from(cfg.seed, 0x494E))
            net = _build(cfg)
        fit_c, fit_x = data.fit_sample()
        net.codec.fit(torch.from_numpy(fit_x), torch.from_numpy(fit_c))

        def body(dist_info: Any) -> Any:
            net.to(dist_info.device)

            def write_files() -> None:
                from physgen._version import __version__
                from physgen.outputs import atomic_write_text

                atomic_write_text(run_dir / "config.yaml", _config_yaml(cfg))
                atomic_write_text(
                    run_dir / "codec.json", json.dumps(net.codec.summary(), indent=2) + "\n"
                )
                prov = {
                    "physgen_version": __version__,
                    "torch_version": torch.__version__,
                    "n_rows": n,
                    "n_train": data.n_train,
                    "n_validation": data.n_validation,
                    "seed": cfg.seed,
                    "device": str(dist_info.device),
                    "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                }
                atomic_write_text(run_dir / "provenance.json", json.dumps(prov, indent=2) + "\n")

            return run_loop(
                net,
                data,
                RunSettings(cfg.model, cfg.seed, cfg.optim),
                run_dir,
                dist_info,
                resume=False,
                max_time_s=seconds,
                progress=progress,
                stop_after_steps=None,
                log_every=50,
                t_start=t_start,
                write_run_files=write_files,
            )

        run_guarded(run_dir, False, device, body)
        est = load(run_dir, device=str(net.device))
        est.summary = json.loads((run_dir / "summary.json").read_text())
        return est
    finally:
        if tmp is not None:
            tmp.cleanup()


def read_config(path: str | Path) -> DensityConfig:
    """The :class:`DensityConfig` of a density run directory.

    Raises:
        ConfigError: Not a run directory, or one of a calorimeter surrogate.
    """
    from physgen.train.rundir import read_config_mapping
    from physgen.typed_config import from_mapping

    d = Path(path)
    p = d / "config.yaml"
    data = read_config_mapping(d)
    if data.get("kind") != _KIND:
        raise ConfigError(
            f"{d}: a calorimeter surrogate run, not a density run (load it with "
            "physgen.calo.rundir.load_run, generate with `physgen generate`)"
            if "geometry" in data
            else f"{d}: not a density run directory (config.yaml has no 'kind: {_KIND}')"
        )
    data.pop("kind")
    return from_mapping(DensityConfig, data, str(p))


def load(path: str | Path, device: str = "cpu") -> DensityEstimator:
    """Load a density run directory written by :func:`fit` or :meth:`DensityEstimator.save`.

    Raises:
        ConfigError: Missing files, another kind of run directory, weights of another model or
            that do not fit the configured network.
    """
    from physgen.train.rundir import load_weights_file

    d = Path(path)
    cfg = read_config(d)
    w = d / "weights.pt"
    if not w.is_file():
        raise ConfigError(f"{d}: incomplete run directory, missing weights.pt")
    obj = load_weights_file(w, cfg.model)
    model = _build(cfg)
    try:
        model.load_state_dict(obj["state_dict"])
    except RuntimeError as exc:
        raise ConfigError(
            f"{w}: does not fit the configured network ({str(exc).splitlines()[0]})"
        ) from exc
    model.to(device).eval()
    summary_path = d / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    return DensityEstimator(model, cfg, summary)
