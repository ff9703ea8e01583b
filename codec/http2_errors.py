"""The HTTP/2 error codes of RST_STREAM and GOAWAY frames (RFC 9113 §7).

Plain ints rather than an enum: they go into frames and are compared on every reset and GOAWAY,
and h2 accepts and reports them as ints. ``h2.errors.ErrorCodes`` has the same values (with names,
for display); this module is the one place h2rpc spells them.
"""

from __future__ import annotations

__all__ = [
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "ENHANCE_YOUR_CALM",
    "FLOW_CONTROL_ERROR",
    "FRAME_SIZE_ERROR",
    "HTTP_1_1_REQUIRED",
    "INADEQUATE_SECURITY",
    "INTERNAL_ERROR",
    "NO_ERROR",
    "PROTOCOL_ERROR",
    "REFUSED_STREAM",
    "SETTINGS_TIMEOUT",
    "STREAM_CLOSED",
]

#: Graceful shutdown, or a stream the sender no longer needs (not an error).
NO_ERROR = 0x0
#: The peer broke the protocol (malformed frames or header blocks, RFC 9113 §8.1.1).
PROTOCOL_ERROR = 0x1
#: The endpoint failed internally.
INTERNAL_ERROR = 0x2
#: The peer broke flow control.
FLOW_CONTROL_ERROR = 0x3
#: SETTINGS were not acknowledged in time.
SETTINGS_TIMEOUT = 0x4
#: A frame arrived on a stream that was already half-closed.
STREAM_CLOSED = 0x5
#: A frame had an invalid size.
FRAME_SIZE_ERROR = 0x6
#: The stream was refused before any application processing: safe to retry elsewhere.
REFUSED_STREAM = 0x7
#: The stream is no longer needed.
CANCEL = 0x8
#: The HPACK compression context could not be kept.
COMPRESSION_ERROR = 0x9
#: A CONNECT tunnel failed.
CONNECT_ERROR = 0xA
#: The peer is behaving in a way that could cause excessive load (floods, too many pings).
ENHANCE_YOUR_CALM = 0xB
#: The transport does not meet the minimum security requirements.
INADEQUATE_SECURITY = 0xC
#: The request must be sent over HTTP/1.1.
HTTP_1_1_REQUIRED = 0xD
