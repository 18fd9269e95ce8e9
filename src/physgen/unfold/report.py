"""The unfolding report: one figure per observable and an HTML page with the metrics.

Each figure (mplhep on ``hist`` histograms, density-normalised inside the binning) shows the
unfolded result of every method that applies to the observable (all of them, unless a method
names its observables, as IBU does: it unfolds one observable at a time) with its statistical
error bars and, where bootstrap weights are given, its bootstrap band; the particle-level
truth (pseudo-data) as a filled histogram, the simulation's particle-level prior (dashed) and
the measured detector-level data (dotted); and a ratio panel to the truth (or, without truth,
to the first method shown). With a truth, the legend and the page's tables carry the metrics
of arXiv:2404.18807 (``W1×10``, ``Δ×10³``, :mod:`physgen.unfold.metrics`; ± the spread over
bootstrap replicas) and the share of bins whose truth lies inside the ±1σ bootstrap band.

Matplotlib, mplhep and hist are imported inside the functions (the ``plot`` extra); no
backend is chosen here. Everything is staged beside ``out_dir`` and moved in only when
complete (``report.html`` last), so a failure leaves no partial report.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen._optional import require
from physgen.errors import ConfigError, DataFormatError
from physgen.htmlpage import BASE_CSS
from physgen.unfold.metrics import (
    bin_coverage,
    bootstrap_band,
    default_bins,
    density_histogram,
    triangular_discriminator,
    wasserstein_1d,
)

__all__ = ["write_report"]

F64 = npt.NDArray[np.float64]
#: Bootstrap replicas used for the metric uncertainties (the band uses all of them).
MAX_METRIC_REPLICAS = 25
DPI = 150
_COLORS = ("#e76300", "#3f90da", "#bd1f01", "#832db6", "#a96b59", "#1845fb", "#717581")
_TRUTH, _PRIOR, _DATA = "#b9b9b9", "#3a9a3a", "#444444"


def _sample(name: str, a: Any, w: Any, width: int) -> tuple[F64, F64]:
    v = np.asarray(a, dtype=np.float64)
    if v.ndim == 1 and width == 1:
        v = v[:, None]
    if v.ndim != 2 or v.shape[1] != width or v.shape[0] == 0:
        raise DataFormatError(f"{name}: expected samples of shape (N, {width}), got {v.shape}")
    if not np.isfinite(v).all():
        raise DataFormatError(f"{name}: samples contain NaN or inf")
    ww = np.ones(v.shape[0]) if w is None else np.asarray(w, dtype=np.float64).reshape(-1)
    if ww.shape != (v.shape[0],):
        raise DataFormatError(f"{name}: {v.shape[0]} samples but {ww.size} weights")
    if not np.isfinite(ww).all() or (ww < 0).any() or ww.sum() <= 0:
        raise DataFormatError(f"{name}: weights must be finite, >= 0 and not all 0")
    return v, ww


def _boot(name: str, b: Any, n: int) -> F64 | None:
    if b is None:
        return None
    arr = np.asarray(b, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != n or arr.shape[0] < 2:
        raise DataFormatError(
            f"{name}: bootstrap weights need shape (B >= 2, {n}), got {tuple(arr.shape)}"
        )
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise DataFormatError(f"{name}: bootstrap weights must be finite and >= 0")
    return arr


def _method_columns(name: str, spec: Any, cols: Sequence[str]) -> tuple[str, ...]:
    """The observables a method applies to, in the order of ``cols`` (None: all of them)."""
    if spec is None:
        return tuple(cols)
    names = [spec] if isinstance(spec, str) else [str(c) for c in spec]
    if not names:
        raise ConfigError(f"unfolded[{name!r}]: empty list of observables (None: all)")
    for c in names:
        if c not in cols:
            raise ConfigError(
                f"unfolded[{name!r}]: unknown observable {c!r}; columns: {', '.join(cols)}"
            )
    return tuple(c for c in cols if c in names)


def _checked_edges(column: str, edges: Any) -> F64:
    e = np.asarray(edges, dtype=np.float64).reshape(-1)
    if e.size < 2 or not np.isfinite(e).all() or not (np.diff(e) > 0).all():
        raise ConfigError(f"bins[{column!r}]: expected at least 2 finite, increasing edges")
    return e


def _file_names(columns: Sequence[str]) -> list[str]:
    out: list[str] = []
    for c in columns:
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", c).strip("._") or "observable"
        name, k = f"unfolded_{stem}.png", 2
        while name in out:
            name, k = f"unfolded_{stem}_{k}.png", k + 1
        out.append(name)
    return out


def _metrics(
    u: F64, w: F64, boot: F64 | None, t: F64, tw: F64, edges: F64
) -> dict[str, float | None]:
    """W1×10 and Δ×10³ of one method and observable, their bootstrap spread, band coverage."""
    res: dict[str, float | None] = {
        "w1_x10": 10 * wasserstein_1d(u, t, w, tw),
        "delta_x1e3": 1e3 * triangular_discriminator(u, t, edges, w, tw),
        "w1_x10_std": None,
        "delta_x1e3_std": None,
        "band_coverage": None,
    }
    if boot is not None:
        reps = boot[:MAX_METRIC_REPLICAS]
        res["w1_x10_std"] = float(
            np.std([10 * wasserstein_1d(u, t, r, tw) for r in reps if r.sum() > 0], ddof=1)
        )
        res["delta_x1e3_std"] = float(
            np.std(
                [1e3 * triangular_discriminator(u, t, edges, r, tw) for r in reps if r.sum() > 0],
                ddof=1,
            )
        )
        _, std = bootstrap_band(u, boot, edges)
        truth, _ = density_histogram(t, edges, tw)
        nominal, _ = density_histogram(u, edges, w)
        res["band_coverage"] = bin_coverage(nominal, nominal - std, nominal + std, truth)
    return res


def _ratio(num: F64, num_err: F64, den: F64) -> tuple[F64, F64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(den > 0, num / den, np.nan)
        e = np.where(den > 0, num_err / den, np.nan)
    return r, e


def _figure(
    path: Path,
    column: str,
    edges: F64,
    prior: tuple[F64, F64],
    data: tuple[F64, F64],
    methods: Mapping[str, tuple[F64, F64, F64 | None]],
    truth: tuple[F64, F64] | None,
    metrics: Mapping[str, Mapping[str, float | None]],
    title: str,
    integer: bool = False,
) -> None:
    """One observable: the main panel and the ratio panel, written as PNG."""
    require("matplotlib.pyplot", "plot", "unfolding reports")
    require("mplhep", "plot", "unfolding reports")
    import hist
    import matplotlib.pyplot as plt
    import mplhep

    def dens(v: F64, w: F64) -> tuple[F64, F64]:
        h: Any = hist.Hist(hist.axis.Variable(edges), storage=hist.storage.Weight())
        h.fill(v, weight=w)
        total = float(h.values().sum())
        width = np.diff(edges)
        if total <= 0:
            return np.zeros(edges.size - 1), np.zeros(edges.size - 1)
        return h.values() / (total * width), np.sqrt(h.variances()) / (total * width)

    style = {
        "font.size": 13,
        "axes.labelsize": 15,
        "legend.fontsize": 10,
        "xtick.labelsize": 12,
        "ytick.labelsize": 12,
    }
    with plt.style.context([mplhep.style.ROOT, style]):
        fig, (ax, rax) = plt.subplots(
            2,
            1,
            figsize=(7.5, 7.0),
            sharex=True,
            gridspec_kw={"height_ratios": (3, 1.2), "hspace": 0.05},
        )
        try:
            centers = 0.5 * (edges[1:] + edges[:-1])
            ref: tuple[F64, F64] | None = None
            if truth is not None:
                t_d, t_e = dens(*truth)
                mplhep.histplot(
                    t_d,
                    edges,
                    ax=ax,
                    histtype="fill",
                    color=_TRUTH,
                    alpha=0.6,
                    label="truth (particle level)",
                )
                ref = (t_d, t_e)
            p_d, p_e = dens(*prior)
            mplhep.histplot(
                p_d,
                edges,
                ax=ax,
                histtype="step",
                color=_PRIOR,
                ls="--",
                lw=1.6,
                label="prior (MC particle level)",
            )
            d_d, _ = dens(*data)
            mplhep.histplot(
                d_d,
                edges,
                ax=ax,
                histtype="step",
                color=_DATA,
                ls=":",
                lw=1.8,
                label="data (detector level)",
            )
            curves: list[tuple[str, F64, F64, tuple[F64, F64] | None, str]] = []
            for k, (name, (v, w, boot)) in enumerate(methods.items()):
                color = _COLORS[k % len(_COLORS)]
                m_d, m_e = dens(v, w)
                band = bootstrap_band(v, boot, edges) if boot is not None else None
                label = name
                mm = metrics.get(name)
                if mm is not None:
                    label += f"  (W1×10 {mm['w1_x10']:.3g}, Δ×10³ {mm['delta_x1e3']:.3g})"
                if band is not None:
                    lo, hi = m_d - band[1], m_d + band[1]
                    ax.stairs(hi, edges, baseline=lo, fill=True, color=color, alpha=0.25, lw=0)
                mplhep.histplot(
                    m_d, edges, yerr=m_e, ax=ax, histtype="step", color=color, lw=1.8, label=label
                )
                curves.append((name, m_d, m_e, band, color))
            if ref is None:  # no truth: ratios to the first method
                ref = (curves[0][1], curves[0][2])
                ref_label = curves[0][0]
            else:
                ref_label = "truth"
            ref_d, ref_e = ref
            r_e = np.where(ref_d > 0, ref_e / np.where(ref_d > 0, ref_d, 1.0), np.nan)
            rax.stairs(
                1 + np.nan_to_num(r_e),
                edges,
                baseline=1 - np.nan_to_num(r_e),
                fill=True,
                color=_TRUTH,
                alpha=0.5,
                lw=0,
            )
            rax.axhline(1.0, color="0.3", lw=1)
            rp, _ = _ratio(p_d, p_e, ref_d)
            rax.stairs(rp, edges, color=_PRIOR, ls="--", lw=1.4)
            bulk = ref_d > 0.05 * ref_d.max() if ref_d.max() > 0 else np.ones(ref_d.size, bool)
            spread = [2 * np.nan_to_num(r_e[bulk])]  # the reference's own ±2σ
            for k, (_name, m_d, m_e, band, color) in enumerate(curves):
                r, e = _ratio(m_d, m_e, ref_d)
                if band is not None:
                    rb, _ = _ratio(band[1], band[1], ref_d)
                    rax.stairs(
                        r + rb, edges, baseline=r - rb, fill=True, color=color, alpha=0.25, lw=0
                    )
                rax.errorbar(centers, r, yerr=e, fmt="o", ms=3, color=color, elinewidth=1)
                if truth is not None or k > 0:
                    spread.append(np.abs(r[bulk & np.isfinite(r)] - 1))
            dev = np.concatenate(spread)
            half = float(np.clip(1.3 * np.quantile(dev, 0.9) if dev.size else 0.1, 0.05, 0.6))
            rax.set_ylim(1 - half, 1 + half)
            rax.set_ylabel(f"ratio to\n{ref_label}", fontsize=12)
            rax.set_xlabel(column)
            ax.set_ylabel("normalised density")
            ax.set_ylim(0, ax.get_ylim()[1] * 1.45)
            ax.legend(loc="upper left", frameon=False, ncols=1)
            ax.set_title(title, fontsize=13, loc="right")
            ax.text(
                0.0,
                1.01,
                "physgen",
                transform=ax.transAxes,
                fontsize=15,
                fontweight="bold",
                va="bottom",
            )
            rax.set_xlim(edges[0], edges[-1])
            if integer:
                from matplotlib.ticker import MaxNLocator

                rax.xaxis.set_major_locator(MaxNLocator(integer=True))
            for a in (ax, rax):
                a.minorticks_on()
            fig.savefig(path, dpi=DPI, format="png", bbox_inches="tight")
        finally:
            plt.close(fig)


_CSS = (
    BASE_CSS
    + """td.best{font-weight:bold;background:#eef6e8}
.meta{color:#555;font-size:.9em}
figure{display:inline-block;margin:.4em;vertical-align:top;text-align:center}
figure img{max-width:560px;border:1px solid #eee}
figcaption{font-size:.8em;color:#555}
"""
)


def _fmt(v: float | None, err: float | None) -> str:
    if v is None:
        return "—"
    return f"{v:.3g}" + (f" ± {err:.2g}" if err is not None else "")


def _metric_table(
    key: str,
    label: str,
    table: Mapping[str, Mapping[str, Mapping[str, float | None]]],
    columns: Sequence[str],
) -> str:
    """One HTML table: a row per method, a column per observable; '—' where a method does not
    apply to the observable (or has no such value)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = []
    best = {
        c: min(
            (
                float(v)
                for m, r in table.items()
                if m != "prior (MC)" and c in r and (v := r[c][key]) is not None
            ),
            default=None,
        )
        for c in columns
    }
    for name, row in table.items():
        cells = []
        for c in columns:
            if c not in row:
                cells.append("<td>—</td>")
                continue
            v, e = row[c][key], row[c].get(f"{key}_std")
            css = (
                " class='best'"
                if v is not None and best[c] is not None and v == best[c] and name != "prior (MC)"
                else ""
            )
            cells.append(f"<td{css}>{_fmt(v, e)}</td>")
        rows.append(f"<tr><td>{html.escape(name)}</td>{''.join(cells)}</tr>")
    return f"<h3>{label}</h3><table><thead><tr><th>method</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def write_report(
    out_dir: Path,
    *,
    columns: Sequence[str],
    prior: tuple[Any, Any],
    data_reco: tuple[Any, Any],
    unfolded: Mapping[str, tuple[Any, ...]],
    truth: tuple[Any, Any] | None,
    title: str,
    bins: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``report.html``, one PNG per observable and ``metrics.json`` into ``out_dir``.

    Args:
        out_dir: Folder (created if missing; its parent must exist). Files of the same names
            are replaced; nothing is written unless everything succeeds.
        columns: The D observable names.
        prior: ``(MC particle-level samples (N, D), weights (N,) or None)``.
        data_reco: ``(measured detector-level events (M, D), weights (M,) or None)``.
        unfolded: Method name -> ``(samples (K, D), weights (K,) or None, bootstrap weights
            (B, K) or None)``, optionally with a fourth element ``columns``: the observables
            the method applies to (a sequence of names, one name, or None: all). E.g.
            OmniFold: the MC gen events with their push weights and the weights of B
            bootstrap trainings; a generative method: its samples; IBU of observable ``c``:
            the MC gen events reweighted bin by bin in ``c`` only, with ``columns=("c",)``.
            A method is scored, tabulated ('—' in its other cells) and drawn only in the
            observables it applies to; every observable needs at least one method.
        truth: ``(particle-level truth (T, D), weights (T,) or None)`` for pseudo-data, else None.
        title: Shown on the page and the figures.
        bins: Observable -> edges (missing ones: :func:`~physgen.unfold.metrics.default_bins`
            of the truth, else of the prior: 1–99 % quantiles, 40 bins, integer bins for
            whole-number observables).

    Returns:
        The path of ``report.html``.

    Raises:
        ConfigError: No method, no columns, a method entry that is not a 3- or 4-tuple, an
            unknown observable in its ``columns``, an observable no method applies to, a
            missing parent folder, ``out_dir`` is a file.
        DataFormatError: Shapes or weights that do not fit ``columns``.
        MissingDependencyError: matplotlib or mplhep missing (``pip install 'physgen[plot]'``).
    """
    from physgen._version import __version__
    from physgen.outputs import publish_staged, raise_if_interrupted, staging_dir

    out = Path(out_dir)
    cols = [str(c) for c in columns]
    if not cols:
        raise ConfigError("columns: need at least one observable")
    if not unfolded:
        raise ConfigError("unfolded: need at least one method")
    if "prior (MC)" in unfolded:
        raise ConfigError("unfolded: 'prior (MC)' is the name of the report's baseline row")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out_dir {out}: is a file, expected a folder")
    if not out.parent.is_dir():
        raise ConfigError(f"out_dir {out}: folder {out.parent} does not exist")
    d = len(cols)
    pv, pw = _sample("prior", prior[0], prior[1], d)
    dv, dw = _sample("data_reco", data_reco[0], data_reco[1], d)
    tv_tw = None if truth is None else _sample("truth", truth[0], truth[1], d)
    methods: dict[str, tuple[F64, F64, F64 | None]] = {}
    applies: dict[str, tuple[str, ...]] = {}  # method -> the observables it applies to
    for name, entry in unfolded.items():
        key = str(name)
        if not isinstance(entry, (tuple, list)) or len(entry) not in (3, 4):
            raise ConfigError(
                f"unfolded[{key!r}]: expected (samples, weights, bootstrap[, columns])"
            )
        v, w, b = entry[:3]
        mv, mw = _sample(f"unfolded[{key!r}]", v, w, d)
        methods[key] = (mv, mw, _boot(f"unfolded[{key!r}]", b, mv.shape[0]))
        applies[key] = _method_columns(key, entry[3] if len(entry) == 4 else None, cols)
    per_column = {c: [k for k in methods if c in applies[k]] for c in cols}
    for c, names_c in per_column.items():
        if not names_c:
            raise ConfigError(f"unfolded: no method applies to the observable {c!r}")
    edges: dict[str, F64] = {}
    for j, c in enumerate(cols):
        if bins and c in bins:
            edges[c] = _checked_edges(c, bins[c])
        elif tv_tw is not None:
            edges[c] = default_bins(tv_tw[0][:, j], tv_tw[1])
        else:  # no truth: the prior and the first method, each with half the weight
            first_v, first_w = methods[per_column[c][0]][:2]
            ref_v = np.concatenate([pv[:, j], first_v[:, j]])
            ref_w = np.concatenate([pw / pw.sum(), first_w / first_w.sum()])
            edges[c] = default_bins(ref_v, ref_w)

    table: dict[str, dict[str, dict[str, float | None]]] = {}
    if tv_tw is not None:
        tv, tw = tv_tw
        for name, (mv, mw, mb) in methods.items():
            table[name] = {
                c: _metrics(mv[:, j], mw, mb, tv[:, j], tw, edges[c])
                for j, c in enumerate(cols)
                if c in applies[name]
            }
        table["prior (MC)"] = {
            c: _metrics(pv[:, j], pw, None, tv[:, j], tw, edges[c]) for j, c in enumerate(cols)
        }
    names = _file_names(cols)
    created = not out.exists()
    with staging_dir(out) as stage:
        for j, c in enumerate(cols):
            _figure(
                stage / names[j],
                c,
                edges[c],
                (pv[:, j], pw),
                (dv[:, j], dw),
                {k: (methods[k][0][:, j], *methods[k][1:]) for k in per_column[c]},
                None if tv_tw is None else (tv_tw[0][:, j], tv_tw[1]),
                {k: table[k][c] for k in per_column[c] if k in table},
                title,
                integer=bool(
                    np.allclose(np.diff(edges[c]) % 1, 0) and np.allclose(edges[c] % 1, 0.5)
                ),
            )
            raise_if_interrupted()
        info = {
            "title": title,
            "physgen_version": __version__,
            "columns": cols,
            "methods": list(methods),
            "method_columns": {k: list(v) for k, v in applies.items()},
            "n_prior": int(pv.shape[0]),
            "n_data": int(dv.shape[0]),
            "n_truth": None if tv_tw is None else int(tv_tw[0].shape[0]),
            "bins": {c: edges[c].tolist() for c in cols},
            "metrics": table,
            "figures": dict(zip(cols, names)),
        }
        (stage / "metrics.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        (stage / "report.html").write_text(_page(info, table, cols, names), encoding="utf-8")
        publish_staged(stage, out, created=created, last="report.html")
    return out / "report.html"


def _page(
    info: Mapping[str, Any],
    table: Mapping[str, Mapping[str, Mapping[str, float | None]]],
    cols: Sequence[str],
    names: Sequence[str],
) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(info['title'])}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(info['title'])}</h1>",
        f"<p class='meta'>physgen {html.escape(info['physgen_version'])}, {when}; "
        f"{info['n_data']:,} measured events, {info['n_prior']:,} simulated events"
        + (f", {info['n_truth']:,} truth events" if info["n_truth"] is not None else ", no truth")
        + f"; methods: {html.escape(', '.join(_method_labels(info)))}</p>",
    ]
    if table:
        parts.append(
            "<h2>Distance to the truth</h2><p>Per observable, against the particle-level truth: "
            "the 1-D Wasserstein distance ×10 and the triangular discriminator "
            "Δ = ½ Σ<sub>b</sub> (P<sub>b</sub> − Q<sub>b</sub>)² / (P<sub>b</sub> + Q<sub>b</sub>) ×10³ of "
            "the area-normalised histograms (the metrics of arXiv:2404.18807; lower is better, the "
            "best method in bold). ± is the spread over bootstrap replicas where given; "
            "<i>prior (MC)</i> is the simulation's particle level, the distance before unfolding; "
            "— where a method does not apply to the observable.</p>"
        )
        parts.append(_metric_table("w1_x10", "W1 × 10", table, cols))
        parts.append(_metric_table("delta_x1e3", "Δ × 10³", table, cols))
        if any(r[c]["band_coverage"] is not None for r in table.values() for c in r):
            parts.append(
                _metric_table(
                    "band_coverage",
                    "Share of bins with the truth inside the ±1σ bootstrap band",
                    table,
                    cols,
                ).replace(" class='best'", "")
            )
    else:
        parts.append(
            "<p>No truth given (measured data): no distances; ratios are to the first "
            "method shown for each observable.</p>"
        )
    parts.append("<h2>Observables</h2>")
    for c, n in zip(cols, names):
        parts.append(
            f"<figure><img alt='{html.escape(c)}' src='{html.escape(n)}'/>"
            f"<figcaption>{html.escape(c)}</figcaption></figure>"
        )
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _method_labels(info: Mapping[str, Any]) -> list[str]:
    """Method names, each followed by its observables where it does not apply to all."""
    cols = info["columns"]
    out = []
    for m in info["methods"]:
        own = info["method_columns"][m]
        out.append(m if own == cols else f"{m} (only {', '.join(own)})")
    return out
