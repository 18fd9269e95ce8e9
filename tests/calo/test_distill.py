"""Straight-path distillation of a cfm run into a few-step student."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from physgen.calo.distill import DistillSettings, distill, teacher_pairs
from physgen.calo.io import write_showers
from physgen.calo.rundir import load_run, read_run_config
from physgen.errors import ConfigError
from showerdata import toy_showers


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny two-stage cfm trained for two epochs on toy 1-photons showers (RK4 x 4)."""
    from physgen.cli.main import main

    d = tmp_path_factory.mktemp("teacher")
    e, x = toy_showers(300, "1-photons", seed=0)
    data = write_showers(d / "train.h5", e, x)
    cfg = d / "cfg.yaml"
    cfg.write_text("model_config: {solver: rk4, steps: 4}\n")
    rc = main(["train", "--model", "cfm", "--preset", "tiny", "--geometry", "1-photons",
               "--config", str(cfg), "--data", str(data), "--out", str(d / "run"),
               "--epochs", "2", "--device", "cpu", "-q"])  # fmt: skip
    assert rc == 0
    return d / "run", data


def test_pairs_are_the_teachers_samples(teacher: tuple[Path, Path]) -> None:
    model = load_run(teacher[0])
    e = np.full(50, 3e4)
    p = teacher_pairs(model, e, seed=3, batch=20)
    assert p["z"].shape == (50, model.noise_dim)
    first, second = model.decode_encoded(p["z"], p["c"])
    np.testing.assert_allclose(second.detach().numpy(), p["second"].numpy(), atol=1e-5)
    assert first is not None and torch.allclose(first, p["first"], atol=1e-5)


def test_student_beats_the_teacher_at_its_step_count(
    teacher: tuple[Path, Path], tmp_path: Path
) -> None:
    """A 1-step student must land closer to the teacher's RK4 samples than the teacher's own
    single Euler step does (the oracle: the teacher's solver output)."""
    from physgen.calo.io import read_showers

    e, _ = read_showers(teacher[1])
    s = DistillSettings(steps=1, pairs=1000, max_steps=300, validate_every=100, lr=1e-3)
    summary = distill(teacher[0], tmp_path / "student", e, s)
    assert summary["endpoint_mse_student"] < 0.5 * summary["endpoint_mse_teacher_at_k_euler_steps"]
    # the student is a run: its summary has the keys every run's summary has
    assert {"status", "step", "best_val_loss", "elapsed_s"} <= summary.keys()
    assert json.loads((tmp_path / "student" / "summary.json").read_text()) == summary
    cfg = read_run_config(tmp_path / "student")
    assert cfg.model == "cfm" and cfg.model_config["solver"] == "euler"
    assert cfg.model_config["steps"] == 1
    student = load_run(tmp_path / "student")
    x = student(torch.full((20, 1), 3e4, dtype=torch.float64)).sample(
        generator=torch.Generator().manual_seed(0)
    )
    assert x.shape == (20, 368) and torch.isfinite(x).all()
    lines = (tmp_path / "student" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(ln)["step"] for ln in lines] == [100, 200, 300]


def test_bad_requests_are_refused(teacher: tuple[Path, Path], tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="steps"):
        DistillSettings(steps=0).check()
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("")
    with pytest.raises(ConfigError, match="not empty"):
        distill(teacher[0], tmp_path / "busy", np.full(10, 1e4), DistillSettings(pairs=100))
    with pytest.raises(ConfigError, match="not a directory"):
        distill(teacher[0], tmp_path / "busy" / "x", np.full(10, 1e4), DistillSettings(pairs=100))
    with pytest.raises(ConfigError, match="teacher batch"):
        DistillSettings(teacher_batch=0).check()
    rc, _, err = run("distill", teacher[0], "-o", tmp_path / "s2", "--energy", "10GeV",
                     "--steps", "40")  # fmt: skip
    assert rc == 2 and "--steps" in err
    rc, _, err = run("distill", teacher[0], "-o", tmp_path / "s3")
    assert rc == 2 and "--energies-from or --energy" in err


def test_cli_distill_json(teacher: tuple[Path, Path], tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    rc, out, err = run("distill", teacher[0], "-o", tmp_path / "s", "--energies-from", teacher[1],
                       "--steps", "2", "--pairs", "200", "--max-steps", "20", "--json")  # fmt: skip
    assert rc == 0, err
    d = json.loads(out)
    assert d["student_steps"] == 2 and d["optimiser_steps"] == 20


def test_failed_run_leaves_no_out_and_the_global_stream(
    teacher: tuple[Path, Path], tmp_path: Path
) -> None:
    """An interrupted distillation removes the --out it created, and the caller's global torch
    stream is the one it had before (the pairs and training use their own seeded streams)."""

    def stop(_: str) -> None:
        raise KeyboardInterrupt

    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    s = DistillSettings(steps=1, pairs=100, max_steps=20, validate_every=5)
    with pytest.raises(KeyboardInterrupt):
        distill(teacher[0], tmp_path / "student", np.full(10, 3e4), s, progress=stop)
    assert not (tmp_path / "student").exists()
    assert torch.equal(torch.random.get_rng_state(), before)
