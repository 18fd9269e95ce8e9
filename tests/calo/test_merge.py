"""``physgen merge``: provenance of every shard, and the README's claim that a complete shard set
merged in order is the unsharded run's file apart from the attributes ``merge`` adds."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from clitools import Run
from physgen.calo.io import open_showers, raw_attrs, write_showers
from physgen.calo.merge import ADDED_ATTRS, merge_files
from physgen.cli.main import main
from physgen.errors import DataFormatError
from showerdata import make_showers, toy_showers

N = 2100  # three seed blocks of 1000: shards of 1000, 1000 and 100 showers


@pytest.fixture(scope="module")
def cfm_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny cfm trained for one epoch through the command line."""
    root = tmp_path_factory.mktemp("merge")
    e, x = toy_showers(300, "1-photons", seed=0)
    data = write_showers(root / "train.h5", e, x, attrs={"geometry": "1-photons"})
    out = root / "run"
    argv = ["train", "--model", "cfm", "--geometry", "1-photons", "--preset", "tiny"]
    argv += ["--epochs", "1", "--data", str(data), "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    return out


def _generate(run_dir: Path, out: Path, shard: str | None = None) -> Path:
    argv = ["generate", str(run_dir), "--energy", "1GeV:100GeV", "--n", str(N), "--seed", "7"]
    argv += ["--steps", "2", "--solver", "euler", "--out", str(out), "--no-progress"]
    if shard is not None:
        argv += ["--shard", shard]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def unsharded(cfm_run: Path) -> Path:
    return _generate(cfm_run, cfm_run.parent / "full.h5")


@pytest.fixture(scope="module")
def thirds(cfm_run: Path) -> list[Path]:
    return [_generate(cfm_run, cfm_run.parent / f"s{i}.h5", f"{i}/3") for i in (1, 2, 3)]


def _layout(ds: h5py.Dataset) -> tuple[Any, ...]:
    return (ds.dtype, ds.shape, ds.chunks, ds.compression, ds.compression_opts, ds.shuffle)


def _same_raw(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return type(a) is type(b) and bool(np.array_equal(a, b)) and a.dtype == b.dtype
    return type(a) is type(b) and bool(a == b)


def _assert_same_as_unsharded(merged: Path, unsharded: Path) -> None:
    with h5py.File(merged) as m, h5py.File(unsharded) as u:
        assert sorted(m.keys()) == sorted(u.keys()) == ["incident_energies", "showers"]
        for key in u:
            assert _layout(m[key]) == _layout(u[key]), key
            assert m[key][()].tobytes() == u[key][()].tobytes(), key
        am, au = raw_attrs(m), raw_attrs(u)
    assert sorted(set(am) - set(au)) == sorted(ADDED_ATTRS)  # the documented list
    assert set(au) <= set(am)
    for key, value in au.items():
        assert _same_raw(am[key], value), (key, am[key], value)


def test_three_shards_merge_to_the_unsharded_file(
    run: Run, unsharded: Path, thirds: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "merged.h5"
    rc, text, err = run("merge", *thirds, "--out", out)
    assert rc == 0, err
    assert f"{N} showers from 3 shards" in text
    _assert_same_as_unsharded(out, unsharded)
    with open_showers(out) as f:
        assert f.attrs["shard"] == "1/1" and f.attrs["rows"] == [0, N] and f.attrs["seed"] == 7
        shards = f.attrs["shards"]
        assert f.attrs["merged_from"] == [str(p) for p in thirds]
    # every shard's source, rows, seed and provenance
    assert [s["path"] for s in shards] == [str(p) for p in thirds]
    assert [s["n_showers"] for s in shards] == [1000, 1000, 100]
    assert [s["rows"] for s in shards] == [[0, 1000], [1000, 2000], [2000, 2100]]
    assert [s["seed"] for s in shards] == [7, 7, 7]
    assert [s["provenance"]["shard"] for s in shards] == ["1/3", "2/3", "3/3"]
    assert [s["provenance"]["rows"] for s in shards] == [s["rows"] for s in shards]


def test_two_uneven_shards_merge_to_the_unsharded_file(
    cfm_run: Path, unsharded: Path, tmp_path: Path
) -> None:
    halves = [_generate(cfm_run, tmp_path / f"h{i}.h5", f"{i}/2") for i in (1, 2)]
    out = merge_files(halves, tmp_path / "merged.h5")
    _assert_same_as_unsharded(out, unsharded)


def test_shards_out_of_order_are_not_called_the_unsharded_run(
    thirds: list[Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="physgen"):
        out = merge_files([thirds[1], thirds[0], thirds[2]], tmp_path / "m.h5")
    assert "not the complete set" in caplog.text
    with open_showers(out) as f:
        assert "shard" not in f.attrs and "rows" not in f.attrs  # they differ: per shard only
        assert f.attrs["seed"] == 7  # shared by all
        assert [s["rows"] for s in f.attrs["shards"]] == [[0, 1000], [1000, 2000], [2000, 2100]]
        assert [s["provenance"]["rows"] for s in f.attrs["shards"]][:2] == [[1000, 2000], [0, 1000]]
    partial = merge_files(thirds[:2], tmp_path / "p.h5")  # a partial set: no claim either
    with open_showers(partial) as f:
        assert "shard" not in f.attrs and f.n_showers == 2000


def test_the_same_shard_twice_under_two_names_is_refused(
    thirds: list[Path], tmp_path: Path
) -> None:
    copy = tmp_path / "copy.h5"
    shutil.copyfile(thirds[0], copy)
    with pytest.raises(DataFormatError, match="same seed and provenance"):
        merge_files([thirds[0], copy], tmp_path / "m.h5")
    assert not (tmp_path / "m.h5").exists()


def test_simulate_style_shards_record_each_seed(run: Run, tmp_path: Path) -> None:
    paths = []
    for seed, n in ((1, 30), (2, 20), (5, 7)):
        e, x = make_showers(n, 368, seed=seed)
        attrs = {"geometry": "1-photons", "seed": seed, "generator": "physgen simulate"}
        paths.append(write_showers(tmp_path / f"seed{seed}.h5", e, x, attrs=attrs))
    out = tmp_path / "m.h5"
    rc, _, err = run("merge", *paths, "--out", out)
    assert rc == 0, err
    with open_showers(out) as f:
        assert "seed" not in f.attrs  # not shared: per shard
        assert f.attrs["generator"] == "physgen simulate"
        shards = f.attrs["shards"]
    assert [s["seed"] for s in shards] == [1, 2, 5]
    assert [s["rows"] for s in shards] == [[0, 30], [30, 50], [50, 57]]
    assert [Path(s["path"]).name for s in shards] == ["seed1.h5", "seed2.h5", "seed5.h5"]


def test_dtypes_and_attribute_types_are_kept(tmp_path: Path) -> None:
    parts = []
    for i in range(2):
        e, x = make_showers(5, 368, seed=i)
        p = write_showers(tmp_path / f"p{i}.h5", e.astype(np.float32), x)
        with h5py.File(p, "a") as h:
            h.attrs["sampling_fraction"] = np.float32(0.25)
            h.attrs["flags"] = np.array([1, 2, 3], dtype=np.int16)
        parts.append(p)
    out = merge_files(parts, tmp_path / "m.h5")
    with h5py.File(out) as h:
        assert h["incident_energies"].dtype == np.float32  # not promoted to float64
        assert h["showers"].dtype == np.float32
        assert type(h.attrs["sampling_fraction"]) is np.float32
        np.testing.assert_array_equal(h.attrs["flags"], [1, 2, 3])
        assert h.attrs["flags"].dtype == np.int16
