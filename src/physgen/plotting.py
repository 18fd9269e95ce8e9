"""Figures of the generic core: simulation-based calibration (rank histograms, coverage).

Drawn with mplhep (``histplot`` with Poisson error bars, the ROOT-like style, minor
ticks); written in the format of the path's suffix (PDF, or PNG at 150 dpi).

Matplotlib, mplhep and hist are imported inside the functions; no backend is forced.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from physgen._optional import require

__all__ = ["save_figure_atomic", "sbc_figure"]


def save_figure_atomic(fig: Any, path: str | Path | None, **savefig: Any) -> None:
    """Write ``fig`` to ``path`` (format from the suffix, PNG at 150 dpi by default) through
    a temporary name, so a failure leaves nothing at ``path``; None: do nothing.

    Args:
        fig: A matplotlib figure.
        path: The file to write, or None.
        **savefig: Further ``Figure.savefig`` options (e.g. ``bbox_inches="tight"``).
    """
    if path is None:
        return
    from physgen.outputs import atomic_path

    out = Path(path)
    opts = {"dpi": 150, **savefig}
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lstrip(".") or "png", **opts)


def _binomial_quantiles(n: int, p: float, q: Sequence[float]) -> list[float]:
    from scipy import stats

    return [float(stats.binom.ppf(v, n, p)) for v in q]


def sbc_figure(
    result: Any, path: str | Path | None = None, names: Sequence[str] | None = None
) -> Any:
    """Rank histograms per parameter and the expected-coverage curve of an
    :class:`~physgen.sbi.SBCResult`.

    Rank histograms: 20 bins with Poisson error bars; the grey band is the central 99 %
    interval of a bin's count when the ranks are uniform (binomial). Coverage: empirical vs
    nominal credibility with binomial standard errors, the diagonal and a ±0.05 band.
    """
    require("matplotlib.pyplot", "plot", "SBC figures")
    require("mplhep", "plot", "SBC figures")
    import hist
    import matplotlib.pyplot as plt
    import mplhep

    ranks = result.ranks
    n, p = ranks.shape
    labels = list(names) if names is not None else [f"$\\theta_{{{j}}}$" for j in range(p)]
    bins = 20
    ncols = min(p + 1, 4)
    nrows = math.ceil((p + 1) / ncols)
    small = {
        "font.size": 13,
        "axes.labelsize": 14,
        "legend.fontsize": 10,
        "xtick.labelsize": 11,
        "ytick.labelsize": 11,
    }
    with plt.style.context([mplhep.style.ROOT, small]):
        fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 4.2 * nrows), squeeze=False)
        lo, hi = _binomial_quantiles(n, 1.0 / bins, (0.005, 0.995))
        for j in range(p):
            ax = axes.flat[j]
            h: Any = hist.Hist(hist.axis.Regular(bins, 0, result.n_posterior + 1, name="rank"))
            h.fill(ranks[:, j])
            ax.axhspan(lo, hi, color="0.85", label="uniform, 99 %")
            ax.axhline(n / bins, color="0.4", lw=1)
            mplhep.histplot(h, ax=ax, yerr=True, histtype="errorbar", color="k", label="ranks")
            ax.set_xlabel(f"rank of {labels[j]}")
            ax.set_ylabel("simulations")
            ax.set_ylim(0, max(hi, float(h.values().max())) * 1.4)
            if j == 0:
                ax.legend(loc="upper left", ncols=2, frameon=False)
        ax = axes.flat[p]
        lv = np.asarray(result.levels)
        ax.fill_between([0, 1], [-0.05, 0.95], [0.05, 1.05], color="0.9", label="±0.05")
        ax.plot([0, 1], [0, 1], color="0.4", lw=1)
        curves = [("central (marginal)", result.coverage, "tab:blue")]
        if result.coverage_hpd is not None:
            curves.append(("highest density (joint)", result.coverage_hpd, "tab:red"))
        for label, cov, color in curves:
            err = np.sqrt(np.clip(cov * (1 - cov), 1e-12, None) / n)
            ax.errorbar(lv, cov, yerr=err, fmt="o", ms=3, color=color, label=label)
        ax.set_xlabel("credibility level")
        ax.set_ylabel("expected coverage")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.legend(loc="upper left", frameon=False)
        for k in range(p + 1, nrows * ncols):
            axes.flat[k].set_visible(False)
        fig.suptitle(
            r"$\mathbf{physgen}$   simulation-based calibration: "
            f"{n} simulations, {result.n_posterior} posterior samples each",
            fontsize=14,
        )
        for a in axes.flat:
            a.minorticks_on()
        fig.tight_layout()
        save_figure_atomic(fig, path)
    return fig
