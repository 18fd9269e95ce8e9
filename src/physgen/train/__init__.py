"""Training of surrogates: typed configs, data access, the trainer, run directories, DDP."""

from physgen.train.config import TrainConfig, available_presets, load_config
from physgen.train.rundir import load_run, read_run_config
from physgen.train.trainer import TrainResult, train

__all__ = [
    "TrainConfig",
    "TrainResult",
    "available_presets",
    "load_config",
    "load_run",
    "read_run_config",
    "train",
]
