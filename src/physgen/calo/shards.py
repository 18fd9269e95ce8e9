"""``--shard I/K``: which rows of an N-shower run one shard produces (no torch, no numba).

``physgen generate`` draws its randomness in seed blocks of :data:`SEED_BLOCK` showers (one
model call per block), so its shards are cut on block boundaries: a run of N showers has
``ceil(N / SEED_BLOCK)`` blocks and at most that many non-empty shards. ``physgen
simulate`` seeds every shower on its own, so its shards are cut on single rows
(``block=1``): at most N shards. Either way, shards ``1/K ... K/K`` merged in order with
``physgen merge`` are the unsharded run, whatever K is.

Example:
    >>> [parse_shard(f"{i}/3").rows(2100) for i in (1, 2, 3)]
    [(0, 1000), (1000, 2000), (2000, 2100)]
    >>> [parse_shard(f"{i}/3").rows(10, block=1) for i in (1, 2, 3)]
    [(0, 3), (3, 6), (6, 10)]
"""

from __future__ import annotations

from dataclasses import dataclass

from physgen.errors import ConfigError

__all__ = ["SEED_BLOCK", "Shard", "parse_shard"]

#: Showers per seed block of ``physgen generate``.
SEED_BLOCK = 1000


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (0-based) of ``count``."""

    index: int = 0
    count: int = 1

    def rows(self, n: int, block: int = SEED_BLOCK) -> tuple[int, int]:
        """Row range ``[start, stop)`` of this shard among ``n`` rows, on ``block``
        boundaries, balanced to within one block."""
        n_blocks = -(-n // block)
        b0 = self.index * n_blocks // self.count
        b1 = (self.index + 1) * n_blocks // self.count
        return min(b0 * block, n), min(b1 * block, n)

    def check(self, n: int, block: int = SEED_BLOCK) -> tuple[int, int]:
        """:meth:`rows`, refusing a shard that would hold no shower.

        Raises:
            ConfigError: The shard is empty (fewer blocks than shards), with what to do.
        """
        start, stop = self.rows(n, block)
        if start < stop:
            return start, stop
        label = f"--shard {self.index + 1}/{self.count}"
        if block == 1:
            raise ConfigError(
                f"{label}: this shard holds no shower: {n} showers cannot fill {self.count} "
                f"shards; use at most {n} shards"
            )
        n_blocks = -(-n // block)
        raise ConfigError(
            f"{label}: this shard holds no shower: shards are cut on seed blocks of {block} "
            f"showers (so that merged shards equal the unsharded run), and {n} showers make "
            f"only {n_blocks} block(s); use at most {n_blocks} shards (--shard I/{n_blocks}) "
            f"or at least {(self.count - 1) * block + 1} showers for {self.count} shards"
        )


def parse_shard(text: str | None) -> Shard:
    """``"3/8"`` -> Shard(2, 8) (1-based on the command line, as in "shard 3 of 8").

    Raises:
        ConfigError: Not ``I/K`` with ``1 <= I <= K``.
    """
    if text is None:
        return Shard()
    i, sep, k = text.partition("/")
    try:
        idx, cnt = int(i), int(k)
    except ValueError:
        idx, cnt = 0, 0
    if not sep or cnt < 1 or not 1 <= idx <= cnt:
        raise ConfigError(f"--shard: expected I/K with 1 <= I <= K (e.g. 3/8), got {text!r}")
    return Shard(idx - 1, cnt)
