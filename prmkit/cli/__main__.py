"""``python -m prmkit.cli``: the ``prmkit`` command."""

import sys

from prmkit.cli import main

sys.exit(main())
