"""OmniFold: unbinned, multi-dimensional unfolding by iterated classifier reweighting.

Andreassen, Komiske, Metodiev, Nachman, Thaler, "OmniFold: A Method to Simultaneously Unfold
All Observables", PRL 124 (2020) 182001, arXiv:1911.09107. OmniFold is the unbinned
generalisation of iterative Bayesian unfolding (:mod:`physgen.unfold.ibu`): the per-bin
ratios become per-event likelihood ratios learned by the project's weighted two-sample
classifier (:func:`physgen.metrics.fit_likelihood_ratio`).

Algorithm, with MC pairs ``(z_i gen, x_i reco, w_i weight)`` and push weights ``ν⁰ = 1``;
iteration ``n``:

1. **Step 1 (detector level, "pull")**: a classifier tells the data (label 1, data weights)
   from the simulation (label 0, weights ``ν^{n-1} w``), on reco-passing events; the pull
   weights are ``ω^n = ν^{n-1} r₁(x)`` with ``r₁ = p_data / p_sim``. Fakes (pass reco, fail
   gen) take part here only.
2. **Step 2 (particle level, "push")**: a classifier tells the gen events weighted by
   ``ω^n w`` (label 1) from the *same* gen events weighted by ``w`` (label 0), on
   gen-passing events; the push weights are ``ν^n = r₂(z)``.

The unfolded distribution is ``gen[pass_gen]`` weighted by ``ν^N w``.

Conventions (those of the PyPI ``omnifold`` package):

* Events failing reco keep ``ω^n = ν^{n-1}`` in step 1 (their pull weight is not updated;
  ``efficiency="keep"``, the package's convention). Each iteration then applies only the
  efficiency-weighted share of the update, ``ν^n(z) = ν^{n-1}(z) [ε(z) E[r₁ | z] + 1 −
  ε(z)]``. With ``efficiency="learn"`` (the alternative of the reference notebooks) they get
  ``ω^n = ν^{n-1} E[ω/ν | z]``, the average update of their particle-level neighbours that
  pass reco, from a third classifier (gen level, reco-passing events weighted by ``ω^n w``
  against ``ν^{n-1} w``): one more training per iteration, the full update per iteration
  as in IBU. The fixed point is the same.
* Events failing gen get push weight 1 and are left out of step 2.
* **Normalisation**: the two-sample classifier balances the classes by weight, so it
  estimates the ratio of *normalised* densities; every ratio is multiplied by the class
  totals ``Σw₁ / Σw₀`` to give the ratio of the weighted densities. The data weights are
  scaled by :attr:`OmniFoldResult.data_scale` ``= Σ_{pass reco} w_MC / (Σ w_data −
  Σ_{pass reco} w_bkg)``, so after step 1 the reco-passing simulation carries the MC's own
  total and weights stay near 1 when the data look like the MC. Divide the weights by
  ``data_scale`` for data units (cross sections). Bootstrap replicas use the nominal scale,
  so their spread includes the data's normalisation uncertainty.
* **Background** (neural positive reweighting, arXiv:2007.11586): background MC events
  (weights normalised to the data's luminosity) join the data class of step 1 with negative
  weights, so step 1 learns ``(data − background) / sim``.
* **Ensembles**: ``ensemble`` classifiers per step with different seeds, ratios averaged.
* **Warm starts** (``warm_start=True``): each classifier starts from its counterpart (same
  step, ensemble member and replica) of the previous iteration, as in the reference package.
* **Bootstrap**: replica ``b`` multiplies the data weights by Poisson(1) draws seeded by
  ``(seed, b)`` and runs the whole unfolding with its own classifier seeds, so the spread of
  the replicas holds the data's statistical uncertainty *and* the training noise of the
  classifiers. With ``bootstrap_mc=True`` the MC weights are fluctuated as well (Poisson(1)
  per event, seeded by ``(seed, b)``): the spread then also holds the MC's statistical
  uncertainty (limited simulation in the response, as in the measurements of H1,
  arXiv:2108.12376). A replica's stored weights include its MC Poisson factors, so
  :meth:`OmniFoldResult.bootstrap_weights` is the replica's unfolded distribution either way.

Every classifier seed derives from ``(seed, replica, iteration, step, member)``, so the same
seed gives the same weights bit for bit (on the same machine and thread count).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen._version import __version__
from physgen.errors import ConfigError, DataFormatError
from physgen.metrics.classifier import PRESETS as _CLASSIFIER_PRESETS
from physgen.metrics.classifier import ClassifierConfig
from physgen.metrics.twosample import LikelihoodRatio, fit_likelihood_ratio
from physgen.outputs import atomic_path
from physgen.unfold.data import UnfoldingData, UnfoldingMC, check_compatible

__all__ = [
    "MIN_EVENTS",
    "PRESETS",
    "OmniFoldResult",
    "data_scale",
    "get_classifier",
    "omnifold",
    "read_weights",
    "write_weights",
]

log = logging.getLogger("physgen.unfold")

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

#: Fewest events per classifier sample (80 % train / 20 % epoch selection needs some of each).
MIN_EVENTS = 20

#: Classifier presets for unfolding: the project's (``fast``, ``official``) and ``small``
#: (3 x 64 hidden units, at most 30 epochs, patience 5; about the size of the reference
#: notebooks' 3 x 50 network, enough for a few smooth observables on CPU).
PRESETS: dict[str, ClassifierConfig] = {
    **_CLASSIFIER_PRESETS,
    "small": ClassifierConfig(
        name="small",
        hidden=64,
        n_hidden_layers=2,
        lr=1e-3,
        batch_size=1000,
        max_epochs=30,
        patience=5,
        patience_samples=None,
        select_on="loss",
        input_transform="standardize",
    ),
}


def get_classifier(
    classifier: str | ClassifierConfig, option: str = "classifier"
) -> ClassifierConfig:
    """A :class:`ClassifierConfig` from a preset name of :data:`PRESETS`, or the config itself.

    Raises:
        ConfigError: Unknown preset name.
    """
    if isinstance(classifier, ClassifierConfig):
        return classifier
    if classifier not in PRESETS:
        raise ConfigError(
            f"{option}: unknown classifier preset {classifier!r}; choose from {', '.join(PRESETS)}"
        )
    return PRESETS[classifier]


@dataclass(frozen=True, eq=False)
class OmniFoldResult:
    """Per-event weights of an OmniFold run (weights relative to the MC weights ``w``).

    Attributes:
        push: Push weights ``ν⁰..ν^N`` ``(iterations + 1, N)``; row 0 is 1. The unfolded
            distribution is ``gen[pass_gen]`` weighted by ``push[-1] * w``.
        pull: Pull weights ``ω¹..ω^N`` ``(iterations, N)`` (detector level).
        bootstrap: Final push weights of every bootstrap replica ``(B, N)`` (B may be 0),
            times the replica's Poisson factors on the MC weights with ``bootstrap_mc``.
        data_scale: Factor applied to the data weights (see the module docstring); divide
            the weights by it for data units.
        columns: Observable names.
        settings: Iterations, ensemble, bootstrap, seed, classifier config, sample sizes.
        timings: Seconds: ``total``, ``nominal``, ``bootstrap``.
        path: The ``weights.h5`` written (None: not written).
    """

    push: F64
    pull: F64
    bootstrap: F64
    data_scale: float
    columns: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    path: Path | None = None

    @property
    def weights(self) -> F64:
        """Final push weights ``ν^N`` ``(N,)``."""
        out: F64 = self.push[-1]
        return out

    def unfolded(self, mc: UnfoldingMC) -> tuple[F64, F64]:
        """``(gen[pass_gen] (n, D), ν^N w [pass_gen] (n,))``: the unfolded sample."""
        m = mc.pass_gen
        return mc.gen[m], self.push[-1][m] * mc.weight[m]

    def bootstrap_weights(self, mc: UnfoldingMC) -> F64:
        """Event weights of every replica on ``gen[pass_gen]``: ``(B, n)``."""
        m = mc.pass_gen
        out: F64 = self.bootstrap[:, m] * mc.weight[m][None, :]
        return out


def _member_seed(seed: int, replica: int, iteration: int, step: int, member: int) -> int:
    ss = np.random.SeedSequence([seed, replica, iteration, step, member])
    return int(ss.generate_state(1)[0])


def _check_settings(iterations: int, ensemble: int, bootstrap: int, seed: int) -> None:
    for name, value, low in (("iterations", iterations, 1), ("ensemble", ensemble, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name}: expected an integer >= {low}, got {value!r}")
    if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
        raise ConfigError(f"bootstrap: expected an integer >= 0, got {bootstrap!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ConfigError(f"seed: expected an integer in [0, 2**63), got {seed!r}")


def _check_sizes(mc: UnfoldingMC, data: UnfoldingData) -> None:
    counts = (
        ("mc", "pass reco", int(mc.pass_reco.sum())),
        ("mc", "pass gen", int(mc.pass_gen.sum())),
        ("data", "are", data.n_events),
    )
    for name, what, n in counts:
        if n < MIN_EVENTS:
            raise DataFormatError(
                f"{name}: {n} events {what}; OmniFold needs at least {MIN_EVENTS} per classifier "
                "sample for its training/validation split"
            )


def data_scale(mc: UnfoldingMC, data: UnfoldingData, background: UnfoldingMC | None) -> float:
    """``Σ_{pass reco} w_MC / (Σ w_data − Σ_{pass reco} w_bkg)``.

    Raises:
        DataFormatError: The background outweighs the data, or the MC's reco total is <= 0.
    """
    total = float(data.weight.sum())
    bkg = 0.0 if background is None else float(background.weight[background.pass_reco].sum())
    target = total - bkg
    sim = float(mc.weight[mc.pass_reco].sum())
    if target <= 0:
        raise DataFormatError(
            f"background: its reco-passing weights sum to {bkg:.6g}, the data's to {total:.6g}; "
            "nothing is left to unfold"
        )
    if sim <= 0:
        raise DataFormatError("mc: the weights of events passing reco sum to <= 0")
    return sim / target


class _Fitter:
    """Trains the classifiers of one step and returns weighted-density ratios."""

    def __init__(
        self,
        config: ClassifierConfig,
        ensemble: int,
        seed: int,
        threads: int | None,
        device: str,
        tick: Callable[[], None],
        warm_start: bool = False,
    ):
        self.config, self.ensemble, self.seed = config, ensemble, seed
        self.threads, self.device, self.tick = threads, device, tick
        self.warm_start = warm_start
        #: (replica, step, member) -> the previous iteration's ratio (warm starts)
        self.previous: dict[tuple[int, int, int], LikelihoodRatio] = {}

    def ratio(
        self,
        x0: F64,
        w0: F64,
        x1: F64,
        w1: F64,
        key: tuple[int, int, int],
        allow_negative: bool = False,
        at: F64 | None = None,
    ) -> F64:
        """``(Σw₁/Σw₀) · mean_k r_k(at)``: the ratio of the weighted densities p₁ / p₀ at
        ``at`` (None: the class-0 events)."""
        at = x0 if at is None else at
        total = np.zeros(len(at))
        replica, _, step = key
        for k in range(self.ensemble):
            lr = fit_likelihood_ratio(
                x0,
                x1,
                w0=w0,
                w1=w1,
                config=self.config,
                seed=_member_seed(self.seed, *key, k),
                device=self.device,
                threads=self.threads,
                allow_negative=allow_negative,
                init=self.previous.get((replica, step, k)),
            )
            if self.warm_start:
                self.previous[(replica, step, k)] = lr
            total += lr(at)
        self.tick()
        out: F64 = (float(w1.sum()) / float(w0.sum())) * total / self.ensemble
        return out


def _unfold_once(
    mc: UnfoldingMC,
    x_data: F64,
    w_data: F64,
    iterations: int,
    fitter: _Fitter,
    replica: int,
    efficiency: str = "keep",
) -> tuple[F64, F64]:
    """One OmniFold run -> ``push (iterations + 1, N)``, ``pull (iterations, N)``.

    ``x_data``/``w_data`` hold the (scaled) data and, with negative weights, the background.
    """
    n = mc.n_events
    sim = np.flatnonzero(mc.pass_reco)
    gen = np.flatnonzero(mc.pass_gen)
    both = np.flatnonzero(mc.pass_gen & mc.pass_reco)
    lost = np.flatnonzero(mc.pass_gen & ~mc.pass_reco)
    missed = lost if efficiency == "learn" and lost.size and both.size else None
    negative = bool((w_data < 0).any())
    push = np.ones((iterations + 1, n))
    pull = np.ones((iterations, n))
    for it in range(1, iterations + 1):
        nu = push[it - 1]
        # step 1: data vs simulation weighted by the current push weights, at detector level
        x0, w0 = mc.reco[sim], nu[sim] * mc.weight[sim]
        r1 = fitter.ratio(x0, w0, x_data, w_data, (replica, it, 1), negative)
        pull[it - 1] = nu
        pull[it - 1, sim] = nu[sim] * r1
        if missed is not None:  # reco-failing events: the update of their gen neighbours
            zb, wb = mc.gen[both], mc.weight[both]
            r3 = fitter.ratio(
                zb, nu[both] * wb, zb, pull[it - 1, both] * wb, (replica, it, 3), at=mc.gen[missed]
            )
            pull[it - 1, missed] = nu[missed] * r3
        # step 2: the same gen events weighted by pull x w (label 1) vs by w (label 0)
        z, wz = mc.gen[gen], mc.weight[gen]
        r2 = fitter.ratio(z, wz, z, pull[it - 1, gen] * wz, (replica, it, 2))
        push[it, gen] = r2  # gen-failing events keep push weight 1
    return push, pull


def omnifold(
    mc: UnfoldingMC,
    data: UnfoldingData,
    *,
    iterations: int = 4,
    ensemble: int = 1,
    bootstrap: int = 0,
    bootstrap_mc: bool = False,
    warm_start: bool = False,
    efficiency: str = "keep",
    classifier: str | ClassifierConfig = "fast",
    background: UnfoldingMC | None = None,
    seed: int = 0,
    threads: int | None = None,
    progress: bool | None = None,
    out: Path | str | None = None,
    device: str = "cpu",
) -> OmniFoldResult:
    """Unfold ``data`` with OmniFold (arXiv:1911.09107), see the module docstring.

    Args:
        mc: MC pairs ``N`` events, ``D`` observables (gen and reco).
        data: Detector-level data ``(M, D)`` (same columns).
        iterations: OmniFold iterations (>= 1).
        ensemble: Classifiers per step, ratios averaged (>= 1).
        bootstrap: Replicas with Poisson(1) data weights, each a full unfolding (>= 0).
        bootstrap_mc: Also fluctuate the MC weights of every replica (Poisson(1) per event).
        warm_start: Start every classifier from the one of the same step, member and replica
            in the previous iteration (as the reference package ``omnifold`` does) instead
            of from a fresh initialisation.
        efficiency: Pull weights of events failing reco: ``"keep"`` (``ν^{n-1}``, the
            package's convention) or ``"learn"`` (``ν^{n-1} E[ω/ν | z]`` from a third
            classifier); see the module docstring.
        classifier: A preset of :data:`PRESETS` (``fast``, ``official``, ``small``) or a
            :class:`ClassifierConfig`.
        background: Background MC (weights normalised to the data's luminosity; only its
            reco-passing rows are used), subtracted by negative weights in step 1.
        seed: Base seed (``0 <= seed < 2**63``).
        threads: torch threads (None: unchanged).
        progress: tqdm bar over the steps (None: only on a terminal).
        out: A folder: write ``weights.h5`` there atomically (datasets ``push``, ``pull``,
            ``bootstrap``; settings as attributes). None: nothing written.
        device: torch device of the classifiers.

    Returns:
        The per-event weights of every iteration and replica.

    Raises:
        ConfigError: Iterations or ensemble < 1, bootstrap < 0, bad seed, unknown preset.
        DataFormatError: Columns differ between MC and data, too few events for the
            classifiers' split, a background outweighing the data.
    """
    _check_settings(iterations, ensemble, bootstrap, seed)
    if efficiency not in ("keep", "learn"):
        raise ConfigError(f"efficiency: expected 'keep' or 'learn', got {efficiency!r}")
    cfg = get_classifier(classifier)
    check_compatible(mc, data, background)
    _check_sizes(mc, data)
    if out is not None and not Path(out).is_dir():
        raise ConfigError(f"out {out}: not a folder")
    scale = data_scale(mc, data, background)
    x_data, w_data = data.reco, data.weight * scale
    if background is not None:
        keep = background.pass_reco
        x_data = np.concatenate([x_data, background.reco[keep]])
        w_bkg = -background.weight[keep] * scale
    else:
        w_bkg = np.zeros(0)
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    learn = efficiency == "learn" and bool((mc.pass_gen & ~mc.pass_reco).any())
    with tqdm(
        total=(1 + bootstrap) * iterations * (3 if learn else 2),
        desc="omnifold",
        unit="step",
        disable=None if progress is None else not progress,
        dynamic_ncols=True,
    ) as bar:
        fitter = _Fitter(cfg, ensemble, seed, threads, device, lambda: bar.update(1), warm_start)
        push, pull = _unfold_once(
            mc, x_data, np.concatenate([w_data, w_bkg]), iterations, fitter, 0, efficiency
        )
        t_nominal = time.perf_counter() - t0
        boot = np.empty((bootstrap, mc.n_events))
        for b in range(bootstrap):
            bar.set_postfix_str(f"replica {b + 1}/{bootstrap}")
            rng = np.random.default_rng(np.random.SeedSequence([seed, 1, b]))
            w_b = w_data * rng.poisson(1.0, size=len(w_data))
            if w_b.sum() <= 0:
                raise DataFormatError("data: a bootstrap replica has no events left")
            mc_b, k_mc = mc, np.ones(mc.n_events)
            if bootstrap_mc:
                rng_mc = np.random.default_rng(np.random.SeedSequence([seed, 2, b]))
                k_mc = rng_mc.poisson(1.0, size=mc.n_events).astype(np.float64)
                mc_b = dataclasses.replace(mc, weight=mc.weight * k_mc)
            boot[b] = (
                k_mc
                * _unfold_once(
                    mc_b,
                    x_data,
                    np.concatenate([w_b, w_bkg]),
                    iterations,
                    fitter,
                    b + 1,
                    efficiency,
                )[0][-1]
            )
    total = time.perf_counter() - t0
    settings = {
        "method": "omnifold",
        "iterations": iterations,
        "ensemble": ensemble,
        "bootstrap": bootstrap,
        "bootstrap_mc": bootstrap_mc,
        "warm_start": warm_start,
        "efficiency": efficiency,
        "seed": seed,
        "classifier": cfg.to_dict(),
        "background": background is not None,
        "n_mc": mc.n_events,
        "n_data": data.n_events,
        "n_background": 0 if background is None else background.n_events,
        "data_scale": scale,
        "columns": list(mc.columns),
        "physgen_version": __version__,
    }
    timings = {"total": total, "nominal": t_nominal, "bootstrap": total - t_nominal}
    log.info("omnifold: %d iterations, %d replicas in %.1f s", iterations, bootstrap, total)
    result = OmniFoldResult(push, pull, boot, scale, mc.columns, settings, timings)
    if out is not None:
        path = write_weights(Path(out) / "weights.h5", result)
        result = dataclasses.replace(result, path=path)
    return result


def write_weights(path: Path | str, result: OmniFoldResult) -> Path:
    """Write ``push``, ``pull``, ``bootstrap`` and the settings (JSON attribute ``settings``,
    plus ``columns``, ``data_scale``, ``physgen_version``) to HDF5, atomically."""
    import h5py

    p = Path(path)
    with atomic_path(p) as tmp, h5py.File(tmp, "w") as f:
        for name in ("push", "pull", "bootstrap"):
            f.create_dataset(name, data=getattr(result, name), compression="gzip")
        f.attrs["settings"] = json.dumps(result.settings)
        f.attrs["timings"] = json.dumps(result.timings)
        f.attrs["columns"] = list(result.columns)
        f.attrs["data_scale"] = result.data_scale
        f.attrs["physgen_version"] = __version__
    return p


def read_weights(path: Path | str) -> OmniFoldResult:
    """Read a ``weights.h5`` written by :func:`omnifold`.

    Raises:
        DataFormatError: Missing file or datasets.
    """
    import h5py

    p = Path(path)
    if not p.is_file():
        raise DataFormatError(f"{p}: no such file")
    try:
        with h5py.File(p, "r") as f:
            missing = [k for k in ("push", "pull", "bootstrap") if k not in f]
            if missing:
                raise DataFormatError(f"{p}: not an OmniFold weights file (no {missing[0]!r})")
            arrays = {
                k: np.asarray(f[k][()], dtype=np.float64) for k in ("push", "pull", "bootstrap")
            }
            cols = tuple(
                c.decode() if isinstance(c, bytes) else str(c) for c in f.attrs.get("columns", [])
            )
            settings = json.loads(f.attrs.get("settings", "{}"))
            timings = json.loads(f.attrs.get("timings", "{}"))
            scale = float(f.attrs.get("data_scale", 1.0))
    except OSError as exc:
        raise DataFormatError(f"{p}: cannot read as HDF5 ({exc})") from None
    return OmniFoldResult(
        arrays["push"], arrays["pull"], arrays["bootstrap"], scale, cols, settings, timings, p
    )
