"""``python -m physgen`` runs the command line."""

from physgen.cli.main import run

run()
