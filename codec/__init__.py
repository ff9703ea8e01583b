"""Sans-I/O gRPC wire codec: message framing, status, metadata, timeouts and call heads.

Pure functions and small objects that take bytes/header lists and return values; no sockets, no
event loop. ``transport/`` moves the bytes, ``rpc/`` decides what to do with them.
"""

from __future__ import annotations

from .compression import SUPPORTED_ENCODINGS, compress, decompress, is_supported_encoding
from .errors import (
    CodecError,
    InvalidMetadataError,
    InvalidResponseError,
    InvalidTimeoutError,
    MessageTooLargeError,
    MetadataTypeError,
    RequestRejected,
    TruncatedMessageError,
)
from .framing import DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH, MessageDecoder, encode_message
from .grpc_message import decode_grpc_message, encode_grpc_message
from .headers import (
    CONTENT_TYPE,
    RequestHead,
    RequestHeadCache,
    ResponseCache,
    ResponseHead,
    build_http_rejection,
    build_request_headers,
    build_response_headers,
    build_trailers,
    build_trailers_only,
    parse_request_headers,
    parse_response_headers,
    parse_trailers,
)
from .http2_errors import (
    CANCEL,
    COMPRESSION_ERROR,
    CONNECT_ERROR,
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    HTTP_1_1_REQUIRED,
    INADEQUATE_SECURITY,
    INTERNAL_ERROR,
    NO_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    SETTINGS_TIMEOUT,
    STREAM_CLOSED,
)
from .metadata import (
    Headers,
    InboundHeaders,
    Metadata,
    MetadataLike,
    MetadataValue,
    Metadatum,
    decode_metadata,
    encode_metadata,
    validate_metadata,
)
from .status import Status, status_from_http, status_from_reset
from .status_code import StatusCode
from .timeout import encode_timeout, parse_timeout

__all__ = [
    "CANCEL",
    "COMPRESSION_ERROR",
    "CONNECT_ERROR",
    "CONTENT_TYPE",
    "DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH",
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
    "SUPPORTED_ENCODINGS",
    "CodecError",
    "Headers",
    "InboundHeaders",
    "InvalidMetadataError",
    "InvalidResponseError",
    "InvalidTimeoutError",
    "MessageDecoder",
    "MessageTooLargeError",
    "Metadata",
    "MetadataLike",
    "MetadataTypeError",
    "MetadataValue",
    "Metadatum",
    "RequestHead",
    "RequestHeadCache",
    "RequestRejected",
    "ResponseCache",
    "ResponseHead",
    "Status",
    "StatusCode",
    "TruncatedMessageError",
    "build_http_rejection",
    "build_request_headers",
    "build_response_headers",
    "build_trailers",
    "build_trailers_only",
    "compress",
    "decode_grpc_message",
    "decode_metadata",
    "decompress",
    "encode_grpc_message",
    "encode_message",
    "encode_metadata",
    "encode_timeout",
    "is_supported_encoding",
    "parse_request_headers",
    "parse_response_headers",
    "parse_timeout",
    "parse_trailers",
    "status_from_http",
    "status_from_reset",
    "validate_metadata",
]
