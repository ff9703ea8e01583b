"""Per-connection HTTP/2 options, validated once at construction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .trace import ConnectionTracer
    from .wiretap import WireTapMaker

#: HTTP/2's own default window (RFC 9113 §6.9.2): far too small for bulk gRPC transfers, where
#: the sender stalls every 64 KiB waiting for a WINDOW_UPDATE round trip.
HTTP2_DEFAULT_WINDOW = 65_535


@dataclass(frozen=True)
class ConnectionOptions:
    """What we advertise in our SETTINGS frame and how much we buffer.

    Windows bound what a peer may send before we consume it: the stream window bounds one slow
    reader's memory, the connection window bounds the sum over all streams.
    """

    #: SETTINGS_INITIAL_WINDOW_SIZE: the per-stream receive window.
    initial_window_size: int = 4 * 1024 * 1024
    #: The connection-level receive window, raised from 64 KiB by a WINDOW_UPDATE at start.
    connection_window_size: int = 16 * 1024 * 1024
    #: SETTINGS_MAX_FRAME_SIZE we accept: bigger frames mean fewer events per message.
    max_frame_size: int = 64 * 1024
    #: SETTINGS_MAX_CONCURRENT_STREAMS we allow the peer to open.
    max_concurrent_streams: int = 1000
    #: SETTINGS_MAX_HEADER_LIST_SIZE, enforced while decoding HPACK.
    max_header_list_size: int = 16 * 1024
    #: Outbound bytes queued per stream before a sender is made to wait (backpressure).
    send_buffer_high_water: int = 256 * 1024
    #: Send a PING after this many seconds without hearing from the peer (None: never).
    keepalive_time: Optional[float] = None
    #: Declare the connection dead when a keepalive PING is not answered within this many seconds.
    keepalive_timeout: float = 20.0
    #: Keepalive pings also when no call is active (and, for servers, allow clients to do so).
    keepalive_permit_without_calls: bool = False
    #: Servers: a client PING sooner than this after the previous one (with no data sent in
    #: between) is a strike.
    min_ping_interval: float = 300.0
    #: Servers: strikes allowed before GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings"); 0 = no limit.
    max_ping_strikes: int = 2
    #: Flood limits, as (sustained rate per second, burst): PINGs, SETTINGS frames and
    #: RST_STREAMs from the peer beyond them earn a GOAWAY(ENHANCE_YOUR_CALM) (CVE-2019-9512,
    #: CVE-2019-9515, CVE-2023-44487 "rapid reset").
    ping_flood_limit: tuple[float, int] = (50.0, 200)
    settings_flood_limit: tuple[float, int] = (50.0, 200)
    reset_flood_limit: tuple[float, int] = (200.0, 1000)
    #: A header block (HEADERS + CONTINUATION fragments) larger than this is a connection error
    #: as soon as its frames say so, before h2 buffers it (CVE-2024-27316 style floods).
    #: None: four times max_header_list_size, at least 64 KiB.
    max_header_block_size: Optional[int] = None
    #: Servers: a client must complete the HTTP/2 handshake (its preface and first SETTINGS)
    #: within this many seconds of connecting, else GOAWAY(SETTINGS_TIMEOUT) and close; a TLS
    #: handshake before it has as long again. (grpc-go and grpc-core allow 120 s.)
    handshake_timeout: float = 10.0
    #: Servers: a graceful shutdown sends its final GOAWAY when the client answers the PING
    #: that follows the first GOAWAY, or after this many seconds without an answer.
    shutdown_ping_timeout: float = 1.0
    #: Servers: drain a connection (graceful GOAWAY "max_idle", then close) that has had no
    #: open stream for this many seconds (None: never). grpc-go's ``MaxConnectionIdle``.
    max_connection_idle: Optional[float] = None
    #: Servers: drain a connection this many seconds after it was accepted, +-10% jitter
    #: (graceful GOAWAY "max_age"), so that clients reconnect and load rebalances (None: never).
    max_connection_age: Optional[float] = None
    #: Servers: after the max_connection_age GOAWAY, calls still running get this many seconds
    #: more; then the connection is closed and they are cancelled (None: they may run on).
    max_connection_age_grace: Optional[float] = None
    #: Stop reading from a peer while this many bytes wait in our send buffer: a peer that
    #: sends but never reads cannot make our automatic replies pile up.
    max_write_buffer: int = 4 * 1024 * 1024
    #: Encode each distinct header block once (static table and literals without indexing) and
    #: reuse it; False: hpack's full encoder, with its dynamic table (smaller blocks, more CPU).
    reuse_header_blocks: bool = True
    #: Wire tracing (``transport.trace``): makes one trace per connection; None (default): off.
    tracer: Optional[ConnectionTracer] = field(default=None, compare=False, repr=False)
    #: Byte capture (``transport.wiretap``, e.g. a pcapng writer): one tap per connection; None
    #: (default): off.
    capture: Optional[WireTapMaker] = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not HTTP2_DEFAULT_WINDOW <= self.initial_window_size <= 2**31 - 1:
            raise ValueError("initial_window_size must be within 65535 .. 2**31-1")
        if not HTTP2_DEFAULT_WINDOW <= self.connection_window_size <= 2**31 - 1:
            raise ValueError("connection_window_size must be within 65535 .. 2**31-1")
        if not 16_384 <= self.max_frame_size <= 16_777_215:
            raise ValueError("max_frame_size must be within 16384 .. 16777215")
        if not 1 <= self.max_concurrent_streams <= 2**31 - 1:
            raise ValueError("max_concurrent_streams must be within 1 .. 2**31-1")
        if self.max_header_list_size < 1024:
            raise ValueError("max_header_list_size must be at least 1024")
        if self.send_buffer_high_water < 1:
            raise ValueError("send_buffer_high_water must be positive")
        if self.keepalive_time is not None and self.keepalive_time <= 0:
            raise ValueError("keepalive_time must be positive (or None for no keepalive)")
        if self.keepalive_timeout <= 0:
            raise ValueError("keepalive_timeout must be positive")
        if self.min_ping_interval < 0 or self.max_ping_strikes < 0:
            raise ValueError("min_ping_interval and max_ping_strikes must not be negative")
        for name in ("ping_flood_limit", "settings_flood_limit", "reset_flood_limit"):
            rate, burst = getattr(self, name)
            if rate <= 0 or burst < 1:
                raise ValueError(f"{name} needs a positive rate and burst")
        if self.handshake_timeout <= 0:
            raise ValueError("handshake_timeout must be positive")
        if self.shutdown_ping_timeout <= 0:
            raise ValueError("shutdown_ping_timeout must be positive")
        for name in ("max_connection_idle", "max_connection_age"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive (or None)")
        if self.max_connection_age_grace is not None and self.max_connection_age_grace < 0:
            raise ValueError("max_connection_age_grace must not be negative (or None)")

    @property
    def header_block_limit(self) -> int:
        """The hard cap on one header block's encoded size (see max_header_block_size)."""
        if self.max_header_block_size is not None:
            return self.max_header_block_size
        return max(4 * self.max_header_list_size, 64 * 1024)
