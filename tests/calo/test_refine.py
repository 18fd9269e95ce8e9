"""DCTR refinement of showers: the refiner, weighted files, weighted evaluation, the CLI chain."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest

from clitools import Run, one_line_error
from physgen.calo.evaluate.classifier import run_classifier
from physgen.calo.evaluate.features import compute_features
from physgen.calo.evaluate.histograms import compare_histograms, histogram_specs
from physgen.calo.evaluate.pipeline import evaluate
from physgen.calo.io import ShowerWriter, open_showers, read_weights, write_showers
from physgen.calo.merge import merge_files
from physgen.calo.refine import ShowerRefiner, fit_refiner
from physgen.errors import ConfigError, DataFormatError
from physgen.metrics.classifier import ClassifierConfig
from showerdata import toy_showers

GEO = "1-photons"
SMALL = ClassifierConfig(name="small", hidden=64, n_hidden_layers=1, max_epochs=30, patience=5)


def _etot_ratio(e: np.ndarray, x: np.ndarray) -> np.ndarray:
    return np.asarray(x.sum(axis=1) / e[:, 0])


@pytest.fixture(scope="module")
def samples() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """A 'generated' model that deposits 3 % too much energy (1.5 sigma of the toy's E_tot/E_inc), and its reference."""
    return {
        "gen_train": toy_showers(3000, GEO, seed=1, scale=1.03),
        "ref_train": toy_showers(3000, GEO, seed=2),
        "gen_test": toy_showers(3000, GEO, seed=3, scale=1.03),
        "ref_test": toy_showers(3000, GEO, seed=4),
    }


@pytest.fixture(scope="module")
def refiner(samples: dict) -> ShowerRefiner:
    return fit_refiner(
        samples["gen_train"], samples["ref_train"], GEO, config=SMALL, seed=0, threads=1,
        model="cfm", digest="abc", inputs="cls-high",
    )  # fmt: skip


def test_refiner_moves_held_out_showers_onto_the_reference(
    samples: dict, refiner: ShowerRefiner
) -> None:
    e, x = samples["gen_test"]
    w = refiner.weights(e, x)
    assert w.shape == (len(e),) and np.all(w >= 0)
    for v in np.unique(e):  # mean 1 at every incident energy
        assert w[e[:, 0] == v].mean() == pytest.approx(1.0)
    r_gen = _etot_ratio(e, x)
    r_ref = _etot_ratio(*samples["ref_test"])
    before = abs(r_gen.mean() - r_ref.mean())
    after = abs(np.average(r_gen, weights=w) - r_ref.mean())
    assert after < 0.4 * before
    d = refiner.info["train_diagnostics"]
    assert 0.0 < d["ess_fraction"] <= 1.0


def test_weighted_classifier_and_histograms(samples: dict, refiner: ShowerRefiner) -> None:
    e, x = samples["gen_test"]
    w = refiner.weights(e, x)
    ref = samples["ref_test"]
    plain = run_classifier(ref, (e, x), GEO, "cls-high", SMALL, seed=0, threads=1)
    ones = run_classifier(
        ref, (e, x), GEO, "cls-high", SMALL, seed=0, threads=1, generated_weights=np.ones(len(e))
    )
    refined = run_classifier(
        ref, (e, x), GEO, "cls-high", SMALL, seed=0, threads=1, generated_weights=w
    )
    assert ones.weighted and not plain.weighted
    assert ones.auc == pytest.approx(plain.auc, abs=1e-9)  # unit weights change nothing
    assert plain.auc > 0.6
    assert refined.auc - 0.5 < 0.5 * (plain.auc - 0.5)

    fr, fg = compute_features(ref, GEO), compute_features((e, x), GEO)
    specs = [s for s in histogram_specs(fr) if s.key == "Etot_Einc"]
    s_plain = compare_histograms(fr, fg, specs)[0].separation_power
    s_ones = compare_histograms(fr, fg, specs, generated_weights=np.ones(len(e)))[0]
    s_ref = compare_histograms(fr, fg, specs, generated_weights=w)[0].separation_power
    assert s_ones.separation_power == pytest.approx(s_plain, rel=1e-12)
    assert s_ref < 0.5 * s_plain


def test_compatibility_checks(refiner: ShowerRefiner) -> None:
    refiner.check_compatible(GEO, "cfm", "abc")
    with pytest.raises(ConfigError, match="trained for geometry '1-photons', the run is '2'"):
        refiner.check_compatible("2", "cfm", "abc")
    with pytest.raises(ConfigError, match="trained for a cfm run, this run is flow"):
        refiner.check_compatible(GEO, "flow", "abc")
    with pytest.raises(ConfigError, match="another run of this model"):
        refiner.check_compatible(GEO, "cfm", "def")


def test_save_load(refiner: ShowerRefiner, samples: dict, tmp_path: Path) -> None:
    back = ShowerRefiner.load(refiner.save(tmp_path / "r.pt"))
    e, x = samples["gen_test"]
    np.testing.assert_allclose(back.weights(e[:200], x[:200]), refiner.weights(e[:200], x[:200]))
    assert back.geometry == GEO and back.inputs == "cls-high" and back.model == "cfm"


# ------------------------------------------------------------------ weighted files


def _weighted_file(path: Path, n: int, weights: np.ndarray, seed: int = 0) -> Path:
    e, x = toy_showers(n, GEO, seed=seed)
    with ShowerWriter(path, x.shape[1]) as w:
        w.append(e, x)
        w.set_weights(weights)
    return path


def test_weights_dataset_round_trip_and_merge(tmp_path: Path) -> None:
    a = _weighted_file(tmp_path / "a.h5", 50, np.linspace(0.5, 1.5, 50), seed=1)
    b = _weighted_file(tmp_path / "b.h5", 30, np.full(30, 2.0), seed=2)
    with open_showers(a) as f:
        assert f.has_weights and list(f.handle.keys()) == [
            "incident_energies",
            "showers",
            "weights",
        ]
    np.testing.assert_allclose(read_weights(a), np.linspace(0.5, 1.5, 50))
    m = merge_files([a, b], tmp_path / "m.h5", allow_mixed=True)
    np.testing.assert_allclose(read_weights(m), np.r_[np.linspace(0.5, 1.5, 50), np.full(30, 2.0)])
    plain = write_showers(tmp_path / "p.h5", *toy_showers(10, GEO, seed=3))
    assert read_weights(plain) is None
    with pytest.raises(DataFormatError, match="only some shards hold per-shower weights"):
        merge_files([a, plain], tmp_path / "m2.h5", allow_mixed=True)
    assert not (tmp_path / "m2.h5").exists()


@pytest.mark.parametrize(
    ("weights", "needle"),
    [
        (np.r_[np.nan, np.ones(9)], "NaN or inf"),
        (np.r_[-1.0, np.ones(9)], "negative weights"),
        (np.zeros(10), "all weights are 0"),
    ],
)
def test_bad_weights_are_refused(tmp_path: Path, weights: np.ndarray, needle: str) -> None:
    with pytest.raises(DataFormatError, match=needle), ShowerWriter(tmp_path / "w.h5", 368) as w:
        w.append(*toy_showers(10, GEO, seed=0))
        w.set_weights(weights)
    assert not (tmp_path / "w.h5").exists()
    p = write_showers(tmp_path / "raw.h5", *toy_showers(10, GEO, seed=0))
    with h5py.File(p, "a") as f:
        f.create_dataset("weights", data=weights)
    with pytest.raises(DataFormatError, match=needle):
        read_weights(p)


def test_evaluate_honours_file_weights(tmp_path: Path) -> None:
    n = 400
    ref = write_showers(tmp_path / "ref.h5", *toy_showers(n, GEO, seed=5))
    g = _weighted_file(tmp_path / "g.h5", n, np.ones(n), seed=6)
    gp = write_showers(tmp_path / "gp.h5", *toy_showers(n, GEO, seed=6))
    r_w = evaluate(g, ref, GEO, "hist,avg,fpd", tmp_path / "ew", plots=False).results
    r_p = evaluate(gp, ref, GEO, "hist,avg,fpd", tmp_path / "ep", plots=False).results
    assert r_w["weights"]["ess_fraction"] == pytest.approx(1.0)
    assert "weights" not in r_p
    assert r_w["separation_power"] == pytest.approx(r_p["separation_power"], rel=1e-12)
    assert r_w["fpd_kpd"]["fpd"] == pytest.approx(r_p["fpd_kpd"]["fpd"], rel=1e-9)
    # a weight that removes the showers of one energy moves that energy's histogram only
    e = open_showers(g).energies[()][:, 0]
    w = np.where(e == e.max(), 0.0, 1.0)
    r_0 = evaluate(gp, ref, GEO, "hist", tmp_path / "e0", plots=False, generated_weights=w)
    assert r_0.results["weights"]["source"] == "array"
    assert r_0.results["weights"]["ess_fraction"] < 1.0
    with pytest.raises(DataFormatError, match="3 weights for 400"):
        evaluate(gp, ref, GEO, "hist", tmp_path / "e1", plots=False, generated_weights=np.ones(3))
    assert not (tmp_path / "e1").exists()


# ------------------------------------------------------------------ the command line


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from physgen.cli.main import main

    d = tmp_path_factory.mktemp("refine")
    data = write_showers(d / "train.h5", *toy_showers(300, GEO, seed=0), attrs={"geometry": GEO})
    out = d / "run"
    args = ["train", "--model", "gan", "--geometry", GEO, "--preset", "tiny", "--epochs", "1"]
    assert main([*args, "--data", str(data), "--out", str(out), "--no-progress"]) == 0
    ref = write_showers(d / "ref.h5", *toy_showers(300, GEO, seed=9), attrs={"geometry": GEO})
    return out, ref


def test_cli_refine_generate_evaluate(run: Run, run_dir: tuple[Path, Path], tmp_path: Path) -> None:
    rdir, ref = run_dir
    refiner = tmp_path / "refiner.pt"
    rc, out, err = run("refine", rdir, "--reference", ref, "--out", refiner, "--seed", 1,
                       "--threads", 1, "--json")  # fmt: skip
    assert rc == 0, err
    info = json.loads(out)
    assert info["model"] == "gan" and info["geometry"] == GEO and info["inputs"] == "cls-low"
    gen = tmp_path / "gen.h5"
    rc, out, err = run("generate", rdir, "--energies-from", ref, "--out", gen, "--seed", 2,
                       "--refiner", refiner, "--no-progress")  # fmt: skip
    assert rc == 0, err
    assert "effective sample size" in out
    w = read_weights(gen)
    assert w is not None and w.shape == (300,) and w.mean() == pytest.approx(1.0)
    with open_showers(gen) as f:
        assert f.attrs["refiner"]["inputs"] == "cls-low"
    rc, out, err = run("evaluate", gen, ref, "--geometry", GEO, "--mode", "hist", "--out",
                       tmp_path / "ev", "--no-plots")  # fmt: skip
    assert rc == 0, err
    assert "weighted generated sample: effective sample size" in out
    assert "Weighted generated sample" in (tmp_path / "ev" / "report.html").read_text()
    rc, out, err = run("evaluate", gen, ref, "--geometry", GEO, "--mode", "hist", "--out",
                       tmp_path / "ev2", "--no-plots", "--no-weights")  # fmt: skip
    assert rc == 0 and "weighted" not in out


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ({"geometry": "2"}, "trained for geometry '2'"),
        ({"model": "cfm"}, "trained for a cfm run, this run is gan"),
        ({"run_digest": "0" * 64}, "another run of this model"),
        ({"kind": "something"}, "not a shower refiner"),
    ],
)
def test_cli_refiner_of_another_run(
    run: Run, run_dir: tuple[Path, Path], tmp_path: Path, edit: dict, needle: str
) -> None:
    rdir, ref = run_dir
    rf = fit_refiner(toy_showers(100, GEO, seed=1), toy_showers(100, GEO, seed=2), GEO,
                     config=SMALL, model="gan")  # fmt: skip
    rf.info.update(edit)
    p = rf.save(tmp_path / "r.pt")
    out = tmp_path / "g.h5"
    rc, _, err = run("generate", rdir, "--energies-from", ref, "--out", out, "--refiner", p)
    one_line_error(rc, err, needle)
    assert not out.exists()


def test_cli_refine_bad_input(run: Run, run_dir: tuple[Path, Path], tmp_path: Path) -> None:
    rdir, ref = run_dir
    out = tmp_path / "r.pt"
    rc, _, err = run("refine", rdir, "--reference", ref, "--out", out, "--clip", 0.5)
    one_line_error(rc, err, "--clip")
    rc, _, err = run("refine", rdir, "--reference", ref, "--out", out, "--inputs", "voxels")
    one_line_error(rc, err, "--inputs")
    other = write_showers(tmp_path / "g2.h5", *toy_showers(20, "2", seed=0))
    rc, _, err = run("refine", rdir, "--reference", other, "--out", out)
    one_line_error(rc, err, "6480 voxels")
    assert not out.exists()


def test_cli_evaluate_refuses_bad_weights(run: Run, tmp_path: Path) -> None:
    ref = write_showers(tmp_path / "ref.h5", *toy_showers(60, GEO, seed=1))
    bad = write_showers(tmp_path / "bad.h5", *toy_showers(60, GEO, seed=2))
    with h5py.File(bad, "a") as f:
        f.create_dataset("weights", data=np.r_[np.inf, np.ones(59)])
    out = tmp_path / "ev"
    rc, _, err = run("evaluate", bad, ref, "--geometry", GEO, "--mode", "hist", "--out", out,
                     "--no-plots")  # fmt: skip
    one_line_error(rc, err, "weights", "NaN or inf")
    assert not out.exists()
    # --no-weights judges the showers and never reads the bad weights
    rc, _, err = run("evaluate", bad, ref, "--geometry", GEO, "--mode", "hist", "--out", out,
                     "--no-plots", "--no-weights")  # fmt: skip
    assert rc == 0, err
