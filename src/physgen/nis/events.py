"""Unweighted event generation for physics processes, with HDF5 output.

:func:`generate_events` trains a sampler (NIS by default), estimates the cross section
and the maximum weight from a pilot sample, then draws and unweights fresh points until
``n`` events are accepted (over-weights truncated at ``w_max``, whose convention caps their
cross-section share at ``overweight_xs``). The cross section uses every drawn weight
(float64).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from physgen._version import __version__
from physgen.errors import ConfigError
from physgen.nis.integrate import build_sampler
from physgen.nis.processes import PhysicsProcess
from physgen.nis.train import TrainConfig
from physgen.nis.unweight import unweight, unweighting_stats
from physgen.outputs import atomic_path

__all__ = ["EventSample", "generate_events", "write_events_hdf5"]


@dataclass
class EventSample:
    """Unweighted events.

    Attributes:
        process: Process name.
        y: Phase-space points ``(n, dim)`` on the process's unit cube.
        pdg: Final-state PDG ids ``(n, k)``.
        momenta: Final-state four-momenta ``(n, k, 4)`` in GeV.
        beams: Incoming four-momenta ``(n, 2, 4)`` in GeV.
        cross_section: Estimated cross section in pb (all drawn weights).
        cross_section_error: Its statistical error in pb.
        info: Efficiencies, calls, timings, seed.
    """

    process: str
    y: Tensor
    pdg: Tensor
    momenta: Tensor
    beams: Tensor
    cross_section: float
    cross_section_error: float
    info: dict[str, Any] = field(default_factory=dict)


def generate_events(
    process: PhysicsProcess,
    n: int,
    method: str = "nis",
    calls: int = 200_000,
    seed: int = 0,
    overweight_xs: float = 1e-3,
    pilot: int = 200_000,
    config: TrainConfig | None = None,
) -> EventSample:
    """Generate ``n`` unweighted events.

    Args:
        process: The physics process.
        n: Number of events (> 0).
        method: ``nis``, ``vegas`` or ``uniform``.
        calls: Training budget in integrand calls.
        seed: Seed (same seed, same events).
        overweight_xs: Cross-section share allowed in over-weights (sets ``w_max``).
        pilot: Points of the pilot sample that fixes ``w_max``.
        config: Training options.

    Returns:
        An :class:`EventSample`.

    Raises:
        ConfigError: Bad ``n`` or options.
    """
    if n < 1:
        raise ConfigError(f"--n must be >= 1, got {n}")
    if pilot < 1000:
        raise ConfigError(f"pilot must be >= 1000, got {pilot}")
    cfg = config if config is not None else TrainConfig()
    cfg.calls = calls
    gen = torch.Generator().manual_seed(seed + 15485863)
    t0 = time.perf_counter()
    draw, _sampler, train_calls = build_sampler(process, method, cfg, seed, gen)
    train_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    kept_y: list[Tensor] = []
    sums = [0.0, 0.0]
    drawn = 0
    n_acc = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 2)
        _, w_pilot = draw(pilot)
        stats = unweighting_stats(w_pilot, overweight_xs)
        w_max = stats.w_max
        sums[0] += float(w_pilot.sum())
        sums[1] += float((w_pilot * w_pilot).sum())
        drawn += pilot
        chunk = max(1000, min(200_000, int(1.2 * n / max(stats.efficiency, 1e-3))))
        while n_acc < n:
            y, w = draw(chunk)
            sums[0] += float(w.sum())
            sums[1] += float((w * w).sum())
            drawn += chunk
            acc = unweight(w, w_max, gen)
            kept_y.append(y[acc])
            n_acc += int(acc.sum())
    y_all = torch.cat(kept_y)[:n]
    pdg, mom = process.final_state(y_all, gen)
    mean = sums[0] / drawn
    var = max(sums[1] / drawn - mean * mean, 0.0)
    info = {
        "method": method,
        "seed": seed,
        "train_calls": train_calls,
        "sample_calls": drawn,
        "train_seconds": train_seconds,
        "sample_seconds": time.perf_counter() - t1,
        "unweighting_efficiency": stats.efficiency,
        "unweighting_efficiency_true_max": stats.efficiency_true_max,
        "overweight_xs": overweight_xs,
        "w_max": w_max,
        "accepted_fraction": n_acc / max(drawn - pilot, 1),
    }
    return EventSample(
        process=process.name,
        y=y_all,
        pdg=pdg,
        momenta=mom,
        beams=process.beam_momenta(n),
        cross_section=mean,
        cross_section_error=math.sqrt(var / drawn),
        info=info,
    )


def write_events_hdf5(path: str | Path, events: EventSample) -> None:
    """Write events to HDF5 atomically (datasets ``momenta``, ``pdg``, ``beams``, ``y``).

    Attributes of the root group: ``process``, ``cross_section_pb``,
    ``cross_section_error_pb``, ``physgen_version`` and every entry of ``events.info``.
    """
    path = Path(path)
    if not path.parent.exists():
        raise ConfigError(f"--out: folder {path.parent} does not exist")
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as h:
        h.create_dataset("momenta", data=events.momenta.numpy(), compression="gzip")
        h.create_dataset("pdg", data=events.pdg.numpy().astype(np.int32))
        h.create_dataset("beams", data=events.beams.numpy())
        h.create_dataset("y", data=events.y.numpy(), compression="gzip")
        h.attrs["process"] = events.process
        h.attrs["cross_section_pb"] = events.cross_section
        h.attrs["cross_section_error_pb"] = events.cross_section_error
        h.attrs["physgen_version"] = __version__
        for k, v in events.info.items():
            h.attrs[k] = v
