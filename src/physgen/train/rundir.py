"""Run-directory helpers shared by every training run: atomic torch/JSON writes, the config
mapping, weights files of a named model, provenance.

Every run directory holds ``config.yaml`` (with a ``kind`` for density runs), ``weights.pt``
(the best EMA weights, tagged with the model name), ``checkpoint.pt``, ``metrics.jsonl``,
``provenance.json`` and ``summary.json``; the calorimeter layout is described in
:mod:`physgen.calo.rundir`, the density one in :mod:`physgen.density`.

Everything loads with ``torch.load(weights_only=True)`` and ``yaml.safe_load``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
import yaml

from physgen.errors import ConfigError
from physgen.outputs import atomic_path, atomic_write_text

__all__ = [
    "load_weights_file",
    "read_config_mapping",
    "save_torch",
    "write_json",
    "write_provenance",
]


def save_torch(obj: Any, path: Path) -> None:
    """``torch.save`` atomically (see :func:`physgen.outputs.atomic_path`)."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


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
