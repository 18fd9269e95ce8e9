"""The network, training and calibration of two-sample classifiers, on any feature arrays.

A classifier trained to tell sample 1 (label 1) from sample 0 (label 0), with per-event
weights, is the workhorse of many methods: the CaloChallenge quality test
(:mod:`physgen.calo.evaluate.classifier` builds shower inputs and calls this module), OmniFold
and DCTR reweighting (the per-event likelihood ratio ``f / (1 - f)``), CWoLa and CATHODE
anomaly searches. This module holds the pieces that know nothing about showers:

* :class:`ClassifierConfig` (the ``official`` CaloChallenge and the ``fast`` presets);
* :func:`build_dnn`, the fixed input standardisation/whitening, the training loop with
  best-epoch selection on a test split (:func:`train_network`), scoring, calibration by
  isotonic regression, and weighted AUC / JSD / accuracy (:func:`binary_metrics`);
* :func:`two_sample_test` and :func:`fit_likelihood_ratio` on plain arrays
  (:mod:`physgen.metrics.twosample`).

Rows come from a *pool*: anything with ``sources`` (each with ``n`` and ``dim``), ``offsets``
and ``rows(index)``; :class:`ArrayPool` wraps in-memory arrays, and the calorimeter evaluation
supplies a disk-cached one.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from physgen.errors import ConfigError, DataFormatError
from physgen.metrics.scores import (
    accuracy_and_loss,
    balanced_weights,
    binary_metrics,
    calibrate,
    mean_std,
    sigmoid,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "PRESETS",
    "ArrayPool",
    "ClassifierConfig",
    "Fit",
    "affine_input",
    "balanced_weights",
    "binary_metrics",
    "build_dnn",
    "calibrate",
    "epoch_patience",
    "get_preset",
    "input_transform",
    "mean_std",
    "network_scores",
    "sigmoid",
    "split_indices",
    "torch_threads",
    "train_network",
]

logger = logging.getLogger("physgen.calo.evaluate.classifier")

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]
#: Largest input batch scored at once (bytes of float32 inputs).
SCORE_BATCH_BYTES = 64 * 2**20


class RowSource(Protocol):
    """One sample of a pool: its number of rows and input width."""

    @property
    def n(self) -> int: ...

    @property
    def dim(self) -> int: ...


class Pool(Protocol):
    """Rows of several samples, addressed by a global index."""

    @property
    def sources(self) -> Sequence[RowSource]: ...

    @property
    def offsets(self) -> npt.NDArray[Any]: ...

    def rows(self, gidx: npt.NDArray[np.int64]) -> F32:
        """``(len(gidx), dim)`` float32 rows."""


@dataclass
class _ArraySource:
    n: int
    dim: int


class ArrayPool:
    """A pool over in-memory arrays ``(n_k, dim)`` (float32 copies)."""

    def __init__(self, arrays: Sequence[npt.ArrayLike]) -> None:
        mats = [np.ascontiguousarray(np.asarray(a, dtype=np.float32)) for a in arrays]
        dims = {m.shape[1] if m.ndim == 2 else -1 for m in mats}
        if len(dims) != 1 or -1 in dims:
            raise DataFormatError(
                "classifier: every sample must be 2-D with the same number of columns"
            )
        self._x = np.concatenate(mats) if len(mats) > 1 else mats[0]
        self.sources = [_ArraySource(int(m.shape[0]), int(m.shape[1])) for m in mats]
        self.offsets = np.cumsum([0] + [m.shape[0] for m in mats]).astype(np.int64)

    def rows(self, gidx: npt.NDArray[np.int64]) -> F32:
        """Rows by global index."""
        out: F32 = self._x[gidx]
        return out

    def close(self) -> None:
        """Nothing to release."""


# --------------------------------------------------------------------- config


@dataclass(frozen=True)
class ClassifierConfig:
    """Hyper-parameters of the classifier test (use :meth:`official` or :meth:`fast`).

    Attributes:
        name: Preset name, recorded in results.
        hidden: Width of the hidden layers (DNN modes).
        n_hidden_layers: Number of hidden-to-hidden layers after the input layer
            (official ``cls_n_layer`` = 2: input -> 2048 -> 2048 -> 2048 -> 1).
        dropout: Dropout probability after each hidden activation.
        lr: Adam learning rate.
        batch_size: Training batch size.
        max_epochs: Epochs at most.
        patience: Stop after this many epochs without improvement of the selection
            metric on the test split (None: run ``max_epochs``).
        patience_samples: Also stop once this many training showers (summed over
            epochs, rounded up to whole epochs, at least 2 epochs) have passed without
            improvement (None: ``patience`` alone). It only bites on large samples,
            whose epochs are long: above ``patience_samples / patience`` training
            showers (40,000 at the defaults) the patience shrinks, to 5 epochs for the
            120,000 training showers of the geometry-2/3 official split.
        select_on: ``"accuracy"`` (official: best test accuracy) or ``"loss"`` (lowest test BCE).
        input_transform: Fixed affine map in front of the network, fitted on the training
            split (DNN modes only; not trained, not counted as parameters): ``"none"``;
            ``"standardize"`` (every column to mean 0, std 1); ``"whiten"`` (ZCA whitening
            of the standardised columns, eigenvalues floored at ``whiten_eps``; falls back
            to standardisation above ``max_whiten_dim`` columns); ``"auto"`` = ``"whiten"``
            for ``cls-high`` and ``"none"`` for the voxel modes.
        whiten_eps: Eigenvalue floor of the whitening (correlation-matrix units).
        max_whiten_dim: Largest input dimension that is whitened (the covariance is D x D).
        cosine_lr: Cosine-decay the learning rate to 0 over ``max_epochs``.
        weight_decay: Adam (L2) weight decay.
        dtype: Network dtype, ``"float32"`` or ``"float64"``.
        official_split: Use the official split sizes when the sample has the official size.
        max_input_gb: Largest in-memory input matrix (both samples together); above it
            the inputs go to a disk cache.
        max_disk_cache_gb: Largest input matrix written to a temporary disk cache (both
            samples together; 0 disables it); above it, or without room on the disk,
            inputs are rebuilt per batch from the source.
        eval_batch_size: Batch size for scoring (capped at about 64 MB of inputs).
    """

    name: str = "fast"
    hidden: int = 512
    n_hidden_layers: int = 2
    dropout: float = 0.0
    lr: float = 1e-3
    batch_size: int = 500
    max_epochs: int = 100
    patience: int | None = 15
    patience_samples: int | None = 600_000
    select_on: str = "loss"
    input_transform: str = "auto"
    cosine_lr: bool = False
    weight_decay: float = 0.0
    whiten_eps: float = 1e-4
    max_whiten_dim: int = 8192
    dtype: str = "float32"
    official_split: bool = True
    max_input_gb: float = 4.0
    max_disk_cache_gb: float = 200.0
    eval_batch_size: int = 10_000

    def __post_init__(self) -> None:
        checks = [
            (self.hidden >= 1, "hidden", "an integer >= 1"),
            (self.n_hidden_layers >= 0, "n_hidden_layers", "an integer >= 0"),
            (0.0 <= self.dropout < 1.0, "dropout", "in [0, 1)"),
            (self.lr > 0, "lr", "> 0"),
            (self.batch_size >= 1, "batch_size", "an integer >= 1"),
            (self.max_epochs >= 1, "max_epochs", "an integer >= 1"),
            (self.patience is None or self.patience >= 1, "patience", "None or >= 1"),
            (
                self.patience_samples is None or self.patience_samples >= 1,
                "patience_samples",
                "None or >= 1",
            ),
            (self.select_on in ("accuracy", "loss"), "select_on", "'accuracy' or 'loss'"),
            (
                self.input_transform in ("none", "standardize", "whiten", "auto"),
                "input_transform",
                "'none', 'standardize', 'whiten' or 'auto'",
            ),
            (self.whiten_eps > 0, "whiten_eps", "> 0"),
            (self.dtype in ("float32", "float64"), "dtype", "'float32' or 'float64'"),
            (self.max_input_gb >= 0, "max_input_gb", ">= 0"),
            (self.max_disk_cache_gb >= 0, "max_disk_cache_gb", ">= 0"),
            (self.eval_batch_size >= 1, "eval_batch_size", "an integer >= 1"),
            (self.weight_decay >= 0, "weight_decay", ">= 0"),
        ]
        for ok, key, expected in checks:
            if not ok:
                raise ConfigError(
                    f"classifier config {key}: expected {expected}, got {getattr(self, key)!r}"
                )

    @classmethod
    def official(cls) -> ClassifierConfig:
        """The official CaloChallenge settings (evaluate.py defaults since Nov 2023)."""
        return cls(
            name="official",
            hidden=2048,
            n_hidden_layers=2,
            dropout=0.0,
            lr=2e-4,
            batch_size=1000,
            max_epochs=50,
            patience=None,
            patience_samples=None,
            select_on="accuracy",
            input_transform="none",
            cosine_lr=False,
            dtype="float64",
        )

    @classmethod
    def fast(cls) -> ClassifierConfig:
        """The default: minutes on 2 CPU cores, at least as sensitive as ``official``.

        Differences from ``official`` (same inputs, split, calibration and metrics):

        * width 512 instead of 2048 (3 x 512 hidden layers, LeakyReLU, no dropout),
          float32 instead of float64;
        * Adam lr 1e-3 (instead of 2e-4), batch 500 (instead of 1000);
        * at most 100 epochs, early stopping after 15 epochs without a lower test BCE,
          or after 600,000 training showers without one (whole epochs, at least 2: on
          geometry-2/3 files of 100k, 120,000 training showers per epoch, that is 5
          epochs); the lowest-test-BCE epoch is kept (official: highest test accuracy,
          50 epochs);
        * ``cls-high`` features are ZCA-whitened with the training split's covariance
          (a fixed, invertible affine map: it cannot lose information, and it turns
          small-variance combinations such as log E_tot - log E_inc into unit-variance
          inputs the network finds at once). Voxel inputs are left raw: per-voxel
          standardisation amplifies rarely hit voxels and made the test weaker.

        Measured on synthetic 1-photons showers, 3,000 per class, mean of two seeds
        (``bench/results/classifier_presets.md``): voxels x 1.05 give cls-low AUC
        0.720 (fast) vs 0.681 (official) and cls-high 0.788 vs 0.518; the saturated
        cases (a layer dropped, radial shift by one bin) give 0.997-0.999 for both,
        equal within 0.001. With 15,000 per class the fast preset reaches 0.804 on
        cls-low (the official network was too slow to run there on CPU).

        On two geometry-2 files of 100k showers (``bench/results/evaluate_speed.md``)
        a whole ``physgen evaluate --mode cls-low`` takes about 3 minutes on 2 idle
        cores (10 epochs), with inputs in a disk cache and under 1.5 GB of memory.
        """
        return cls()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


PRESETS: dict[str, ClassifierConfig] = {
    "official": ClassifierConfig.official(),
    "fast": ClassifierConfig.fast(),
}


def get_preset(name: str | ClassifierConfig) -> ClassifierConfig:
    """A preset by name (``"official"``, ``"fast"``), or the config itself."""
    if isinstance(name, ClassifierConfig):
        return name
    if name not in PRESETS:
        raise ConfigError(
            f"--preset: unknown classifier preset {name!r}; choose from {list(PRESETS)}"
        )
    return PRESETS[name]


# --------------------------------------------------------------------- networks


def build_dnn(n_inputs: int, config: ClassifierConfig, n_outputs: int = 1) -> torch.nn.Module:
    """The fully connected classifier: input -> hidden -> [hidden -> hidden] x n -> n_outputs.

    With :meth:`ClassifierConfig.official` this is the official network (LeakyReLU,
    dropout after each activation): 9,152,513 parameters for 369 inputs.
    """
    import torch

    layers: list[torch.nn.Module] = []
    width = n_inputs
    for _ in range(1 + config.n_hidden_layers):
        layers += [
            torch.nn.Linear(width, config.hidden),
            torch.nn.LeakyReLU(),
            torch.nn.Dropout(config.dropout),
        ]
        width = config.hidden
    layers.append(torch.nn.Linear(width, n_outputs))
    return torch.nn.Sequential(*layers)


def affine_input(mean: npt.NDArray[np.float64], w: npt.NDArray[np.float64]) -> torch.nn.Module:
    """The fixed input transform ``(x - mean) @ W.T`` (or ``* W`` for a vector ``W``).

    Buffers, neither trained nor counted as parameters.
    """
    import torch

    class InputTransform(torch.nn.Module):
        mean: torch.Tensor
        weight: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mean", torch.as_tensor(mean))
            self.register_buffer("weight", torch.as_tensor(w))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.weight.ndim == 1:
                return (x - self.mean) * self.weight
            return (x - self.mean) @ self.weight.T

    return InputTransform()


def input_transform(
    pool: Pool, idx: npt.NDArray[np.int64], chunk: int, whiten: bool, eps: float
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Mean and ``W`` with ``(x - mean) @ W.T`` whitened, or ``(x - mean) * W`` standardised.

    Standardisation divides every column by its training std (constant columns by 1).
    Whitening (ZCA) then decorrelates the standardised columns: with the correlation
    matrix ``R = V diag(lam) V^T``, ``W = V diag(max(lam, eps)^-1/2) V^T diag(1/std)``.
    """
    dim = pool.sources[0].dim
    s = np.zeros(dim)
    s2 = np.zeros((dim, dim)) if whiten else np.zeros(dim)
    for i in range(0, len(idx), chunk):
        b = pool.rows(np.sort(idx[i : i + chunk])).astype(np.float64)
        s += b.sum(axis=0)
        s2 += b.T @ b if whiten else (b * b).sum(axis=0)
    n = len(idx)
    mean = s / n
    if not whiten:
        std = np.sqrt(np.clip(s2 / n - mean * mean, 0.0, None))
        std[std < 1e-8] = 1.0
        return mean, 1.0 / std
    cov = s2 / n - np.outer(mean, mean)
    std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    std[std < 1e-8] = 1.0
    corr = cov / np.outer(std, std)
    lam, vec = np.linalg.eigh(0.5 * (corr + corr.T))
    w = (vec * (1.0 / np.sqrt(np.clip(lam, eps, None)))) @ vec.T
    return mean, w / std[None, :]


# --------------------------------------------------------------------- training


@dataclass(frozen=True)
class Fit:
    """A trained network: the best epoch's weights, epochs run, best epoch, time (s)."""

    model: Any
    epochs_run: int
    best_epoch: int
    train_time_s: float


def network_scores(
    model: Any, pool: Pool, idx: npt.NDArray[np.int64], batch: int, dtype: Any, device: str
) -> npt.NDArray[np.float64]:
    """Network outputs (logits) ``(len(idx), n_outputs)`` float64 for pool rows ``idx``."""
    import torch

    outs = []
    model.eval()
    # at most ~64 MB of inputs per batch (10,000 geometry-3 rows would be 1.6 GB)
    batch = max(1, min(batch, SCORE_BATCH_BYTES // (4 * pool.sources[0].dim)))
    with torch.no_grad():
        for i in range(0, len(idx), batch):
            xb = torch.as_tensor(pool.rows(idx[i : i + batch])).to(device=device, dtype=dtype)
            outs.append(model(xb).double().cpu().numpy())
    return np.concatenate(outs, axis=0)


def train_network(
    pool: Pool,
    labels: npt.NDArray[np.int64],
    train_idx: npt.NDArray[np.int64],
    test_idx: npt.NDArray[np.int64],
    net: Any,
    config: ClassifierConfig,
    rng: np.random.Generator,
    device: str,
    n_classes: int,
    weights: npt.NDArray[np.float64] | None = None,
) -> Fit:
    """Train ``net`` with Adam on the rows ``train_idx``, keeping the epoch with the best
    test-split selection metric (``config.select_on``), with early stopping.

    Args:
        pool: The rows.
        labels: Class of every pool row.
        train_idx: Training rows.
        test_idx: Rows for epoch selection and early stopping.
        net: The network (moved to ``device`` and ``config.dtype``).
        config: Hyper-parameters.
        rng: Batch order.
        device: torch device.
        n_classes: 2 (binary cross-entropy on one logit) or more (softmax).
        weights: Per-row event weights of every pool row (None: unweighted). The losses
            become weighted means ``sum w l / sum w`` and the selection metrics weighted.
    """
    import torch

    dtype = torch.float64 if config.dtype == "float64" else torch.float32
    model = net.to(device=device, dtype=dtype)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(train_idx) / config.batch_size)
    sched = (
        torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.max_epochs * steps_per_epoch)
        if config.cosine_lr
        else None
    )
    y_test = labels[test_idx]
    w_test = None if weights is None else weights[test_idx]
    patience = epoch_patience(config, len(train_idx))
    best_score, best_epoch, best_state, stale = -math.inf, 0, None, 0
    t0 = time.perf_counter()
    epoch = 0
    for epoch in range(1, config.max_epochs + 1):
        model.train()
        perm = train_idx[rng.permutation(len(train_idx))]
        for i in range(0, len(perm), config.batch_size):
            bidx = perm[i : i + config.batch_size]
            if len(bidx) < 2 and len(perm) >= 2:
                continue  # a lone last row: batch norm (cls-resnet) cannot train on it
            xb = torch.as_tensor(pool.rows(bidx)).to(device=device, dtype=dtype)
            yb = torch.as_tensor(labels[bidx]).to(device=device)
            out = model(xb)
            if weights is None:
                if n_classes == 2:
                    loss = torch.nn.functional.binary_cross_entropy_with_logits(
                        out[:, 0], yb.to(dtype)
                    )
                else:
                    loss = torch.nn.functional.cross_entropy(out, yb)
            else:
                wb = torch.as_tensor(weights[bidx]).to(device=device, dtype=dtype)
                if n_classes == 2:
                    per = torch.nn.functional.binary_cross_entropy_with_logits(
                        out[:, 0], yb.to(dtype), reduction="none"
                    )
                else:
                    per = torch.nn.functional.cross_entropy(out, yb, reduction="none")
                loss = (wb * per).sum() / wb.sum().clamp_min(1e-30)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            if sched is not None:
                sched.step()
        logits = network_scores(model, pool, test_idx, config.eval_batch_size, dtype, device)
        acc, bce = accuracy_and_loss(logits, y_test, n_classes, w_test)
        score = acc if config.select_on == "accuracy" else -bce
        if best_state is None or score > best_score:
            best_score, best_epoch, stale = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
        logger.info("epoch %d: test accuracy %.4f, test loss %.4f", epoch, acc, bce)
        if acc >= 1.0 or (patience is not None and stale >= patience):
            break
    assert best_state is not None
    model.load_state_dict(best_state)
    return Fit(model, epoch, best_epoch, time.perf_counter() - t0)


def epoch_patience(config: ClassifierConfig, n_train: int) -> int | None:
    """Epochs without improvement before stopping (see ``ClassifierConfig.patience_samples``)."""
    if config.patience_samples is None:
        return config.patience
    by_samples = max(2, math.ceil(config.patience_samples / max(n_train, 1)))
    return by_samples if config.patience is None else min(config.patience, by_samples)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with ``threads`` torch intra-op threads (None: unchanged), then restore."""
    if threads is None:
        yield
        return
    if threads < 1:
        raise ConfigError(f"threads: must be >= 1 torch thread, got {threads}")
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def split_indices(
    pool: Pool, sizes: tuple[int, int, int], rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], ...]:
    """Per sample ``sizes = (train, test, validation)`` random rows -> three shuffled global
    index arrays."""
    parts: list[list[npt.NDArray[np.int64]]] = [[], [], []]
    for k, src in enumerate(pool.sources):
        perm = rng.permutation(src.n)[: sum(sizes)] + pool.offsets[k]
        a, b = sizes[0], sizes[0] + sizes[1]
        for j, chunk in enumerate((perm[:a], perm[a:b], perm[b:])):
            parts[j].append(chunk)
    return tuple(rng.permutation(np.concatenate(p)).astype(np.int64) for p in parts)
