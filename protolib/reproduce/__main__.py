"""``python -m protolib.reproduce``: see :mod:`protolib.reproduce.cli`."""

import sys

from protolib.reproduce.cli import main

sys.exit(main())
