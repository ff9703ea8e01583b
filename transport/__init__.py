"""HTTP/2 transport: sockets and the h2 connection, streams, flow control, GOAWAY.

Knows header lists and bytes; knows nothing of protobuf or gRPC message framing. Internal to
h2rpc: the public API is the ``rpc`` package.
"""

from __future__ import annotations

from .address import Address, bind_listening_socket, parse_address
from .aio import AsyncConnection, Listener, Stream, connect
from .core import ConnectionCore
from .errors import (
    ConnectionClosedError,
    LocalProtocolError,
    RemoteProtocolError,
    StreamResetError,
    TransportError,
)
from .events import (
    ConnectionTerminated,
    DataReceived,
    Event,
    Headers,
    PingAcknowledged,
    PingReceived,
    RequestReceived,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    StreamWritable,
    TrailersReceived,
)
from .options import ConnectionOptions
from .tls import TlsInfo

__all__ = [
    "Address",
    "AsyncConnection",
    "ConnectionClosedError",
    "ConnectionCore",
    "ConnectionOptions",
    "ConnectionTerminated",
    "DataReceived",
    "Event",
    "Headers",
    "Listener",
    "LocalProtocolError",
    "PingAcknowledged",
    "PingReceived",
    "RemoteProtocolError",
    "RequestReceived",
    "ResponseReceived",
    "Stream",
    "StreamEnded",
    "StreamReset",
    "StreamResetError",
    "StreamWritable",
    "TlsInfo",
    "TrailersReceived",
    "TransportError",
    "bind_listening_socket",
    "connect",
    "parse_address",
]
