"""ONNX export of a trained calorimeter surrogate: the whole sampler as one graph.

A physgen model is a pure map ``showers = decode(z, incident_energy)`` from standard-normal
noise to showers (:mod:`physgen.core.generator`). :func:`export_onnx` traces that map -- the
networks, fixed-step ODE or diffusion samplers unrolled for the chosen number of steps, the
inverse preprocessing, the layer renormalisation and the readout threshold -- into one ONNX
graph with a dynamic batch dimension::

    inputs   z                float32 [N, latent]   standard normal, see ``physgen.latent``
             incident_energy  float32 [N, 1]        MeV
    output   showers          float32 [N, V]        MeV, voxels below threshold are 0

so that a C++ framework (ONNX Runtime in Athena, CMSSW, Gaudi) samples showers without
Python. The graph carries its contract as metadata (``physgen.*`` keys, JSON values): the
geometry, units, family, sampling options, the physgen version, the SHA-256 of the run's
``config.yaml``, the latent width and the order of its normal draws, and the figures of the
export check. :class:`OnnxShowerModel` runs such a file in ONNX Runtime behind the same
``model(E).sample(generator=g)`` call as the torch model, drawing the same noise, so
``physgen generate --backend onnxruntime`` reproduces the torch showers to float32 round-off.

The export uses torch's TorchScript-based exporter (``dynamo=False``): it unrolls the Python
loops of the samplers and handles zuko's flows, which ``torch.export`` does not trace.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from physgen._optional import require
from physgen._version import __version__
from physgen.checks import check_seed
from physgen.errors import ConfigError, PhysgenError
from physgen.outputs import atomic_path, check_output

__all__ = [
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "RTOL",
    "ExportCheck",
    "ExportError",
    "compare_showers",
    "export_onnx",
]

log = logging.getLogger(__name__)

#: Oldest opset accepted: the transformer networks need ``LayerNormalization`` (opset 17).
MIN_OPSET = 17
DEFAULT_OPSET = 17
#: Largest relative difference between ONNX Runtime and torch allowed on showers above
#: threshold by the export check.
RTOL = 1e-4
INPUTS = ("z", "incident_energy")
OUTPUT = "showers"


class ExportError(PhysgenError):
    """The exported graph does not reproduce the torch model (the file is not written)."""


@dataclasses.dataclass(frozen=True)
class ExportCheck:
    """ONNX Runtime against torch on the same noise and incident energies.

    Attributes:
        n_showers: Showers compared.
        max_rel_diff: Largest ``|onnx - torch| / torch`` over voxels above threshold in both.
        n_voxels_compared: Voxels above threshold in both.
        pattern_mismatches: Voxels above threshold in one backend only, not counting those
            within ``RTOL`` of the threshold (a round-off difference can put them either side).
        borderline: Voxels above threshold in one backend only that lie within ``RTOL`` of it.
        passed: ``max_rel_diff <= RTOL`` and no pattern mismatch.
    """

    n_showers: int
    max_rel_diff: float
    n_voxels_compared: int
    pattern_mismatches: int
    borderline: int
    passed: bool

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ShowerSampler(nn.Module):
    """``(z, incident_energy) -> showers``: a model's ``decode`` without the input checks
    (which branch on values and cannot be traced), the module that is exported."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(self, z: Tensor, incident_energy: Tensor) -> Tensor:
        m = self.model
        first, second = m.decode_encoded(z, m.codec.condition(incident_energy))
        out: Tensor = m.codec.decode(first, second, incident_energy)
        return out


def check_exportable(family: str, model_config: dict[str, Any], where: str) -> None:
    """Raise :class:`ConfigError` for sampling set-ups that have no fixed graph."""
    if family == "cfm" and model_config.get("solver") == "adaptive":
        raise ConfigError(
            f"{where}: a cfm run with the adaptive ODE solver cannot be exported (its number "
            "of steps depends on the data); choose a fixed-step solver, e.g. --solver rk4 "
            "--steps 16"
        )
    if family == "flow" and model_config.get("shape_passes") == 0:
        raise ConfigError(
            f"{where}: a fully autoregressive flow (shape_passes 0, MAF) cannot be exported: "
            "sampling takes one network pass per voxel, which the graph would unroll "
            "hundreds to thousands of times; train with shape_passes 2 (coupling) to export"
        )


def check_opset(opset: int) -> int:
    """The opset, or :class:`ConfigError` when it is older than :data:`MIN_OPSET`."""
    if not isinstance(opset, int) or opset < MIN_OPSET:
        raise ConfigError(
            f"--opset {opset}: too old; physgen's graphs need opset >= {MIN_OPSET} "
            "(LayerNormalization)"
        )
    return opset


def _config_sha256(run_dir: Path) -> str:
    return hashlib.sha256((run_dir / "config.yaml").read_bytes()).hexdigest()


def check_energies(model: Any, n: int, seed: int) -> Tensor:
    """``(n, 1)`` incident energies, log-uniform over the model's training range (MeV)."""
    lo, hi = model.codec.training_range_mev
    g = torch.Generator().manual_seed(seed)
    u = torch.rand((n, 1), generator=g, dtype=torch.float64)
    return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo))).float()


def compare_showers(
    onnx: npt.NDArray[np.float32], ref: npt.NDArray[np.float32], threshold_mev: float
) -> ExportCheck:
    """Compare two batches of showers ``(N, V)`` MeV voxel by voxel (see :class:`ExportCheck`)."""
    a = np.asarray(onnx, dtype=np.float64)
    b = np.asarray(ref, dtype=np.float64)
    if a.shape != b.shape:
        raise ExportError(f"ONNX showers have shape {a.shape}, torch showers {b.shape}")
    both = (a > 0) & (b > 0)
    rel = np.abs(a - b)[both] / b[both]
    max_rel = float(rel.max()) if rel.size else 0.0
    one = (a > 0) != (b > 0)
    near = np.maximum(a, b)[one] <= threshold_mev * (1 + RTOL)
    mism = int(np.count_nonzero(~near))
    finite = bool(np.all(np.isfinite(a)))
    return ExportCheck(
        n_showers=int(a.shape[0]),
        max_rel_diff=max_rel if finite else math.inf,
        n_voxels_compared=int(both.sum()),
        pattern_mismatches=mism,
        borderline=int(np.count_nonzero(near)),
        passed=finite and max_rel <= RTOL and mism == 0,
    )


def _torch_export(module: nn.Module, args: tuple[Tensor, Tensor], path: Path, opset: int) -> None:
    kwargs: dict[str, Any] = {
        "input_names": list(INPUTS),
        "output_names": [OUTPUT],
        "dynamic_axes": {"z": {0: "N"}, "incident_energy": {0: "N"}, OUTPUT: {0: "N"}},
        "opset_version": opset,
    }
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript exporter (see the module docstring)
    # traced with gradients enabled: under no_grad, nn.MultiheadAttention (the transformer
    # networks) takes its fused inference kernel, which has no ONNX translation
    with warnings.catch_warnings(), torch.enable_grad():
        # tracer warnings about Python loops and constants: the unrolled loops are the point
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(module, args, str(path), **kwargs)
        except Exception as exc:  # the exporter raises many types; one line for the user
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ExportError(f"torch.onnx.export failed at opset {opset}: {first}") from exc


def export_onnx(
    run_dir: str | Path,
    out: str | Path,
    *,
    steps: int | None = None,
    solver: str | None = None,
    opset: int = DEFAULT_OPSET,
    check: bool = True,
    check_n: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Export a run directory's model (best EMA weights) as one ONNX graph.

    Args:
        run_dir: A calorimeter run directory (``physgen train``).
        out: The ``.onnx`` file to write (atomically; its folder must exist).
        steps: Sampling steps to unroll (cfm ODE steps, diffusion sampler steps); default:
            the run's.
        solver: cfm ODE solver (``euler``, ``midpoint``, ``rk4``) or diffusion sampler
            (``ddim``, ``dpm++2m``, ``ddpm``); default: the run's.
        opset: ONNX opset (>= :data:`MIN_OPSET`).
        check: Run the graph in ONNX Runtime against the torch model on the same noise
            and incident energies before writing (:class:`ExportCheck`); a failed check
            raises :class:`ExportError` and writes nothing.
        check_n: Showers of the check.
        seed: Seed of the check's noise and energies.

    Returns:
        The metadata written into the model (``physgen.*`` keys, decoded) and ``path``.

    Raises:
        ConfigError: Not a run directory, a set-up without a fixed graph (adaptive solver),
            an opset that is too old, bad sampling options.
        MissingDependencyError: onnx (or, with ``check``, onnxruntime) not installed.
        ExportError: The exporter failed or the check did not pass.
    """
    from physgen.calo.rundir import load_run, read_run_config, sampling_overrides

    run = Path(run_dir)
    out_p = Path(out)
    check_output(out_p, "--out", read_dirs=[run])
    check_opset(opset)
    check_seed(seed)
    if check_n < 1:
        raise ConfigError(f"--check-n: must be >= 1, got {check_n}")
    cfg = read_run_config(run)
    overrides = sampling_overrides(cfg.model, steps, solver)
    check_exportable(cfg.model, {**cfg.model_config, **overrides}, str(run))
    require("onnx", "export", "ONNX exports")
    if check:
        require("onnxruntime", "export", "ONNX export checks", hint="or use --no-check")
    import onnx

    model = load_run(run, "cpu", overrides=overrides or None)
    sampler = ShowerSampler(model).eval()
    n_trace = 3
    g = torch.Generator().manual_seed(seed)
    args = (model.noise(n_trace, g), check_energies(model, n_trace, seed))
    meta = _metadata(model, cfg, run, opset)
    with atomic_path(out_p) as tmp:
        _torch_export(sampler, args, tmp, opset)
        result = None
        if check:
            result = verify(tmp, model, n=check_n, seed=seed)
            if not result.passed:
                raise ExportError(
                    f"{run}: the ONNX graph does not reproduce the torch model on {check_n} "
                    f"showers: max relative difference {result.max_rel_diff:.3g} (allowed "
                    f"{RTOL:g}), {result.pattern_mismatches} voxels above threshold in one "
                    "backend only; nothing written"
                )
            meta["physgen.check"] = result.to_dict()
        proto = onnx.load(str(tmp))
        proto.doc_string = (
            f"physgen {cfg.model} surrogate for CaloChallenge geometry {cfg.geometry}: "
            "showers [N, V] MeV from z [N, latent] standard normal and incident_energy "
            "[N, 1] MeV; see the physgen.* metadata"
        )
        del proto.metadata_props[:]
        for key, value in meta.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, json.dumps(value)
        onnx.save(proto, str(tmp))
    return {"path": str(out_p), **meta}


def _metadata(model: Any, cfg: Any, run: Path, opset: int) -> dict[str, Any]:
    codec = model.codec
    lo, hi = codec.training_range_mev
    sampling = {k: getattr(model.config, k) for k in type(model).sampling_options}
    return {
        "physgen.version": __version__,
        "physgen.family": cfg.model,
        "physgen.geometry": cfg.geometry,
        "physgen.units": {"incident_energy": "MeV", "showers": "MeV"},
        "physgen.sampling": sampling,
        "physgen.config_sha256": _config_sha256(run),
        "physgen.latent": {
            "shape": ["N", model.noise_dim],
            "dtype": "float32",
            "distribution": "standard normal, independent entries",
            # physgen draws these blocks one after another (torch.randn((N, w)) each) and
            # concatenates them along axis 1; any other source of N(0, 1) noise is as valid
            "draw_widths": list(model.noise_widths()),
        },
        "physgen.condition": {
            "name": "incident_energy",
            "shape": ["N", 1],
            "units": "MeV",
            "training_range_mev": [lo, hi],
        },
        "physgen.showers": {
            "shape": ["N", codec.n_voxels],
            "units": "MeV",
            "threshold_mev": codec.threshold_mev,
        },
        "physgen.opset": opset,
    }


def verify(path: str | Path, model: Any, *, n: int = 1000, seed: int = 0) -> ExportCheck:
    """Run the ONNX file at ``path`` and the torch ``model`` on the same ``n`` noise vectors
    and incident energies (log-uniform over the training range) and compare the showers."""
    from physgen.export.runtime import onnx_session

    g = torch.Generator().manual_seed(seed + 1)
    z = model.noise(n, g)
    e = check_energies(model, n, seed + 1)
    with torch.no_grad():
        ref = ShowerSampler(model).eval()(z, e).numpy()
    sess = onnx_session(path)
    got = sess.run([OUTPUT], {"z": z.numpy(), "incident_energy": e.numpy()})[0]
    res = compare_showers(got, ref, float(model.codec.threshold_mev))
    log.info("ONNX check: %s", res)
    return res
