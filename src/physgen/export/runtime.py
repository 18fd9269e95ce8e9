"""Run an exported surrogate in ONNX Runtime behind the torch model's sampling call.

:class:`OnnxShowerModel` reads the ``physgen.*`` metadata that :func:`physgen.export.export_onnx`
wrote, draws the noise exactly as the torch model does (one ``torch.randn((N, w))`` per entry
of ``draw_widths``, concatenated), and feeds it with the incident energies to the graph::

    model = load_onnx("model.onnx")
    showers = model(incident_energy).sample(generator=torch.Generator().manual_seed(1))

So a seed gives the torch model's showers up to float32 round-off (the export check bounds
the difference), and :func:`physgen.calo.generate.generate_showers` uses it unchanged
(``physgen generate --backend onnxruntime``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from physgen._optional import require
from physgen.errors import DataFormatError

__all__ = ["OnnxShowerModel", "load_onnx", "onnx_session", "read_metadata"]

_REQUIRED = ("physgen.family", "physgen.latent", "physgen.condition", "physgen.showers")


def onnx_session(path: str | Path, threads: int | None = None) -> Any:
    """An ``onnxruntime.InferenceSession`` on the CPU.

    Args:
        path: The ``.onnx`` file.
        threads: Intra-op threads (None: ONNX Runtime's default, one per core).

    Raises:
        MissingDependencyError: onnxruntime is not installed.
        DataFormatError: The file cannot be loaded.
    """
    require("onnxruntime", "export", "ONNX models")
    import onnxruntime as ort  # type: ignore[import-untyped]

    p = Path(path)
    if not p.is_file():
        raise DataFormatError(f"{p}: no such file")
    opts = ort.SessionOptions()
    opts.log_severity_level = 3  # errors only: no per-session banner on stderr
    if threads is not None:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(p), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DataFormatError(f"{p}: ONNX Runtime cannot load it ({first})") from exc


def read_metadata(session: Any, path: str | Path = "") -> dict[str, Any]:
    """The decoded ``physgen.*`` metadata of an ONNX Runtime session.

    Raises:
        DataFormatError: Metadata missing or not JSON (not a file of ``physgen export``).
    """
    raw = session.get_modelmeta().custom_metadata_map
    meta: dict[str, Any] = {}
    for key, value in raw.items():
        if key.startswith("physgen."):
            try:
                meta[key] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise DataFormatError(f"{path}: metadata {key!r} is not JSON") from exc
    missing = [k for k in _REQUIRED if k not in meta]
    if missing:
        raise DataFormatError(
            f"{path}: no {', '.join(missing)} metadata; not a file written by physgen export"
        )
    return meta


@dataclasses.dataclass(frozen=True)
class OnnxCodecInfo:
    """What generation needs to know of the codec of an exported model."""

    n_voxels: int
    threshold_mev: float
    training_range_mev: tuple[float, float]


class OnnxDistribution:
    """``p(showers | incident_energy)`` of an :class:`OnnxShowerModel` for N conditions."""

    def __init__(self, model: OnnxShowerModel, condition: Tensor) -> None:
        self.model = model
        self.condition = torch.as_tensor(condition).reshape(-1, 1)

    def sample(
        self, shape: tuple[int, ...] = (), generator: torch.Generator | None = None
    ) -> Tensor:
        """Showers ``(*shape, N, V)`` MeV (float32), like the torch model's ``sample``."""
        n_rep = int(np.prod(shape, dtype=np.int64)) if shape else 1
        c = self.condition.repeat(n_rep, 1) if n_rep != 1 else self.condition
        z = self.model.noise(c.shape[0], generator)
        x = self.model.decode(z, c)
        return x.reshape(*shape, self.condition.shape[0], x.shape[-1])


class OnnxShowerModel:
    """An exported surrogate in ONNX Runtime, with the sampling API of the torch models.

    Args:
        path: A file written by :func:`physgen.export.export_onnx`.
        threads: ONNX Runtime intra-op threads (None: one per core).

    Attributes:
        name: The model family (``cfm``, ``flow``, ...).
        metadata: The decoded ``physgen.*`` metadata.
        codec: :class:`OnnxCodecInfo` (voxels, threshold, training range).
    """

    def __init__(self, path: str | Path, threads: int | None = None) -> None:
        self.path = Path(path)
        self.threads = threads
        self.session = onnx_session(self.path, threads)
        self.metadata = read_metadata(self.session, self.path)
        latent = self.metadata["physgen.latent"]
        try:
            self.draw_widths = [int(w) for w in latent["draw_widths"]]
            lo, hi = self.metadata["physgen.condition"]["training_range_mev"]
            n_voxels = int(self.metadata["physgen.showers"]["shape"][1])
            threshold = float(self.metadata["physgen.showers"]["threshold_mev"])
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DataFormatError(f"{self.path}: malformed physgen metadata ({exc})") from exc
        self.name = str(self.metadata["physgen.family"])
        self.codec = OnnxCodecInfo(n_voxels, threshold, (float(lo), float(hi)))

    def __getstate__(self) -> dict[str, Any]:
        """Pickled as its file (an ONNX Runtime session does not pickle): Dask workers open
        the model again."""
        return {"path": str(self.path.resolve()), "threads": self.threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # one thread unless chosen: on a cluster worker, as torch there (byte-identical runs)
        threads = state["threads"] if state["threads"] is not None else 1
        self.__init__(state["path"], threads)  # type: ignore[misc]

    @property
    def noise_dim(self) -> int:
        """Width of the noise per shower."""
        return sum(self.draw_widths)

    def eval(self) -> OnnxShowerModel:
        """No-op (the torch models' ``eval``), so generation code takes either."""
        return self

    def noise(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``(n, noise_dim)`` standard normal, drawn as the torch model draws it."""
        parts = [torch.randn((n, w), generator=generator) for w in self.draw_widths]
        return torch.cat(parts, 1) if len(parts) != 1 else parts[0]

    def decode(self, z: Tensor, incident_energy: Tensor) -> Tensor:
        """Showers ``(N, V)`` MeV from noise ``(N, noise_dim)`` and energies ``(N, 1)`` MeV.

        Raises:
            DataFormatError: Wrong shapes, or energies that are not finite and > 0.
        """
        e = torch.as_tensor(incident_energy).reshape(-1, 1)
        if z.ndim != 2 or z.shape[1] != self.noise_dim or z.shape[0] != e.shape[0]:
            raise DataFormatError(
                f"{self.path}: expected z of shape ({e.shape[0]}, {self.noise_dim}), "
                f"got {tuple(z.shape)}"
            )
        if not bool(torch.isfinite(e).all()) or not bool((e > 0).all()):
            raise DataFormatError("incident energies must all be finite and > 0 MeV")
        feeds = {
            "z": np.ascontiguousarray(z.detach().cpu().numpy(), dtype=np.float32),
            "incident_energy": np.ascontiguousarray(e.detach().cpu().numpy(), dtype=np.float32),
        }
        out = self.session.run(["showers"], feeds)[0]
        return torch.from_numpy(np.asarray(out, dtype=np.float32))

    def __call__(self, incident_energy: Tensor) -> OnnxDistribution:
        """``model(E)``: the distribution of showers for incident energies ``(N,)``/``(N, 1)``."""
        return OnnxDistribution(self, torch.as_tensor(incident_energy))


def load_onnx(path: str | Path, threads: int | None = None) -> OnnxShowerModel:
    """Open an exported surrogate (see :class:`OnnxShowerModel`)."""
    return OnnxShowerModel(path, threads)
