"""The run directory: config, transforms, weights, checkpoints, metrics, provenance.

Layout::

    RUN/config.yaml        the resolved TrainConfig
    RUN/provenance.json    physgen/torch versions, data file, seed, devices, start time
    RUN/transforms.json    fitted preprocessing constants (also inside the weights)
    RUN/weights.pt         EMA weights of the best validation loss (generation uses these)
    RUN/checkpoint.pt      full training state of the last checkpoint (for --resume)
    RUN/metrics.jsonl      one JSON object per logged step / validation
    RUN/summary.json       how the run ended

Everything loads with ``torch.load(weights_only=True)`` and ``yaml.safe_load``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml

from physgen.calo.codec import ShowerCodec
from physgen.calo.geometry import get_geometry
from physgen.errors import ConfigError
from physgen.models.base import ShowerGenerator
from physgen.models.registry import build_model, check_sampling_overrides
from physgen.outputs import atomic_path, atomic_write_text
from physgen.train.config import TrainConfig, from_mapping, to_mapping

__all__ = [
    "REQUIRED_FILES",
    "build_codec",
    "load_run",
    "read_run_config",
    "save_torch",
]

REQUIRED_FILES = ("config.yaml", "transforms.json", "weights.pt")


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` atomically (see :func:`physgen.outputs.atomic_path`)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def build_codec(config: TrainConfig) -> ShowerCodec:
    """An unfitted codec for the config's geometry and preprocessing."""
    geo = get_geometry(config.geometry)
    p = config.preprocess
    return ShowerCodec(
        [layer.n_voxels for layer in geo.relevant_layers],
        mode=p.mode,  # type: ignore[arg-type]
        energy_steps=p.energy_steps,
        shape_steps=p.shape_steps,
        noise_mev=p.noise_mev,
        threshold_mev=geo.threshold_mev if p.threshold_mev is None else p.threshold_mev,
        energy_conditional=p.energy_conditional,
    )


def read_config_mapping(run_dir: Path) -> dict[str, Any]:
    """The mapping in ``run_dir/config.yaml`` of any physgen run directory.

    Raises:
        ConfigError: Not a directory, ``config.yaml`` missing, unreadable or not a mapping.
    """
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: no such run directory")
    p = run_dir / "config.yaml"
    if not p.is_file():
        raise ConfigError(f"{run_dir}: not a physgen run directory (config.yaml missing)")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        first = " ".join(str(exc).split())[:160]
        raise ConfigError(f"{p}: not a valid physgen config ({first})") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read ({exc})") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def read_run_config(run_dir: str | Path) -> TrainConfig:
    """The :class:`TrainConfig` saved in a run directory.

    Raises:
        ConfigError: Not a directory, or ``config.yaml`` missing or invalid.
    """
    d = Path(run_dir)
    data = read_config_mapping(d)
    p = d / "config.yaml"
    if data.get("kind") == "physgen-density":
        raise ConfigError(
            f"{d}: a density run (physgen fit), not a calorimeter surrogate; sample it with "
            "`physgen sample` or physgen.density.load"
        )
    cfg = from_mapping(TrainConfig, data, str(p))
    cfg.validate()
    return cfg


def load_weights_file(path: Path, model_name: str) -> dict[str, Any]:
    """Load a weights/checkpoint file and check it belongs to ``model_name``.

    Raises:
        ConfigError: Unreadable file, or a file written by another model.
    """
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        raise ConfigError(
            f"{path}: cannot load as physgen weights ({type(exc).__name__}: {first[:200]})"
        ) from exc
    if not isinstance(obj, dict) or "model" not in obj:
        raise ConfigError(f"{path}: not a physgen weights file")
    if obj["model"] != model_name:
        raise ConfigError(
            f"{path}: written by model {obj['model']!r}, but the run config says {model_name!r}"
        )
    return obj


def load_run(
    run_dir: str | Path,
    device: str | torch.device = "cpu",
    *,
    overrides: dict[str, Any] | None = None,
) -> ShowerGenerator:
    """Load a trained model (best EMA weights) from a run directory, in eval mode.

    Args:
        run_dir: The run directory written by :func:`physgen.train.train`.
        device: Where to put the model.
        overrides: Sampling options of the model (its class's ``sampling_options``), e.g.
            ``{"steps": 8, "solver": "euler"}`` for ``cfm``.

    Raises:
        ConfigError: Missing files (listed), weights from another model, weights that do
            not fit the configured network, or overrides that are not sampling options.
    """
    d = Path(run_dir)
    cfg = read_run_config(d)
    missing = [f for f in REQUIRED_FILES if not (d / f).is_file()]
    if missing:
        raise ConfigError(f"{d}: incomplete run directory, missing {', '.join(missing)}")
    obj = load_weights_file(d / "weights.pt", cfg.model)
    model_cfg = dict(cfg.model_config)
    if overrides:
        check_sampling_overrides(cfg.model, overrides)
        model_cfg.update(overrides)
    model = build_model(cfg.model, build_codec(cfg), model_cfg)
    try:
        model.load_state_dict(obj["state_dict"])
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ConfigError(
            f"{d / 'weights.pt'}: does not fit the configured network ({first})"
        ) from exc
    model.to(device).eval()
    return model  # type: ignore[no-any-return]


def config_yaml(cfg: TrainConfig) -> str:
    """YAML text of a config."""
    return yaml.safe_dump(to_mapping(cfg), sort_keys=False)


def write_json(path: Path, obj: Any) -> None:
    """Atomic pretty JSON."""
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def write_provenance(
    out: Path, prov: dict[str, Any], resume: bool, world_size: int, device: Any
) -> None:
    """Write ``provenance.json``; on resume keep the first session's record and append the
    start time of this one to its ``resumed`` list."""
    path = out / "provenance.json"
    if resume and path.is_file():
        old = json.loads(path.read_text())
        old.setdefault("resumed", []).append(prov["started"])
        prov = {**old, "world_size": world_size, "device": str(device)}
    write_json(path, prov)
