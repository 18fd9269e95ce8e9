"""Typed configuration of calorimeter surrogate training: nested dataclasses loaded from YAML,
unknown keys are errors.

Resolution order (later wins): dataclass defaults < the preset for (model, geometry) in
``physgen/calo/configs`` < the user's ``--config`` file < command-line options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from physgen.errors import ConfigError
from physgen.train.config import OptimConfig
from physgen.typed_config import deep_merge, from_mapping, read_yaml, to_mapping

__all__ = [
    "DataConfig",
    "OptimConfig",
    "PreprocessConfig",
    "TrainConfig",
    "available_presets",
    "from_mapping",
    "load_config",
    "load_preset",
    "to_mapping",
]


@dataclass
class PreprocessConfig:
    """How showers become model variables (see :class:`physgen.calo.codec.ShowerCodec`).

    Attributes:
        mode: ``layers`` (layer energies + per-layer-normalised voxels) or ``incident``
            (voxels / (k E_inc)).
        energy_steps: Steps applied to the energy variables ``u``.
        shape_steps: Steps applied to the shape variables.
        noise_mev: Uniform dequantisation noise per voxel (MeV) in training.
        threshold_mev: Readout threshold re-applied to generated showers (MeV); None takes the
            geometry's official threshold (1 MeV dataset 1, 15.15 keV datasets 2/3).
        energy_conditional: ``layers`` mode: knots (in log incident energy) of a conditional
            standardisation of the energy variables, so that each has zero mean and unit width
            at every incident energy (0: off; see
            :class:`physgen.preprocess.ConditionalStandardize`).
    """

    mode: str = "layers"
    energy_steps: list[str] = field(default_factory=lambda: ["logit", "standardize"])
    shape_steps: list[str] = field(default_factory=lambda: ["logit", "standardize"])
    noise_mev: float = 1e-3
    threshold_mev: float | None = None
    energy_conditional: int = 0


AUGMENTATIONS = ("none", "rotate", "rotate+reflect")


@dataclass
class DataConfig:
    """Training data handling.

    Attributes:
        validation_fraction: Fraction of showers held out (split by the run seed).
        max_in_memory_gb: Larger training files are streamed from HDF5 block by block.
        fit_samples: Showers used to fit the preprocessing.
        stream_block: Rows per HDF5 read when streaming.
        augment: Training-batch augmentation by the azimuthal symmetries of the binning
            (:meth:`physgen.calo.geometry.Geometry.azimuthal_symmetries`): ``none``, ``rotate``
            (rotations by multiples of 2 pi / g) or ``rotate+reflect`` (also alpha -> -alpha).
            Each training shower gets a random element per step; validation showers are left
            as they are. Only valid when the showers are symmetric: normal incidence, no
            magnetic field (the cascade simulator's default); the trainer warns when the
            training data's energy per alpha bin is not flat.
    """

    validation_fraction: float = 0.1
    max_in_memory_gb: float = 4.0
    fit_samples: int = 50_000
    stream_block: int = 4096
    augment: str = "none"


@dataclass
class TrainConfig:
    """Everything that defines a training run; saved as ``config.yaml`` in the run directory.

    Attributes:
        model: Registered model name (``cfm``, ``flow``...).
        geometry: Geometry name of the training data.
        seed: Run seed: initial weights, split, batch order, noise.
        model_config: Options of the model (its ``Config`` dataclass fields).
        preprocess: Preprocessing options.
        data: Data options.
        optim: Optimisation options.
    """

    model: str = "cfm"
    geometry: str = "1-photons"
    seed: int = 0
    model_config: dict[str, Any] = field(default_factory=dict)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def validate(self) -> None:
        """Range checks that the type system cannot express.

        Raises:
            ConfigError: Naming the key and the allowed range.
        """
        o, d, p = self.optim, self.data, self.preprocess
        checks = [
            (o.lr > 0, "optim.lr must be > 0"),
            (o.batch_size >= 1, "optim.batch_size must be >= 1"),
            (o.epochs >= 1, "optim.epochs must be >= 1"),
            (0 <= o.ema_decay < 1, "optim.ema_decay must be in [0, 1)"),
            (o.grad_clip >= 0, "optim.grad_clip must be >= 0"),
            (o.patience >= 0, "optim.patience must be >= 0"),
            (o.min_delta >= 0, "optim.min_delta must be >= 0"),
            (
                o.schedule in ("cosine", "onecycle", "constant"),
                "optim.schedule must be cosine, onecycle or constant",
            ),
            (0 < d.validation_fraction < 1, "data.validation_fraction must be in (0, 1)"),
            (d.fit_samples >= 10, "data.fit_samples must be >= 10"),
            (d.stream_block >= 1, "data.stream_block must be >= 1"),
            (
                d.augment in AUGMENTATIONS,
                f"data.augment must be one of {', '.join(AUGMENTATIONS)}, got {d.augment!r}",
            ),
            (p.mode in ("layers", "incident"), "preprocess.mode must be 'layers' or 'incident'"),
            (p.noise_mev >= 0, "preprocess.noise_mev must be >= 0"),
            (
                p.energy_conditional == 0 or p.energy_conditional >= 2,
                "preprocess.energy_conditional must be 0 (off) or >= 2 knots",
            ),
            (0 <= self.seed < 2**63, "seed must be in [0, 2**63)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)


def available_presets() -> tuple[str, ...]:
    """Preset names shipped in ``physgen/calo/configs`` (``MODEL-GEOMETRY`` or ``MODEL-tiny``)."""
    root = resources.files("physgen.calo") / "configs"
    return tuple(sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml")))


def load_preset(name: str) -> dict[str, Any]:
    """The raw mapping of a shipped preset.

    Raises:
        ConfigError: Unknown preset (lists the available ones).
    """
    res = resources.files("physgen.calo") / "configs" / f"{name}.yaml"
    if not res.is_file():
        raise ConfigError(f"unknown preset {name!r}; available: {', '.join(available_presets())}")
    data = yaml.safe_load(res.read_text())
    return data or {}


def load_config(
    model: str,
    geometry: str,
    *,
    preset: str | None = None,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> TrainConfig:
    """Resolve a :class:`TrainConfig` (defaults < preset < file < overrides) and check it.

    Args:
        model: Model name.
        geometry: Geometry name.
        preset: Preset name (``tiny`` is short for ``MODEL-tiny``); None picks
            ``MODEL-GEOMETRY`` when it exists.
        config_file: User YAML (full or partial TrainConfig mapping).
        overrides: Final overrides (e.g. ``{"seed": 3}``).

    Raises:
        ConfigError: Unknown keys, wrong types, out-of-range values, a model or geometry in the
            file that contradicts the command line.
    """
    from physgen.models.registry import get_model_class

    cls = get_model_class(model)
    merged: dict[str, Any] = {}
    presets = available_presets()
    if preset is None:
        name = f"{model}-{geometry}"
    else:  # "tiny" means "cfm-tiny" for the cfm model
        name = f"{model}-{preset}" if f"{model}-{preset}" in presets else preset
    if preset is not None or name in presets:
        merged = deep_merge(merged, load_preset(name))
    if config_file is not None:
        user = read_yaml(config_file)
        for key, want in (("model", model), ("geometry", geometry)):
            if key in user and user[key] != want:
                raise ConfigError(
                    f"{config_file}: {key} is {user[key]!r} but the command asks for {want!r}"
                )
        merged = deep_merge(merged, user)
    merged = deep_merge(merged, dict(overrides or {}))
    merged["model"], merged["geometry"] = model, geometry
    where = str(config_file) if config_file is not None else "config"
    cfg = from_mapping(TrainConfig, merged, where)
    model_cfg = from_mapping(cls.Config, cfg.model_config, f"{where}: model_config")
    cfg.model_config = to_mapping(model_cfg)
    cfg.validate()
    return cfg
