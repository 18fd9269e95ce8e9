"""Names of the built-in integrands and processes (used by the command line)."""

from __future__ import annotations

from collections.abc import Callable

from physgen.errors import ConfigError
from physgen.nis.integrands import (
    BreitWigner,
    Camel,
    DrellYanLike,
    Integrand,
    MultiChannelIntegrand,
    Polynomial,
    Ring,
)
from physgen.nis.processes import EEToMuMu, EEToQQG, PhysicsProcess

__all__ = ["INTEGRANDS", "PROCESSES", "get_integrand", "get_process"]

#: name -> (factory taking the dimension or None, fixed dimension or None)
INTEGRANDS: dict[
    str, tuple[Callable[[int | None], Integrand | MultiChannelIntegrand], int | None]
] = {
    "camel": (lambda d: Camel(d if d is not None else 2), None),
    "ring": (lambda d: Ring(d if d is not None else 2), None),
    "polynomial": (lambda d: Polynomial(d if d is not None else 2), None),
    "breit-wigner": (lambda d: BreitWigner(d if d is not None else 1), None),
    "dy3": (lambda d: DrellYanLike(1), 3),
    "dy3-mc": (lambda d: DrellYanLike(3), 3),
    "ee-mumu": (lambda d: EEToMuMu(), 2),
    "ee-qqg": (lambda d: EEToQQG(), 5),
}

PROCESSES: dict[str, Callable[[], PhysicsProcess]] = {
    "ee-mumu": EEToMuMu,
    "ee-qqg": EEToQQG,
}


#: Largest dimension of the built-in toy integrands. Their normalisations stay finite
#: (the camel's ``(a sqrt(pi))^-d`` overflows float64 near d = 410) and the flow's
#: coupling layers stay a sensible size; MadNIS-style benchmarks go up to d = 32.
MAX_DIM = 128


def get_integrand(name: str, dim: int | None = None) -> Integrand | MultiChannelIntegrand:
    """Build a built-in integrand by name.

    Raises:
        ConfigError: Unknown name, or a dimension that the integrand does not accept.
    """
    if name not in INTEGRANDS:
        raise ConfigError(f"--integrand: unknown '{name}', expected one of {', '.join(INTEGRANDS)}")
    factory, fixed = INTEGRANDS[name]
    if dim is not None and not 1 <= dim <= MAX_DIM:
        raise ConfigError(
            f"--dim: expected 1 <= dim <= {MAX_DIM} (a unit-hypercube integrand of higher "
            f"dimension needs its own parametrisation), got {dim}"
        )
    if fixed is not None and dim is not None and dim != fixed:
        raise ConfigError(f"--dim: integrand '{name}' has dimension {fixed}, got {dim}")
    return factory(dim)


def get_process(name: str) -> PhysicsProcess:
    """Build a built-in physics process by name (``ee-mumu`` or ``ee-qqg``)."""
    if name not in PROCESSES:
        raise ConfigError(f"--process: unknown '{name}', expected one of {', '.join(PROCESSES)}")
    return PROCESSES[name]()
