"""ONNX export: every model variant exports, ONNX Runtime reproduces torch, the CLI contract.

The tiny trained runs of ``tests/fixtures/legacy_runs`` (one per model variant of the contract
test: all five families, MLP and transformer networks, every ODE solver and diffusion sampler)
are exported with the check on; then the exported model, fed the torch model's seeded noise,
must give the torch showers to the export tolerance with the same threshold pattern.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from clitools import Run, one_line_error
from physgen.calo.generate import generate_showers
from physgen.calo.io import read_showers
from physgen.calo.rundir import load_run
from physgen.errors import (
    ConfigError,
    DataFormatError,
    MissingDependencyError,
)
from physgen.export import (
    RTOL,
    ExportCheck,
    ExportError,
    compare_showers,
    export_onnx,
    load_onnx,
)

RUNS = Path(__file__).parents[1] / "fixtures" / "legacy_runs"
#: flow-1 is fully autoregressive (MAF, one pass per voxel): refused, see test below
VARIANTS = sorted(p.name for p in RUNS.iterdir() if p.is_dir() and p.name != "flow-1")


def test_variants_cover_every_family() -> None:
    assert {v.split("-")[0] for v in VARIANTS} == {"cfm", "diffusion", "flow", "gan", "vae"}


@pytest.mark.parametrize("name", VARIANTS)
def test_export_reproduces_torch(name: str, tmp_path: Path) -> None:
    out = tmp_path / f"{name}.onnx"
    meta = export_onnx(RUNS / name, out, check_n=64, seed=3)
    check = meta["physgen.check"]
    assert check["passed"] and check["max_rel_diff"] <= RTOL and check["pattern_mismatches"] == 0
    assert check["n_voxels_compared"] > 5 * 64  # showers with real content were compared
    model = load_run(RUNS / name)
    onnx_model = load_onnx(out)
    assert onnx_model.name == model.name == meta["physgen.family"]
    assert onnx_model.metadata["physgen.geometry"] == "1-photons"
    assert onnx_model.metadata["physgen.latent"]["shape"] == ["N", model.noise_dim]
    assert onnx_model.draw_widths == model.noise_widths()
    assert len(onnx_model.metadata["physgen.config_sha256"]) == 64
    # the same generator state gives the same noise, hence the same showers; batch 5 != 3
    # (the traced batch) exercises the dynamic batch dimension
    lo, hi = model.codec.training_range_mev
    e = torch.tensor([[lo], [hi], [np.sqrt(lo * hi)], [lo * 1.5], [hi / 2]], dtype=torch.float64)
    ref = model(e).sample((2,), generator=torch.Generator().manual_seed(9)).numpy()
    got = onnx_model(e).sample((2,), generator=torch.Generator().manual_seed(9)).numpy()
    assert got.shape == ref.shape == (2, 5, model.codec.n_voxels)
    res = compare_showers(got.reshape(10, -1), ref.reshape(10, -1), model.codec.threshold_mev)
    assert res.passed, res


def test_export_with_other_steps_and_solver(tmp_path: Path) -> None:
    meta = export_onnx(RUNS / "cfm-1", tmp_path / "m.onnx", steps=3, solver="euler", check_n=16)
    assert meta["physgen.sampling"]["steps"] == 3 and meta["physgen.sampling"]["solver"] == "euler"
    assert meta["physgen.check"]["passed"]
    torch_model = load_run(RUNS / "cfm-1", overrides={"steps": 3, "solver": "euler"})
    assert meta["physgen.latent"]["shape"][1] == torch_model.noise_dim


def test_compare_showers_hand_made() -> None:
    ref = np.array([[10.0, 2.0, 0.0, 1.00001], [5.0, 0.0, 3.0, 0.0]], dtype=np.float32)
    same = compare_showers(ref.copy(), ref, threshold_mev=1.0)
    assert same.passed and same.max_rel_diff == 0 and same.n_voxels_compared == 5
    off = ref.copy()
    off[0, 0] = 10.01  # 1e-3 relative
    res = compare_showers(off, ref, threshold_mev=1.0)
    assert not res.passed and res.max_rel_diff == pytest.approx(1e-3, rel=1e-3)
    flipped = ref.copy()
    flipped[0, 3] = 0.0  # a voxel 1e-5 above threshold falls below: borderline, allowed
    res = compare_showers(flipped, ref, threshold_mev=1.0)
    assert res.passed and res.borderline == 1 and res.pattern_mismatches == 0
    lost = ref.copy()
    lost[1, 2] = 0.0  # a 3 MeV voxel lost: a real pattern mismatch
    res = compare_showers(lost, ref, threshold_mev=1.0)
    assert not res.passed and res.pattern_mismatches == 1
    nan = ref.copy()
    nan[1, 0] = np.nan
    assert not compare_showers(nan, ref, threshold_mev=1.0).passed


def test_generate_with_onnxruntime_matches_torch(tmp_path: Path) -> None:
    onnx_path = tmp_path / "m.onnx"
    export_onnx(RUNS / "vae-1", onnx_path, check_n=16)
    model = load_run(RUNS / "vae-1")
    lo, hi = model.codec.training_range_mev
    energies = np.exp(np.random.default_rng(0).uniform(np.log(lo), np.log(hi), 2300))
    a = generate_showers(model, tmp_path / "torch.h5", energies=energies, seed=4)
    b = generate_showers(load_onnx(onnx_path), tmp_path / "onnx.h5", energies=energies, seed=4)
    c = generate_showers(
        load_onnx(onnx_path), tmp_path / "onnx-b7.h5", energies=energies, seed=4, batch_size=7
    )
    (ea, xa), (eb, xb), (_, xc) = read_showers(a), read_showers(b), read_showers(c)
    np.testing.assert_array_equal(ea, eb)
    assert compare_showers(xb, xa, model.codec.threshold_mev).passed
    np.testing.assert_array_equal(xb, xc)  # seed blocks: the batch size changes nothing


def test_cli_export_generate_timing(run: Run, tmp_path: Path) -> None:
    onnx_path = tmp_path / "flow.onnx"
    rc, out, err = run("export", RUNS / "flow-0", "--out", onnx_path, "--check-n", "32")
    assert rc == 0, err
    assert "max relative difference" in out and "[N, 368]" in out
    rc, out, err = run(
        "generate", onnx_path, "--backend", "onnxruntime", "--energy", "10GeV", "--n", "20",
        "--out", tmp_path / "o.h5", "--json", "--no-progress",
    )  # fmt: skip
    assert rc == 0, err
    d = json.loads(out)
    assert d["backend"] == "onnxruntime" and d["n_showers"] == 20 and d["model"] == "flow"
    rc, out, err = run(
        "timing", "--geometry", "1-photons", "--onnx", onnx_path, "--batch-sizes", "1,10",
        "--repeats", "2", "--json",
    )  # fmt: skip
    assert rc == 0, err
    t = json.loads(out)
    assert t["backend"] == "onnxruntime" and [b["batch_size"] for b in t["batches"]] == [1, 10]


def test_cli_export_bad_input(run: Run, tmp_path: Path) -> None:
    out = tmp_path / "m.onnx"
    one_line_error(*run("export", RUNS / "gan-0", "--out", out, "--opset", "13")[::2], "opset")
    one_line_error(
        *run("export", RUNS / "cfm-0", "--out", out, "--solver", "adaptive")[::2],
        "adaptive", "cannot be exported",
    )  # fmt: skip
    one_line_error(*run("export", RUNS / "gan-0", "--out", out, "--steps", "4")[::2], "--steps")
    one_line_error(
        *run("export", RUNS / "flow-1", "--out", out)[::2], "fully autoregressive", "shape_passes"
    )
    one_line_error(*run("export", tmp_path, "--out", out)[::2])
    assert not out.exists()
    # generate: an ONNX backend needs an exported file, and fixes the sampling options
    gen = ("--energy", "1GeV", "--n", "3", "--out", tmp_path / "x.h5")
    one_line_error(
        *run("generate", RUNS / "gan-0", "--backend", "onnxruntime", *gen)[::2], "run directory"
    )
    one_line_error(
        *run("generate", RUNS / "gan-0", "--backend", "tensorrt", *gen)[::2], "--backend"
    )
    not_physgen = tmp_path / "other.onnx"
    not_physgen.write_bytes(b"not an onnx model")
    one_line_error(
        *run("generate", not_physgen, "--backend", "onnxruntime", *gen)[::2],
        "ONNX Runtime cannot load",
    )
    assert not (tmp_path / "x.h5").exists()


def test_foreign_onnx_model_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "plain.onnx"
    torch.onnx.export(
        torch.nn.Linear(3, 2), (torch.zeros(1, 3),), str(p), dynamo=False, opset_version=17
    )
    with pytest.raises(DataFormatError, match="not a file written by physgen export"):
        load_onnx(p)


def test_failed_check_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import physgen.export.onnx as mod

    bad = ExportCheck(16, 3e-2, 100, 2, 0, False)
    monkeypatch.setattr(mod, "verify", lambda *a, **k: bad)
    out = tmp_path / "m.onnx"
    with pytest.raises(ExportError, match="does not reproduce"):
        export_onnx(RUNS / "vae-0", out, check_n=16)
    assert list(tmp_path.iterdir()) == []


def test_missing_onnxruntime_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    with pytest.raises(MissingDependencyError, match=r"physgen\[export\]"):
        export_onnx(RUNS / "vae-0", tmp_path / "m.onnx")
    with pytest.raises(MissingDependencyError, match=r"physgen\[export\]"):
        load_onnx(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_bad_check_size(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--check-n"):
        export_onnx(RUNS / "vae-0", tmp_path / "m.onnx", check_n=0)
