"""The CaloChallenge HDF5 layout: the two dataset keys, and the root attributes.

A CaloChallenge file holds exactly two HDF5 datasets at its root, ``incident_energies``
(:data:`ENERGY_KEY`, shape ``(N, 1)``) and ``showers`` (:data:`SHOWER_KEY`, shape
``(N, n_voxels)``), both in MeV. Files written by physgen add provenance as root
*attributes* only, and one optional dataset: ``weights`` (:data:`WEIGHT_KEY`, shape ``(N,)``),
per-shower weights written by ``physgen generate --refiner`` (DCTR refinement); readers that
know only the two standard keys ignore it. :func:`encode_attr` stores a value (dicts and lists as JSON strings),
:func:`decode_attr` reads it back, and :func:`raw_attrs` gives them exactly as stored,
for copying them to another file.
"""

from __future__ import annotations

import json
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt

from physgen.errors import DataFormatError

__all__ = [
    "BATCH_BYTES",
    "ENERGY_KEY",
    "SHOWER_KEY",
    "WEIGHT_KEY",
    "check_weights",
    "decode_attr",
    "encode_attr",
    "raw_attrs",
]

ENERGY_KEY = "incident_energies"
SHOWER_KEY = "showers"
#: Optional per-shower weights ``(N,)`` (physgen's refined samples).
WEIGHT_KEY = "weights"
#: Target bytes of one streamed batch (reading, and :func:`~physgen.calo.io.write_showers`).
BATCH_BYTES = 64 << 20


def encode_attr(value: Any) -> Any:
    """HDF5-storable form of a provenance value (dicts/lists as JSON strings).

    Values read raw from another file (:func:`raw_attrs`: strings, bytes, NumPy scalars
    and numeric arrays) pass unchanged, so copying attributes keeps their HDF5 types.
    """
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    if value is None:
        return "null"
    if isinstance(value, (str, bytes, int, float, bool, np.integer, np.floating, np.bool_)):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufS":
        return value
    return str(value)


def raw_attrs(handle: h5py.File) -> dict[str, Any]:
    """Root attributes exactly as stored (no JSON decoding), for copying them to another file.

    Returns:
        Name -> value as h5py reads it: ``str``, ``bytes``, NumPy scalar or array.
    """
    return {str(k): v for k, v in handle.attrs.items()}


def decode_attr(value: Any) -> Any:
    """A root attribute as read back: text decoded, JSON objects and lists parsed, NumPy
    scalars and arrays as Python values (the reading side of :func:`encode_attr`)."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and value[:1] in "{[":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def check_weights(weights: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    """Per-shower weights as float64 ``(N,)``, refused (DataFormatError) when any is NaN, inf
    or negative, or all are 0: histograms, classifiers and distances need w >= 0."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(w)):
        raise DataFormatError(f"{name}: {int(np.sum(~np.isfinite(w)))} weights are NaN or inf")
    if np.any(w < 0):
        raise DataFormatError(
            f"{name}: {int(np.sum(w < 0))} negative weights; the evaluation needs w >= 0"
        )
    if w.size and not np.any(w > 0):
        raise DataFormatError(f"{name}: all weights are 0")
    return w
