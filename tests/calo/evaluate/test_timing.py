"""Generation timing with a fake clock (no wall-clock assertions) and parameter counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import physgen.calo.evaluate.timing as timing
from physgen.calo.evaluate.timing import count_parameters, time_generator
from physgen.errors import ConfigError


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_time_per_shower_exact_with_fake_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock()
    monkeypatch.setattr(timing.time, "perf_counter", clock)
    calls: list[tuple[int, tuple[int, ...]]] = []

    def generate(n: int, e: np.ndarray) -> np.ndarray:
        calls.append((n, e.shape))
        clock.now += 0.002 + n * 0.0005  # 2 ms overhead + 0.5 ms per shower
        return np.zeros((n, 3))

    res = time_generator(generate, "1-photons", batch_sizes=(1, 100, 10_000), repeats=4, warmup=2)
    by = res.by_batch_size()
    assert by[1].ms_per_shower_mean == pytest.approx(2.5)
    assert by[100].ms_per_shower_mean == pytest.approx(0.52)
    assert by[10_000].ms_per_shower_mean == pytest.approx(0.5002)
    assert by[1].ms_per_shower_std == pytest.approx(0.0, abs=1e-9)
    # warm-up calls happen but are not timed; the large batch uses at most 3 repeats
    assert [b.repeats for b in res.batches] == [4, 4, 3]
    assert len(calls) == (2 + 4) + (2 + 4) + (2 + 3)
    assert all(shape == (n, 1) for n, shape in calls)
    assert res.to_dict()["batches"][0]["batch_size"] == 1


def test_energy_samplers() -> None:
    seen: list[np.ndarray] = []

    def generate(n: int, e: np.ndarray) -> None:
        seen.append(e)

    time_generator(generate, "1-photons", batch_sizes=(50,), repeats=2, warmup=0)
    e = np.concatenate(seen)
    assert set(np.log2(e).ravel().round().astype(int)) <= set(range(8, 23))
    seen.clear()
    time_generator(generate, "2", batch_sizes=(50,), repeats=1, warmup=0)
    assert seen[0].min() >= 1e3 and seen[0].max() <= 1e6
    seen.clear()
    time_generator(generate, lambda n, rng: np.full((n, 1), 7.0), batch_sizes=(5,), repeats=1)
    assert np.all(seen[-1] == 7.0)


def test_errors() -> None:
    with pytest.raises(ConfigError, match="batch-sizes"):
        time_generator(lambda n, e: None, batch_sizes=(0,))
    with pytest.raises(ConfigError, match="repeats"):
        time_generator(lambda n, e: None, repeats=0)


def test_count_parameters_trainable_only() -> None:
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    assert count_parameters(net) == 8 + 3
    net[0].weight.requires_grad_(False)
    assert count_parameters(net) == 2 + 3
