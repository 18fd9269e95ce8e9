"""Typed training configs: presets, YAML files, overrides and the error contract."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from physgen.calo.config import (
    DataConfig,
    PreprocessConfig,
    TrainConfig,
    available_presets,
    load_config,
    load_preset,
)
from physgen.errors import ConfigError
from physgen.models.registry import get_model_class
from physgen.train.config import OptimConfig
from physgen.typed_config import from_mapping, to_mapping

MODELS = ("cfm", "flow", "gan", "vae", "diffusion")


def _write(tmp_path: Path, data: Any, name: str = "c.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


def _plain(value: Any) -> Any:
    """Tuples as lists, as YAML gives them."""
    return list(value) if isinstance(value, tuple) else value


def _split_preset(name: str) -> tuple[str, str, str]:
    """``MODEL-REST`` -> (model, geometry, preset argument)."""
    model, _, rest = name.partition("-")
    return model, ("1-photons" if rest == "tiny" else rest), rest


def test_presets_are_shipped() -> None:
    presets = available_presets()
    assert presets == tuple(sorted(presets))
    for model in MODELS:
        assert f"{model}-tiny" in presets
        assert f"{model}-1-photons" in presets


@pytest.mark.parametrize("name", available_presets())
def test_every_preset_resolves(name: str) -> None:
    model, geometry, rest = _split_preset(name)
    assert model in MODELS, name
    raw = load_preset(name)
    cfg = load_config(model, geometry, preset=rest)
    assert isinstance(cfg, TrainConfig)
    assert (cfg.model, cfg.geometry) == (model, geometry)
    # the preset's values arrived, the model config holds every field of the model's Config
    for key, value in raw.get("optim", {}).items():
        assert _plain(getattr(cfg.optim, key)) == value, key
    for key, value in raw.get("preprocess", {}).items():
        assert getattr(cfg.preprocess, key) == value, key
    model_fields = set(to_mapping(get_model_class(model).Config()))
    assert set(cfg.model_config) == model_fields
    for key, value in raw.get("model_config", {}).items():
        assert _plain(cfg.model_config[key]) == value, key
    # the full preset name works as well, and without a preset MODEL-GEOMETRY is picked
    assert load_config(model, geometry, preset=name) == cfg
    if rest != "tiny":
        assert load_config(model, geometry) == cfg


def test_no_preset_for_geometry_gives_defaults() -> None:
    cfg = load_config("cfm", "1-pions")
    assert cfg.optim == OptimConfig()
    assert cfg.preprocess == PreprocessConfig()
    assert cfg.data == DataConfig()


def test_unknown_preset_and_model() -> None:
    with pytest.raises(ConfigError, match="unknown preset 'huge'") as info:
        load_config("cfm", "1-photons", preset="huge")
    assert "cfm-tiny" in str(info.value)
    with pytest.raises(ConfigError, match="unknown model 'nosuch'"):
        load_config("nosuch", "1-photons")


@pytest.mark.parametrize(
    ("data", "needles"),
    [
        ({"optimizer": {"lr": 1}}, ["unknown key(s) optimizer", "known:", "optim"]),
        ({"optim": {"learning_rate": 1e-3}}, [".optim: unknown key(s) learning_rate"]),
        ({"data": {"shuffle": True}}, [".data: unknown key(s) shuffle"]),
        ({"preprocess": {"noise": 0.1}}, [".preprocess: unknown key(s) noise"]),
        ({"model_config": {"hiddenn": 4}}, ["model_config: unknown key(s) hiddenn"]),
    ],
)
def test_unknown_key_named(tmp_path: Path, data: dict[str, Any], needles: list[str]) -> None:
    # as overrides and in a file (then the message names the file)
    with pytest.raises(ConfigError) as info:
        load_config("cfm", "1-photons", overrides=data)
    for n in needles:
        assert n in str(info.value), (n, str(info.value))
    f = _write(tmp_path, data)
    with pytest.raises(ConfigError) as info:
        load_config("cfm", "1-photons", config_file=f)
    msg = str(info.value)
    assert msg.startswith(str(f))
    for n in needles:
        assert n in msg, (n, msg)


def test_unknown_model_config_key_per_model() -> None:
    # 'hidden' is a cfm option, not a flow one
    assert load_config("cfm", "1-photons", overrides={"model_config": {"hidden": 8}})
    with pytest.raises(ConfigError, match="hidden"):
        load_config("flow", "1-photons", overrides={"model_config": {"hidden": 8}})


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"optim": {"lr": "fast"}}, "optim.lr: expected a number, got 'fast'"),
        ({"optim": {"epochs": 1.5}}, "optim.epochs: expected an integer, got 1.5"),
        ({"optim": {"epochs": True}}, "optim.epochs: expected an integer"),
        ({"optim": {"amp": "yes"}}, "optim.amp: expected true/false"),
        ({"optim": {"betas": [0.9]}}, "optim.betas: expected 2 values, got 1"),
        ({"optim": {"betas": 0.9}}, "optim.betas: expected a list"),
        ({"optim": {"betas": [0.9, "x"]}}, "optim.betas[1]"),
        ({"optim": "fast"}, "optim: expected a mapping"),
        ({"seed": "0"}, "seed: expected an integer"),
        ({"preprocess": {"shape_steps": "logit"}}, "preprocess.shape_steps: expected a list"),
        ({"preprocess": {"shape_steps": ["logit", 3]}}, "preprocess.shape_steps[1]"),
        ({"preprocess": {"threshold_mev": "1MeV"}}, "preprocess.threshold_mev"),
        ({"model_config": [1, 2]}, "model_config: expected a mapping"),
        ({"model_config": {"two_stage": "yes"}}, "two_stage: expected true/false, got 'yes'"),
        ({"model_config": {"steps": 8.0}}, "steps: expected an integer"),
    ],
)
def test_wrong_type_named(tmp_path: Path, data: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config("cfm", "1-photons", config_file=_write(tmp_path, data))
    assert needle in str(info.value)


def test_flow_tuple_fields_typed() -> None:
    cfg = load_config("flow", "1-photons", overrides={"model_config": {"shape_hidden": [32, 16]}})
    assert list(cfg.model_config["shape_hidden"]) == [32, 16]
    with pytest.raises(ConfigError, match=r"shape_hidden\[1\]: expected an integer"):
        load_config("flow", "1-photons", overrides={"model_config": {"shape_hidden": [32, "a"]}})


def test_none_allowed_where_optional() -> None:
    cfg = load_config("cfm", "1-photons", overrides={"preprocess": {"threshold_mev": None}})
    assert cfg.preprocess.threshold_mev is None
    cfg = load_config("cfm", "1-photons", overrides={"preprocess": {"threshold_mev": 2}})
    assert cfg.preprocess.threshold_mev == 2.0 and isinstance(cfg.preprocess.threshold_mev, float)
    with pytest.raises(ConfigError, match=r"optim\.lr"):
        load_config("cfm", "1-photons", overrides={"optim": {"lr": None}})


@pytest.mark.parametrize(
    ("key", "value"),
    [("model", "flow"), ("geometry", "2")],
)
def test_file_contradicting_command(tmp_path: Path, key: str, value: str) -> None:
    f = _write(tmp_path, {key: value, "seed": 3})
    with pytest.raises(ConfigError) as info:
        load_config("cfm", "1-photons", config_file=f)
    msg = str(info.value)
    assert str(f) in msg and key in msg and repr(value) in msg
    # agreeing values are fine
    ok = _write(tmp_path, {"model": "cfm", "geometry": "1-photons", "seed": 3}, "ok.yaml")
    assert load_config("cfm", "1-photons", config_file=ok).seed == 3


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("optim: {lr: [1, 2\n", "invalid YAML"),
        ("a: b: c\n", "invalid YAML"),
        ("- 1\n- 2\n", "expected a mapping of options at the top, got list"),
        ("just a string\n", "got str"),
        ("42\n", "got int"),
    ],
)
def test_bad_yaml(tmp_path: Path, text: str, needle: str) -> None:
    f = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config("cfm", "1-photons", config_file=f)
    msg = str(info.value)
    assert str(f) in msg and needle in msg
    assert "\n" not in msg  # one line for the CLI


def test_empty_and_missing_file(tmp_path: Path) -> None:
    empty = _write(tmp_path, "# nothing\n")
    assert load_config("cfm", "1-photons", config_file=empty) == load_config("cfm", "1-photons")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config("cfm", "1-photons", config_file=tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"optim": {"lr": 0}}, "optim.lr must be > 0"),
        ({"optim": {"lr": -1e-3}}, "optim.lr must be > 0"),
        ({"optim": {"lr": float("nan")}}, "optim.lr must be > 0"),
        ({"optim": {"batch_size": 0}}, "optim.batch_size"),
        ({"optim": {"epochs": 0}}, "optim.epochs"),
        ({"optim": {"ema_decay": 1.0}}, "optim.ema_decay"),
        ({"optim": {"grad_clip": -1}}, "optim.grad_clip"),
        ({"optim": {"patience": -1}}, "optim.patience"),
        ({"optim": {"schedule": "linear"}}, "optim.schedule"),
        ({"data": {"validation_fraction": 1.5}}, "data.validation_fraction must be in (0, 1)"),
        ({"data": {"validation_fraction": 0}}, "data.validation_fraction"),
        ({"data": {"fit_samples": 5}}, "data.fit_samples"),
        ({"data": {"stream_block": 0}}, "data.stream_block"),
        ({"preprocess": {"mode": "voxels"}}, "preprocess.mode"),
        ({"preprocess": {"noise_mev": -1}}, "preprocess.noise_mev"),
        ({"seed": -1}, "seed must be in"),
    ],
)
def test_out_of_range(tmp_path: Path, data: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config("cfm", "1-photons", overrides=data)
    assert needle in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_config("flow", "1-photons", config_file=_write(tmp_path, data))
    assert needle in str(info.value)


def test_resolution_order(tmp_path: Path) -> None:
    preset = load_preset("cfm-tiny")
    assert preset["optim"]["lr"] == 0.002 and preset["optim"]["batch_size"] == 128
    f = _write(
        tmp_path,
        {
            "seed": 5,
            "optim": {"lr": 0.003, "batch_size": 64},
            "model_config": {"hidden": 96},
            "preprocess": {"noise_mev": 0.0},
        },
    )
    cfg = load_config(
        "cfm",
        "1-photons",
        preset="tiny",
        config_file=f,
        overrides={"optim": {"lr": 0.004}, "seed": 9},
    )
    assert cfg.optim.lr == 0.004  # override > file > preset
    assert cfg.seed == 9
    assert cfg.optim.batch_size == 64  # file > preset
    assert cfg.model_config["hidden"] == 96
    assert cfg.preprocess.noise_mev == 0.0
    assert cfg.optim.epochs == preset["optim"]["epochs"]  # preset > default
    assert cfg.optim.ema_decay == preset["optim"]["ema_decay"]
    assert cfg.model_config["blocks"] == preset["model_config"]["blocks"]  # deep merge
    assert cfg.optim.weight_decay == OptimConfig().weight_decay  # default
    assert cfg.data == DataConfig()
    # without overrides the file wins
    assert load_config("cfm", "1-photons", preset="tiny", config_file=f).optim.lr == 0.003


def test_round_trip_through_yaml(tmp_path: Path) -> None:
    cfg = load_config("flow", "1-photons", preset="tiny", overrides={"seed": 4})
    f = _write(tmp_path, yaml.safe_dump(to_mapping(cfg)))
    again = load_config("flow", "1-photons", config_file=f)
    assert again == cfg
    assert from_mapping(TrainConfig, yaml.safe_load(f.read_text())) == cfg


# ------------------------------------------------------------------ fuzz

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=8), inner, max_size=3),
    ),
    max_leaves=8,
)
_sections = {
    "preprocess": ["mode", "energy_steps", "shape_steps", "noise_mev", "threshold_mev"],
    "data": ["validation_fraction", "max_in_memory_gb", "fit_samples", "stream_block"],
    "optim": list(to_mapping(OptimConfig())),
}


def _section(keys: list[str]) -> st.SearchStrategy[Any]:
    return st.one_of(
        _values, st.dictionaries(st.sampled_from([*keys, "bogus"]), _values, max_size=4)
    )


_top = st.fixed_dictionaries(
    {},
    optional={
        "model": _values,
        "geometry": _values,
        "seed": _values,
        "model_config": _values,
        **{k: _section(v) for k, v in _sections.items()},
        "extra": _values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_top, _values))
def test_from_mapping_fuzz(data: Any) -> None:
    """Random input: a TrainConfig or a ConfigError, never another exception."""
    try:
        cfg = from_mapping(TrainConfig, data)
    except ConfigError as exc:
        assert str(exc)
        return
    assert isinstance(cfg, TrainConfig)
    assert isinstance(cfg.optim, OptimConfig) and isinstance(cfg.data, DataConfig)
    with contextlib.suppress(ConfigError):
        cfg.validate()


def test_huge_integer_for_float_is_config_error() -> None:
    with pytest.raises(ConfigError):
        from_mapping(TrainConfig, {"optim": {"lr": 10**400}})
