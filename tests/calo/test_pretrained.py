"""Shipped pretrained models: packing, checksums, loading, and ``generate --pretrained``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from physgen.calo.io import read_showers, write_showers
from physgen.calo.pretrained import available_pretrained, load_pretrained, pack_run
from physgen.calo.rundir import load_run
from physgen.errors import ConfigError
from showerdata import toy_showers


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny GAN trained for one epoch on toy 1-photons showers."""
    from physgen.cli.main import main

    d = tmp_path_factory.mktemp("pre")
    e, x = toy_showers(200, "1-photons", seed=0)
    data = write_showers(d / "train.h5", e, x)
    out = d / "run"
    rc = main(["train", "--model", "gan", "--preset", "tiny", "--geometry", "1-photons",
               "--data", str(data), "--out", str(out), "--epochs", "1", "--no-progress",
               "--device", "cpu", "-q"])  # fmt: skip
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def packed(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("shipped")
    prov = {"training": "physgen train --model gan --preset tiny ...", "data": "toy"}
    pack_run(tiny_run, "toy-gan", description="a test", provenance=prov, omit=("critic.",),
             directory=d)  # fmt: skip
    return d


def test_shipped_models_are_small_and_documented() -> None:
    known = available_pretrained()
    assert "gan-1-photons" in known
    for info in known.values():
        assert 0 < info.size_bytes <= 5_000_000
        assert info.description
        assert {"data", "training", "scores"} <= set(info.provenance)
        text = info.path.with_suffix(".json").read_text()
        assert '"/' not in text, "a shipped manifest names a directory of the packing machine"


def test_shipped_gan_generates_physical_showers() -> None:
    model = load_pretrained("gan-1-photons")
    e = torch.full((400, 1), 65536.0, dtype=torch.float64)
    x = model(e).sample(generator=torch.Generator().manual_seed(0)).numpy()
    assert x.shape == (400, 368) and np.isfinite(x).all() and (x >= 0).all()
    ratio = x.sum(1) / 65536.0
    # the cascade deposits 0.9-1.0 of a 65 GeV photon in this calorimeter; a working model too
    assert 0.8 < np.median(ratio) < 1.05


def test_pack_keeps_generation_and_drops_the_critic(tiny_run: Path, packed: Path) -> None:
    obj = torch.load(packed / "toy-gan.pt", weights_only=True)
    keys = obj["state_dict"].keys()
    assert not any(k.startswith("critic.") for k in keys)
    assert all(
        v.dtype == torch.float16
        for k, v in obj["state_dict"].items()
        if v.is_floating_point() and not k.startswith("codec.")
    )
    full = load_run(tiny_run)
    shipped = load_pretrained("toy-gan", directory=packed)
    e = torch.full((300, 1), 20000.0, dtype=torch.float64)
    a = full(e).sample(generator=torch.Generator().manual_seed(3)).numpy()
    b = shipped(e).sample(generator=torch.Generator().manual_seed(3)).numpy()
    # float16 weights: the total energies agree to 2 % (typically 1e-5; a threshold voxel may flip)
    np.testing.assert_allclose(b.sum(1), a.sum(1), rtol=2e-2)
    manifest = json.loads((packed / "toy-gan.json").read_text())
    assert manifest["omitted"] == ["critic."] and manifest["provenance"]["data"] == "toy"
    assert manifest["provenance"]["run"]["provenance.json"]["data"] == "train.h5"


def test_tampered_or_unknown_models_are_refused(packed: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="shipped: toy-gan"):
        load_pretrained("nope", directory=packed)
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in packed.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    blob = bytearray((bad / "toy-gan.pt").read_bytes())
    blob[-100] ^= 0xFF
    (bad / "toy-gan.pt").write_bytes(bytes(blob))
    with pytest.raises(ConfigError, match="checksum"):
        load_pretrained("toy-gan", directory=bad)


def test_pack_rejects_bad_names(tiny_run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="name"):
        pack_run(tiny_run, "../x", description="", provenance={}, directory=tmp_path)
    with pytest.raises(ConfigError, match="start with"):  # read as an option on the CLI
        pack_run(tiny_run, "-x", description="", provenance={}, directory=tmp_path)
    with pytest.raises(ConfigError, match="reserved"):  # generate --pretrained list
        pack_run(tiny_run, "list", description="", provenance={}, directory=tmp_path)
    assert not any(tmp_path.iterdir())


def _copy(packed: Path, dest: Path) -> Path:
    dest.mkdir()
    for f in packed.iterdir():
        (dest / f.name).write_bytes(f.read_bytes())
    return dest


def test_missing_or_non_plain_weights_are_refused(packed: Path, tmp_path: Path) -> None:
    """A pickle that weights_only refuses, even with a matching checksum, is a ConfigError."""
    import hashlib
    import io

    from physgen.calo.pretrained import FORMAT

    gone = _copy(packed, tmp_path / "gone")
    (gone / "toy-gan.pt").unlink()
    with pytest.raises(ConfigError, match="missing"):
        load_pretrained("toy-gan", directory=gone)
    evil = _copy(packed, tmp_path / "evil")
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "model": "gan", "state_dict": {}, "x": Path("/")}, buf)
    (evil / "toy-gan.pt").write_bytes(buf.getvalue())
    manifest = json.loads((evil / "toy-gan.json").read_text())
    manifest["sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    (evil / "toy-gan.json").write_text(json.dumps(manifest))
    with pytest.raises(ConfigError, match="plain weights"):
        load_pretrained("toy-gan", directory=evil)


def test_cli_generate_pretrained(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    rc, out, _ = run("generate", "--pretrained", "list", "--json")
    assert rc == 0 and json.loads(out)[0]["name"] == "gan-1-photons"
    rc, out, _ = run("generate", "--pretrained", "list")
    assert rc == 0 and "gan-1-photons" in out and "training:" in out
    dest = tmp_path / "g.h5"
    rc, out, err = run("generate", "--pretrained", "gan-1-photons", "--energy", "10GeV",
                       "--n", "50", "--seed", "1", "-o", dest, "--json")  # fmt: skip
    assert rc == 0, err
    assert json.loads(out)["model"] == "gan"
    e, x = read_showers(dest)
    assert x.shape == (50, 368) and np.allclose(e, 10_000.0)
    rc, _, err = run("generate", "--pretrained", "nope", "-o", tmp_path / "n.h5",
                     "--energy", "10GeV", "--n", "5")  # fmt: skip
    assert rc == 2 and "shipped: gan-1-photons" in err and not (tmp_path / "n.h5").exists()
    rc, _, err = run("generate", tmp_path, "--pretrained", "gan-1-photons", "-o", tmp_path / "n.h5",
                     "--energy", "10GeV", "--n", "5")  # fmt: skip
    assert rc == 2 and "one of them" in err
    rc, _, err = run("generate", "--pretrained", "gan-1-photons", "--energy", "10GeV", "--n", "5")
    assert rc == 2 and "--out" in err
