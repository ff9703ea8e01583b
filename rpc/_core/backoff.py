"""gRPC connection backoff (doc/connection-backoff.md in the gRPC repository).

After a failed connection attempt the next one waits ``INITIAL_BACKOFF``, then 1.6 times longer
each time, capped at ``MAX_BACKOFF``, each delay randomised by +/-20% so that clients restarted
together do not reconnect in lock-step. A successful connection resets it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class BackoffOptions:
    initial_backoff: float = 1.0
    multiplier: float = 1.6
    jitter: float = 0.2
    max_backoff: float = 120.0
    #: Each connection attempt may take at least this long before it is abandoned.
    min_connect_timeout: float = 20.0

    def __post_init__(self) -> None:
        if self.initial_backoff <= 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("need 0 < initial_backoff <= max_backoff")
        if self.multiplier < 1 or not 0 <= self.jitter < 1 or self.min_connect_timeout <= 0:
            raise ValueError("need multiplier >= 1, 0 <= jitter < 1, min_connect_timeout > 0")


class Backoff:
    """The delays between connection attempts; ``next_delay()`` after each failure."""

    def __init__(
        self, options: BackoffOptions, rand: Callable[[float, float], float] = random.uniform
    ) -> None:
        self.options = options
        self._rand = rand
        self._current = options.initial_backoff

    def reset(self) -> None:
        self._current = self.options.initial_backoff

    def next_delay(self) -> float:
        options = self.options
        base = self._current
        self._current = min(base * options.multiplier, options.max_backoff)
        return base * (1 + self._rand(-options.jitter, options.jitter))

    def connect_timeout(self) -> float:
        return max(self.options.min_connect_timeout, self._current)
