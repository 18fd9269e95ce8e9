"""physgen.unfold.report: files, figures, the HTML page, its metrics, and no partial output.

(Named ``test_unfold_report.py``: ``tests/calo/evaluate/test_report.py`` already holds the
basename, and the test folders are not packages.)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("matplotlib")
pytest.importorskip("mplhep")

import physgen.unfold.report as report_mod
from physgen.errors import ConfigError, DataFormatError
from physgen.unfold.metrics import summary_table
from physgen.unfold.report import write_report

N = 4000


def _inputs(seed: int = 0) -> dict[str, Any]:
    """A Gaussian toy with a multiplicity: prior, truth, detector data, two 'methods'."""
    rng = np.random.default_rng(seed)
    prior = np.stack([rng.normal(0, 1, N), rng.poisson(12, N)], 1).astype(float)
    truth = np.stack([rng.normal(0.2, 0.8, N), rng.poisson(15, N)], 1).astype(float)
    reco = truth + np.stack([0.5 * rng.normal(size=N), np.round(2 * rng.normal(size=N))], 1)
    good = np.stack([rng.normal(0.2, 0.8, N), rng.poisson(15, N)], 1).astype(float)
    boot = rng.poisson(1.0, (10, N)).astype(float)
    return {
        "columns": ["m_jet [GeV]", "n"],
        "prior": (prior, None),
        "data_reco": (reco, np.ones(N)),
        "unfolded": {"good": (good, None, boot), "prior-like": (prior, np.ones(N), None)},
        "truth": (truth, None),
        "title": "toy",
    }


def test_report_files_figures_and_metrics(tmp_path: Path) -> None:
    args = _inputs()
    out = tmp_path / "rep"
    page = write_report(out, **args)
    assert page == out / "report.html"
    files = sorted(p.name for p in out.iterdir())
    assert files == ["metrics.json", "report.html", "unfolded_m_jet_GeV.png", "unfolded_n.png"]
    html = page.read_text()
    for png in ("unfolded_m_jet_GeV.png", "unfolded_n.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
        assert f"src='{png}'" in html
    info = json.loads((out / "metrics.json").read_text())
    assert info["figures"] == {"m_jet [GeV]": "unfolded_m_jet_GeV.png", "n": "unfolded_n.png"}
    # the multiplicity gets integer bins (edges at half-integers, one integer per bin)
    e_n = np.array(info["bins"]["n"])
    assert np.allclose(e_n % 1, 0.5) and np.allclose(np.diff(e_n), 1.0)
    assert len(info["bins"]["m_jet [GeV]"]) == 41
    # the page's numbers are those of metrics.summary_table with the same bins
    table = info["metrics"]
    ref = summary_table(
        args["truth"],
        {k: v[:2] for k, v in args["unfolded"].items()},
        args["columns"],
        bins={c: np.array(e) for c, e in info["bins"].items()},
    )
    for method in ("good", "prior-like"):
        for col in args["columns"]:
            assert table[method][col]["w1_x10"] == pytest.approx(ref[method][col]["w1_x10"])
            assert table[method][col]["delta_x1e3"] == pytest.approx(ref[method][col]["delta_x1e3"])
    # the prior row equals the prior-like method (same samples); the good method is better
    assert table["prior (MC)"]["n"]["w1_x10"] == pytest.approx(table["prior-like"]["n"]["w1_x10"])
    for col in args["columns"]:
        assert table["good"][col]["w1_x10"] < 0.5 * table["prior (MC)"][col]["w1_x10"]
    g = table["good"]["n"]
    assert g["w1_x10_std"] > 0 and g["delta_x1e3_std"] > 0 and 0 <= g["band_coverage"] <= 1
    assert table["prior-like"]["n"]["band_coverage"] is None
    assert "W1 × 10" in html and "Δ × 10³" in html and "±1σ bootstrap band" in html
    assert html.count("class='best'") == 4  # one best method per observable and metric


def test_report_without_truth_and_with_bins(tmp_path: Path) -> None:
    args = _inputs(1) | {"truth": None, "bins": {"n": np.arange(-0.5, 30.5, 2.0)}}
    page = write_report(tmp_path / "rep", **args)
    html = page.read_text()
    assert "No truth given" in html and "<table" not in html
    info = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert info["metrics"] == {} and info["n_truth"] is None
    assert info["bins"]["n"] == np.arange(-0.5, 30.5, 2.0).tolist()
    # without truth the default bins cover the prior and the first method
    e = np.array(info["bins"]["m_jet [GeV]"])
    assert e[0] < -1.5 and e[-1] > 1.8


def test_report_replaces_its_own_files_and_keeps_others(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    out.mkdir()
    (out / "results.json").write_text("{}")
    (out / "report.html").write_text("old")
    write_report(out, **_inputs())
    assert (out / "results.json").read_text() == "{}"
    assert (out / "report.html").read_text().startswith("<!DOCTYPE html>")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no stage left


def test_no_partial_output_when_a_figure_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = report_mod._figure

    def failing(path: Path, column: str, *a: Any, **k: Any) -> None:
        calls.append(column)
        if len(calls) == 2:
            raise RuntimeError("boom")
        real(path, column, *a, **k)

    monkeypatch.setattr(report_mod, "_figure", failing)
    with pytest.raises(RuntimeError, match="boom"):
        write_report(tmp_path / "new", **_inputs())
    assert calls == ["m_jet [GeV]", "n"]
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a stage remains
    old = tmp_path / "old"
    old.mkdir()
    (old / "report.html").write_text("previous")
    with pytest.raises(RuntimeError, match="boom"):
        calls.clear()
        write_report(old, **_inputs())
    assert [p.name for p in old.iterdir()] == ["report.html"]
    assert (old / "report.html").read_text() == "previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_bad_input(tmp_path: Path) -> None:
    args = _inputs()
    with pytest.raises(ConfigError, match="does not exist"):
        write_report(tmp_path / "a" / "b", **args)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        write_report(tmp_path / "file", **args)
    with pytest.raises(ConfigError, match="at least one method"):
        write_report(tmp_path / "r", **(args | {"unfolded": {}}))
    with pytest.raises(ConfigError, match="baseline row"):
        write_report(
            tmp_path / "r", **(args | {"unfolded": {"prior (MC)": args["prior"] + (None,)}})
        )
    with pytest.raises(DataFormatError, match=r"truth: expected samples of shape \(N, 2\)"):
        write_report(tmp_path / "r", **(args | {"truth": (np.zeros((5, 3)), None)}))
    bad_boot = {"good": (args["unfolded"]["good"][0], None, np.ones((1, N)))}
    with pytest.raises(DataFormatError, match="bootstrap weights need shape"):
        write_report(tmp_path / "r", **(args | {"unfolded": bad_boot}))
    with pytest.raises(DataFormatError, match="weights must be"):
        write_report(tmp_path / "r", **(args | {"prior": (args["prior"][0], -np.ones(N))}))
    with pytest.raises(ConfigError, match=r"bins\['n'\]"):
        write_report(tmp_path / "r", **(args | {"bins": {"n": [3.0, 1.0]}}))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_methods_limited_to_their_observables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An entry with a 4th element (its observables), as IBU gives one per observable: the MC
    reweighted in that observable only is scored, tabulated and drawn only there."""
    args = _inputs(2)
    prior, good = args["prior"][0], args["unfolded"]["good"][0]
    only_n = np.column_stack([prior[:, 0], good[:, 1]])  # right in n, the prior in m
    only_m = np.column_stack([good[:, 0], prior[:, 1]])
    args["unfolded"] = {
        "good": args["unfolded"]["good"],  # a 3-tuple: all observables
        "IBU (n)": (only_n, None, None, ("n",)),
        "IBU (m)": (only_m, np.ones(N), None, "m_jet [GeV]"),  # one name as a string
    }
    drawn: dict[str, list[str]] = {}
    real = report_mod._figure

    def spy(path: Path, column: str, *a: Any, **k: Any) -> None:
        drawn[column] = list(a[3])  # (edges, prior, data, methods, ...)
        real(path, column, *a, **k)

    monkeypatch.setattr(report_mod, "_figure", spy)
    page = write_report(tmp_path / "rep", **args)
    assert drawn == {"m_jet [GeV]": ["good", "IBU (m)"], "n": ["good", "IBU (n)"]}
    info = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    table = info["metrics"]
    assert set(table["IBU (n)"]) == {"n"} and set(table["IBU (m)"]) == {"m_jet [GeV]"}
    assert set(table["good"]) == set(table["prior (MC)"]) == {"m_jet [GeV]", "n"}
    assert info["method_columns"] == {
        "good": ["m_jet [GeV]", "n"],
        "IBU (n)": ["n"],
        "IBU (m)": ["m_jet [GeV]"],
    }
    ref = summary_table(
        args["truth"],
        {"IBU (n)": (only_n, None), "IBU (m)": (only_m, None)},
        args["columns"],
        bins={c: np.array(e) for c, e in info["bins"].items()},
    )
    assert table["IBU (n)"]["n"]["w1_x10"] == pytest.approx(ref["IBU (n)"]["n"]["w1_x10"])
    assert table["IBU (m)"]["m_jet [GeV]"]["delta_x1e3"] == pytest.approx(
        ref["IBU (m)"]["m_jet [GeV]"]["delta_x1e3"]
    )
    # the HTML rows: a value in the entry's own observable, '—' in the other
    html = page.read_text()
    w1 = html.split("<h3>W1 × 10</h3>")[1].split("</table>")[0]
    row_n = w1.split("<td>IBU (n)</td>")[1].split("</tr>")[0]
    row_m = w1.split("<td>IBU (m)</td>")[1].split("</tr>")[0]
    assert row_n.startswith("<td>—</td>") and row_n.count("—") == 1
    assert row_m.endswith("<td>—</td>") and row_m.count("—") == 1
    assert "IBU (n) (only n)" in html


def test_method_columns_bad_input(tmp_path: Path) -> None:
    args = _inputs()
    v = args["unfolded"]["good"][0]
    cases = [
        ({"a": (v, None, None, ("nope",))}, r"unfolded\['a'\]: unknown observable 'nope'"),
        ({"a": (v, None, None, ())}, r"unfolded\['a'\]: empty list of observables"),
        ({"a": (v, None)}, r"unfolded\['a'\]: expected \(samples, weights, bootstrap"),
        ({"a": (v, None, None, ["n"])}, "no method applies to the observable 'm_jet"),
    ]
    for unfolded, match in cases:
        with pytest.raises(ConfigError, match=match):
            write_report(tmp_path / "r", **(args | {"unfolded": unfolded}))
    assert list(tmp_path.iterdir()) == []
