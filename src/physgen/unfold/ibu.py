"""Iterative Bayesian unfolding (IBU) of one observable at a time, the binned baseline.

G. D'Agostini, "A multidimensional unfolding method based on Bayes' theorem", NIM A362
(1995) 487 (also known as Richardson-Lucy). With the migration matrix from the MC,

    M[j, i] = P(reco bin j, pass reco | gen bin i, pass gen),   ε_i = Σ_j M[j, i],

and a prior ``π⁰`` (the MC's gen histogram), each iteration updates

    n_i = (1 / ε_i) Σ_j  M[j, i] π_i / (Σ_k M[j, k] π_k) · d'_j,    π = n / Σ n,

where ``d'`` are the data counts per reco bin after subtracting fakes and background.

Bookkeeping (all histograms weighted by the event weights):

* **Binning**: the same edges at gen and reco level (or ``reco_bins``), each with an
  underflow and an overflow bin: arrays "with flow" have ``K + 2`` entries ``[under, bins...,
  over]``. Flow bins take part in the unfolding like any other bin (so events outside the
  range are neither lost nor piled into the edge bins); results report the ``K`` bins
  inside the range, and the unfolded flow separately. The last edge is inclusive.
* **Efficiency** per gen bin: ``ε_i`` = weight passing gen and reco / weight passing gen.
* **Fakes** per reco bin (pass reco, fail gen): the MC fake histogram ``F_j``, scaled to the
  data normalisation by ``s = (Σ w_data − Σ w_bkg) / Σ_{pass reco} w_MC``, is subtracted;
  the fake fraction ``F_j / R_j`` (``R``: MC reco histogram) is reported. Counts are clipped
  at 0 after subtraction.
* **Background** (MC weights normalised to the data's luminosity): its reco histogram is
  subtracted before the fakes.
* **Prior**: the MC gen histogram, reported scaled by ``s`` (the MC prediction at the
  data's normalisation); the unfolded counts are in data units.
* **Statistical errors**: ``bootstrap`` replicas with Poisson(1) weights on the data events
  (seeded by ``(seed, replica)``), each unfolded with the same iterations; the spread of the
  final iteration is :attr:`IBUResult.std`. With ``bootstrap_mc`` each replica also draws
  Poisson(1) weights for the MC events and rebuilds the response from them (MC statistics).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen._version import __version__
from physgen.errors import ConfigError, DataFormatError
from physgen.outputs import atomic_path
from physgen.unfold.data import UnfoldingData, UnfoldingMC, check_compatible
from physgen.unfold.metrics import default_bins

__all__ = ["IBUResult", "bin_index", "default_edges", "event_weights", "ibu", "write_ibu"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class IBUResult:
    """Binned unfolding of one observable (``K`` bins; "with flow" arrays have ``K + 2``).

    Attributes:
        column: The observable.
        edges: Gen-level bin edges ``(K + 1,)``.
        reco_edges: Reco-level bin edges ``(L + 1,)``.
        unfolded: Unfolded counts per gen bin after each iteration ``(iterations, K)``, in
            data units (weights of the data).
        unfolded_flow: The unfolded under- and overflow ``(iterations, 2)``.
        prior: MC gen histogram scaled to the data normalisation ``(K,)``.
        bootstrap: Final-iteration counts of every replica ``(B, K)``.
        efficiency: ``ε`` per gen bin with flow ``(K + 2,)`` (0 where the MC has no event).
        fake_fraction: Fake share of the MC reco histogram per reco bin with flow ``(L + 2,)``.
        response: ``M[j, i]`` with flow ``(L + 2, K + 2)``.
        data: Data histogram per reco bin with flow ``(L + 2,)``.
        fakes: Subtracted fakes (data units) ``(L + 2,)``.
        background: Subtracted background ``(L + 2,)``.
        settings: Iterations, bootstrap, seed, the normalisation factor ``s``.
    """

    column: str
    edges: F64
    reco_edges: F64
    unfolded: F64
    unfolded_flow: F64
    prior: F64
    bootstrap: F64
    efficiency: F64
    fake_fraction: F64
    response: F64
    data: F64
    fakes: F64
    background: F64
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def final(self) -> F64:
        """Unfolded counts of the last iteration ``(K,)``."""
        out: F64 = self.unfolded[-1]
        return out

    @property
    def std(self) -> F64:
        """Bootstrap standard deviation of the final counts ``(K,)`` (0 without replicas)."""
        if self.bootstrap.shape[0] < 2:
            return np.zeros(self.edges.size - 1)
        out: F64 = self.bootstrap.std(axis=0, ddof=1)
        return out


def _edges(bins: Any, name: str) -> F64:
    e = np.asarray(bins, dtype=np.float64).reshape(-1)
    if e.size < 2 or not np.isfinite(e).all() or not (np.diff(e) > 0).all():
        raise ConfigError(f"{name}: expected at least 2 finite, strictly increasing edges")
    return e


def default_edges(values: Any, n_bins: int, name: str = "bins") -> F64:
    """Default gen- or reco-level edges of IBU: :func:`physgen.unfold.metrics.default_bins`
    over the 0.1–99.9 % quantiles of ``values``.

    Continuous observables get ``n_bins`` equal bins; whole-number ones (multiplicities) get
    bins centred on the integers, each holding the same number of integers (one, or more when
    the range is wider than ``n_bins``), so at most ``n_bins + 1`` bins.

    Raises:
        ConfigError: ``n_bins`` is not an integer >= 1 (naming ``name``).
        DataFormatError: No values, or NaN/inf among them.
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ConfigError(f"{name}: expected a number of bins >= 1, got {n_bins!r}")
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise DataFormatError(f"{name}: no values to bin")
    return default_bins(v, n_bins=int(n_bins), quantiles=(0.001, 0.999))


def bin_index(values: F64, edges: F64) -> I64:
    """Bin with flow of each value: 0 underflow, 1..K inside (last edge inclusive), K + 1
    overflow."""
    idx = np.searchsorted(edges, values, side="right").astype(np.int64)
    idx[values == edges[-1]] = edges.size - 1
    return idx


def _hist(idx: I64, w: F64, n: int) -> F64:
    out: F64 = np.bincount(idx, weights=w, minlength=n).astype(np.float64)
    return out


def _iterate(m: F64, eff: F64, prior: F64, d: F64, iterations: int) -> F64:
    """D'Agostini's iterations -> unfolded counts with flow ``(iterations, K + 2)``."""
    pi = prior / prior.sum()
    out = np.empty((iterations, pi.size))
    inv_eff = np.divide(1.0, eff, out=np.zeros_like(eff), where=eff > 0)
    for it in range(iterations):
        folded = m @ pi  # (L + 2,)
        ratio = np.divide(d, folded, out=np.zeros_like(d), where=folded > 0)
        n = inv_eff * pi * (m.T @ ratio)
        out[it] = n
        total = n.sum()
        if total <= 0:
            raise DataFormatError("ibu: the unfolded histogram is empty (no data in the range)")
        pi = n / total
    return out


def ibu(
    mc: UnfoldingMC,
    data: UnfoldingData,
    column: int | str,
    bins: Any,
    iterations: int = 4,
    background: UnfoldingMC | None = None,
    *,
    reco_bins: Any = None,
    bootstrap: int = 20,
    bootstrap_mc: bool = False,
    seed: int = 0,
) -> IBUResult:
    """Iterative Bayesian unfolding of one observable (D'Agostini 1995; module docstring).

    Args:
        mc: MC pairs (gen, reco, pass flags, weights).
        data: Detector-level data (same columns).
        column: The observable, by name or index.
        bins: Gen-level bin edges ``(K + 1,)``, or a number of bins (:func:`default_edges`
            of the MC's gen-passing values: equal bins over their central 99.8 %, integer
            bins for whole-number observables).
        iterations: Iterations (>= 1).
        background: Background MC (weights in data units), subtracted at reco level.
        reco_bins: Reco-level edges or number of bins (None: the gen edges).
        bootstrap: Poisson replicas of the data for the statistical errors (>= 0).
        bootstrap_mc: Also fluctuate the MC weights of every replica (Poisson(1) per
            event): response, efficiency, fakes and prior are rebuilt from them, so the
            spread includes the simulation's statistical uncertainty.
        seed: Seed of the replicas.

    Returns:
        Unfolded counts per gen bin and iteration, the bootstrap spread and the bookkeeping.

    Raises:
        ConfigError: Bad bins, iterations < 1, bootstrap < 0, unknown column.
        DataFormatError: Columns differ between MC and data; no MC event passes both levels;
            the background outweighs the data.
    """
    for name, value, low in (("iterations", iterations, 1), ("bootstrap", bootstrap, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name}: expected an integer >= {low}, got {value!r}")
    check_compatible(mc, data, background)
    c = mc.column_index(column)
    gen_ok, reco_ok = mc.pass_gen, mc.pass_reco
    both = gen_ok & reco_ok
    if not both.any():
        raise DataFormatError("mc: no event passes both gen and reco; no response to build")
    g_edges = default_edges(mc.gen[gen_ok, c], bins) if np.ndim(bins) == 0 else _edges(bins, "bins")
    if reco_bins is None:
        r_edges = g_edges
    elif np.ndim(reco_bins) == 0:
        r_edges = default_edges(mc.reco[reco_ok, c], reco_bins, "reco_bins")
    else:
        r_edges = _edges(reco_bins, "reco_bins")
    kg, kr = g_edges.size + 1, r_edges.size + 1  # bins with flow
    gi, ri = bin_index(mc.gen[:, c], g_edges), bin_index(mc.reco[:, c], r_edges)
    fake_mask = reco_ok & ~gen_ok

    def response(w: F64) -> tuple[F64, F64, F64, F64, F64, float]:
        """``n_gen, m, eff, reco_hist, fake_hist, sim_total`` of MC weights ``w``."""
        n_gen = _hist(gi[gen_ok], w[gen_ok], kg)
        joint = np.zeros((kr, kg))
        np.add.at(joint, (ri[both], gi[both]), w[both])
        m = np.divide(joint, n_gen[None, :], out=np.zeros_like(joint), where=n_gen[None, :] > 0)
        reco_hist = _hist(ri[reco_ok], w[reco_ok], kr)
        fake_hist = _hist(ri[fake_mask], w[fake_mask], kr)
        return n_gen, m, m.sum(axis=0), reco_hist, fake_hist, float(w[reco_ok].sum())

    n_gen, m, eff, reco_hist, fake_hist, sim_total = response(mc.weight)
    fake_frac = np.divide(fake_hist, reco_hist, out=np.zeros_like(fake_hist), where=reco_hist > 0)
    bkg = np.zeros(kr)
    if background is not None:
        b = background.pass_reco
        bkg = _hist(bin_index(background.reco[b, c], r_edges), background.weight[b], kr)
    if sim_total <= 0:
        raise DataFormatError("mc: the weights of events passing reco sum to <= 0")
    di = bin_index(data.reco[:, c], r_edges)

    def unfold(dw: F64, resp: tuple[F64, F64, F64, F64, F64, float]) -> tuple[F64, F64, F64, float]:
        n_gen, m, eff, _, fake_hist, sim_total = resp
        d = _hist(di, dw, kr)
        target = float(dw.sum() - bkg.sum())
        if target <= 0:
            raise DataFormatError("background: its weights cancel the data's; nothing to unfold")
        s = target / sim_total
        fakes = s * fake_hist
        signal = np.clip(d - bkg - fakes, 0.0, None)
        return _iterate(m, eff, n_gen, signal, iterations), d, fakes, s

    nominal = (n_gen, m, eff, reco_hist, fake_hist, sim_total)
    counts, d, fakes, s = unfold(data.weight, nominal)
    boot = np.empty((bootstrap, kg - 2))
    for r in range(bootstrap):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 2, r]))
        dw = data.weight * rng.poisson(1.0, size=data.n_events)
        resp = nominal
        if bootstrap_mc:
            k = np.random.default_rng(np.random.SeedSequence([seed, 3, r]))
            resp = response(mc.weight * k.poisson(1.0, size=mc.n_events))
        boot[r] = unfold(dw, resp)[0][-1, 1:-1]
    settings = {
        "method": "ibu",
        "iterations": iterations,
        "bootstrap": bootstrap,
        "bootstrap_mc": bootstrap_mc,
        "seed": seed,
        "normalisation": s,
        "background": background is not None,
        "physgen_version": __version__,
    }
    return IBUResult(
        column=mc.columns[c],
        edges=g_edges,
        reco_edges=r_edges,
        unfolded=counts[:, 1:-1],
        unfolded_flow=counts[:, [0, -1]],
        prior=s * n_gen[1:-1],
        bootstrap=boot,
        efficiency=eff,
        fake_fraction=fake_frac,
        response=m,
        data=d,
        fakes=fakes,
        background=bkg,
        settings=settings,
    )


_ARRAYS = (
    "edges",
    "reco_edges",
    "unfolded",
    "unfolded_flow",
    "prior",
    "bootstrap",
    "efficiency",
    "fake_fraction",
    "response",
    "data",
    "fakes",
    "background",
)


def write_ibu(path: Path | str, results: Sequence[IBUResult]) -> Path:
    """Write IBU results atomically to HDF5: one group per observable (named after it) with
    the arrays of :class:`IBUResult` as datasets and ``settings`` as a JSON attribute."""
    import h5py

    p = Path(path)
    with atomic_path(p) as tmp, h5py.File(tmp, "w") as f:
        for res in results:
            g = f.create_group(res.column.replace("/", "_"))
            g.attrs["column"] = res.column
            g.attrs["settings"] = json.dumps(res.settings)
            for name in _ARRAYS:
                g.create_dataset(name, data=getattr(res, name))
        f.attrs["columns"] = [r.column for r in results]
        f.attrs["physgen_version"] = __version__
    return p


def event_weights(result: IBUResult, mc: UnfoldingMC, counts: Any = None) -> F64:
    """The MC's gen-passing events reweighted bin by bin to an IBU result, ``(n,)``.

    Event ``i`` in gen bin ``k`` gets ``w_i · u_k / (s · N_k)`` with ``u`` the unfolded counts
    (data units), ``N`` the MC gen histogram and ``s`` the normalisation: MC units, so that
    the marginal of ``result.column`` follows the unfolded histogram and the weights compare
    with the MC weights ``w`` (other columns follow the MC's correlations with it).

    Args:
        result: An IBU result of one of ``mc``'s columns.
        mc: The MC it was computed from.
        counts: In-range counts ``(K,)`` or ``(B, K)`` to use instead of the final iteration's
            (e.g. ``result.bootstrap``); flow bins keep the final iteration's ratio.

    Returns:
        ``(n,)`` (or ``(B, n)``) weights of ``mc.gen[mc.pass_gen]``.
    """
    c = mc.column_index(result.column)
    m = mc.pass_gen
    idx = bin_index(mc.gen[m, c], result.edges)
    n_gen = _hist(idx, mc.weight[m], result.edges.size + 1)
    s = float(result.settings.get("normalisation", 1.0))
    u = np.asarray(result.final if counts is None else counts, dtype=np.float64)
    flow = result.unfolded_flow[-1]
    full = np.concatenate(
        [
            np.broadcast_to(flow[0], (*u.shape[:-1], 1)),
            u,
            np.broadcast_to(flow[1], (*u.shape[:-1], 1)),
        ],
        axis=-1,
    )
    ratio = np.divide(full, s * n_gen, out=np.zeros_like(full), where=n_gen > 0)
    out: F64 = ratio[..., idx] * mc.weight[m]
    return out
