"""Exception hierarchy of physgen.

The library never prints or exits: it raises one of these exceptions with a
one-line message that names the file, key or option at fault and what was
expected. The command line turns them into ``error: <message>`` and exit
status 2.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DataFormatError",
    "FitError",
    "GeometryError",
    "MissingDependencyError",
    "PhysgenError",
    "SimulationError",
]


class PhysgenError(Exception):
    """Base class of every error physgen raises on bad input."""


class GeometryError(PhysgenError):
    """A detector binning (XML or built-in name) is malformed or unknown."""


class DataFormatError(PhysgenError):
    """A shower file does not follow the CaloChallenge layout or holds bad values."""


class ConfigError(PhysgenError):
    """An option or configuration value is out of range or unparsable."""


class FitError(PhysgenError):
    """A likelihood fit (e.g. the bump hunt's sideband fit) did not converge to a valid minimum.

    Raised instead of returning numbers from a failed fit; the message names the fit and its
    status (valid minimum, call limit, estimated distance to minimum).
    """


class MissingDependencyError(PhysgenError, ImportError):
    """An optional package (an extra such as ``physgen[plot]``) is not installed.

    Also an :class:`ImportError`, so code that guards an optional feature with
    ``except ImportError`` keeps working.
    """


class SimulationError(PhysgenError):
    """A simulation request cannot be carried out (unknown particle, energy out of range...)."""
