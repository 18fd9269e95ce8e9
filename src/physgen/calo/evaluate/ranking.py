"""The CaloChallenge 2022 final results, and the rule that decides whether a sample is ranked.

The organisers' final-results tables ship in ``physgen/calo/evaluate/data``: 15 / 12 /
17 / 15 submissions for datasets 1-photons / 1-pions / 2 / 3, plus a Geant4-vs-Geant4
row each. :func:`final_results` reads them, :func:`submission_count` counts their
submissions, and :func:`ranking_table` writes the report's summary table: the published
rows sorted by the first metric this sample has, with this sample among them or apart.

The sample is ranked among the submissions only when its ranking metric was measured as
the published ones: classifier AUCs with ``--classifier official`` on the official
split, every other metric on samples of the official size (121,000 / 120,800 / 100,000 /
100,000 showers). Otherwise its row is shown apart, below the published table, with the
reasons in words: a smaller classifier, fewer showers or fewer trainings change the
number, so it is not the same measurement.
"""

from __future__ import annotations

import csv
import html
import math
from importlib import resources
from typing import Any

from physgen.calo.evaluate.classifier import OFFICIAL_SPLITS
from physgen.calo.evaluate.formatting import column_formatter, count_text, is_number, split_text

__all__ = [
    "FINAL_RESULT_FILES",
    "GEANT4_ROW",
    "PUBLISHED_TRAININGS",
    "SEPARATION_COLUMNS",
    "final_results",
    "ranking_table",
    "submission_count",
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
    row["showers"] = (
        count_text(n_gen) if n_gen == n_ref else f"{count_text(n_gen)} vs {count_text(n_ref)}"
    )
    if cls:
        preset = results.get("classifier_preset", "fast")
        repeats = max(int(d.get("n_repeats", 1)) for d in cls.values())
        row["classifier"] = f"{preset}, {repeats} training{'s' if repeats != 1 else ''}"
    else:
        row["classifier"] = "not run"
    return row


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
                f"{split_text(d.get('split_per_class'))} showers per class (from "
                f"{count_text(n_gen)} generated and {count_text(n_ref)} reference showers), the "
                f"published ones on {split_text(split_official)} (from {count_text(n_official)} "
                "each)"
            )
    elif n_gen != n_official or n_ref != n_official:
        reasons.append(
            f"it was measured on {count_text(n_gen)} generated and {count_text(n_ref)} reference "
            f"showers, the published numbers on {count_text(n_official)} each; separation powers "
            "and FPD/KPD have a statistical floor and bias that depend on the sample size"
        )
    return reasons


def _dataset_counts() -> str:
    names = " / ".join(FINAL_RESULT_FILES)
    counts = " / ".join(str(submission_count(g)) for g in FINAL_RESULT_FILES)
    return f"{counts} submissions for datasets {names}"


def ranking_table(results: dict[str, Any]) -> str:
    """The report's summary: this sample among the published submissions (HTML).

    Ranked among them when :func:`_not_comparable` finds no reason against it, else the
    published table followed by the reasons and this sample's row, apart.
    """
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
    shown = [{**r, "classifier": published_cls, "showers": count_text(n_official)} for r in rows]
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
        f"{PUBLISHED_TRAININGS} trainings of the official classifier on {count_text(n_official)} "
        f"generated and {count_text(n_official)} reference showers (train / test / validation "
        f"{split_text(split_official)} per class).</p>"
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
        subs = [r for r in rows if r["submission name"] != GEANT4_ROW and is_number(r.get(key))]
        rank = 1 + sum(1 for r in subs if r[key] < value)
        if key in _AUC_MODES:
            stds = [r[f"{key} std"] for r in subs if is_number(r.get(f"{key} std"))]
            spread = f" ({min(stds):.4f} to {max(stds):.4f})" if stds else ""
            how = (
                "the official classifier on the official split. AUCs scatter between "
                f"trainings by the published standard deviations{spread}, so neighbours "
                f"closer than that are a tie (this sample: {ours['classifier']})"
            )
        else:
            how = f"samples of the official size ({count_text(n_official)} showers each)"
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
        f"{count_text(n_official)} generated against {count_text(n_official)} reference showers with "
        "<code>--classifier official</code> (and <code>--repeats 10</code> for the "
        "published averaging).</p>"
    )
    return (
        intro
        + f"<table class='rank'>{head}<tbody>{''.join(tr(r) for r in shown)}</tbody></table>"
        + caveat
        + f"<table class='rank apart'>{head}<tbody>{tr(ours)}</tbody></table>"
    )
