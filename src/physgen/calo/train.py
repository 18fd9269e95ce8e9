"""Training calorimeter surrogates on CaloChallenge files or in-memory arrays: run-directory
setup, the shower codec, azimuthal augmentation and provenance around the one training loop
(:func:`physgen.train.loop.run_loop`)."""

from __future__ import annotations

import json
import logging
import math
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch

from physgen._version import __version__
from physgen.calo.config import TrainConfig
from physgen.calo.data import ShowerData, ShowerSource
from physgen.calo.geometry import Geometry, get_geometry
from physgen.calo.rundir import build_codec, config_yaml, read_run_config
from physgen.errors import ConfigError
from physgen.models.base import ShowerGenerator
from physgen.models.registry import build_model
from physgen.outputs import atomic_write_text
from physgen.train.distributed import DistInfo
from physgen.train.loop import _INIT, RunSettings, TrainResult, _seed_from, run_guarded, run_loop
from physgen.train.rundir import write_json, write_provenance

__all__ = ["TrainResult", "train"]

log = logging.getLogger(__name__)


def _prepare_dir(out: Path, resume: bool, cfg: TrainConfig | None) -> TrainConfig:
    if resume:
        saved = read_run_config(out)
        if not (out / "checkpoint.pt").is_file():
            raise ConfigError(f"{out}: nothing to resume (checkpoint.pt missing)")
        if cfg is not None and config_yaml(cfg) != config_yaml(saved):
            raise ConfigError(
                f"{out}: --resume with a different config than the run's config.yaml; "
                "resume without --config/--model options or start a new run directory"
            )
        return saved
    if cfg is None:
        raise ConfigError("train: a config is needed for a new run")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: is a file, expected a run directory to create")
    if out.is_dir() and any(out.iterdir()):
        hint = (
            "continue it with --resume, or choose a new --out"
            if (out / "checkpoint.pt").is_file()
            else "choose a new --out or an empty folder"
        )
        raise ConfigError(f"--out {out}: folder exists and is not empty; {hint}")
    return cfg


def _saved_data(out: Path) -> str | dict[str, Any] | None:
    """The ``data`` entry of a run's ``provenance.json`` (None: no readable record)."""
    try:
        saved = json.loads((out / "provenance.json").read_text()).get("data")
    except (OSError, ValueError, AttributeError):
        return None
    return saved if isinstance(saved, (str, dict)) else None


def _shapes(record: dict[str, Any]) -> str:
    """``incident_energies (N, 1), showers (N, V)`` of an arrays record."""
    return ", ".join(
        f"{key} {tuple(record.get(key, {}).get('shape', ()))}"
        for key in ("incident_energies", "showers")
    )


def _check_resume_source(out: Path, data: ShowerSource | None) -> str | dict[str, Any] | None:
    """Refuse to resume on data of another kind than the run's; returns the saved record.

    Raises:
        ConfigError: No data given, or arrays for a file-trained run, or a file for an
            array-trained run.
    """
    saved = _saved_data(out)
    is_file = isinstance(data, (str, Path))
    if isinstance(saved, dict):
        if data is None or is_file:
            got = "no data" if data is None else f"the file {data}"
            raise ConfigError(
                f"{out}: the run was trained on in-memory arrays ({_shapes(saved)}, SHA-256 "
                f"{saved.get('sha256')}), "
                f"got {got}; pass the same (incident_energies, showers) arrays as data to "
                "resume it"
            )
    elif data is None:
        where = f" ({saved})" if saved is not None else ""
        raise ConfigError(f"{out}: pass the run's training file as data to resume it{where}")
    elif saved is not None and not is_file:
        raise ConfigError(
            f"{out}: the run was trained on the file {saved}, not on in-memory arrays; "
            "resume it with that file"
        )
    return saved


def train(
    config: TrainConfig | None,
    data: ShowerSource | None,
    out: str | Path,
    *,
    resume: bool = False,
    max_time_s: float | None = None,
    device: str | None = None,
    progress: bool | None = None,
    stop_after_steps: int | None = None,
    log_every: int = 50,
) -> TrainResult:
    """Train a surrogate on a CaloChallenge file or on in-memory arrays; write a run directory.

    Args:
        config: The resolved config (None with ``resume``: the run's own is used).
        data: Training file, or arrays ``(incident_energies (N,) or (N, 1) MeV, showers
            (N, V) MeV)`` (numpy or torch), checked against ``config.geometry`` and for
            NaN/inf, negative voxels and non-positive energies. Arrays stay in memory (never
            streamed) and give the same split, batches and weights as a file holding the same
            rows read into memory; ``provenance.json`` then records their shapes, dtypes and
            SHA-256 (see :func:`physgen.calo.data.shower_arrays`) instead of a path.
        out: Run directory (created; must be new or empty unless ``resume``).
        resume: Continue from ``out/checkpoint.pt``: same batches, noise and schedule, so the
            final weights equal those of an uninterrupted run. Needs the same data again: the
            file, or for a run trained on arrays the same arrays (same SHA-256).
        max_time_s: Stop cleanly (checkpoint written) after this much wall time.
            SIGTERM (a batch system's pre-emption or wall-time warning) and SIGINT (Ctrl-C)
            stop the same way after the current step, with status ``interrupted``; a second
            signal aborts at once.
        device: ``cpu``, ``cuda``... (None: CUDA when available).
        progress: Show a tqdm bar (None: only on a terminal).
        stop_after_steps: Stop (with a checkpoint) once this many total steps are done.
        log_every: Steps between metric lines.

    Returns:
        A :class:`TrainResult`.

    Raises:
        ConfigError: Bad run directory, config mismatch on resume, no data, or on resume
            data other than the run's (arrays for a file-trained run, a file or other arrays
            for an array-trained one).
        DataFormatError: Data not matching the geometry, or bad values.
    """

    t_start = time.monotonic()
    return run_guarded(
        Path(out),
        resume,
        device,
        lambda dist_info: _train(
            config,
            data,
            Path(out),
            dist_info,
            resume=resume,
            max_time_s=max_time_s,
            progress=progress,
            stop_after_steps=stop_after_steps,
            log_every=log_every,
            t_start=t_start,
        ),
    )


def _symmetry_permutations(geo: Geometry, augment: str, sample_x: np.ndarray) -> np.ndarray | None:
    """The ``(G, V)`` voxel permutations of ``data.augment`` (None: no augmentation).

    Warns when the sample's mean fraction of a layer's energy per alpha bin is not flat
    (beyond 5 standard errors plus 1 %): then the showers are not azimuthally symmetric and
    augmenting biases the model.
    """
    if augment == "none":
        return None
    perms: np.ndarray = geo.azimuthal_symmetries(reflect=augment == "rotate+reflect")
    if len(perms) == 1:
        log.warning("data.augment=%s: no layer resolves alpha; nothing to augment", augment)
        return None
    n = sample_x.shape[0]
    for layer in geo.relevant_layers:
        if layer.n_alpha == 1:
            continue
        per_alpha = np.asarray(sample_x[:, geo.layer_slice(layer.id)], dtype=np.float64)
        per_alpha = per_alpha.reshape(n, layer.n_alpha, layer.n_radial).sum(2)
        total = per_alpha.sum(1)
        frac = per_alpha[total > 0] / total[total > 0, None] * layer.n_alpha  # 1 when flat
        if len(frac) < 2:
            continue
        dev = np.abs(frac.mean(0) - 1.0)
        err = frac.std(0) / math.sqrt(len(frac))
        if bool((dev > 5.0 * err + 0.01).any()):
            log.warning(
                "data.augment=%s: layer %d's energy fraction per alpha bin varies by up to %.1f %% "
                "(statistical error %.1f %%): the showers look azimuthally asymmetric, and "
                "augmenting will bias the model",
                augment,
                layer.id,
                100 * float(dev.max()),
                100 * float(err.max()),
            )
    return perms


def _augment(x: np.ndarray, perms: np.ndarray, generator: torch.Generator) -> np.ndarray:
    """Each row of ``x`` (N, V) under a random element of ``perms`` (G, V)."""
    k = torch.randint(len(perms), (x.shape[0],), generator=generator).numpy()
    out: np.ndarray = np.take_along_axis(x, perms[k], axis=1)
    return out


def _train(
    config: TrainConfig | None,
    data: ShowerSource | None,
    out: Path,
    dist_info: DistInfo,
    *,
    resume: bool,
    max_time_s: float | None,
    progress: bool | None,
    stop_after_steps: int | None,
    log_every: int,
    t_start: float,
) -> TrainResult:

    dev = dist_info.device
    cfg = _prepare_dir(out, resume, config)
    saved = _check_resume_source(out, data) if resume else None
    if data is None:
        raise ConfigError(
            "train: data is needed: a CaloChallenge file or (incident_energies, showers) arrays"
        )
    geo = get_geometry(cfg.geometry)
    shower_data = ShowerData(data, geo, cfg.data, cfg.seed)
    if isinstance(saved, dict) and isinstance(shower_data.provenance, dict):
        given = shower_data.provenance
        if given["sha256"] != saved.get("sha256"):
            raise ConfigError(
                f"{out}: SHA-256 mismatch: the arrays passed to resume ({_shapes(given)}) hash "
                f"to {given['sha256']}, the run was trained on arrays ({_shapes(saved)}) that "
                f"hash to {saved.get('sha256')}; pass the same arrays, or start a new run "
                "directory"
            )
    o = cfg.optim
    if dist_info.world > 1 and o.batch_size < dist_info.world:
        raise ConfigError(
            f"optim.batch_size {o.batch_size} < number of processes {dist_info.world}"
        )

    # ---- model and preprocessing (seeded; identical on every rank)
    torch.manual_seed(_seed_from(cfg.seed, _INIT))
    codec = build_codec(cfg)
    fit_e, fit_x = shower_data.fit_sample()
    perms = _symmetry_permutations(geo, cfg.data.augment, fit_x)
    codec.fit(
        torch.from_numpy(fit_x), torch.from_numpy(fit_e), torch.Generator().manual_seed(cfg.seed)
    )
    model: ShowerGenerator = build_model(cfg.model, codec, cfg.model_config).to(dev)
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)

    def write_run_files() -> None:
        if not resume:
            atomic_write_text(out / "config.yaml", config_yaml(cfg))
        write_json(out / "transforms.json", codec.summary())
        prov = {
            "physgen_version": __version__,
            "torch_version": torch.__version__,
            "python": platform.python_version(),
            "host": platform.node(),
            "data": shower_data.provenance,
            "n_showers": shower_data.n_showers,
            "n_train": shower_data.n_train,
            "n_validation": shower_data.n_validation,
            "streaming": shower_data.streaming,
            "incident_energy_range_mev": list(shower_data.energy_range_mev),
            "geometry": cfg.geometry,
            "seed": cfg.seed,
            "world_size": dist_info.world,
            "device": str(dev),
            "n_parameters": n_params,
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        write_provenance(out, prov, resume, dist_info.world, dev)

    return run_loop(
        model,
        shower_data,
        RunSettings(cfg.model, cfg.seed, o),
        out,
        dist_info,
        resume=resume,
        max_time_s=max_time_s,
        progress=progress,
        stop_after_steps=stop_after_steps,
        log_every=log_every,
        t_start=t_start,
        write_run_files=write_run_files,
        augment=None if perms is None else lambda x, g: _augment(x, perms, g),
    )
