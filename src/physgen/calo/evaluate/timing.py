"""Generation time per shower and model size, as in the CaloChallenge result tables.

The organisers report milliseconds per shower, mean +- std over 10 repetitions,
for batch sizes 1, 100 and 10,000 on CPU and GPU. :func:`time_generator`
measures the same for any callable ``generate(n, incident_energies) -> showers``
(the CLI turns a run directory into such a callable; this module never imports
models). Per batch size: ``warmup`` untimed calls, then ``repeats`` timed calls,
each on fresh incident energies; the time of one call divided by the batch size
is one measurement. For the largest batches the repeat count may be lowered
(``max_repeats_large`` for batch sizes >= ``large_batch``; default 3 for 10,000)
because one call can take minutes; the result records the count actually used.
On CUDA the device is synchronised before and after every timed call. torch is
imported only when a CUDA device is asked for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from physgen.calo.geometry import Geometry, get_geometry
from physgen.errors import ConfigError

__all__ = [
    "BatchTiming",
    "TimingResult",
    "count_parameters",
    "log_uniform_energies",
    "time_generator",
]

EnergySampler = Callable[[int, np.random.Generator], npt.NDArray[np.float64]]


@dataclass(frozen=True)
class BatchTiming:
    """Timing of one batch size: per-shower times in milliseconds."""

    batch_size: int
    repeats: int
    ms_per_shower_mean: float
    ms_per_shower_std: float
    ms_per_shower: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class TimingResult:
    """Timings for every batch size, plus where they were taken."""

    device: str
    warmup: int
    batches: tuple[BatchTiming, ...]

    def by_batch_size(self) -> dict[int, BatchTiming]:
        return {b.batch_size: b for b in self.batches}

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "warmup": self.warmup,
            "batches": [asdict(b) for b in self.batches],
        }


def log_uniform_energies(low_mev: float = 1e3, high_mev: float = 1e6) -> EnergySampler:
    """An incident-energy sampler, log-uniform in ``[low_mev, high_mev]`` (DS2/3 range by default)."""
    if not 0 < low_mev <= high_mev:
        raise ConfigError(f"energies: need 0 < low <= high, got {low_mev}, {high_mev}")

    def sample(n: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
        return 10 ** rng.uniform(np.log10(low_mev), np.log10(high_mev), size=(n, 1))

    return sample


def _sampler_for(energies: EnergySampler | Geometry | str | None) -> EnergySampler:
    if energies is None:
        return log_uniform_energies()
    if callable(energies):
        return energies
    geo = get_geometry(energies)
    if geo.name in ("1-photons", "1-pions"):
        # DS1: 15 discrete energies 2^8 ... 2^22 MeV
        levels = 2.0 ** np.arange(8, 23)

        def ds1(n: int, rng: np.random.Generator) -> npt.NDArray[np.float64]:
            return rng.choice(levels, size=(n, 1))

        return ds1
    return log_uniform_energies()


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def time_generator(
    generate: Callable[[int, npt.NDArray[np.float64]], Any],
    energies: EnergySampler | Geometry | str | None = None,
    batch_sizes: Sequence[int] = (1, 100, 10_000),
    repeats: int = 10,
    warmup: int = 1,
    device: str = "cpu",
    large_batch: int = 10_000,
    max_repeats_large: int = 3,
    seed: int = 0,
) -> TimingResult:
    """Milliseconds per shower of ``generate`` for each batch size.

    Args:
        generate: ``generate(n, incident_energies (n, 1) MeV) -> showers``; it must
            do all its work before returning (results on a GPU are synchronised here).
        energies: A sampler ``(n, rng) -> (n, 1)`` MeV, or a geometry (DS1: the 15
            discrete energies; otherwise log-uniform 1 GeV - 1 TeV), or None (log-uniform).
        batch_sizes: Showers per call.
        repeats: Timed calls per batch size.
        warmup: Untimed calls per batch size before timing.
        device: ``"cpu"`` or a CUDA device string (enables synchronisation).
        large_batch: Batch sizes from this one on use at most ``max_repeats_large`` repeats.
        max_repeats_large: See ``large_batch``.
        seed: Seed of the incident energies.

    Raises:
        ConfigError: Empty or non-positive batch sizes, ``repeats < 1``, ``warmup < 0``.
    """
    if not batch_sizes or any(int(b) < 1 for b in batch_sizes):
        raise ConfigError(f"--batch-sizes: need positive integers, got {list(batch_sizes)}")
    if repeats < 1 or warmup < 0 or max_repeats_large < 1:
        raise ConfigError(
            f"timing: need repeats >= 1, warmup >= 0, max_repeats_large >= 1; got "
            f"{repeats}, {warmup}, {max_repeats_large}"
        )
    sampler = _sampler_for(energies)
    rng = np.random.default_rng(seed)
    out = []
    for b in (int(v) for v in batch_sizes):
        n_rep = min(repeats, max_repeats_large) if b >= large_batch else repeats
        for _ in range(warmup):
            generate(b, sampler(b, rng))
        _synchronize(device)
        times = []
        for _ in range(n_rep):
            e = sampler(b, rng)
            _synchronize(device)
            t0 = time.perf_counter()
            generate(b, e)
            _synchronize(device)
            times.append((time.perf_counter() - t0) * 1e3 / b)
        a = np.asarray(times)
        out.append(
            BatchTiming(
                batch_size=b,
                repeats=n_rep,
                ms_per_shower_mean=float(a.mean()),
                ms_per_shower_std=float(a.std(ddof=1)) if n_rep > 1 else 0.0,
                ms_per_shower=[float(t) for t in times],
            )
        )
    return TimingResult(device=device, warmup=warmup, batches=tuple(out))


def count_parameters(module: Any) -> int:
    """Number of trainable parameters of a torch module."""
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))
