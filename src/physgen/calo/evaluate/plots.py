"""Figures of the evaluation: feature histograms with ratio panels.

Histograms are drawn with mplhep (``histplot``, the ROOT-like style, ``exp_label``):
the reference filled with a hatched band of its statistical uncertainty, the generated
sample as a line with error bars (sqrt of the sum of squared weights, normalised like
the contents), a ratio panel generated / reference with both errors propagated and
arrows for points off its scale, minor ticks, and a "physgen" label with the dataset,
particle, incident energies and sample sizes. Average showers share one log colour
scale across layers (and between the two samples), with ``extend`` arrows on the
colour bars where values fall outside it (:mod:`physgen.calo.evaluate.average_plots`).

Matplotlib and mplhep are imported inside the functions, so that
``import physgen.calo.evaluate`` stays light; no backend is chosen here. Every function
writes its figure as PNG (150 dpi) and PDF beside it (``formats``) and returns the
first format's path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen._optional import require
from physgen.calo.evaluate.histograms import HistogramResult

__all__ = [
    "DPI",
    "FORMATS",
    "HistogramPlotter",
    "PlotInfo",
    "annotate_figure",
    "energy_text",
    "plot_etot_per_energy",
    "plot_histogram",
    "ratio_with_errors",
    "save_figure",
]

F64 = npt.NDArray[np.float64]


def _plt() -> Any:
    # no backend is forced here: a notebook keeps its own, and on a machine without a
    # display matplotlib already falls back to Agg
    require("matplotlib.pyplot", "plot", "plots", hint="or use --no-plots")
    import matplotlib.pyplot as plt

    return plt


def _style() -> Any:
    """mplhep's ROOT-like style if available, else matplotlib defaults."""
    try:
        import mplhep

        return _plt().style.context(mplhep.style.ROOT)
    except ImportError:  # pragma: no cover - mplhep is in the eval extra
        return _plt().style.context("default")


def _hep() -> Any:
    require("mplhep", "plot", "plots", hint="or use --no-plots")
    import mplhep

    return mplhep


#: Resolution of the PNG files (the PDF files are vector graphics).
DPI = 150
FORMATS = ("png", "pdf")
_REF_COLOR, _GEN_COLOR = "#3f90da", "#e76300"


def energy_text(mev: float) -> str:
    """An energy in MeV as a short text with the fitting unit (``4.19 TeV``)."""
    for unit, scale in (("TeV", 1e6), ("GeV", 1e3), ("MeV", 1.0)):
        if mev >= scale or unit == "MeV":
            return f"{mev / scale:.3g} {unit}"
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class PlotInfo:
    """What the annotation of each figure says about the samples.

    Attributes:
        dataset: Geometry name, e.g. ``"1-photons"``.
        particle: Particle of the geometry (``"photon"``, ``"electron"``...).
        energy_range_mev: Lowest and highest incident energy of the reference (MeV).
        n_reference, n_generated: Sample sizes (showers).
        label: The bold label on the top left.
    """

    dataset: str = ""
    particle: str = ""
    energy_range_mev: tuple[float, float] | None = None
    n_reference: int | None = None
    n_generated: int | None = None
    label: str = "physgen"

    def condition_text(self) -> str:
        """``"photons, 256 MeV – 4.19 TeV"`` (particle and incident energies).

        Plain text: mathtext is parsed again for every PDF page (40 ms a figure).
        """
        parts = []
        if self.particle:
            parts.append(f"{self.particle}s")
        if self.energy_range_mev is not None:
            lo, hi = self.energy_range_mev
            parts.append(energy_text(lo) if lo == hi else f"{energy_text(lo)} – {energy_text(hi)}")
        return ", ".join(parts)

    def dataset_text(self) -> str:
        """``"CaloChallenge 1-photons"`` or empty."""
        return f"CaloChallenge {self.dataset}" if self.dataset else ""


#: Font sizes for figures of about 7 inches under mplhep's ROOT style (made for 10).
_FONTS = {
    "font.size": 13,
    "axes.labelsize": 15,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "legend.fontsize": 11,
    "legend.title_fontsize": 11,
}


def annotate_figure(fig: Any, ax: Any, info: PlotInfo) -> None:
    """hep.label-style annotation above ``ax``: the bold label and an italic "Simulation"
    on the left, the dataset on the right.

    Figure texts placed once (``mplhep.label.exp_label`` measures its texts by drawing
    the figure, 0.7 s a call, and ``Axes.cla`` would remove them).
    """
    from matplotlib.text import Annotation

    box = ax.get_position()
    y = box.y1 + 0.006
    label = fig.text(box.x0, y, info.label, fontsize=17, fontweight="bold", va="bottom")
    fig.add_artist(
        Annotation(
            "  Simulation",
            xy=(1, 0),
            xycoords=label,
            va="bottom",
            fontsize=14,
            fontstyle="italic",
        )
    )
    fig.text(box.x1, y, info.dataset_text(), fontsize=13, va="bottom", ha="right")


def save_figure(fig: Any, path: Path, formats: Sequence[str] = FORMATS, dpi: int = DPI) -> Path:
    """Write ``fig`` as ``path`` with each suffix of ``formats`` (``png`` at ``dpi``).

    Returns:
        ``path`` with the first format's suffix (the PNG, which the report embeds).
    """
    if not formats:
        raise ValueError("formats: give at least one, e.g. ('png', 'pdf')")
    for fmt in formats:
        fig.savefig(path.with_suffix(f".{fmt}"), dpi=dpi, format=fmt)
    return path.with_suffix(f".{formats[0]}")


def _errors(values: tuple[float, ...], n: int) -> F64:
    return np.asarray(values, dtype=np.float64) if values else np.zeros(n)


def ratio_with_errors(gen: F64, gen_err: F64, ref: F64, ref_err: F64) -> tuple[F64, F64]:
    """``gen / ref`` and its error, both errors propagated (uncorrelated samples).

    Bins with ``ref == 0`` give ``inf`` where ``gen > 0`` and NaN where both are empty.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = gen / ref
        err = np.sqrt((gen_err / ref) ** 2 + (gen * ref_err / ref**2) ** 2)
    ratio = np.where((ref == 0) & (gen > 0), np.inf, ratio)
    err = np.where(ref > 0, err, np.nan)
    out: tuple[F64, F64] = (ratio, err)
    return out


def _arrow(up: bool) -> Any:
    """A marker path: a vertical arrow pointing up or down (no mathtext to parse)."""
    from matplotlib.path import Path as MplPath

    s = 1.0 if up else -1.0
    verts = [(0.0, -s), (0.0, s), (-0.45, 0.35 * s), (0.0, s), (0.45, 0.35 * s)]
    codes = [MplPath.MOVETO, MplPath.LINETO, MplPath.MOVETO, MplPath.LINETO, MplPath.LINETO]
    return MplPath(verts, codes)


def _segments(x: F64, lo: F64, hi: F64) -> F64:
    """Vertical error-bar segments ``(n, 2, 2)`` from ``(x, lo)`` to ``(x, hi)``."""
    out: F64 = np.stack([np.stack([x, lo], axis=-1), np.stack([x, hi], axis=-1)], axis=1)
    return out


class HistogramPlotter:
    """Draws the feature histograms: reference filled with its statistical band,
    generated as a line with error bars, and a ratio panel generated / reference with
    propagated errors and arrows for points off the scale.

    Use as a context manager; call :meth:`plot` per histogram. Each figure is written
    as PNG (``DPI``) and PDF beside it (``formats``). The artists (made by
    ``mplhep.histplot`` for the first histogram) are updated for the next ones, not
    redrawn: making new artists and ticks for each of the 363 figures of a dataset-2
    evaluation would double the time.

    Args:
        ref_label, gen_label: Legend names of the samples.
        info: Annotation (dataset, particle, energies, sample sizes).
        formats: File formats written per figure, the first one's path is returned.
        ratio_range: y range of the ratio panel; points outside get arrows.
        band_label: Legend name of a band around the generated histogram (an ensemble's
            mean +- 1 sigma, passed to :meth:`plot` per histogram); None: no bands.
    """

    def __init__(
        self,
        ref_label: str = "reference",
        gen_label: str = "generated",
        *,
        info: PlotInfo | None = None,
        formats: Sequence[str] = FORMATS,
        ratio_range: tuple[float, float] = (0.5, 1.5),
        band_label: str | None = None,
    ) -> None:
        self.ref_label = ref_label
        self.gen_label = gen_label
        self.band_label = band_label
        self.info = info or PlotInfo()
        self.formats = tuple(formats)
        self.ratio_range = ratio_range
        self._ctx: Any = None
        self._fonts: Any = None
        self.fig: Any = None
        self._art: dict[str, Any] = {}

    def __enter__(self) -> HistogramPlotter:
        plt = _plt()
        _hep()
        self._ctx = _style()
        self._ctx.__enter__()
        self._fonts = plt.rc_context(_FONTS)
        self._fonts.__enter__()
        self.fig, (self.ax, self.rax) = plt.subplots(
            2, 1, figsize=(7, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
        )
        self.fig.subplots_adjust(left=0.15, right=0.96, top=0.94, bottom=0.11, hspace=0.06)
        annotate_figure(self.fig, self.ax, self.info)
        return self

    def __exit__(self, *exc: object) -> None:
        _plt().close(self.fig)
        self._fonts.__exit__(None, None, None)
        self._ctx.__exit__(None, None, None)

    def _legend_label(self, name: str, n: int | None, entries: float) -> str:
        if n is not None:
            return f"{name} ({n:,} showers)"
        return f"{name} ({entries:,.0f} entries)" if entries else name

    def _create(self, edges: F64, ref: F64, gen: F64, gen_err: F64) -> None:
        """The artists, made once with mplhep for the first histogram."""
        hep = _hep()
        ax, rax = self.ax, self.rax
        fill = hep.histplot(ref, edges, ax=ax, histtype="fill", color=_REF_COLOR, alpha=0.35)
        band = ax.stairs(
            ref,
            edges,
            baseline=ref,
            fill=True,
            facecolor="none",
            edgecolor=_REF_COLOR,
            hatch="//////",
            linewidth=0.0,
        )
        line = hep.histplot(
            gen, edges, yerr=gen_err, ax=ax, histtype="step", color=_GEN_COLOR, linewidth=1.6
        )
        rax.axhline(1.0, color="black", linewidth=0.8)
        ratio = rax.errorbar(
            [], [], yerr=[], fmt="o", markersize=3, color=_GEN_COLOR, elinewidth=1.0, capsize=0
        )
        arrows = [
            rax.plot([], [], linestyle="none", marker=_arrow(up), markersize=11,
                     markeredgewidth=1.6, color=_GEN_COLOR)[0]
            for up in (True, False)
        ]  # fmt: skip
        text = ax.text(
            0.04,
            0.96,
            "",
            transform=ax.transAxes,
            va="top",
            ha="left",
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1.0},
        )
        # mplhep's legend artist of a step with errors: the line with its error bar
        gen_handle = getattr(line[0], "legend_artist", None) or line[0].errorbar
        handles, names = (
            [fill[0].stairs, band, gen_handle],
            ["", f"{self.ref_label} stat. uncertainty", ""],
        )
        if self.band_label is not None:
            kw = {"fill": True, "color": _GEN_COLOR, "alpha": 0.25, "linewidth": 0.0}
            self._art["ens"] = ax.stairs(gen, edges, baseline=gen, **kw)
            self._art["ens_ratio"] = rax.stairs(
                np.ones_like(gen), edges, baseline=np.ones_like(gen), **kw
            )
            handles.append(self._art["ens"])
            names.append(self.band_label)
        legend = ax.legend(handles, names, loc="upper right", alignment="right", title=" ")
        lo, hi = self.ratio_range
        rax.set_ylim(lo, hi)
        rax.set_yticks([lo + 0.2 * (hi - lo), 1.0, hi - 0.2 * (hi - lo)])
        rax.set_ylabel("gen. / ref.")
        ax.set_ylabel("normalised entries / bin width")
        for a in (ax, rax):
            a.minorticks_on()
        ax.tick_params(labelbottom=False)
        self._art = {
            **self._art,
            "fill": fill[0].stairs,
            "band": band,
            "line": line[0].stairs,
            "line_err": line[0].errorbar,
            "ratio": ratio,
            "arrows": arrows,
            "text": text,
            "legend": legend,
        }

    def plot(
        self,
        result: HistogramResult,
        path: Path,
        title: str | None = None,
        band: tuple[F64, F64] | None = None,
    ) -> Path:
        """Draw one histogram pair into ``path`` (and its other formats); returns ``path``.

        ``band``: lower and upper densities of a band around the generated histogram (drawn
        when the plotter has a ``band_label``; None leaves it empty for this figure)."""
        ax, rax = self.ax, self.rax
        spec = result.spec
        edges = np.asarray(spec.edges, dtype=np.float64)
        ref = np.asarray(result.reference, dtype=np.float64)
        gen = np.asarray(result.generated, dtype=np.float64)
        ref_err = _errors(result.reference_error, ref.size)
        gen_err = _errors(result.generated_error, gen.size)
        if not self._art:
            self._create(edges, ref, gen, gen_err)
        art = self._art
        log_x = spec.log_x
        centres = np.sqrt(edges[:-1] * edges[1:]) if log_x else 0.5 * (edges[:-1] + edges[1:])

        art["fill"].set_data(ref, edges, baseline=0.0)
        art["band"].set_data(ref + ref_err, edges, baseline=np.clip(ref - ref_err, 0.0, None))
        art["line"].set_data(gen, edges, baseline=0.0)
        art["line_err"].lines[2][0].set_segments(_segments(centres, gen - gen_err, gen + gen_err))
        self._ratio(centres, gen, gen_err, ref, ref_err)
        band_top = 0.0
        if "ens" in art:
            lo, hi = (gen, gen) if band is None else (np.asarray(band[0]), np.asarray(band[1]))
            art["ens"].set_data(hi, edges, baseline=np.clip(lo, 0.0, None))
            with np.errstate(divide="ignore", invalid="ignore"):
                r_lo = np.where(ref > 0, lo / ref, 1.0)
                r_hi = np.where(ref > 0, hi / ref, 1.0)
            art["ens_ratio"].set_data(r_hi, edges, baseline=r_lo)
            band_top = float(hi.max(initial=0))

        positive = np.concatenate([ref[ref > 0], gen[gen > 0]])
        logy = bool(positive.size and positive.max() / max(positive.min(), 1e-300) > 100)
        top = (
            float(max((ref + ref_err).max(initial=0), (gen + gen_err).max(initial=0), band_top))
            or 1.0
        )
        ax.set_yscale("log" if logy else "linear")
        if logy:
            ax.set_ylim(positive.min() * 0.3, top * 10 ** (0.4 * np.log10(top / positive.min())))
        else:
            ax.set_ylim(0, top * 1.55)
        rax.set_xscale("log" if log_x else "linear")
        rax.set_xlim(edges[0], edges[-1])
        for a in (ax, rax):
            a.minorticks_on()
        rax.set_xlabel(spec.xlabel)
        legend = art["legend"]
        legend.set_title(f"separation power {result.separation_power:.2e}")
        texts = legend.get_texts()
        info = self.info
        texts[0].set_text(self._legend_label(self.ref_label, info.n_reference, result.n_reference))
        texts[2].set_text(self._legend_label(self.gen_label, info.n_generated, result.n_generated))
        art["text"].set_text(
            "\n".join(t for t in (info.condition_text(), title or spec.title) if t)
        )
        self.fig.align_ylabels([ax, rax])
        return save_figure(self.fig, path, self.formats)

    def _ratio(self, centres: F64, gen: F64, gen_err: F64, ref: F64, ref_err: F64) -> None:
        lo, hi = self.ratio_range
        ratio, err = ratio_with_errors(gen, gen_err, ref, ref_err)
        inside = np.isfinite(ratio) & (ratio >= lo) & (ratio <= hi)
        container = self._art["ratio"]
        container.lines[0].set_data(centres[inside], ratio[inside])
        r, e = ratio[inside], np.nan_to_num(err[inside])
        container.lines[2][0].set_segments(_segments(centres[inside], r - e, r + e))
        pad = 0.07 * (hi - lo)
        up, down = self._art["arrows"]
        above = ~np.isnan(ratio) & (ratio > hi)
        below = ~np.isnan(ratio) & (ratio < lo)
        up.set_data(centres[above], np.full(int(above.sum()), hi - pad))
        down.set_data(centres[below], np.full(int(below.sum()), lo + pad))


def plot_histogram(
    result: HistogramResult,
    path: Path,
    *,
    ref_label: str = "reference",
    gen_label: str = "generated",
    title: str | None = None,
    info: PlotInfo | None = None,
    formats: Sequence[str] = FORMATS,
) -> Path:
    """One histogram figure (see :class:`HistogramPlotter` for many)."""
    with HistogramPlotter(ref_label, gen_label, info=info, formats=formats) as p:
        return p.plot(result, path, title)


def plot_etot_per_energy(
    results: list[HistogramResult],
    path: Path,
    *,
    ref_label: str = "reference",
    gen_label: str = "generated",
    info: PlotInfo | None = None,
    formats: Sequence[str] = FORMATS,
) -> Path:
    """Dataset-1 grid: E_tot/E_inc per incident energy (4 x 4 panels), with error bars."""
    plt = _plt()
    hep = _hep()
    info = info or PlotInfo()
    with _style(), plt.rc_context(_FONTS):
        fig, axes = plt.subplots(4, 4, figsize=(15, 14))
        for ax, res in zip(axes.ravel(), results):
            edges = np.asarray(res.spec.edges)
            ref = np.asarray(res.reference)
            gen = np.asarray(res.generated)
            hep.histplot(ref, edges, ax=ax, histtype="fill", color=_REF_COLOR, alpha=0.35,
                         label=ref_label)  # fmt: skip
            hep.histplot(gen, edges, yerr=_errors(res.generated_error, gen.size), ax=ax,
                         histtype="step", color=_GEN_COLOR, linewidth=1.4, label=gen_label)  # fmt: skip
            e = res.energy_mev or 0.0
            ax.set_title(
                f"$E_{{\\mathrm{{inc}}}}$ = {energy_text(e)}: "
                f"{res.n_reference:,.0f} / {res.n_generated:,.0f}, S = {res.separation_power:.1e}",
                fontsize=11,
            )
            ax.set_xlim(edges[0], edges[-1])
            ax.set_ylim(0, max(ref.max(initial=0), gen.max(initial=0), 1e-12) * 1.3)
            ax.minorticks_on()
            ax.tick_params(labelsize=10)
        last = axes.ravel()[-1]
        last.axis("off")
        handles, labels = axes.ravel()[0].get_legend_handles_labels()
        last.legend(
            handles,
            [f"{labels[0]}", f"{labels[1]}"],
            loc="center",
            fontsize=13,
            title="entries per panel:\nreference / generated",
            title_fontsize=12,
        )
        fig.supxlabel(r"$E_{\mathrm{tot}} / E_{\mathrm{inc}}$", fontsize=18)
        fig.supylabel("normalised entries / bin width", fontsize=18)
        fig.tight_layout(rect=(0, 0, 1, 0.965))
        label = f"$\\mathbf{{{info.label}}}$  {info.dataset_text()}"
        fig.text(0.01, 0.985, label, fontsize=15, va="top")
        fig.text(0.99, 0.985, info.condition_text(), fontsize=13, va="top", ha="right")
        out = save_figure(fig, path, formats)
        plt.close(fig)
    return out
