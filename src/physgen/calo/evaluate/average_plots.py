"""Figures of average showers: per-layer images of the mean voxel energies.

Polar layers are drawn as rings and sectors, Cartesian ones as images. All layers, and
the reference and generated averages, share one log colour scale
(:func:`energy_scale`); mean energies below it (and empty voxels) are drawn in light
grey, and the colour bars carry ``extend`` arrows whenever some values fall outside
their scale. Files are written by :func:`~physgen.calo.evaluate.plots.save_figure`
(PNG at 150 dpi and PDF beside it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.calo.evaluate.plots import FORMATS, PlotInfo, _plt, save_figure
from physgen.calo.geometry import Geometry, Layer

__all__ = ["energy_scale", "plot_average_layers", "plot_average_shower"]

F64 = npt.NDArray[np.float64]


def _draw_layer(ax: Any, layer: Layer, values: F64, norm: Any, cmap: Any) -> Any:
    """Polar (r, alpha) or Cartesian image of one layer; returns the mappable."""
    if layer.kind == "cartesian":
        grid = values.reshape(layer.n_y, layer.n_x)
        return ax.pcolormesh(
            np.asarray(layer.x_edges),
            np.asarray(layer.y_edges),
            grid,
            norm=norm,
            cmap=cmap,
            shading="flat",
            rasterized=True,
        )
    grid = values.reshape(layer.n_alpha, layer.n_radial)
    # each angular bin in several sectors, so that rings are drawn round, not as polygons
    k = max(1, math.ceil(64 / layer.n_alpha))
    alpha_edges = np.linspace(-math.pi, math.pi, layer.n_alpha * k + 1)
    grid = np.repeat(grid, k, axis=0)
    r_edges = np.asarray(layer.r_edges)
    return ax.pcolormesh(
        alpha_edges, r_edges, grid.T, norm=norm, cmap=cmap, shading="flat", rasterized=True
    )


def _note(info: PlotInfo) -> str:
    """The annotation line under an average-shower figure."""
    sizes = ""
    if info.n_reference is not None and info.n_generated is not None:
        sizes = f"{info.n_reference:,} reference / {info.n_generated:,} generated showers"
    parts = (info.dataset_text(), info.condition_text(), sizes)
    return f"$\\mathbf{{{info.label}}}$  " + ";  ".join(p for p in parts if p)


def _extend(values: F64, vmin: float, vmax: float) -> str:
    """The colour bar's ``extend`` for finite values outside ``[vmin, vmax]``."""
    v = values[np.isfinite(values)]
    low, high = bool((v < vmin).any()), bool((v > vmax).any())
    return {(False, False): "neither", (True, False): "min", (False, True): "max"}.get(
        (low, high), "both"
    )


def energy_scale(*means: F64, decades: float = 5.0) -> tuple[float, float]:
    """A shared log colour scale for average showers: the largest mean voxel energy of
    all of them and ``decades`` below (MeV)."""
    vmax = max([float(np.max(m)) for m in means if m.size] + [1e-12])
    return max(vmax * 10.0**-decades, 1e-6), vmax


def _energy_cmap() -> Any:
    from matplotlib import colormaps

    # below the scale (and empty voxels) in light grey: the colour bar's "min" arrow
    return colormaps["viridis"].with_extremes(under="0.88", bad="0.88")


def plot_average_layers(
    geometry: Geometry,
    reference_mean: F64,
    generated_mean: F64,
    out_dir: Path,
    suffix: str,
    *,
    gen_label: str = "generated",
    info: PlotInfo | None = None,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """One figure per layer: reference average, generated average, and their ratio.

    Every layer and both samples share one log colour scale (:func:`energy_scale`);
    values below it are drawn in grey and flagged by the colour bar's arrow, as are
    ratios outside [0.5, 1.5]. Files: ``Average_Layer_<id>_dataset_<suffix>.png`` (the
    official names) and the other ``formats`` beside them.
    """
    plt = _plt()
    from matplotlib import colormaps
    from matplotlib.colors import LogNorm, Normalize

    info = info or PlotInfo()
    vmin, vmax = energy_scale(reference_mean, generated_mean)
    cmap = _energy_cmap()
    ratio_cmap = colormaps["coolwarm"].with_extremes(bad="0.3")
    paths = []
    for layer in geometry.relevant_layers:
        sl = geometry.layer_slice(layer.id)
        ref, gen = reference_mean[sl], generated_mean[sl]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(ref > 0, gen / ref, np.nan)
        polar = layer.kind == "polar"
        fig = plt.figure(figsize=(12, 4.2))
        fig.subplots_adjust(left=0.02, right=0.97, top=0.88, bottom=0.13, wspace=0.15)
        axes = [
            fig.add_subplot(1, 3, i + 1, projection="polar" if polar else None) for i in range(3)
        ]
        norm = LogNorm(vmin=vmin, vmax=vmax)
        for ax, vals, title in ((axes[0], ref, "reference"), (axes[1], gen, gen_label)):
            m = _draw_layer(ax, layer, vals, norm, cmap)
            ax.set_title(f"{title}, layer {layer.id}", fontsize=11, pad=10)
        both = np.concatenate([ref, gen])
        fig.colorbar(
            m, ax=axes[:2], label="mean energy [MeV]", shrink=0.8, extend=_extend(both, vmin, vmax)
        )
        m2 = _draw_layer(axes[2], layer, ratio, Normalize(0.5, 1.5), ratio_cmap)
        axes[2].set_title(f"{gen_label} / reference", fontsize=11, pad=10)
        fig.colorbar(m2, ax=axes[2], shrink=0.8, extend=_extend(ratio, 0.5, 1.5))
        for ax in axes:
            if polar:
                ax.set_xticklabels([])
                ax.set_yticklabels([])
                ax.grid(alpha=0.3)
        note = _note(info) + "\n"
        if polar:
            note += f"rings: r edges up to {layer.r_edges[-1]:g} mm; {layer.n_alpha} angular bins; "
        note += "light grey: below the colour scale; dark grey: no reference energy"
        fig.text(0.01, 0.02, note, fontsize=8)
        path = out_dir / f"Average_Layer_{layer.id}_dataset_{suffix}.png"
        paths.append(save_figure(fig, path, formats))
        plt.close(fig)
    return paths


def plot_average_shower(
    geometry: Geometry,
    mean: F64,
    path: Path,
    title: str,
    *,
    scale: tuple[float, float] | None = None,
    info: PlotInfo | None = None,
    formats: Sequence[str] = FORMATS,
) -> Path:
    """All layers of an average shower in one grid of small panels.

    Args:
        geometry: The readout geometry.
        mean: Mean voxel energies ``(n_voxels,)`` in MeV.
        path: Output path (``.png``; the other ``formats`` beside it).
        title: Figure title.
        scale: ``(vmin, vmax)`` of the shared log colour scale (MeV), e.g. from
            :func:`energy_scale` of the reference and generated averages, so that their
            figures compare; default: this average's own.
        info: Annotation.
        formats: File formats.
    """
    plt = _plt()
    from matplotlib.colors import LogNorm

    info = info or PlotInfo()
    layers = geometry.relevant_layers
    ncol = 9 if len(layers) > 10 else len(layers)
    nrow = math.ceil(len(layers) / ncol)
    vmin, vmax = scale if scale is not None else energy_scale(mean)
    norm = LogNorm(vmin=vmin, vmax=vmax)
    cmap = _energy_cmap()
    fig = plt.figure(figsize=(2.0 * ncol + 1.2, 2.1 * nrow + 1.0))
    height = fig.get_figheight()
    fig.subplots_adjust(left=0.02, right=0.9, top=1 - 0.6 / height, bottom=0.35 / height)
    m = None
    for i, layer in enumerate(layers):
        polar = layer.kind == "polar"
        ax = fig.add_subplot(nrow, ncol, i + 1, projection="polar" if polar else None)
        m = _draw_layer(ax, layer, mean[geometry.layer_slice(layer.id)], norm, cmap)
        ax.set_title(f"layer {layer.id}", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    if m is not None:
        # beside the grid, whose square panels fill the width left of 0.9
        cax = fig.add_axes((0.915, 0.5 - 0.3 + 0.2 / height, 0.012, 0.6))
        fig.colorbar(m, cax=cax, label="mean energy [MeV]", extend=_extend(mean, vmin, vmax))
    fig.suptitle(title)
    note = _note(info)
    fig.text(0.01, 0.1 / fig.get_figheight(), note + "   grey: below the colour scale", fontsize=8)
    out = save_figure(fig, path, formats)
    plt.close(fig)
    return out
