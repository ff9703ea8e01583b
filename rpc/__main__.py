"""``python -m rpc``: the ``h2rpc`` command line (``rpc.cli``)."""

from __future__ import annotations

import sys

from .cli.main import main

sys.exit(main())
