"""``python -m protolib.reproduce``: see :mod:`protolib.reproduce.cli`."""

import sys

from .cli import main

sys.exit(main())
