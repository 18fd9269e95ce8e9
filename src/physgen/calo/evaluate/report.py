"""A self-contained HTML report of an evaluation.

The report opens with a table of the published CaloChallenge 2022 submissions for the
same dataset, with this sample ranked among them or shown apart
(:mod:`physgen.calo.evaluate.ranking`), then the separation powers per feature class,
the classifier and distance metrics, and the figures (embedded as base64 PNG, so the
single HTML file can be mailed or put in a talk). The numbers of each table column share
one format (:mod:`physgen.calo.evaluate.formatting`).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from physgen.calo.evaluate.formatting import (
    column_formatter,
    count_text,
    fixed_formatter,
    split_text,
)
from physgen.calo.evaluate.ranking import (
    FINAL_RESULT_FILES,
    SEPARATION_COLUMNS,
    final_results,
    ranking_table,
    submission_count,
)
from physgen.calo.evaluate.ranking import GEANT4_ROW as GEANT4_ROW
from physgen.calo.evaluate.ranking import PUBLISHED_TRAININGS as PUBLISHED_TRAININGS
from physgen.htmlpage import BASE_CSS

__all__ = [
    "FINAL_RESULT_FILES",
    "SEPARATION_COLUMNS",
    "column_formatter",
    "final_results",
    "submission_count",
    "write_report",
]


def _img(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'/>"
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _table(header: list[str], rows: list[list[str]], css: str = "") -> str:
    """An HTML table from already formatted (escaped) cells."""
    cls = f" class='{css}'" if css else ""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _separation_section(results: dict[str, Any]) -> str:
    seps: dict[str, Any] = results["separation_power_summary"]
    g4 = next(
        (r for r in final_results(results["geometry"]) if r["submission name"] == GEANT4_ROW), {}
    )
    g4_mean = {g: g4.get(SEPARATION_COLUMNS.get(g, ""), math.nan) for g in seps}
    fmt_mean = column_formatter(v["mean"] for v in seps.values())
    fmt_max = column_formatter(v["max"] for v in seps.values())
    fmt_g4 = column_formatter(g4_mean.values())
    rows = [
        [
            html.escape(g),
            count_text(v["n"]),
            fmt_mean(v["mean"]),
            fmt_max(v["max"]),
            fmt_g4(g4_mean[g]),
        ]
        for g, v in seps.items()
    ]
    n = results.get("n_generated")
    worst = sorted(results.get("separation_power", {}).items(), key=lambda kv: -kv[1])[:10]
    fmt_worst = column_formatter(v for _, v in worst)
    return (
        "<h2>Separation power per feature class</h2>"
        + _table(
            ["feature", "histograms", "mean", "max", "Geant4 vs Geant4 (mean, published)"], rows
        )
        + f"<p>This sample: {count_text(n)} generated against {count_text(results.get('n_reference'))} "
        "reference showers; the Geant4 column is the organisers' Geant4-vs-Geant4 value at "
        "the official size. Separation powers of finite samples have a statistical floor "
        "that falls with the number of showers.</p>"
        + "<p>Largest separation powers: "
        + ", ".join(f"{html.escape(k)} {fmt_worst(v)}" for k, v in worst)
        + "</p>"
    )


def _classifier_section(results: dict[str, Any]) -> str:
    cls: dict[str, Any] = results["classifier"]

    def pm(d: dict[str, Any], key: str, fmt: Callable[[Any], str]) -> str:
        std = d.get(f"{key}_std")
        spread = std is not None and int(d.get("n_repeats", 1)) > 1  # no spread from 1 training
        return fmt(d.get(key)) + (f" ± {fmt(std)}" if spread else "")

    four = fixed_formatter(4)  # AUC and JSD with 4 decimals, as in the official text files
    rows = [
        [
            html.escape(mode),
            html.escape(str(d.get("preset", results.get("classifier_preset")))),
            split_text(d.get("split_per_class")),
            pm(d, "auc", four),
            pm(d, "jsd", four),
            count_text(d.get("n_repeats")),
            count_text(d.get("n_parameters")),
        ]
        for mode, d in cls.items()
    ]
    return (
        "<h2>Classifier tests</h2>"
        + _table(
            [
                "mode",
                "classifier",
                "train / test / validation per class",
                "AUC",
                "JSD",
                "trainings",
                "parameters",
            ],
            rows,
        )
        + "<p>AUC 0.5: indistinguishable; 1: perfectly separable. Calibrated with isotonic "
        "regression on the test split; ± is the standard deviation over trainings.</p>"
    )


def _distance_section(results: dict[str, Any]) -> str:
    parts = ["<h2>Distances</h2>"]
    fk = results.get("fpd_kpd", {})
    pairs = [
        (name, fk[k], fk.get(f"{k}_err")) for k, name in (("fpd", "FPD"), ("kpd", "KPD")) if k in fk
    ]
    if pairs:
        fmt = column_formatter([v * 1e3 for _, v, _ in pairs], significant=3)
        fmt_err = column_formatter([e * 1e3 for _, _, e in pairs if e is not None], significant=2)
        rows = [
            [name, fmt(v * 1e3), fmt_err(e * 1e3) if e is not None else "–"] for name, v, e in pairs
        ]
        parts.append(_table(["distance", "value ×10³", "uncertainty ×10³"], rows))
    prdc = results.get("prdc", {})
    if prdc:
        keys = ("precision", "recall", "density", "coverage")
        three = fixed_formatter(3)
        parts.append(
            _table(
                [*keys, "k", "showers (reference / generated)"],
                [
                    [
                        *(three(prdc.get(k)) for k in keys),
                        count_text(prdc.get("k")),
                        f"{count_text(prdc.get('n_reference'))} / {count_text(prdc.get('n_generated'))}",
                    ]
                ],
            )
        )
    mc = results.get("multiclass")
    if mc:
        lp: dict[str, float] = mc.get("log_posterior", {})
        ref_lp = mc.get("reference_log_posterior")
        fmt = column_formatter([*lp.values(), ref_lp], significant=3)
        rows = [["reference", fmt(ref_lp)]] + [[html.escape(k), fmt(v)] for k, v in lp.items()]
        parts.append(
            "<h3>Multiclass classifier</h3>"
            + _table(["sample", "mean ln p(reference | x)"], rows)
            + f"<p>Validation accuracy {fixed_formatter(3)(mc.get('accuracy'))}; higher "
            "log posterior = more reference-like; an indistinguishable sample approaches the "
            "reference's own value.</p>"
        )
    return "".join(parts)


_CSS = (
    BASE_CSS
    + """tr.ours td{background:#fff3c4;font-weight:bold}
.caveat{background:#fff8e1;border-left:4px solid #e0a800;padding:.5em 1em}
table.rank td{white-space:nowrap}
.warn{background:#fde8e8;border-left:4px solid #d33;padding:.5em 1em}
.meta{color:#555;font-size:.9em}
figure{display:inline-block;margin:.4em;vertical-align:top;text-align:center}
figure img{max-width:370px;border:1px solid #eee}
figcaption{font-size:.8em;color:#555;max-width:370px}
"""
)


def write_report(results: dict[str, Any], out_dir: Path, files: list[Path]) -> Path:
    """Write ``report.html`` into ``out_dir`` (figures embedded); returns its path."""
    geo = results["geometry"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>physgen evaluation: {html.escape(results.get('label', ''))} vs reference, "
        f"geometry {html.escape(geo)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>Evaluation of <i>{html.escape(results.get('label', 'generated'))}</i> "
        f"(geometry {html.escape(geo)})</h1>",
        f"<p class='meta'>physgen {html.escape(results.get('physgen_version', ''))}, "
        f"{datetime.now(timezone.utc).strftime('%Y-%m-%d %H:%M UTC')}; generated: "
        f"{html.escape(str(results.get('generated')))} ({count_text(results.get('n_generated'))} showers); reference: "
        f"{html.escape(str(results.get('reference')))} ({count_text(results.get('n_reference'))} showers); modes: "
        f"{html.escape(', '.join(results.get('modes', [])))}</p>",
    ]
    if "weights" in results:
        wd = results["weights"]
        parts.append(
            "<p class='meta'><b>Weighted generated sample</b> (per-shower weights, e.g. DCTR "
            "refinement): every histogram, separation power, average shower and classifier "
            "below uses them; effective sample size "
            f"{wd['effective_sample_size']:.0f} ({100 * wd['ess_fraction']:.1f} % of "
            f"{count_text(results.get('n_generated'))}), largest weight {wd['max']:.3g}.</p>"
        )
    for w in results.get("warnings", []):
        parts.append(f"<p class='warn'>Warning: {html.escape(w)}</p>")
    parts.append("<h2>Summary: this sample among the CaloChallenge 2022 submissions</h2>")
    parts.append(ranking_table(results))

    if results.get("separation_power_summary"):
        parts.append(_separation_section(results))
    if results.get("classifier"):
        parts.append(_classifier_section(results))
    if results.get("fpd_kpd") or results.get("prdc") or results.get("multiclass"):
        parts.append(_distance_section(results))

    pngs = [p for p in files if p.suffix == ".png" and p.exists()]
    if pngs:
        sep = results.get("separation_power", {})
        key_names = (
            "Etot_Einc_dataset",
            "voxel_energy",
            "Etot_Einc_dataset_",
            "average_shower",
            "Average_Layer",
        )
        key_figs = [p for p in pngs if p.name.startswith(key_names)]
        by_key = {f"{k}_dataset_{geo}.png": v for k, v in sep.items()}
        hist_figs = sorted(
            (p for p in pngs if p.name in by_key and p not in key_figs),
            key=lambda p: -by_key[p.name],
        )
        shown = key_figs[:24] + hist_figs[:24]
        parts.append("<h2>Figures</h2>")
        parts.append(
            f"<p>{len(shown)} of {len(pngs)} figures shown (the histograms with the largest "
            "separation power first); all PNG files are in the report's folder.</p>"
        )
        for p in shown:
            cap = p.stem
            if p.name in by_key:
                cap += f" (separation power {by_key[p.name]:.2e})"
            parts.append(_img(p, cap))
    timing = results.get("timing_s", {})
    if timing:
        parts.append(
            "<h2>Run time</h2><p class='meta'>"
            + ", ".join(f"{html.escape(k)} {v:.1f} s" for k, v in timing.items())
            + "</p>"
        )
    parts.append("</body></html>")
    path = out_dir / "report.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
