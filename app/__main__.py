"""``python -m app``: the ``farsight`` command."""

import sys

from app.cli import main

sys.exit(main())
