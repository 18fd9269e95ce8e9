"""The CaloChallenge binary classifier test (and a multiclass variant).

A classifier is trained to tell reference showers (label 1, Geant4) from
generated ones (label 0); its calibrated AUC and JSD on a held-out validation
split measure how far the generated sample is from the reference.

Protocol (official definitions, CaloChallenge ``evaluate.py``, see
``calochallenge.md`` section 8):

* Inputs, after zeroing voxels below ``geometry.threshold_mev`` in both samples:
  ``cls-low`` = [log10 E_inc, voxel / E_inc]; ``cls-low-normed`` = [log10 E_inc,
  voxel / (E_layer + 1e-16), log10(E_layer + 1e-8) per layer]; ``cls-high`` = the
  official high-level feature vector (:func:`physgen.evaluate.features.high_level_feature_vector`);
  ``cls-resnet`` = the ``cls-low`` inputs fed to a 3D ResNet-18 (regular geometries only).
* Split per class into train / test / validation: 80k/20k/21k (1-photons),
  80k/20k/20.8k (1-pions), 60k/20k/20k (2, 3) when the files have the official
  size, else 60/20/20 fractions (logged as a warning, recorded in the result).
* Train with Adam and binary cross-entropy; after each epoch the test split is
  scored and the best epoch's weights are kept; isotonic regression fitted on
  the test split's sigmoid outputs calibrates the validation outputs.
  Reported: calibrated AUC and JSD = (ln 2 - BCE) / ln 2 on the validation split
  (0 = indistinguishable, 1 = perfectly separable), plus the uncalibrated values.
  JSD is not clipped: on indistinguishable samples it scatters around 0 and can be
  slightly negative.

Memory: the inputs of each sample are built once (streamed from arrays or
files in small chunks) and stored as float32 (``float64`` in the official code;
the 7-digit rounding of the stored inputs is far below the classifier's
statistical noise): in memory up to ``ClassifierConfig.max_input_gb`` (both
samples together), above that in an anonymous temporary file up to
``ClassifierConfig.max_disk_cache_gb`` (in ``cache_dir``; the evaluation
pipeline puts it next to its output; random rows are read back per batch, so
the process holds one batch, not the matrix), and else not at all: every batch
is then rebuilt from the source (arrays or HDF5 rows), the slowest way. See
:mod:`physgen.evaluate.classifier_store`; the three give the same numbers.
The network itself runs in ``ClassifierConfig.dtype`` (float64 for the
official preset, float32 for the fast one).

Determinism: the same seed gives the same result on CPU with the same number of
torch threads. Repeat ``r`` uses seed ``seed + r`` (a new split and a new
initialisation, as the organisers' 10 independent trainings).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from physgen.errors import ConfigError
from physgen.evaluate.classifier_store import InputPool, SampleInputs
from physgen.evaluate.timing import count_parameters
from physgen.geometry import Geometry, get_geometry

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "MODES",
    "PRESETS",
    "ClassifierConfig",
    "ClassifierResult",
    "MulticlassResult",
    "RepeatResult",
    "build_dnn",
    "classifier_inputs",
    "count_parameters",
    "get_preset",
    "high_level_inputs",
    "input_dim",
    "low_level_inputs",
    "low_level_normed_inputs",
    "run_classifier",
    "run_multiclass",
    "split_sizes",
]

logger = logging.getLogger(__name__)

MODES = ("cls-low", "cls-low-normed", "cls-high", "cls-resnet")
Sample = str | Path | tuple[npt.ArrayLike, npt.ArrayLike]
F32 = npt.NDArray[np.float32]

#: Official per-class split sizes (train, test, validation) by geometry and file size.
OFFICIAL_SPLITS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "1-photons": (121_000, (80_000, 20_000, 21_000)),
    "1-pions": (120_800, (80_000, 20_000, 20_800)),
    "2": (100_000, (60_000, 20_000, 20_000)),
    "3": (100_000, (60_000, 20_000, 20_000)),
}
#: Smallest per-class sample the split accepts (gives 30/10/10).
MIN_SHOWERS = 50
#: Largest input batch scored at once (bytes of float32 inputs).
SCORE_BATCH_BYTES = 64 * 2**20


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


# --------------------------------------------------------------------- inputs


def _threshold(showers: npt.ArrayLike, geometry: Geometry) -> npt.NDArray[np.float64]:
    from physgen.evaluate.features import apply_threshold

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
    from physgen.evaluate.features import high_level_feature_vector

    geo = get_geometry(geometry)
    return high_level_feature_vector(_energies(incident_energies), showers, geo).astype(np.float32)


def classifier_inputs(
    mode: str, incident_energies: npt.ArrayLike, showers: npt.ArrayLike, geometry: str | Geometry
) -> F32:
    """Inputs of classifier ``mode`` (one of :data:`MODES`) for one batch."""
    _check_mode(mode)
    if mode in ("cls-low", "cls-resnet"):
        return low_level_inputs(incident_energies, showers, geometry)
    if mode == "cls-low-normed":
        return low_level_normed_inputs(incident_energies, showers, geometry)
    return high_level_inputs(incident_energies, showers, geometry)


def input_dim(mode: str, geometry: str | Geometry) -> int:
    """Number of input columns of ``mode`` for this geometry."""
    _check_mode(mode)
    geo = get_geometry(geometry)
    if mode in ("cls-low", "cls-resnet"):
        return 1 + geo.n_voxels
    if mode == "cls-low-normed":
        return 1 + geo.n_voxels + geo.n_layers
    probe = high_level_inputs(np.full((1, 1), 1e3), np.zeros((1, geo.n_voxels)), geo)
    return int(probe.shape[1])


def _check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"--mode: unknown classifier mode {mode!r}; choose from {list(MODES)}")


# --------------------------------------------------------------------- splits


def split_sizes(
    n_per_class: int, geometry: str | Geometry, official: bool = True
) -> tuple[tuple[int, int, int], str]:
    """Per-class ``(train, test, validation)`` sizes and ``"official"`` or ``"fractional"``.

    Raises:
        ConfigError: If fewer than :data:`MIN_SHOWERS` showers per class are given.
    """
    geo = get_geometry(geometry)
    if n_per_class < MIN_SHOWERS:
        raise ConfigError(
            f"classifier: too few showers for the train/test/validation split: {n_per_class} "
            f"per class, need at least {MIN_SHOWERS}"
        )
    if official and geo.name in OFFICIAL_SPLITS and OFFICIAL_SPLITS[geo.name][0] == n_per_class:
        return OFFICIAL_SPLITS[geo.name][1], "official"
    n_train = int(0.6 * n_per_class)
    n_test = int(0.2 * n_per_class)
    return (n_train, n_test, n_per_class - n_train - n_test), "fractional"


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


def _build_network(
    mode: str, n_inputs: int, geometry: Geometry, config: ClassifierConfig, n_outputs: int
) -> torch.nn.Module:
    if mode == "cls-resnet":
        from physgen.evaluate.resnet import ResNet3DClassifier

        return ResNet3DClassifier(geometry, n_outputs=n_outputs)
    return build_dnn(n_inputs, config, n_outputs)


def _affine_input(mean: npt.NDArray[np.float64], w: npt.NDArray[np.float64]) -> torch.nn.Module:
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


def _input_transform(
    pool: InputPool, idx: npt.NDArray[np.int64], chunk: int, whiten: bool, eps: float
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
class _Fit:
    model: Any
    epochs_run: int
    best_epoch: int
    train_time_s: float


def _scores(
    model: Any, pool: InputPool, idx: npt.NDArray[np.int64], batch: int, dtype: Any, device: str
) -> npt.NDArray[np.float64]:
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


def _train(
    pool: InputPool,
    labels: npt.NDArray[np.int64],
    train_idx: npt.NDArray[np.int64],
    test_idx: npt.NDArray[np.int64],
    net: Any,
    config: ClassifierConfig,
    rng: np.random.Generator,
    device: str,
    n_classes: int,
) -> _Fit:
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
    patience = _patience(config, len(train_idx))
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
            if n_classes == 2:
                loss = torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], yb.to(dtype))
            else:
                loss = torch.nn.functional.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            if sched is not None:
                sched.step()
        logits = _scores(model, pool, test_idx, config.eval_batch_size, dtype, device)
        acc, bce = _acc_loss(logits, y_test, n_classes)
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
    return _Fit(model, epoch, best_epoch, time.perf_counter() - t0)


def _patience(config: ClassifierConfig, n_train: int) -> int | None:
    """Epochs without improvement before stopping (see ``ClassifierConfig.patience_samples``)."""
    if config.patience_samples is None:
        return config.patience
    by_samples = max(2, math.ceil(config.patience_samples / max(n_train, 1)))
    return by_samples if config.patience is None else min(config.patience, by_samples)


def _acc_loss(
    logits: npt.NDArray[np.float64], y: npt.NDArray[np.int64], n_classes: int
) -> tuple[float, float]:
    if n_classes == 2:
        z = logits[:, 0]
        bce = np.mean(np.logaddexp(0.0, z) - y * z)
        return float(np.mean((z > 0) == (y == 1))), float(bce)
    logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    return float(np.mean(logits.argmax(axis=1) == y)), float(-np.mean(logp[np.arange(len(y)), y]))


def _binary_metrics(p: npt.NDArray[np.float64], y: npt.NDArray[np.int64]) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    q = np.clip(p, 1e-6, 1.0 - 1e-6)
    bce = float(-np.mean(y * np.log(q) + (1 - y) * np.log(1.0 - q)))
    return {
        "auc": float(roc_auc_score(y, p)),
        "bce": bce,
        "jsd": (math.log(2.0) - bce) / math.log(2.0),
        "accuracy": float(np.mean((p > 0.5) == (y == 1))),
    }


# --------------------------------------------------------------------- results


@dataclass(frozen=True)
class RepeatResult:
    """One training of the binary classifier (validation-split metrics)."""

    seed: int
    auc: float
    jsd: float
    accuracy: float
    bce: float
    auc_uncalibrated: float
    jsd_uncalibrated: float
    accuracy_uncalibrated: float
    epochs_run: int
    best_epoch: int
    train_time_s: float


def _mean_std(values: list[float]) -> tuple[float, float]:
    a = np.asarray(values, dtype=np.float64)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


@dataclass(frozen=True)
class ClassifierResult:
    """Outcome of :func:`run_classifier`: calibrated AUC/JSD as mean +- std over repeats.

    ``*_std`` is the sample standard deviation over repeats (0 for one repeat).
    """

    mode: str
    config: ClassifierConfig
    geometry: str
    n_reference: int
    n_generated: int
    split: tuple[int, int, int]
    split_kind: str
    n_parameters: int
    device: str
    repeats: tuple[RepeatResult, ...] = field(default_factory=tuple)

    def _stat(self, key: str) -> tuple[float, float]:
        return _mean_std([getattr(r, key) for r in self.repeats])

    @property
    def auc(self) -> float:
        return self._stat("auc")[0]

    @property
    def auc_std(self) -> float:
        return self._stat("auc")[1]

    @property
    def jsd(self) -> float:
        return self._stat("jsd")[0]

    @property
    def jsd_std(self) -> float:
        return self._stat("jsd")[1]

    @property
    def accuracy(self) -> float:
        return self._stat("accuracy")[0]

    @property
    def auc_uncalibrated(self) -> float:
        return self._stat("auc_uncalibrated")[0]

    @property
    def jsd_uncalibrated(self) -> float:
        return self._stat("jsd_uncalibrated")[0]

    @property
    def epochs_run(self) -> list[int]:
        return [r.epochs_run for r in self.repeats]

    @property
    def train_time_s(self) -> float:
        return float(sum(r.train_time_s for r in self.repeats))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable summary (means, stds, every repeat, the config)."""
        out: dict[str, Any] = {
            "mode": self.mode,
            "preset": self.config.name,
            "config": self.config.to_dict(),
            "geometry": self.geometry,
            "n_reference": self.n_reference,
            "n_generated": self.n_generated,
            "split_per_class": list(self.split),
            "split_kind": self.split_kind,
            "n_parameters": self.n_parameters,
            "device": self.device,
            "n_repeats": len(self.repeats),
            "train_time_s": self.train_time_s,
            "repeats": [asdict(r) for r in self.repeats],
        }
        for key in ("auc", "jsd", "accuracy", "auc_uncalibrated", "jsd_uncalibrated"):
            m, s = self._stat(key)
            out[key], out[key + "_std"] = m, s
        return out


# --------------------------------------------------------------------- drivers


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
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


def _prepare(
    samples: list[tuple[str, Sample]],
    geometry: str | Geometry,
    mode: str,
    config: ClassifierConfig,
    cache_dir: str | Path | None = None,
) -> tuple[Geometry, InputPool]:
    _check_mode(mode)
    geo = get_geometry(geometry)
    if mode == "cls-resnet" and not geo.is_regular:
        raise ConfigError(
            f"--mode cls-resnet needs a regular geometry ('2', '3'); {geo.name!r} has "
            "layers of different shapes"
        )
    if cache_dir is not None and not Path(cache_dir).is_dir():
        raise ConfigError(f"classifier cache_dir {cache_dir}: not an existing folder")
    n_sources = max(len(samples), 1)
    dim = input_dim(mode, geo)

    def build(e: npt.NDArray[Any], x: npt.NDArray[Any]) -> F32:
        return classifier_inputs(mode, e, x, geo)

    sources: list[SampleInputs] = []
    try:
        for label, s in samples:
            sources.append(
                SampleInputs(
                    s,
                    geo,
                    label,
                    dim,
                    build,
                    max_bytes=config.max_input_gb * 1e9 / n_sources,
                    max_disk_bytes=config.max_disk_cache_gb * 1e9 / n_sources,
                    cache_dir=cache_dir,
                )
            )
    except BaseException:
        for src in sources:
            src.close()
        raise
    stores = {src.label: src.store for src in sources}
    logger.info("classifier %s: %d inputs per shower, stored in %s", mode, dim, stores)
    return geo, InputPool(sources)


def _split_indices(
    pool: InputPool, sizes: tuple[int, int, int], rng: np.random.Generator
) -> tuple[npt.NDArray[np.int64], ...]:
    parts: list[list[npt.NDArray[np.int64]]] = [[], [], []]
    for k, src in enumerate(pool.sources):
        perm = rng.permutation(src.n)[: sum(sizes)] + pool.offsets[k]
        a, b = sizes[0], sizes[0] + sizes[1]
        for j, chunk in enumerate((perm[:a], perm[a:b], perm[b:])):
            parts[j].append(chunk)
    return tuple(rng.permutation(np.concatenate(p)).astype(np.int64) for p in parts)


def _fit_one(
    pool: InputPool,
    labels: npt.NDArray[np.int64],
    sizes: tuple[int, int, int],
    geo: Geometry,
    mode: str,
    config: ClassifierConfig,
    seed: int,
    device: str,
    n_classes: int,
) -> tuple[_Fit, tuple[npt.NDArray[np.int64], ...], int]:
    import torch

    rng = np.random.default_rng(seed)
    train_idx, test_idx, val_idx = _split_indices(pool, sizes, rng)
    devices = [] if torch.device(device).type != "cuda" else [torch.device(device).index or 0]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        net = _build_network(
            mode, pool.sources[0].dim, geo, config, 1 if n_classes == 2 else n_classes
        )
        n_params = count_parameters(net)
        transform = config.input_transform
        if transform == "auto":
            transform = "whiten" if mode == "cls-high" else "none"
        if transform != "none" and mode != "cls-resnet":
            dim = pool.sources[0].dim
            whiten = transform == "whiten" and dim <= config.max_whiten_dim
            mean, w = _input_transform(
                pool, train_idx, config.eval_batch_size, whiten, config.whiten_eps
            )
            net = torch.nn.Sequential(_affine_input(mean, w), net)
        fit = _train(pool, labels, train_idx, test_idx, net, config, rng, device, n_classes)
    return fit, (train_idx, test_idx, val_idx), n_params


def run_classifier(
    reference: Sample,
    generated: Sample,
    geometry: str | Geometry,
    mode: str = "cls-low",
    config: str | ClassifierConfig = "fast",
    seed: int = 0,
    repeats: int = 1,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    threads: int | None = None,
) -> ClassifierResult:
    """Train the binary classifier reference-vs-generated and report calibrated AUC/JSD.

    Args:
        reference: The Geant4 sample (label 1): a CaloChallenge file or ``(E (N, 1), X (N, n_voxels))`` in MeV.
        generated: The sample under test (label 0), same forms; must have as many showers.
        geometry: The binning (name or object).
        mode: ``"cls-low"``, ``"cls-low-normed"``, ``"cls-high"`` or ``"cls-resnet"``.
        config: A :class:`ClassifierConfig` or preset name (``"fast"``, ``"official"``).
        seed: Base seed; repeat ``r`` uses ``seed + r``.
        repeats: Independent trainings (new split and initialisation each).
        device: torch device string.
        cache_dir: Folder of the temporary disk cache of the inputs (used when they
            exceed ``config.max_input_gb``; default: the system's temporary folder).
        threads: torch intra-op threads for this call (None: leave torch's setting).
            Results are reproducible for the same number of threads.

    Raises:
        ConfigError: Unknown mode/preset, unequal sample sizes, too few showers,
            ``repeats < 1``, ``cls-resnet`` on an irregular geometry.
        DataFormatError: Malformed samples.
    """
    with _torch_threads(threads):
        return _run_binary(
            reference, generated, geometry, mode, config, seed, repeats, device, cache_dir
        )


def _run_binary(
    reference: Sample,
    generated: Sample,
    geometry: str | Geometry,
    mode: str,
    config: str | ClassifierConfig,
    seed: int,
    repeats: int,
    device: str,
    cache_dir: str | Path | None,
) -> ClassifierResult:
    from sklearn.isotonic import IsotonicRegression

    cfg = get_preset(config)
    if repeats < 1:
        raise ConfigError(f"--repeats: must be >= 1, got {repeats}")
    geo, pool = _prepare(
        [("reference", reference), ("generated", generated)], geometry, mode, cfg, cache_dir
    )
    try:
        n_ref, n_gen = pool.sources[0].n, pool.sources[1].n
        if n_ref != n_gen:
            raise ConfigError(
                f"classifier: reference has {n_ref} showers but generated has {n_gen}; "
                "the classifier split needs equal counts (subsample the larger one)"
            )
        sizes, kind = split_sizes(n_ref, geo, cfg.official_split)
        if kind == "fractional":
            logger.warning(
                "classifier: %d showers per class is not the official file size for %r; "
                "using the 60/20/20 split %s",
                n_ref,
                geo.name,
                sizes,
            )
        labels = np.concatenate([np.ones(n_ref, np.int64), np.zeros(n_gen, np.int64)])
        results = []
        n_params = 0
        for r in range(repeats):
            s = seed + r
            fit, (_, test_idx, val_idx), n_params = _fit_one(
                pool, labels, sizes, geo, mode, cfg, s, device, 2
            )
            import torch

            dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
            p_test = _sigmoid(
                _scores(fit.model, pool, test_idx, cfg.eval_batch_size, dtype, device)
            )
            p_val = _sigmoid(_scores(fit.model, pool, val_idx, cfg.eval_batch_size, dtype, device))
            iso = IsotonicRegression(out_of_bounds="clip", y_min=1e-6, y_max=1.0 - 1e-6)
            iso.fit(np.clip(p_test, 1e-6, 1 - 1e-6), labels[test_idx])
            p_cal = iso.predict(np.clip(p_val, 1e-6, 1 - 1e-6))
            cal = _binary_metrics(p_cal, labels[val_idx])
            raw = _binary_metrics(p_val, labels[val_idx])
            results.append(
                RepeatResult(
                    seed=s,
                    auc=cal["auc"],
                    jsd=cal["jsd"],
                    accuracy=cal["accuracy"],
                    bce=cal["bce"],
                    auc_uncalibrated=raw["auc"],
                    jsd_uncalibrated=raw["jsd"],
                    accuracy_uncalibrated=raw["accuracy"],
                    epochs_run=fit.epochs_run,
                    best_epoch=fit.best_epoch,
                    train_time_s=fit.train_time_s,
                )
            )
    finally:
        pool.close()
    return ClassifierResult(
        mode=mode,
        config=cfg,
        geometry=geo.name,
        n_reference=n_ref,
        n_generated=n_gen,
        split=sizes,
        split_kind=kind,
        n_parameters=n_params,
        device=device,
        repeats=tuple(results),
    )


def _sigmoid(logits: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    z = logits[:, 0]
    return np.exp(-np.logaddexp(0.0, -z))


# --------------------------------------------------------------------- multiclass


@dataclass(frozen=True)
class MulticlassResult:
    """Outcome of :func:`run_multiclass`.

    Attributes:
        names: Class names, ``"reference"`` first.
        log_posterior: Per generated sample, the mean over its validation showers of
            ln p(reference | x) (higher = more reference-like; an indistinguishable
            sample approaches the reference's own value).
        reference_log_posterior: The same mean over the reference's validation showers.
        accuracy: Validation accuracy of the (K+1)-class classifier.
        confusion: ``(K+1, K+1)`` validation confusion matrix (rows: true class).
    """

    mode: str
    config: ClassifierConfig
    names: tuple[str, ...]
    log_posterior: dict[str, float]
    reference_log_posterior: float
    accuracy: float
    confusion: tuple[tuple[int, ...], ...]
    split: tuple[int, int, int]
    split_kind: str
    n_parameters: int
    epochs_run: int
    train_time_s: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["config"] = self.config.to_dict()
        return d


def run_multiclass(
    reference: Sample,
    generated: Mapping[str, Sample],
    geometry: str | Geometry,
    mode: str = "cls-high",
    config: str | ClassifierConfig = "fast",
    seed: int = 0,
    device: str = "cpu",
    cache_dir: str | Path | None = None,
    threads: int | None = None,
) -> MulticlassResult:
    """A (K+1)-class classifier over {reference, each generated sample}.

    Definition (ours; the organisers' notebook was not reachable): every sample is
    split like the binary test (same per-class sizes); a softmax network (same
    architecture and training as the binary test, cross-entropy, the epoch with the
    best test-split selection metric kept) is trained on all train splits; for each
    generated sample the reported score is the mean, over its validation showers,
    of the natural-log posterior of the reference class,
    ``mean_x ln p(reference | x)``. Uniform class priors (equal sample sizes).

    ``cache_dir`` and ``threads`` as in :func:`run_classifier`.

    Raises:
        ConfigError: No generated sample, a name ``"reference"``, unequal sizes, too few showers.
    """
    with _torch_threads(threads):
        return _run_multiclass(
            reference, generated, geometry, mode, config, seed, device, cache_dir
        )


def _run_multiclass(
    reference: Sample,
    generated: Mapping[str, Sample],
    geometry: str | Geometry,
    mode: str,
    config: str | ClassifierConfig,
    seed: int,
    device: str,
    cache_dir: str | Path | None,
) -> MulticlassResult:
    cfg = get_preset(config)
    if not generated:
        raise ConfigError("multiclass: give at least one generated sample")
    names = ("reference", *generated.keys())
    if len(set(names)) != len(names):
        raise ConfigError("multiclass: a generated sample must not be called 'reference'")
    samples = [("reference", reference)] + [(k, v) for k, v in generated.items()]
    geo, pool = _prepare(samples, geometry, mode, cfg, cache_dir)
    try:
        counts = {nm: s.n for nm, s in zip(names, pool.sources)}
        if len(set(counts.values())) != 1:
            raise ConfigError(f"multiclass: all samples need equal counts, got {counts}")
        n = pool.sources[0].n
        sizes, kind = split_sizes(n, geo, cfg.official_split)
        k = len(names)
        labels = np.repeat(np.arange(k, dtype=np.int64), n)
        fit, (_, _, val_idx), n_params = _fit_one(
            pool, labels, sizes, geo, mode, cfg, seed, device, k
        )
        import torch

        dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
        logits = _scores(fit.model, pool, val_idx, cfg.eval_batch_size, dtype, device)
        logp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
        y = labels[val_idx]
        conf = np.zeros((k, k), dtype=np.int64)
        np.add.at(conf, (y, logits.argmax(axis=1)), 1)
        lp = {nm: float(logp[y == i, 0].mean()) for i, nm in enumerate(names)}
    finally:
        pool.close()
    return MulticlassResult(
        mode=mode,
        config=cfg,
        names=names,
        log_posterior={nm: lp[nm] for nm in names[1:]},
        reference_log_posterior=lp["reference"],
        accuracy=float(np.mean(logits.argmax(axis=1) == y)),
        confusion=tuple(tuple(int(v) for v in row) for row in conf),
        split=sizes,
        split_kind=kind,
        n_parameters=n_params,
        epochs_run=fit.epochs_run,
        train_time_s=fit.train_time_s,
    )
