"""physgen: deep generative surrogates for physics simulations, and their honest evaluation.

The package is pleasant to import: nothing heavy (torch, numba, matplotlib) is
imported at import time, nothing is printed and no global state is changed.

Example:
    >>> import physgen
    >>> geo = physgen.get_geometry("2")
    >>> geo.n_voxels
    6480
"""

from __future__ import annotations

import importlib
from typing import Any

from physgen._version import __version__
from physgen.calo.geometry import Geometry, Layer, available_geometries, get_geometry, load_xml
from physgen.errors import (
    ConfigError,
    DataFormatError,
    GeometryError,
    PhysgenError,
    SimulationError,
)

__all__ = [
    "ConfigError",
    "DataFormatError",
    "Geometry",
    "GeometryError",
    "Layer",
    "PhysgenError",
    "SimulationError",
    "__version__",
    "available_geometries",
    "density",
    "get_geometry",
    "load_xml",
    "sbi",
]

_LAZY = ("density", "sbi")


def __getattr__(name: str) -> Any:
    """``physgen.density`` and ``physgen.sbi`` import torch: load them on first use."""
    if name in _LAZY:
        return importlib.import_module(f"physgen.{name}")
    raise AttributeError(f"module 'physgen' has no attribute {name!r}")
