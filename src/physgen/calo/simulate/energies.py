"""Incident-energy specifications of ``physgen simulate`` (``--energy``).

* a fixed value with units: ``100GeV``, ``500MeV``, ``1TeV``, ``2.5e3MeV``,
  ``750keV``; a bare number is MeV;
* a log-uniform range ``LOW:HIGH``, e.g. ``1GeV:1TeV`` (the CaloChallenge
  datasets 2 and 3 spectrum);
* ``ds1``: the 15 dataset-1 energies 2^8 ... 2^22 MeV drawn with the relative
  frequencies of the CaloChallenge dataset-1 photon files (10k showers each up to
  2^18 MeV, then 5k, 3k, 2k, 1k); ``ds1:even`` cycles through them in order
  instead (shower i gets 2^(8 + i mod 15) MeV).

Random energies come from ``SeedSequence(seed, spawn_key=(ENERGY_STREAM,))``, a
stream separate from the per-shower seeds.

Example:
    >>> parse_energy_spec("1GeV:1TeV").bounds_mev
    (1000.0, 1000000.0)
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from physgen.errors import ConfigError

__all__ = [
    "DS1_ENERGIES_MEV",
    "DS1_FREQUENCIES",
    "ENERGY_STREAM",
    "EnergySpec",
    "parse_energy_spec",
]

#: The 15 incident energies of CaloChallenge dataset 1, MeV.
DS1_ENERGIES_MEV = tuple(float(2**k) for k in range(8, 23))
#: Showers per energy in a dataset-1 photon file (121,000 in all).
DS1_FREQUENCIES = (10000,) * 11 + (5000, 3000, 2000, 1000)
#: spawn_key of the incident-energy random stream.
ENERGY_STREAM = 0x454E45
_UNITS = {"": 1.0, "ev": 1e-6, "kev": 1e-3, "mev": 1.0, "gev": 1e3, "tev": 1e6}
_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_VALUE_RE = re.compile(rf"^\s*({_NUMBER})\s*([A-Za-z]*)\s*$")
_EXPECTED = (
    "expected a value with units (100GeV, 500MeV, 1TeV; bare numbers are MeV), "
    "a log-uniform range LOW:HIGH (1GeV:1TeV), ds1 or ds1:even"
)


@dataclass(frozen=True)
class EnergySpec:
    """How incident energies are chosen.

    Attributes:
        kind: ``"fixed"``, ``"log-uniform"``, ``"ds1"`` or ``"ds1:even"``.
        low_mev: Lowest energy, MeV.
        high_mev: Highest energy, MeV (= ``low_mev`` for ``fixed``).
        text: The specification as written by the user.
    """

    kind: str
    low_mev: float
    high_mev: float
    text: str

    @property
    def bounds_mev(self) -> tuple[float, float]:
        """``(lowest, highest)`` energy this spec can produce, MeV."""
        return (self.low_mev, self.high_mev)

    def describe(self) -> str:
        """Canonical one-line description (stored in the file provenance)."""
        if self.kind == "fixed":
            return f"fixed {self.low_mev:.17g} MeV"
        if self.kind == "log-uniform":
            return f"log-uniform {self.low_mev:.17g}-{self.high_mev:.17g} MeV"
        if self.kind == "ds1":
            return "ds1: 2^8..2^22 MeV with dataset-1 photon-file frequencies"
        return "ds1:even: 2^8..2^22 MeV cycled in order"

    def sample(self, n: int, seed: int) -> npt.NDArray[np.float64]:
        """Draw ``n`` incident energies (MeV, float64) from the run seed.

        The draw depends only on ``(spec, n, seed)``; the first ``k`` of ``n``
        values equal a draw of ``k``.
        """
        if self.kind == "fixed":
            return np.full(n, self.low_mev, dtype=np.float64)
        if self.kind == "ds1:even":
            return np.asarray(DS1_ENERGIES_MEV, dtype=np.float64)[np.arange(n) % 15]
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(ENERGY_STREAM,)))
        u = rng.random(n)
        if self.kind == "log-uniform":
            lo, hi = math.log(self.low_mev), math.log(self.high_mev)
            return np.clip(np.exp(lo + (hi - lo) * u), self.low_mev, self.high_mev)
        cdf = np.cumsum(DS1_FREQUENCIES) / sum(DS1_FREQUENCIES)
        idx = np.minimum(np.searchsorted(cdf, u, side="right"), 14)
        return np.asarray(DS1_ENERGIES_MEV, dtype=np.float64)[idx]


def _parse_value(text: str, spec: str) -> float:
    m = _VALUE_RE.match(text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ConfigError(f"--energy: cannot read {spec!r}: {_EXPECTED}")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"--energy: {spec!r}: energies must be positive and finite")
    return value


def parse_energy_spec(spec: str | EnergySpec) -> EnergySpec:
    """Parse an ``--energy`` specification (see the module docstring).

    Raises:
        ConfigError: ``--energy: ... expected ...`` for anything unparsable.
    """
    if isinstance(spec, EnergySpec):
        return spec
    if not isinstance(spec, str):
        raise ConfigError(f"--energy: {spec!r} is not a string: {_EXPECTED}")
    text = spec.strip()
    key = text.lower().replace(" ", "")
    if key == "ds1":
        return EnergySpec("ds1", DS1_ENERGIES_MEV[0], DS1_ENERGIES_MEV[-1], text)
    if key in ("ds1:even", "ds1-even"):
        return EnergySpec("ds1:even", DS1_ENERGIES_MEV[0], DS1_ENERGIES_MEV[-1], text)
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 2:
            raise ConfigError(f"--energy: cannot read {spec!r}: {_EXPECTED}")
        lo, hi = _parse_value(parts[0], spec), _parse_value(parts[1], spec)
        if not lo < hi:
            raise ConfigError(
                f"--energy: range {spec!r} needs LOW < HIGH, got {lo:g} MeV and {hi:g} MeV"
            )
        return EnergySpec("log-uniform", lo, hi, text)
    value = _parse_value(text, spec)
    return EnergySpec("fixed", value, value, text)
