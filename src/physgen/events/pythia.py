"""Pythia 8 events: pp → Z(→νν) + jet at 13 TeV, two named tunes, seeded in blocks.

The process (:data:`PROCESS_SETTINGS`) is the OmniFold Z+jets benchmark's (Andreassen et
al., arXiv:1911.09107) at 13 TeV: ``qqbar → Z g`` and ``q g → Z q`` with the Z forced to
neutrinos, so the event's visible activity is the recoiling jet plus the underlying event,
and ``pT_hat > 150 GeV``: below the 200 GeV jet cut of :mod:`physgen.events.sample`, so that
events migrating above the cut (initial-state radiation, hadronisation) are generated and
the leading-jet spectrum is not depleted near the cut, differently for every tune (the
benchmark's choice too: p̂T > 150 GeV with Z pT > 200 GeV). About a quarter of the events
then have a leading jet above 200 GeV. Generated through the ``pythia8mc`` bindings (Bierlich et al.,
SciPost Phys. Codebases 8 (2022), arXiv:2203.11601), version pinned by the ``events``
extra. Pythia never prints: its banner is off (``Pythia("", False)``), ``Print:quiet = on``
and ``Next:numberCount = 0``, settings are read with warnings off, and whatever Pythia
still writes on standard output (abort notices) is sent to ``/dev/null`` at the file
descriptor level while it runs.

Configurations (:data:`CONFIGS`):

* ``"sim"``: Pythia's default tune (Monash 2013).
* ``"nature"``: a variation that moves all six jet observables (the "data" of unfolding
  closure tests), :data:`NATURE_SETTINGS`: a weaker final-state shower
  (``TimeShower:alphaSvalue`` 0.1365 → 0.118, shower cut-off ``TimeShower:pTmin`` 0.5 →
  2.0 GeV, the largest value Pythia accepts), a broader hadron pT spread in the string
  (``StringPT:sigma`` 0.335 → 0.5 GeV) and less underlying event
  (``MultipartonInteractions:pT0Ref`` 2.28 → 2.6 GeV). Measured on the samples of
  ``bench/unfold.py`` (:func:`physgen.events.generate_sample`, ``n = 50000`` rows each,
  seeds 11 and 12; 49,692 / 49,602 jets passing gen, 40,504 / 41,051 passing reco; KS =
  two-sample Kolmogorov–Smirnov distance sim vs nature, 95 % critical value 0.0086 at gen
  and 0.0095 at reco level):

  ======== =============== ============= ========== ===========
  column   gen mean, sim   nature        KS gen     KS reco
  ======== =============== ============= ========== ===========
  m        24.15 GeV       20.73 GeV     0.162      0.131
  M        28.42           20.32         0.320      0.303
  w        0.0512          0.0447        0.116      0.117
  tau21    0.669           0.638         0.119      0.120
  zg       0.2334          0.2372        0.020      0.019
  lnrho    -7.19           -7.70         0.099      0.088
  ======== =============== ============= ========== ===========

  z_g moves least: significantly (KS 2.3 times the critical value) but barely visibly.
  An earlier study at p̂T > 200 GeV (4,000 jets each) gave KS m 0.151, M 0.327, w 0.115,
  τ21 0.129, z_g 0.031, ln ρ 0.090. z_g is the hardest to move (soft drop makes it nearly insensitive to αs and to the
  hadronisation; at β = 0 its shape is essentially the splitting function): its shift is
  resolved at a few thousand jets only at the 95 % level, and clearly at the 50,000-jet
  scale of an unfolding study (critical value 0.009). ``TimeShower:alphaSvalue = 0.118``
  alone moves m, M, w and ln ρ but hardly τ21 and z_g (shared reference notes, 1.5k jets:
  KS 0.07-0.10 against 0.032 and 0.020); in this study αs = 0.100 or 0.160 alone moved z_g
  by KS <= 0.036 (2,000 jets), ``StringPT:sigma`` and ``StringZ:aLund/bLund`` move M and
  τ21 strongly but not z_g, and the Vincia shower (``PartonShowers:model = 2``) is ten
  times slower.

Seeding (:func:`derive_seed`): a run seed ``s`` and the configuration name give one
Pythia seed for ``init`` (every worker process initialises identically) and one per block
``k`` of events, ``Rndm.init(seed_k)`` before the block, so a block's events depend only on
``(s, config, k)`` and never on which process made the blocks before it. Pythia seeds lie
in ``1..900_000_000``. The configuration name enters the seeds, so ``sim`` and ``nature``
with the same run seed are independent samples; extra settings do not (the same seed with
a changed parameter gives correlated samples).

Particle level: every final-state particle except neutrinos with ``|eta| < 4.5``
(:data:`PARTICLE_ETA_MAX`: the calorimeter acceptance; it removes the beam remnants, which
never reach a ``|y| < 2.5``, R = 0.4 jet).
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import sys
import zlib
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from physgen._optional import require
from physgen.errors import ConfigError
from physgen.events.particles import NEUTRINO_PIDS, Particles

__all__ = [
    "CONFIGS",
    "NATURE_SETTINGS",
    "PARTICLE_ETA_MAX",
    "PROCESS_SETTINGS",
    "SEED_MAX",
    "PythiaGenerator",
    "check_settings",
    "derive_seed",
    "parse_setting",
    "pythia_version",
    "resolved_settings",
]

#: pp → Z(→νν) + jet at 13 TeV, pT_hat > 150 GeV.
PROCESS_SETTINGS: tuple[str, ...] = (
    "Beams:eCM = 13000",
    "WeakBosonAndParton:qqbar2gmZg = on",
    "WeakBosonAndParton:qg2gmZq = on",
    "WeakZ0:gmZmode = 2",
    "23:onMode = off",
    "23:onIfAny = 12 14 16",
    "PhaseSpace:pTHatMin = 150",
)
#: The "nature" variation of the default tune (see the module docstring for its effect).
NATURE_SETTINGS: tuple[str, ...] = (
    "TimeShower:alphaSvalue = 0.118",
    "TimeShower:pTmin = 2.0",
    "StringPT:sigma = 0.5",
    "MultipartonInteractions:pT0Ref = 2.6",
)
#: Named configurations: settings on top of :data:`PROCESS_SETTINGS`.
CONFIGS: dict[str, tuple[str, ...]] = {"sim": (), "nature": NATURE_SETTINGS}
#: Pythia's largest seed (``Random:seed``; 0 would mean "from the clock").
SEED_MAX = 900_000_000
#: Particle-level acceptance ``|eta| <`` this (also the detector's calorimeter acceptance).
PARTICLE_ETA_MAX = 4.5
#: Settings physgen sets itself, after the user's (silence and seeding).
_OWN_SETTINGS: tuple[str, ...] = ("Print:quiet = on", "Next:numberCount = 0")
_SEED_KEYS = ("random:seed", "random:setseed")


def pythia_version() -> str:
    """The installed ``pythia8mc`` version (e.g. ``"8.317.2"``), ``"unknown"`` if absent."""
    try:
        return importlib.metadata.version("pythia8mc")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def derive_seed(*entropy: int) -> int:
    """A Pythia seed in ``1..SEED_MAX`` from integers (``SeedSequence`` of them)."""
    state = np.random.SeedSequence([int(e) for e in entropy]).generate_state(1, np.uint64)
    return int(state[0] % np.uint64(SEED_MAX)) + 1


def config_tag(config: str) -> int:
    """The integer that stands for a configuration name in the seeds (CRC-32 of the name)."""
    return zlib.crc32(config.encode())


def parse_setting(text: str, option: str = "--set") -> str:
    """A user setting ``"Key = value"`` in normal form (one space around ``=``).

    Raises:
        ConfigError: No ``=``, an empty key or value, or a setting physgen owns
            (``Random:seed``/``Random:setSeed``: the seed comes from the run seed).
    """
    if not isinstance(text, str) or "=" not in text:
        raise ConfigError(f"{option} {text!r}: expected a Pythia setting 'Key = value'")
    key, _, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not key or not value:
        raise ConfigError(f"{option} {text!r}: expected a Pythia setting 'Key = value'")
    if key.lower() in _SEED_KEYS:
        raise ConfigError(f"{option} {key}: the Pythia seed comes from --seed; do not set it")
    return f"{key} = {value}"


def resolved_settings(config: str, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """Process settings, then the configuration's, then the user's (later ones win).

    Raises:
        ConfigError: Unknown configuration or a malformed extra setting.
    """
    if config not in CONFIGS:
        raise ConfigError(
            f"--config: unknown configuration {config!r}; choose {' or '.join(CONFIGS)}"
        )
    if isinstance(extra, str):
        extra = (extra,)
    return (*PROCESS_SETTINGS, *CONFIGS[config], *(parse_setting(s) for s in extra))


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null inside the block (Pythia's C++ ``cout``)."""
    with contextlib.suppress(AttributeError, ValueError, OSError):
        sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no standard output at all: nothing to protect
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def _read_settings(pythia: Any, settings: Sequence[str], option: str = "--set") -> None:
    for s in settings:
        if not pythia.readString(s, False):
            key = s.partition("=")[0].strip()
            raise ConfigError(
                f"{option} {s!r}: Pythia rejects it (unknown setting {key!r} or a value out "
                "of range)"
            )


def check_settings(settings: Sequence[str]) -> None:
    """Let Pythia read every setting without initialising (fast).

    Raises:
        ConfigError: Pythia rejects a setting; the message names it.
        MissingDependencyError: ``pythia8mc`` is not installed.
    """
    pythia8 = require("pythia8mc", "events", "Pythia 8 events")
    with _quiet_stdout():
        _read_settings(pythia8.Pythia("", False), settings)


class PythiaGenerator:
    """One initialised Pythia that generates blocks of events on request.

    Args:
        settings: All settings (:func:`resolved_settings`).
        init_seed: Seed of the initialisation (``1..SEED_MAX``); every process of a run
            uses the same one, so all have the same cross-section maxima.
        label: What was asked for, for the message of a failed init
            (e.g. ``"--config sim --set 'Beams:eCM = 100'"``).

    Raises:
        ConfigError: A setting is rejected or ``init`` fails.
        MissingDependencyError: ``pythia8mc`` or ``awkward`` is not installed.
    """

    def __init__(self, settings: Sequence[str], init_seed: int, label: str = "") -> None:
        pythia8 = require("pythia8mc", "events", "Pythia 8 events")
        self._ak = require("awkward", "events", "Pythia 8 events")
        self.settings = tuple(settings)
        with _quiet_stdout():
            self._pythia = pythia8.Pythia("", False)
            _read_settings(self._pythia, self.settings)
            _read_settings(self._pythia, _OWN_SETTINGS)
            _read_settings(self._pythia, ("Random:setSeed = on", f"Random:seed = {init_seed}"))
            ok = self._pythia.init()
        if not ok:
            raise ConfigError(
                f"Pythia init failed{' for ' + label if label else ''}: the settings are valid "
                "one by one but do not make a run (a --set value outside the process's "
                "phase space?)"
            )
        self._charges: dict[int, float] = {}

    def _charge(self, pid: np.ndarray[Any, np.dtype[np.int64]]) -> np.ndarray[Any, Any]:
        uniq, inverse = np.unique(pid, return_inverse=True)
        table = self._pythia.particleData
        values = []
        for p in uniq.tolist():
            if p not in self._charges:
                self._charges[p] = float(table.charge(p))
            values.append(self._charges[p])
        return np.asarray(values, dtype=np.float64)[inverse]

    def generate(self, n_events: int, seed: int) -> Particles:
        """Generate ``n_events`` events from the random seed ``seed`` (``1..SEED_MAX``).

        Returns:
            The visible final-state particles with ``|eta| < 4.5`` of every event (events
            Pythia fails to generate are skipped; ``n_events`` is then smaller).
        """
        ak = self._ak
        with _quiet_stdout():
            self._pythia.rndm.init(int(seed))
            batch = self._pythia.nextBatch(int(n_events), "skip")
        prt = batch["prt"]
        final = prt[prt["status"] > 0]
        counts = np.asarray(ak.to_numpy(ak.num(final["id"], axis=1)), dtype=np.int64)
        pid = np.asarray(ak.to_numpy(ak.flatten(final["id"])), dtype=np.int64)

        def flat(*path: str) -> np.ndarray[Any, np.dtype[np.float64]]:
            a = final
            for p in path:
                a = a[p]
            return np.asarray(ak.to_numpy(ak.flatten(ak.without_parameters(a))), dtype=np.float64)

        particles = Particles.from_momenta(
            flat("p", "px"),
            flat("p", "py"),
            flat("p", "pz"),
            flat("m"),
            pid,
            self._charge(pid),
            counts,
        )
        keep = ~np.isin(np.abs(pid), NEUTRINO_PIDS) & (np.abs(particles.eta) < PARTICLE_ETA_MAX)
        return particles.select(keep)
