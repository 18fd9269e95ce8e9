"""The command line: help texts, geometry/info/validate/merge, and the bad-input contract.

Every bad input must give a one-line ``error: ...`` naming the file/key/option,
exit status 2, no traceback, and nothing at the output path.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from clitools import Run, one_line_error
from physgen.calo.io import write_showers
from showerdata import make_showers


def test_help_lists_subcommands(run: Run) -> None:
    rc, out, _ = run("--help")
    assert rc == 0
    for cmd in ("geometry", "info", "validate", "merge", "simulate"):
        assert cmd in out
    for cmd, unit in (("geometry", "mm"), ("info", "MeV"), ("validate", "MeV"), ("merge", "MeV")):
        rc, out, _ = run(cmd, "--help")
        assert rc == 0 and unit in out, cmd


@pytest.mark.parametrize(
    ("name", "n_vox"), [("1-photons", 368), ("1-pions", 533), ("2", 6480), ("3", 40500)]
)
def test_geometry_json(run: Run, name: str, n_vox: int, binning_dir: Path) -> None:
    from physgen.calo.geometry import load_xml

    rc, out, _ = run("geometry", name, "--json")
    assert rc == 0
    d = json.loads(out)
    assert d["n_voxels"] == n_vox
    fname = {
        "1-photons": "binning_dataset_1_photons.xml",
        "1-pions": "binning_dataset_1_pions.xml",
        "2": "binning_dataset_2.xml",
        "3": "binning_dataset_3.xml",
    }[name]
    official = load_xml(binning_dir / fname, d["particle"])
    assert d["layers"] == [layer.to_dict() for layer in official.layers]
    rc2, out2, _ = run("geometry", str(binning_dir / fname), "--json")
    assert rc2 == 0 and json.loads(out2)["layers"] == d["layers"]


def test_geometry_text(run: Run) -> None:
    rc, out, _ = run("geometry", "2")
    assert rc == 0 and "6480 voxels in 45 layers" in out


def _raw(path: Path, **datasets: object) -> Path:
    with h5py.File(path, "w") as f:
        for k, v in datasets.items():
            f[k] = v
    return path


def _valid(path: Path, n: int = 20, n_vox: int = 368) -> Path:
    return write_showers(path, *make_showers(n, n_vox))


def _with(kind: str) -> Callable[[Path], Path]:
    def build(p: Path) -> Path:
        e, x = make_showers(20, 368, dtype=np.float64)
        if kind == "nan":
            x[4, 4] = np.nan
        elif kind == "inf":
            e[3] = np.inf
        elif kind == "neg":
            x[4, 4] = -1.0
        elif kind == "zeroE":
            e[2] = 0.0
        elif kind == "negE":
            e[2] = -5.0
        return write_showers(p, e, x)

    return build


def _truncated(p: Path) -> Path:
    good = write_showers(p.with_name("good.h5"), *make_showers(300, 368), compression=None)
    data = good.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return p


BAD_FILES: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "missing key": (
        lambda p: _raw(p, showers=np.ones((3, 368))),
        ("missing key 'incident_energies'",),
    ),
    "extra layout": (
        lambda p: _raw(
            p, incident_energies=np.ones((3, 1)), showers=np.ones((3, 368)), extra=np.ones(3)
        ),
        ("unknown key(s) ['extra']",),
    ),
    "row counts": (
        lambda p: _raw(p, incident_energies=np.ones((3, 1)), showers=np.ones((4, 368))),
        ("row counts differ", "3", "4"),
    ),
    "unknown voxel count": (
        lambda p: _raw(p, incident_energies=np.ones((3, 1)), showers=np.ones((3, 100))),
        ("100 voxels", "matches no built-in geometry"),
    ),
    "nan": (_with("nan"), ("'showers' holds NaN or inf (row 4)",)),
    "inf energy": (_with("inf"), ("'incident_energies' holds NaN or inf (row 3)",)),
    "negative voxel": (_with("neg"), ("negative voxel energies", "--clip-negative")),
    "zero energy": (_with("zeroE"), ("'incident_energies' must be > 0 MeV, row 2",)),
    "negative energy": (_with("negE"), ("'incident_energies' must be > 0 MeV, row 2",)),
    "not hdf5": (lambda p: (p.write_text("x,y\n1,2\n"), p)[1], ("not an HDF5 file",)),
    "truncated": (_truncated, ("truncated or corrupt",)),
    "empty": (
        lambda p: _raw(p, incident_energies=np.ones((0, 1)), showers=np.ones((0, 368))),
        ("empty file (0 showers)",),
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_files(run: Run, tmp_path: Path, case: str) -> None:
    build, needles = BAD_FILES[case]
    bad = build(tmp_path / "bad.h5")
    rc, out, err = run("validate", bad)
    one_line_error(rc, err, str(bad), *needles)
    assert out == ""
    # the same file as input of a command that writes: nothing left behind
    good = _valid(tmp_path / "good_shard.h5")
    target = tmp_path / "merged.h5"
    rc, _, err = run("merge", good, bad, "--out", target)
    one_line_error(rc, err, *needles)
    assert not target.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".merged.h5")]
    rc, out, err = run("info", bad)
    if case == "negative voxel":  # info describes, and flags them
        assert rc == 0 and "1 negative voxel energies" in out
    else:
        one_line_error(rc, err, *needles)


def test_wrong_geometry_asked(run: Run, tmp_path: Path) -> None:
    f = _valid(tmp_path / "a.h5")
    rc, _, err = run("validate", f, "--geometry", "3")
    one_line_error(rc, err, "368 voxels", "geometry '3' expects 40500")
    rc, _, err = run("merge", f, "--geometry", "2", "--out", tmp_path / "m.h5")
    one_line_error(rc, err, "geometry '2' expects 6480")
    assert not (tmp_path / "m.h5").exists()


def test_clip_negative_flag(run: Run, tmp_path: Path) -> None:
    bad = _with("neg")(tmp_path / "neg.h5")
    rc, out, err = run("validate", bad, "--clip-negative")
    assert rc == 0 and "ok:" in out
    rc, _, err = run("merge", bad, "--out", tmp_path / "m.h5", "--clip-negative")
    assert rc == 0
    assert "clipped 1 negative voxel energies" in err  # the warning


def test_unknown_geometry_and_bad_xml(run: Run, tmp_path: Path) -> None:
    rc, _, err = run("geometry", "ds7")
    one_line_error(rc, err, "unknown geometry 'ds7'", "1-photons")
    f = _valid(tmp_path / "a.h5")
    rc, _, err = run("validate", f, "--geometry", "ds7")
    one_line_error(rc, err, "unknown geometry 'ds7'")
    for body, needle in (
        (
            '<Bins><Bin name="photon"><Layer id="0" r_edges="0,5,2" n_bin_alpha="1"/></Bin></Bins>',
            "strictly increasing",
        ),
        (
            '<Bins><Bin name="photon"><Layer id="0" r_edges="0,5" /></Bin></Bins>',
            "missing attribute",
        ),
        (
            '<Bins><Bin name="photon"><Layer id="0" r_edges="0,q" n_bin_alpha="1"/></Bin></Bins>',
            "comma-separated numbers",
        ),
        (
            '<Bins><Bin name="photon"><Layer id="0" r_edges="0,5" n_bin_alpha="0"/></Bin></Bins>',
            "n_bin_alpha must be >= 1",
        ),
        ("<Bins><Bin", "not well-formed"),
    ):
        xml = tmp_path / "b.xml"
        xml.write_text(body)
        rc, _, err = run("geometry", xml)
        one_line_error(rc, err, "b.xml", needle)
        rc, _, err = run("validate", f, "--geometry", xml)
        one_line_error(rc, err, needle)


def test_output_in_missing_folder(run: Run, tmp_path: Path) -> None:
    f = _valid(tmp_path / "a.h5")
    target = tmp_path / "nope" / "m.h5"
    rc, _, err = run("merge", f, "--out", target)
    one_line_error(rc, err, "--out", "does not exist")
    assert not target.parent.exists()


def test_info_and_merge(run: Run, tmp_path: Path) -> None:
    a = write_showers(
        tmp_path / "a.h5", *make_showers(30, 6480, seed=1), attrs={"geometry": "2", "seed": 1}
    )
    b = write_showers(
        tmp_path / "b.h5", *make_showers(20, 6480, seed=2), attrs={"geometry": "2", "seed": 2}
    )
    rc, out, _ = run("merge", a, b, "--out", tmp_path / "ab.h5", "--geometry", "2")
    assert rc == 0 and "50 showers from 2 shards" in out
    rc, out, _ = run("info", tmp_path / "ab.h5")
    assert rc == 0
    for needle in (
        "showers      50",
        "geometry 2",
        "E_tot/E_inc",
        "sparsity",
        "merged_from",
        "gzip",
    ):
        assert needle in out
    rc, out, _ = run("info", tmp_path / "ab.h5", "--json")
    d = json.loads(out)
    assert d["n_showers"] == 50 and d["geometry"] == "2"
    assert d["provenance"]["merged_from"] == [str(a), str(b)]


def test_entry_point_subprocess(tmp_path: Path) -> None:
    """The installed console script: exit 2, one line, no traceback."""
    bad = tmp_path / "x.h5"
    bad.write_text("not hdf5")
    proc = subprocess.run(
        [sys.executable, "-m", "physgen", "validate", str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"error: {bad}: not an HDF5 file (expected a CaloChallenge .h5/.hdf5 file)"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "physgen", "info", "--bogus"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "No such option" in proc.stderr


def test_timing_callable(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    rc, text, err = run(
        "timing",
        "--geometry",
        "2",
        "--callable",
        "showerdata:toy_generator",
        "--batch-sizes",
        "1,20",
        "--repeats",
        "3",
        "--out",
        out,
    )
    assert rc == 0, err
    assert "batch      1" in text and "batch     20" in text
    d = json.loads(out.read_text())
    assert [b["batch_size"] for b in d["batches"]] == [1, 20]
    assert all(b["repeats"] == 3 and b["ms_per_shower_mean"] > 0 for b in d["batches"])
    rc, _, err = run("timing", "--geometry", "2", "--callable", "nomodule_xyz:f")
    one_line_error(rc, err, "--callable", "nomodule_xyz")
    rc, _, err = run("timing", "--geometry", "2")
    one_line_error(rc, err, "exactly one of --engine, --callable, --run or --onnx")
    rc, _, err = run("timing", "--geometry", "2", "--engine", "gflash", "--batch-sizes", "1,x")
    one_line_error(rc, err, "--batch-sizes")
