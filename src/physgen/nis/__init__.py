"""Neural importance sampling (MadNIS-style) for integration and unweighted event generation.

Integrands live on the unit hypercube (:mod:`physgen.nis.integrands`, physics processes
in :mod:`physgen.nis.processes`); :func:`integrate` trains a VEGAS grid plus
rational-quadratic spline coupling flows (one per channel, with learned channel weights)
and reports the integral with an honest error and a mode-collapse guard;
:func:`generate_events` unweights; events go to HDF5 (:func:`write_events_hdf5`), Les
Houches (:func:`write_lhe`) or Parquet/ROOT tables of one row per event
(:func:`write_events_table`).
"""

from __future__ import annotations

from physgen.nis.events import (
    EventSample,
    default_training_calls,
    generate_events,
    write_events_hdf5,
)
from physgen.nis.integrands import (
    BreitWigner,
    Camel,
    DrellYanLike,
    Integrand,
    IntegrandError,
    MultiChannelIntegrand,
    Polynomial,
    Ring,
    wrap_function,
)
from physgen.nis.integrate import CoverageError, IntegrationResult, integrate
from physgen.nis.lhe import write_lhe
from physgen.nis.processes import EEToMuMu, EEToQQG, PhysicsProcess
from physgen.nis.registry import INTEGRANDS, PROCESSES, get_integrand, get_process
from physgen.nis.tabular import write_events_table
from physgen.nis.train import NISSampler, TrainConfig, train_sampler
from physgen.nis.unweight import max_weight, unweight, unweighting_stats

__all__ = [
    "INTEGRANDS",
    "PROCESSES",
    "BreitWigner",
    "Camel",
    "CoverageError",
    "DrellYanLike",
    "EEToMuMu",
    "EEToQQG",
    "EventSample",
    "Integrand",
    "IntegrandError",
    "IntegrationResult",
    "MultiChannelIntegrand",
    "NISSampler",
    "PhysicsProcess",
    "Polynomial",
    "Ring",
    "TrainConfig",
    "default_training_calls",
    "generate_events",
    "get_integrand",
    "get_process",
    "integrate",
    "max_weight",
    "train_sampler",
    "unweight",
    "unweighting_stats",
    "wrap_function",
    "write_events_hdf5",
    "write_events_table",
    "write_lhe",
]
