"""Trainer: exact resume, max-time stop, early stopping, streaming data, 2-process DDP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from physgen.calo import train as trainer_mod
from physgen.calo.config import load_config
from physgen.calo.data import ShowerData
from physgen.calo.geometry import get_geometry
from physgen.calo.io import write_showers
from physgen.calo.rundir import load_run
from physgen.calo.train import train
from physgen.errors import ConfigError
from physgen.train import loop as loop_mod
from showerdata import toy_showers

TINY = {
    "gan": {"latent": 4, "hidden": 16, "blocks": 1, "critic_hidden": 16, "critic_blocks": 1},
    "cfm": {
        "hidden": 32,
        "blocks": 1,
        "energy_hidden": 16,
        "energy_blocks": 1,
        "time_features": 8,
        "steps": 2,
    },
    "flow": {
        "energy_transforms": 1,
        "energy_hidden": [8],
        "shape_kind": "maf",
        "shape_transforms": 2,
        "shape_hidden": [16],
    },
}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory) -> Path:
    e, x = toy_showers(500, "1-photons", seed=1)
    path = tmp_path_factory.mktemp("data") / "train.h5"
    write_showers(path, e, x, attrs={"geometry": "1-photons"})
    return path


def tiny_config(model: str, **optim):
    o = {
        "batch_size": 64,
        "epochs": 3,
        "warmup_steps": 3,
        "checkpoint_every": 4,
        "validate_every": 5,
        **optim,
    }
    return load_config(model, "1-photons", overrides={"model_config": TINY[model], "optim": o})


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", weights_only=True)["state_dict"]


@pytest.mark.parametrize("model", ["cfm", "flow"])
def test_resume_gives_the_same_final_weights(model, data_file, tmp_path):
    cfg = tiny_config(model)
    full = train(cfg, data_file, tmp_path / "full", progress=False)
    assert full.status == "completed" and full.step == 3 * (450 // 64)
    part = train(cfg, data_file, tmp_path / "part", progress=False, stop_after_steps=9)
    assert part.status == "stopped" and part.step == 9  # mid-epoch, between checkpoints
    done = train(None, data_file, tmp_path / "part", resume=True, progress=False)
    assert done.status == "completed" and done.step == full.step
    a, b = weights(tmp_path / "full"), weights(tmp_path / "part")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    wa = torch.load(tmp_path / "full" / "weights.pt", weights_only=True)
    wb = torch.load(tmp_path / "part" / "weights.pt", weights_only=True)
    assert wa["step"] == wb["step"] and wa["val_loss"] == wb["val_loss"]
    # the metrics log holds each step once
    steps = [
        json.loads(ln)["step"]
        for ln in (tmp_path / "part" / "metrics.jsonl").open()
        if "loss" in json.loads(ln)
    ]
    assert steps == sorted(set(steps))


def test_run_directory_contents_and_loading(data_file, tmp_path):
    res = train(tiny_config("cfm"), data_file, tmp_path / "run", progress=False)
    run = tmp_path / "run"
    for name in (
        "config.yaml",
        "transforms.json",
        "weights.pt",
        "checkpoint.pt",
        "metrics.jsonl",
        "provenance.json",
        "summary.json",
    ):
        assert (run / name).is_file(), name
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["seed"] == 0 and prov["n_train"] + prov["n_validation"] == 500
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["n_parameters"] == res.n_parameters
    tr = json.loads((run / "transforms.json").read_text())
    assert tr["mode"] == "layers" and tr["threshold_mev"] == 1.0 and tr["k"] > 1
    model = load_run(run)
    x = model(torch.full((5, 1), 6.5e4)).sample(generator=torch.Generator().manual_seed(0))
    assert x.shape == (5, 368) and torch.isfinite(x).all()
    lines = [json.loads(ln) for ln in (run / "metrics.jsonl").open()]
    assert any("val_loss" in ln for ln in lines) and all(ln["step"] >= 1 for ln in lines)


def test_same_seed_same_weights_other_seed_differs(data_file, tmp_path):
    cfg = tiny_config("flow", epochs=1)
    train(cfg, data_file, tmp_path / "a", progress=False)
    train(cfg, data_file, tmp_path / "b", progress=False)
    cfg.seed = 1
    train(cfg, data_file, tmp_path / "c", progress=False)
    a, b, c = (weights(tmp_path / n) for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_max_time_stops_with_a_checkpoint_and_resumes(data_file, tmp_path):
    cfg = tiny_config("cfm", epochs=50)
    res = train(cfg, data_file, tmp_path / "run", progress=False, max_time_s=1e-9)
    assert res.status == "max-time" and res.step == 1
    ck = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert ck["status"] == "max-time" and ck["step"] == 1
    res2 = train(None, data_file, tmp_path / "run", resume=True, progress=False, max_time_s=1e-9)
    assert res2.step == 2
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["elapsed_total_s"] > summary["elapsed_s"] > 0  # both sessions counted


def test_early_stopping(data_file, tmp_path, monkeypatch):
    values = iter([1.0, 0.5, 0.6, 0.7, 0.8, 0.9] + [1.0] * 100)
    monkeypatch.setattr(loop_mod, "_validation_loss", lambda *a, **k: next(values))
    cfg = tiny_config("cfm", epochs=20, patience=3, validate_every=1)
    res = train(cfg, data_file, tmp_path / "run", progress=False)
    assert res.status == "early-stopped"
    assert res.step == 5 and res.best_val_loss == 0.5
    assert torch.load(tmp_path / "run" / "weights.pt", weights_only=True)["step"] == 2
    with pytest.raises(ConfigError, match="already ended"):
        train(None, data_file, tmp_path / "run", resume=True, progress=False)


def test_early_stopping_min_delta(data_file, tmp_path, monkeypatch):
    """Improvements smaller than min_delta do not reset the patience; the best weights are
    still those of the lowest validation loss."""
    values = iter([1.0, 0.5, 0.49, 0.48, 0.47, 0.46] + [1.0] * 100)
    monkeypatch.setattr(loop_mod, "_validation_loss", lambda *a, **k: next(values))
    cfg = tiny_config("cfm", epochs=20, patience=3, validate_every=1, min_delta=0.05)
    res = train(cfg, data_file, tmp_path / "run", progress=False)
    # 0.5 beats 1.0 by more than 0.05; 0.49, 0.48, 0.47 do not beat 0.5 - 0.05: stop at 5
    assert res.status == "early-stopped" and res.step == 5
    assert res.best_val_loss == 0.47
    assert torch.load(tmp_path / "run" / "weights.pt", weights_only=True)["step"] == 5
    with pytest.raises(ConfigError, match="min_delta"):
        tiny_config("cfm", min_delta=-1.0)


def test_streaming_matches_the_split_and_trains(data_file, tmp_path):
    cfg = tiny_config("cfm", epochs=1)
    cfg.data.max_in_memory_gb = 1e-9
    cfg.data.stream_block = 16
    d = ShowerData(
        data_file,
        get_geometry("1-photons"),
        cfg.data,
        cfg.seed,
    )
    assert d.streaming and d.n_train + d._rows(d.val_blocks).size == 500
    b1 = [x for _, x in d.batches(0, 64)]
    b2 = [x for _, x in d.batches(0, 64)]
    assert len(b1) == d.steps_per_epoch(64) and all((p == q).all() for p, q in zip(b1, b2))
    skipped = [x for _, x in d.batches(0, 64, skip=2)]
    assert all((p == q).all() for p, q in zip(b1[2:], skipped))
    res = train(cfg, data_file, tmp_path / "run", progress=False)
    assert (
        res.status == "completed"
        and json.loads((tmp_path / "run" / "provenance.json").read_text())["streaming"]
    )


@pytest.mark.parametrize("model", ["flow", "gan"])
def test_torchrun_two_processes_gloo(model, data_file, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which(
        "torchrun"
    )
    if torchrun is None:
        pytest.skip("torchrun not found next to the Python executable")
    cfg_file = tmp_path / "tiny.yaml"
    cfg_file.write_text(
        "model_config: " + json.dumps(TINY[model]) + "\n"
        "optim: {batch_size: 64, epochs: 2, warmup_steps: 2}\n"
    )
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc-per-node",
            "2",
            "-m",
            "physgen",
            "train",
            "--model",
            model,
            "--geometry",
            "1-photons",
            "--config",
            str(cfg_file),
            "--data",
            str(data_file),
            "--out",
            str(run),
            "--device",
            "cpu",
            "--no-progress",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["world_size"] == 2
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["step"] == 2 * (450 // 64)
    assert summary["best_val_loss"] < 10
    trained = load_run(run)
    assert torch.isfinite(trained(torch.full((3, 1), 1e4)).sample()).all()


def test_crash_between_checkpoints_resumes_from_the_last_one(data_file, tmp_path, monkeypatch):
    """A hard failure at step 11 leaves the periodic checkpoint of step 8; resuming from it
    still ends on the uninterrupted run's weights."""
    cfg = tiny_config("cfm")
    full = train(cfg, data_file, tmp_path / "full", progress=False)
    original = ShowerData.batches
    served = {"n": 0}

    def failing(self, *args, **kwargs):
        for item in original(self, *args, **kwargs):
            served["n"] += 1
            if served["n"] == 11:
                raise RuntimeError("node lost")
            yield item

    monkeypatch.setattr(ShowerData, "batches", failing)
    with pytest.raises(RuntimeError, match="node lost"):
        train(cfg, data_file, tmp_path / "crash", progress=False)
    monkeypatch.setattr(ShowerData, "batches", original)
    assert torch.load(tmp_path / "crash" / "checkpoint.pt", weights_only=True)["step"] == 8
    done = train(None, data_file, tmp_path / "crash", resume=True, progress=False)
    assert done.step == full.step
    a, b = weights(tmp_path / "full"), weights(tmp_path / "crash")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_augmentation_is_seeded_resumes_exactly_and_changes_training(data_file, tmp_path):
    cfg = tiny_config("cfm")
    cfg.data.augment = "rotate+reflect"
    full = train(cfg, data_file, tmp_path / "full", progress=False)
    train(cfg, data_file, tmp_path / "part", progress=False, stop_after_steps=9)
    done = train(None, data_file, tmp_path / "part", resume=True, progress=False)
    assert done.step == full.step
    a, b = weights(tmp_path / "full"), weights(tmp_path / "part")
    assert all(torch.equal(a[k], b[k]) for k in a)
    plain = tiny_config("cfm")
    train(plain, data_file, tmp_path / "plain", progress=False)
    c = weights(tmp_path / "plain")
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_augmentation_warns_on_asymmetric_showers(caplog):
    import numpy as np

    geo = get_geometry("1-photons")
    _, x = toy_showers(400, "1-photons", seed=2)
    perms = geo.azimuthal_symmetries()
    symmetric = np.mean([x[:, p] for p in perms], axis=0)
    with caplog.at_level("WARNING"):
        got = trainer_mod._symmetry_permutations(geo, "rotate+reflect", symmetric)
    assert got is not None and got.shape == (20, 368) and not caplog.records
    lopsided = symmetric.copy()
    sl = geo.layer_slice(2)
    block = lopsided[:, sl].reshape(-1, 10, 19)
    block[:, 0] *= 2.0  # alpha bin 0 of layer 2 gets twice the energy
    lopsided[:, sl] = block.reshape(-1, 190)
    with caplog.at_level("WARNING"):
        trainer_mod._symmetry_permutations(geo, "rotate", lopsided)
    assert "layer 2's energy fraction per alpha bin varies" in caplog.text
    assert trainer_mod._symmetry_permutations(geo, "none", lopsided) is None


def test_augment_permutes_each_row_by_a_group_element():
    import numpy as np

    perms = get_geometry("1-photons").azimuthal_symmetries()
    x = np.random.default_rng(0).exponential(size=(64, 368)).astype(np.float32)
    out = trainer_mod._augment(x, perms, torch.Generator().manual_seed(0))
    rows = [{x[i, p].tobytes() for p in perms} for i in range(64)]
    assert all(out[i].tobytes() in rows[i] for i in range(64))
    assert not np.array_equal(out, x)


def test_stop_signals_set_a_flag_and_restore_the_handlers():
    import signal

    before = signal.getsignal(signal.SIGTERM)
    with loop_mod._StopSignals() as sig:
        assert signal.getsignal(signal.SIGTERM) is not before
        os.kill(os.getpid(), signal.SIGTERM)
        assert sig.received == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


def test_sigterm_stops_with_a_checkpoint_and_the_run_resumes(data_file, tmp_path):
    import signal
    import time

    run = tmp_path / "run"
    cfg = tiny_config("cfm", epochs=100_000)
    cfg_file = tmp_path / "cfg.yaml"
    from physgen.calo.rundir import config_yaml

    cfg_file.write_text(config_yaml(cfg))
    cmd = [sys.executable, "-m", "physgen", "train", "--model", "cfm", "--geometry", "1-photons"]
    cmd += ["--config", str(cfg_file), "--data", str(data_file), "--out", str(run)]
    proc = subprocess.Popen(
        [*cmd, "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoint.pt").is_file():  # training is under way
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert out.startswith("interrupted: ") and "continue with: physgen train --resume" in out
    assert "SIGTERM: stopping after this step" in err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["status"] == "interrupted" and ck["step"] == summary["step"]
    res = train(None, data_file, run, resume=True, progress=False, stop_after_steps=ck["step"] + 2)
    assert res.status == "stopped" and res.step == ck["step"] + 2
