"""Helpers of the command-line tests: the ``run`` fixture's type and the bad-input contract.

The fixture itself, ``run(*args) -> (status, stdout, stderr)``, is in ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable

#: ``run("simulate", "--n", 3, ...)``: arguments are turned into strings.
Run = Callable[..., tuple[int, str, str]]


def one_line_error(rc: int, err: str, *needles: str) -> str:
    """Assert the bad-input contract: exit status 2, one line ``error: ...`` on stderr, no
    traceback, and every ``needle`` in that line; return the line."""
    assert rc == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]
