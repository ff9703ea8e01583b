"""Load balancing over a channel's subchannels: ``pick_first`` and ``round_robin``, as gRPC's
(doc/load-balancing.md, gRFC A61/A62 for sticky TRANSIENT_FAILURE, A17 for health checking).

``Balancer`` is sans-I/O. Its entry points (a pick for a new call, an attempt that ended, a
connection lost, a resolution result, a timer, a health answer) change its state and leave
commands in ``commands`` for the channel to perform: start a connection attempt, resolve, set a
timer, start or stop a health Watch. It never waits; a call that finds no connection is queued
by the channel until ``on_change`` says the picker changed. Calls already on a connection stay
there: a subchannel that goes away is drained (``close_when_idle``), never moved.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any, Callable, Optional

from codec import StatusCode
from transport import Address

from .._core.backoff import Backoff, BackoffOptions
from .._errors import RpcError
from .subchannel import CONNECTING, IDLE, READY, SHUTDOWN, TRANSIENT_FAILURE, Subchannel

log = logging.getLogger(__name__)

PICK_FIRST = "pick_first"
ROUND_ROBIN = "round_robin"
LB_POLICIES = (PICK_FIRST, ROUND_ROBIN)

#: gRPC's default minimum time between two resolutions of a name (grpcio's
#: ``grpc.dns_min_time_between_resolutions_ms``: 30 s).
DEFAULT_MIN_RESOLUTION_INTERVAL = 30.0

# Commands for the channel (tuples; the first item says which).
#: ``(CONNECT_TO, subchannel)``: one connection attempt to ``subchannel.address``, within
#: ``subchannel.backoff.connect_timeout()``; it ends with ``connected`` or ``connect_failed``.
CONNECT_TO = "connect"
#: ``(RESOLVE,)``: ask the resolver; it ends with ``resolved`` or ``resolve_failed``.
RESOLVE = "resolve"
#: ``(TIMER, when, key)``: call ``timer_fired(key)`` at ``when`` (``time.monotonic()``).
TIMER = "timer"
#: ``(WATCH_HEALTH, subchannel, conn)``: start ``grpc.health.v1.Health/Watch`` on ``conn``;
#: its answers go to ``health_update``, its end to ``health_ended``.
WATCH_HEALTH = "watch_health"
#: ``(STOP_HEALTH, call)``: cancel a running health Watch call.
STOP_HEALTH = "stop_health"


def check_policy(name: Optional[str]) -> str:
    """A load balancing policy name (None: gRPC's default, pick_first); ValueError if unknown."""
    if name is None:
        return PICK_FIRST
    if name not in LB_POLICIES:
        raise ValueError(f"unknown load balancing policy {name!r}: use pick_first or round_robin")
    return name


class Balancer:
    """The subchannels of one channel and the policy that picks among them."""

    def __init__(
        self,
        target: str,
        addresses: Optional[Sequence[Address]],
        *,
        policy: str = PICK_FIRST,
        health_service: Optional[str] = None,
        backoff: Optional[BackoffOptions] = None,
        min_resolution_interval: float = DEFAULT_MIN_RESOLUTION_INTERVAL,
        on_change: Callable[[], None] = lambda: None,
        on_lost: Callable[[Any, bool], None] = lambda conn, closed: None,
    ) -> None:
        self.target = target
        self.policy = check_policy(policy)
        #: Health checking is for policies that balance over several backends (gRFC A17:
        #: pick_first ignores it).
        self.health_service = health_service if self.policy != PICK_FIRST else None
        self._backoff = backoff or BackoffOptions()
        self._min_resolution_interval = min_resolution_interval
        #: Called after every change of state or picker (the channel wakes the queued calls).
        self.on_change = on_change
        #: Called with a connection that is no longer used for new calls, and whether it is
        #: closed already (else the channel lets its calls finish, then closes it); the channel
        #: learns from its GOAWAY.
        self._on_lost = on_lost
        self.commands: list[tuple[Any, ...]] = []
        self.subchannels: list[Subchannel] = []
        self.state = IDLE
        #: The connection new calls use without asking the picker (pick_first, READY), else None.
        self.fast_conn: Any = None
        self._idle = True
        self._shutdown = False
        #: The resolver may answer differently next time (False: a fixed address list).
        self._dynamic = addresses is None
        self._resolving = False
        self._resolution_timer = False
        self._last_resolution = -math.inf
        self._resolve_backoff = Backoff(self._backoff)
        self._resolution_failure: Optional[RpcError] = None
        #: Why the channel is in TRANSIENT_FAILURE: what fail-fast calls get.
        self.failure: Optional[RpcError] = None
        self._sticky_failure = False  # TRANSIENT_FAILURE until something is READY again
        self._selected: Optional[Subchannel] = None  # pick_first's connection
        self._attempting: Optional[Subchannel] = None  # pick_first's pass over the addresses
        self._ready: list[Subchannel] = []  # round_robin's picker
        self._next = 0
        if addresses is not None:
            self._set_addresses(addresses)

    def take_commands(self) -> list[tuple[Any, ...]]:
        commands, self.commands = self.commands, []
        return commands

    # ------------------------------------------------------------------ picking

    def pick(self, wait_for_ready: bool) -> Any:
        """The connection for a new call, or None: the call waits for ``on_change``.

        RpcError CANCELLED once shut down; UNAVAILABLE (why the attempts failed) for a
        fail-fast call while in TRANSIENT_FAILURE; a wait-for-ready call waits instead.
        """
        if self._shutdown:
            raise RpcError(StatusCode.CANCELLED, "channel is closed")
        if self.policy == PICK_FIRST:
            selected = self._selected
            if selected is not None and selected.state is READY:
                conn = selected.conn
                if conn.is_usable:
                    return conn
                self._lost(selected)
        else:
            ready = self._ready
            while ready:
                index = self._next % len(ready)
                self._next = index + 1
                subchannel = ready[index]
                if subchannel.conn.is_usable:
                    return subchannel.conn
                self._lost(subchannel)
        if self._idle:
            self.exit_idle()
        if self.state is TRANSIENT_FAILURE and not wait_for_ready and self.failure is not None:
            raise self.failure
        return None

    def refresh(self) -> None:
        """Notice connections that stopped taking new calls (GOAWAY) before reporting a state."""
        for subchannel in list(self.subchannels):
            conn = subchannel.conn
            if conn is not None and subchannel.state is READY and not conn.is_usable:
                self._lost(subchannel)

    def next_attempt_in(self) -> float:
        """Seconds until the next connection attempt a backoff allows (<= 0: now)."""
        waits = [sc.retry_at for sc in self.subchannels if sc.state is TRANSIENT_FAILURE]
        return (min(waits) if waits else 0.0) - time.monotonic()

    # ------------------------------------------------------------------ connecting

    def exit_idle(self) -> None:
        """Start connecting (the first call, ``get_state(try_to_connect=True)``, or a call after
        pick_first lost its connection)."""
        if self._shutdown or not self._idle:
            return
        self._idle = False
        if not self.subchannels:
            if not self._resolving and not self._resolution_timer:
                self._start_resolution()
        else:
            self._connect_wanted()
        self._update()

    def _connect_wanted(self) -> None:
        if self.policy == PICK_FIRST:
            if self._selected is None and self._attempting is None and self.subchannels:
                self._try(self.subchannels[0])
        else:
            for subchannel in self.subchannels:
                if subchannel.state is IDLE and not subchannel.connecting:
                    self._connect(subchannel)

    def _try(self, subchannel: Subchannel) -> None:
        """pick_first's pass: one address after the other until one connects."""
        self._attempting = subchannel
        if not subchannel.connecting:
            self._connect(subchannel)

    def _connect(self, subchannel: Subchannel) -> None:
        subchannel.connecting = True
        subchannel.state = CONNECTING
        self.commands.append((CONNECT_TO, subchannel))

    def connected(self, subchannel: Subchannel, conn: Any) -> None:
        subchannel.connecting = False
        unwanted = self._shutdown or subchannel.state is SHUTDOWN
        if self.policy == PICK_FIRST and self._selected is not None:
            unwanted = True  # another address won meanwhile
        if unwanted:
            conn.close()
            if subchannel.state is not SHUTDOWN:
                subchannel.state = IDLE
            self._update()
            return
        subchannel.backoff.reset()
        subchannel.retry_at = 0.0
        subchannel.last_failure = None
        subchannel.conn = conn
        if self.health_service is not None:
            subchannel.healthy = None
            subchannel.state = CONNECTING  # until the health service says SERVING
            self.commands.append((WATCH_HEALTH, subchannel, conn))
            self._update()
        else:
            self._became_ready(subchannel)

    def _became_ready(self, subchannel: Subchannel) -> None:
        subchannel.state = READY
        self._sticky_failure = False
        self.failure = None
        if self.policy == PICK_FIRST:
            self._selected = subchannel
            self._attempting = None
            for other in self.subchannels:
                if other is not subchannel and other.state is not SHUTDOWN:
                    other.state = IDLE  # an attempt still under way is closed when it ends
        elif subchannel not in self._ready:
            self._ready.append(subchannel)
        self._update()

    def connect_failed(self, subchannel: Subchannel, exc: BaseException) -> None:
        subchannel.connecting = False
        if self._shutdown or subchannel.state is SHUTDOWN:
            return
        reason = str(exc) or type(exc).__name__
        where = "" if str(subchannel.address) == self.target else f" ({subchannel.address})"
        failure = RpcError(
            StatusCode.UNAVAILABLE, f"failed to connect to {self.target}{where}: {reason}"
        )
        subchannel.last_failure = self.failure = failure
        subchannel.state = TRANSIENT_FAILURE
        subchannel.retry_at = time.monotonic() + subchannel.backoff.next_delay()
        if self.policy == PICK_FIRST:
            if self._selected is not None:
                subchannel.state = IDLE  # too late to matter
            elif self._attempting is subchannel:
                index = self.subchannels.index(subchannel) + 1
                if index < len(self.subchannels):
                    self._try(self.subchannels[index])
                else:  # every address failed: TRANSIENT_FAILURE, each retried after its backoff
                    self._attempting = None
                    self._sticky_failure = True
                    for each in self.subchannels:
                        if each.state is TRANSIENT_FAILURE and not each.connecting:
                            self._retry_later(each)
                    self.request_resolution()
            elif self._attempting is None:
                self._retry_later(subchannel)
        else:
            self._retry_later(subchannel)
            self.request_resolution()
        self._update()

    def _retry_later(self, subchannel: Subchannel) -> None:
        self.commands.append((TIMER, subchannel.retry_at, ("reconnect", subchannel)))

    def connection_lost(self, subchannel: Subchannel, conn: Any) -> None:
        """``conn`` closed (the driver's notice), or stopped taking calls."""
        if subchannel.conn is conn:
            self._lost(subchannel, closed=True)

    def _lost(self, subchannel: Subchannel, closed: bool = False) -> None:
        conn, subchannel.conn = subchannel.conn, None
        self._stop_health(subchannel)
        self._on_lost(conn, closed)
        if self._shutdown or subchannel.state is SHUTDOWN:
            return
        subchannel.state = IDLE
        if subchannel in self._ready:
            self._ready.remove(subchannel)
        self.request_resolution()
        if self.policy == PICK_FIRST:
            if self._selected is subchannel:
                self._selected = None
                self._idle = True  # gRPC's pick_first: IDLE until a call wants a connection
        elif not self._idle:
            self._connect(subchannel)  # round_robin reconnects at once
        self._update()

    def timer_fired(self, key: tuple[Any, ...]) -> None:
        if self._shutdown:
            return
        if key[0] == "reconnect":
            subchannel = key[1]
            if (
                subchannel.state is not TRANSIENT_FAILURE
                or subchannel.connecting
                or subchannel not in self.subchannels
                or self._idle
            ):
                return
            if self.policy == PICK_FIRST and (
                self._selected is not None or self._attempting is not None
            ):
                return
            self._connect(subchannel)
        elif key[0] == "resolve":
            self._resolution_timer = False
            if not self._resolving:
                self._start_resolution()
        elif key[0] == "health":
            subchannel, conn = key[1], key[2]
            if subchannel.conn is conn and conn.is_usable and subchannel.health_call is None:
                self.commands.append((WATCH_HEALTH, subchannel, conn))
        self._update()

    # ------------------------------------------------------------------ name resolution

    def request_resolution(self) -> None:
        """Resolve again (a connection was lost, or every address failed), but not twice within
        the minimum interval: then at its end."""
        if not self._dynamic or self._shutdown or self._resolving or self._resolution_timer:
            return
        now = time.monotonic()
        earliest = self._last_resolution + self._min_resolution_interval
        if now < earliest:
            self._resolution_timer = True
            self.commands.append((TIMER, earliest, ("resolve",)))
        else:
            self._start_resolution()

    def _start_resolution(self) -> None:
        self._resolving = True
        self._last_resolution = time.monotonic()
        self.commands.append((RESOLVE,))

    def resolved(self, addresses: Sequence[Address]) -> None:
        self._resolving = False
        if self._shutdown:
            return
        self._resolve_backoff.reset()
        self._resolution_failure = None
        self._set_addresses(addresses)
        if not self._idle:
            self._connect_wanted()
        self._update()

    def resolve_failed(self, exc: BaseException) -> None:
        """The resolver failed (or gave no address): calls fail (fail-fast) or wait while there
        is nothing to connect to; a new resolution after a backoff."""
        self._resolving = False
        if self._shutdown:
            return
        failure = RpcError(
            StatusCode.UNAVAILABLE,
            f"name resolution failed for {self.target}: {str(exc) or type(exc).__name__}",
        )
        if self.subchannels:  # keep using the last good list
            log.warning("%s", failure.details())
            return
        self._resolution_failure = self.failure = failure
        self._resolution_timer = True
        delay = self._resolve_backoff.next_delay()
        self.commands.append((TIMER, time.monotonic() + delay, ("resolve",)))
        self._update()

    def _set_addresses(self, addresses: Sequence[Address]) -> None:
        """A new address list: subchannels of addresses kept stay as they are (with their
        calls); those of addresses gone are drained; new ones start IDLE."""
        old = {sc.address: sc for sc in self.subchannels}
        subchannels = []
        for address in addresses:
            subchannel = old.pop(address, None)
            if subchannel is None:
                subchannel = Subchannel(address, self._backoff)
            subchannels.append(subchannel)
        for gone in old.values():
            self._drop(gone)
        self.subchannels = subchannels
        if self._selected is not None and self._selected.state is SHUTDOWN:
            self._selected = None
        if self._attempting is not None and self._attempting.state is SHUTDOWN:
            self._attempting = None
        self._ready = [sc for sc in self._ready if sc.state is READY]

    def _drop(self, subchannel: Subchannel) -> None:
        subchannel.state = SHUTDOWN
        self._stop_health(subchannel)
        conn, subchannel.conn = subchannel.conn, None
        if conn is not None:
            self._on_lost(conn, False)

    # ------------------------------------------------------------------ health checking

    def health_update(self, subchannel: Subchannel, conn: Any, serving: bool) -> None:
        """The health service's answer for a connected subchannel: only SERVING is READY."""
        if subchannel.conn is not conn or subchannel.state is SHUTDOWN or self._shutdown:
            return
        subchannel.healthy = serving
        if serving:
            if subchannel.state is not READY:
                self._became_ready(subchannel)
            return
        subchannel.state = TRANSIENT_FAILURE
        self.failure = RpcError(
            StatusCode.UNAVAILABLE,
            f"{subchannel.address} of {self.target} is not serving "
            f"(health check of {self.health_service!r})",
        )
        if subchannel in self._ready:
            self._ready.remove(subchannel)
        self._update()

    def health_ended(self, subchannel: Subchannel, conn: Any, code: StatusCode, why: str) -> None:
        """The Watch call ended. UNIMPLEMENTED: the server has no health service, so the backend
        counts as healthy (gRFC A17); else unhealthy until a new Watch (after a backoff) says
        otherwise."""
        subchannel.health_call = None
        if subchannel.conn is not conn or subchannel.state is SHUTDOWN or self._shutdown:
            return
        if code == StatusCode.UNIMPLEMENTED:
            log.error("%s: no health service (%s); health checking disabled", conn, why)
            self.health_update(subchannel, conn, True)
            return
        if not conn.is_usable:
            return  # the connection is going: connection_lost handles it
        self.health_update(subchannel, conn, False)
        when = time.monotonic() + subchannel.backoff.next_delay()
        self.commands.append((TIMER, when, ("health", subchannel, conn)))

    def _stop_health(self, subchannel: Subchannel) -> None:
        call, subchannel.health_call = subchannel.health_call, None
        subchannel.healthy = None
        if call is not None:
            self.commands.append((STOP_HEALTH, call))

    # ------------------------------------------------------------------ state

    def shutdown(self) -> list[Any]:
        """SHUTDOWN; the connections, for the channel to close."""
        self._shutdown = True
        conns = []
        for subchannel in self.subchannels:
            subchannel.state = SHUTDOWN
            self._stop_health(subchannel)
            if subchannel.conn is not None:
                conns.append(subchannel.conn)
                subchannel.conn = None
        self._selected = None
        self._ready = []
        self._update()
        return conns

    def _update(self) -> None:
        if self._shutdown:
            state = SHUTDOWN
        elif self._idle:
            state = IDLE
        elif self.policy == PICK_FIRST:
            selected = self._selected
            if selected is not None and selected.state is READY:
                state = READY
            elif self._sticky_failure or (self._resolution_failure and not self.subchannels):
                state = TRANSIENT_FAILURE
            else:
                state = CONNECTING
        elif self._ready:
            state = READY
        elif self._sticky_failure or (self._resolution_failure and not self.subchannels):
            state = TRANSIENT_FAILURE
        elif self.subchannels and all(sc.state is TRANSIENT_FAILURE for sc in self.subchannels):
            self._sticky_failure = True
            state = TRANSIENT_FAILURE
        else:
            state = CONNECTING
        self.state = state
        fast = None
        if state is READY and self.policy == PICK_FIRST:
            assert self._selected is not None
            fast = self._selected.conn
        self.fast_conn = fast
        self.on_change()
