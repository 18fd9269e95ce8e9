"""``physgen evaluate --ensemble``: bands on every histogram, the spread of separation powers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from clitools import Run, one_line_error
from physgen.calo.evaluate.pipeline import evaluate
from physgen.calo.io import write_showers
from physgen.errors import ConfigError, DataFormatError
from showerdata import toy_showers

GEO = "1-photons"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("ens")
    out = {"ref": write_showers(d / "ref.h5", *toy_showers(500, GEO, seed=1))}
    for k, scale in enumerate((1.00, 1.02, 1.04)):
        out[f"m{k}"] = write_showers(
            d / f"m{k}.h5", *toy_showers(500, GEO, seed=10 + k, scale=scale)
        )
    out["geo2"] = write_showers(d / "g2.h5", *toy_showers(20, "2", seed=0))
    return out


def test_bands_and_spread(files: dict[str, Path], tmp_path: Path) -> None:
    members = [files["m0"], files["m1"], files["m2"]]
    res = evaluate(
        files["m0"], files["ref"], GEO, "hist", tmp_path / "ev", ensemble=members, plots=True
    )
    ens = res.results["ensemble"]
    assert ens["n_members"] == 3
    sep = ens["separation_power"]
    assert set(sep) == set(res.results["separation_power"])
    # the members differ in their energy scale: E_tot/E_inc's separation power spreads
    assert sep["Etot_Einc"]["std"] > 0.1 * sep["Etot_Einc"]["mean"]
    assert (tmp_path / "ev" / "Etot_Einc_dataset_1-photons.png").stat().st_size > 10_000
    assert res.results["ensemble_members"] == [str(m) for m in members]


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"ensemble": ["m0"]}, ConfigError, "needs >= 2 members"),
        ({"ensemble": ["m0", "m1"], "modes": "avg"}, ConfigError, "add hist to --mode"),
        ({"ensemble": ["m0", "geo2"]}, DataFormatError, "6480 voxels"),
    ],
)
def test_bad_ensembles(
    files: dict[str, Path], tmp_path: Path, kwargs: dict, error: type, needle: str
) -> None:
    members = [files[k] for k in kwargs["ensemble"]]
    with pytest.raises(error, match=needle):
        evaluate(files["m0"], files["ref"], GEO, kwargs.get("modes", "hist"), tmp_path / "o",
                 ensemble=members, plots=False)  # fmt: skip
    assert not (tmp_path / "o").exists()


def _train(run: Run, data: Path, out: Path, seed: int, geometry: str = GEO) -> Path:
    rc, _, err = run("train", "--model", "gan", "--geometry", geometry, "--preset", "tiny",
                     "--epochs", 1, "--seed", seed, "--data", data, "--out", out, "--no-progress")  # fmt: skip
    assert rc == 0, err
    return out


def test_cli_ensemble_of_runs(run: Run, files: dict[str, Path], tmp_path: Path) -> None:
    data = write_showers(tmp_path / "train.h5", *toy_showers(300, GEO, seed=0))
    runs = [_train(run, data, tmp_path / f"run{s}", s) for s in (1, 2)]
    spec = ",".join(str(r) for r in runs)
    rc, out, err = run("evaluate", files["m0"], files["ref"], "--geometry", GEO, "--mode", "hist",
                       "--out", tmp_path / "ev", "--no-plots", "--ensemble", spec)  # fmt: skip
    assert rc == 0, err
    assert "ensemble of 2 members" in out
    r = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert r["ensemble"]["n_members"] == 2
    assert not list(tmp_path.glob(".ensemble-*"))  # generated members are cleaned up
    # a member of another geometry: one line, exit 2, nothing written
    data2 = write_showers(tmp_path / "t2.h5", *toy_showers(60, "2", seed=0))
    other = _train(run, data2, tmp_path / "run2geo", 3, geometry="2")
    rc, _, err = run("evaluate", files["m0"], files["ref"], "--geometry", GEO, "--mode", "hist",
                     "--out", tmp_path / "bad", "--ensemble", f"{runs[0]},{other}")  # fmt: skip
    one_line_error(rc, err, "geometry '2' run", "evaluation is geometry '1-photons'")
    assert not (tmp_path / "bad").exists()
    assert np.isfinite(r["separation_power"]["Etot_Einc"])


def test_cli_bayesian_flow_draws(run: Run, files: dict[str, Path], tmp_path: Path) -> None:
    data = write_showers(tmp_path / "train.h5", *toy_showers(300, GEO, seed=0))
    cfg = tmp_path / "bayes.yaml"
    cfg.write_text("model_config:\n  bayesian_layers: 1\n")
    rdir = tmp_path / "bayes"
    rc, _, err = run("train", "--model", "flow", "--geometry", GEO, "--preset", "tiny", "--epochs",
                     1, "--config", cfg, "--data", data, "--out", rdir, "--no-progress")  # fmt: skip
    assert rc == 0, err
    from physgen.calo.io import read_showers

    outs = {}
    for draw in (1, 2):
        out = tmp_path / f"g{draw}.h5"
        rc, _, err = run("generate", rdir, "--energies-from", files["ref"], "--n", 50, "--out",
                         out, "--seed", 0, "--weight-draw", draw, "--no-progress")  # fmt: skip
        assert rc == 0, err
        outs[draw] = read_showers(out)[1]
    plain = tmp_path / "g0.h5"
    assert run("generate", rdir, "--energies-from", files["ref"], "--n", 50, "--out", plain,
               "--seed", 0, "--no-progress")[0] == 0  # fmt: skip
    # each draw differs from the mean weights and from the other draw
    assert not np.array_equal(outs[1], read_showers(plain)[1])
    assert not np.array_equal(outs[1], outs[2])
    # the same draw twice gives the same showers
    again = tmp_path / "g1b.h5"
    assert run("generate", rdir, "--energies-from", files["ref"], "--n", 50, "--out", again,
               "--seed", 0, "--weight-draw", 1, "--no-progress")[0] == 0  # fmt: skip
    np.testing.assert_array_equal(outs[1], read_showers(again)[1])
    gan = _train(run, data, tmp_path / "gan", 1)
    rc, _, err = run("generate", gan, "--energies-from", files["ref"], "--n", 5, "--out",
                     tmp_path / "x.h5", "--weight-draw", 1)  # fmt: skip
    one_line_error(rc, err, "--weight-draw", "Bayesian flow")
    assert not (tmp_path / "x.h5").exists()
