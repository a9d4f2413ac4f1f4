"""``python -m edgeasd`` runs the command line."""

import sys

from edgeasd.cli import main

sys.exit(main())
