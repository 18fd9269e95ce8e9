"""``physgen unfold``: outputs of a run, and one-line errors that leave nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from clitools import Run
from physgen.unfold import data_from_truth, make_mc, read_weights, write_data, write_mc


@pytest.fixture()
def files(tmp_path: Path, gaussian) -> tuple[Path, Path]:
    mc = write_mc(tmp_path / "mc.h5", gaussian(1500, 0.0, 1.0, seed=1))
    data = write_data(tmp_path / "data.h5", data_from_truth(gaussian(1000, 0.2, 0.8, seed=2)))
    return mc, data


def test_ibu_run(run: Run, files, tmp_path: Path):
    mc, data = files
    out = tmp_path / "out"
    rc, text, err = run(
        "unfold",
        "--method",
        "ibu",
        "--mc",
        mc,
        "--data",
        data,
        "-o",
        out,
        "--bins",
        12,
        "--bootstrap",
        3,
        "--bootstrap-mc",
        "--json",
        "-q",
    )
    assert rc == 0, err
    res = json.loads(text)
    assert json.loads((out / "results.json").read_text()) == res
    assert {"ibu.h5", "results.json"} <= {p.name for p in out.iterdir()}
    assert set(res["files"]) <= {p.name for p in out.iterdir()}
    x = res["observables"]["x"]
    assert x["unfolded"]["binned"] and {"prior", "truth", "data_reco", "mc_reco"} <= set(x)
    # the unfolded mean moved from the prior's (0) towards the truth's (0.2)
    assert abs(x["unfolded"]["mean"] - x["truth"]["mean"]) < abs(x["prior"]["mean"] - 0.2) / 2
    assert res["settings"]["bootstrap"] == 3 and res["settings"]["iterations"] == 4
    assert res["settings"]["bootstrap_mc"] is True
    with h5py.File(out / "ibu.h5") as f:
        assert f["x/unfolded"].shape == (4, 12) and f["x/bootstrap"].shape == (3, 12)
        assert json.loads(f["x"].attrs["settings"])["bootstrap_mc"] is True
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.h5", "mc.h5", "out"]


def test_omnifold_run(run: Run, files, tmp_path: Path):
    mc, data = files
    out = tmp_path / "of"
    rc, text, err = run(
        "unfold",
        "--mc",
        mc,
        "--data",
        data,
        "-o",
        out,
        "--iterations",
        1,
        "--classifier",
        "small",
        "--bootstrap",
        1,
        "--bootstrap-mc",
        "--warm-start",
        "--seed",
        5,
    )
    assert rc == 0, err
    assert "omnifold: 1 observables, 1 iterations" in text and "truth" in text
    w = read_weights(out / "weights.h5")
    assert w.push.shape == (2, 1500) and w.bootstrap.shape == (1, 1500)
    assert w.settings["seed"] == 5 and w.settings["classifier"]["name"] == "small"
    assert w.settings["bootstrap_mc"] is True and (w.bootstrap == 0).any()  # MC Poisson zeros
    assert w.settings["warm_start"] is True
    res = json.loads((out / "results.json").read_text())
    assert res["method"] == "omnifold" and res["timings_s"]["total"] > 0


def test_background_and_root_input(run: Run, tmp_path: Path, gaussian):
    mc = write_mc(tmp_path / "mc.root", gaussian(1500, 0.0, 1.0, seed=1))
    rng = np.random.default_rng(3)
    sig = gaussian(1000, 0.2, 0.8, seed=2)
    bkg_x = rng.uniform(-3, 3, 300)
    bkg = make_mc(np.zeros(300), bkg_x, columns=["x"], background=True)
    both = make_mc(
        np.concatenate([sig.gen[:, 0], np.full(300, -10.0)]),
        np.concatenate([sig.reco[:, 0], bkg_x]),
        pass_gen=np.concatenate([sig.pass_gen, np.zeros(300, bool)]),
        pass_reco=np.concatenate([sig.pass_reco, np.ones(300, bool)]),
        columns=["x"],
    )
    data = write_data(tmp_path / "data.h5", data_from_truth(both))
    write_mc(tmp_path / "bkg.h5", bkg)
    rc, _, err = run(
        "unfold",
        "--method",
        "ibu",
        "--mc",
        f"{mc}:events",
        "--data",
        data,
        "--background",
        tmp_path / "bkg.h5",
        "-o",
        tmp_path / "out",
        "--json",
    )
    assert rc == 0, err
    with h5py.File(tmp_path / "out" / "ibu.h5") as f:
        assert f["x/background"][()].sum() == pytest.approx(300)


def _write(path: Path, **arrays) -> Path:
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            f[k] = v
        f.attrs["columns"] = ["x", "y"][: np.asarray(arrays["reco"]).shape[1]]
    return path


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(0)
    g = rng.normal(size=(200, 1))
    nan = g.copy()
    nan[3] = np.nan
    return {
        "rows": _write(tmp_path / "rows.h5", gen=g, reco=g[:-1]),
        "nan": _write(tmp_path / "nan.h5", gen=nan, reco=g),
        "negative": _write(tmp_path / "neg.h5", gen=g, reco=g, weight=-np.ones(200)),
        "flags": _write(tmp_path / "flags.h5", gen=g, reco=g, pass_gen=np.ones(150, bool)),
        "wide": _write(tmp_path / "wide.h5", reco=rng.normal(size=(100, 2))),
        "few": _write(tmp_path / "few.h5", reco=g[:10]),
    }


#: (id, option -> bad file, further options, expected part of the message)
CASES = [
    ("rows", {"--mc": "rows"}, [], "rows.h5: gen has 200 rows but reco has 199"),
    ("nan", {"--mc": "nan"}, [], "nan.h5: gen: 1 rows passing gen hold NaN or inf"),
    ("negative", {"--mc": "negative"}, [], "neg.h5: weight: 200 negative weights"),
    ("flags", {"--mc": "flags"}, [], "flags.h5: pass_gen: expected 200 flags"),
    ("width", {"--data": "wide"}, [], "wide.h5: 2 observables but --mc"),
    ("few", {"--data": "few"}, [], "data: 10 events are; OmniFold needs at least 20"),
    ("iterations", {}, ["--iterations", "0"], "--iterations: expected an integer >= 1"),
    ("ensemble", {}, ["--ensemble", "0"], "--ensemble: expected an integer >= 1"),
    ("method", {}, ["--method", "svd"], "--method: expected one of omnifold, generative, ibu"),
    ("classifier", {}, ["--classifier", "huge"], "--classifier: unknown classifier preset"),
    ("column", {}, ["--columns", "y"], "no column 'y'; columns: x"),
    ("background", {"--background": "mc"}, ["--method", "generative"], "--background: the"),
    ("seed", {}, ["--seed", "-1"], "--seed"),
    # options the method does not use are refused, not silently ignored
    (
        "bootstrap-generative",
        {},
        ["--method", "generative", "--bootstrap", "3"],
        "--bootstrap: not used by --method generative (only by omnifold, ibu)",
    ),
    ("ensemble-ibu", {}, ["--method", "ibu", "--ensemble", "1"], "--ensemble: not used by"),
    ("bootstrap-mc-gen", {}, ["--method", "generative", "--bootstrap-mc"], "--bootstrap-mc: not"),
    ("bootstrap-mc-alone", {}, ["--bootstrap-mc"], "--bootstrap-mc: needs --bootstrap N"),
    ("warm-start-ibu", {}, ["--method", "ibu", "--warm-start"], "--warm-start: not used by"),
    ("efficiency", {}, ["--efficiency", "guess"], "efficiency: expected 'keep' or 'learn'"),
    ("efficiency-ibu", {}, ["--method", "ibu", "--efficiency", "learn"], "--efficiency: not"),
    ("ensemble-gen", {}, ["--method", "generative", "--ensemble", "2"], "--ensemble: not used"),
    ("bins-omnifold", {}, ["--bins", "10"], "--bins: not used by --method omnifold (only by ibu)"),
    ("bins-generative", {}, ["--method", "generative", "--bins", "10"], "--bins: not used by"),
    ("classifier-ibu", {}, ["--method", "ibu", "--classifier", "small"], "--classifier: not"),
    ("model-omnifold", {}, ["--model", "cfm"], "--model: not used by --method omnifold"),
]


@pytest.mark.parametrize(("case", "bad", "extra", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_writes_nothing(
    run: Run, files, tmp_path: Path, case, bad, extra, message
):
    mc, data = files
    paths = {**_bad_files(tmp_path), "mc": mc}
    before = sorted(p.name for p in tmp_path.iterdir())
    argv = {"--mc": mc, "--data": data, "-o": tmp_path / "out", "--classifier": "small"}
    argv.update({opt: paths[name] for opt, name in bad.items()})
    if "--classifier" in extra:
        del argv["--classifier"]
    rc, _, err = run("unfold", *[t for kv in argv.items() for t in kv], *extra)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert message in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no --out, no temporary


def test_out_must_be_new_or_empty(run: Run, files, tmp_path: Path):
    mc, data = files
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    rc, _, err = run(
        "unfold", "--method", "ibu", "--mc", mc, "--data", data, "-o", tmp_path / "out"
    )
    assert rc == 2 and "exists and is not an empty folder" in err
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]
    rc, _, err = run("unfold", "--method", "ibu", "--mc", mc, "--data", data, "-o", mc)
    assert rc == 2 and "is a file, expected a folder" in err


def test_generative_is_wired(run: Run, files, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The command hands the generative method its options and reports its samples (the
    method itself is tested in test_generative.py)."""
    import physgen.unfold.generative as generative

    seen: dict = {}

    class Result:
        def flat(self):
            return np.full((50, 1), 0.2), np.ones(50)

        def summary(self):
            return {"fake": True}

    def fake(mc, data, **kwargs):
        seen.update(kwargs)
        (kwargs["out"] / "samples.h5").write_bytes(b"")
        return Result()

    monkeypatch.setattr(generative, "generative_unfold", fake)
    mc, data = files
    rc, text, err = run(
        "unfold",
        "--method",
        "generative",
        "--mc",
        mc,
        "--data",
        data,
        "-o",
        tmp_path / "g",
        "--model",
        "cfm",
        "--seed",
        3,
        "--json",
    )
    assert rc == 0, err
    assert seen["model"] == "cfm" and seen["seed"] == 3 and seen["iterations"] == 1
    res = json.loads(text)
    assert res["settings"]["summary"] == {"fake": True}
    assert res["observables"]["x"]["unfolded"]["mean"] == pytest.approx(0.2)
    assert (tmp_path / "g" / "samples.h5").exists()


def test_ibu_report_scores_each_observable_on_its_own(run: Run, tmp_path: Path):
    """IBU unfolds one observable at a time: its entry for x (the MC reweighted in x only) is
    scored and drawn only for x, not for y, where it would just be the prior."""
    pytest.importorskip("matplotlib")
    pytest.importorskip("mplhep")
    rng = np.random.default_rng(4)

    def pairs(n: int, mu: float) -> tuple[np.ndarray, np.ndarray]:
        g = np.stack([rng.normal(mu, 1.0, n), rng.poisson(10 + 5 * mu, n)], 1).astype(float)
        return g, g + np.stack([0.4 * rng.normal(size=n), np.zeros(n)], 1)

    mc = write_mc(tmp_path / "mc.h5", make_mc(*pairs(3000, 0.0), columns=["x", "n"]))
    data = write_data(
        tmp_path / "data.h5", data_from_truth(make_mc(*pairs(2000, 0.4), columns=["x", "n"]))
    )
    out = tmp_path / "out"
    rc, _, err = run(
        "unfold", "--method", "ibu", "--mc", mc, "--data", data, "-o", out, "--bootstrap", 0, "-q"
    )
    assert rc == 0, err
    info = json.loads((out / "metrics.json").read_text())
    assert info["method_columns"] == {"IBU (x)": ["x"], "IBU (n)": ["n"]}
    table = info["metrics"]
    assert set(table["IBU (x)"]) == {"x"} and set(table["IBU (n)"]) == {"n"}
    for c in ("x", "n"):  # each observable moved from the prior towards the truth
        assert table[f"IBU ({c})"][c]["w1_x10"] < 0.5 * table["prior (MC)"][c]["w1_x10"]
    # the multiplicity got integer bins (edges on half-integers)
    e_n = np.array(info["bins"]["n"])
    assert np.allclose(e_n % 1, 0.5) and np.allclose(np.diff(e_n), np.diff(e_n)[0])
    with h5py.File(out / "ibu.h5") as f:
        edges = f["n/edges"][()]
        assert np.allclose(edges % 1, 0.5) and np.allclose(np.diff(edges) % 1, 0)
