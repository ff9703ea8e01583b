"""A structured access log: one JSON line per call, with its method, peer, status, duration and
how many messages went each way.

An ``rpc.Interceptor``: one generator method for every call kind, on ``rpc.Server`` (``async
def`` and ``def`` handlers alike) and ``rpc.sync.Server``.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable, Optional

import rpc

log = logging.getLogger("access")


class AccessLog(rpc.Interceptor):
    def __init__(self, write: Optional[Callable[[str], Any]] = None) -> None:
        self._write = write or log.info

    def intercept(self, details: Any, request: Any, context: Any) -> Any:
        start = time.perf_counter()
        counts = {"requests": 0, "responses": 0}

        def count(key: str) -> Callable[[Any], Any]:
            def counted(message: Any) -> Any:
                counts[key] += 1
                return message

            return counted

        context.wrap_requests(count("requests"))
        context.wrap_responses(count("responses"))
        status = yield request  # the handler runs
        if not details.cardinality.request_streaming:
            counts["requests"] = 1
        entry = {
            "method": details.method,
            "peer": context.peer(),
            "code": status.code.name if status is not None else "CLIENT_GONE",
            "ms": round((time.perf_counter() - start) * 1000, 3),
            **counts,
        }
        self._write(json.dumps(entry, sort_keys=True))
        return None  # keep the status
