"""DCTR refinement: per-event weights that move a generated sample onto a reference.

A classifier trained to tell generated events (label 0) from reference events (label 1)
estimates ``f(x) = p_ref / (p_ref + p_gen)``, so ``w(x) = f / (1 - f)`` is the density ratio
``p_ref(x) / p_gen(x)``: generated events weighted by ``w`` follow the reference (Deep
neural network Classifiers for Tuning and Reweighting, Andreassen & Nachman, PRD 101 (2020)
091901, arXiv:1907.08209). With the conditions (e.g. the incident energy) among the
classifier's inputs the ratio is parametrised in them, ``p_ref(x | c) / p_gen(x | c)``, as long
as both samples share the distribution of ``c`` (generate for the reference's conditions).
Post-hoc refinement of generated calorimeter showers this way: Diefenbacher et al., JINST 15
(2020) P11004 (arXiv:2009.03796).

The regularisation rule (documented, applied by :meth:`Reweighter.weights`):

1. the network's logit ``z`` is calibrated by one temperature ``T`` fitted on a held-out 20 %
   of both samples (:func:`fit_temperature`), ``w = exp(z / T)``: a network trained on a few
   thousand events per class is over-confident, and its raw ratios are far wider than the
   true ones; isotonic calibration is not used (a step function whose extreme steps rest on
   a handful of events);
2. the ratios are normalised to mean 1 within each group of events with the same condition
   (:func:`condition_groups`: each distinct value of a discrete condition, else deciles),
   clipped to ``[1 / clip, clip]`` and normalised again (:func:`regularise`), so that
   reweighting never changes the distribution of the conditions. The clip is symmetric in
   ``log w``: where the classifier finds most events of a group unlike the reference, a
   one-sided cap is undone by the normalisation (the few remaining events carry the whole
   group), and the effective sample size collapses; the floor prevents that, at the price of
   correcting such regions only by a factor ``clip``. The fraction clipped is reported.

The price of weights is statistical: ``n`` weighted events are worth the effective sample
size ``ESS = (sum w)^2 / sum w^2`` (Kish) unweighted ones; :func:`effective_sample_size`.

This module works on feature arrays; :mod:`physgen.calo.refine` builds shower inputs and the
``physgen refine`` command on top of it.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.errors import ConfigError, DataFormatError
from physgen.metrics.classifier import ClassifierConfig, affine_input, build_dnn, get_preset
from physgen.metrics.twosample import LikelihoodRatio, fit_likelihood_ratio

__all__ = [
    "Reweighter",
    "condition_groups",
    "effective_sample_size",
    "fit_reweighter",
    "fit_temperature",
    "normalise_in_groups",
    "regularise",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
#: Format tag of saved reweighters.
FORMAT = "physgen-reweighter-1"


def effective_sample_size(weights: npt.ArrayLike) -> float:
    """Kish's effective sample size ``(sum w)^2 / sum w^2`` of weights ``(N,)``.

    Equals N for equal weights and 1 when one event carries all the weight.

    Example:
        >>> effective_sample_size([1.0, 1.0, 1.0, 1.0])
        4.0
        >>> round(effective_sample_size([1.0, 0.0, 0.0, 0.0]), 6)
        1.0
    """
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    s2 = float(np.sum(w * w))
    if s2 <= 0:
        return 0.0
    return float(np.sum(w)) ** 2 / s2


def condition_groups(
    conditions: npt.ArrayLike, max_discrete: int = 64, n_quantiles: int = 10
) -> I64:
    """Group index ``(N,)`` of every event by its condition (1-D, e.g. the incident energy).

    At most ``max_discrete`` distinct values (CaloChallenge dataset 1: 15 energies): one
    group per value. Otherwise ``n_quantiles`` groups of (nearly) equal size in the
    condition's quantiles.
    """
    c = np.asarray(conditions, dtype=np.float64).reshape(len(np.asarray(conditions)), -1)[:, 0]
    values, inverse = np.unique(c, return_inverse=True)
    if len(values) <= max_discrete:
        return inverse.astype(np.int64)
    edges = np.quantile(c, np.linspace(0.0, 1.0, n_quantiles + 1)[1:-1])
    return np.searchsorted(edges, c, side="right").astype(np.int64)


def regularise(ratios: npt.ArrayLike, clip: float, groups: npt.ArrayLike | None = None) -> F64:
    """The weight rule: ratios normalised to mean 1 per group, clipped to ``[1 / clip, clip]``
    (symmetric in log w), normalised again. No event carries more than about ``clip`` times,
    or less than about ``1 / clip`` times, the mean weight of its group, and reweighting never
    changes the distribution of the groups (the conditions)."""
    w = normalise_in_groups(ratios, groups)
    return normalise_in_groups(np.clip(w, 1.0 / clip, clip), groups)


def normalise_in_groups(weights: npt.ArrayLike, groups: npt.ArrayLike | None = None) -> F64:
    """Weights rescaled to mean 1 within each group (all events one group when None)."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1).copy()
    g = np.zeros(len(w), np.int64) if groups is None else np.asarray(groups, np.int64)
    for k in np.unique(g):
        sel = g == k
        m = w[sel].mean()
        w[sel] = w[sel] / m if m > 0 else 1.0
    out: F64 = w
    return out


@dataclass
class Reweighter:
    """A trained DCTR reweighter (use :func:`fit_reweighter` or :meth:`load`).

    Attributes:
        ratios: The density ratios ``p_ref / p_gen`` of its members (classifiers); the
            reweighter's log ratio is their mean log ratio (an ensemble average: less noise
            than any member), divided by the temperature ``info["temperature"]``.
        clip: Largest weight before normalisation.
        info: Metadata (what it was trained on, its diagnostics, provenance), JSON-able.
    """

    ratios: list[LikelihoodRatio]
    clip: float = 10.0
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_inputs(self) -> int:
        """Number of input columns the classifier takes."""
        return int(self.info["n_inputs"])

    def raw_weights(self, x: npt.ArrayLike) -> F64:
        """Unclipped, unnormalised ratios ``f / (1 - f)`` ``(N,)`` for features ``x (N, F)``."""
        arr = np.asarray(x, dtype=np.float64)
        arr = arr[:, None] if arr.ndim == 1 else arr
        if arr.ndim != 2 or arr.shape[1] != self.n_inputs:
            raise DataFormatError(
                f"reweighter: expected features (N, {self.n_inputs}), got {arr.shape}"
            )
        if not np.isfinite(arr).all():
            raise DataFormatError("reweighter: features hold NaN or inf")
        out: F64 = np.exp(self.log_ratio(arr) / float(self.info.get("temperature", 1.0)))
        return out

    def log_ratio(self, x: npt.NDArray[np.float64]) -> F64:
        """The members' mean log ratio, before the temperature ``(N,)``."""
        out: F64 = np.mean([r.log_ratio(x) for r in self.ratios], axis=0)
        return out

    def weights(self, x: npt.ArrayLike, groups: npt.ArrayLike | None = None) -> F64:
        """Regularised weights ``(N,)`` (:func:`regularise`: mean 1 per group of ``groups``, see
        :func:`condition_groups`, None: over all events; capped at ``clip``; mean 1 again)."""
        return regularise(self.raw_weights(x), self.clip, groups)

    def state(self) -> dict[str, Any]:
        """Tensors and JSON metadata that :meth:`load` rebuilds the reweighter from."""
        cfg = self.ratios[0].config
        meta = {
            "format": FORMAT,
            "clip": self.clip,
            "config": cfg.to_dict(),
            "affine": _has_affine(self.ratios[0].model),
            "members": len(self.ratios),
            "info": self.info,
        }
        sds = [
            {k: v.detach().cpu().clone() for k, v in r.model.state_dict().items()}
            for r in self.ratios
        ]
        return {"meta": json.dumps(meta, default=str), "state_dicts": sds}

    def save(self, path: str | Path) -> Path:
        """Write the reweighter to one file, atomically (load it with :meth:`load`)."""
        import torch

        from physgen.outputs import atomic_path

        p = Path(path)
        with atomic_path(p) as tmp:
            torch.save(self.state(), tmp)
        return p

    @classmethod
    def load(cls, path: str | Path) -> Reweighter:
        """Read a reweighter written by :meth:`save` (``torch.load(weights_only=True)``)."""
        import torch

        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"{p}: no such reweighter file")
        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
            meta = json.loads(obj["meta"])
            sds = obj["state_dicts"]
        except Exception as exc:  # pickle errors, missing keys, bad JSON
            raise DataFormatError(f"{p}: not a physgen reweighter file ({exc})") from exc
        if meta.get("format") != FORMAT:
            raise DataFormatError(
                f"{p}: not a physgen reweighter file (format {meta.get('format')!r})"
            )
        return cls.from_state(meta, sds)

    @classmethod
    def from_state(cls, meta: dict[str, Any], state_dicts: list[dict[str, Any]]) -> Reweighter:
        """Rebuild from :meth:`state`'s metadata (decoded) and tensors."""
        import torch

        known = {f.name for f in dataclasses.fields(ClassifierConfig)}
        cfg = ClassifierConfig(**{k: v for k, v in meta["config"].items() if k in known})
        n = int(meta["info"]["n_inputs"])
        ratios = []
        for sd in state_dicts:
            net = _rebuild(n, cfg, bool(meta["affine"]), sd)
            net.load_state_dict(sd)
            net.to(dtype=torch.float64 if cfg.dtype == "float64" else torch.float32).eval()
            ratios.append(LikelihoodRatio(net, None, cfg, "cpu"))
        return cls(ratios, float(meta["clip"]), meta["info"])


def _split_rows(n: int, holdout: float, rng: np.random.Generator) -> tuple[I64, I64]:
    perm = rng.permutation(n).astype(np.int64)
    k = round(holdout * n)
    return np.sort(perm[k:]), np.sort(perm[:k])


def fit_temperature(
    log_ratio_generated: npt.ArrayLike,
    log_ratio_reference: npt.ArrayLike,
    generated_weights: npt.ArrayLike | None = None,
) -> float:
    """The temperature ``T`` minimising the held-out cross-entropy of ``sigmoid(logit / T)``.

    Temperature scaling (Guo et al., ICML 2017, arXiv:1706.04599): one scalar that undoes a
    network's over-confidence (T > 1) without moving its ranking; the classes are balanced
    by weight. DCTR weights ``exp(logit / T)`` are then calibrated density ratios.
    """
    from scipy.optimize import minimize_scalar

    lg = np.asarray(log_ratio_generated, dtype=np.float64)
    lr = np.asarray(log_ratio_reference, dtype=np.float64)
    wg = np.ones(len(lg)) if generated_weights is None else np.asarray(generated_weights, float)
    wg = wg / wg.sum()
    wr = np.full(len(lr), 1.0 / len(lr))

    def bce(log_t: float) -> float:
        t = math.exp(log_t)
        # label 1 (reference): -log sigmoid(z); label 0 (generated): -log(1 - sigmoid(z))
        return float(wr @ np.logaddexp(0.0, -lr / t) + wg @ np.logaddexp(0.0, lg / t))

    res = minimize_scalar(bce, bounds=(math.log(0.05), math.log(50.0)), method="bounded")
    return float(math.exp(res.x))


def _has_affine(model: Any) -> bool:
    import torch

    return isinstance(model, torch.nn.Sequential) and hasattr(model[0], "mean")


def _rebuild(n: int, cfg: ClassifierConfig, affine: bool, sd: dict[str, Any]) -> Any:
    import torch

    net = build_dnn(n, cfg)
    if not affine:
        return net
    w_shape = tuple(sd["0.weight"].shape)
    return torch.nn.Sequential(affine_input(np.zeros(n), np.zeros(w_shape)), net)


def fit_reweighter(
    generated: npt.ArrayLike,
    reference: npt.ArrayLike,
    *,
    config: str | ClassifierConfig = "fast",
    clip: float = 10.0,
    seed: int = 0,
    threads: int | None = None,
    device: str = "cpu",
    generated_weights: npt.ArrayLike | None = None,
    info: dict[str, Any] | None = None,
    holdout: float = 0.2,
    members: int = 1,
) -> Reweighter:
    """Train a DCTR reweighter from generated to reference features.

    Args:
        generated: Generated events ``(N0, F)`` (label 0), conditions among the columns.
        reference: Reference events ``(N1, F)`` (label 1).
        config: Classifier preset or config (80 % of each sample trains, 20 % selects the
            epoch: :func:`physgen.metrics.twosample.fit_likelihood_ratio`).
        clip: Largest weight before normalisation (> 1).
        seed: Split and initialisation seed.
        threads: torch threads (None: leave torch's setting).
        device: torch device.
        generated_weights: Optional prior weights of the generated events (>= 0).
        info: Extra metadata stored with the reweighter.
        holdout: Fraction of each sample kept out of the training for the temperature
            calibration and the held-out diagnostics (0: no calibration).
        members: Classifiers trained (seeds ``seed + k``, each its own epoch-selection
            split); their log ratios are averaged, which lowers the noise of the weights.

    Returns:
        The reweighter; ``info`` holds ``n_inputs``, ``n_generated``, ``n_reference``,
        ``seed``, ``clip``, ``temperature`` and the held-out ``ess_fraction`` and
        ``clipped_fraction``.

    Raises:
        ConfigError: ``clip <= 1``.
        DataFormatError: Mismatched shapes, NaN/inf features, bad weights.
    """
    if not (math.isfinite(clip) and clip > 1.0):
        raise ConfigError(f"--clip: the largest weight must be > 1, got {clip}")
    if not 0.0 <= holdout < 0.5:
        raise ConfigError(f"holdout: expected a fraction in [0, 0.5), got {holdout}")
    g = np.asarray(generated, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    g = g[:, None] if g.ndim == 1 else g
    r = r[:, None] if r.ndim == 1 else r
    wg = None if generated_weights is None else np.asarray(generated_weights, np.float64).ravel()
    rng = np.random.default_rng([seed, 0x43414C])
    fit_g, cal_g = _split_rows(len(g), holdout, rng)
    fit_r, cal_r = _split_rows(len(r), holdout, rng)
    if members < 1:
        raise ConfigError(f"members: expected >= 1, got {members}")
    ratios = [
        fit_likelihood_ratio(
            g[fit_g],
            r[fit_r],
            w0=None if wg is None else wg[fit_g],
            config=get_preset(config),
            seed=seed + k,
            calibrated=False,
            device=device,
            threads=threads,
        )
        for k in range(members)
    ]
    meta = {
        **(info or {}),
        "n_inputs": int(g.shape[1]),
        "n_generated": len(g),
        "n_reference": len(r),
        "seed": seed,
        "clip": clip,
        "temperature": 1.0,
        "members": members,
    }
    rw = Reweighter(ratios, clip, meta)
    if len(cal_g) and len(cal_r):
        lg, lr = rw.log_ratio(g[cal_g]), rw.log_ratio(r[cal_r])
        t = fit_temperature(lg, lr, None if wg is None else wg[cal_g])
        rw.info["temperature"] = t
        w_cal = rw.weights(g[cal_g])
        rw.info["holdout"] = {
            "n_generated": len(cal_g),
            "n_reference": len(cal_r),
            "ess_fraction": effective_sample_size(w_cal) / len(w_cal),
            "clipped_fraction": float(
                np.mean(np.abs(np.log(normalise_in_groups(np.exp(lg / t)))) > math.log(clip))
            ),
        }
    return rw
