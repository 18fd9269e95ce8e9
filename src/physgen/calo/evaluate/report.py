"""A self-contained HTML report of an evaluation, and the CaloChallenge final results.

The report opens with a table of the published CaloChallenge 2022 submissions for the
same dataset (the organisers' final-results tables, shipped in
``physgen/calo/evaluate/data``: 15 / 12 / 17 / 15 submissions for datasets 1-photons /
1-pions / 2 / 3, plus a Geant4-vs-Geant4 row each), then the separation powers per
feature class, the classifier and distance metrics, and the figures (embedded as base64
PNG, so the single HTML file can be mailed or put in a talk).

The sample is ranked among the submissions only when its ranking metric was measured as
the published ones: classifier AUCs with ``--classifier official`` on the official
split, every other metric on samples of the official size (121,000 / 120,800 / 100,000 /
100,000 showers). Otherwise its row is shown apart, below the published table, with the
reasons in words: a smaller classifier, fewer showers or fewer trainings change the
number, so it is not the same measurement.
"""

from __future__ import annotations

import base64
import csv
import html
import math
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Any

from physgen.calo.evaluate.classifier import OFFICIAL_SPLITS

__all__ = [
    "FINAL_RESULT_FILES",
    "SEPARATION_COLUMNS",
    "column_formatter",
    "final_results",
    "submission_count",
    "write_report",
]

#: Geometry name -> packaged CSV of the CaloChallenge final results.
FINAL_RESULT_FILES = {
    "1-photons": "CaloChallenge_results_ds1_photons_summary.csv",
    "1-pions": "CaloChallenge_results_ds1_pions_summary.csv",
    "2": "CaloChallenge_results_ds2_summary.csv",
    "3": "CaloChallenge_results_ds3_summary.csv",
}

#: Our separation-power feature classes -> column of the final-results CSV.
SEPARATION_COLUMNS = {
    "E_tot": "sep E total",
    "E_layer": "sep_mean_over_layers E layer",
    "EC_eta": "sep_mean_over_layers EC eta",
    "EC_phi": "sep_mean_over_layers EC phi",
    "EC_r": "sep_mean_over_layers EC r",
    "width_eta": "sep_mean_over_layers EC eta width",
    "width_phi": "sep_mean_over_layers EC phi width",
    "width_r": "sep_mean_over_layers EC r width",
    "sparsity": "sep_mean_over_layers sparsity",
    "voxel": "sep cell",
}


def final_results(geometry: str) -> list[dict[str, Any]]:
    """Rows of the CaloChallenge final-results table for a dataset (empty if none).

    Numeric cells are floats (NaN where the table has none); ``"submission name"`` is a str.
    """
    name = FINAL_RESULT_FILES.get(geometry)
    if name is None:
        return []
    text = (
        resources.files("physgen.calo.evaluate")
        .joinpath("data")
        .joinpath(name)
        .read_text(encoding="utf-8")
    )
    rows = []
    for raw in csv.DictReader(text.splitlines()):
        row: dict[str, Any] = {}
        for k, v in raw.items():
            if k == "submission name":
                row[k] = v
            else:
                try:
                    row[k] = float(v) if v not in ("", None) else math.nan
                except ValueError:
                    row[k] = math.nan
        rows.append(row)
    return rows


#: Final-results column -> the classifier mode that measures it here.
_AUC_MODES = {
    "binary cls low": "cls-low",
    "binary cls high": "cls-high",
    "binary cls cnn": "cls-resnet",
}
#: Name of the Geant4-vs-Geant4 row of the final-results tables (a floor, not a submission).
GEANT4_ROW = "GEANT4"
#: Classifier trainings averaged in each published AUC.
PUBLISHED_TRAININGS = 10


def submission_count(geometry: str) -> int:
    """Published CaloChallenge 2022 submissions for a dataset (0 if it has no table).

    Counted from the shipped final-results table; the Geant4-vs-Geant4 row is not a
    submission and is not counted.
    """
    return sum(1 for r in final_results(geometry) if r["submission name"] != GEANT4_ROW)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def column_formatter(
    values: Iterable[Any], significant: int = 3, max_decimals: int = 4
) -> Callable[[Any], str]:
    """One number format for a whole table column.

    Every number of the column gets the same number of decimals: as many as give the
    smallest non-zero magnitude ``significant`` significant digits. When that needs more
    than ``max_decimals`` decimals, or the largest magnitude reaches 1e6, every number of
    the column is written in scientific notation with ``significant`` digits instead, so a
    ``1.81e+04`` never stands among fixed decimals.

    Args:
        values: The column's cells (numbers; None, NaN and strings are skipped).
        significant: Significant digits of the smallest non-zero magnitude (>= 1).
        max_decimals: Most decimals before the column switches to scientific notation.

    Returns:
        ``fmt(v)``: the cell's HTML text (an en dash for None or NaN; strings escaped).
    """
    mags = [abs(float(v)) for v in values if _is_number(v) and v != 0]
    decimals = 0
    scientific = False
    if mags:
        decimals = max(0, significant - 1 - math.floor(math.log10(min(mags))))
        scientific = decimals > max_decimals or max(mags) >= 1e6

    def fmt(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        if not _is_number(v):
            return html.escape(str(v))
        if scientific:
            return f"{float(v):.{max(significant - 1, 0)}e}"
        return f"{float(v):.{decimals}f}"

    return fmt


def _fixed(decimals: int) -> Callable[[Any], str]:
    """A column format with a set number of decimals (an en dash for None or NaN)."""

    def fmt(v: Any) -> str:
        return f"{float(v):.{decimals}f}" if _is_number(v) else "–"

    return fmt


def _count(n: Any) -> str:
    """An integer with thousands separators (an en dash when missing)."""
    return f"{int(n):,}" if _is_number(n) else "–"


def _our_row(results: dict[str, Any]) -> dict[str, Any]:
    cls = results.get("classifier", {})
    fk = results.get("fpd_kpd", {})
    seps = results.get("separation_power_summary", {})
    row: dict[str, Any] = {
        "submission name": f"{results.get('label', 'generated')} (this sample)",
        "binary cls low": cls.get("cls-low", {}).get("auc"),
        "binary cls high": cls.get("cls-high", {}).get("auc"),
        "binary cls cnn": cls.get("cls-resnet", {}).get("auc"),
        "FPD * 1e3": fk["fpd"] * 1e3 if "fpd" in fk else None,
        "KPD * 1e3": fk["kpd"] * 1e3 if "kpd" in fk else None,
    }
    for group, col in SEPARATION_COLUMNS.items():
        if group in seps:
            row[col] = seps[group]["mean"]
    n_gen, n_ref = results.get("n_generated"), results.get("n_reference")
    row["showers"] = _count(n_gen) if n_gen == n_ref else f"{_count(n_gen)} vs {_count(n_ref)}"
    if cls:
        preset = results.get("classifier_preset", "fast")
        repeats = max(int(d.get("n_repeats", 1)) for d in cls.values())
        row["classifier"] = f"{preset}, {repeats} training{'s' if repeats != 1 else ''}"
    else:
        row["classifier"] = "not run"
    return row


def _split_text(split: Any) -> str:
    return " / ".join(_count(v) for v in split) if split else "–"


def _not_comparable(results: dict[str, Any], column: str) -> list[str]:
    """Why this sample's value in ``column`` is not measured as the published ones (HTML).

    Empty when it is: an AUC from the official classifier on the official split, any other
    metric on samples of the official size.
    """
    geo = results["geometry"]
    n_official, split_official = OFFICIAL_SPLITS[geo]
    n_gen, n_ref = results.get("n_generated"), results.get("n_reference")
    reasons = []
    if column in _AUC_MODES:
        d = results.get("classifier", {}).get(_AUC_MODES[column], {})
        preset = str(d.get("preset", results.get("classifier_preset")))
        if preset != "official":
            reasons.append(
                f"its AUCs come from the <b>{html.escape(preset)}</b> classifier preset, a "
                "smaller network with early stopping, where the published AUCs come from the "
                "official classifier (3 × 2048 nodes, 50 epochs); a weaker classifier "
                "separates less, so its AUC is usually lower, i.e. flattering"
            )
        if d.get("split_kind") != "official":
            reasons.append(
                f"its classifier was trained / tested / validated on "
                f"{_split_text(d.get('split_per_class'))} showers per class (from "
                f"{_count(n_gen)} generated and {_count(n_ref)} reference showers), the "
                f"published ones on {_split_text(split_official)} (from {_count(n_official)} "
                "each)"
            )
    elif n_gen != n_official or n_ref != n_official:
        reasons.append(
            f"it was measured on {_count(n_gen)} generated and {_count(n_ref)} reference "
            f"showers, the published numbers on {_count(n_official)} each; separation powers "
            "and FPD/KPD have a statistical floor and bias that depend on the sample size"
        )
    return reasons


def _dataset_counts() -> str:
    names = " / ".join(FINAL_RESULT_FILES)
    counts = " / ".join(str(submission_count(g)) for g in FINAL_RESULT_FILES)
    return f"{counts} submissions for datasets {names}"


def _ranking_table(results: dict[str, Any]) -> str:
    geo = results["geometry"]
    rows = final_results(geo)
    if not rows:
        return (
            f"<p>No CaloChallenge final results exist for geometry <b>{html.escape(geo)}</b>; "
            "the organisers' tables cover datasets 1-photons, 1-pions, 2 and 3 "
            f"({_dataset_counts()}).</p>"
        )
    ours = _our_row(results)
    n_official, split_official = OFFICIAL_SPLITS[geo]
    auc_cols = [("binary cls low", "AUC low"), ("binary cls high", "AUC high")]
    if geo in ("2", "3"):
        auc_cols.append(("binary cls cnn", "AUC ResNet"))
    other_cols = [
        ("FPD * 1e3", "FPD×10³"),
        ("KPD * 1e3", "KPD×10³"),
        ("sep E total", "sep. E_tot/E_inc"),
        ("sep_mean_over_layers E layer", "sep. E_layer (mean)"),
        ("sep cell", "sep. voxel spectrum"),
    ]
    cols = [
        ("submission name", "model"),
        *auc_cols,
        ("classifier", "classifier"),
        ("showers", "showers per sample"),
        *other_cols,
    ]
    # significant digits per column: AUCs as published (3 decimals); KPD scatters around 0
    # with a published std of ~0.05, so 4 decimals (1 digit of its smallest value) suffice
    digits = {c: 3 for c, _ in cols} | {"KPD * 1e3": 1}
    published_cls = f"official, {PUBLISHED_TRAININGS} trainings"
    shown = [{**r, "classifier": published_cls, "showers": _count(n_official)} for r in rows]
    # the organisers rank by classifier AUC: the first metric this sample has, AUCs first
    metrics = [c for c, _ in (*auc_cols, *other_cols)]
    key = next((c for c in metrics if ours.get(c) is not None), None)
    sort_key = key or "binary cls low"
    shown.sort(key=lambda r: math.inf if math.isnan(r.get(sort_key, math.nan)) else r[sort_key])
    if key is None:
        modes = ", ".join(results.get("modes", [])) or "none"
        reasons = [f"none of the table's metrics was computed for it (modes: {html.escape(modes)})"]
    else:
        reasons = _not_comparable(results, key)
    title = dict(cols)[sort_key]
    n_sub = submission_count(geo)
    intro = (
        f"<p>Published: the {n_sub} submissions for dataset {html.escape(geo)} in the "
        "organisers' final-results table (CaloChallenge 2022, arXiv:2410.21611; the tables "
        f"hold {_dataset_counts()}) and their Geant4-vs-Geant4 row, sorted by "
        f"<b>{html.escape(title)}</b> (lower is better). Each published AUC is the mean of "
        f"{PUBLISHED_TRAININGS} trainings of the official classifier on {_count(n_official)} "
        f"generated and {_count(n_official)} reference showers (train / test / validation "
        f"{_split_text(split_official)} per class).</p>"
    )
    formats = {
        c: column_formatter([*(r.get(c) for r in shown), ours.get(c)], digits[c]) for c, _ in cols
    }
    head = "<thead><tr>" + "".join(f"<th>{html.escape(t)}</th>" for _, t in cols) + "</tr></thead>"

    def tr(r: dict[str, Any]) -> str:
        cls_attr = ' class="ours"' if r is ours else ""
        return (
            f"<tr{cls_attr}>"
            + "".join(f"<td>{formats[c](r.get(c))}</td>" for c, _ in cols)
            + "</tr>"
        )

    if not reasons:
        assert key is not None
        value = ours[key]
        pos = next(
            (i for i, r in enumerate(shown) if not (r.get(key, math.nan) < value)), len(shown)
        )
        # Geant4 vs Geant4 stays first as the floor
        pos = max(pos, 1 if shown and shown[0]["submission name"] == GEANT4_ROW else 0)
        table = [*shown[:pos], ours, *shown[pos:]]
        subs = [r for r in rows if r["submission name"] != GEANT4_ROW and _is_number(r.get(key))]
        rank = 1 + sum(1 for r in subs if r[key] < value)
        if key in _AUC_MODES:
            stds = [r[f"{key} std"] for r in subs if _is_number(r.get(f"{key} std"))]
            spread = f" ({min(stds):.4f} to {max(stds):.4f})" if stds else ""
            how = (
                "the official classifier on the official split. AUCs scatter between "
                f"trainings by the published standard deviations{spread}, so neighbours "
                f"closer than that are a tie (this sample: {ours['classifier']})"
            )
        else:
            how = f"samples of the official size ({_count(n_official)} showers each)"
        note = (
            f"<p>This sample: <b>rank {rank} of {len(subs) + 1}</b> by {html.escape(title)} "
            f"(it and the {len(subs)} submissions with a published value), measured as the "
            f"published numbers: {html.escape(how)}.</p>"
        )
        return (
            intro
            + note
            + f"<table class='rank'>{head}<tbody>{''.join(tr(r) for r in table)}</tbody></table>"
        )
    caveat = (
        "<p class='caveat'><b>This sample is not ranked</b>: "
        + "; ".join(reasons)
        + ". Its numbers are therefore not the same measurement as the published ones and "
        "are shown apart, below the table. To rank it, evaluate "
        f"{_count(n_official)} generated against {_count(n_official)} reference showers with "
        "<code>--classifier official</code> (and <code>--repeats 10</code> for the "
        "published averaging).</p>"
    )
    return (
        intro
        + f"<table class='rank'>{head}<tbody>{''.join(tr(r) for r in shown)}</tbody></table>"
        + caveat
        + f"<table class='rank apart'>{head}<tbody>{tr(ours)}</tbody></table>"
    )


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
        [html.escape(g), _count(v["n"]), fmt_mean(v["mean"]), fmt_max(v["max"]), fmt_g4(g4_mean[g])]
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
        + f"<p>This sample: {_count(n)} generated against {_count(results.get('n_reference'))} "
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

    four = _fixed(4)  # AUC and JSD with 4 decimals, as in the official text files
    rows = [
        [
            html.escape(mode),
            html.escape(str(d.get("preset", results.get("classifier_preset")))),
            _split_text(d.get("split_per_class")),
            pm(d, "auc", four),
            pm(d, "jsd", four),
            _count(d.get("n_repeats")),
            _count(d.get("n_parameters")),
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
        three = _fixed(3)
        parts.append(
            _table(
                [*keys, "k", "showers (reference / generated)"],
                [
                    [
                        *(three(prdc.get(k)) for k in keys),
                        _count(prdc.get("k")),
                        f"{_count(prdc.get('n_reference'))} / {_count(prdc.get('n_generated'))}",
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
            + f"<p>Validation accuracy {_fixed(3)(mc.get('accuracy'))}; higher "
            "log posterior = more reference-like; an indistinguishable sample approaches the "
            "reference's own value.</p>"
        )
    return "".join(parts)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1200px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em} h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right}
th{background:#f3f3f3} td:first-child,th:first-child{text-align:left}
tr.ours td{background:#fff3c4;font-weight:bold}
.caveat{background:#fff8e1;border-left:4px solid #e0a800;padding:.5em 1em}
table.rank td{white-space:nowrap}
.warn{background:#fde8e8;border-left:4px solid #d33;padding:.5em 1em}
.meta{color:#555;font-size:.9em}
figure{display:inline-block;margin:.4em;vertical-align:top;text-align:center}
figure img{max-width:370px;border:1px solid #eee}
figcaption{font-size:.8em;color:#555;max-width:370px}
"""


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
        f"{html.escape(str(results.get('generated')))} ({_count(results.get('n_generated'))} showers); reference: "
        f"{html.escape(str(results.get('reference')))} ({_count(results.get('n_reference'))} showers); modes: "
        f"{html.escape(', '.join(results.get('modes', [])))}</p>",
    ]
    for w in results.get("warnings", []):
        parts.append(f"<p class='warn'>Warning: {html.escape(w)}</p>")
    parts.append("<h2>Summary: this sample among the CaloChallenge 2022 submissions</h2>")
    parts.append(_ranking_table(results))

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
