"""Optimisation options shared by every training run (calorimeter surrogates, density fits)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["OptimConfig"]


@dataclass
class OptimConfig:
    """Optimiser, schedule and stopping.

    Attributes:
        lr: Peak learning rate of AdamW.
        weight_decay: AdamW weight decay.
        betas: AdamW betas.
        schedule: ``cosine`` (linear warm-up, cosine decay to ``lr * final_lr_fraction``),
            ``onecycle`` or ``constant``.
        warmup_steps: Warm-up steps of the cosine schedule.
        final_lr_fraction: Final learning rate relative to ``lr``.
        batch_size: Showers per optimisation step (global over all processes).
        epochs: Passes over the training set.
        grad_clip: Gradient-norm clip (0: none).
        ema_decay: Decay of the exponential moving average of the weights (0: no EMA).
        patience: Early stopping after this many validations without improvement (0: never).
        min_delta: What counts as an improvement for the patience: a validation loss this
            much below the last improvement's (the best weights are kept whatever the
            margin). 0: any decrease.
        validate_every: Steps between validations (0: once per epoch).
        checkpoint_every: Steps between checkpoints (0: once per epoch).
        amp: bfloat16 mixed precision on CUDA (ignored on CPU).
    """

    lr: float = 1e-3
    weight_decay: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "cosine"
    warmup_steps: int = 200
    final_lr_fraction: float = 0.01
    batch_size: int = 256
    epochs: int = 100
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    patience: int = 20
    min_delta: float = 0.0
    validate_every: int = 0
    checkpoint_every: int = 0
    amp: bool = True
