"""Generative unfolding: learn ``p(particle | detector)`` on simulation, sample it for data.

A conditional density of the particle-level observables ``z (D,)`` given the detector-level
ones ``x (D,)`` is trained on simulated pairs with the project's generic core
(:func:`physgen.density.fit`): ``model="flow"`` is a conditional spline flow, the cINN of
Bellagente et al., "Invertible networks or partons to detector and back again", SciPost Phys.
9, 074 (arXiv:2006.06685); ``model="cfm"`` is conditional flow matching, as compared in "The
Landscape of Unfolding with Machine Learning" (Huetsch et al., arXiv:2404.18807). Every
measured event is then unfolded into ``samples_per_event`` draws of its posterior.

**Prior dependence and iterations** (IcINN, Backes et al., arXiv:2212.08674). The learnt
posterior carries the simulation's particle-level prior. With ``iterations > 1`` a weighted
classifier (:func:`physgen.metrics.twosample.fit_likelihood_ratio`) between the simulated
particle-level events and the unfolded ones gives ``r(z) = p_unfolded(z) / p_MC(z)``; the
simulated pairs are reweighted by ``r(z)`` (gen and reco together: the weight belongs to the
event) and the conditional model is trained again, from scratch, on the reweighted
simulation. :func:`physgen.density.fit` takes no event weights, so weighted training sets
are drawn by systematic resampling (unbiased for the weighted likelihood; duplicates
appear where weights exceed 1, and copies of one event may sit in both the training and the
validation split of the fit, which makes its early stopping slightly optimistic).

**Acceptance.** The response is learnt on simulated events that pass both the particle-level
and the detector-level selection. Two corrections, each a classifier on simulation (both on
by default, each used only when the simulation has such events), extend the result to the
particle-level phase space:

* *fakes* (pass reco, fail gen): each measured event is weighted by the purity
  ``P(pass gen | x, pass reco)`` learnt on simulation (matched events carry the current
  prior weights, fakes their MC weights), i.e. the simulation is trusted to model the fake
  rate;
* *efficiency* (pass gen, fail reco): each unfolded sample is weighted by ``1 / ε(z)``,
  ``ε(z) = P(pass reco | z, pass gen)`` learnt on simulation (a detector property, fitted
  once), with ``ε`` floored at ``efficiency_floor``.

The sum of the final weights then estimates the particle-level event count of the data.
Events failing reco in the data cannot be unfolded event by event; the efficiency weight
stands for them in distribution only.

**Calibration.** :func:`posterior_calibration` checks per-event posteriors on held-out
simulated pairs: the rank of the truth among its posterior samples (uniform if calibrated,
arXiv:2006.06685) and the coverage of central intervals.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from physgen.errors import ConfigError, DataFormatError
from physgen.unfold.calibration import (
    PosteriorCalibration,
    check_event_weights,
    derived_seed,
    finite_matrix,
    posterior_calibration,
)

if TYPE_CHECKING:  # pragma: no cover
    from physgen.density import DensityEstimator
    from physgen.metrics.classifier import ClassifierConfig
    from physgen.unfold.data import UnfoldingData, UnfoldingMC

__all__ = [
    "MODELS",
    "GenerativeResult",
    "PosteriorCalibration",
    "generative_unfold",
    "posterior_calibration",
]

log = logging.getLogger("physgen.unfold.generative")

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
B = npt.NDArray[np.bool_]

#: Conditional families offered for unfolding (both trained by :func:`physgen.density.fit`).
MODELS = ("flow", "cfm")
#: Fewest simulated events passing both selections needed to learn a response.
MIN_EVENTS = 100


# ---------------------------------------------------------------- result


@dataclass
class GenerativeResult:
    """Unfolded samples and how they were made (see :func:`generative_unfold`).

    Attributes:
        samples: ``(M, S, D)`` particle-level draws, ``S`` per measured event.
        weights: ``(M, S)`` their weights: data weight × purity / S × 1 / efficiency; the sum
            estimates the particle-level event count of the data.
        columns: Observable names ``(D,)``.
        calibration: Posterior calibration on held-out simulated pairs (None: not run).
        training: One dictionary per iteration: the fit summary, training-set size, distinct
            events and Kish effective size, the unfolded means and standard deviations per
            observable (before the efficiency weights), the largest IcINN prior weight.
        acceptance: What the fake and efficiency corrections did (None entries: not applied).
        timings: Seconds per stage.
        config: The resolved options (model, iterations, seed, ...).
        prior_weights: ``(N,)`` final weights of the simulated events (MC weight × IcINN
            prior weight; events failing gen keep their MC weight).
        estimator: The last trained conditional density (not saved by :meth:`save`).
    """

    samples: F64
    weights: F64
    columns: tuple[str, ...]
    calibration: PosteriorCalibration | None
    training: list[dict[str, Any]]
    acceptance: dict[str, Any]
    timings: dict[str, float]
    config: dict[str, Any]
    prior_weights: F64
    estimator: DensityEstimator | None = field(default=None, repr=False)

    def flat(self) -> tuple[F64, F64]:
        """``(samples (M·S, D), weights (M·S,))``, event by event."""
        m, s, d = self.samples.shape
        return self.samples.reshape(m * s, d), self.weights.reshape(m * s)

    def summary(self) -> dict[str, Any]:
        """JSON-ready description (no arrays)."""
        m, s, _ = self.samples.shape
        return {
            "method": f"generative-{self.config.get('model')}",
            "columns": list(self.columns),
            "n_events": m,
            "samples_per_event": s,
            "sum_of_weights": float(self.weights.sum()),
            "config": self.config,
            "training": self.training,
            "acceptance": self.acceptance,
            "calibration": None if self.calibration is None else self.calibration.as_dict(),
            "timings_s": self.timings,
        }

    def save(self, out: str | Path) -> Path:
        """Write ``samples.h5`` (datasets ``samples (M, S, D)``, ``weights (M, S)``,
        ``prior_weights (N,)``; attributes ``columns`` (list of str), ``summary`` (JSON),
        ``physgen_version``) and ``summary.json`` into the folder ``out``, each atomically.

        Returns:
            The path of ``samples.h5``.

        Raises:
            ConfigError: ``out`` is a file or its parent folder does not exist.
        """
        import h5py

        from physgen._version import __version__
        from physgen.outputs import atomic_path, atomic_write_text

        d = Path(out)
        if d.exists() and not d.is_dir():
            raise ConfigError(f"out {d}: is a file, expected a folder")
        if not d.parent.is_dir():
            raise ConfigError(f"out {d}: folder {d.parent} does not exist")
        d.mkdir(exist_ok=True)
        text = json.dumps(self.summary(), indent=2, default=_json_default)
        path = d / "samples.h5"
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as h:
            h.create_dataset("samples", data=self.samples, compression="gzip")
            h.create_dataset("weights", data=self.weights, compression="gzip")
            h.create_dataset("prior_weights", data=self.prior_weights, compression="gzip")
            h.attrs["columns"] = list(self.columns)
            h.attrs["summary"] = text
            h.attrs["physgen_version"] = __version__
        atomic_write_text(d / "summary.json", text + "\n")
        return path


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# ---------------------------------------------------------------- helpers


def systematic_resample(weights: F64, n: int, seed: int) -> I64:
    """``n`` indices drawn with probability ∝ ``weights`` by systematic resampling (one
    uniform offset, ``n`` evenly spaced points on the weight CDF; lower variance than
    multinomial draws), in random order."""
    rng = np.random.default_rng(seed)
    c = np.cumsum(weights)
    pos = (rng.uniform() + np.arange(n)) / n * c[-1]
    idx = np.minimum(np.searchsorted(c, pos, side="right"), len(weights) - 1)
    return rng.permutation(idx).astype(np.int64)


def _class_probability(
    x_neg: F64, w_neg: F64, x_pos: F64, w_pos: F64, classifier: Any, seed: int, device: str
) -> tuple[Callable[[F64], F64], float]:
    """``P(positive | x) = π₁ r / (π₁ r + π₀)`` from the class-balanced likelihood ratio
    ``r = p_pos / p_neg`` and the weighted class fraction ``π₁`` (a constant ``π₁`` when a
    class has fewer than the classifier's minimum of 10 events). Returns ``(P, π₁)``."""
    from physgen.metrics.twosample import fit_likelihood_ratio

    pi1 = float(w_pos.sum() / (w_pos.sum() + w_neg.sum()))
    if min(len(x_neg), len(x_pos)) < 10:
        return (lambda x: np.full(len(x), pi1)), pi1
    ratio = fit_likelihood_ratio(
        x_neg, x_pos, w0=w_neg, w1=w_pos, config=classifier, seed=seed, device=device
    )

    def prob(x: F64) -> F64:
        r = ratio(x)
        out: F64 = pi1 * r / (pi1 * r + (1.0 - pi1))
        return out

    return prob, pi1


def _integer_columns(spec: Any, gen: F64, columns: tuple[str, ...]) -> list[int]:
    """Indices of the dequantised observables: ``"auto"`` (whole-number gen values), a list of
    names, one name or comma-separated names in a string, or None."""
    if spec is None or spec is False:
        return []
    if isinstance(spec, str) and spec.strip() == "auto":
        return [j for j in range(gen.shape[1]) if bool(np.all(gen[:, j] == np.round(gen[:, j])))]
    if isinstance(spec, str):  # one name, or comma-separated names; never its characters
        spec = [name.strip() for name in spec.split(",") if name.strip()]
    for name in spec:
        if name not in columns:
            raise ConfigError(f"integer_columns: unknown observable {name!r}; have {list(columns)}")
    return [columns.index(name) for name in spec]


class _Rounded:
    """A conditional density whose samples are rounded in the integer columns."""

    def __init__(self, est: Any, ints: list[int], c: Any = None) -> None:
        self.est, self.ints, self.c = est, ints, c

    def __call__(self, c: Any) -> _Rounded:
        return _Rounded(self.est, self.ints, c)

    def sample(self, shape: Any, *, seed: int | None = None) -> F64:
        x = np.asarray(self.est(self.c).sample(shape, seed=seed), dtype=np.float64)
        x[..., self.ints] = np.round(x[..., self.ints])
        return x


def _moments(x: F64, w: F64) -> dict[str, list[float]]:
    mean = np.average(x, axis=0, weights=w)
    std = np.sqrt(np.average((x - mean) ** 2, axis=0, weights=w))
    return {"unfolded_mean": mean.tolist(), "unfolded_std": std.tolist()}


# ---------------------------------------------------------------- unfolding


def generative_unfold(
    mc: UnfoldingMC,
    data: UnfoldingData,
    *,
    model: str = "flow",
    iterations: int = 1,
    samples_per_event: int = 1,
    config: dict[str, Any] | None = None,
    optim: dict[str, Any] | None = None,
    epochs: int | None = None,
    max_time: str | float | None = None,
    bounds: list[Any] | None = None,
    integer_columns: Sequence[str] | str | None = "auto",
    classifier: str | ClassifierConfig = "fast",
    acceptance: bool = True,
    efficiency_floor: float = 0.01,
    calibration_events: int = 2000,
    calibration_samples: int = 100,
    seed: int = 0,
    device: str | None = "cpu",
    progress: bool | None = None,
    out: str | Path | None = None,
) -> GenerativeResult:
    """Unfold measured events by sampling a learnt ``p(particle | detector)``.

    Args:
        mc: Simulated pairs (:class:`~physgen.unfold.data.UnfoldingMC`: gen/reco ``(N, D)``,
            pass flags, weights ``>= 0``).
        data: Measured events (:class:`~physgen.unfold.data.UnfoldingData`: reco ``(M, D)``,
            weights ``>= 0``).
        model: ``flow`` (cINN, arXiv:2006.06685) or ``cfm`` (conditional flow matching).
        iterations: 1: plain generative unfolding; > 1: IcINN prior updates (arXiv:2212.08674).
        samples_per_event: Posterior draws per measured event (``S``).
        config: Options of the family (:data:`physgen.density.VECTOR_DEFAULTS`).
        optim: Optimisation options of :func:`physgen.density.fit`.
        epochs: Epochs per training (None: the library default of about 20,000 steps).
        max_time: Wall-time limit of each training (``"5m"`` or seconds).
        bounds: Per observable a ``(lo, hi)`` support or None (e.g. ``(0, None)`` for a mass),
            passed to :func:`physgen.density.fit`; samples then stay inside. Integer columns
            are bounded in their dequantised values (value ± ½).
        integer_columns: Observables dequantised for training (uniform noise of ±½ added to
            the particle-level values, samples rounded back): ``"auto"`` (columns whose
            simulated gen values are all whole numbers), a list of names, one name or
            comma-separated names (``"M"``, ``"M,n"``), or None.
        classifier: Classifier preset (any name of :data:`physgen.unfold.omnifold.PRESETS`:
            ``fast``, ``official``, ``small``) or config of the reweighting, purity and
            efficiency classifiers (:func:`physgen.metrics.twosample.fit_likelihood_ratio`).
        acceptance: Apply the fake (purity) and efficiency corrections where the simulation
            has such events (see the module docstring).
        efficiency_floor: Smallest efficiency used in ``1 / ε(z)``.
        calibration_events: Simulated pairs held out of training for
            :func:`posterior_calibration` (at most a tenth of them; 0: no calibration).
        calibration_samples: Posterior draws per held-out pair.
        seed: Seed of everything (splits, trainings, classifiers, draws).
        device: torch device of the trainings (``cpu``, ``cuda``; None: CUDA when available).
        progress: tqdm bars of the trainings (None: on a terminal only).
        out: Folder to write ``samples.h5``, ``summary.json`` and the final model (``model/``).

    Returns:
        A :class:`GenerativeResult` with samples ``(M, S, D)`` and weights ``(M, S)``.

    Raises:
        ConfigError: Bad options.
        DataFormatError: Different observables in ``mc`` and ``data``, negative weights,
            too few usable events.
    """
    from physgen import density
    from physgen.checks import check_seed
    from physgen.metrics.twosample import fit_likelihood_ratio
    from physgen.unfold.data import check_compatible
    from physgen.unfold.omnifold import get_classifier

    check_seed(seed)
    classifier = get_classifier(classifier, "classifier")  # a bad name fails before training
    t_all = time.monotonic()
    if model not in MODELS:
        raise ConfigError(f"model: expected one of {list(MODELS)}, got {model!r}")
    if int(iterations) < 1 or int(samples_per_event) < 1:
        raise ConfigError("iterations and samples_per_event must be >= 1")
    if not 0 < efficiency_floor <= 1:
        raise ConfigError(f"efficiency_floor: must be in (0, 1], got {efficiency_floor}")
    if calibration_events < 0 or calibration_samples < 1:
        raise ConfigError("calibration_events must be >= 0 and calibration_samples >= 1")
    check_compatible(mc, data)
    gen, reco = finite_matrix("mc.gen", mc.gen), finite_matrix("mc.reco", mc.reco)
    xd = finite_matrix("data.reco", data.reco)
    if gen.shape != reco.shape or xd.shape[1] != reco.shape[1]:
        raise DataFormatError(
            f"widths differ: mc.gen {gen.shape}, mc.reco {reco.shape}, data.reco {xd.shape}"
        )
    (n, d), m, s = gen.shape, xd.shape[0], int(samples_per_event)
    w_mc = check_event_weights("mc.weight", mc.weight, n)
    w_data = check_event_weights("data.weight", data.weight, m)
    p_gen = np.asarray(mc.pass_gen, dtype=bool).reshape(-1)
    p_reco = np.asarray(mc.pass_reco, dtype=bool).reshape(-1)
    if p_gen.shape != (n,) or p_reco.shape != (n,):
        raise DataFormatError(f"mc.pass_gen / mc.pass_reco: expected {n} flags each")
    columns = tuple(mc.columns) if mc.columns else tuple(f"z{j}" for j in range(d))
    both = np.flatnonzero(p_gen & p_reco)
    missed, fakes = np.flatnonzero(p_gen & ~p_reco), np.flatnonzero(p_reco & ~p_gen)
    if both.size < MIN_EVENTS:
        raise DataFormatError(
            f"mc: {both.size} events pass both selections, need >= {MIN_EVENTS} to learn "
            "the response"
        )
    ints = _integer_columns(integer_columns, gen[both], columns)
    perm = np.random.default_rng(derived_seed(seed, 0x5E1)).permutation(both)
    n_cal = min(int(calibration_events), both.size // 10)  # held out for the calibration
    cal_idx, train_idx = np.sort(perm[:n_cal]), np.sort(perm[n_cal:])
    timings: dict[str, float] = {}
    cdev = device or "cpu"  # the classifiers' device (None: the fits pick CUDA if present)
    acc: dict[str, Any] = {"purity": None, "efficiency": None}

    eff_fn = None  # efficiency: a detector property, fitted once on the original simulation
    if acceptance and missed.size:
        t0 = time.monotonic()
        eff_fn, pi = _class_probability(
            gen[missed],
            w_mc[missed],
            gen[both],
            w_mc[both],
            classifier,
            derived_seed(seed, 0xEF),
            cdev,
        )
        acc["efficiency"] = {"mean_efficiency_mc": pi, "n_missed_mc": int(missed.size)}
        timings["efficiency_classifier"] = time.monotonic() - t0

    nu = np.ones(n)  # IcINN prior weights (events failing gen keep 1)
    training: list[dict[str, Any]] = []
    for it in range(int(iterations)):
        purity = np.ones(m)  # of the measured events, under the current prior
        if acceptance and fakes.size:
            t0 = time.monotonic()
            wm = w_mc * nu
            pur_fn, pi = _class_probability(
                reco[fakes],
                wm[fakes],
                reco[both],
                wm[both],
                classifier,
                derived_seed(seed, 0xFA, it),
                cdev,
            )
            purity = pur_fn(xd)
            acc["purity"] = {
                "mean_purity_mc": pi,
                "mean_purity_data": float(np.average(purity, weights=w_data)),
                "n_fakes_mc": int(fakes.size),
            }
            timings[f"purity_classifier_{it + 1}"] = time.monotonic() - t0
        base_w = w_data * purity / s

        t0 = time.monotonic()  # training set: (resampled) pairs passing both selections
        wt = w_mc[train_idx] * nu[train_idx]
        rows = train_idx
        if not np.allclose(wt, wt[0]):
            rows = train_idx[systematic_resample(wt, train_idx.size, derived_seed(seed, 0x4E, it))]
        z_train = gen[rows].copy()
        if ints:  # uniform dequantisation of whole-number observables
            rng = np.random.default_rng(derived_seed(seed, 0xDE, it))
            z_train[:, ints] += rng.uniform(-0.5, 0.5, (rows.size, len(ints)))
        est = density.fit(
            z_train,
            reco[rows],
            model=model,
            config=config,
            optim=optim,
            bounds=bounds,
            max_time=max_time,
            epochs=epochs,
            seed=derived_seed(seed, 0xF17, it),
            x_names=list(columns),
            c_names=[f"{c}_reco" for c in columns],
            device=device,
            progress=progress,
        )
        timings[f"fit_{it + 1}"] = time.monotonic() - t0
        t0 = time.monotonic()
        sampler = _Rounded(est, ints) if ints else est
        draws = np.asarray(sampler(xd).sample(s, seed=derived_seed(seed, 0x5A, it)), np.float64)
        samples = np.ascontiguousarray(np.moveaxis(draws, 0, 1))  # (M, S, D)
        timings[f"sample_{it + 1}"] = time.monotonic() - t0
        keys = ("status", "step", "epoch", "best_val_loss", "elapsed_s")
        training.append(
            {
                "iteration": it + 1,
                "fit": {k: est.summary[k] for k in keys if k in est.summary},
                "n_train": int(rows.size),
                "n_distinct_train": int(np.unique(rows).size),
                "effective_train_size": float(wt.sum() ** 2 / np.sum(wt * wt)),
                **_moments(samples.reshape(-1, d), np.repeat(base_w, s)),
            }
        )
        if it + 1 < int(iterations):  # IcINN: move the simulated prior towards the result
            t0 = time.monotonic()
            ratio = fit_likelihood_ratio(
                gen[both],
                samples[:, 0, :],
                w0=w_mc[both],
                w1=base_w,
                config=classifier,
                seed=derived_seed(seed, 0x12, it),
                device=cdev,
            )
            nu = np.ones(n)
            nu[p_gen] = ratio(gen[p_gen])
            training[-1]["prior_weight_max"] = float(nu.max())
            timings[f"reweight_{it + 1}"] = time.monotonic() - t0
            log.info("IcINN iteration %d: prior weights up to %.3g", it + 1, nu.max())

    weights = np.repeat(base_w[:, None], s, axis=1)
    if eff_fn is not None:
        inv = 1.0 / np.maximum(eff_fn(samples.reshape(-1, d)).reshape(m, s), efficiency_floor)
        acc["efficiency"] |= {
            "mean_inverse_weight": float(np.average(inv, weights=weights)),
            "fraction_floored": float(np.mean(inv == 1.0 / efficiency_floor)),
        }
        weights *= inv
    calib = None
    if n_cal:
        t0 = time.monotonic()
        calib = posterior_calibration(
            _Rounded(est, ints) if ints else est,
            gen[cal_idx],
            reco[cal_idx],
            n_samples=calibration_samples,
            weights=w_mc[cal_idx] * nu[cal_idx],
            columns=columns,
            seed=derived_seed(seed, 0xCA),
        )
        timings["calibration"] = time.monotonic() - t0
    timings["total"] = time.monotonic() - t_all
    result = GenerativeResult(
        samples=samples,
        weights=weights,
        columns=columns,
        calibration=calib,
        training=training,
        acceptance=acc,
        timings={k: round(v, 3) for k, v in timings.items()},
        config={
            "model": model,
            "iterations": int(iterations),
            "samples_per_event": s,
            "model_config": dict(config or {}),
            "optim": dict(optim or {}),
            "epochs": epochs,
            "max_time": max_time,
            "bounds": bounds,
            "integer_columns": [columns[j] for j in ints],
            "classifier": classifier.name,
            "acceptance": bool(acceptance),
            "efficiency_floor": float(efficiency_floor),
            "n_train": int(train_idx.size),
            "n_calibration": int(n_cal),
            "seed": int(seed),
        },
        prior_weights=w_mc * nu,
        estimator=est,
    )
    if out is not None:
        result.save(out)
        est.save(Path(out) / "model")
    return result
