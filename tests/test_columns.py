"""physgen.columns: named numeric columns from HDF5, NumPy, Parquet and ROOT files.

Round trips of :func:`write_columns` / :func:`read_columns` in every format, the column
specification grammar of :func:`parse_columns`, the names of :func:`read_named_columns`
(each itself a valid specification), and the errors for bad files and bad columns.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from physgen.columns import (
    ColumnSpec,
    parse_columns,
    read_columns,
    read_named_columns,
    write_columns,
)
from physgen.errors import ConfigError, DataFormatError

FAST = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def _needs(suffix: str) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    elif suffix == ".root":
        pytest.importorskip("uproot")


@st.composite
def _tables(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    """A finite ``(n, k)`` array and a finite ``(n,)`` array, float32 or float64."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    n = draw(st.integers(1, 12))
    k = draw(st.integers(1, 3))
    elements = st.floats(
        allow_nan=False, allow_infinity=False, width=32 if dtype == np.float32 else 64
    )
    a = draw(hnp.arrays(dtype, (n, k), elements=elements))
    b = draw(hnp.arrays(dtype, (n,), elements=elements))
    return a, b


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("suffix", [".h5", ".npz", ".npy", ".parquet", ".root"])
@FAST
@given(table=_tables())
def test_write_read_round_trip(
    tmp_path: Path, suffix: str, table: tuple[np.ndarray, np.ndarray]
) -> None:
    _needs(suffix)
    a, b = table
    k = a.shape[1]
    path = tmp_path / f"t{suffix}"
    assert write_columns(path, {"a": a, "b": b}) == path
    expected = np.concatenate([a, b[:, None]], axis=1).astype(np.float64)
    if suffix == ".npy":  # one 2-D array, columns by index
        spec = f"0:{k + 1}"
    elif suffix in (".parquet", ".root"):  # a 2-D column is split into a_0, a_1, ...
        spec = ",".join([f"a_{i}" for i in range(k)] + ["b"])
    else:
        spec = "a,b"
    got = read_columns(path, spec)
    assert got.dtype == np.float64
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
    assert not [p for p in tmp_path.iterdir() if p.name != path.name]  # no temporaries


def test_write_columns_rejects_unequal_lengths_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="different lengths"):
        write_columns(tmp_path / "a.h5", {"x": np.zeros(3), "y": np.zeros(4)})
    with pytest.raises(ConfigError, match=r"unknown file type '\.csv'"):
        write_columns(tmp_path / "a.csv", {"x": np.zeros(3)})
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ parse_columns

_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_./]{0,8}( [A-Za-z0-9_]{1,3})?", fullmatch=True)
_INDEX = st.integers(-6, 30)
_SPACE = st.sampled_from(["", " ", "  "])


@st.composite
def _spec(draw: st.DrawFn) -> tuple[str, ColumnSpec]:
    """A valid entry ``name``, ``name[i]``, ``name[i:j]``, ``name[i:]`` or ``name[:j]``, and
    the specification it must parse to."""
    name = draw(_NAMES)
    form = draw(st.sampled_from(["name", "single", "range", "from", "to"]))
    sp = [draw(_SPACE) for _ in range(4)]
    i, j = draw(_INDEX), draw(_INDEX)
    if form == "name":
        body, want = name, (None, None, False)
    elif form == "single":
        body, want = f"{name}[{sp[0]}{i}{sp[1]}]", (i, None, True)
    elif form == "range":
        body, want = f"{name}[{sp[0]}{i}{sp[1]}:{sp[2]}{j}{sp[3]}]", (i, j, False)
    elif form == "from":
        body, want = f"{name}[{i}:]", (i, None, False)
    else:
        body, want = f"{name}[:{j}]", (None, j, False)
    raw = f"{sp[2]}{body}{sp[3]}"
    return raw, ColumnSpec(name, *want, text=raw.strip())


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(entries=st.lists(_spec(), min_size=1, max_size=4))
def test_parse_columns_valid_specs(entries: list[tuple[str, ColumnSpec]]) -> None:
    raws = [r for r, _ in entries]
    want = [s for _, s in entries]
    assert parse_columns(",".join(raws)) == want
    assert parse_columns(raws) == want  # a list of entries parses the same


@pytest.mark.parametrize("bad", ["x[]", "[0]", "x[0]]", "x[a]", "x[0:1:2]", "", " , "])
def test_parse_columns_malformed(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_columns(bad)


@pytest.mark.parametrize("bad", ["x[-]", "x[1:-]"])
def test_parse_columns_lone_minus_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_columns(bad)


def test_parse_columns_colon_in_name() -> None:
    assert parse_columns("ns:pt[1]") == [ColumnSpec("ns:pt", 1, None, True, "ns:pt[1]")]


# ------------------------------------------------------------------ names


@pytest.fixture()
def h5file(tmp_path: Path) -> Path:
    x = np.arange(15.0).reshape(5, 3)
    return write_columns(tmp_path / "d.h5", {"x": x, "y": np.arange(5.0) * 10})


def _each_name_reads_back(path: Path, values: np.ndarray, names: list[str]) -> None:
    assert len(names) == values.shape[1]
    for i, name in enumerate(names):
        np.testing.assert_array_equal(read_columns(path, name)[:, 0], values[:, i])
    # all names together are a specification giving the same array
    np.testing.assert_array_equal(read_columns(path, ",".join(names)), values)


@pytest.mark.parametrize(
    ("spec", "names", "cols"),
    [
        ("x", ["x[0]", "x[1]", "x[2]"], [0, 1, 2]),
        ("x[1:3]", ["x[1]", "x[2]"], [1, 2]),
        ("x[:2],y", ["x[0]", "x[1]", "y"], [0, 1, 3]),
        ("x[2]", ["x[2]"], [2]),
        ("y", ["y"], [3]),
    ],
)
def test_read_named_columns_h5(h5file: Path, spec: str, names: list[str], cols: list[int]) -> None:
    values, got = read_named_columns(h5file, spec)
    assert got == names
    full = np.concatenate([np.arange(15.0).reshape(5, 3), np.arange(5.0)[:, None] * 10], 1)
    np.testing.assert_array_equal(values, full[:, cols])
    _each_name_reads_back(h5file, values, got)


@pytest.mark.parametrize(
    ("spec", "names", "cols"),
    [("0:2", ["0", "1"], [0, 1]), ("1:", ["1", "2"], [1, 2]), ("2,0", ["2", "0"], [2, 0])],
)
def test_read_named_columns_npy(
    tmp_path: Path, spec: str, names: list[str], cols: list[int]
) -> None:
    a = np.arange(12.0).reshape(4, 3)
    path = tmp_path / "d.npy"
    np.save(path, a)
    values, got = read_named_columns(path, spec)
    assert got == names
    np.testing.assert_array_equal(values, a[:, cols])
    _each_name_reads_back(path, values, got)


@FAST
@given(
    width=st.integers(1, 5),
    data=st.data(),
)
def test_read_named_columns_names_are_specs(
    tmp_path: Path, width: int, data: st.DataObject
) -> None:
    a = np.arange(4.0 * width).reshape(4, width) + 0.5
    path = write_columns(tmp_path / "p.h5", {"m": a})
    lo = data.draw(st.integers(0, width - 1), label="lo")
    hi = data.draw(st.integers(lo + 1, width), label="hi")
    spec = data.draw(st.sampled_from(["m", f"m[{lo}]", f"m[{lo}:{hi}]", f"m[{lo}:]"]))
    values, names = read_named_columns(path, spec)
    _each_name_reads_back(path, values, names)


# ------------------------------------------------------------------ errors


def test_unknown_column_lists_available(h5file: Path) -> None:
    with pytest.raises(ConfigError, match=r"no column 'zz'; available: x, y"):
        read_columns(h5file, "x,zz")


def test_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unknown file type '\.txt'.*\.parquet"):
        read_columns(tmp_path / "a.txt", "x")
    with pytest.raises(DataFormatError, match="no such file"):
        read_columns(tmp_path / "missing.h5", "x")


def test_out_of_range_and_empty_selection(h5file: Path) -> None:
    with pytest.raises(ConfigError, match=r"'x\[7\]': column 7 out of range \(width 3\)"):
        read_columns(h5file, "x[7]")
    with pytest.raises(ConfigError, match="selects no column"):
        read_columns(h5file, "x[5:9]")


def test_columns_of_different_lengths(tmp_path: Path) -> None:
    path = tmp_path / "d.h5"
    with h5py.File(path, "w") as f:
        f["a"] = np.zeros(5)
        f["b"] = np.zeros(4)
    with pytest.raises(DataFormatError, match=r"different lengths \(a: 5, b: 4\)"):
        read_columns(path, "a,b")


def test_nan_rows_named(tmp_path: Path) -> None:
    a = np.arange(10.0)
    a[[3, 7]] = np.nan
    path = write_columns(tmp_path / "d.npz", {"a": a, "b": np.ones(10)})
    with pytest.raises(DataFormatError, match=r"2 rows hold NaN or inf \(first: row 3\)"):
        read_columns(path, "b,a")
    got = read_columns(path, "a", allow_nonfinite=True)
    assert got.shape == (10, 1) and np.isnan(got[[3, 7], 0]).all()


def test_non_numeric_parquet_column(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"s": ["a", "b", "c"], "v": [1.0, 2.0, 3.0]}), path)
    with pytest.raises(DataFormatError, match="'s' is not numeric"):
        read_columns(path, "v,s")
    np.testing.assert_array_equal(read_columns(path, "v")[:, 0], [1.0, 2.0, 3.0])


def test_root_file_with_two_trees(tmp_path: Path) -> None:
    uproot = pytest.importorskip("uproot")
    path = tmp_path / "two.root"
    with uproot.recreate(path) as f:
        for name, offset in (("a", 0.0), ("b", 10.0)):
            t = f.mktree(name, {"v": np.float64})
            t.extend({"v": np.arange(3.0) + offset})
    with pytest.raises(ConfigError, match=r"2 TTrees \(a, b\).*FILE\.root:TREE"):
        read_columns(path, "v")
    np.testing.assert_array_equal(read_columns(f"{path}:b", "v")[:, 0], [10.0, 11.0, 12.0])
    with pytest.raises(ConfigError, match="no TTree 'c'"):
        read_columns(f"{path}:c", "v")


def test_write_zero_rows_npy(tmp_path: Path) -> None:
    path = write_columns(tmp_path / "e.npy", {"x": np.zeros(0)})
    assert read_columns(path, "0").shape == (0, 1)


@pytest.mark.parametrize("suffix", [".h5", ".npz", ".parquet", ".root"])
def test_bracketed_names_read_back_exactly(tmp_path, suffix):
    """Columns written under names like ``v[0]`` (as ``physgen sample`` does) read back by them."""
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    if suffix == ".root":
        pytest.importorskip("uproot")
    path = tmp_path / f"out{suffix}"
    write_columns(path, {"v[0]": np.arange(5.0), "v[1]": np.arange(5.0) * 2})
    got = read_columns(path, "v[1],v[0]")
    np.testing.assert_array_equal(got, np.stack([np.arange(5.0) * 2, np.arange(5.0)], 1))
