"""A per-method latency histogram (a server ``rpc.Interceptor``): log2 buckets of milliseconds."""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from typing import Any


class LatencyHistogram:
    """``rpc.Interceptor``-shaped (only the ``intercept`` method counts); thread-safe, so one
    instance can serve a blocking server's handler threads."""

    #: Upper bounds of the buckets, in milliseconds (the last one is open).
    BOUNDS = (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, math.inf)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, list[int]] = defaultdict(lambda: [0] * len(self.BOUNDS))

    def intercept(self, details: Any, request: Any, context: Any) -> Any:
        start = time.perf_counter()
        yield request
        elapsed_ms = (time.perf_counter() - start) * 1000
        bucket = next(i for i, bound in enumerate(self.BOUNDS) if elapsed_ms <= bound)
        with self._lock:
            self._counts[details.method][bucket] += 1

    def counts(self) -> dict[str, list[int]]:
        with self._lock:
            return {method: list(counts) for method, counts in self._counts.items()}

    def render(self) -> str:
        lines = []
        for method, counts in sorted(self.counts().items()):
            lines.append(f"{method}  ({sum(counts)} calls)")
            for bound, count in zip(self.BOUNDS, counts):
                if count:
                    label = f"<= {bound:g} ms" if bound != math.inf else "> 1024 ms"
                    lines.append(f"  {label:>12} {count:5d} {'#' * min(count, 60)}")
        return "\n".join(lines)
