"""How long a server keeps a connection: ``max_connection_idle``, ``max_connection_age`` and
``max_connection_age_grace``, as grpc-go's ``keepalive.ServerParameters`` and grpc-core's
``grpc.max_connection_*_ms`` define them.

A long-lived HTTP/2 connection pins a client to one backend: behind a load balancer that
spreads *connections* (a Kubernetes Service, ``SO_REUSEPORT`` workers, a proxy's upstream),
new servers get no load until clients reconnect. So a server can ask clients to go away:

* ``max_connection_idle``: no stream open for that long (since the connection began or its last
  stream finished) drains the connection with GOAWAY(NO_ERROR, "max_idle");
* ``max_connection_age``: that long after the connection began, multiplied by a random factor
  in [0.9, 1.1] (gRPC's jitter, so that connections made together do not all reconnect
  together), drains it with GOAWAY(NO_ERROR, "max_age");
* ``max_connection_age_grace``: that long after the age GOAWAY, calls still running are
  cancelled and the connection closed (None: they may run as long as they like).

Draining is the graceful two-step shutdown (``ConnectionCore.shut_down``: GOAWAY(2^31-1) and a
PING, then the final GOAWAY), after which the connection closes as soon as no stream is open;
clients see NO_ERROR and open their next calls on a new connection. The policy decides and the
session acts, like the keepalive policies (``keepalive.py``).
"""

from __future__ import annotations

import enum
import random
from typing import Callable, Optional

from .options import ConnectionOptions

#: gRPC's jitter on max_connection_age: +-10% (grpc-go ``getJitter``, grpc-core
#: ``MAX_CONNECTION_AGE_JITTER``).
AGE_JITTER = 0.1


class LifetimeAction(enum.Enum):
    NOTHING = "nothing"
    #: Begin a graceful drain (GOAWAY with ``reason`` as debug data), close once idle.
    DRAIN_IDLE = "max_idle"
    DRAIN_AGE = "max_age"
    #: The grace after the age GOAWAY is over: cancel what still runs and close.
    CLOSE = "close"


class ConnectionLifetime:
    """The idle and age clocks of one connection; ``on_timer`` says what is due."""

    def __init__(
        self,
        options: ConnectionOptions,
        now: float,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.max_idle = options.max_connection_idle
        self.grace = options.max_connection_age_grace
        age = options.max_connection_age
        self._age_deadline: Optional[float] = None
        if age is not None:
            self._age_deadline = now + age * uniform(1 - AGE_JITTER, 1 + AGE_JITTER)
        self._idle_since: Optional[float] = now  # None while streams are open
        self._close_deadline: Optional[float] = None
        self._drained = False  # a drain began (for either reason): idleness no longer counts
        #: Any of the limits is set (else the session need not tell us anything).
        self.enabled = self.max_idle is not None or age is not None

    def deadline(self) -> Optional[float]:
        """When ``on_timer`` should next be called (None: nothing is due)."""
        deadlines = [self._age_deadline, self._close_deadline]
        if self.max_idle is not None and self._idle_since is not None and not self._drained:
            deadlines.append(self._idle_since + self.max_idle)
        return min((d for d in deadlines if d is not None), default=None)

    def busy(self) -> None:
        """A stream opened: the connection is not idle."""
        self._idle_since = None

    def idle(self, now: float) -> None:
        """The last open stream finished."""
        self._idle_since = now

    def on_timer(self, now: float) -> LifetimeAction:
        """What is due at ``now``. The age clock runs on after an idle drain (as in grpc-go):
        a call that arrived while the idle GOAWAY was on its way still gets only the grace."""
        if self._close_deadline is not None and now >= self._close_deadline:
            self._close_deadline = None
            return LifetimeAction.CLOSE
        if self._age_deadline is not None and now >= self._age_deadline:
            self._age_deadline = None
            self._drained = True
            if self.grace is not None:
                self._close_deadline = now + self.grace
            return LifetimeAction.DRAIN_AGE
        idle = self._idle_since
        if (
            self.max_idle is not None
            and idle is not None
            and not self._drained
            and now >= idle + self.max_idle
        ):
            self._drained = True
            return LifetimeAction.DRAIN_IDLE
        return LifetimeAction.NOTHING
