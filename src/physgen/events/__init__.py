"""Real event generation (Pythia 8 + FastJet) and jet observables for unfolding and anomaly
detection studies.

pp → Z(→νν) + jet at 13 TeV from Pythia 8 (:mod:`~physgen.events.pythia`; configurations
``"sim"`` and ``"nature"``), a parametrised detector (:mod:`~physgen.events.detector`),
anti-kT R = 0.4 jets (:mod:`~physgen.events.jets`), the six leading-jet observables of the
OmniFold Z+jets benchmark m, M, w, τ21, z_g, ln ρ (:mod:`~physgen.events.substructure`,
plain numpy), and unfolding pairs with pass flags written in the input format of
:mod:`physgen.unfold` (:mod:`~physgen.events.sample`, :func:`generate_sample`).

LHC-Olympics-like dijets for resonant anomaly detection (:mod:`~physgen.events.dijet`,
:func:`generate_dijets`): QCD dijets and the W′ → X Y → 4 quarks signal, anti-kT R = 1.0 jets,
leading jet pT > 1.2 TeV, the five CATHODE features (m_jj, m_j1, Δm_j in TeV, τ21 of both
jets) and a label, written as HDF5 or as the LHCO ``(N, 6)`` ``.npy`` array.

Pythia, FastJet and awkward come with the ``events`` extra
(``pip install --only-binary pythia8mc 'physgen[events]'``); they are imported only when
events are generated or jets clustered, and their absence gives a one-line
:class:`~physgen.errors.MissingDependencyError`. The observables and the detector need
only numpy.

Example:
    >>> from physgen.events import generate_sample  # doctest: +SKIP
    >>> sample = generate_sample("sim", n=50_000, seed=1, workers=2)  # doctest: +SKIP
    >>> sample.gen[sample.pass_gen].mean(axis=0)  # m, M, w, tau21, zg, lnrho  # doctest: +SKIP
    >>> from physgen.events import generate_dijets  # doctest: +SKIP
    >>> qcd = generate_dijets("qcd-dijet", n=10_000, seed=1, workers=2)  # doctest: +SKIP
    >>> qcd.lhco().shape  # m_jj, m_j1, delta_mj, tau21_j1, tau21_j2, label  # doctest: +SKIP
    (10000, 6)
"""

from __future__ import annotations

from physgen.events.detector import DetectorResponse
from physgen.events.dijet import (
    DIJET_PROCESSES,
    PROCESS_LABELS,
    dijet_cache_path,
    generate_dijets,
    lhco_features,
)
from physgen.events.dijet_sample import (
    DIJET_FEATURES,
    LHCO_COLUMNS,
    DijetSample,
    read_dijets,
    write_dijets,
)
from physgen.events.generate import cache_dir, cache_path, generate_sample
from physgen.events.particles import Particles
from physgen.events.pythia import CONFIGS, NATURE_SETTINGS, PROCESS_SETTINGS
from physgen.events.sample import EventSample, match_levels, read_sample, write_sample
from physgen.events.substructure import (
    OBSERVABLES,
    jet_observables,
    nsubjettiness,
    soft_drop,
    tau21,
    width,
)

__all__ = [
    "CONFIGS",
    "DIJET_FEATURES",
    "DIJET_PROCESSES",
    "LHCO_COLUMNS",
    "NATURE_SETTINGS",
    "OBSERVABLES",
    "PROCESS_LABELS",
    "PROCESS_SETTINGS",
    "DetectorResponse",
    "DijetSample",
    "EventSample",
    "Particles",
    "cache_dir",
    "cache_path",
    "dijet_cache_path",
    "generate_dijets",
    "generate_sample",
    "jet_observables",
    "lhco_features",
    "match_levels",
    "nsubjettiness",
    "read_dijets",
    "read_sample",
    "soft_drop",
    "tau21",
    "width",
    "write_dijets",
    "write_sample",
]
