"""gRPC status codes, the final status of a call, and the mappings from HTTP/2 failures.

A call that ends without ``grpc-status`` (a proxy answered, or the stream was reset) still needs a
status: the gRPC HTTP/2 protocol document fixes how HTTP statuses and RST_STREAM codes map to one.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Optional

from .metadata import Metadata

__all__ = ["Status", "StatusCode", "status_from_http", "status_from_reset"]


class StatusCode(enum.IntEnum):
    """The 17 canonical gRPC status codes (``grpc-status`` values)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16

    # grpcio's ``grpc.StatusCode`` members have ``(int, name)`` tuples as values. Accepting and
    # comparing them here (by duck typing: h2rpc never imports grpcio) lets grpcio programs keep
    # ``context.set_code(grpc.StatusCode.NOT_FOUND)`` and ``err.code() == grpc.StatusCode.X``.

    @classmethod
    def _missing_(cls, value: object) -> StatusCode | None:
        """``StatusCode(grpc.StatusCode.NOT_FOUND)`` is ``StatusCode.NOT_FOUND``."""
        number = _grpcio_code_number(value)
        return None if number is None else cls(number)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, int):
            return int(self) == other
        number = _grpcio_code_number(other)
        return NotImplemented if number is None else int(self) == number

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = int.__hash__


def _grpcio_code_number(value: object) -> int | None:
    """The number of a grpcio ``grpc.StatusCode`` member (value ``(number, name)``), else None."""
    pair = getattr(value, "value", None)
    if type(pair) is tuple and len(pair) == 2 and type(pair[0]) is int:
        return pair[0]
    return None


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
    0x7: StatusCode.UNAVAILABLE,  # REFUSED_STREAM: the server did not process it; safe to retry
    0x8: StatusCode.CANCELLED,  # CANCEL
    0xB: StatusCode.RESOURCE_EXHAUSTED,  # ENHANCE_YOUR_CALM
    0xC: StatusCode.PERMISSION_DENIED,  # INADEQUATE_SECURITY
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
