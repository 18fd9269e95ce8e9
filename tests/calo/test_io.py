"""HDF5 data layer: round trips, streaming, atomic writes, summaries, property tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from physgen.calo.io import (
    ShowerWriter,
    file_summary,
    iter_batches,
    open_showers,
    read_showers,
    validate_file,
    write_showers,
)
from physgen.calo.merge import merge_files
from physgen.errors import ConfigError, DataFormatError
from showerdata import make_showers


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("compression", ["gzip", "lzf", None])
def test_roundtrip_bit_identical(tmp_path: Path, dtype: type, compression: str | None) -> None:
    e, x = make_showers(50, 368, dtype=dtype)
    path = write_showers(tmp_path / "a.h5", e, x, compression=compression, attrs={"seed": 3})
    e2, x2 = read_showers(path)
    assert x2.dtype == x.dtype and e2.dtype == e.dtype
    assert e2.tobytes() == e.tobytes()
    assert x2.tobytes() == x.tobytes()
    with h5py.File(path) as f:
        assert set(f.keys()) == {"incident_energies", "showers"}  # readable by plain code
        assert f["showers"].compression == compression
        assert f.attrs["seed"] == 3
        assert f.attrs["physgen_version"]


def test_streaming_equals_full_read(tmp_path: Path) -> None:
    e, x = make_showers(1037, 533, seed=1)
    path = tmp_path / "s.h5"
    with ShowerWriter(path, 533, compression="lzf") as w:
        for i in range(0, 1037, 100):  # writer appends in chunks
            w.append(e[i : i + 100, 0], x[i : i + 100])
    batches = list(iter_batches(path, batch_size=64))
    assert len(batches) == 17
    assert max(len(b[0]) for b in batches) == 64
    np.testing.assert_array_equal(np.concatenate([b[0] for b in batches]), e)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), x)
    with open_showers(path) as f:
        part = list(f.iter_batches(10, start=5, stop=27))
    np.testing.assert_array_equal(np.concatenate([p[1] for p in part]), x[5:27])


def test_default_batch_is_bounded(tmp_path: Path) -> None:
    e, x = make_showers(4, 40500, seed=2)
    path = write_showers(tmp_path / "ds3.h5", e, x)
    with open_showers(path) as f:
        assert f.geometry is not None and f.geometry.name == "3"
        assert f.default_batch_size() * 40500 * 4 <= 64 << 20


def test_writer_exception_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "x.h5"
    e, x = make_showers(10, 368)
    with pytest.raises(KeyboardInterrupt), ShowerWriter(path, 368) as w:
        w.append(e, x)
        raise KeyboardInterrupt
    assert not path.exists()
    assert list(tmp_path.iterdir()) == []


def test_writer_replaces_existing_atomically(tmp_path: Path) -> None:
    path = tmp_path / "x.h5"
    e, x = make_showers(10, 368)
    write_showers(path, e, x)
    with pytest.raises(RuntimeError), ShowerWriter(path, 368) as w:
        w.append(e[:2], x[:2])
        raise RuntimeError("boom")
    assert read_showers(path)[1].shape == (10, 368)  # old file intact


def test_writer_shape_errors(tmp_path: Path) -> None:
    with ShowerWriter(tmp_path / "x.h5", 368) as w:
        with pytest.raises(DataFormatError, match=r"showers must be \(N, 368\)"):
            w.append(np.ones(2), np.ones((2, 10)))
        with pytest.raises(DataFormatError, match="2 incident energies but 3 showers"):
            w.append(np.ones(2), np.ones((3, 368)))
    with pytest.raises(ConfigError, match="does not exist"):  # an option's value, not data
        ShowerWriter(tmp_path / "missing" / "x.h5", 368)
    with pytest.raises(ConfigError, match="--compression"):  # an option, not data
        ShowerWriter(tmp_path / "y.h5", 368, compression="zstd")


def test_sigkill_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "killed.h5"
    script = textwrap.dedent(
        f"""
        import sys, time, numpy as np
        from physgen.calo.io import ShowerWriter
        with ShowerWriter({str(target)!r}, 6480) as w:
            for i in range(10000):
                w.append(np.full(50, 1000.0), np.ones((50, 6480), np.float32))
                if i == 2:
                    print("started", flush=True)
                time.sleep(0.01)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not target.exists()


def _raw(path: Path, energies: object, showers: object, **extra: object) -> Path:
    with h5py.File(path, "w") as f:
        if energies is not None:
            f["incident_energies"] = energies
        if showers is not None:
            f["showers"] = showers
        for k, v in extra.items():
            f[k] = v
    return path


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda p: _raw(p, None, np.ones((3, 368))), "missing key 'incident_energies'"),
        (lambda p: _raw(p, np.ones((3, 1)), None), "missing key 'showers'"),
        (lambda p: _raw(p, np.ones((3, 1)), np.ones((3, 368)), extra=np.ones(3)), "unknown key"),
        (
            lambda p: _raw(p, np.ones((3, 1)), np.ones((3, 4, 92))),
            r"must have shape \(N, n_voxels\)",
        ),
        (lambda p: _raw(p, np.ones((3, 2)), np.ones((3, 368))), r"must have shape \(N, 1\)"),
        (lambda p: _raw(p, np.ones((3, 1)), np.ones((4, 368))), "row counts differ"),
        (lambda p: _raw(p, np.ones((3, 1)), np.ones((3, 100))), "matches no built-in geometry"),
        (lambda p: _raw(p, np.ones((0, 1)), np.ones((0, 368))), "empty file"),
    ],
)
def test_layout_errors(tmp_path: Path, build: object, message: str) -> None:
    path = build(tmp_path / "bad.h5")  # type: ignore[operator]
    with pytest.raises(DataFormatError, match=message):
        validate_file(path)


def _bad_values(kind: str) -> tuple[np.ndarray, np.ndarray]:
    e, x = make_showers(20, 368, dtype=np.float64)
    if kind == "nan":
        x[7, 3] = np.nan
    elif kind == "inf":
        x[7, 3] = np.inf
    elif kind == "neg":
        x[7, 3] = -0.5
    elif kind == "e0":
        e[7] = 0.0
    elif kind == "enan":
        e[7] = np.nan
    return e, x


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("nan", "NaN or inf \\(row 7\\)"),
        ("inf", "NaN or inf \\(row 7\\)"),
        ("neg", "negative voxel energies \\(first in row 7\\).*--clip-negative"),
        ("e0", "must be > 0 MeV, row 7"),
        ("enan", "'incident_energies' holds NaN or inf"),
    ],
)
def test_value_errors(tmp_path: Path, kind: str, message: str) -> None:
    e, x = _bad_values(kind)
    path = write_showers(tmp_path / "bad.h5", e, x)
    with pytest.raises(DataFormatError, match=message):
        validate_file(path, batch_size=8)


def test_clip_negative(tmp_path: Path) -> None:
    e, x = _bad_values("neg")
    path = write_showers(tmp_path / "neg.h5", e, x)
    validate_file(path, clip_negative=True)
    out = merge_files([path], tmp_path / "clipped.h5", clip_negative=True)
    assert read_showers(out)[1].min() == 0.0


def test_wrong_geometry(tmp_path: Path) -> None:
    e, x = make_showers(3, 368)
    path = write_showers(tmp_path / "a.h5", e, x)
    with pytest.raises(DataFormatError, match="has 368 voxels, geometry '2' expects 6480"):
        validate_file(path, "2")


def test_not_hdf5_and_truncated(tmp_path: Path) -> None:
    txt = tmp_path / "notes.h5"
    txt.write_text("hello")
    with pytest.raises(DataFormatError, match="not an HDF5 file"):
        validate_file(txt)
    e, x = make_showers(400, 368, seed=3)
    good = write_showers(tmp_path / "good.h5", e, x, compression=None)
    data = good.read_bytes()
    cut = tmp_path / "cut.h5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DataFormatError, match="truncated or corrupt"):
        validate_file(cut)


def test_merge(tmp_path: Path) -> None:
    parts = []
    all_e, all_x = [], []
    for i in range(3):
        e, x = make_showers(10 + i, 6480, seed=i)
        parts.append(write_showers(tmp_path / f"p{i}.h5", e, x, attrs={"geometry": "2"}))
        all_e.append(e)
        all_x.append(x)
    out = merge_files(parts, tmp_path / "all.h5", geometry="2")
    e2, x2 = read_showers(out)
    np.testing.assert_array_equal(e2, np.concatenate(all_e))
    np.testing.assert_array_equal(x2, np.concatenate(all_x))
    other = write_showers(tmp_path / "o.h5", *make_showers(2, 368))
    with pytest.raises(DataFormatError, match="different voxel counts"):
        merge_files([parts[0], other], tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists()
    relabelled = write_showers(tmp_path / "r.h5", *make_showers(2, 6480), attrs={"geometry": "3?"})
    with pytest.raises(DataFormatError, match="different geometries"):
        merge_files([parts[0], relabelled], tmp_path / "bad.h5")


def test_summary(tmp_path: Path) -> None:
    e = np.repeat(2.0 ** np.arange(8, 23), 4)[:, None]
    x = np.zeros((len(e), 368), np.float32)
    x[:, :10] = (e / 10).astype(np.float32)
    path = write_showers(tmp_path / "d1.h5", e, x, attrs={"generator": "test", "config": {"a": 1}})
    s = file_summary(path)
    assert s["geometry"] == "1-photons"
    assert s["n_showers"] == 60
    assert s["incident_energy_mev"]["distribution"]["kind"] == "discrete"
    assert s["incident_energy_mev"]["distribution"]["counts"] == [4] * 15
    assert s["etot_over_einc"]["mean"] == pytest.approx(1.0, rel=1e-6)
    assert s["sparsity"]["zero_fraction"] == pytest.approx(358 / 368)
    assert s["provenance"]["config"] == {"a": 1}
    e2, x2 = make_showers(500, 6480)
    s2 = file_summary(write_showers(tmp_path / "c.h5", e2, x2))
    assert s2["incident_energy_mev"]["distribution"]["kind"] == "continuous"
    assert s2["incident_energy_mev"]["distribution"]["log_uniform_like"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    x=hnp.arrays(
        np.float32,
        st.tuples(st.integers(1, 20), st.just(368)),
        elements=st.floats(0, 1e6, width=32),
    ),
    compression=st.sampled_from(["gzip", "lzf", None]),
    batch=st.integers(1, 25),
)
def test_roundtrip_property(
    tmp_path: Path, x: np.ndarray, compression: str | None, batch: int
) -> None:
    e = np.linspace(1e3, 1e6, len(x))[:, None]
    path = write_showers(tmp_path / "p.h5", e, x, compression=compression, batch_size=batch)
    validate_file(path, "1-photons")
    got = np.concatenate([b[1] for b in iter_batches(path, batch)])
    assert got.tobytes() == x.tobytes()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    n_e=st.integers(0, 4),
    n_x=st.integers(0, 4),
    n_vox=st.sampled_from([1, 368, 533, 6480, 17]),
    e_cols=st.integers(1, 2),
    value=st.sampled_from([1.0, 0.0, -1.0, np.nan, np.inf]),
    extra=st.booleans(),
)
def test_reader_rejects_or_accepts_cleanly(
    tmp_path: Path, n_e: int, n_x: int, n_vox: int, e_cols: int, value: float, extra: bool
) -> None:
    """Any layout either validates (and is then truly valid) or raises DataFormatError."""
    path = tmp_path / "f.h5"
    e = np.full((n_e, e_cols), 1000.0)
    x = np.full((n_x, n_vox), value)
    kw = {"junk": np.zeros(2)} if extra else {}
    _raw(path, e, x, **kw)
    try:
        validate_file(path)
    except DataFormatError:
        return
    assert n_e == n_x > 0 and e_cols == 1 and not extra
    assert n_vox in (368, 533, 6480)
    assert value >= 0 and np.isfinite(value)
