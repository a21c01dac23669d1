"""``python -m controller.cli``: the ``boxkeeper`` command."""

import sys

from controller.cli import main

sys.exit(main())
