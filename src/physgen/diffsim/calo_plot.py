"""The figure of the sampling-calorimeter optimisation: gradient path against the grid scan.

matplotlib and mplhep are imported when :func:`optimum_figure` is called (the ``plot``
extra); no backend is chosen here. Written in the format of the path's suffix (PNG at 150
dpi, or PDF) through a temporary name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from physgen._optional import require
from physgen.plotting import save_figure_atomic

__all__ = ["optimum_figure"]

_COLOURS = ("#3f90da", "#bd1f01", "#94a4a2", "#832db6")


def optimum_figure(results: dict[str, Any], path: str | Path | None = None) -> Any:
    """Resolution and cost against ``r = d_absorber / d_active``, and the descent.

    Args:
        results: ``{"target", "energies_gev", "design", "optimisation"`` (an
            :class:`~physgen.diffsim.detector.OptimisationResult` as a dict), ``"grid"``
            (a :class:`~physgen.diffsim.detector.GridScan` as a dict), ``"diff_curve"``
            (``{"ratios", "resolution"}``: the differentiable estimate on its fixed sample)
            and optionally ``"cascade"`` (rows of :func:`~physgen.diffsim.detector.cascade_check`)``}``.
        path: Write the figure there; None: don't.

    Returns:
        The matplotlib figure.
    """
    require("matplotlib.pyplot", "plot", "optimisation figures")
    require("mplhep", "plot", "optimisation figures")
    import matplotlib.pyplot as plt
    import mplhep

    target, energies = float(results["target"]), list(results["energies_gev"])
    opt, grid, curve = results["optimisation"], results["grid"], results["diff_curve"]
    rs = np.asarray(grid["ratios"])
    res, err = np.asarray(grid["resolution"]), np.asarray(grid["error"])
    path_r = np.array([p["ratio"] for p in opt["path"]])
    path_res = np.array([p["resolution"] for p in opt["path"]])
    path_cost = np.array([p["cost"] for p in opt["path"]])
    best = grid.get("optimum")
    style = {
        "font.size": 12,
        "axes.labelsize": 14,
        "legend.fontsize": 9,
        "mathtext.fontset": "dejavusans",
    }
    with plt.style.context([mplhep.style.ROOT, style]):
        fig, axes = plt.subplots(1, 3, figsize=(17, 5.4))
        ax, cax, sax = axes
        for a in (ax, cax):
            if best is not None:
                a.axvspan(best[1], best[2], color="#f4cccc", alpha=0.8, lw=0)
            a.axvline(opt["ratio"], color="k", ls="--", lw=1.2)
        for j, e in enumerate(energies):
            c = _COLOURS[j % len(_COLOURS)]
            ax.fill_between(
                rs, res[:, j] - err[:, j], res[:, j] + err[:, j], color=c, alpha=0.25, lw=0
            )
            ax.errorbar(rs, res[:, j], err[:, j], fmt="o", ms=4, color=c,
                        label=f"grid, numba GFlash ({e:g} GeV), 1$\\sigma$")  # fmt: skip
            ax.plot(curve["ratios"], np.asarray(curve["resolution"])[:, j], color=c, lw=1.5,
                    label="DiffGFlash, fixed sample")  # fmt: skip
            ax.scatter(path_r, path_res[:, j], c=np.arange(path_r.size), cmap="viridis", s=14,
                       zorder=3, label="gradient descent path")  # fmt: skip
        for row in results.get("cascade") or []:
            cas = row["cascade"]
            ax.errorbar([row["ratio"]], [cas["resolution"]], [cas["error"]], fmt="s", ms=6,
                        mfc="none", color="#e76300",
                        label="cascade MC" if row is results["cascade"][0] else None)  # fmt: skip
        ax.axhline(target, color="k", lw=1, label=f"target {100 * target:g} %")
        ax.set_xlabel(r"$r = d_\mathrm{absorber} / d_\mathrm{active}$")
        ax.set_ylabel(r"$\sigma_E / E$")
        ax.legend(loc="upper left", frameon=False)
        cax.plot(grid["ratios"], grid["cost"], "o-", ms=4, color="#3f90da", label="cost model")
        cax.scatter(path_r, path_cost, c=np.arange(path_r.size), cmap="viridis", s=14, zorder=3,
                    label="gradient descent path")  # fmt: skip
        cax.set_yscale("log")
        cax.set_xlabel(r"$r = d_\mathrm{absorber} / d_\mathrm{active}$")
        cax.set_ylabel("cost [litres absorber-equivalent]")
        label = "grid optimum, 1$\\sigma$ band" if best is not None else None
        cax.plot([], [], color="#f4cccc", lw=8, label=label)
        cax.plot([], [], color="k", ls="--", lw=1.2,
                 label=f"gradient optimum r = {opt['ratio']:.3f} ± {opt['ratio_error']:.3f}")  # fmt: skip
        cax.legend(loc="upper right", frameon=False)
        steps = np.arange(path_r.size)
        if best is not None:
            sax.axhspan(
                best[1], best[2], color="#f4cccc", alpha=0.8, lw=0, label="grid optimum, 1$\\sigma$"
            )
        sax.plot(steps, path_r, color="k", lw=1.5, label="gradient descent")
        sax.set_xlabel("step")
        sax.set_ylabel(r"$r$")
        sax.legend(loc="lower right", frameon=False)
        design = results.get("design", {})
        fig.suptitle(
            f"{design.get('absorber', '')}/{design.get('active', '')}, "
            f"{design.get('depth_x0', '')} X0, active {design.get('active_mm', '')} mm, "
            f"cost ratio {design.get('cost_ratio', '')}",
            fontsize=13,
        )
        fig.tight_layout()
    save_figure_atomic(fig, path)
    return fig
