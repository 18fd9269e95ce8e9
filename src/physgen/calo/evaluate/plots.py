"""Figures of the evaluation: feature histograms with ratio panels and average showers.

Matplotlib (Agg backend) and mplhep are imported lazily, inside the functions, so
that ``import physgen.calo.evaluate`` stays light. Every function writes one PNG
and returns its path.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.calo.evaluate.histograms import HistogramResult
from physgen.calo.geometry import Geometry, Layer

__all__ = [
    "HistogramPlotter",
    "plot_average_layers",
    "plot_average_shower",
    "plot_etot_per_energy",
    "plot_histogram",
]

F64 = npt.NDArray[np.float64]


def _plt() -> Any:
    # no backend is forced here: a notebook keeps its own, and on a machine without a
    # display matplotlib already falls back to Agg
    import matplotlib.pyplot as plt

    return plt


def _style() -> Any:
    """mplhep's ROOT-like style if available, else matplotlib defaults."""
    try:
        import mplhep

        return _plt().style.context(mplhep.style.ROOT)
    except ImportError:  # pragma: no cover - mplhep is in the eval extra
        return _plt().style.context("default")


class HistogramPlotter:
    """Draws many feature histograms quickly by reusing one figure.

    Reference filled, generated as a line, ratio panel below, separation power in
    the legend. Use as a context manager; call :meth:`plot` per histogram.
    """

    def __init__(self, ref_label: str = "reference", gen_label: str = "generated") -> None:
        self.ref_label = ref_label
        self.gen_label = gen_label
        self._ctx: Any = None
        self.fig: Any = None

    def __enter__(self) -> HistogramPlotter:
        plt = _plt()
        self._ctx = _style()
        self._ctx.__enter__()
        self.fig, (self.ax, self.rax) = plt.subplots(
            2, 1, figsize=(6, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1], "hspace": 0.05}
        )
        self.fig.subplots_adjust(left=0.17, right=0.96, top=0.93, bottom=0.12)
        for a in (self.ax, self.rax):
            a.tick_params(labelsize=11)
        return self

    def __exit__(self, *exc: object) -> None:
        _plt().close(self.fig)
        self._ctx.__exit__(None, None, None)

    def plot(self, result: HistogramResult, path: Path, title: str | None = None) -> Path:
        """Draw one histogram pair into ``path`` (PNG)."""
        ax, rax = self.ax, self.rax
        spec = result.spec
        edges = np.asarray(spec.edges)
        ref = np.asarray(result.reference)
        gen = np.asarray(result.generated)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(ref > 0, gen / ref, np.nan)
        if not hasattr(self, "_ref"):
            # artists are created once and updated: matplotlib's tick set-up dominates otherwise
            self._ref = ax.stairs(
                ref, edges, fill=True, alpha=0.3, color="tab:blue", label=self.ref_label
            )
            self._gen = ax.stairs(
                gen, edges, color="tab:orange", linewidth=2.0, label=self.gen_label
            )
            self._ratio = rax.stairs(ratio, edges, color="tab:orange", linewidth=1.5, baseline=None)
            rax.axhline(1.0, color="black", linewidth=0.8)
            rax.set_ylim(0.5, 1.5)
            rax.set_ylabel("gen / ref", fontsize=12)
            ax.set_ylabel("normalised entries", fontsize=13)
            for a in (ax, rax):
                a.minorticks_off()
        else:
            self._ref.set_data(ref, edges)
            self._gen.set_data(gen, edges)
            self._ratio.set_data(ratio, edges)
        positive = np.concatenate([ref[ref > 0], gen[gen > 0]])
        logy = bool(positive.size and positive.max() / max(positive.min(), 1e-300) > 100)
        ax.set_yscale("log" if logy else "linear")
        top = float(max(ref.max(initial=0), gen.max(initial=0))) or 1.0
        if logy:
            ax.set_ylim(positive.min() * 0.5, top * 3)
        else:
            ax.set_ylim(0, top * 1.15)
        rax.set_xscale("log" if spec.log_x else "linear")
        rax.set_xlim(edges[0], edges[-1])
        for a in (ax, rax):
            a.minorticks_off()
        ax.legend(
            title=f"separation power {result.separation_power:.2e}",
            fontsize=11,
            title_fontsize=11,
            loc="best",
        )
        ax.set_title(title or spec.title, fontsize=13)
        rax.set_xlabel(spec.xlabel, fontsize=13)
        self.fig.savefig(path, dpi=72)
        return path


def plot_histogram(
    result: HistogramResult,
    path: Path,
    *,
    ref_label: str = "reference",
    gen_label: str = "generated",
    title: str | None = None,
) -> Path:
    """One histogram figure (see :class:`HistogramPlotter` for many)."""
    with HistogramPlotter(ref_label, gen_label) as p:
        return p.plot(result, path, title)


def plot_etot_per_energy(results: list[HistogramResult], path: Path) -> Path:
    """Dataset-1 grid: E_tot/E_inc per incident energy (4 x 4 panels)."""
    plt = _plt()
    with _style():
        fig, axes = plt.subplots(4, 4, figsize=(14, 13))
        for ax, res in zip(axes.ravel(), results):
            edges = np.asarray(res.spec.edges)
            ax.stairs(np.asarray(res.reference), edges, fill=True, alpha=0.3, label="reference")
            ax.stairs(np.asarray(res.generated), edges, linewidth=2, label="generated")
            e = res.energy_mev or 0.0
            label = (
                f"{e:.0f} MeV"
                if e < 1e3
                else (f"{e / 1e3:.1f} GeV" if e < 1e6 else f"{e / 1e6:.2f} TeV")
            )
            ax.set_title(f"E = {label}, S = {res.separation_power:.1e}", fontsize=10)
            ax.tick_params(labelsize=8)
        axes.ravel()[-1].axis("off")
        axes.ravel()[0].legend(fontsize=9)
        fig.supxlabel(r"$E_{\mathrm{tot}} / E_{\mathrm{inc}}$")
        fig.tight_layout()
        fig.savefig(path, dpi=80)
        plt.close(fig)
    return path


def _draw_layer(ax: Any, layer: Layer, values: F64, norm: Any, cmap: str = "viridis") -> Any:
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
        )
    grid = values.reshape(layer.n_alpha, layer.n_radial)
    alpha_edges = np.linspace(-math.pi, math.pi, layer.n_alpha + 1)
    if layer.n_alpha == 1:  # draw rings smoothly
        alpha_edges = np.linspace(-math.pi, math.pi, 65)
        grid = np.repeat(grid, 64, axis=0)
    r_edges = np.asarray(layer.r_edges)
    return ax.pcolormesh(alpha_edges, r_edges, grid.T, norm=norm, cmap=cmap, shading="flat")


def plot_average_layers(
    geometry: Geometry, reference_mean: F64, generated_mean: F64, out_dir: Path, suffix: str
) -> list[Path]:
    """One figure per layer: reference average, generated average, and their ratio.

    Files: ``Average_Layer_<id>_dataset_<suffix>.png`` (official names).
    """
    plt = _plt()
    from matplotlib.colors import LogNorm, Normalize

    paths = []
    vmax = max(float(reference_mean.max()), 1e-12)
    vmin = max(vmax * 1e-5, 1e-6)
    for layer in geometry.relevant_layers:
        sl = geometry.layer_slice(layer.id)
        ref, gen = reference_mean[sl], generated_mean[sl]
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(ref > 0, gen / ref, np.nan)
        polar = layer.kind == "polar"
        fig = plt.figure(figsize=(11, 3.6))
        axes = [
            fig.add_subplot(1, 3, i + 1, projection="polar" if polar else None) for i in range(3)
        ]
        norm = LogNorm(vmin=vmin, vmax=vmax)
        for ax, vals, title in ((axes[0], ref, "reference"), (axes[1], gen, "generated")):
            m = _draw_layer(ax, layer, np.clip(vals, vmin, None), norm)
            ax.set_title(f"{title}, layer {layer.id}", fontsize=10)
        fig.colorbar(m, ax=axes[:2], label="mean energy [MeV]", shrink=0.8)
        m2 = _draw_layer(axes[2], layer, ratio, Normalize(0.5, 1.5), cmap="coolwarm")
        axes[2].set_title("generated / reference", fontsize=10)
        fig.colorbar(m2, ax=axes[2], shrink=0.8)
        for ax in axes:
            if polar:
                ax.set_xticklabels([])
                ax.set_yticklabels([])
        if polar:
            fig.text(
                0.01,
                0.02,
                f"rings: r edges up to {layer.r_edges[-1]:g} mm; {layer.n_alpha} angular bins",
                fontsize=8,
            )
        path = out_dir / f"Average_Layer_{layer.id}_dataset_{suffix}.png"
        fig.savefig(path, dpi=80)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_average_shower(geometry: Geometry, mean: F64, path: Path, title: str) -> Path:
    """All layers of an average shower in one grid of small panels (log colour scale, MeV)."""
    plt = _plt()
    from matplotlib.colors import LogNorm

    layers = geometry.relevant_layers
    ncol = 9 if len(layers) > 10 else len(layers)
    nrow = math.ceil(len(layers) / ncol)
    vmax = max(float(mean.max()), 1e-12)
    norm = LogNorm(vmin=max(vmax * 1e-5, 1e-6), vmax=vmax)
    fig = plt.figure(figsize=(2.0 * ncol, 2.1 * nrow + 0.8))
    m = None
    for i, layer in enumerate(layers):
        polar = layer.kind == "polar"
        ax = fig.add_subplot(nrow, ncol, i + 1, projection="polar" if polar else None)
        vals = np.clip(mean[geometry.layer_slice(layer.id)], norm.vmin, None)
        m = _draw_layer(ax, layer, vals, norm)
        ax.set_title(f"layer {layer.id}", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    if m is not None:
        fig.colorbar(m, ax=fig.axes, label="mean energy [MeV]", shrink=0.6)
    fig.suptitle(title)
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return path
