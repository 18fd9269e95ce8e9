"""The multiclass variant of the CaloChallenge classifier test: one network over
{reference, each generated sample}, built on the binary test's inputs, split and training
(:mod:`physgen.calo.evaluate.classifier`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from physgen.calo.evaluate.classifier import Sample, _fit_one, _prepare, split_sizes
from physgen.calo.geometry import Geometry
from physgen.errors import ConfigError
from physgen.metrics.classifier import ClassifierConfig, get_preset, network_scores, torch_threads

__all__ = ["MulticlassResult", "run_multiclass"]


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
    with torch_threads(threads):
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
        logits = network_scores(fit.model, pool, val_idx, cfg.eval_batch_size, dtype, device)
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
