"""Where the classifier inputs are kept: memory, a temporary disk cache, or rebuilt per batch."""

from __future__ import annotations

import logging
import shutil
from collections import namedtuple

import numpy as np
import pytest

from physgen.calo.evaluate.classifier import classifier_inputs, input_dim, run_classifier
from physgen.calo.evaluate.classifier_store import InputPool, SampleInputs, build_rows
from physgen.calo.geometry import get_geometry
from physgen.calo.io import write_showers
from physgen.errors import ConfigError, DataFormatError

GEO = get_geometry("1-photons")


def _sample(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    r = np.random.default_rng(seed)
    e = 10 ** r.uniform(3, 5, size=(n, 1))
    x = r.exponential(5.0, size=(n, GEO.n_voxels)) * (r.random((n, GEO.n_voxels)) < 0.4)
    return e, x.astype(np.float32)


def _inputs(sample, mode: str, **kw) -> SampleInputs:
    def build(e, x):
        return classifier_inputs(mode, e, x, GEO)

    return SampleInputs(sample, GEO, "generated", input_dim(mode, GEO), build, **kw)


@pytest.mark.parametrize("mode", ["cls-low", "cls-low-normed", "cls-high"])
def test_three_stores_give_the_same_rows(mode: str, tmp_path) -> None:
    e, x = _sample(700, 0)
    path = tmp_path / "g.h5"
    write_showers(path, e, x)
    expected = classifier_inputs(mode, e, x, GEO)
    idx = np.random.default_rng(1).permutation(700)[:333]
    nbytes = 700 * expected.shape[1] * 4
    cache = tmp_path / "cache"
    cache.mkdir()
    for src_data in ((e, x), path):
        stores = {
            "memory": _inputs(src_data, mode, max_bytes=nbytes),
            "disk": _inputs(src_data, mode, max_bytes=0, max_disk_bytes=nbytes, cache_dir=cache),
            "stream": _inputs(src_data, mode, max_bytes=nbytes - 1, max_disk_bytes=0),
        }
        for name, s in stores.items():
            assert s.store == name and s.streaming == (name == "stream")
            np.testing.assert_array_equal(s.rows(idx), expected[idx])
            s.close()
        assert list(cache.iterdir()) == []


def test_pool_maps_global_rows_to_samples(tmp_path) -> None:
    a, b = _sample(120, 2), _sample(80, 3)
    pool = InputPool(
        [
            _inputs(a, "cls-low", max_bytes=1e9),
            _inputs(b, "cls-low", max_bytes=0, max_disk_bytes=1e9, cache_dir=tmp_path),
        ]
    )
    both = np.concatenate([classifier_inputs("cls-low", *s, GEO) for s in (a, b)])
    idx = np.array([199, 0, 120, 119, 150, 3], dtype=np.int64)
    np.testing.assert_array_equal(pool.rows(idx), both[idx])
    pool.close()


def test_no_room_on_disk_falls_back_to_streaming(tmp_path, monkeypatch, caplog) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _p: usage(10**9, 10**9, 10**6))
    with caplog.at_level(logging.WARNING):
        s = _inputs(_sample(50, 4), "cls-low", max_bytes=0, max_disk_bytes=1e9, cache_dir=tmp_path)
    assert s.store == "stream" and "GB free" in caplog.text
    s.close()


def test_bad_values_are_caught_while_building_the_cache(tmp_path) -> None:
    e, x = _sample(50, 5)
    x[30, 7] = np.nan
    with pytest.raises(DataFormatError, match="generated sample: showers contain NaN"):
        _inputs((e, x), "cls-low", max_bytes=0, max_disk_bytes=1e9, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_build_rows_bounds_the_chunk() -> None:
    assert build_rows(368) == 4076
    assert build_rows(6480) == 231
    assert build_rows(40_500) == 37
    assert build_rows(10**8) == 1


def test_cache_dir_and_threads_options(tmp_path) -> None:
    import torch

    ref, gen = _sample(100, 6), _sample(100, 7)
    with pytest.raises(ConfigError, match="cache_dir"):
        run_classifier(ref, gen, GEO, cache_dir=tmp_path / "missing")
    with pytest.raises(ConfigError, match="threads"):
        run_classifier(ref, gen, GEO, threads=0)
    before = torch.get_num_threads()
    res = run_classifier(ref, gen, GEO, "cls-high", seed=0, threads=1)
    assert torch.get_num_threads() == before and 0.0 <= res.auc <= 1.0
