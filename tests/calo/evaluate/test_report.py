"""The HTML report: honest ranking among the CaloChallenge submissions, consistent numbers."""

from __future__ import annotations

import csv
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from physgen.calo.evaluate.report import (
    FINAL_RESULT_FILES,
    column_formatter,
    final_results,
    submission_count,
    write_report,
)

SHARED_RESULTS = Path(__file__).resolve().parents[4] / "shared" / "calochallenge" / "final_results"


class _Tables(HTMLParser):
    """Collects every table as ``{"class": str, "rows": [(row_class, [cell text])]}``."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[dict[str, Any]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table":
            self.tables.append({"class": a.get("class") or "", "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append((a.get("class") or "", []))
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1][1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _tables(text: str) -> list[dict[str, Any]]:
    p = _Tables()
    p.feed(text)
    return p.tables


def _results(
    preset: str = "fast",
    n: int = 1000,
    split: tuple[int, int, int] = (600, 200, 200),
    split_kind: str = "fractional",
    auc: float | None = 0.70,
    geometry: str = "1-photons",
) -> dict[str, Any]:
    r: dict[str, Any] = {
        "physgen_version": "test",
        "geometry": geometry,
        "label": "mymodel",
        "modes": ["hist", "cls-low", "fpd", "kpd"],
        "n_generated": n,
        "n_reference": n,
        "generated": "gen.h5",
        "reference": "ref.h5",
        "classifier_preset": preset,
        "warnings": [],
        "separation_power_summary": {"E_tot": {"n": 1, "mean": 0.0123, "max": 0.0123}},
        "separation_power": {"Etot_Einc": 0.0123},
        # FPD x 1e3 = 18100: the value that used to print as 1.81e+04 among fixed decimals
        "fpd_kpd": {"fpd": 18.1, "fpd_err": 0.0005, "kpd": 1e-5, "kpd_err": 1e-6},
    }
    if auc is not None:
        r["classifier"] = {
            "cls-low": {
                "auc": auc,
                "auc_std": 0.0,
                "jsd": 0.1,
                "jsd_std": 0.0,
                "preset": preset,
                "split_per_class": list(split),
                "split_kind": split_kind,
                "n_repeats": 1,
                "n_parameters": 715_265,
            }
        }
    return r


def _plain(text: str) -> str:
    """The page's text: no style sheet, no tags."""
    return re.sub(r"<[^>]+>", "", re.sub(r"<style>.*?</style>", "", text, flags=re.S))


def _report(tmp_path: Path, results: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    text = write_report(results, tmp_path, []).read_text()
    return text, [t for t in _tables(text) if "rank" in t["class"]]


def test_submission_counts_come_from_the_tables() -> None:
    counts = {g: submission_count(g) for g in FINAL_RESULT_FILES}
    assert counts == {"1-photons": 15, "1-pions": 12, "2": 17, "3": 15}
    assert submission_count("calogan") == 0
    for g, name in FINAL_RESULT_FILES.items():
        assert len(final_results(g)) == counts[g] + 1  # plus the Geant4-vs-Geant4 row
        shared = SHARED_RESULTS / name
        if shared.exists():  # the packaged copy is the shared one
            with shared.open() as fh:
                assert len(list(csv.DictReader(fh))) == counts[g] + 1


def test_fast_classifier_is_not_ranked_among_official_aucs(tmp_path: Path) -> None:
    text, tables = _report(tmp_path, _results())
    published, apart = tables
    assert apart["class"] == "rank apart"
    names = [cells[0] for _, cells in published["rows"][1:]]
    assert "mymodel (this sample)" not in names and len(names) == 16
    assert [cls for cls, _ in apart["rows"][1:]] == ["ours"]
    header = published["rows"][0][1]
    ours = dict(zip(header, apart["rows"][1][1], strict=True))
    assert ours["classifier"] == "fast, 1 training"
    assert ours["showers per sample"] == "1,000"
    g4 = dict(zip(header, published["rows"][1][1], strict=True))
    assert g4["classifier"] == "official, 10 trainings" and g4["showers per sample"] == "121,000"
    plain = _plain(text)
    assert "This sample is not ranked" in plain
    assert "fast classifier preset" in plain
    assert "600 / 200 / 200 showers per class" in plain and "80,000 / 20,000 / 21,000" in plain
    assert "--classifier official" in plain
    assert "rank " not in plain.replace("rank it", "")
    assert "15 submissions for dataset 1-photons" in plain
    assert "15 / 12 / 17 / 15 submissions for datasets 1-photons / 1-pions / 2 / 3" in plain
    assert not re.search(r"\b31 (published |CaloChallenge 2022 )?submissions", plain)


def test_official_classifier_at_official_size_is_ranked(tmp_path: Path) -> None:
    r = _results("official", 121_000, (80_000, 20_000, 21_000), "official", auc=0.70)
    text, tables = _report(tmp_path, r)
    assert len(tables) == 1
    rows = tables[0]["rows"][1:]
    names = [cells[0] for _, cells in rows]
    # GEANT4 0.499, CaloINN 0.626, CaloDiffusion 0.635 are below 0.70; CaloFlow teacher 0.733
    assert names[:5] == [
        "GEANT4",
        "CaloINN",
        "CaloDiffusion",
        "mymodel (this sample)",
        "CaloFlow teacher",
    ]
    assert rows[3][0] == "ours"
    assert "rank 3 of 16" in _plain(text)
    assert "not ranked" not in text


@pytest.mark.parametrize(
    ("preset", "n", "split", "kind", "reason"),
    [
        # the official network on a small sample: the split, not the network, differs
        ("official", 1000, (600, 200, 200), "fractional", "600 / 200 / 200 showers per class"),
        # the fast network at the official size: the network differs
        ("fast", 121_000, (80_000, 20_000, 21_000), "official", "fast classifier preset"),
    ],
)
def test_any_difference_in_the_measurement_prevents_ranking(
    tmp_path: Path, preset: str, n: int, split: tuple[int, int, int], kind: str, reason: str
) -> None:
    text, tables = _report(tmp_path, _results(preset, n, split, kind))
    assert len(tables) == 2 and "This sample is not ranked" in text
    assert reason in _plain(text)


def test_without_classifier_the_sample_size_decides(tmp_path: Path) -> None:
    small = _results(auc=None)
    text, tables = _report(tmp_path / "small", small)
    plain = _plain(text)
    assert len(tables) == 2 and "1,000 generated and 1,000 reference showers" in plain
    assert "sorted by FPD×10³" in plain
    full = _results(auc=None, n=121_000)
    text, tables = _report(tmp_path / "full", full)
    assert len(tables) == 1 and "rank " in _plain(text)
    header = tables[0]["rows"][0][1]
    ours = next(cells for cls, cells in tables[0]["rows"] if cls == "ours")
    assert dict(zip(header, ours, strict=True))["classifier"] == "not run"


def _numeric_style(cell: str) -> str | None:
    """``"sci"``, ``"fixed:D"`` (D decimals) or None for a cell that is not one number."""
    if re.fullmatch(r"-?\d\.\d+e[+-]\d\d", cell):
        return "sci"
    m = re.fullmatch(r"-?\d+(?:\.(\d+))?", cell)
    return f"fixed:{len(m.group(1) or '')}" if m else None


@pytest.mark.parametrize("geometry", list(FINAL_RESULT_FILES))
def test_every_rank_column_has_one_number_format(tmp_path: Path, geometry: str) -> None:
    _, tables = _report(tmp_path, _results(geometry=geometry))
    header = tables[0]["rows"][0][1]
    rows = [cells for t in tables for _, cells in t["rows"][1:]]
    for i, title in enumerate(header):
        styles = {_numeric_style(r[i]) for r in rows if r[i] != "–"} - {None}
        assert len(styles) <= 1, (geometry, title, styles)
    fpd = header.index("FPD×10³")
    ours = rows[-1]
    assert ours[fpd].startswith("18100.")  # fixed, like the published 0.119 .. 22947.3


def test_column_formatter() -> None:
    fixed = column_formatter([0.4975, 0.99999, None, float("nan")])
    assert [fixed(v) for v in (0.4975, 0.99999, None, float("nan"))] == [
        "0.497",
        "1.000",
        "–",
        "–",
    ]
    wide = column_formatter([0.1192, 18100.0])
    assert (wide(0.1192), wide(18100.0)) == ("0.119", "18100.000")
    tiny = column_formatter([9.85e-7, 0.5])
    assert (tiny(9.85e-7), tiny(0.5)) == ("9.85e-07", "5.00e-01")
    huge = column_formatter([1.5, 2.5e6])
    assert huge(1.5) == "1.50e+00"
    assert column_formatter([0, 0])(0) == "0"
    assert column_formatter([1.0])("<b>") == "&lt;b&gt;"
