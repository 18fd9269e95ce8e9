"""Training, for every model family: the one loop (:mod:`physgen.train.loop`), in-memory data,
optimisation options, run-directory helpers and data parallelism.

Calorimeter surrogates are trained through it by :mod:`physgen.calo.train`; density fits by
:mod:`physgen.density`.
"""

from physgen.train.config import OptimConfig
from physgen.train.data import ArrayData
from physgen.train.loop import RunSettings, TrainingData, TrainResult, run_guarded, run_loop

__all__ = [
    "ArrayData",
    "OptimConfig",
    "RunSettings",
    "TrainResult",
    "TrainingData",
    "run_guarded",
    "run_loop",
]
