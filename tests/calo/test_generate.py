"""Generation: shards, seed blocks, batch-size independence, bad input (untrained tiny model)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from physgen.calo.config import load_config
from physgen.calo.generate import SEED_BLOCK, Shard, generate_showers, parse_shard
from physgen.calo.io import open_showers, read_showers, validate_file, write_showers
from physgen.calo.merge import merge_files
from physgen.calo.rundir import build_codec
from physgen.errors import PhysgenError
from physgen.models import build_model
from showerdata import toy_showers

N_VOX = 368


@pytest.fixture(scope="module")
def train_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    e, x = toy_showers(300, "1-photons", seed=0)
    return write_showers(tmp_path_factory.mktemp("data") / "train.h5", e, x)


@pytest.fixture(scope="module")
def model(train_file: Path) -> torch.nn.Module:
    """An untrained cfm (cheap sampler) around a codec fitted on toy 1-photons showers."""
    cfg = load_config(
        "cfm",
        "1-photons",
        preset="tiny",
        overrides={"model_config": {"steps": 2, "solver": "euler"}},
    )
    codec = build_codec(cfg)
    assert codec.n_voxels == N_VOX and codec.layer_sizes == [8, 160, 190, 5, 5]
    e, x = read_showers(train_file)
    codec.fit(torch.from_numpy(x), torch.from_numpy(e), torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    return build_model("cfm", codec, cfg.model_config).eval()


@pytest.fixture(scope="module")
def energies(model: torch.nn.Module) -> np.ndarray:
    """2100 energies inside the training range: two full seed blocks and a partial one."""
    lo, hi = model.codec.training_range_mev
    r = np.random.default_rng(1)
    return np.exp(r.uniform(np.log(lo), np.log(hi), 2100))


def _data(path: Path) -> tuple[np.ndarray, np.ndarray]:
    e, x = read_showers(path)
    return e, x


def _no_leftovers(folder: Path, name: str) -> None:
    assert not (folder / name).exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(f".{name}")]


# ------------------------------------------------------------------ shards


@pytest.mark.parametrize(
    ("text", "want"),
    [(None, Shard(0, 1)), ("1/1", Shard(0, 1)), ("3/8", Shard(2, 8)), ("2/2", Shard(1, 2))],
)
def test_parse_shard_ok(text: str | None, want: Shard) -> None:
    assert parse_shard(text) == want


@pytest.mark.parametrize(
    "text", ["0/2", "3/2", "2", "a/b", "1/0", "", "/", "-1/2", "1/-2", "1/2/3"]
)
def test_parse_shard_bad(text: str) -> None:
    with pytest.raises(PhysgenError) as info:
        parse_shard(text)
    msg = str(info.value)
    assert "--shard" in msg and repr(text) in msg


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 25 * SEED_BLOCK + 7), st.integers(1, 5))
def test_shard_rows_partition(n: int, k: int) -> None:
    ranges = [Shard(i, k).rows(n) for i in range(k)]
    assert ranges[0][0] == 0 and ranges[-1][1] == n
    for (_, a1), (b0, _) in zip(ranges, ranges[1:]):
        assert a1 == b0  # contiguous, no overlap, no gap
    for a0, a1 in ranges:
        assert 0 <= a0 <= a1 <= n
        assert a0 % SEED_BLOCK == 0 or a0 == n  # starts on a seed block
        assert a1 % SEED_BLOCK == 0 or a1 == n
    assert sum(a1 - a0 for a0, a1 in ranges) == n
    # shards are balanced to within one block
    sizes = [-(-(a1 - a0) // SEED_BLOCK) for a0, a1 in ranges]
    assert max(sizes) - min(sizes) <= 1


def test_shard_rows_examples() -> None:
    assert Shard().rows(2100) == (0, 2100)
    assert [Shard(i, 3).rows(2100) for i in range(3)] == [(0, 1000), (1000, 2000), (2000, 2100)]
    assert [Shard(i, 2).rows(999) for i in range(2)] == [(0, 0), (0, 999)]


# ------------------------------------------------------------------ generation


@pytest.fixture(scope="module")
def reference(
    model: torch.nn.Module, energies: np.ndarray, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    out = tmp_path_factory.mktemp("gen") / "full.h5"
    return generate_showers(model, out, energies=energies, seed=7, progress=False)


def test_generate_writes_valid_file(reference: Path, energies: np.ndarray) -> None:
    f = validate_file(reference, "1-photons")
    assert f.n_showers == 2100 and f.n_voxels == N_VOX
    e, x = _data(reference)
    assert x.dtype == np.float32 and np.isfinite(x).all() and (x >= 0).all()
    np.testing.assert_array_equal(e.reshape(-1), energies)  # exact, stored as float64
    # the codec's readout threshold (1 MeV for dataset 1) is applied
    assert x[x > 0].min() >= 1.0
    with open_showers(reference) as h:
        assert h.attrs["seed"] == 7 and h.attrs["n_total"] == 2100
        assert h.attrs["model"] == "cfm" and h.attrs["shard"] == "1/1"


def test_shards_merge_to_unsharded(
    model: torch.nn.Module, energies: np.ndarray, reference: Path, tmp_path: Path
) -> None:
    parts = []
    for i in range(3):
        p = generate_showers(
            model,
            tmp_path / f"s{i}.h5",
            energies=energies,
            seed=7,
            shard=parse_shard(f"{i + 1}/3"),
            progress=False,
        )
        with open_showers(p) as h:
            assert list(h.attrs["rows"]) == list(Shard(i, 3).rows(2100))
            assert h.n_showers == (1000 if i < 2 else 100)
        parts.append(p)
    merged = merge_files(parts, tmp_path / "merged.h5")
    e_m, x_m = _data(merged)
    e_r, x_r = _data(reference)
    assert x_m.dtype == x_r.dtype and x_m.shape == x_r.shape
    assert x_m.tobytes() == x_r.tobytes()
    assert e_m.tobytes() == e_r.tobytes()


def test_two_uneven_shards(
    model: torch.nn.Module, energies: np.ndarray, reference: Path, tmp_path: Path
) -> None:
    parts = [
        generate_showers(
            model,
            tmp_path / f"k{i}.h5",
            energies=energies,
            seed=7,
            shard=Shard(i, 2),
            progress=False,
        )
        for i in range(2)
    ]
    counts = []
    for p in parts:
        with open_showers(p) as h:
            counts.append(h.n_showers)
    assert counts == [1000, 1100]  # 3 seed blocks over 2 shards
    x = np.concatenate([_data(p)[1] for p in parts])
    assert x.tobytes() == _data(reference)[1].tobytes()


def test_empty_shard_is_refused(
    model: torch.nn.Module, energies: np.ndarray, tmp_path: Path
) -> None:
    target = tmp_path / "empty.h5"
    assert Shard(0, 5).rows(energies.size) == (0, 0)
    with pytest.raises(PhysgenError):
        generate_showers(model, target, energies=energies, shard=Shard(0, 5), progress=False)
    _no_leftovers(tmp_path, "empty.h5")


@pytest.mark.parametrize("batch_size", [1, 700, 10_000])
def test_batch_size_does_not_change_showers(
    model: torch.nn.Module,
    energies: np.ndarray,
    reference: Path,
    tmp_path: Path,
    batch_size: int,
) -> None:
    p = generate_showers(
        model,
        tmp_path / "b.h5",
        energies=energies,
        seed=7,
        batch_size=batch_size,
        progress=False,
    )
    assert _data(p)[1].tobytes() == _data(reference)[1].tobytes()


def test_seed_controls_output(
    model: torch.nn.Module, energies: np.ndarray, reference: Path, tmp_path: Path
) -> None:
    same = generate_showers(model, tmp_path / "a.h5", energies=energies, seed=7, progress=False)
    other = generate_showers(model, tmp_path / "b.h5", energies=energies, seed=8, progress=False)
    x_ref = _data(reference)[1]
    assert _data(same)[1].tobytes() == x_ref.tobytes()
    x_other = _data(other)[1]
    assert x_other.shape == x_ref.shape
    assert not np.array_equal(x_other, x_ref)
    # blocks of one run differ from each other too (seeded per block, not reused)
    e1 = np.full(SEED_BLOCK + 20, 4096.0)
    two = _data(generate_showers(model, tmp_path / "c.h5", energies=e1, seed=7, progress=False))[1]
    assert not np.array_equal(two[:20], two[SEED_BLOCK:])


def test_energies_from_file(model: torch.nn.Module, train_file: Path, tmp_path: Path) -> None:
    a = generate_showers(
        model,
        tmp_path / "a.h5",
        energies_from=train_file,
        seed=3,
        geometry="1-photons",
        progress=False,
    )
    e_train, _ = read_showers(train_file)
    b = generate_showers(model, tmp_path / "b.h5", energies=e_train, seed=3, progress=False)
    e_a, x_a = _data(a)
    np.testing.assert_array_equal(e_a.reshape(-1), e_train.reshape(-1))
    assert x_a.tobytes() == _data(b)[1].tobytes()
    with open_showers(a) as h:
        assert h.attrs["geometry"] == "1-photons"
    # the geometry is checked against the energy file
    with pytest.raises(PhysgenError, match="6480"):
        generate_showers(
            model, tmp_path / "c.h5", energies_from=train_file, geometry="2", progress=False
        )
    _no_leftovers(tmp_path, "c.h5")


def test_extrapolation_warning(
    model: torch.nn.Module,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the CLI sets propagate=False on the "physgen" logger; caplog listens at the root
    monkeypatch.setattr(logging.getLogger("physgen"), "propagate", True)
    lo, hi = model.codec.training_range_mev
    with caplog.at_level(logging.WARNING, logger="physgen"):
        generate_showers(
            model, tmp_path / "in.h5", energies=[lo, np.sqrt(lo * hi), hi], progress=False
        )
    assert not [r for r in caplog.records if "extrapolation" in r.getMessage()]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="physgen"):
        p = generate_showers(
            model, tmp_path / "out.h5", energies=[lo / 10, 1000.0, hi * 3], progress=False
        )
    msgs = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("extrapolation" in m and "2 of 3" in m for m in msgs), msgs
    assert validate_file(p).n_showers == 3  # still written


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"energies": [100.0, 0.0, 200.0]}, "> 0 MeV"),
        ({"energies": [100.0, -5.0]}, "> 0 MeV"),
        ({"energies": [100.0, float("nan")]}, "finite"),
        ({"energies": [100.0, float("inf")]}, "finite"),
        ({"energies": []}, "> 0 MeV"),
        ({}, "exactly one of energies or energies_from"),
        ({"energies": [100.0], "energies_from": "TRAIN"}, "exactly one of"),
        ({"energies": [100.0], "batch_size": 0}, "batch"),
        ({"energies": [100.0], "seed": -1}, "seed"),
    ],
)
def test_bad_input_leaves_nothing(
    model: torch.nn.Module, train_file: Path, tmp_path: Path, kwargs: dict, needle: str
) -> None:
    if kwargs.get("energies_from") == "TRAIN":
        kwargs = {**kwargs, "energies_from": train_file}
    target = tmp_path / "bad.h5"
    with pytest.raises(PhysgenError) as info:
        generate_showers(model, target, progress=False, **kwargs)
    assert needle in str(info.value)
    _no_leftovers(tmp_path, "bad.h5")


def test_missing_output_folder(model: torch.nn.Module, tmp_path: Path) -> None:
    target = tmp_path / "nope" / "x.h5"
    with pytest.raises(PhysgenError, match="does not exist"):
        generate_showers(model, target, energies=[1000.0], progress=False)
    assert not target.parent.exists()


def test_existing_target_kept_on_failure(model: torch.nn.Module, tmp_path: Path) -> None:
    target = tmp_path / "keep.h5"
    target.write_bytes(b"old")
    with pytest.raises(PhysgenError):
        generate_showers(model, target, energies=[-1.0], progress=False)
    assert target.read_bytes() == b"old"
