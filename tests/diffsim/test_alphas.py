"""The one-sample alpha_s fit: closure at small size, the smooth moved chi2, bad input, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from physgen.cli.main import main
from physgen.diffsim.alphas import Binning, chi2_curve, fit_alpha_s, pseudo_data
from physgen.errors import ConfigError


@pytest.fixture(scope="module")
def data() -> np.ndarray:
    return pseudo_data(0.13, n=3000, seed=11)


def test_closure_at_small_size(data: np.ndarray) -> None:
    fit = fit_alpha_s(data, n_mc=3000, seed=11, bootstrap=20)
    assert abs(fit.alpha_s - 0.13) < 3 * fit.error
    assert 0.0005 < fit.error < 0.01
    assert fit.path[0] == 0.118 and len(fit.path) <= 8
    assert fit.chi2 < 2 * fit.ndf
    # the bootstrap holds the correlations of the four observables: wider than the curvature
    assert fit.error > fit.curvature_error


def test_moved_chi2_curve_is_smoother_than_independent_samples(data: np.ndarray) -> None:
    alphas = np.linspace(0.124, 0.136, 7)
    moved = chi2_curve(data, alphas, n_mc=3000, seed=12)
    grid = chi2_curve(data, alphas, n_mc=3000, seed=12, independent=True)
    assert 1 <= int(np.argmin(moved)) <= 5  # minimum near the truth

    def rough(c: np.ndarray) -> float:  # scatter about a parabola
        return float(np.std(c - np.polyval(np.polyfit(alphas, c, 2), alphas)))

    assert rough(moved) < rough(grid)


def test_binning_is_equal_probability(data: np.ndarray) -> None:
    b = Binning.from_data(data, bins=10)
    counts = b.counts(data).numpy().reshape(4, -1)
    tau_counts = counts[0]
    assert tau_counts.sum() == pytest.approx(3000, rel=1e-6)
    assert tau_counts[1:].std() / tau_counts[1:].mean() < 0.25


def test_fit_refuses_bad_input(data: np.ndarray) -> None:
    with pytest.raises(ConfigError, match="NaN"):
        bad = data.copy()
        bad[0, 0] = np.nan
        fit_alpha_s(bad, n_mc=3000)
    with pytest.raises(ConfigError, match="shape"):
        fit_alpha_s(data[:, :2], n_mc=3000)
    with pytest.raises(ConfigError, match="multiplicity"):
        fit_alpha_s(data[:, :1], observables=("multiplicity",))
    with pytest.raises(ConfigError, match="start"):
        fit_alpha_s(data, start=0.3)
    with pytest.raises(ConfigError, match="n_mc"):
        fit_alpha_s(data, n_mc=10)


def test_cli_fit_alphas_json(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["diffsim", "fit-alphas", "--pseudo-data-alphas", "0.125", "--n", "2000",
                 "--seed", "1", "--bootstrap", "10", "--observables", "tau,c", "--json"])  # fmt: skip
    assert code == 0
    res = json.loads(capsys.readouterr().out)
    assert abs(res["alpha_s"] - 0.125) < 4 * res["error"] and res["error"] > 0
    assert res["n_data"] == 2000 and res["observables"] == ["tau", "c"]


def test_cli_fit_alphas_from_a_data_file(tmp_path: Path, data: np.ndarray,
                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    f = tmp_path / "shapes.npz"
    np.savez(f, tau=data[:, 0], c=data[:, 2])
    out = tmp_path / "fit"
    code = main(["diffsim", "fit-alphas", "--data", str(f), "--observables", "tau,c",
                 "--bootstrap", "5", "--curve-points", "3", "--out", str(out)])  # fmt: skip
    assert code == 0
    res = json.loads((out / "results.json").read_text())
    assert res["truth"] is None and len(res["curves"]["moved"]) == 3
    assert "alpha_s(M_Z) =" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--pseudo-data-alphas", "0.3"], "--pseudo-data-alphas must lie in"),
        ([], "exactly one of"),
        (["--pseudo-data-alphas", "0.12", "--data", "x.npz"], "exactly one of"),
        (["--pseudo-data-alphas", "0.12", "--sqrt-s", "1.5"], "sqrt_s"),
        (["--pseudo-data-alphas", "0.12", "--observables", "tau,sphericity"], "observables"),
        (["--pseudo-data-alphas", "0.12", "--n", "10"], "--n must be at least"),
        (["--pseudo-data-alphas", "0.12", "--curve-points", "1"], "--curve-points"),
    ],
)
def test_cli_bad_input_one_line_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    out = tmp_path / "out"
    code = main(["diffsim", "fit-alphas", *args, "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1
    assert not out.exists()


def test_cli_data_file_without_the_observables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    f = tmp_path / "shapes.npz"
    np.savez(f, thrust=np.ones(500))
    assert main(["diffsim", "fit-alphas", "--data", str(f)]) == 2
    err = capsys.readouterr().err
    assert "tau" in err and "thrust" in err and err.count("\n") == 1


def test_cli_reads_hdf5_columns_by_name(
    tmp_path: Path, data: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    import h5py

    f = tmp_path / "shapes.h5"
    with h5py.File(f, "w") as h:
        h["one_minus_thrust"] = data[:, 0]
        h["c_param"] = data[:, 2]
    args = ["diffsim", "fit-alphas", "--data", str(f), "--observables", "tau,c", "--bootstrap", "0"]
    assert main([*args, "--columns", "one_minus_thrust,c_param", "--json"]) == 0
    assert abs(json.loads(capsys.readouterr().out)["alpha_s"] - 0.13) < 0.01
    assert main([*args, "--columns", "one_minus_thrust"]) == 2  # one column for two observables
    assert "--columns" in capsys.readouterr().err
    assert main(["diffsim", "fit-alphas", "--pseudo-data-alphas", "0.12", "--columns", "a"]) == 2
    assert "--columns needs --data" in capsys.readouterr().err
