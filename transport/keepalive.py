"""Keepalive policies: when to PING, when a silent peer is dead, when a peer pings too often.

Policy objects decide, the driver acts: they take the time and what happened, and answer what to
do. Semantics follow gRPC's keepalive (doc/keepalive.md in the gRPC repository):

* a side with ``keepalive_time`` set sends a PING after that long without hearing from the peer
  (only while calls are active, unless ``keepalive_permit_without_calls``), and declares the
  connection dead if the ACK has not come ``keepalive_timeout`` later;
* a server counts a "strike" for each PING that comes sooner than ``min_ping_interval`` after the
  previous one while it has sent no data in between (or, with no calls active and pings without
  calls not permitted, sooner than two hours); more than ``max_ping_strikes`` strikes earn the
  client a GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings").
"""

from __future__ import annotations

import enum
import struct
from typing import Optional

from .options import ConnectionOptions

#: gRPC's interval for pings on a connection without calls, when such pings are not permitted.
NO_CALLS_PING_INTERVAL = 2 * 60 * 60.0


class KeepaliveAction(enum.Enum):
    NOTHING = "nothing"
    SEND_PING = "send_ping"
    CONNECTION_DEAD = "connection_dead"


class KeepaliveTimer:
    """Our side's keepalive: PING when the peer has been silent, and the watchdog on the ACK."""

    def __init__(self, options: ConnectionOptions, now: float) -> None:
        self.interval = options.keepalive_time
        self.timeout = options.keepalive_timeout
        self.permit_without_calls = options.keepalive_permit_without_calls
        self._last_heard = now
        self._outstanding: Optional[bytes] = None
        self._sent_at = 0.0
        self._counter = 0

    @property
    def enabled(self) -> bool:
        return self.interval is not None

    def deadline(self) -> Optional[float]:
        """When ``on_timer`` should next be called (None: keepalive is off)."""
        if self.interval is None:
            return None
        if self._outstanding is not None:
            return self._sent_at + self.timeout
        return self._last_heard + self.interval

    def heard_from_peer(self, now: float) -> None:
        """Any frame from the peer proves it alive: no need to ping for a while."""
        self._last_heard = now

    def on_timer(self, now: float, active_streams: int) -> KeepaliveAction:
        if self.interval is None:
            return KeepaliveAction.NOTHING
        if self._outstanding is not None:
            if now >= self._sent_at + self.timeout:
                return KeepaliveAction.CONNECTION_DEAD
            return KeepaliveAction.NOTHING
        if now < self._last_heard + self.interval:
            return KeepaliveAction.NOTHING
        if not active_streams and not self.permit_without_calls:
            self._last_heard = now  # idle without calls: look again one interval later
            return KeepaliveAction.NOTHING
        return KeepaliveAction.SEND_PING

    def ping_payload(self, now: float) -> bytes:
        """The opaque data of the PING to send now (remembered to match its ACK)."""
        self._counter += 1
        self._outstanding = struct.pack(">Q", self._counter)
        self._sent_at = now
        return self._outstanding

    def on_ping_ack(self, data: bytes, now: float) -> None:
        if data == self._outstanding:
            self._outstanding = None
        self._last_heard = now


class PingPolicy:
    """A server's enforcement of how often clients may PING (grpc-core's "ping strikes")."""

    def __init__(self, options: ConnectionOptions) -> None:
        self.min_interval = options.min_ping_interval
        self.max_strikes = options.max_ping_strikes
        self.permit_without_calls = options.keepalive_permit_without_calls
        self._last_ping: Optional[float] = None
        self._strikes = 0

    @property
    def strikes(self) -> int:
        return self._strikes

    def data_sent(self) -> None:
        """We sent headers or data: pings after this are expected, the count starts over."""
        self._last_ping = None
        self._strikes = 0

    def ping_received(self, now: float, active_streams: int) -> bool:
        """Count a PING; True when the peer has now pinged too often (send GOAWAY)."""
        interval = self.min_interval
        if not active_streams and not self.permit_without_calls:
            interval = max(interval, NO_CALLS_PING_INTERVAL)
        if self._last_ping is not None and now - self._last_ping < interval:
            self._strikes += 1
        self._last_ping = now
        return self.max_strikes > 0 and self._strikes > self.max_strikes
