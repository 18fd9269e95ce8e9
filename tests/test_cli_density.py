"""``physgen fit`` and ``physgen sample``: densities of columns in files, from the shell.

A fit writes a run directory; a sample writes one row per draw, with the fit's column
names, the conditions and ``condition_row``. Every bad input gives exit status 2, one line
``error: ...`` naming what is wrong, and nothing at ``--out``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

import physgen.density
from clitools import Run, one_line_error
from physgen.cli.main import main
from physgen.columns import read_columns
from physgen.density import read_config

REPO = Path(__file__).resolve().parents[1]
LEGACY_CFM = REPO / "tests" / "fixtures" / "legacy_runs" / "cfm-0"
M = 4  # condition rows in the --c file


@pytest.fixture(scope="module", autouse=True)
def _steps_as_sized() -> Iterator[None]:
    """One pass over the data per epoch: the step counts these tests are sized with (the
    library's minimum number of steps per epoch on small data sets would multiply them)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(physgen.density, "_MIN_STEPS_PER_EPOCH", 1, raising=False)
        yield


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Training data F.h5 (x | obs, a 2-D v), conditions C.h5, and a tiny model config."""
    root = tmp_path_factory.mktemp("density_cli")
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, 200)
    with h5py.File(root / "F.h5", "w") as f:
        f["obs"] = obs
        f["x"] = 2 * obs + 0.3 * rng.standard_normal(200)
        f["v"] = rng.standard_normal((200, 2))
    with h5py.File(root / "C.h5", "w") as f:
        f["obs"] = np.linspace(-0.9, 0.9, M)
        f["cc"] = rng.standard_normal((M, 2))
    cfg = root / "tiny.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {"model_config": {"shape_transforms": 1, "shape_hidden": [8]}, "optim": {"lr": 3e-3}}
        )
    )
    return {"data": root / "F.h5", "cond": root / "C.h5", "config": cfg, "root": root}


def _fit(*args: object) -> tuple[int, str]:
    """Run ``physgen fit`` outside a test's capsys (for module-scoped fixtures)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["fit", *(str(a) for a in args)])
    return rc, buf.getvalue()


@pytest.fixture(scope="module")
def cond_run(files: dict[str, Path]) -> tuple[Path, dict[str, object]]:
    out = files["root"] / "RUN"
    rc, text = _fit(
        "--data",
        files["data"],
        "--x",
        "x",
        "--c",
        "obs",
        "--out",
        out,
        "--config",
        files["config"],
        "--epochs",
        2,
        "--no-progress",
        "--json",
    )
    assert rc == 0, text
    return out, json.loads(text)


@pytest.fixture(scope="module")
def uncond_run(files: dict[str, Path]) -> Path:
    out = files["root"] / "UNC"
    rc, text = _fit(
        "--data",
        files["data"],
        "--x",
        "v",
        "--out",
        out,
        "--config",
        files["config"],
        "--epochs",
        1,
        "--no-progress",
    )
    assert rc == 0, text
    assert text.startswith("completed: ") and str(out) in text
    return out


# ------------------------------------------------------------------ fit


def test_fit_json_and_run_directory(cond_run: tuple[Path, dict[str, object]]) -> None:
    out, d = cond_run
    assert d["run_dir"] == str(out)
    assert d["status"] == "completed"
    assert isinstance(d["steps"], int) and d["steps"] > 0
    assert isinstance(d["n_parameters"], int) and d["n_parameters"] > 0
    assert np.isfinite(float(d["best_val_loss"]))  # type: ignore[arg-type]
    names = {p.name for p in out.iterdir()}
    assert {"config.yaml", "codec.json", "weights.pt", "summary.json"} <= names
    cfg = read_config(out)
    assert (cfg.model, cfg.x_dim, cfg.c_dim) == ("flow", 1, 1)
    assert (cfg.x_names, cfg.c_names) == (["x"], ["obs"])
    assert cfg.model_config == {"shape_transforms": 1, "shape_hidden": [8]}
    assert cfg.optim.epochs == 2 and cfg.optim.lr == 3e-3
    assert json.loads((out / "summary.json").read_text())["step"] == d["steps"]


# ------------------------------------------------------------------ sample


def _columns(path: Path) -> list[str]:
    """The column (dataset, key, branch) names of a sample file."""
    if path.suffix == ".h5":
        with h5py.File(path, "r") as f:
            return list(f.keys())
    if path.suffix == ".npz":
        with np.load(path) as z:
            return list(z.files)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_table(path).column_names)
    import uproot

    with uproot.open(path) as f:
        return list(f["events"].keys())


@pytest.mark.parametrize("suffix", [".parquet", ".h5", ".npz", ".root", ".npy"])
def test_sample_conditional(
    run: Run, tmp_path: Path, files: dict[str, Path], cond_run: tuple[Path, object], suffix: str
) -> None:
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    if suffix == ".root":
        pytest.importorskip("uproot")
    run_dir = cond_run[0]
    out = tmp_path / f"S{suffix}"
    rc, text, err = run("sample", run_dir, "--c", files["cond"], "--n", 3, "--out", out)
    assert rc == 0, err
    assert text.strip() == f"wrote {out}: {3 * M} samples of 1 columns"
    if suffix == ".npy":  # one plain array of the sampled columns
        a = np.load(out)
        assert a.shape == (3 * M, 1) and np.isfinite(a).all()
        return
    assert sorted(_columns(out)) == sorted(["x", "obs", "condition_row"])
    got = read_columns(out, "x,obs,condition_row")
    assert got.shape == (3 * M, 3) and np.isfinite(got).all()
    np.testing.assert_array_equal(got[:, 2], np.repeat(np.arange(M), 3))
    np.testing.assert_array_equal(got[:, 1], np.repeat(np.linspace(-0.9, 0.9, M), 3))
    # the same seed gives the same samples, whatever the format
    again = tmp_path / f"again{suffix}"
    assert run("sample", run_dir, "--c", files["cond"], "--n", 3, "--out", again)[0] == 0
    np.testing.assert_array_equal(read_columns(again, "x"), got[:, :1])


def test_sample_seed_changes_samples(
    run: Run, tmp_path: Path, files: dict[str, Path], cond_run: tuple[Path, object]
) -> None:
    outs = []
    for seed in (0, 1):
        out = tmp_path / f"s{seed}.h5"
        rc, _, err = run("sample", cond_run[0], "--c", files["cond"], "--out", out, "--seed", seed)
        assert rc == 0, err
        outs.append(read_columns(out, "x"))
    assert outs[0].shape == (M, 1) and not np.array_equal(outs[0], outs[1])


def test_sample_unconditional(run: Run, tmp_path: Path, uncond_run: Path) -> None:
    cfg = read_config(uncond_run)
    assert (cfg.x_dim, cfg.c_dim, cfg.c_names) == (2, 0, [])
    out = tmp_path / "S.npz"
    rc, text, err = run("sample", uncond_run, "--n", 10, "--out", out)
    assert rc == 0, err
    assert text.strip() == f"wrote {out}: 10 samples of 2 columns"
    with np.load(out) as z:
        assert sorted(z.files) == sorted([*cfg.x_names, "condition_row"])
        for name in cfg.x_names:
            assert z[name].shape == (10,) and np.isfinite(z[name]).all()
        np.testing.assert_array_equal(z["condition_row"], np.zeros(10))


# ------------------------------------------------------------------ bad input


def test_fit_unknown_column(run: Run, files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "R"
    rc, _, err = run("fit", "--data", files["data"], "--x", "nope", "--out", out)
    one_line_error(rc, err, str(files["data"]), "no column 'nope'", "available: obs, v, x")
    assert not out.exists()


def test_fit_missing_file(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "R"
    rc, _, err = run("fit", "--data", tmp_path / "gone.h5", "--x", "x", "--out", out)
    one_line_error(rc, err, "gone.h5", "no such file")
    assert list(tmp_path.iterdir()) == []


def test_fit_non_empty_out(run: Run, files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "R"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    rc, _, err = run("fit", "--data", files["data"], "--x", "x", "--out", out)
    one_line_error(rc, err, "--out", "exists and is not an empty folder")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    assert (out / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("bounds", "needle"),
    [
        ("0:1,0:1", "--bounds: 2 entries for 1 x columns"),
        ("0:1", "--bounds: 1 entries for 2 x columns"),
        ("abc,none", "--bounds: expected LO:HI, LO: (open above), :HI (open below) or none"),
        (":,none", "got ':'"),
    ],
)
def test_fit_bad_bounds(
    run: Run, files: dict[str, Path], tmp_path: Path, bounds: str, needle: str
) -> None:
    x = "v" if bounds != "0:1,0:1" else "x"
    out = tmp_path / "R"
    rc, _, err = run("fit", "--data", files["data"], "--x", x, "--bounds", bounds, "--out", out)
    one_line_error(rc, err, needle)
    assert not out.exists()


def test_fit_out_is_the_input(run: Run, files: dict[str, Path]) -> None:
    before = _sha(files["data"])
    rc, _, err = run("fit", "--data", files["data"], "--x", "x", "--out", files["data"])
    one_line_error(rc, err, "--out", str(files["data"]))
    assert _sha(files["data"]) == before


def test_sample_calorimeter_run(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "S.h5"
    rc, _, err = run("sample", LEGACY_CFM, "--n", 3, "--out", out)
    one_line_error(rc, err, str(LEGACY_CFM), "calorimeter surrogate run, not a density run")
    assert list(tmp_path.iterdir()) == []


def test_generate_on_density_run(run: Run, tmp_path: Path, cond_run: tuple[Path, object]) -> None:
    out = tmp_path / "G.h5"
    rc, _, err = run("generate", cond_run[0], "--energy", "1GeV", "--n", 3, "--out", out)
    one_line_error(rc, err, str(cond_run[0]), "a density run (physgen fit)", "physgen sample")
    assert list(tmp_path.iterdir()) == []


def test_sample_condition_width(
    run: Run, tmp_path: Path, files: dict[str, Path], cond_run: tuple[Path, object]
) -> None:
    out = tmp_path / "S.h5"
    args = ("sample", cond_run[0], "--c", files["cond"], "--out", out)
    rc, _, err = run(*args, "--c-columns", "cc")
    one_line_error(rc, err, "--c: 2 columns, the density was fitted with 1")
    rc, _, err = run(*args, "--c-columns", "nope")
    one_line_error(rc, err, "no column 'nope'", "available: cc, obs")
    rc, _, err = run("sample", cond_run[0], "--out", out)
    one_line_error(rc, err, "a conditional density; give --c FILE with 1 columns")
    assert list(tmp_path.iterdir()) == []


def test_sample_c_on_unconditional(
    run: Run, tmp_path: Path, files: dict[str, Path], uncond_run: Path
) -> None:
    out = tmp_path / "S.h5"
    rc, _, err = run("sample", uncond_run, "--c", files["cond"], "--out", out)
    one_line_error(rc, err, "an unconditional density; drop --c")
    assert list(tmp_path.iterdir()) == []


def test_sample_out_is_the_input(
    run: Run, files: dict[str, Path], cond_run: tuple[Path, object]
) -> None:
    before = _sha(files["cond"])
    rc, _, err = run("sample", cond_run[0], "--c", files["cond"], "--out", files["cond"])
    one_line_error(rc, err, "--out", "is the input")
    assert _sha(files["cond"]) == before


def test_sample_out_inside_run_and_bad_n(
    run: Run, tmp_path: Path, files: dict[str, Path], cond_run: tuple[Path, object]
) -> None:
    before = sorted(p.name for p in cond_run[0].iterdir())
    rc, _, err = run("sample", cond_run[0], "--c", files["cond"], "--out", cond_run[0] / "s.h5")
    one_line_error(rc, err, "--out", "lies inside the run directory")
    assert sorted(p.name for p in cond_run[0].iterdir()) == before
    rc, _, err = run(
        "sample", cond_run[0], "--c", files["cond"], "--n", 0, "--out", tmp_path / "s.h5"
    )
    one_line_error(rc, err, "--n must be >= 1, got 0")
    assert list(tmp_path.iterdir()) == []


def _diverging_config(folder: Path) -> Path:
    cfg = folder / "diverge.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "model_config": {"shape_transforms": 1, "shape_hidden": [8]},
                "optim": {"lr": 1e30, "grad_clip": 0.0, "schedule": "constant", "warmup_steps": 0},
            }
        )
    )
    return cfg


def test_failed_fit_removes_its_new_out(run: Run, tmp_path: Path, files: dict[str, Path]) -> None:
    cfg = _diverging_config(tmp_path)
    out = tmp_path / "NEW"
    rc, _, err = run(
        "fit", "--data", files["data"], "--x", "x", "--config", cfg, "--no-progress", "--out", out
    )
    one_line_error(rc, err, "training diverged")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["diverge.yaml"]


def test_failed_fit_leaves_empty_out_empty(
    run: Run, tmp_path: Path, files: dict[str, Path]
) -> None:
    cfg = _diverging_config(tmp_path)
    out = tmp_path / "R"
    out.mkdir()
    rc, _, err = run(
        "fit", "--data", files["data"], "--x", "x", "--config", cfg, "--no-progress", "--out", out
    )
    assert rc == 2 and "training diverged" in err
    assert sorted(p.name for p in out.iterdir()) == []
