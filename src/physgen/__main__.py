"""``python -m physgen`` runs the command line."""

import sys

from physgen.cli.main import main

sys.exit(main())
