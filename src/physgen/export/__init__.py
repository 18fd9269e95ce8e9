"""Deployment: ONNX export of trained surrogates and ONNX Runtime sampling.

``export_onnx(run_dir, "model.onnx")`` writes the whole sampler of a run as one verified graph
(see :mod:`physgen.export.onnx` for its input/output contract); ``load_onnx("model.onnx")``
samples it with the torch models' API. Needs the ``export`` extra
(``pip install 'physgen[export]'``).
"""

from __future__ import annotations

from physgen.export.onnx import (
    DEFAULT_OPSET,
    MIN_OPSET,
    RTOL,
    ExportCheck,
    ExportError,
    compare_showers,
    export_onnx,
)
from physgen.export.runtime import OnnxShowerModel, load_onnx

__all__ = [
    "DEFAULT_OPSET",
    "MIN_OPSET",
    "RTOL",
    "ExportCheck",
    "ExportError",
    "OnnxShowerModel",
    "compare_showers",
    "export_onnx",
    "load_onnx",
]
