"""The shower-engine protocol and registry of ``physgen simulate``.

An engine turns ``(particle, incident energy, seed)`` into one shower: a flat
``(n_voxels,)`` float64 vector of *raw* active-material energies in MeV for its
detector's readout geometry. The driver (:mod:`physgen.calo.simulate.run`) divides by
``engine.sampling_fraction`` to get calibrated (deposited) energies.

Engines are built lazily by name, so importing this module pulls in neither the
cascade kernels nor numba.

Example:
    >>> from physgen.calo.simulate.detector import get_detector
    >>> eng = get_engine("gflash", get_detector("par04", geometry="2"))
    >>> eng.name
    'gflash'
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from physgen.calo.simulate.detector import Detector
from physgen.errors import SimulationError

__all__ = ["ShowerEngine", "available_engines", "get_engine"]


@runtime_checkable
class ShowerEngine(Protocol):
    """What the driver needs from a shower engine.

    Attributes:
        name: Registry name (``"cascade"``, ``"gflash"``).
        sampling_fraction: Raw (active) to deposited energy calibration constant.
    """

    name: str
    sampling_fraction: float

    def simulate_one(self, particle: str, energy_mev: float, seed: int) -> npt.NDArray[np.float64]:
        """One shower, ``(n_voxels,)`` float64 raw active-material energies in MeV.

        The same ``seed`` must give the same shower, whatever process runs it.
        """
        ...


def available_engines() -> tuple[str, ...]:
    """Names accepted by :func:`get_engine`."""
    return ("cascade", "gflash")


def get_engine(name: str, detector: Detector, **options: Any) -> ShowerEngine:
    """Build a shower engine by name.

    Args:
        name: ``"cascade"`` (particle-by-particle Monte Carlo) or ``"gflash"``
            (Grindhammer-Peters parametrisation).
        detector: The detector stack and readout geometry.
        **options: Passed to the engine's constructor (``cuts=`` for the cascade,
            ``sampling_term=`` for GFlash).

    Raises:
        SimulationError: Unknown engine name, or bad options.
    """
    if name == "gflash":
        from physgen.calo.simulate.gflash import GFlashEngine

        engine_cls: Any = GFlashEngine
    elif name == "cascade":
        try:
            from physgen.calo.simulate.cascade import CascadeEngine
        except ImportError as exc:  # pragma: no cover - only while the cascade is missing
            raise SimulationError(f"--engine: the cascade engine is not available ({exc})") from exc
        engine_cls = CascadeEngine
    else:
        raise SimulationError(
            f"--engine: unknown engine {name!r}; choose one of {', '.join(available_engines())}"
        )
    try:
        return engine_cls(detector, **options)  # type: ignore[no-any-return]
    except TypeError as exc:
        if not options:
            raise
        raise SimulationError(f"--engine {name}: bad options {sorted(options)} ({exc})") from exc
