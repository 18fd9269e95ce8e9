"""Unfolding inputs: MC pairs and data, their files (HDF5, ROOT) and the one-line errors."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from physgen.errors import ConfigError, DataFormatError
from physgen.unfold import (
    check_compatible,
    data_from_truth,
    make_data,
    make_mc,
    read_data,
    read_mc,
    write_data,
    write_mc,
)


def _mc(n: int = 50, d: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    gen = rng.normal(size=(n, d))
    reco = gen + 0.1 * rng.normal(size=(n, d))
    pass_gen = rng.random(n) > 0.2
    pass_reco = rng.random(n) > 0.2
    return make_mc(
        gen,
        reco,
        pass_gen=pass_gen,
        pass_reco=pass_reco,
        weight=rng.uniform(0.5, 2.0, n),
        columns=["m", "M"][:d] if d <= 2 else None,
    )


def test_defaults_and_column_lookup():
    mc = make_mc(np.zeros(5), np.ones(5))
    assert mc.gen.shape == (5, 1) and mc.columns == ("x0",)
    assert mc.pass_gen.all() and mc.pass_reco.all() and (mc.weight == 1).all()
    two = _mc()
    assert two.column_index("M") == 1 and two.column_index(-1) == 1
    with pytest.raises(ConfigError, match="'w'"):
        two.column_index("w")


@pytest.mark.parametrize("suffix", [".h5", ".root"])
def test_mc_round_trip(tmp_path: Path, suffix: str):
    mc = _mc()
    path = write_mc(tmp_path / f"mc{suffix}", mc)
    back = read_mc(path)
    assert back.columns == ("m", "M")
    for name in ("gen", "reco", "pass_gen", "pass_reco", "weight"):
        np.testing.assert_array_equal(getattr(back, name), getattr(mc, name))
    one = read_mc(path, columns=["M"])
    assert one.columns == ("M",)
    np.testing.assert_array_equal(one.gen[:, 0], mc.gen[:, 1])
    with pytest.raises(DataFormatError, match=r"mc\..*: no column 'w'; columns: m, M"):
        read_mc(path, columns=["w"])
    assert [p.name for p in tmp_path.iterdir()] == [f"mc{suffix}"]  # no temporary left


@pytest.mark.parametrize("suffix", [".h5", ".root"])
def test_pseudo_data_keep_their_truth(tmp_path: Path, suffix: str):
    truth = _mc(seed=3)
    data = data_from_truth(truth)
    assert data.n_events == int(truth.pass_reco.sum()) and data.truth is truth
    path = write_data(tmp_path / f"data{suffix}", data)
    back = read_data(path)
    assert back.truth is not None
    np.testing.assert_array_equal(back.reco, truth.reco[truth.pass_reco])
    np.testing.assert_array_equal(back.weight, truth.weight[truth.pass_reco])
    np.testing.assert_array_equal(back.truth.gen, truth.gen)
    plain = write_data(tmp_path / f"real{suffix}", make_data(data.reco, columns=("m", "M")))
    real = read_data(plain)
    assert real.truth is None and real.columns == ("m", "M")
    np.testing.assert_array_equal(real.reco, data.reco)


def test_root_tree_by_name(tmp_path: Path):
    path = write_mc(tmp_path / "mc.root", _mc())
    assert read_mc(f"{path}:events").n_events == 50
    with pytest.raises(ConfigError, match="no TTree 'nope'"):
        read_mc(path, tree="nope")


def test_failing_rows_may_hold_anything():
    gen = np.array([[0.0], [np.nan], [2.0], [np.inf]])
    reco = np.array([[np.nan], [1.0], [2.0], [3.0]])
    mc = make_mc(gen, reco, pass_gen=[1, 0, 1, 0], pass_reco=[0, 1, 1, 1])
    assert np.isfinite(mc.gen).all() and np.isfinite(mc.reco).all()
    assert mc.gen[1, 0] == 0.0 and mc.reco[0, 0] == 0.0  # the dummies, made finite
    assert mc.reco[1, 0] == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reco": np.zeros((9, 2))}, "mc: gen has 10 rows but reco has 9"),
        ({"reco": np.zeros((10, 3))}, "gen has 2 observables but reco has 3"),
        ({"gen": np.full((10, 2), np.nan)}, "gen: 10 rows passing gen hold NaN or inf"),
        ({"pass_gen": np.ones(9)}, "pass_gen: expected 10 flags"),
        ({"pass_reco": np.full(10, 2)}, "pass_reco: expected booleans or 0/1"),
        ({"weight": -np.ones(10)}, "10 negative weights .* only for a background"),
        ({"weight": np.ones(7)}, "weight: expected 10 weights"),
        ({"weight": np.full(10, np.nan)}, "weight: contains NaN"),
        ({"gen": np.zeros((0, 2)), "reco": np.zeros((0, 2))}, "gen: no events"),
        ({"columns": ["a", "a"]}, "distinct"),
        ({"columns": ["a"]}, "1 column names for 2 observables"),
    ],
)
def test_bad_mc(kwargs, match):
    args = {"gen": np.zeros((10, 2)), "reco": np.zeros((10, 2))}
    args.update(kwargs)
    with pytest.raises(DataFormatError, match=match):
        make_mc(args.pop("gen"), args.pop("reco"), **args)


def test_background_may_have_negative_weights():
    bkg = make_mc(np.zeros(4), np.zeros(4), weight=[1.0, -0.5, 2.0, -1.0], background=True)
    assert bkg.weight.min() == -1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"reco": np.array([[np.inf, 0.0]])}, "1 rows hold NaN or inf"),
        ({"weight": [-1.0]}, "negative weights"),
        ({"weight": [0.0]}, "sum to 0"),
    ],
)
def test_bad_data(kwargs, match):
    args = {"reco": np.zeros((1, 2))}
    args.update(kwargs)
    with pytest.raises(DataFormatError, match=match):
        make_data(args.pop("reco"), **args)


def test_compatibility_of_mc_and_data():
    mc = _mc()
    check_compatible(mc, make_data(np.zeros((3, 2)), columns=("m", "M")))
    with pytest.raises(DataFormatError, match="data: 1 observables but mc has 2"):
        check_compatible(mc, make_data(np.zeros((3, 1))))
    with pytest.raises(DataFormatError, match=r"d\.h5: columns m, w differ from mc\.h5's m, M"):
        check_compatible(
            mc, make_data(np.zeros((3, 2)), columns=("m", "w")), names=("mc.h5", "d.h5", "")
        )


def test_bad_files(tmp_path: Path):
    with pytest.raises(DataFormatError, match="no such file"):
        read_mc(tmp_path / "missing.h5")
    with pytest.raises(ConfigError, match=r"unknown file type '\.csv'"):
        read_mc(tmp_path / "mc.csv")
    with h5py.File(tmp_path / "reco_only.h5", "w") as f:
        f["reco"] = np.zeros((5, 2))
    with pytest.raises(
        DataFormatError, match=r"reco_only\.h5: needs the datasets 'gen' and 'reco'"
    ):
        read_mc(tmp_path / "reco_only.h5")
    assert read_data(tmp_path / "reco_only.h5").columns == ("x0", "x1")
    with h5py.File(tmp_path / "cols.h5", "w") as f:
        f["gen"] = f["reco"] = np.zeros((5, 2))
        f.attrs["columns"] = ["a"]
    with pytest.raises(DataFormatError, match="'columns' names 1 of 2"):
        read_mc(tmp_path / "cols.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(DataFormatError, match=r"text\.h5: cannot read as HDF5"):
        read_mc(tmp_path / "text.h5")
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        f["gen"] = f["reco"] = np.full((5, 1), np.nan)
    with pytest.raises(DataFormatError, match=r"nan.h5: gen: 5 rows passing gen hold NaN"):
        read_mc(tmp_path / "nan.h5")
