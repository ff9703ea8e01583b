"""The codec's exception hierarchy.

Everything the codec raises derives from :class:`CodecError`, so a layer above can catch one type
for "the bytes or headers were not valid gRPC". Each subclass carries what that layer needs to turn
the failure into a status (or an HTTP answer) without parsing the message text.
"""

from __future__ import annotations

from .status_code import StatusCode

__all__ = [
    "CodecError",
    "InvalidMetadataError",
    "InvalidResponseError",
    "InvalidTimeoutError",
    "MessageTooLargeError",
    "MetadataTypeError",
    "RequestRejected",
    "TruncatedMessageError",
]


class CodecError(Exception):
    """Base class: data or headers that break the gRPC wire rules."""


class MessageTooLargeError(CodecError):
    """A length prefix declared a message above the receiver's limit.

    Raised from the 5-byte prefix alone, before any of the body is buffered, so a peer cannot make
    us hold a huge message in memory. gRPC reports it as RESOURCE_EXHAUSTED.
    """

    def __init__(self, length: int, limit: int) -> None:
        self.length = length
        self.limit = limit
        # grpcio's wording, so error details look the same to users of either stack.
        super().__init__(f"Received message larger than max ({length} vs. {limit})")


class TruncatedMessageError(CodecError):
    """The stream ended inside a length-prefixed message (prefix or body incomplete)."""


class InvalidMetadataError(CodecError):
    """A metadata key or value is not allowed on the wire (or a ``-bin`` value is not base64)."""


class MetadataTypeError(InvalidMetadataError, TypeError):
    """Metadata that is not a sequence of ``(key, value)`` pairs at all (a dict, a string, ...).

    A TypeError, as a wrong argument type is; an InvalidMetadataError for code that catches that.
    """


class InvalidTimeoutError(CodecError):
    """A ``grpc-timeout`` value is not 1-8 ASCII digits followed by one of ``H M S m u n``."""


class RequestRejected(CodecError):
    """A request head that a gRPC server must refuse, with how to answer it.

    ``http_status`` is 200 when the answer is a gRPC status (Trailers-Only), or the HTTP status to
    reply with when the request is not gRPC at all (415 wrong content-type, 405 not POST, 400
    malformed); ``code`` and ``message`` fill ``grpc-status``/``grpc-message`` in either case.
    """

    def __init__(self, http_status: int, code: StatusCode, message: str) -> None:
        self.http_status = http_status
        self.code = code
        self.message = message
        super().__init__(message)


class InvalidResponseError(CodecError):
    """A response head that is not a valid gRPC response; ``code`` is the status the call gets."""

    def __init__(self, code: StatusCode, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(message)
