"""Training data in memory: arrays of any ``(c, x)`` (calorimeter files:
:class:`physgen.calo.data.ShowerData`).

Every batch is a pure function of ``(seed, epoch, batch index)``, so an interrupted run
resumes on exactly the batches it would have seen, whatever the storage mode.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.errors import DataFormatError

__all__ = ["ArrayData"]

F32 = npt.NDArray[np.float32]
_SPLIT, _EPOCH, _FIT = 0x5350, 0x4550, 0x4649
_MAX_VALIDATION = 50_000


class ArrayData:
    """Train/validation access to in-memory arrays ``c (N, K)`` and ``x (N, D)``.

    The same contract as :class:`ShowerData` (a seeded split; every batch a pure function of
    ``(seed, epoch, batch index)``), with the condition in the place of the incident energy.

    Args:
        c: Conditions ``(N, K)`` (K may be 0).
        x: Data ``(N, D)``.
        validation_fraction: Share of the rows held out for validation (at least one row).
        seed: Run seed (split and batch order).
        fit_samples: Training rows used to fit the codec (a seeded subset when fewer).
        min_steps_per_epoch: An epoch has at least this many batches, cycling through fresh
            permutations of the training rows: on small data sets, validation (once per
            epoch) and early-stopping patience (in epochs) then count in meaningful numbers
            of steps rather than a handful.
    """

    def __init__(
        self,
        c: npt.NDArray[Any],
        x: npt.NDArray[Any],
        *,
        validation_fraction: float = 0.1,
        seed: int = 0,
        fit_samples: int = 1_000_000,
        min_steps_per_epoch: int = 1,
    ) -> None:
        if c.ndim != 2 or x.ndim != 2 or c.shape[0] != x.shape[0]:
            raise DataFormatError(
                f"need c (N, K) and x (N, D) with the same N, got {c.shape} and {x.shape}"
            )
        self._c = np.ascontiguousarray(c, dtype=np.float64)
        self._x = np.ascontiguousarray(x, dtype=np.float64)  # the codec standardises in float64
        self.seed, self.fit_samples = int(seed), int(fit_samples)
        self.min_steps_per_epoch = max(1, int(min_steps_per_epoch))
        n = self._x.shape[0]
        perm = np.random.default_rng([self.seed, _SPLIT]).permutation(n)
        n_val = min(_MAX_VALIDATION, max(1, round(validation_fraction * n)))
        if n_val >= n - 1:
            raise DataFormatError(f"{n} rows are too few for a train/validation split")
        self.val_rows = np.sort(perm[:n_val])
        self.train_rows = np.sort(perm[n_val:])

    @property
    def n_rows(self) -> int:
        """All rows."""
        return int(self._x.shape[0])

    @property
    def n_train(self) -> int:
        """Training rows."""
        return int(self.train_rows.size)

    @property
    def n_validation(self) -> int:
        """Validation rows (capped at 50,000)."""
        return int(min(self.val_rows.size, _MAX_VALIDATION))

    def steps_per_epoch(self, batch_size: int) -> int:
        """Full batches per epoch (the last partial batch of a pass is dropped), at least
        ``min_steps_per_epoch``."""
        return max(self.min_steps_per_epoch, self.n_train // batch_size, 1)

    def validation(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The validation rows ``(c, x)`` (at most 50,000 are held out)."""
        rows = self.val_rows[:_MAX_VALIDATION]
        return self._c[rows], self._x[rows]

    def fit_sample(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """Up to ``fit_samples`` training rows (seeded), for fitting the codec."""
        rows = self.train_rows
        if rows.size > self.fit_samples:
            rng = np.random.default_rng([self.seed, _FIT])
            rows = np.sort(rng.choice(rows, self.fit_samples, replace=False))
        return self._c[rows], self._x[rows]

    def batches(
        self, epoch: int, batch_size: int, *, skip: int = 0, rank: int = 0, world: int = 1
    ) -> Iterator[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
        """The training batches of one epoch from batch ``skip`` on (rows ``rank::world`` of
        each global batch). A batch larger than the training set is the whole set."""
        rng = np.random.default_rng([self.seed, _EPOCH, epoch])
        n_steps = self.steps_per_epoch(batch_size)
        per_pass = max(1, self.n_train // batch_size)
        perms = [rng.permutation(self.train_rows) for _ in range(-(-n_steps // per_pass))]
        for b in range(skip, n_steps):
            k, j = divmod(b, per_pass)
            rows = np.sort(perms[k][j * batch_size : (j + 1) * batch_size][rank::world])
            yield self._c[rows], self._x[rows]
