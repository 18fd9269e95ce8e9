"""``physgen train`` / ``physgen generate``: durations, the bad-input contract, one happy path.

Bad input: exit status 2, one line ``error: ...`` on stderr, nothing written.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from clitools import Run, one_line_error
from physgen.calo.io import open_showers, validate_file, write_showers
from physgen.calo.rundir import REQUIRED_FILES
from physgen.cli.main import main
from physgen.cli.surrogate import parse_duration
from physgen.errors import ConfigError
from showerdata import make_showers, toy_showers

RUN_FILES = (
    "config.yaml",
    "transforms.json",
    "weights.pt",
    "checkpoint.pt",
    "metrics.jsonl",
    "provenance.json",
    "summary.json",
)


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------ parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2h", 7200.0),
        ("90m", 5400.0),
        ("90min", 5400.0),
        ("1h30m", 5400.0),
        ("1h 30m 15s", 5415.0),
        ("45s", 45.0),
        ("10", 10.0),
        ("0.5h", 1800.0),
        (" 2H ", 7200.0),
    ],
)
def test_parse_duration_ok(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("abc", "expected a duration"),
        ("", "expected a duration"),
        ("h", "expected a duration"),
        ("2d", "expected a duration"),
        ("30m1h", "expected a duration"),
        ("-1h", "expected a duration"),
        ("0", "must be > 0"),
        ("0h", "must be > 0"),
        ("-10", "must be > 0"),
    ],
)
def test_parse_duration_bad(text: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_duration(text)
    msg = str(info.value)
    assert msg.startswith("--max-time") and needle in msg and repr(text) in msg


def test_parse_duration_nan() -> None:
    with pytest.raises(ConfigError):
        parse_duration("nan")
    assert math.isfinite(parse_duration("1e3"))


# ------------------------------------------------------------------ fixtures: data and runs


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def train_file(data_dir: Path) -> Path:
    e, x = toy_showers(300, "1-photons", seed=0)
    return write_showers(data_dir / "train.h5", e, x, attrs={"geometry": "1-photons"})


def _train(tmp_root: Path, model: str, data: Path, name: str) -> tuple[Path, str]:
    out = tmp_root / name
    rc = main(
        [
            "train",
            "--model",
            model,
            "--geometry",
            "1-photons",
            "--preset",
            "tiny",
            "--epochs",
            "1",
            "--data",
            str(data),
            "--out",
            str(out),
            "--no-progress",
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    return out, model


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory: pytest.TempPathFactory, train_file: Path) -> Path:
    return _train(tmp_path_factory.mktemp("runs"), "flow", train_file, "flow_run")[0]


@pytest.fixture(scope="module")
def cfm_run(tmp_path_factory: pytest.TempPathFactory, train_file: Path) -> Path:
    return _train(tmp_path_factory.mktemp("runs"), "cfm", train_file, "cfm_run")[0]


# ------------------------------------------------------------------ happy path


def test_train_and_generate_flow(
    run: Run, flow_run: Path, train_file: Path, tmp_path: Path
) -> None:
    for name in RUN_FILES:
        assert (flow_run / name).is_file(), name
    assert set(REQUIRED_FILES) <= set(RUN_FILES)
    w = torch.load(flow_run / "weights.pt", map_location="cpu", weights_only=True)
    assert w["model"] == "flow" and isinstance(w["state_dict"], dict) and w["state_dict"]
    ck = torch.load(flow_run / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert ck["model"] == "flow"
    cfg = yaml.safe_load((flow_run / "config.yaml").read_text())
    assert cfg["model"] == "flow" and cfg["geometry"] == "1-photons"
    assert cfg["optim"]["epochs"] == 1
    tr = json.loads((flow_run / "transforms.json").read_text())
    assert sum(tr["layer_sizes"]) == 368
    summary = json.loads((flow_run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epoch"] == 1
    assert summary["step"] == summary["total_steps"] >= 1
    assert math.isfinite(summary["best_val_loss"])
    metrics = [json.loads(ln) for ln in (flow_run / "metrics.jsonl").read_text().splitlines()]
    assert metrics and all("step" in m for m in metrics)
    prov = json.loads((flow_run / "provenance.json").read_text())
    assert prov["geometry"] == "1-photons" and prov["n_showers"] == 300

    out = tmp_path / "gen.h5"
    rc, text, err = run(
        "generate", flow_run, "--energies-from", train_file, "--out", out, "--no-progress"
    )
    assert rc == 0, err
    assert "300 showers" in text and "flow" in text
    f = validate_file(out, "1-photons")
    assert f.n_showers == 300 and f.n_voxels == 368
    with open_showers(out) as h:
        assert h.attrs["model"] == "flow" and h.attrs["geometry"] == "1-photons"


def test_generate_energy_spec_and_shard(run: Run, cfm_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.h5"
    rc, _, err = run(
        "generate",
        cfm_run,
        "--energy",
        "4GeV",
        "--n",
        "30",
        "--out",
        out,
        "--no-progress",
        "--steps",
        "2",
        "--solver",
        "euler",
        "--shard",
        "1/1",
    )
    assert rc == 0, err
    with open_showers(out) as h:
        assert h.n_showers == 30
        assert abs(float(h.energies[()].min()) - 4000.0) < 1e-6
        assert float(h.energies[()].max()) == float(h.energies[()].min())


# ------------------------------------------------------------------ train: bad input


def test_train_wrong_geometry_data(run: Run, tmp_path: Path) -> None:
    bad = write_showers(tmp_path / "ds2.h5", *make_showers(20, 6480))
    out = tmp_path / "run"
    rc, _, err = run(
        "train",
        "--model",
        "cfm",
        "--geometry",
        "1-photons",
        "--preset",
        "tiny",
        "--data",
        bad,
        "--out",
        out,
        "--no-progress",
    )
    one_line_error(rc, err, str(bad), "6480")
    assert not out.exists()


@pytest.mark.parametrize(
    ("body", "needles"),
    [
        ({"optim": {"lr": 1e-3, "bogus_key": 1}}, ["bogus_key"]),
        ({"model_config": {"hiddn": 3}}, ["hiddn"]),
        ({"optim": {"lr": "fast"}}, ["optim.lr", "expected a number"]),
        ({"optim": {"epochs": 1.5}}, ["optim.epochs", "expected an integer"]),
        ({"model_config": {"two_stage": "yes"}}, ["two_stage", "true/false"]),
        ({"model": "flow"}, ["model is 'flow'", "'cfm'"]),
        ("optim: [1, 2\n", ["invalid YAML"]),
        ({"data": {"validation_fraction": 1.5}}, ["data.validation_fraction"]),
    ],
)
def test_train_bad_config(
    run: Run, train_file: Path, tmp_path: Path, body: object, needles: list[str]
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(body if isinstance(body, str) else yaml.safe_dump(body))
    out = tmp_path / "run"
    rc, _, err = run(
        "train",
        "--model",
        "cfm",
        "--geometry",
        "1-photons",
        "--config",
        cfg,
        "--data",
        train_file,
        "--out",
        out,
        "--no-progress",
    )
    one_line_error(rc, err, *needles)
    assert not out.exists()


def test_train_existing_nonempty_out(run: Run, train_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = _tree(out)
    rc, _, err = run(
        "train",
        "--model",
        "cfm",
        "--geometry",
        "1-photons",
        "--preset",
        "tiny",
        "--data",
        train_file,
        "--out",
        out,
        "--no-progress",
    )
    one_line_error(rc, err, str(out), "not empty", "choose a new --out")
    assert _tree(out) == before


def test_train_resume_without_checkpoint(
    run: Run, train_file: Path, cfm_run: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    rc, _, err = run("train", "--resume", "--data", train_file, "--out", empty, "--no-progress")
    one_line_error(rc, err, str(empty), "config.yaml missing")
    assert list(empty.iterdir()) == []
    no_ck = tmp_path / "no_ck"
    shutil.copytree(cfm_run, no_ck)
    (no_ck / "checkpoint.pt").unlink()
    before = _tree(no_ck)
    rc, _, err = run("train", "--resume", "--data", train_file, "--out", no_ck, "--no-progress")
    one_line_error(rc, err, str(no_ck), "checkpoint.pt missing")
    assert _tree(no_ck) == before


def test_train_bad_options(run: Run, train_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    base = ("train", "--data", train_file, "--out", out, "--no-progress")
    rc, _, err = run(*base, "--model", "cfm")
    one_line_error(rc, err, "--model and --geometry are required")
    rc, _, err = run(*base, "--model", "nosuch", "--geometry", "1-photons")
    one_line_error(rc, err, "unknown model 'nosuch'")
    rc, _, err = run(*base, "--model", "cfm", "--geometry", "1-photons", "--max-time", "abc")
    one_line_error(rc, err, "--max-time", "'abc'")
    assert not out.exists()


# ------------------------------------------------------------------ generate: bad input


def test_generate_missing_weights(
    run: Run, flow_run: Path, train_file: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(flow_run, broken)
    (broken / "weights.pt").unlink()
    out = tmp_path / "g.h5"
    rc, _, err = run("generate", broken, "--energies-from", train_file, "--out", out)
    one_line_error(rc, err, str(broken), "missing weights.pt")
    assert not out.exists()


@pytest.mark.parametrize("how", ["copy flow config", "edit model"])
def test_generate_weights_of_another_model(
    run: Run, cfm_run: Path, flow_run: Path, train_file: Path, tmp_path: Path, how: str
) -> None:
    mixed = tmp_path / "mixed"
    shutil.copytree(cfm_run, mixed)
    if how == "copy flow config":
        shutil.copy(flow_run / "config.yaml", mixed / "config.yaml")
    else:
        cfg = yaml.safe_load((mixed / "config.yaml").read_text())
        cfg["model"] = "flow"
        (mixed / "config.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "g.h5"
    rc, _, err = run("generate", mixed, "--energies-from", train_file, "--out", out)
    one_line_error(rc, err, "weights.pt", "written by model 'cfm'", "'flow'")
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--energies-from", "TRAIN", "--shard", "0/2"], ["--shard", "'0/2'"]),
        (["--energies-from", "TRAIN", "--shard", "3/2"], ["--shard"]),
        (["--energy", "10GeV"], ["--energy needs --n"]),
        ([], ["exactly one of --energies-from or --energy"]),
        (["--energy", "10GeV", "--n", "5", "--energies-from", "TRAIN"], ["exactly one of"]),
        (["--energy", "10GeV", "--n", "0"], ["--n", ">= 1"]),
        (["--energies-from", "TRAIN", "--n", "301"], ["--n 301 exceeds the 300 showers"]),
        (
            ["--energies-from", "TRAIN", "--steps", "4"],
            ["--steps applies to cfm and diffusion", "'flow'"],
        ),
    ],
)
def test_generate_bad_options(
    run: Run,
    flow_run: Path,
    train_file: Path,
    tmp_path: Path,
    args: list[str],
    needles: list[str],
) -> None:
    out = tmp_path / "g.h5"
    argv = [str(train_file) if a == "TRAIN" else a for a in args]
    rc, _, err = run("generate", flow_run, "--out", out, "--no-progress", *argv)
    one_line_error(rc, err, *needles)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".g.h5")]


def test_generate_not_a_run_dir(run: Run, train_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "g.h5"
    rc, _, err = run("generate", tmp_path / "nope", "--energies-from", train_file, "--out", out)
    one_line_error(rc, err, "no such run directory")
    rc, _, err = run("generate", tmp_path, "--energies-from", train_file, "--out", out)
    one_line_error(rc, err, "config.yaml missing")
    assert not out.exists()


def test_load_run_accepts_only_sampling_overrides(cfm_run: Path) -> None:
    from physgen.calo.rundir import load_run

    model = load_run(cfm_run, overrides={"steps": 2, "solver": "euler"})
    assert model.config.steps == 2 and model.config.solver == "euler"
    msg = "cfm: hidden cannot change after training; sampling options of cfm: steps, solver"
    with pytest.raises(ConfigError, match=msg):
        load_run(cfm_run, overrides={"hidden": 8, "steps": 2})
