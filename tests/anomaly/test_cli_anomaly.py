"""``physgen anomaly``: outputs of a run, the bump hunt, one-line errors that leave nothing."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from clitools import Run
from physgen.anomaly import Regions, toy_events


def _save(path: Path, ev) -> Path:
    np.save(path, np.c_[ev.mjj, ev.features, ev.labels])
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("anomaly")
    test = toy_events(2000, 600, seed=2)
    return {
        "data": _save(d / "data.npy", toy_events(4000, 150, seed=1)),
        "test": _save(d / "test.npy", test.select(Regions().in_sr(test.mjj))),
        "bkg": _save(d / "bkg.npy", toy_events(4000, 0, seed=3)),
    }


def test_cwola_run_and_bumphunt(run: Run, files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "cwola"
    rc, text, err = run(
        "anomaly", "cwola", "--events", files["data"], "--test", files["test"], "--labels",
        "last", "--folds", "2", "--efficiencies", "0.2,0.05", "--bins", "20", "-o", out,
    )  # fmt: skip
    assert rc == 0, err
    assert "max SIC" in text and "top 20 %" in text
    res = json.loads((out / "results.json").read_text())
    assert res["method"] == "cwola" and res["folds"] == 2
    assert res["performance"]["auc"] > 0.8 and len(res["bump_hunt"]) == 2
    assert {"scores.h5", "report.html", "results.json"} <= {p.name for p in out.iterdir()}
    with h5py.File(out / "scores.h5") as f:
        assert f["score"].shape == f["m_jj"].shape == f["region"].shape
        assert set(np.unique(f["region"][:])) <= {0, 1}
        assert f["test_score"].shape == f["test_label"].shape
    hunt = tmp_path / "hunt"
    rc, text, err = run("anomaly", "bumphunt", "--scores", out / "scores.h5", "--bins", "20",
                        "--efficiencies", "0.2", "-o", hunt, "--json")  # fmt: skip
    assert rc == 0, err
    res2 = json.loads(text)
    z1 = res["bump_hunt"][0]["fit"]["significance"]
    assert res2["bump_hunt"][0]["fit"]["significance"] == pytest.approx(z1)


def test_idealized_and_supervised_need_their_samples(
    run: Run, files: dict[str, Path], tmp_path: Path
) -> None:
    rc, _, err = run("anomaly", "idealized", "--events", files["data"], "-o", tmp_path / "a")
    assert rc == 2 and "--background" in err and not (tmp_path / "a").exists()
    rc, _, err = run("anomaly", "supervised", "--background", files["bkg"], "-o", tmp_path / "b")
    assert rc == 2 and "--signal" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["cwola", "--events", "DATA", "--test", "TEST"], "no truth labels"),
        (["cwola", "--events", "DATA", "--sr", "6:7"], "no events of --events"),
        (["cwola", "--events", "DATA", "--sr", "4.9:5.5"], "must lie inside the m_jj range"),
        (["cwola", "--events", "DATA", "--sidebands", "3.4:4"], "enclose"),
        (["cwola", "--events", "DATA", "--oversample", "2"], "--oversample: not used by cwola"),
        (["cwola", "--events", "NAN"], "NaN"),
        (["cwola", "--events", "ONECOL"], "columns"),
        (["cwola", "--events", "DATA", "--folds", "1"], "--folds"),
        (["cathode", "--events", "DATA", "--sidebands", "3.25:3.75"], "sidebands"),
        (["bumphunt", "--events", "DATA"], "--scores"),
        (["nope", "--events", "DATA"], "METHOD"),
    ],
)
def test_bad_input_one_line_nothing_written(
    run: Run, files: dict[str, Path], tmp_path: Path, args: list[str], message: str
) -> None:
    nan = np.load(files["data"])
    nan[5, 2] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "one.npy", np.ones((10, 1)))
    sub = {"DATA": files["data"], "TEST": files["test"], "NAN": tmp_path / "nan.npy"}
    sub["ONECOL"] = tmp_path / "one.npy"
    out = tmp_path / "out"
    rc, _, err = run("anomaly", *[sub.get(a, a) for a in args], "-o", out)
    assert rc == 2
    assert message in err and err.count("\n") == 1, err
    assert not out.exists()


def test_bumphunt_failed_fit_is_an_error_unless_kept(
    run: Run, files: dict[str, Path], tmp_path: Path
) -> None:
    m = np.load(files["data"])[:, 0]
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["m_jj"] = m
        f["score"] = np.random.default_rng(0).random(len(m))
    out = tmp_path / "hunt"
    rc, _, err = run("anomaly", "bumphunt", "--scores", tmp_path / "s.h5", "--efficiencies",
                     "0.0005", "-o", out)  # fmt: skip
    assert rc == 2 and "efficiency 0.0005" in err and err.count("\n") == 1
    assert not out.exists()
    rc, text, err = run("anomaly", "bumphunt", "--scores", tmp_path / "s.h5", "--efficiencies",
                        "0.0005", "--keep-failed", "-o", out, "--json")  # fmt: skip
    assert rc == 0, err
    assert json.loads(text)["bump_hunt"][0]["fit"] is None
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        f["m_jj"] = np.r_[m[:-1], np.nan]
        f["score"] = np.zeros(len(m))
    rc, _, err = run("anomaly", "bumphunt", "--scores", tmp_path / "nan.h5", "-o", tmp_path / "x")
    assert rc == 2 and "NaN" in err and not (tmp_path / "x").exists()
