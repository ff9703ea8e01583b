"""Header block checks of RFC 9113 §8.2-8.3, done once per block in a single pass.

A malformed request or response is a *stream* error (RST_STREAM PROTOCOL_ERROR, §8.1.1): the rest
of the connection goes on. h2's own inbound validation treats the same faults as connection
errors (and costs a chain of generators per block), so the core switches it off and uses this.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

__all__ = ["check_request", "check_response", "check_trailers"]

_REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":path", b":authority"))
_REQUIRED_REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":path"))
_CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)


def _check_field(name: bytes, value: bytes) -> Optional[str]:
    if not name:
        return "empty header name"
    if name != name.lower():
        return f"uppercase header name {name!r}"
    if b"\r" in value or b"\n" in value or b"\x00" in value:
        return f"illegal character in the value of {name!r}"
    if name in _CONNECTION_SPECIFIC:
        return f"connection-specific header {name!r}"
    if name == b"te" and value != b"trailers":
        return "te other than trailers"
    return None


def check_request(headers: Sequence[tuple[bytes, bytes]]) -> Optional[str]:
    """Why a request head is malformed, or None."""
    pseudo: set[bytes] = set()
    regular = False
    for name, value in headers:
        if name[:1] == b":":
            if regular:
                return "pseudo-header after a regular header"
            if name not in _REQUEST_PSEUDO:
                return f"pseudo-header {name!r} not allowed in a request"
            if name in pseudo:
                return f"duplicate pseudo-header {name!r}"
            if not value:
                return f"empty {name.decode()}"
            pseudo.add(name)
            continue
        regular = True
        problem = _check_field(name, value)
        if problem is not None:
            return problem
    if not pseudo >= _REQUIRED_REQUEST_PSEUDO:
        missing = b", ".join(sorted(_REQUIRED_REQUEST_PSEUDO - pseudo)).decode()
        return f"missing {missing}"
    return None


def check_response(headers: Sequence[tuple[bytes, bytes]]) -> Optional[str]:
    """Why a response head is malformed, or None."""
    status = False
    regular = False
    for name, value in headers:
        if name[:1] == b":":
            if regular:
                return "pseudo-header after a regular header"
            if name != b":status" or status:
                return f"pseudo-header {name!r} not allowed (or repeated) in a response"
            status = True
            continue
        regular = True
        problem = _check_field(name, value)
        if problem is not None:
            return problem
    return None if status else "missing :status"


def check_trailers(headers: Sequence[tuple[bytes, bytes]]) -> Optional[str]:
    """Why a trailer block is malformed (trailers carry no pseudo-headers), or None."""
    for name, value in headers:
        if name[:1] == b":":
            return f"pseudo-header {name!r} in trailers"
        problem = _check_field(name, value)
        if problem is not None:
            return problem
    return None
