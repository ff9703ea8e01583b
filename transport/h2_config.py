"""The configuration our ``H2Connection`` objects get: h2's, minus its per-frame Python calls.

h2 reads its boolean options through a validating descriptor and logs through
``config.logger.debug``/``trace``, a no-op Python method by default: on every frame and every
state-machine input, several Python calls that do nothing (about 18 per unary call, client and
server each, counted with ``tests/bench/percall.py --top``). This subclass of
``h2.config.H2Configuration`` keeps the options as plain instance attributes (set once, from
values the core chooses) and logs to ``NullLogger``, whose methods are C functions that ignore
their arguments. Only the connections the core makes use it: h2's own classes are untouched.
"""

from __future__ import annotations

from typing import Any

import h2.config

__all__ = ["FastConfiguration", "NullLogger"]


class NullLogger:
    """h2's logger interface (``debug``, ``trace``), doing nothing at the cost of a C call."""

    debug: Any = "".format  # accepts and ignores any arguments, returns ""
    trace: Any = "".format


class FastConfiguration(h2.config.H2Configuration):
    """``H2Configuration`` with plain attributes instead of its validating descriptors."""

    # Plain class attributes shadow the base's descriptors: __init__'s assignments become
    # ordinary instance attributes, read without a Python call.
    client_side: Any = True
    header_encoding: Any = None
    validate_outbound_headers: Any = True
    normalize_outbound_headers: Any = True
    split_outbound_cookies: Any = False
    validate_inbound_headers: Any = True
    normalize_inbound_headers: Any = True

    def __init__(self, **options: Any) -> None:
        for name, value in options.items():
            if name != "logger" and not isinstance(value, (bool, type(None))):
                raise ValueError(f"{name} must be a bool or None")
        options.setdefault("logger", NullLogger())
        super().__init__(**options)
