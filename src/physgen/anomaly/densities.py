"""Density-based anomaly scores: CATHODE, ANODE and the unsupervised flow density.

* **CATHODE** (Hallin et al., PRD 106 (2022) 055006): a conditional flow ``p(x | m_jj)``
  fitted in the sidebands and interpolated into the signal region, sampled at SR masses
  drawn from a kernel density estimate of the SR ``m_jj`` (oversampled, about 4 times the SR
  data), then a k-fold classifier SR data vs those samples
  (:func:`physgen.anomaly.classify.kfold_scores`).
* **ANODE** (Nachman & Shih, PRD 101 (2020) 075042): two conditional flows, ``p_data(x |
  m)`` fitted on the SR data and ``p_bkg(x | m)`` from the sidebands; the score is
  ``log p_data - log p_bkg``. The SR flow is cross-fitted like the classifiers, so that no
  SR event is scored by a flow that saw it.
* **Flow density** (unsupervised): ``-log p(x)`` of a flow fitted to all events. A density
  is not invariant under a change of variables ``y = T(x)``: ``-log p_Y(y) = -log p_X(x) +
  log |det dT/dx|``, so "low density" depends on the coordinates chosen (the caveat of
  e.g. Kasieczka et al., LHC Olympics report, arXiv:2101.08320, and Le Lan & Dinh,
  Entropy 23 (2021) 1690). :func:`flow_density` gives the score in the given coordinates
  and in ``log``/``logit`` coordinates, from one flow.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.anomaly.classify import AnomalyResult, _fold_ids, _test_features, kfold_scores
from physgen.anomaly.data import AnomalyEvents, Regions, sample_mjj
from physgen.errors import ConfigError, DataFormatError
from physgen.metrics.classifier import ClassifierConfig

__all__ = [
    "MIN_SIDEBAND_EVENTS",
    "anode",
    "cathode",
    "coordinate_log_jacobian",
    "coordinate_maps",
    "flow_density",
]

F64 = npt.NDArray[np.float64]

#: Fewest sideband events for the background flow.
MIN_SIDEBAND_EVENTS = 500
#: Flow options (``physgen.density.fit`` keywords) used unless ``flow=`` overrides them.
FLOW_DEFAULTS: dict[str, Any] = {"model": "flow"}


def data_bounds(x: F64, margin: float = 0.01) -> list[tuple[float, float]]:
    """Per column ``(min - margin * range, max + margin * range)``: CATHODE's min-max scaling
    before its logit transform, as a support for :func:`physgen.density.fit`."""
    lo, hi = x.min(axis=0), x.max(axis=0)
    span = np.maximum(hi - lo, 1e-12)
    return [(float(a - margin * s), float(b + margin * s)) for a, b, s in zip(lo, hi, span)]


def _fit_flow(
    x: F64,
    c: F64 | None,
    names: Sequence[str],
    flow: dict[str, Any] | None,
    seed: int,
    progress: bool | None,
    bounds: list[tuple[float, float]] | None = None,
) -> Any:
    from physgen import density

    opts = {**FLOW_DEFAULTS, **(flow or {})}
    for bad in ("x", "c", "seed", "out", "progress"):
        if bad in opts:
            raise ConfigError(f"flow: option {bad!r} is set by the method")
    if bounds is not None and "bounds" not in opts:
        opts["bounds"] = bounds
    return density.fit(
        x,
        c,
        seed=seed,
        progress=progress,
        x_names=list(names),
        c_names=["mjj"] if c is not None else None,
        **opts,
    )


def _check_bkg(events: AnomalyEvents, regions: Regions) -> tuple[npt.NDArray[np.bool_], ...]:
    regions.check(events, need_sidebands=True, min_sb=MIN_SIDEBAND_EVENTS)
    return regions.in_sr(events.mjj), regions.in_sb(events.mjj)


def cathode(
    events: AnomalyEvents,
    regions: Regions,
    *,
    test: AnomalyEvents | None = None,
    oversample: float = 4.0,
    bandwidth: float = 0.01,
    flow: dict[str, Any] | None = None,
    folds: int = 5,
    ensemble: int = 1,
    classifier: str | ClassifierConfig = "anomaly",
    seed: int = 0,
    threads: int | None = None,
    progress: bool | None = None,
) -> AnomalyResult:
    """CATHODE: sideband flow, interpolated background samples in the SR, k-fold classifier.

    Args:
        events: Data (``m_jj`` in TeV and features); SR and SB events are used.
        regions: Signal region and sidebands.
        test: Labelled events for ROC/SIC (scored by the mean of the classifiers).
        oversample: Background samples per SR data event (CATHODE: about 4).
        bandwidth: Gaussian KDE bandwidth of the SR ``m_jj`` (TeV; CATHODE: 0.01).
        flow: Options of :func:`physgen.density.fit` (``config``, ``max_time``, ``epochs``,
            ``optim``, ``bounds``...); default: the conditional spline flow with the support
            of the data (:func:`data_bounds`).
        folds: Classifier folds over the SR data and the samples.
        ensemble: Classifiers per fold.
        classifier: Classifier preset or config.
        seed: Seed of the flow, the samples and the classifiers.
        threads: Torch threads for the classifiers (None: unchanged).
        progress: Progress bar of the flow training (None: on a terminal).

    Returns:
        Scores for every event (SR out of fold, others by a random fold's classifiers), test
        scores;
        ``info["flow"]`` has the flow's training summary and ``info["template"]`` the
        per-feature means of SR data and samples.

    Raises:
        ConfigError: SR outside the data, fewer than :data:`MIN_SIDEBAND_EVENTS` in the SB,
            bad options.
    """
    if oversample <= 0 or bandwidth < 0:
        raise ConfigError(
            f"oversample must be > 0 and bandwidth >= 0, got {oversample}, {bandwidth}"
        )
    sr, sb = _check_bkg(events, regions)
    rng = np.random.default_rng(seed)
    c0 = time.process_time()
    est = _fit_flow(
        events.features[sb],
        events.mjj[sb, None],
        events.names,
        flow,
        seed,
        progress,
        bounds=data_bounds(events.features),
    )
    n_gen = max(1, round(oversample * int(sr.sum())))
    m = sample_mjj(
        events.mjj[sr], n_gen, bandwidth=bandwidth, bounds=regions.signal_region, rng=rng
    )
    template = np.asarray(est(m[:, None]).sample(seed=seed + 1), dtype=np.float64)
    flow_cpu = time.process_time() - c0
    s_sr, _, ext, info = kfold_scores(
        events.features[sr],
        template,
        extra=[events.features[~sr], *_test_features(test, events.n_features)],
        folds=folds,
        ensemble=ensemble,
        classifier=classifier,
        seed=seed,
        threads=threads,
        names=(f"signal region of {events.source}", "the flow's background samples"),
    )
    scores = np.empty(len(events))
    scores[sr], scores[~sr] = s_sr, ext[0]
    info.update(
        n_sr=int(sr.sum()),
        n_sb=int(sb.sum()),
        n_samples=n_gen,
        oversample=oversample,
        bandwidth=bandwidth,
        flow_cpu_s=flow_cpu,
        flow=_summary(est),
        template={
            "names": list(events.names),
            "sr_data_mean": events.features[sr].mean(axis=0).tolist(),
            "samples_mean": template.mean(axis=0).tolist(),
        },
    )
    return AnomalyResult(
        "cathode", scores, ext[1] if len(ext) > 1 else None, time.process_time() - c0, info
    )


def _summary(est: Any) -> dict[str, Any]:
    keep = ("status", "epoch", "step", "best_val_loss", "train_seconds")
    return {k: v for k, v in est.summary.items() if k in keep}


def _log_prob(est: Any, x: F64, m: F64) -> F64:
    return np.asarray(est(m[:, None]).log_prob(x), dtype=np.float64)


def anode(
    events: AnomalyEvents,
    regions: Regions,
    *,
    test: AnomalyEvents | None = None,
    flow: dict[str, Any] | None = None,
    folds: int = 2,
    seed: int = 0,
    progress: bool | None = None,
) -> AnomalyResult:
    """ANODE: ``log p_data(x | m) - log p_bkg(x | m)`` with conditional flows.

    ``p_bkg`` is fitted on the sidebands, ``p_data`` on the SR data in ``folds`` parts (each
    SR event is scored by the flow fitted without its part; every other event and ``test``
    by the flow of a random fold, so that all scores come from the same kind of function).
    Outside the SR both densities are extrapolated in ``m``: the score of sideband events is
    given for the bump hunt's selection but means little. Flows are unbounded (a test event outside a bounded support
    would get ``-inf``).

    Raises:
        ConfigError: As :func:`cathode`; ``folds < 2``; too few SR events per fold.
    """
    if folds < 2:
        raise ConfigError(f"folds: must be >= 2, got {folds}")
    sr, sb = _check_bkg(events, regions)
    n_sr = int(sr.sum())
    if n_sr < folds * 50:
        raise ConfigError(f"signal region: {n_sr} events are too few for {folds} SR flows")
    c0 = time.process_time()
    bkg = _fit_flow(events.features[sb], events.mjj[sb, None], events.names, flow, seed, progress)
    lp_bkg = _log_prob(bkg, events.features, events.mjj)
    tests = _test_features(test, events.n_features)
    lp_bkg_test = _log_prob(bkg, test.features, test.mjj) if test is not None else None
    rng = np.random.default_rng(seed)
    fold_of = _fold_ids(n_sr, folds, rng)
    sr_rows = np.flatnonzero(sr)
    rest_rows = np.flatnonzero(~sr)
    fold_rest = _fold_ids(len(rest_rows), folds, rng)
    fold_test = _fold_ids(len(test), folds, rng) if test is not None else None
    lp_data = np.zeros(len(events))
    lp_data_test = np.zeros(len(test)) if test is not None else None
    summaries = []
    for f in range(folds):
        train = sr_rows[fold_of != f]
        est = _fit_flow(
            events.features[train],
            events.mjj[train, None],
            events.names,
            flow,
            seed + 1 + f,
            progress,
        )
        summaries.append(_summary(est))
        held = sr_rows[fold_of == f]
        lp_data[held] = _log_prob(est, events.features[held], events.mjj[held])
        rest = rest_rows[fold_rest == f]  # one fold's flow for each, as for the SR events
        lp_data[rest] = _log_prob(est, events.features[rest], events.mjj[rest])
        if test is not None and lp_data_test is not None and fold_test is not None:
            mine = fold_test == f
            lp_data_test[mine] = _log_prob(est, test.features[mine], test.mjj[mine])
    scores = lp_data - lp_bkg
    test_scores = None
    if tests and lp_data_test is not None and lp_bkg_test is not None:
        test_scores = lp_data_test - lp_bkg_test
    info = {"folds": folds, "n_sr": n_sr, "n_sb": int(sb.sum()), "flow_bkg": _summary(bkg)}
    info["flows_sr"] = summaries
    return AnomalyResult("anode", scores, test_scores, time.process_time() - c0, info)


def coordinate_maps(x: F64, names: Sequence[str] = ()) -> tuple[list[str], list[float]]:
    """The change of variables used to show the caveat, per column, and its floors.

    By name first: ``tau…`` (N-subjettiness ratios) -> ``logit``; ``m…``/``delta_m…``/
    ``…mass…`` (masses) -> ``log``; otherwise by range: columns inside [0, 1] -> ``logit``,
    non-negative columns -> ``log``, else ``identity`` (a tolerance of 1e-6 absorbs rounding
    such as a mass of -2e-8). Floors keep a few exactly-zero values from dominating the
    score: 1 % of the column's median for ``log``, 1e-3 from either end for ``logit``.

    Returns:
        ``(maps, floors)``, one entry per column.
    """
    maps: list[str] = []
    floors: list[float] = []
    tol = 1e-6
    for j, col in enumerate(x.T):
        name = names[j].lower() if j < len(names) else ""
        if name.startswith("tau"):
            kind = "logit"
        elif name.startswith(("m", "delta_m")) or "mass" in name:
            kind = "log"
        elif col.min() >= -tol and col.max() <= 1 + tol:
            kind = "logit"
        else:
            kind = "log" if col.min() >= -tol else "identity"
        maps.append(kind)
        positive = col[col > 0]
        med = float(np.median(positive)) if positive.size else 1.0
        floors.append(0.01 * med if kind == "log" else 1e-3)
    return maps, floors


def coordinate_log_jacobian(x: F64, maps: Sequence[str], floors: Sequence[float]) -> F64:
    """``log |det dT/dx|`` ``(N,)`` of the per-column maps of :func:`coordinate_maps`
    (``d logit(u)/du = 1/(u (1-u))``, ``d log(m)/dm = 1/m``), values clipped to the floors."""
    if len(maps) != x.shape[1] or len(floors) != x.shape[1]:
        raise ConfigError(
            f"maps: {len(maps)} maps and {len(floors)} floors for {x.shape[1]} columns"
        )
    out = np.zeros(len(x))
    for col, kind, eps in zip(x.T, maps, floors):
        if kind == "logit":
            c = np.clip(col, eps, 1 - eps)
            out -= np.log(c) + np.log1p(-c)
        elif kind == "log":
            out -= np.log(np.maximum(col, eps))
        elif kind != "identity":
            raise ConfigError(f"maps: unknown map {kind!r}")
    return out


def flow_density(
    events: AnomalyEvents,
    *,
    test: AnomalyEvents | None = None,
    coordinates: str = "given",
    flow: dict[str, Any] | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> AnomalyResult:
    """Unsupervised low-density score ``-log p(x)`` of an unconditional flow fitted to all
    events (no regions, no labels).

    Args:
        events: The events (fitted and scored).
        test: Events to score (e.g. labelled, for ROC/SIC).
        coordinates: ``"given"``: the density of the features as given; ``"log-logit"``: of
            ``log`` masses and ``logit`` ratios (:func:`coordinate_maps`), from the same flow.
            The scores in the other coordinates are in ``extra["scores_other"]`` and
            ``extra["test_other"]``: comparing them shows the coordinate dependence.
        flow: Options of :func:`physgen.density.fit`.
        seed: Seed of the flow.
        progress: Progress bar (None: on a terminal).
    """
    if coordinates not in ("given", "log-logit"):
        raise ConfigError(f"coordinates: 'given' or 'log-logit', got {coordinates!r}")
    if test is not None and test.n_features != events.n_features:
        raise DataFormatError(
            f"{test.source}: {test.n_features} features, expected {events.n_features}"
        )
    c0 = time.process_time()
    est = _fit_flow(events.features, None, events.names, flow, seed, progress)
    maps, floors = coordinate_maps(events.features, events.names)

    def score(x: F64, coords: str) -> F64:
        nll = -np.asarray(est(n=len(x)).log_prob(x), dtype=np.float64)
        return nll + coordinate_log_jacobian(x, maps, floors) if coords == "log-logit" else nll

    other = "log-logit" if coordinates == "given" else "given"
    extra = {"scores_other": score(events.features, other)}
    test_scores = None
    if test is not None:
        test_scores = score(test.features, coordinates)
        extra["test_other"] = score(test.features, other)
    info: dict[str, Any] = {
        "coordinates": coordinates,
        "other_coordinates": other,
        "maps": dict(zip(events.names, maps)),
        "floors": dict(zip(events.names, floors)),
        "flow": _summary(est),
    }
    scores = score(events.features, coordinates)
    return AnomalyResult("flow-density", scores, test_scores, time.process_time() - c0, info, extra)
