"""``python -m rpc.cli``: the ``h2rpc`` command line."""

from __future__ import annotations

import sys

from .main import main

sys.exit(main())
