"""``physgen convert``: CaloChallenge HDF5 <-> ROOT TTree <-> NumPy .npz, bit for bit, streamed."""

from __future__ import annotations

import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from clitools import Run
from physgen.calo.convert import convert_showers, read_any
from physgen.calo.formats import open_source
from physgen.calo.io import raw_attrs, write_showers
from physgen.calo.provenance import provenance_from_json, provenance_to_json
from physgen.errors import ConfigError, DataFormatError, PhysgenError
from showerdata import make_showers

uproot = pytest.importorskip("uproot")

N_VOX = 368  # dataset 1 photons


def _same(a: Any, b: Any) -> bool:
    """Equal value and type (arrays: dtype and elements)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        nan = a.dtype.kind == "f" if isinstance(a, np.ndarray) else False
        return (
            type(a) is type(b) and a.dtype == b.dtype and bool(np.array_equal(a, b, equal_nan=nan))
        )
    if isinstance(a, float) and np.isnan(a):
        return type(a) is type(b) and bool(np.isnan(b))
    return type(a) is type(b) and bool(a == b)


def _attrs(path: Path) -> dict[str, Any]:
    with h5py.File(path) as h:
        return raw_attrs(h)


def _assert_same_attrs(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert sorted(a) == sorted(b)
    for k in a:
        assert _same(a[k], b[k]), (k, a[k], b[k])


def _source(path: Path, e: np.ndarray, x: np.ndarray) -> Path:
    """A physgen-style file: provenance of every attribute type physgen meets."""
    p = write_showers(
        path,
        e,
        x,
        compression=None,
        attrs={"geometry": "1-photons", "seed": 11, "config": {"engine": {"a": 1}}},
    )
    with h5py.File(p, "a") as h:
        h.attrs["sampling_fraction"] = np.float32(0.0123)
        h.attrs["flags"] = np.array([1, -2, 3], dtype=np.int16)
        h.attrs["clipped"] = True
        h.attrs["weight"] = 1.5
        h.attrs["label"] = np.bytes_(b"fixed")
    return p


# ------------------------------------------------------------------ round trips


float32_voxels = st.one_of(
    st.just(-0.0),
    st.just(0.0),
    st.floats(min_value=0, allow_infinity=False, width=32, allow_subnormal=True),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n=st.integers(1, 12),
    data=st.data(),
    energy_dtype=st.sampled_from([np.float32, np.float64]),
    chain=st.sampled_from(
        [("root",), ("npz",), ("root", "npz"), ("npz", "root"), ("npz", "h5", "root")]
    ),
    batch=st.sampled_from([None, 1, 5]),
)
def test_round_trip_is_bit_for_bit(
    tmp_path: Path,
    n: int,
    data: st.DataObject,
    energy_dtype: type,
    chain: tuple[str, ...],
    batch: int | None,
) -> None:
    x = data.draw(hnp.arrays(np.float32, (n, N_VOX), elements=float32_voxels))
    e = data.draw(
        hnp.arrays(
            energy_dtype,
            (n, 1),
            elements=st.floats(2.0**-10, 2.0**24, width=32 if energy_dtype is np.float32 else 64),
        )
    )
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    start = _source(folder / "start.h5", e, x)
    prev = start
    for i, fmt in enumerate((*chain, "h5")):
        prev = convert_showers(prev, folder / f"{i}.{fmt}", batch_size=batch).path
        e2, x2, _ = read_any(prev)
        assert x2.dtype == np.float32 and e2.dtype == energy_dtype and e2.shape == (n, 1)
        assert x2.tobytes() == x.tobytes()  # -0.0, subnormals and all
        assert e2.tobytes() == e.tobytes()
    _assert_same_attrs(_attrs(prev), _attrs(start))


attr_values = st.one_of(
    st.text(max_size=20),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.booleans(),
    st.floats(width=32, allow_nan=False).map(np.float32),
    st.integers(-(2**15), 2**15 - 1).map(np.int16),
    hnp.arrays(st.sampled_from([np.int32, np.float64, np.uint8]), st.integers(1, 4)),
    st.binary(max_size=8).map(lambda b: np.bytes_(b.rstrip(b"\0") or b"x")),
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=10), attr_values, max_size=6))
def test_provenance_json_round_trip_keeps_types(attrs: dict[str, Any]) -> None:
    back = provenance_from_json(provenance_to_json(attrs))
    assert sorted(back) == sorted(attrs)
    for k, v in attrs.items():
        want = v
        if isinstance(v, (bool, np.bool_)):
            want = bool(v)
        assert _same(back[k], want) or (isinstance(v, float) and back[k] == v), (k, v, back[k])


def test_layouts_are_what_other_tools_read(tmp_path: Path) -> None:
    e, x = make_showers(9, N_VOX, seed=2)
    src = _source(tmp_path / "s.h5", e, x)
    convert_showers(src, tmp_path / "s.root")
    with uproot.open(tmp_path / "s.root") as f:
        t = f["showers"]
        assert t.num_entries == 9 and set(t.keys()) == {"incident_energy", "showers"}
        assert t["showers"].array(library="np").tobytes() == x.tobytes()
        assert t["incident_energy"].array(library="np").tobytes() == e.ravel().tobytes()
        assert provenance_from_json(str(f["showers_provenance"]))["seed"] == 11
    convert_showers(src, tmp_path / "s.npz", compression="deflate")
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["incident_energies", "provenance", "showers"]
        assert z["showers"].tobytes() == x.tobytes() and z["showers"].dtype == np.float32
        assert z["incident_energies"].shape == (9, 1)
        assert provenance_from_json(str(z["provenance"]))["geometry"] == "1-photons"


def test_a_file_without_provenance(tmp_path: Path) -> None:
    """An official-style file (no attributes): none invented in ROOT/npz; HDF5 adds two."""
    e, x = make_showers(4, N_VOX, seed=3)
    with h5py.File(tmp_path / "official.h5", "w") as h:
        h["incident_energies"] = e.astype(np.float32)
        h["showers"] = x
    convert_showers(tmp_path / "official.h5", tmp_path / "o.npz")
    with np.load(tmp_path / "o.npz") as z:
        assert sorted(z.files) == ["incident_energies", "showers"]
    convert_showers(tmp_path / "official.h5", tmp_path / "o.root")
    with uproot.open(tmp_path / "o.root") as f:
        assert [k.split(";")[0] for k in f] == ["showers"]
    back = convert_showers(tmp_path / "o.root", tmp_path / "back.h5").path
    assert sorted(_attrs(back)) == ["n_showers", "physgen_version"]  # documented
    e2, _, _ = read_any(back)
    assert e2.dtype == np.float32 and e2.tobytes() == e.astype(np.float32).tobytes()


def test_foreign_tree_names_and_branch_shapes(tmp_path: Path) -> None:
    e, x = make_showers(6, N_VOX, seed=4)
    path = tmp_path / "foreign.root"
    with uproot.recreate(path) as f:
        t = f.mktree(
            "calo", {"E0": np.dtype((np.float32, (1,))), "cells": np.dtype((np.float64, (N_VOX,)))}
        )
        t.extend({"E0": e.astype(np.float32), "cells": x.astype(np.float64)})
    out = convert_showers(
        path, tmp_path / "f.h5", energy_branch="E0", shower_branch="cells"
    ).path  # the only TTree is found without --tree
    e2, x2, _ = read_any(out)
    assert x2.dtype == np.float64 and np.array_equal(x2, x.astype(np.float64))
    assert e2.dtype == np.float32 and e2.shape == (6, 1)
    with pytest.raises(DataFormatError, match="no TTree 'showers'; TTrees: calo"):
        convert_showers(path, tmp_path / "g.h5", tree="showers")
    with pytest.raises(DataFormatError, match="no branch 'incident_energy'"):
        convert_showers(path, tmp_path / "g.h5")
    # writing with other names, read back with the same names
    convert_showers(out, tmp_path / "named.root", tree="calo", energy_branch="e", shower_branch="v")
    _, x3, _ = read_any(tmp_path / "named.root", energy_branch="e", shower_branch="v")
    assert x3.tobytes() == x2.tobytes()


def test_streaming_holds_one_batch(tmp_path: Path) -> None:
    """A 26 MB file converts with a few MB of memory: the showers are never all loaded."""
    n, n_vox = 1000, 6480
    x = np.random.default_rng(0).random((n, n_vox), dtype=np.float32)
    e = np.full((n, 1), 5e4)
    src = write_showers(tmp_path / "big.h5", e, x, compression=None)
    del x
    for a, b in (("big.h5", "big.npz"), ("big.npz", "big.root"), ("big.root", "back.h5")):
        tracemalloc.start()
        convert_showers(tmp_path / a, tmp_path / b, batch_size=50)  # 1.3 MB batches
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < 12e6, (a, b, peak)
    _, x2, _ = read_any(tmp_path / "back.h5")
    _, x1, _ = read_any(src)
    assert x2.tobytes() == x1.tobytes()
    with open_source(tmp_path / "big.npz") as s:
        assert [b.shape[0] for b in s.iter_showers(300)] == [300, 300, 300, 100]


# ------------------------------------------------------------------ bad input


def _nothing_left(folder: Path, name: str) -> None:
    assert not (folder / name).exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(f".{name}")]


def test_bad_values_and_options_leave_nothing(tmp_path: Path) -> None:
    e, x = make_showers(5, N_VOX, seed=5)
    bad = x.copy()
    bad[3, 7] = np.nan
    with h5py.File(tmp_path / "nan.h5", "w") as h:
        h["incident_energies"] = e
        h["showers"] = bad
    for target in ("n.root", "n.npz", "n.h5"):
        with pytest.raises(DataFormatError, match=r"NaN or inf \(row 3\)"):
            convert_showers(tmp_path / "nan.h5", tmp_path / target)
        _nothing_left(tmp_path, target)
    good = write_showers(tmp_path / "g.h5", e, x)
    neg = x.copy()
    neg[1, 2] = -1.0
    np.savez(tmp_path / "neg.npz", incident_energies=e, showers=neg)
    with pytest.raises(DataFormatError, match="negative"):
        convert_showers(tmp_path / "neg.npz", tmp_path / "c.h5")
    res = convert_showers(tmp_path / "neg.npz", tmp_path / "c.h5", clip_negative=True)
    assert res.n_clipped == 1 and read_any(res.path)[1][1, 2] == 0.0
    cases: list[tuple[Path, Path, dict[str, Any], type[PhysgenError], str]] = [
        (good, tmp_path / "x.csv", {}, ConfigError, "unknown shower file type '.csv'"),
        (good, good, {}, ConfigError, "input"),
        (good, tmp_path / "x.npz", {"compression": "lzf"}, ConfigError, "npz output takes"),
        (good, tmp_path / "x.root", {"compression": "lzf"}, ConfigError, "root output takes"),
        (good, tmp_path / "x.npz", {"geometry": "2"}, DataFormatError, "expects 6480"),
        (tmp_path / "missing.npz", tmp_path / "x.h5", {}, DataFormatError, "no such file"),
        (good, tmp_path / "nodir" / "x.root", {}, ConfigError, "does not exist"),
    ]
    for src, out, kw, err, needle in cases:
        with pytest.raises(err, match=needle):
            convert_showers(src, out, **kw)
    np.savez(tmp_path / "extra.npz", incident_energies=e, showers=x, other=x)
    with pytest.raises(DataFormatError, match=r"unknown array\(s\) \['other'\]"):
        convert_showers(tmp_path / "extra.npz", tmp_path / "x.h5")
    np.savez(tmp_path / "few.npz", showers=x)
    with pytest.raises(DataFormatError, match="missing array 'incident_energies'"):
        convert_showers(tmp_path / "few.npz", tmp_path / "x.h5")
    (tmp_path / "text.root").write_text("not root")
    with pytest.raises(DataFormatError, match="cannot open as a ROOT file"):
        convert_showers(tmp_path / "text.root", tmp_path / "x.h5")
    with uproot.recreate(tmp_path / "jagged.root") as f:
        import awkward as ak

        f.mktree("showers", {"incident_energy": np.float64, "showers": "var * float32"}).extend(
            {"incident_energy": np.ones(2), "showers": ak.Array([[1.0, 2.0], [3.0]])}
        )
    with pytest.raises(DataFormatError, match="not a fixed-size numeric branch"):
        convert_showers(tmp_path / "jagged.root", tmp_path / "x.h5")
    for name in ("x.h5", "x.npz", "x.root"):
        _nothing_left(tmp_path, name)


# ------------------------------------------------------------------ command line


def test_cli_convert(run: Run, tmp_path: Path) -> None:
    e, x = make_showers(7, N_VOX, seed=6)
    src = _source(tmp_path / "a.h5", e, x)
    rc, out, err = run("convert", src, "-o", tmp_path / "a.root")
    assert rc == 0, err
    assert out.strip() == (
        f"wrote {tmp_path / 'a.root'}: 7 showers (368 voxels, geometry 1-photons), hdf5 -> root"
    )
    rc, out, err = run("convert", tmp_path / "a.root", "--out", tmp_path / "a.npz")
    assert rc == 0 and "root -> npz" in out, err
    rc, out, err = run(
        "convert", tmp_path / "a.npz", "--out", tmp_path / "b.h5", "--compression", "lzf"
    )
    assert rc == 0, err
    with h5py.File(tmp_path / "b.h5") as h:
        assert h["showers"].compression == "lzf"
        assert h["showers"][()].tobytes() == x.tobytes()
    _assert_same_attrs(_attrs(tmp_path / "b.h5"), _attrs(src))
    rc, out, err = run("convert", tmp_path / "a.npz", "--out", tmp_path / "c.root", "--tree", "")
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and "--tree" in err
    _nothing_left(tmp_path, "c.root")
    rc, _, err = run("convert", tmp_path / "a.npz", "--out", tmp_path / "c.txt")
    assert rc == 2 and err.startswith("error: --out") and "Traceback" not in err
    rc, out, _ = run("convert", "--help")
    assert rc == 0 and "MeV" in out and "--tree" in out


@pytest.mark.parametrize("alias", ["symlink", "hardlink"])
def test_an_output_that_is_the_input_is_refused(run: Run, tmp_path: Path, alias: str) -> None:
    e, x = make_showers(3, N_VOX, seed=7)
    np.savez(tmp_path / "a.npz", incident_energies=e, showers=x)
    twin = tmp_path / "twin.npz"
    if alias == "symlink":
        twin.symlink_to(tmp_path / "a.npz")
    else:
        twin.hardlink_to(tmp_path / "a.npz")
    before = (tmp_path / "a.npz").read_bytes()
    rc, _, err = run("convert", tmp_path / "a.npz", "-o", twin)
    assert rc == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert (tmp_path / "a.npz").read_bytes() == before


def test_root_without_uproot_names_the_extra(
    run: Run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    e, x = make_showers(3, N_VOX, seed=8)
    src = write_showers(tmp_path / "a.h5", e, x)
    monkeypatch.setitem(sys.modules, "uproot", None)  # import uproot now fails
    rc, out, err = run("convert", src, "-o", tmp_path / "a.root")
    assert rc == 2 and out == ""
    assert err.strip() == (
        f"error: {tmp_path / 'a.root'}: ROOT files need uproot: pip install 'physgen[io]'"
    )
    _nothing_left(tmp_path, "a.root")
    rc, _, err = run("convert", src, "-o", tmp_path / "a.npz")  # the other formats still work
    assert rc == 0, err
