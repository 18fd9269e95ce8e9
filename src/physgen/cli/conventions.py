"""Options every ``physgen`` command shares, and what they set.

* ``-q/--quiet``: only errors reach stderr. The ``physgen`` loggers are set to ERROR,
  Python warnings are ignored and progress bars are off.
* ``-v/--verbose``: info messages (what a command is doing) on stderr as well.
* Neither: warnings on stderr; progress bars only when stderr is a terminal (tqdm's
  ``disable=None``), so batch logs and pipes stay clean.

Both flags are taken by the root (``physgen -q simulate ...``) and by every command
(``physgen simulate -q ...``); a command's own flag wins over the root's. Every command
calls :func:`use_verbosity` first, so a command registered on another Typer app (as the
tests do) behaves the same. :func:`progress` turns the result into the ``progress``
argument of the library functions.
"""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from physgen.errors import ConfigError

__all__ = [
    "NoProgress",
    "Quiet",
    "Verbose",
    "is_quiet",
    "progress",
    "reset",
    "scope",
    "set_root_verbosity",
    "use_verbosity",
]

Quiet = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q", help="Only errors on stderr: no warnings, no info, no progress bars."
    ),
]
Verbose = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Also log info messages (progress details) on stderr."),
]

NoProgress = Annotated[
    bool, typer.Option("--no-progress", help="Hide the progress bars (as --quiet does).")
]

_QUIET, _NORMAL, _VERBOSE = logging.ERROR, logging.WARNING, logging.INFO
_state = {"root": _NORMAL, "level": _NORMAL}


class _CliLogHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes ``warning: message`` lines to the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


def _pick(quiet: bool, verbose: bool) -> int:
    if quiet and verbose:
        raise ConfigError("--quiet and --verbose exclude each other: give one")
    return _QUIET if quiet else _VERBOSE if verbose else _NORMAL


def _apply(level: int) -> None:
    _state["level"] = level
    logger = logging.getLogger("physgen")
    for h in list(logger.handlers):
        if isinstance(h, _CliLogHandler):
            logger.removeHandler(h)
    handler = _CliLogHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    logging.addLevelName(logging.WARNING, "warning")
    logging.addLevelName(logging.INFO, "info")
    if level == _QUIET:  # scope() restores the filters after the command
        warnings.simplefilter("ignore")


def reset() -> None:
    """Back to the default level (warnings, no info); :func:`physgen.cli.main.main` calls it
    before every command."""
    _state["root"] = _NORMAL
    _apply(_NORMAL)


@contextmanager
def scope() -> Iterator[None]:
    """One command line: the default level before and after it, and the warning filters
    that ``--quiet`` changed restored after it."""
    reset()
    try:
        with warnings.catch_warnings():
            yield
    finally:
        reset()


def set_root_verbosity(quiet: bool, verbose: bool) -> None:
    """The root callback's ``-q``/``-v``: the level of every command that gives neither."""
    _state["root"] = _pick(quiet, verbose)
    _apply(_state["root"])


def use_verbosity(quiet: bool, verbose: bool) -> None:
    """A command's own ``-q``/``-v`` (over the root's); the first call of every command.

    Raises:
        ConfigError: Both flags given to the command.
    """
    _apply(_pick(quiet, verbose) if quiet or verbose else _state["root"])


def is_quiet() -> bool:
    """True under ``-q/--quiet``."""
    return _state["level"] == _QUIET


def progress(no_progress: bool = False) -> bool | None:
    """The library's ``progress`` argument: False under ``--quiet`` or ``--no-progress``,
    else None (a bar only when stderr is a terminal)."""
    return False if no_progress or is_quiet() else None
