"""Bounds checked before any work starts: seeds, devices, worker counts, memory.

Each check raises :class:`~physgen.errors.ConfigError` with one line naming the
option, the value and what was expected, so that a command refuses an impossible
request at once instead of failing with a traceback (or the machine's out-of-memory
killer) later.
"""

from __future__ import annotations

import logging
import math
import os
import re
from typing import Any

from physgen.errors import ConfigError

__all__ = [
    "SEED_MAX",
    "available_memory_bytes",
    "check_device",
    "check_memory",
    "check_seed",
    "check_workers",
    "cpu_count",
    "format_bytes",
    "parse_duration",
]

log = logging.getLogger(__name__)

#: Seeds of every command lie in ``[0, SEED_MAX)``: they feed numpy's SeedSequence and
#: torch generators as unsigned 64-bit words.
SEED_MAX = 2**63

_DEVICE = re.compile(r"^(cpu|cuda|mps)(?::(\d+))?$")


def check_seed(seed: Any, option: str = "--seed") -> int:
    """A seed in the one documented range ``0 <= seed < 2**63``.

    Raises:
        ConfigError: Not an integer or out of range.
    """
    if hasattr(seed, "__index__") and not isinstance(seed, bool):
        seed = int(seed.__index__())
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < SEED_MAX:
        raise ConfigError(f"{option}: expected an integer in [0, 2**63), got {seed!r}")
    return seed


def check_device(name: Any, option: str = "--device") -> str:
    """A torch device name that exists on this machine: cpu, cuda, cuda:N or mps.

    Returns:
        The normalised name.

    Raises:
        ConfigError: Unknown name, or a device this machine (or this torch build) lacks.
    """
    text = str(name).strip().lower()
    m = _DEVICE.match(text)
    if m is None:
        raise ConfigError(f"{option}: unknown device {name!r}; expected cpu, cuda, cuda:N or mps")
    import torch

    kind, index = m.groups()
    if kind == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else "no GPU visible"
            raise ConfigError(
                f"{option} {name}: CUDA is not available (torch {torch.__version__}, {build}); "
                "use --device cpu"
            )
        count = torch.cuda.device_count()
        if index is not None and int(index) >= count:
            raise ConfigError(f"{option} {name}: this machine has {count} CUDA device(s)")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{option} {name}: Apple MPS is not available here; use --device cpu")
    if kind == "cpu" and index is not None:
        raise ConfigError(f"{option} {name}: expected cpu without an index")
    return text


def cpu_count() -> int:
    """CPUs this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def check_workers(workers: Any, work_items: int, option: str = "--workers") -> int:
    """Worker processes to start: at least 1, at most the CPUs and the work available.

    A request above either cap is lowered with a warning (the output does not depend
    on the number of workers).

    Raises:
        ConfigError: Not an integer >= 1.
    """
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"{option}: expected an integer >= 1, got {workers!r}")
    cap = min(cpu_count(), max(1, int(work_items)))
    if workers > cap:
        why = (
            f"this machine has {cpu_count()} CPU(s)"
            if cap == cpu_count()
            else f"there are only {work_items} work item(s)"
        )
        log.warning("%s %d: using %d, %s", option, workers, cap, why)
        return cap
    return workers


def available_memory_bytes() -> int:
    """Memory available to new allocations (``MemAvailable``; total memory elsewhere)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 1 << 62


def format_bytes(n: float) -> str:
    """``1.5e9`` -> ``"1.5 GB"``."""
    for unit, scale in (
        ("EB", 1e18),
        ("PB", 1e15),
        ("TB", 1e12),
        ("GB", 1e9),
        ("MB", 1e6),
        ("kB", 1e3),
    ):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} B"


def check_memory(n_bytes: float, option: str, what: str) -> None:
    """Refuse a request whose arrays cannot fit in this machine's memory.

    Args:
        n_bytes: Estimated peak bytes of the request.
        option: The option that sets the size (named in the message).
        what: What needs the memory, e.g. "the incident energies of 1e12 showers".

    Raises:
        ConfigError: The estimate exceeds the available memory.
    """
    avail = available_memory_bytes()
    if n_bytes > avail:
        raise ConfigError(
            f"{option}: {what} need about {format_bytes(n_bytes)} of memory, "
            f"{format_bytes(avail)} available; ask for less"
        )


_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m(?:in)?)?\s*(?:(\d+(?:\.\d+)?)s)?\s*$"
)


def parse_duration(text: str, option: str = "--max-time") -> float:
    """``"2h"``, ``"90m"``, ``"1h30m"``, ``"45s"`` or a bare number of seconds -> seconds.

    Raises:
        ConfigError: Unparsable or not positive.
    """
    t = text.strip().lower()
    try:
        value = float(t)
    except ValueError:
        m = _DURATION.match(t)
        if not t or m is None or not any(m.groups()):
            raise ConfigError(
                f"{option}: expected a duration like 2h, 90m, 1h30m or 45s, got {text!r}"
            ) from None
        h, mi, s = (float(g) if g else 0.0 for g in m.groups())
        value = 3600 * h + 60 * mi + s
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{option}: must be > 0 and finite, got {text!r}")
    return value
