"""Percent-encoding of ``grpc-message``.

The status message travels in an HTTP/2 header, which only carries printable ASCII safely, so gRPC
sends it as UTF-8 with every byte outside 0x20..0x7E (and ``%`` itself) written as ``%XX``. The
receiver must never fail a call because of a bad message: malformed escapes are kept as they are
and invalid UTF-8 is replaced.
"""

from __future__ import annotations

import re

__all__ = ["decode_grpc_message", "encode_grpc_message"]

# Runs of bytes that must be escaped: everything except 0x20..0x7E, and '%' (0x25).
_NEEDS_ESCAPE = re.compile(rb"[^\x20-\x24\x26-\x7e]+")
_ESCAPES = tuple(b"%%%02X" % i for i in range(256))
_VALID_ESCAPE = re.compile(rb"%[0-9A-Fa-f]{2}")
_UNESCAPES = {
    b"%" + (a + b).encode("ascii"): bytes((int(a + b, 16),))
    for a in "0123456789abcdefABCDEF"
    for b in "0123456789abcdefABCDEF"
}


def _escape_run(match: re.Match[bytes]) -> bytes:
    escapes = _ESCAPES
    return b"".join([escapes[byte] for byte in match.group()])


def _unescape(match: re.Match[bytes]) -> bytes:
    return _UNESCAPES[match.group()]


def encode_grpc_message(message: str) -> bytes:
    """Encode a status message for the ``grpc-message`` header (UTF-8, then percent-encoding)."""
    if message.isascii() and message.isprintable() and "%" not in message:
        return message.encode("ascii")  # the common case: nothing to escape
    # Lone surrogates cannot be UTF-8; replacing them beats failing while reporting an error.
    data = message.encode("utf-8", "replace")
    return _NEEDS_ESCAPE.sub(_escape_run, data)


def decode_grpc_message(value: bytes) -> str:
    """Decode a received ``grpc-message``; never raises (bad escapes kept, bad UTF-8 replaced)."""
    if b"%" in value:
        value = _VALID_ESCAPE.sub(_unescape, value)
    return value.decode("utf-8", "replace")
