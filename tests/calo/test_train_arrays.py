"""``physgen.calo.train.train`` on in-memory arrays: the same training as on a file holding the
same rows, provenance with shapes, dtypes and SHA-256, and resume only on the same arrays."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from physgen.calo.config import load_config
from physgen.calo.data import ShowerData, shower_arrays
from physgen.calo.geometry import get_geometry
from physgen.calo.io import write_showers
from physgen.calo.rundir import load_run
from physgen.calo.train import train
from physgen.errors import ConfigError, DataFormatError
from showerdata import toy_showers

TINY_CFM = {
    "hidden": 32,
    "blocks": 1,
    "energy_hidden": 16,
    "energy_blocks": 1,
    "time_features": 8,
    "steps": 2,
}
GEO = get_geometry("1-photons")


@pytest.fixture(scope="module")
def arrays() -> tuple[np.ndarray, np.ndarray]:
    e, x = toy_showers(300, "1-photons", seed=1)
    return e.reshape(-1), x  # (N,) float64 MeV, (N, 368) float32 MeV


@pytest.fixture(scope="module")
def data_file(arrays, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.h5"
    write_showers(path, *arrays, attrs={"geometry": "1-photons"})
    return path


def tiny_config(**optim):
    o = {"batch_size": 64, "epochs": 2, "warmup_steps": 2, "checkpoint_every": 3, **optim}
    return load_config("cfm", "1-photons", overrides={"model_config": TINY_CFM, "optim": o})


def weights(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "checkpoint.pt", weights_only=True)["state_dict"]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k


def test_arrays_train_bitwise_like_the_file(arrays, data_file, tmp_path):
    cfg = tiny_config()
    on_file = train(cfg, data_file, tmp_path / "file", progress=False, stop_after_steps=5)
    on_arrays = train(cfg, arrays, tmp_path / "arrays", progress=False, stop_after_steps=5)
    assert on_file.step == on_arrays.step == 5
    assert_same_weights(tmp_path / "file", tmp_path / "arrays")
    # torch tensors, energies as (N, 1) float32 holding the same values: the same training
    e, x = arrays
    tensors = (torch.tensor(e, dtype=torch.float32)[:, None], torch.tensor(x))
    assert torch.equal(tensors[0][:, 0].double(), torch.tensor(e))  # exact in float32
    train(cfg, tensors, tmp_path / "tensors", progress=False, stop_after_steps=5)
    assert_same_weights(tmp_path / "file", tmp_path / "tensors")

    prov = json.loads((tmp_path / "arrays" / "provenance.json").read_text())
    expected = hashlib.sha256(e.astype("<f8").tobytes() + x.astype("<f4").tobytes()).hexdigest()
    assert prov["data"] == {
        "source": "in-memory arrays",
        "incident_energies": {"shape": [300], "dtype": "float64"},
        "showers": {"shape": [300, 368], "dtype": "float32"},
        "sha256": expected,
    }
    assert prov["streaming"] is False and prov["n_train"] + prov["n_validation"] == 300
    prov_t = json.loads((tmp_path / "tensors" / "provenance.json").read_text())
    assert prov_t["data"]["incident_energies"] == {"shape": [300, 1], "dtype": "float32"}
    assert prov_t["data"]["sha256"] == expected  # the hash of the data training sees
    prov_f = json.loads((tmp_path / "file" / "provenance.json").read_text())
    assert prov_f["data"] == str(data_file.resolve())  # files: the path, as before
    model = load_run(tmp_path / "arrays")
    assert torch.isfinite(model(torch.full((3, 1), 6.5e4)).sample()).all()


def test_arrays_are_never_streamed(arrays, data_file):
    cfg = tiny_config().data
    cfg.max_in_memory_gb = 1e-9
    cfg.stream_block = 16
    assert ShowerData(data_file, GEO, cfg, 0).streaming
    d = ShowerData(arrays, GEO, cfg, 0)
    assert not d.streaming and d.path is None and d.n_train + d.val_blocks.size == 300


def test_resume_needs_the_same_arrays(arrays, tmp_path):
    cfg = tiny_config()
    full = train(cfg, arrays, tmp_path / "full", progress=False)
    assert full.status == "completed"
    run = tmp_path / "part"
    assert train(cfg, arrays, run, progress=False, stop_after_steps=4).status == "stopped"

    with pytest.raises(ConfigError, match=r"pass the same \(incident_energies, showers\) arrays"):
        train(None, None, run, resume=True, progress=False)
    e, x = arrays
    other = (e, x.copy())
    other[1][0, 0] += 1.0
    with pytest.raises(ConfigError, match="SHA-256 mismatch") as info:
        train(None, other, run, resume=True, progress=False)
    assert shower_arrays(other, GEO)[2]["sha256"] in str(info.value)
    assert shower_arrays(arrays, GEO)[2]["sha256"] in str(info.value)
    with pytest.raises(ConfigError, match=r"trained on in-memory arrays.*got the file"):
        train(None, tmp_path / "any.h5", run, resume=True, progress=False)

    done = train(None, (e.copy(), x.copy()), run, resume=True, progress=False)
    assert done.status == "completed" and done.step == full.step
    assert_same_weights(tmp_path / "full", run)
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["data"]["source"] == "in-memory arrays" and len(prov["resumed"]) == 1


def test_a_file_run_resumes_only_on_its_file(arrays, data_file, tmp_path):
    run = tmp_path / "run"
    train(tiny_config(), data_file, run, progress=False, stop_after_steps=2)
    with pytest.raises(ConfigError, match=r"trained on the file .*resume it with that file"):
        train(None, arrays, run, resume=True, progress=False)
    with pytest.raises(ConfigError, match="pass the run's training file as data"):
        train(None, None, run, resume=True, progress=False)
    assert train(None, data_file, run, resume=True, progress=False).status == "completed"


def test_no_data_for_a_new_run(tmp_path):
    with pytest.raises(ConfigError, match="data is needed"):
        train(tiny_config(), None, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e, x: (e, x[:, :100]), r"showers must be \(N, 368\) for geometry '1-photons'"),
        (lambda e, x: (e[:-1], x), "299 incident energies but 300 showers"),
        (lambda e, x: (np.stack([e, e], 1), x), r"incident energies must be \(N,\) or \(N, 1\)"),
        (lambda e, x: (e[:0], x[:0]), "no showers"),
        (lambda e, x: (np.where(np.arange(300) == 7, -1.0, e), x), "must be > 0 MeV, row 7"),
        (lambda e, x: (e, np.where(np.arange(300)[:, None] == 4, np.nan, x)), "NaN or inf"),
        (lambda e, x: (e, -x), "negative voxel energies"),
        (lambda e, x: (e.astype(str), x), "must be numeric"),
        (lambda e, x: e, "expected a file path or a pair"),
        (lambda e, x: (e[:1], x[:1]), "1 showers are too few for a train/validation split"),
    ],
)
def test_bad_arrays_give_one_line_errors(arrays, tmp_path, mutate, message):
    with pytest.raises(DataFormatError, match=message) as info:
        train(tiny_config(), mutate(*arrays), tmp_path / "run", progress=False)
    assert str(info.value).startswith("in-memory data: ") and "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()  # nothing left behind
