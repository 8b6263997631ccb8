"""``python -m cdp_logging``: the ``cdp-logging`` command."""

import sys

from .cli import main

sys.exit(main())
