"""Optional dependencies: import them where they are needed, or fail in one line.

The extras of ``pyproject.toml`` (``plot``, ``io``) bring packages that only some
features use. Each import site of such a package calls :func:`require` first, so a
missing package gives a :class:`~physgen.errors.MissingDependencyError` naming the
extra (the command line prints it as one ``error: ...`` line, exit status 2) instead
of a ``ModuleNotFoundError`` traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from physgen.errors import MissingDependencyError

__all__ = ["require"]


def require(module: str, extra: str, purpose: str, hint: str = "") -> ModuleType:
    """Import ``module`` or raise a one-line error naming the extra that installs it.

    Args:
        module: Dotted module name, e.g. ``"matplotlib.pyplot"``; the message names
            its top-level package (``matplotlib``).
        extra: The ``physgen[...]`` extra that brings the package, e.g. ``"plot"``.
        purpose: What needs it, as a plural subject of "need": ``"plots"``,
            ``"Parquet files"``; may start with the file at fault (``"x.parquet: Parquet files"``).
        hint: An alternative appended after a comma, e.g. ``"or use --no-plots"``.

    Returns:
        The imported module (call sites usually follow with a plain ``import`` of it, which
        keeps the static types).

    Raises:
        MissingDependencyError: The module (or a package it needs) cannot be imported,
            e.g. ``plots need matplotlib: pip install 'physgen[plot]', or use --no-plots``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        package = module.split(".")[0]
        msg = f"{purpose} need {package}: pip install 'physgen[{extra}]'"
        if hint:
            msg += f", {hint}"
        missing = getattr(exc, "name", None)
        if missing and missing.split(".")[0] != package:  # installed, but broken
            msg += f" ({package} is installed but cannot import {missing!r})"
        raise MissingDependencyError(msg) from exc
