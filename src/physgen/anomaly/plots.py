"""Figures of resonant anomaly detection: SIC and rejection curves with bands, bump hunts.

matplotlib, mplhep and hist are imported when a function is called (the ``plot`` extra); no
backend is chosen here. Histograms are ``hist`` histograms with Poisson error bars.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen._optional import require
from physgen.anomaly.bumphunt import BumpHuntResult, SidebandFit, dijet_function
from physgen.anomaly.metrics import PerformanceBand
from physgen.errors import ConfigError
from physgen.plotting import save_figure_atomic

__all__ = ["plot_bump_hunt", "plot_performance", "plot_sideband_fit"]

F64 = npt.NDArray[np.float64]


def _draw(ax: Any, rax: Any, fit: SidebandFit, title: str) -> None:
    import hist
    import mplhep

    e, lo, hi = fit.edges, *fit.signal_region
    widths, centres = np.diff(e), 0.5 * (e[:-1] + e[1:])
    uniform = bool(np.allclose(widths, widths[0]))
    h: Any = hist.Hist(hist.axis.Variable(e, label=r"$m_{jj}$ [TeV]"))
    h.fill(centres, weight=fit.counts)  # unit weights summed: Poisson errors (Garwood)
    mu, err = fit.expected_counts(e)
    ax.axvspan(lo, hi, color="#f4cccc", alpha=0.7, lw=0, label="signal region (not fitted)")
    rax.axvspan(lo, hi, color="#f4cccc", alpha=0.7, lw=0)
    label = f"{fit.params.size}-parameter dijet fit"
    if uniform:  # smooth curve: density × bin width = counts per bin
        fine = np.linspace(e[0], e[-1], 400)
        ax.plot(fine, dijet_function(fine, fit.params, fit.sqrt_s) * widths[0], lw=2, label=label)
    else:
        ax.stairs(mu, e, lw=2, label=label)
    band = {"fill": True, "color": "#3f90da", "alpha": 0.35, "lw": 0}
    ax.stairs(mu + err, e, baseline=np.maximum(mu - err, 1e-9), label="fit uncertainty", **band)
    mplhep.histplot(h, ax=ax, yerr=True, histtype="errorbar", color="k", label="data")
    ax.set_xlabel("")
    ax.set_yscale("log")
    pos = fit.counts[fit.counts > 0]
    ax.set_ylim(0.3 * min(pos.min(), mu.min()) if pos.size else 0.3, 40 * max(fit.counts.max(), 1))
    ax.set_ylabel(f"events / {widths[0]:.2g} TeV" if uniform else "events / bin")
    ax.text(
        0.96, 0.95,
        f"{title}\nSR: $N_\\mathrm{{obs}}$ = {fit.n_observed},  $B$ = {fit.background:.1f} ± "
        f"{fit.background_error:.1f}\nlocal $Z$ = {fit.significance:.2f} σ,  "
        f"$\\chi^2$/ndf = {fit.chi2:.1f}/{fit.ndf}",
        transform=ax.transAxes, ha="right", va="top", fontsize=12, linespacing=1.5,
    )  # fmt: skip
    ax.legend(loc="lower left", frameon=False, fontsize=12)
    pull = (fit.counts - mu) / np.sqrt(np.maximum(mu, 1e-12))
    rax.bar(centres, pull, width=widths, color=np.where(fit.sideband, "0.5", "#cc3333"), lw=0)
    for y, style in ((0, "-"), (-2, ":"), (2, ":")):
        rax.axhline(y, color="0.3", ls=style, lw=1)
    top = min(max(4.5, 1.15 * float(np.abs(pull).max())), 15.0)
    rax.set_ylim(-top, top)
    rax.set_ylabel(r"pull $(n-\mu)/\sigma$", fontsize=14)
    rax.set_xlabel(r"$m_{jj}$ [TeV]")
    rax.set_xlim(e[0], e[-1])
    for a in (ax, rax):
        a.minorticks_on()


def plot_bump_hunt(
    results: Sequence[BumpHuntResult | SidebandFit],
    path: str | Path | None = None,
    titles: Sequence[str] | None = None,
) -> Any:
    """Side-by-side sideband fits: data with Poisson errors, fit with its uncertainty band,
    SR shaded, and a pull panel ``(n − μ)/sqrt(μ)`` (SR bins in red: they were not fitted).

    Args:
        results: Bump-hunt results (failed fits are left out) or sideband fits.
        path: Write the figure there (PDF, or PNG at 150 dpi, by the suffix); None: don't.
        titles: One title per entry of ``results`` (default: the cut's efficiency).

    Returns:
        The matplotlib figure.
    """
    require("matplotlib.pyplot", "plot", "bump-hunt plots")
    require("mplhep", "plot", "bump-hunt plots")
    import matplotlib.pyplot as plt
    import mplhep

    panels: list[tuple[SidebandFit, str]] = []
    for k, r in enumerate(results):
        fit, title = (r.fit, _cut_title(r.efficiency)) if isinstance(r, BumpHuntResult) else (r, "")
        if fit is not None:
            panels.append((fit, titles[k] if titles is not None else title))
    if not panels:
        raise ConfigError("results: no successful sideband fit to draw")
    n = len(panels)
    with plt.style.context([mplhep.style.ROOT, {"font.size": 14, "axes.labelsize": 17}]):
        fig, axes = plt.subplots(
            2, n, figsize=(7 * n, 7.5), sharex="col", squeeze=False,
            gridspec_kw={"height_ratios": (3, 1), "hspace": 0.06, "wspace": 0.28},
        )  # fmt: skip
        for k, (fit, title) in enumerate(panels):
            _draw(axes[0, k], axes[1, k], fit, title)
        fig.subplots_adjust(left=1.1 / (7 * n), right=1 - 0.3 / (7 * n), top=0.92, bottom=0.1)
        fig.suptitle(r"$\mathbf{physgen}$   bump hunt: dijet fit to the sidebands", fontsize=16)
        save_figure_atomic(fig, path)
    return fig


def _cut_title(efficiency: float) -> str:
    return "all events" if efficiency >= 1 else f"top {100 * efficiency:g} % of scores"


def plot_sideband_fit(fit: SidebandFit, path: str | Path | None = None, title: str = "") -> Any:
    """One sideband fit drawn as :func:`plot_bump_hunt` does; returns the figure."""
    return plot_bump_hunt([fit], path, [title])


def plot_performance(
    bands: Mapping[str, PerformanceBand],
    path: str | Path | None = None,
    *,
    title: str = "",
    references: Mapping[str, float] | None = None,
) -> Any:
    """SIC ``ε_S/√ε_B`` and background rejection ``1/ε_B`` against the signal efficiency,
    median over runs with the 16-84 % band, one colour per method.

    Args:
        bands: Method label -> :class:`~physgen.anomaly.metrics.PerformanceBand`.
        path: Write the figure there (PDF or PNG by the suffix); None: don't.
        title: Text in the top left of the SIC panel (e.g. the sample and S/B).
        references: Label -> a published max SIC, drawn as a dotted horizontal line.

    Returns:
        The matplotlib figure.
    """
    require("matplotlib.pyplot", "plot", "SIC plots")
    require("mplhep", "plot", "SIC plots")
    import matplotlib.pyplot as plt
    import mplhep

    if not bands:
        raise ConfigError("bands: nothing to draw")
    colours = [
        "#3f90da",
        "#ffa90e",
        "#bd1f01",
        "#94a4a2",
        "#832db6",
        "#a96b59",
        "#e76300",
        "#1b9e77",
    ]
    with plt.style.context([mplhep.style.ROOT, {"font.size": 14, "axes.labelsize": 17}]):
        fig, (a_sic, a_rej) = plt.subplots(1, 2, figsize=(14, 6))
        for k, (label, b) in enumerate(bands.items()):
            c = colours[k % len(colours)]
            x = b.eps_s
            runs = f", {b.n_runs} runs" if b.n_runs > 1 else ""
            a_sic.plot(x, b.sic_median, color=c, lw=2, label=f"{label} (max {b.max_sic:.1f}{runs})")
            with np.errstate(divide="ignore", invalid="ignore"):  # 1/ε_B = (SIC/ε_S)^2
                a_rej.plot(x, (b.sic_median / x) ** 2, color=c, lw=2, label=label)
                if b.n_runs > 1:
                    a_sic.fill_between(x, b.sic_low, b.sic_high, color=c, alpha=0.25, lw=0)
                    lo, hi = (b.sic_low / x) ** 2, (b.sic_high / x) ** 2
                    a_rej.fill_between(x, lo, hi, color=c, alpha=0.25, lw=0)
        for label, value in (references or {}).items():
            a_sic.axhline(value, color="0.4", ls=":", lw=1.2)
            a_sic.text(0.01, value, f"{label} {value:g}", ha="left", va="bottom", fontsize=10,
                       color="0.3", transform=a_sic.get_yaxis_transform())  # fmt: skip
        a_sic.set_xlabel(r"signal efficiency $\epsilon_S$")
        a_sic.set_ylabel(r"SIC $= \epsilon_S\,/\,\epsilon_B^{1/2}$")
        a_sic.set_xlim(0, 1)
        tops = [
            float(np.nanmax(b.sic_high)) for b in bands.values() if np.isfinite(b.sic_high).any()
        ]
        top = max([*tops, *(references or {}).values(), 1.0])
        a_sic.set_ylim(0, 1.45 * top)  # room for the legend above the curves
        a_sic.legend(loc="best", frameon=False, fontsize=11)
        a_rej.set_yscale("log")
        a_rej.set_xlabel(r"signal efficiency $\epsilon_S$")
        a_rej.set_ylabel(r"background rejection $1/\epsilon_B$")
        a_rej.set_xlim(0, 1)
        a_rej.legend(loc="upper right", frameon=False, fontsize=11)
        for a in (a_sic, a_rej):
            a.minorticks_on()
        head = r"$\mathbf{physgen}$   anomaly detection performance"
        fig.suptitle(f"{head}: {title}" if title else head, fontsize=16)
        fig.tight_layout()
        save_figure_atomic(fig, path)
    return fig
