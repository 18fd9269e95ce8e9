"""Summaries and the HTML report of an anomaly-detection run.

:func:`summarize` turns an :class:`~physgen.anomaly.classify.AnomalyResult` into numbers:
the performance on labelled test events (ROC/SIC, :mod:`physgen.anomaly.metrics`) and the
bump hunt of the scored events (:mod:`physgen.anomaly.bumphunt`); :func:`write_report` draws
the figures and writes ``report.html``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from physgen.anomaly.bumphunt import BumpHuntResult, bump_hunt
from physgen.anomaly.classify import AnomalyResult
from physgen.anomaly.data import AnomalyEvents, Regions
from physgen.anomaly.metrics import PerformanceBand, auc, performance_band
from physgen.errors import MissingDependencyError
from physgen.htmlpage import BASE_CSS

__all__ = ["Summary", "summarize", "write_report"]


@dataclass
class Summary:
    """What :func:`summarize` found.

    Attributes:
        performance: Test-set performance (None without labelled test events).
        performance_other: For the flow-density score: the same in the other coordinates.
        hunts: Bump-hunt results (empty without sidebands or with ``efficiencies=()``).
        data: JSON-ready numbers (everything above, without per-event arrays).
    """

    performance: PerformanceBand | None = None
    performance_other: PerformanceBand | None = None
    hunts: list[BumpHuntResult] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def _perf(scores: Any, labels: Any) -> tuple[PerformanceBand, dict[str, Any]]:
    band = performance_band([scores], labels)
    return band, {"auc": auc(scores, labels), **band.to_dict(curve=True)}


def summarize(
    result: AnomalyResult,
    events: AnomalyEvents,
    regions: Regions,
    *,
    test: AnomalyEvents | None = None,
    efficiencies: Sequence[float] = (0.1, 0.01, 0.001),
    bins: int = 40,
    n_params: int = 4,
    fit_range: tuple[float, float] | None = None,
) -> Summary:
    """Performance on the labelled ``test`` events and the bump hunt on ``events``.

    The bump hunt needs scored sideband events (the events must extend beyond the SR): it
    cuts on the score of the scored events (NaN scores: events outside the method's
    regions are left out) and fits the selected ``m_jj`` spectrum outside the SR, in
    ``fit_range`` (default: ``regions.sidebands``, else all scored events). A cut that leaves
    too few sideband events is recorded as not fitted; a fit that does not converge raises
    :class:`~physgen.errors.FitError` (never a significance from a failed fit).
    """
    out = Summary()
    out.data = {"method": result.method, **result.to_dict()}
    if test is not None and test.labels is not None and result.test_scores is not None:
        out.performance, out.data["performance"] = _perf(result.test_scores, test.labels)
        other = result.extra.get("test_other")
        if other is not None:
            out.performance_other, d = _perf(other, test.labels)
            out.data["performance_other"] = {
                "coordinates": result.info.get("other_coordinates"),
                **d,
            }
    scored = np.isfinite(result.scores)
    if efficiencies and regions.in_sb(events.mjj[scored]).sum() > 0:
        out.hunts = bump_hunt(
            events.mjj[scored],
            result.scores[scored],
            efficiencies,
            signal_region=regions.signal_region,
            bins=bins,
            range=fit_range or regions.sidebands,
            n_params=n_params,
            skip_too_few=True,
        )
        out.data["bump_hunt"] = [h.to_dict() for h in out.hunts]
    if events.labels is not None:  # pseudo-data: what the score did to the true signal
        sr = regions.in_sr(events.mjj)
        out.data["truth"] = {
            "signal_in_sr": int(events.labels[sr].sum()),
            "background_in_sr": int((events.labels[sr] == 0).sum()),
        }
    return out


def _fmt(v: Any, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    return f"{v:.{digits}g}" if isinstance(v, float) else html.escape(str(v))


def _perf_rows(label: str, d: dict[str, Any]) -> str:
    rej = d.get("rejection_median") or []
    eps = d.get("rejection_eps_s") or []
    cells = "".join(f"<td>{_fmt(r)}</td>" for r in rej)
    heads = "".join(f"<th>1/ε_B at ε_S={e:g}</th>" for e in eps)
    return (
        f"<tr><th>score</th><th>AUC</th><th>max SIC</th><th>ε_S at max</th>{heads}</tr>"
        f"<tr><td>{html.escape(label)}</td><td>{_fmt(d['auc'])}</td><td>{_fmt(d['max_sic'])}</td>"
        f"<td>{_fmt(d['eps_s_at_max_sic'])}</td>{cells}</tr>"
    )


def _close(fig: Any) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def write_report(out_dir: Path, summary: Summary, *, title: str) -> list[str]:
    """Write ``report.html`` and its figures (``performance.png``, ``bumphunt.png``) into
    ``out_dir``; returns the names written. Without matplotlib/mplhep the page has the tables
    only (and says so)."""
    d = summary.data
    files: list[str] = []
    notes: list[str] = []
    figs: dict[str, str] = {}
    try:
        from physgen.anomaly.plots import plot_bump_hunt, plot_performance

        if summary.performance is not None:
            bands = {d["method"]: summary.performance}
            if summary.performance_other is not None:
                coords = d["performance_other"]["coordinates"]
                bands[f"{d['method']} ({coords} coordinates)"] = summary.performance_other
            _close(plot_performance(bands, out_dir / "performance.png", title=title))
            figs["performance"] = "performance.png"
        if any(h.fit is not None for h in summary.hunts):
            _close(plot_bump_hunt(summary.hunts, out_dir / "bumphunt.png"))
            figs["bumphunt"] = "bumphunt.png"
    except MissingDependencyError as exc:
        notes.append(f"Figures not drawn: {exc}")
    files += list(figs.values())
    body = [f"<h1>{html.escape(title)}</h1>"]
    body.append(
        f"<p>Method <b>{html.escape(d['method'])}</b>; training CPU "
        f"{_fmt(d.get('train_cpu_s'), 4)} s.</p>"
    )
    if "performance" in d:
        body.append("<h2>Performance on the labelled test events</h2><table>")
        body.append(_perf_rows(d["method"], d["performance"]))
        body.append("</table>")
        if "performance_other" in d:
            o = d["performance_other"]
            body.append(
                "<p>The same flow, its density in other coordinates "
                f"({html.escape(str(o['coordinates']))}): AUC {_fmt(o['auc'])}, max SIC "
                f"{_fmt(o['max_sic'])}. A low-density score depends on the coordinates.</p>"
            )
        body.append(
            f"<p>SIC = ε_S/√ε_B counted where ε_B ≥ {d['performance']['min_eps_b']:.3g} "
            "(CATHODE's convention).</p>"
        )
        if "performance" in figs:
            body.append('<img src="performance.png" style="max-width:100%">')
    if summary.hunts:
        body.append("<h2>Bump hunt</h2><table><tr><th>cut</th><th>threshold</th>")
        body.append(
            "<th>selected</th><th>SR observed</th><th>SR background</th><th>local Z</th>"
            "<th>χ²/ndf</th><th>fit</th></tr>"
        )
        for h in summary.hunts:
            f = h.fit
            if f is None:
                row = f"<td colspan=5>failed: {html.escape(h.error or '')}</td><td>—</td>"
            else:
                row = (
                    f"<td>{f.n_observed}</td><td>{f.background:.1f} ± {f.background_error:.1f}"
                    f"</td><td>{f.significance:.2f}</td><td>{f.chi2:.1f}/{f.ndf}</td>"
                    "<td>valid</td>"
                )
            body.append(
                f"<tr><td>top {100 * h.efficiency:g} %</td><td>{h.threshold:.4g}</td>"
                f"<td>{h.n_selected}</td>{row}</tr>"
            )
        body.append("</table><p>Local significance, no look-elsewhere correction.</p>")
        if "bumphunt" in figs:
            body.append('<img src="bumphunt.png" style="max-width:100%">')
    body += [f"<p><i>{html.escape(n)}</i></p>" for n in notes]
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{BASE_CSS}</style></head><body>{''.join(body)}</body></html>\n"
    )
    (out_dir / "report.html").write_text(page, encoding="utf-8")
    return [*files, "report.html"]
