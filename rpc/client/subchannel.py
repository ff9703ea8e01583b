"""One address of a channel: its connection, its connectivity state, its own backoff."""

from __future__ import annotations

from typing import Any, Optional

from transport import Address

from .._core.backoff import Backoff, BackoffOptions
from .._errors import RpcError
from .connectivity import ChannelConnectivity

IDLE = ChannelConnectivity.IDLE
CONNECTING = ChannelConnectivity.CONNECTING
READY = ChannelConnectivity.READY
TRANSIENT_FAILURE = ChannelConnectivity.TRANSIENT_FAILURE
SHUTDOWN = ChannelConnectivity.SHUTDOWN


class Subchannel:
    """A connection to one address, as gRPC's subchannels (connectivity-semantics-and-api.md):
    IDLE -> CONNECTING -> READY, or TRANSIENT_FAILURE and a new attempt when this address's own
    backoff has passed (other addresses' failures do not slow it down).

    ``healthy``: with health checking, the last ``grpc.health.v1`` Watch answer (None while
    none came); a connected subchannel counts as READY only while it is True.
    """

    __slots__ = (
        "address",
        "backoff",
        "conn",
        "connecting",
        "health_call",
        "healthy",
        "last_failure",
        "retry_at",
        "state",
    )

    def __init__(self, address: Address, backoff: BackoffOptions) -> None:
        self.address = address
        self.state = IDLE
        #: The connection (the driver's type) while connected, else None.
        self.conn: Any = None
        self.backoff = Backoff(backoff)
        #: After a failed attempt, no new one before this (``time.monotonic()``).
        self.retry_at = 0.0
        self.last_failure: Optional[RpcError] = None
        #: An attempt is under way (the driver's; it ends with connected / connect_failed).
        self.connecting = False
        self.healthy: Optional[bool] = None
        #: The driver's running health Watch call (something with ``cancel()``), if any.
        self.health_call: Any = None

    def __repr__(self) -> str:
        return f"<Subchannel {self.address} {self.state.name}>"
