"""Figures of the alpha_s fit: the moved sample's chi2 curve beside a brute-force grid, and
the closure pulls.

matplotlib and mplhep are imported when a function is called (the ``plot`` extra); no
backend is chosen here. Figures are written through a temporary name.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen._optional import require
from physgen.plotting import save_figure_atomic

__all__ = ["chi2_figure", "pulls_figure"]

F64 = npt.NDArray[np.float64]
_STYLE = {
    "font.size": 12,
    "axes.labelsize": 14,
    "legend.fontsize": 10,
    "mathtext.fontset": "dejavusans",
}


def chi2_figure(
    alphas: Sequence[float] | F64,
    moved: F64,
    grid: F64 | None,
    fit: dict[str, Any],
    truth: float | None = None,
    path: str | Path | None = None,
) -> Any:
    """chi2 - min(chi2) against alpha_s: the moved sample (line), independent samples (points).

    Args:
        alphas: The alpha_s values of the curves.
        moved: chi2 of the one moved sample at each value.
        grid: chi2 of an independent sample at each value (None: not drawn).
        fit: ``{"alpha_s", "error", "n_mc"}`` of the fit.
        truth: The hidden value of pseudo-data (drawn when given).
        path: Write the figure there (PNG or PDF by suffix); None: don't.
    """
    require("matplotlib.pyplot", "plot", "chi2 figures")
    require("mplhep", "plot", "chi2 figures")
    import matplotlib.pyplot as plt
    import mplhep

    a = np.asarray(alphas, dtype=np.float64)
    ref = float(np.min(moved)) if grid is None else float(min(np.min(moved), np.min(grid)))
    with plt.style.context([mplhep.style.ROOT, _STYLE]):
        fig, ax = plt.subplots(figsize=(7.5, 5.6))
        lo, hi = fit["alpha_s"] - fit["error"], fit["alpha_s"] + fit["error"]
        ax.axvspan(lo, hi, color="#3f90da", alpha=0.2, lw=0,
                   label=r"fit $\pm 1\sigma$ (" + str(fit.get("error_kind", "")) + ")")  # fmt: skip
        ax.plot(a, moved - ref, "-", color="#3f90da", lw=2,
                label=f"one moved sample ({fit['n_mc']:,} events)")  # fmt: skip
        if grid is not None:
            ax.plot(a, grid - ref, "o", color="#bd1f01", ms=6,
                    label=f"independent sample per point ({a.size} x {fit['n_mc']:,})")  # fmt: skip
        if truth is not None:
            ax.axvline(truth, color="k", ls="--", lw=1.2, label=f"hidden value {truth:g}")
        ax.set_xlabel(r"$\alpha_s(M_Z)$")
        ax.set_ylabel(r"$\chi^2 - \chi^2_\mathrm{min}$")
        ax.legend(loc="upper center", frameon=False)
        ax.set_title("physgen: Discrete-QCD shower, chi2 over bins as if independent", fontsize=11)
    save_figure_atomic(fig, path, bbox_inches="tight")
    return fig


def pulls_figure(pulls: F64, path: str | Path | None = None, label: str = "") -> Any:
    """Histogram of closure pulls (fit - truth) / error with the unit Gaussian."""
    require("matplotlib.pyplot", "plot", "pull figures")
    require("mplhep", "plot", "pull figures")
    import hist
    import matplotlib.pyplot as plt
    import mplhep

    p = np.asarray(pulls, dtype=np.float64)
    h: Any = hist.Hist(hist.axis.Regular(12, -3, 3, name="pull", label="(fit - truth) / error"))
    h.fill(np.clip(p, -2.999, 2.999))
    with plt.style.context([mplhep.style.ROOT, _STYLE]):
        fig, ax = plt.subplots(figsize=(7, 5.2))
        mplhep.histplot(h, ax=ax, yerr=True, histtype="errorbar", color="k",
                        label=f"{p.size} seeds {label}".strip())  # fmt: skip
        x = np.linspace(-3, 3, 200)
        ax.plot(x, p.size * 0.5 * np.exp(-0.5 * x**2) / np.sqrt(2 * np.pi), color="#bd1f01",
                label="unit Gaussian")  # fmt: skip
        inside = float(np.mean(np.abs(p) <= 1))
        ax.set_title(f"within 1 sigma: {inside:.0%}, within 3 sigma: {np.mean(np.abs(p) <= 3):.0%}",
                     fontsize=11)  # fmt: skip
        ax.set_ylabel("seeds / 0.5")
        ax.set_ylim(0, 1.75 * max(float(h.values().max()), p.size * 0.2))
        ax.legend(loc="upper left", frameon=False)
    save_figure_atomic(fig, path, bbox_inches="tight")
    return fig
