"""The ``physgen`` command line (see :mod:`physgen.cli.main`)."""

from physgen.cli.main import app, main

__all__ = ["app", "main"]
