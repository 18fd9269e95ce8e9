"""The figures of an evaluation: which plots each mode draws, named as the official ones.

:func:`plot_histograms` draws the feature histograms of the ``hist`` mode (one figure per
histogram, and E_tot/E_inc per incident energy for dataset 1),
:func:`plot_average_showers` the average showers of ``avg`` (per layer, and the whole
shower of each sample on one colour scale) and :func:`plot_average_showers_per_energy`
those of ``avg-E`` per incident-energy range. The drawing itself is in
:mod:`physgen.calo.evaluate.plots` and :mod:`physgen.calo.evaluate.average_plots`; every
function returns the paths written (the first format of each figure).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from physgen.calo.evaluate import average_plots as A
from physgen.calo.evaluate import plots as P
from physgen.calo.evaluate.histograms import HistogramResult
from physgen.calo.evaluate.samples import SampleSummary
from physgen.calo.geometry import Geometry

if TYPE_CHECKING:
    from physgen.trust.ensemble import Band

__all__ = [
    "plot_average_showers",
    "plot_average_showers_per_energy",
    "plot_histograms",
    "plot_info",
]


def plot_info(geo: Geometry, ref: SampleSummary, gen: SampleSummary) -> P.PlotInfo:
    """The label of every figure: dataset, particle, incident energies and sample sizes."""
    e_ref = ref.features.incident_energy
    return P.PlotInfo(
        dataset=geo.name,
        particle=geo.particle,
        energy_range_mev=(float(e_ref.min()), float(e_ref.max())) if e_ref.size else None,
        n_reference=ref.n,
        n_generated=gen.n,
    )


def plot_histograms(
    hist: list[HistogramResult],
    per_e: list[HistogramResult],
    vox: HistogramResult | None,
    stage: Path,
    dataset: str,
    *,
    label: str,
    info: P.PlotInfo,
    formats: tuple[str, ...],
    bands: dict[str, Band] | None = None,
) -> list[Path]:
    """The ``hist`` mode's figures: each feature histogram, the voxel spectrum, and
    E_tot/E_inc per incident energy (when ``per_e`` holds them). ``bands`` (by histogram
    key: an ensemble's densities) add the members' mean +- 1 sigma to each figure."""
    files: list[Path] = []
    band_label = None
    if bands:
        k = next(iter(bands.values())).k
        band_label = rf"ensemble mean $\pm 1\sigma$ ({k} members)"
    with P.HistogramPlotter(
        gen_label=label, info=info, formats=formats, band_label=band_label
    ) as plotter:
        for r in [*hist, *([vox] if vox else [])]:
            b = None if not bands or r.spec.key not in bands else bands[r.spec.key]
            lohi = None if b is None else (b.mean - b.std, b.mean + b.std)
            path = stage / f"{r.spec.filename}_dataset_{dataset}.png"
            files.append(plotter.plot(r, path, band=lohi))
    if per_e:
        files.append(
            P.plot_etot_per_energy(
                per_e,
                stage / f"Etot_Einc_dataset_{dataset}_E_i.png",
                gen_label=label,
                info=info,
                formats=formats,
            )
        )
    return files


def plot_average_showers(
    geo: Geometry,
    ref_mean: npt.NDArray[np.float64],
    gen_mean: npt.NDArray[np.float64],
    stage: Path,
    *,
    label: str,
    info: P.PlotInfo,
    formats: tuple[str, ...],
) -> list[Path]:
    """The ``avg`` mode's figures: the average shower per layer, and the whole average
    shower of each sample on one colour scale."""
    ds = geo.name
    files = A.plot_average_layers(
        geo,
        ref_mean,
        gen_mean,
        stage,
        ds,
        gen_label=label,
        info=info,
        formats=formats,
    )
    scale = A.energy_scale(ref_mean, gen_mean)
    for mean, name, title in (
        (gen_mean, f"average_shower_dataset_{ds}.png", label),
        (ref_mean, f"reference_average_shower_dataset_{ds}.png", "reference"),
    ):
        files.append(
            A.plot_average_shower(
                geo,
                mean,
                stage / name,
                f"{title}: shower average",
                scale=scale,
                info=info,
                formats=formats,
            )
        )
    return files


def plot_average_showers_per_energy(
    geo: Geometry,
    ref: SampleSummary,
    gen: SampleSummary,
    stage: Path,
    *,
    label: str,
    info: P.PlotInfo,
    formats: tuple[str, ...],
) -> list[Path]:
    """The ``avg-E`` mode's figures: the average shower of each sample per incident-energy
    range (ranges where either sample has no shower are skipped)."""
    ds = geo.name
    files: list[Path] = []
    for (lo, hi), s in ref.range_sums.items():
        nr, ng = ref.range_counts[(lo, hi)], gen.range_counts[(lo, hi)]
        if nr and ng:
            name = f"average_shower_dataset_{ds}_E_{lo}.png"
            g_mean, r_mean = gen.range_sums[(lo, hi)] / ng, s / nr
            scale = A.energy_scale(r_mean, g_mean)
            e_text = f"E in [{P.energy_text(lo)}, {P.energy_text(hi)})"
            info_e = replace(info, energy_range_mev=None, n_reference=nr, n_generated=ng)
            for mean, path, title in (
                (g_mean, stage / name, f"{label} ({ng} showers): {e_text}"),
                (r_mean, stage / f"reference_{name}", f"reference ({nr} showers): {e_text}"),
            ):
                files.append(
                    A.plot_average_shower(
                        geo, mean, path, title, scale=scale, info=info_e, formats=formats
                    )
                )
    return files
