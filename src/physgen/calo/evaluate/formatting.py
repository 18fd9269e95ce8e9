"""Number formats of the evaluation report's tables.

Holds :func:`column_formatter` (one format for a whole table column: the same decimals
for every cell, or scientific notation for all of them), the fixed-decimal and
thousands-separator formats, and the text of a train / test / validation split. Every
format writes an en dash where a value is missing, and returns HTML-safe text.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["column_formatter", "count_text", "fixed_formatter", "is_number", "split_text"]


def is_number(v: Any) -> bool:
    """Whether ``v`` is a finite int or float (bools and NaN are not)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def column_formatter(
    values: Iterable[Any], significant: int = 3, max_decimals: int = 4
) -> Callable[[Any], str]:
    """One number format for a whole table column.

    Every number of the column gets the same number of decimals: as many as give the
    smallest non-zero magnitude ``significant`` significant digits. When that needs more
    than ``max_decimals`` decimals, or the largest magnitude reaches 1e6, every number of
    the column is written in scientific notation with ``significant`` digits instead, so a
    ``1.81e+04`` never stands among fixed decimals.

    Args:
        values: The column's cells (numbers; None, NaN and strings are skipped).
        significant: Significant digits of the smallest non-zero magnitude (>= 1).
        max_decimals: Most decimals before the column switches to scientific notation.

    Returns:
        ``fmt(v)``: the cell's HTML text (an en dash for None or NaN; strings escaped).
    """
    mags = [abs(float(v)) for v in values if is_number(v) and v != 0]
    decimals = 0
    scientific = False
    if mags:
        decimals = max(0, significant - 1 - math.floor(math.log10(min(mags))))
        scientific = decimals > max_decimals or max(mags) >= 1e6

    def fmt(v: Any) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "–"
        if not is_number(v):
            return html.escape(str(v))
        if scientific:
            return f"{float(v):.{max(significant - 1, 0)}e}"
        return f"{float(v):.{decimals}f}"

    return fmt


def fixed_formatter(decimals: int) -> Callable[[Any], str]:
    """A column format with a set number of decimals (an en dash for None or NaN)."""

    def fmt(v: Any) -> str:
        return f"{float(v):.{decimals}f}" if is_number(v) else "–"

    return fmt


def count_text(n: Any) -> str:
    """An integer with thousands separators (an en dash when missing)."""
    return f"{int(n):,}" if is_number(n) else "–"


def split_text(split: Any) -> str:
    """A train / test / validation split as ``"a / b / c"`` (an en dash when missing)."""
    return " / ".join(count_text(v) for v in split) if split else "–"
