"""The CaloChallenge binary classifier test (and a multiclass variant).

A classifier is trained to tell reference showers (label 1, Geant4) from
generated ones (label 0); its calibrated AUC and JSD on a held-out validation
split measure how far the generated sample is from the reference.

Protocol (official definitions, CaloChallenge ``evaluate.py``, see
``calochallenge.md`` section 8):

* Inputs, after zeroing voxels below ``geometry.threshold_mev`` in both samples:
  ``cls-low`` = [log10 E_inc, voxel / E_inc]; ``cls-low-normed`` = [log10 E_inc,
  voxel / (E_layer + 1e-16), log10(E_layer + 1e-8) per layer]; ``cls-high`` = the
  official high-level feature vector (:func:`physgen.calo.evaluate.features.high_level_feature_vector`);
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
:mod:`physgen.calo.evaluate.classifier_store`; the three give the same numbers.
The network itself runs in ``ClassifierConfig.dtype`` (float64 for the
official preset, float32 for the fast one).

Determinism: the same seed gives the same result on CPU with the same number of
torch threads. Repeat ``r`` uses seed ``seed + r`` (a new split and a new
initialisation, as the organisers' 10 independent trainings).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from physgen.calo.evaluate.classifier_inputs import (
    F32,
    MODES,
    check_mode,
    classifier_inputs,
    high_level_inputs,
    input_dim,
    low_level_inputs,
    low_level_normed_inputs,
)
from physgen.calo.evaluate.classifier_store import InputPool, SampleInputs
from physgen.calo.evaluate.timing import count_parameters
from physgen.calo.geometry import Geometry, get_geometry
from physgen.calo.h5layout import check_weights
from physgen.errors import ConfigError, DataFormatError
from physgen.metrics.classifier import (
    PRESETS,
    ClassifierConfig,
    Fit,
    affine_input,
    balanced_weights,
    binary_metrics,
    build_dnn,
    calibrate,
    get_preset,
    input_transform,
    mean_std,
    network_scores,
    sigmoid,
    split_indices,
    torch_threads,
    train_network,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "MODES",
    "PRESETS",
    "ClassifierConfig",
    "ClassifierResult",
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
    "split_sizes",
]

logger = logging.getLogger(__name__)

Sample = str | Path | tuple[npt.ArrayLike, npt.ArrayLike]

#: Official per-class split sizes (train, test, validation) by geometry and file size.
OFFICIAL_SPLITS: dict[str, tuple[int, tuple[int, int, int]]] = {
    "1-photons": (121_000, (80_000, 20_000, 21_000)),
    "1-pions": (120_800, (80_000, 20_000, 20_800)),
    "2": (100_000, (60_000, 20_000, 20_000)),
    "3": (100_000, (60_000, 20_000, 20_000)),
}
#: Smallest per-class sample the split accepts (gives 30/10/10).
MIN_SHOWERS = 50


# --------------------------------------------------------------------- config


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


def _build_network(
    mode: str, n_inputs: int, geometry: Geometry, config: ClassifierConfig, n_outputs: int
) -> torch.nn.Module:
    if mode == "cls-resnet":
        from physgen.calo.evaluate.resnet import ResNet3DClassifier

        return ResNet3DClassifier(geometry, n_outputs=n_outputs)
    return build_dnn(n_inputs, config, n_outputs)


# --------------------------------------------------------------------- training


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
    weighted: bool = False

    def _stat(self, key: str) -> tuple[float, float]:
        return mean_std([getattr(r, key) for r in self.repeats])

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
            "weighted": self.weighted,
            "n_repeats": len(self.repeats),
            "train_time_s": self.train_time_s,
            "repeats": [asdict(r) for r in self.repeats],
        }
        for key in ("auc", "jsd", "accuracy", "auc_uncalibrated", "jsd_uncalibrated"):
            m, s = self._stat(key)
            out[key], out[key + "_std"] = m, s
        return out


# --------------------------------------------------------------------- drivers


def _prepare(
    samples: list[tuple[str, Sample]],
    geometry: str | Geometry,
    mode: str,
    config: ClassifierConfig,
    cache_dir: str | Path | None = None,
) -> tuple[Geometry, InputPool]:
    check_mode(mode)
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
    row_weights: npt.NDArray[np.float64] | None = None,
) -> tuple[Fit, tuple[npt.NDArray[np.int64], ...], int]:
    import torch

    rng = np.random.default_rng(seed)
    train_idx, test_idx, val_idx = split_indices(pool, sizes, rng)
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
            mean, w = input_transform(
                pool, train_idx, config.eval_batch_size, whiten, config.whiten_eps
            )
            net = torch.nn.Sequential(affine_input(mean, w), net)
        w_all = None
        if row_weights is not None:  # each split's classes balanced by weight
            w_all = np.zeros(len(labels))
            for idx in (train_idx, test_idx):
                w_all[idx] = balanced_weights(row_weights, labels, idx)
        fit = train_network(
            pool, labels, train_idx, test_idx, net, config, rng, device, n_classes, weights=w_all
        )
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
    generated_weights: npt.ArrayLike | None = None,
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
        generated_weights: Per-shower weights of the generated sample ``(N,)`` (e.g. DCTR
            refinement), >= 0. Training, epoch selection, calibration and the metrics then
            use weighted losses and a weighted ROC, with the two classes of every split
            balanced by total weight; the validation statistics are those of the weighted
            sample, whose power is its effective sample size.

    Raises:
        ConfigError: Unknown mode/preset, unequal sample sizes, too few showers,
            ``repeats < 1``, ``cls-resnet`` on an irregular geometry.
        DataFormatError: Malformed samples.
    """
    with torch_threads(threads):
        return _run_binary(
            reference,
            generated,
            geometry,
            mode,
            config,
            seed,
            repeats,
            device,
            cache_dir,
            generated_weights,
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
    generated_weights: npt.ArrayLike | None = None,
) -> ClassifierResult:
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
        rows_w = None
        if generated_weights is not None:
            wg = check_weights(generated_weights, "generated_weights")
            if wg.size != n_gen:
                raise DataFormatError(f"generated_weights: {wg.size} for {n_gen} showers")
            rows_w = np.concatenate([np.ones(n_ref), wg])
        results = []
        n_params = 0
        for r in range(repeats):
            s = seed + r
            fit, (_, test_idx, val_idx), n_params = _fit_one(
                pool, labels, sizes, geo, mode, cfg, s, device, 2, rows_w
            )
            import torch

            dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
            p_test = sigmoid(
                network_scores(fit.model, pool, test_idx, cfg.eval_batch_size, dtype, device)
            )
            p_val = sigmoid(
                network_scores(fit.model, pool, val_idx, cfg.eval_batch_size, dtype, device)
            )
            w_test = w_val = None
            if rows_w is not None:
                w_test = balanced_weights(rows_w, labels, test_idx)
                w_val = balanced_weights(rows_w, labels, val_idx)
            p_cal = calibrate(p_test, labels[test_idx], p_val, w_test)
            cal = binary_metrics(p_cal, labels[val_idx], w_val)
            raw = binary_metrics(p_val, labels[val_idx], w_val)
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
        weighted=rows_w is not None,
    )
