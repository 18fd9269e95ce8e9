"""Histograms of high-level features with the official binnings, and their separation power.

The separation power (triangular discrimination, eq. 15 of arXiv:2009.03796) of two
histograms with contents h, g normalised to unit sum is
``S = 1/2 sum_i (h_i - g_i)^2 / (h_i + g_i)``: 0 for identical, 1 for disjoint
histograms. As in the official code, histograms are density-normalised over the
entries inside the binning range (entries outside are dropped) and ``1e-16`` is
added to the denominator.

The histograms are :class:`~physgen.calo.evaluate.binned.WeightedHistogram` objects:
boost-histogram ``Weight`` storage (sum of weights and of squared weights per bin),
filled batch by batch with ``np.histogram``'s bin rule, so the separation powers equal
the official ones; optional per-shower weights give weighted densities, and every
result carries the statistical errors of its densities for the figures.

The binnings (official ``evaluate_plotting_helper``):

================== ============================================================
E_tot / E_inc      100 bins on [0.5, 1.5]
E_tot / E_inc (E)  dataset 1 per energy: 20 bins on [0.4, 1.4]; photons from
                   4096 MeV on: [0.9, 1.1]
E_layer            40 log-spaced edges from the voxel threshold to the largest
                   reference layer energy
EC x / y           100 bins; [-30, 30] mm (2, 3); [-500, 500] (ds1 layers 12, 13);
                   [-100, 100] otherwise
width x / y        100 bins; [0, 30] mm (2, 3); [0, 400] (12, 13); [0, 100] otherwise
EC r               100 bins; [0, 42] mm (2, 3); [0, 1500] (ds1 12-14); [0, 500] otherwise
width r            100 bins; [0, 20] mm (2, 3); [0, 1500] (ds1 12-14); [0, 500] otherwise
sparsity           20 bins on [0, 1]
voxel energies     50 log-spaced edges from the threshold to the largest reference voxel
================== ============================================================
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from physgen.calo.evaluate.binned import WeightedHistogram
from physgen.calo.evaluate.features import ShowerFeatures
from physgen.calo.geometry import Geometry

__all__ = [
    "DS1_ENERGIES_MEV",
    "HistogramResult",
    "HistogramSpec",
    "VoxelSpectrum",
    "compare_histograms",
    "compare_per_energy",
    "density_histogram",
    "fill_spec",
    "histogram_specs",
    "separation_power",
]

F64 = npt.NDArray[np.float64]
DS1_ENERGIES_MEV = tuple(float(2**k) for k in range(8, 23))


def density_histogram(
    values: npt.ArrayLike, edges: npt.ArrayLike, weights: npt.ArrayLike | None = None
) -> F64:
    """``np.histogram(values, edges, weights=weights, density=True)``, zeros for an empty input.

    Filled by :class:`~physgen.calo.evaluate.binned.WeightedHistogram` (numpy's bin rule,
    boost-histogram's accumulation).
    """
    w = None if weights is None else np.asarray(weights).ravel()
    return WeightedHistogram(edges).fill(np.asarray(values).ravel(), w).density()


def separation_power(h_ref: npt.ArrayLike, h_gen: npt.ArrayLike, edges: npt.ArrayLike) -> float:
    """Separation power of two density histograms on the same edges.

    Args:
        h_ref: Reference density ``(n_bins,)`` (integrates to 1 over the edges).
        h_gen: Generated density ``(n_bins,)``.
        edges: Bin edges ``(n_bins + 1,)``.

    Returns:
        S in [0, 1].
    """
    w = np.diff(np.asarray(edges, dtype=np.float64))
    a = np.asarray(h_ref, dtype=np.float64) * w
    b = np.asarray(h_gen, dtype=np.float64) * w
    return float(0.5 * np.sum((a - b) ** 2 / (a + b + 1e-16)))


@dataclass(frozen=True)
class HistogramSpec:
    """One histogram of the evaluation.

    Attributes:
        key: Machine name, e.g. ``"E_layer_12"``.
        title: Name in the official text file, e.g. ``"E layer 12"``.
        filename: Official PNG name without the ``_dataset_<ds>.png`` suffix, e.g. ``"E_layer_12"``.
        feature: ShowerFeatures attribute (or ``"etot_einc"``).
        column: Column index into the feature array, or None for 1-D features.
        edges: Bin edges.
        xlabel: Axis label with units.
        log_x: Plot with a log x axis.
        group: Feature class for summaries (``"E_layer"``, ``"EC_eta"``...).
    """

    key: str
    title: str
    filename: str
    feature: str
    column: int | None
    edges: tuple[float, ...]
    xlabel: str
    log_x: bool = False
    group: str = ""

    def values(self, f: ShowerFeatures) -> F64:
        """The feature values of every shower."""
        if self.feature == "etot_einc":
            return f.etot_over_einc()
        arr: F64 = getattr(f, self.feature)
        return arr if self.column is None else arr[:, self.column]


@dataclass(frozen=True)
class HistogramResult:
    """A filled pair of histograms and their separation power.

    Attributes:
        spec: What was histogrammed and how.
        reference, generated: Densities per bin (unit integral over the edges).
        separation_power: S of the two densities.
        energy_mev: Lower end of the incident-energy range (per-energy histograms).
        reference_error, generated_error: Statistical errors of the densities,
            sqrt(sum of squared weights) normalised like the contents (empty if unknown).
        n_reference, n_generated: Sums of weights inside the edges (entries when
            unweighted).
    """

    spec: HistogramSpec
    reference: tuple[float, ...]
    generated: tuple[float, ...]
    separation_power: float
    energy_mev: float | None = None
    reference_error: tuple[float, ...] = ()
    generated_error: tuple[float, ...] = ()
    n_reference: float = 0.0
    n_generated: float = 0.0

    @classmethod
    def of(
        cls,
        spec: HistogramSpec,
        reference: WeightedHistogram,
        generated: WeightedHistogram,
        energy_mev: float | None = None,
    ) -> HistogramResult:
        """The result of two histograms filled on ``spec``'s edges."""
        h_ref, h_gen = reference.density(), generated.density()
        return cls(
            spec,
            tuple(h_ref.tolist()),
            tuple(h_gen.tolist()),
            separation_power(h_ref, h_gen, reference.edges),
            energy_mev,
            tuple(reference.density_error().tolist()),
            tuple(generated.density_error().tolist()),
            reference.sum(),
            generated.sum(),
        )


def _is_par04(geometry: Geometry) -> bool:
    return geometry.name in ("2", "3")


def _ranges(geometry: Geometry, layer_id: int) -> dict[str, tuple[float, float]]:
    if _is_par04(geometry):
        return {"ec": (-30, 30), "width": (0, 30), "ecr": (0, 42), "widthr": (0, 20)}
    if geometry.name.startswith("1-"):
        big = layer_id in (12, 13)
        bigr = layer_id in (12, 13, 14)
        return {
            "ec": (-500, 500) if big else (-100, 100),
            "width": (0, 400) if big else (0, 100),
            "ecr": (0, 1500) if bigr else (0, 500),
            "widthr": (0, 1500) if bigr else (0, 500),
        }
    # other geometries (calogan, user XMLs): ranges from the outermost voxel edge
    rmax = 0.0
    for layer in geometry.relevant_layers:
        if layer.kind == "cartesian":
            rmax = max(rmax, abs(layer.x_edges[0]), abs(layer.x_edges[-1]))
        else:
            rmax = max(rmax, layer.r_edges[-1])
    return {"ec": (-rmax, rmax), "width": (0, rmax), "ecr": (0, rmax), "widthr": (0, rmax)}


def _lin(lo: float, hi: float, n: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.linspace(lo, hi, n + 1))


def _log(lo: float, hi: float, n_edges: int, dtype: str = "float64") -> tuple[float, ...]:
    """Log-spaced edges from ``lo`` to ``hi`` as the official code makes them:
    ``logspace(log10(min_energy), log10(reference.max()), n)``, where the maximum (and
    so its logarithm) is in the sample's dtype: float32 files give a float32 log10."""
    hi = max(hi, lo * 10)
    stop = float(np.log10(np.asarray(hi, dtype=dtype)))
    return tuple(float(v) for v in np.logspace(np.log10(lo), stop, n_edges))


def _threshold(geometry: Geometry) -> float:
    # geometries without a readout threshold (calogan) start their log axes at 1 keV
    return geometry.threshold_mev if geometry.threshold_mev > 0 else 1e-3


def histogram_specs(reference: ShowerFeatures) -> list[HistogramSpec]:
    """All histograms of the ``hist`` mode for this geometry, binned as the official code.

    The E_layer binning depends on the reference sample, hence the argument.
    """
    geo = reference.geometry
    thr = _threshold(geo)
    specs = [
        HistogramSpec(
            "Etot_Einc",
            "Etot / Einc",
            "Etot_Einc",
            "etot_einc",
            None,
            _lin(0.5, 1.5, 100),
            r"$E_{\mathrm{tot}} / E_{\mathrm{inc}}$",
            group="E_tot",
        )
    ]
    for i, lid in enumerate(reference.layer_ids):
        emax = float(reference.e_layer[:, i].max()) if reference.n else thr * 10
        specs.append(
            HistogramSpec(
                f"E_layer_{lid}",
                f"E layer {lid}",
                f"E_layer_{lid}",
                "e_layer",
                i,
                _log(thr, emax, 40, reference.energy_dtype),
                "$E$ [MeV]",
                log_x=True,
                group="E_layer",
            )
        )
    for i, lid in enumerate(reference.alpha_layer_ids):
        rg = _ranges(geo, lid)
        for feat, title, fname, rng_key, label, group in (
            ("ec_x", "EC Eta", "ECEta", "ec", r"center of energy $x$ [mm]", "EC_eta"),
            ("ec_y", "EC Phi", "ECPhi", "ec", r"center of energy $y$ [mm]", "EC_phi"),
            ("width_x", "Width Eta", "WidthEta", "width", r"width in $x$ [mm]", "width_eta"),
            ("width_y", "Width Phi", "WidthPhi", "width", r"width in $y$ [mm]", "width_phi"),
        ):
            specs.append(
                HistogramSpec(
                    f"{fname}_layer_{lid}",
                    f"{title} layer {lid}",
                    f"{fname}_layer_{lid}",
                    feat,
                    i,
                    _lin(*rg[rng_key], 100),
                    label,
                    group=group,
                )
            )
    for i, lid in enumerate(reference.layer_ids):
        rg = _ranges(geo, lid)
        specs += [
            HistogramSpec(
                f"ECR_layer_{lid}",
                f"EC R layer {lid}",
                f"ECR_layer_{lid}",
                "ec_r",
                i,
                _lin(*rg["ecr"], 100),
                r"center of energy $r$ [mm]",
                group="EC_r",
            ),
            HistogramSpec(
                f"WidthR_layer_{lid}",
                f"Width R layer {lid}",
                f"WidthR_layer_{lid}",
                "width_r",
                i,
                _lin(*rg["widthr"], 100),
                r"width in $r$ [mm]",
                group="width_r",
            ),
            HistogramSpec(
                f"Sparsity_layer_{lid}",
                f"Sparsity layer {lid}",
                f"Sparsity_layer_{lid}",
                "sparsity",
                i,
                _lin(0.0, 1.0, 20),
                "fraction of empty voxels",
                group="sparsity",
            ),
        ]
    return specs


def ds1_energy_specs(geometry: Geometry) -> list[tuple[float, float, HistogramSpec]]:
    """Per-energy E_tot/E_inc histograms of dataset 1: ``(E_low, E_high, spec)``."""
    out = []
    edges = 2.0 ** np.linspace(8, 23, 16)
    for i in range(15):
        narrow = i > 3 and geometry.particle == "photon"
        bins = _lin(0.9, 1.1, 20) if narrow else _lin(0.4, 1.4, 20)
        e = float(edges[i])
        spec = HistogramSpec(
            f"Etot_Einc_E_{int(e)}",
            f"Etot / Einc at E = {e}",
            f"Etot_Einc_E_{int(e)}",
            "etot_einc",
            None,
            bins,
            r"$E_{\mathrm{tot}} / E_{\mathrm{inc}}$",
            group="E_tot_per_E",
        )
        out.append((e, float(edges[i + 1]), spec))
    return out


def fill_spec(
    spec: HistogramSpec, features: ShowerFeatures, weights: npt.ArrayLike | None = None
) -> WeightedHistogram:
    """The histogram of one spec for a sample (``weights``: one per shower, or None)."""
    return WeightedHistogram(spec.edges).fill(spec.values(features), weights)


def _check_weights(weights: npt.ArrayLike | None, n: int, name: str) -> F64 | None:
    if weights is None:
        return None
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != (n,):
        raise ValueError(f"{name}: expected one weight per shower ({n}), got {w.shape}")
    return w


def compare_histograms(
    reference: ShowerFeatures,
    generated: ShowerFeatures,
    specs: list[HistogramSpec],
    *,
    reference_weights: npt.ArrayLike | None = None,
    generated_weights: npt.ArrayLike | None = None,
) -> list[HistogramResult]:
    """Fill each spec for both samples and compute the separation powers.

    Args:
        reference, generated: Features of the two samples.
        specs: The histograms (see :func:`histogram_specs`).
        reference_weights, generated_weights: Optional per-shower weights (e.g. from a
            reweighting classifier); None counts every shower once, as the official code.

    Returns:
        One result per spec, with densities, their statistical errors and S.
    """
    wr = _check_weights(reference_weights, reference.n, "reference_weights")
    wg = _check_weights(generated_weights, generated.n, "generated_weights")
    return [
        HistogramResult.of(spec, fill_spec(spec, reference, wr), fill_spec(spec, generated, wg))
        for spec in specs
    ]


def compare_per_energy(
    reference: ShowerFeatures,
    generated: ShowerFeatures,
    *,
    reference_weights: npt.ArrayLike | None = None,
    generated_weights: npt.ArrayLike | None = None,
) -> list[HistogramResult]:
    """Dataset-1 E_tot/E_inc histograms per incident energy (optional per-shower weights)."""
    wr = _check_weights(reference_weights, reference.n, "reference_weights")
    wg = _check_weights(generated_weights, generated.n, "generated_weights")
    out = []
    for lo, hi, spec in ds1_energy_specs(reference.geometry):
        sr = (reference.incident_energy >= lo) & (reference.incident_energy < hi)
        sg = (generated.incident_energy >= lo) & (generated.incident_energy < hi)
        h_ref = fill_spec(spec, reference.select(sr), None if wr is None else wr[sr])
        h_gen = fill_spec(spec, generated.select(sg), None if wg is None else wg[sg])
        out.append(HistogramResult.of(spec, h_ref, h_gen, energy_mev=lo))
    return out


class VoxelSpectrum:
    """Streaming histogram of all voxel energies (50 log edges, threshold .. max reference voxel).

    Fill it batch by batch with thresholded or raw showers: voxels below the threshold
    are dropped (compared in the showers' dtype, as the official code zeroes them) and
    so are zeros. Optional per-shower weights apply to every voxel of the shower.
    """

    def __init__(
        self, geometry: Geometry, max_reference_voxel: float, dtype: str = "float64"
    ) -> None:
        thr = _threshold(geometry)
        self.threshold = float(geometry.threshold_mev)
        self.spec = HistogramSpec(
            "voxel",
            "Voxel distribution",
            "voxel_energy",
            "voxel",
            None,
            _log(thr, max_reference_voxel, 50, dtype),
            "voxel energy $E$ [MeV]",
            log_x=True,
            group="voxel",
        )
        self.edges: F64 = np.asarray(self.spec.edges)
        self.histogram = WeightedHistogram(self.edges, self.threshold)

    def batch(
        self, showers: npt.ArrayLike, weights: npt.ArrayLike | None = None
    ) -> WeightedHistogram:
        """The histogram of one batch ``(b, n_voxels)`` (weights ``(b,)``), without adding
        it (thread-safe; add it with :meth:`add`)."""
        return WeightedHistogram(self.edges, self.threshold).fill(np.asarray(showers), weights)

    def add(self, part: WeightedHistogram) -> None:
        """Add a batch histogram made by :meth:`batch`."""
        self.histogram += part

    def fill(self, showers: npt.ArrayLike, weights: npt.ArrayLike | None = None) -> None:
        """Add the voxels of a batch ``(b, n_voxels)`` (weights ``(b,)`` per shower)."""
        self.histogram.fill(np.asarray(showers), weights)

    @property
    def counts(self) -> F64:
        """Sums of weights per bin (voxel counts for unweighted fills)."""
        return self.histogram.values()

    def density(self) -> F64:
        """Density-normalised contents."""
        return self.histogram.density()

    @staticmethod
    def compare(reference: VoxelSpectrum, generated: VoxelSpectrum) -> HistogramResult:
        """Separation power of two spectra filled with the same edges."""
        return HistogramResult.of(reference.spec, reference.histogram, generated.histogram)


def iter_groups(results: list[HistogramResult]) -> Iterator[tuple[str, list[float]]]:
    """``(feature class, separation powers)`` in first-seen order, for summary tables."""
    groups: dict[str, list[float]] = {}
    for r in results:
        groups.setdefault(r.spec.group, []).append(r.separation_power)
    yield from groups.items()
