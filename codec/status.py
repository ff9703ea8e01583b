"""The final status of a call, and the mappings from HTTP/2 failures to a status code.

A call that ends without ``grpc-status`` (a proxy answered, or the stream was reset) still needs a
status: the gRPC HTTP/2 protocol document fixes how HTTP statuses and RST_STREAM codes map to one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .http2_errors import CANCEL, ENHANCE_YOUR_CALM, INADEQUATE_SECURITY, REFUSED_STREAM
from .metadata import Metadata
from .status_code import StatusCode

__all__ = ["Status", "StatusCode", "status_from_http", "status_from_reset"]


_HTTP_TO_STATUS = {
    400: StatusCode.INTERNAL,
    401: StatusCode.UNAUTHENTICATED,
    403: StatusCode.PERMISSION_DENIED,
    404: StatusCode.UNIMPLEMENTED,
    429: StatusCode.UNAVAILABLE,
    502: StatusCode.UNAVAILABLE,
    503: StatusCode.UNAVAILABLE,
    504: StatusCode.UNAVAILABLE,
}

# RST_STREAM error codes (RFC 9113 section 7) that gRPC maps to something other than INTERNAL.
_RESET_TO_STATUS = {
    REFUSED_STREAM: StatusCode.UNAVAILABLE,  # the server did not process it; safe to retry
    CANCEL: StatusCode.CANCELLED,
    ENHANCE_YOUR_CALM: StatusCode.RESOURCE_EXHAUSTED,
    INADEQUATE_SECURITY: StatusCode.PERMISSION_DENIED,
}


def status_from_http(http_status: int) -> StatusCode:
    """The status of a response that has a non-200 ``:status`` (and so no usable ``grpc-status``).

    Such answers usually come from a proxy or a non-gRPC server; the mapping is the one from the
    gRPC "HTTP to gRPC status code mapping" document.
    """
    return _HTTP_TO_STATUS.get(http_status, StatusCode.UNKNOWN)


def status_from_reset(error_code: int) -> StatusCode:
    """The status of a call whose stream the peer reset with RST_STREAM ``error_code``."""
    return _RESET_TO_STATUS.get(error_code, StatusCode.INTERNAL)


@dataclass(frozen=True)
class Status:
    """How a call ended: ``grpc-status``, ``grpc-message``, trailing metadata and
    ``grpc-status-details-bin`` (raw bytes of a serialized ``google.rpc.Status``, if sent)."""

    code: StatusCode
    message: str = ""
    metadata: Metadata = field(default_factory=Metadata)
    details: Optional[bytes] = None
