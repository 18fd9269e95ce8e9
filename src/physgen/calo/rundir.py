"""The calorimeter run directory: config, transforms, weights, checkpoints, metrics, provenance.

Layout::

    RUN/config.yaml        the resolved TrainConfig
    RUN/provenance.json    physgen/torch versions, data (file path, or in-memory arrays
                           with shapes, dtypes and SHA-256), seed, devices, start time
    RUN/transforms.json    fitted preprocessing constants (also inside the weights)
    RUN/weights.pt         EMA weights of the best validation loss (generation uses these)
    RUN/checkpoint.pt      full training state of the last checkpoint (for --resume)
    RUN/metrics.jsonl      one JSON object per logged step / validation
    RUN/summary.json       how the run ended

Everything loads with ``torch.load(weights_only=True)`` and ``yaml.safe_load``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import yaml

from physgen.calo.codec import ShowerCodec
from physgen.calo.config import TrainConfig, from_mapping, to_mapping
from physgen.calo.geometry import get_geometry
from physgen.errors import ConfigError
from physgen.models.base import ShowerGenerator
from physgen.models.registry import build_model, check_sampling_overrides
from physgen.train.rundir import load_weights_file, read_config_mapping

__all__ = [
    "REQUIRED_FILES",
    "build_codec",
    "config_yaml",
    "load_run",
    "read_run_config",
    "sampling_overrides",
]

REQUIRED_FILES = ("config.yaml", "transforms.json", "weights.pt")


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


def load_run(
    run_dir: str | Path,
    device: str | torch.device = "cpu",
    *,
    overrides: dict[str, Any] | None = None,
) -> ShowerGenerator:
    """Load a trained model (best EMA weights) from a run directory, in eval mode.

    Args:
        run_dir: The run directory written by :func:`physgen.calo.train.train`.
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


def sampling_overrides(family: str, steps: int | None, solver: str | None) -> dict[str, Any]:
    """The sampling options of :func:`load_run` that ``--steps`` and ``--solver`` ask for.

    Args:
        family: The run's model family.
        steps: cfm ODE steps or diffusion sampler steps (None: the run's).
        solver: cfm ODE solver or diffusion sampler (None: the run's).

    Raises:
        ConfigError: The family has no such option.
    """
    out: dict[str, Any] = {}
    if steps is not None:
        if family not in ("cfm", "diffusion"):
            raise ConfigError(f"--steps applies to cfm and diffusion runs; this run is {family!r}")
        out["steps"] = steps
    if solver is not None:
        key = {"cfm": "solver", "diffusion": "sampler"}.get(family)
        if key is None:
            raise ConfigError(f"--solver applies to cfm and diffusion runs; this run is {family!r}")
        out[key] = solver
    return out


def config_yaml(cfg: TrainConfig) -> str:
    """YAML text of a config."""
    return yaml.safe_dump(to_mapping(cfg), sort_keys=False)
