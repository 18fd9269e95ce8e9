"""The inputs of the CaloChallenge classifier modes, built from showers batch by batch.

``cls-low`` = ``[log10 E_inc, voxel / E_inc]``; ``cls-low-normed`` = ``[log10 E_inc, voxel /
(E_layer + 1e-16), log10(E_layer + 1e-8)]``; ``cls-high`` = the official high-level feature
vector; ``cls-resnet`` takes the ``cls-low`` inputs. Voxels below the geometry's threshold are
zeroed first, as the official evaluator does (see :mod:`physgen.calo.evaluate.classifier`).
Used by the classifier test and by DCTR refiners (:mod:`physgen.calo.refine`).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from physgen.calo.geometry import Geometry, get_geometry
from physgen.errors import ConfigError

__all__ = [
    "MODES",
    "check_mode",
    "classifier_inputs",
    "high_level_inputs",
    "input_dim",
    "low_level_inputs",
    "low_level_normed_inputs",
]

MODES = ("cls-low", "cls-low-normed", "cls-high", "cls-resnet")
F32 = npt.NDArray[np.float32]


def _threshold(showers: npt.ArrayLike, geometry: Geometry) -> npt.NDArray[np.float64]:
    from physgen.calo.evaluate.features import apply_threshold

    return apply_threshold(showers, geometry)


def _energies(incident_energies: npt.ArrayLike) -> npt.NDArray[np.float64]:
    return np.asarray(incident_energies, dtype=np.float64).reshape(-1, 1)


def low_level_inputs(
    incident_energies: npt.ArrayLike, showers: npt.ArrayLike, geometry: str | Geometry
) -> F32:
    """``[log10 E_inc, voxel / E_inc]`` after the threshold cut; ``(N, 1 + n_voxels)`` float32."""
    geo = get_geometry(geometry)
    e = _energies(incident_energies)
    x = _threshold(showers, geo)
    return np.concatenate([np.log10(e), x / e], axis=1).astype(np.float32)


def low_level_normed_inputs(
    incident_energies: npt.ArrayLike, showers: npt.ArrayLike, geometry: str | Geometry
) -> F32:
    """``[log10 E_inc, voxel / (E_layer + 1e-16), log10(E_layer + 1e-8)]``.

    Voxels are thresholded first (the official evaluator zeroes them in both files
    before any mode). Shape ``(N, 1 + n_voxels + n_layers)``, float32.
    """
    geo = get_geometry(geometry)
    e = _energies(incident_energies)
    x = _threshold(showers, geo)
    slices = list(geo.layer_slices().values())
    e_layer = np.stack([x[:, sl].sum(axis=1) for sl in slices], axis=1)
    normed = np.empty_like(x)
    for i, sl in enumerate(slices):
        normed[:, sl] = x[:, sl] / (e_layer[:, i : i + 1] + 1e-16)
    return np.concatenate([np.log10(e), normed, np.log10(e_layer + 1e-8)], axis=1).astype(
        np.float32
    )


def high_level_inputs(
    incident_energies: npt.ArrayLike, showers: npt.ArrayLike, geometry: str | Geometry
) -> F32:
    """The official high-level feature vector (30 / 46 / 362 columns), float32."""
    from physgen.calo.evaluate.features import high_level_feature_vector

    geo = get_geometry(geometry)
    return high_level_feature_vector(_energies(incident_energies), showers, geo).astype(np.float32)


def classifier_inputs(
    mode: str, incident_energies: npt.ArrayLike, showers: npt.ArrayLike, geometry: str | Geometry
) -> F32:
    """Inputs of classifier ``mode`` (one of :data:`MODES`) for one batch."""
    check_mode(mode)
    if mode in ("cls-low", "cls-resnet"):
        return low_level_inputs(incident_energies, showers, geometry)
    if mode == "cls-low-normed":
        return low_level_normed_inputs(incident_energies, showers, geometry)
    return high_level_inputs(incident_energies, showers, geometry)


def input_dim(mode: str, geometry: str | Geometry) -> int:
    """Number of input columns of ``mode`` for this geometry."""
    check_mode(mode)
    geo = get_geometry(geometry)
    if mode in ("cls-low", "cls-resnet"):
        return 1 + geo.n_voxels
    if mode == "cls-low-normed":
        return 1 + geo.n_voxels + geo.n_layers
    probe = high_level_inputs(np.full((1, 1), 1e3), np.zeros((1, geo.n_voxels)), geo)
    return int(probe.shape[1])


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"--mode: unknown classifier mode {mode!r}; choose from {list(MODES)}")
