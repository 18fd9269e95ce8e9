"""Name -> model class registry."""

from __future__ import annotations

import dataclasses
import importlib
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from physgen.errors import ConfigError
from physgen.typed_config import from_mapping

__all__ = [
    "available_models",
    "build_model",
    "check_sampling_overrides",
    "get_model_class",
    "register",
]

_REGISTRY: dict[str, type[Any]] = {}
_BUILTIN_MODULES = (
    "physgen.models.cfm",
    "physgen.models.flow",
    "physgen.models.gan",
    "physgen.models.vae",
    "physgen.models.diffusion",
)

T = TypeVar("T")


def register(name: str) -> Callable[[type[T]], type[T]]:
    """Class decorator: make a :class:`~physgen.models.base.ShowerGenerator` available by name."""

    def deco(cls: type[T]) -> type[T]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} registered twice")
        _REGISTRY[name] = cls
        cls.name = name  # type: ignore[attr-defined]
        return cls

    return deco


def _load_builtins() -> None:
    for mod in _BUILTIN_MODULES:
        importlib.import_module(mod)


def available_models() -> tuple[str, ...]:
    """Registered model names, sorted."""
    _load_builtins()
    return tuple(sorted(_REGISTRY))


def get_model_class(name: str) -> type[Any]:
    """The class registered as ``name``.

    Raises:
        ConfigError: Unknown name (the message lists the known ones).
    """
    _load_builtins()
    if name not in _REGISTRY:
        raise ConfigError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def build_model(name: str, codec: Any, config: Mapping[str, Any] | Any = None) -> Any:
    """Build model ``name`` around a (fitted or unfitted) codec.

    Args:
        name: Registered model name.
        codec: The codec (a :class:`~physgen.core.codec.Codec`; its sizes fix the network sizes).
        config: The model's config dataclass, a mapping of its fields, or None for defaults.
    """
    cls = get_model_class(name)
    if config is None:
        cfg = cls.Config()
    elif dataclasses.is_dataclass(config) and not isinstance(config, type):
        cfg = config
    else:
        cfg = from_mapping(cls.Config, typing.cast("Mapping[str, Any]", config), f"model ({name})")
    return cls(codec, cfg)


def check_sampling_overrides(name: str, overrides: Mapping[str, Any]) -> None:
    """Check that ``overrides`` only touch sampling options of model ``name``.

    Sampling options (the class's ``sampling_options``: step counts, solvers...) may differ
    between training and generation; any other field would change the networks that the
    saved weights belong to.

    Raises:
        ConfigError: Naming the offending keys and the model's sampling options.
    """
    cls = get_model_class(name)
    allowed = tuple(cls.sampling_options)
    bad = sorted(k for k in overrides if k not in allowed)
    if bad:
        opts = ", ".join(allowed) if allowed else "none"
        raise ConfigError(
            f"{name}: {', '.join(bad)} cannot change after training; "
            f"sampling options of {name}: {opts}"
        )
    # the types of the values, checked now rather than when the model is loaded
    from_mapping(cls.Config, dict(overrides), f"{name} sampling option")
