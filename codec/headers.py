"""Building and parsing the HTTP/2 header blocks of a gRPC call.

A request head is ``:method POST``, ``:scheme``, ``:path /Service/Method``, ``:authority``,
``te: trailers`` and ``content-type: application/grpc`` plus optional gRPC headers and custom
metadata. The response has ``:status 200`` and ``content-type``; the status travels in trailers
(``grpc-status``, ``grpc-message``, ``grpc-status-details-bin``) or, when the server has nothing
else to send, in a single Trailers-Only HEADERS frame. Parsing is one pass over the header list.
"""

from __future__ import annotations

import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional

from .errors import (
    InvalidMetadataError,
    InvalidResponseError,
    InvalidTimeoutError,
    RequestRejected,
)
from .grpc_message import decode_grpc_message, encode_grpc_message
from .metadata import (
    Headers,
    InboundHeaders,
    Metadata,
    MetadataLike,
    MetadataValue,
    decode_binary_value,
    encode_metadata,
)
from .status import Status, status_from_http
from .status_code import StatusCode
from .timeout import encode_timeout, parse_timeout

__all__ = [
    "CONTENT_TYPE",
    "RequestHead",
    "RequestHeadCache",
    "ResponseCache",
    "ResponseHead",
    "build_request_headers",
    "build_response_headers",
    "build_trailers",
    "build_trailers_only",
    "parse_request_headers",
    "parse_response_headers",
    "parse_trailers",
]

CONTENT_TYPE = b"application/grpc"

_METHOD_POST = (b":method", b"POST")
_SCHEMES = {"http": (b":scheme", b"http"), "https": (b":scheme", b"https")}
_TE_TRAILERS = (b"te", b"trailers")
_CONTENT_TYPE = (b"content-type", CONTENT_TYPE)
_STATUS_200 = (b":status", b"200")
_STATUS_HEADERS = {code: (b"grpc-status", b"%d" % code) for code in StatusCode}
_STATUS_BY_VALUE = {b"%d" % code: code for code in StatusCode}


def _is_grpc_content_type(value: bytes) -> bool:
    """``application/grpc``, ``application/grpc+<subtype>`` or with parameters (``;...``)."""
    if value == CONTENT_TYPE:
        return True
    value = value.lower()  # media types are case-insensitive
    if not value.startswith(CONTENT_TYPE):
        return False
    return len(value) == len(CONTENT_TYPE) or value[len(CONTENT_TYPE)] in b"+;"


def _encoding_headers(
    headers: Headers, encoding: Optional[str], accept_encoding: Optional[Sequence[str]]
) -> None:
    if encoding is not None:
        headers.append((b"grpc-encoding", encoding.encode("ascii")))
    if accept_encoding:
        headers.append((b"grpc-accept-encoding", ",".join(accept_encoding).encode("ascii")))


_ACCEPT_ENCODINGS: dict[bytes, tuple[str, ...]] = {}


def _parse_accept_encoding(value: bytes) -> tuple[str, ...]:
    """Parsed once per distinct value: a peer sends the same list on every call."""
    parsed = _ACCEPT_ENCODINGS.get(value)
    if parsed is None:
        parsed = tuple(s for s in (p.strip() for p in value.decode("latin-1").split(",")) if s)
        if len(_ACCEPT_ENCODINGS) < 64:  # bounded: peers cannot grow it
            _ACCEPT_ENCODINGS[value] = parsed
    return parsed


def _parse_encoding(value: bytes) -> Optional[str]:
    encoding = value.decode("latin-1").strip()
    return None if encoding in ("identity", "") else encoding


# --- requests ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestHead:
    """What a server needs from a request's HEADERS frame."""

    path: str
    authority: str
    scheme: str
    timeout: Optional[float]  # seconds, from grpc-timeout
    metadata: Metadata
    encoding: Optional[str]  # grpc-encoding; None for identity or absent
    accept_encoding: tuple[str, ...]
    user_agent: Optional[str]
    content_type: str


def build_request_headers(
    path: str,
    authority: str,
    *,
    scheme: str = "http",
    timeout: Optional[float] = None,
    metadata: Optional[MetadataLike] = None,
    encoding: Optional[str] = None,
    accept_encoding: Optional[Sequence[str]] = None,
    user_agent: Optional[str] = None,
) -> Headers:
    """The request HEADERS block, pseudo-headers first as HTTP/2 requires.

    Raises InvalidMetadataError if ``metadata`` may not be sent.
    """
    headers = [
        _METHOD_POST,
        _SCHEMES.get(scheme) or (b":scheme", scheme.encode("ascii")),
        (b":path", path.encode("ascii")),
        (b":authority", authority.encode("ascii")),
        _TE_TRAILERS,
        _CONTENT_TYPE,
    ]
    if timeout is not None:
        headers.append((b"grpc-timeout", encode_timeout(timeout)))
    if encoding is not None or accept_encoding:
        _encoding_headers(headers, encoding, accept_encoding)
    if user_agent is not None:
        headers.append((b"user-agent", user_agent.encode("ascii")))
    if metadata:
        headers += encode_metadata(metadata)
    return headers


def _is_method_path(path: str) -> bool:
    """``/service/method``: both parts non-empty, no further slash."""
    slash = path.find("/", 1)
    return path[:1] == "/" and 1 < slash < len(path) - 1 and path.find("/", slash + 1) == -1


def parse_request_headers(headers: InboundHeaders) -> RequestHead:
    """Check and parse a request head; raises RequestRejected saying how to answer a bad one.

    Checks, in this order: ``:method`` POST (405), gRPC ``content-type`` (415), ``te: trailers``
    (400), ``:path`` of the form ``/service/method`` (a gRPC UNIMPLEMENTED status),
    ``grpc-timeout`` and ``-bin`` metadata (400).
    """
    method = path = authority = scheme = content_type = te = None
    timeout_value = encoding = accept_encoding = user_agent = host = None
    pairs: list[tuple[str, MetadataValue]] = []
    bad_metadata: Optional[str] = None
    for name, value in headers:
        if name[:1] == b":":
            if name == b":path":
                path = value
            elif name == b":method":
                method = value
            elif name == b":authority":
                authority = value
            elif name == b":scheme":
                scheme = value
        elif name.startswith(b"grpc-"):
            if name == b"grpc-timeout":
                timeout_value = value
            elif name == b"grpc-encoding":
                encoding = value
            elif name == b"grpc-accept-encoding":
                accept_encoding = value
            elif name == b"grpc-previous-rpc-attempts":
                # gRFC A6: how many attempts of this call came before, for the application
                # (grpcio's servers show it in invocation_metadata() too).
                pairs.append(("grpc-previous-rpc-attempts", value.decode("latin-1")))
            # other grpc-* headers are reserved: not application metadata
        elif name == b"content-type":
            content_type = value
        elif name == b"te":
            te = value
        elif name.endswith(b"-bin"):
            try:
                pairs.append((name.decode("latin-1"), decode_binary_value(value)))
            except InvalidMetadataError as exc:
                if bad_metadata is None:
                    bad_metadata = str(exc)
        else:
            if name == b"user-agent":
                user_agent = value
            elif name == b"host":
                host = value
            pairs.append((name.decode("latin-1"), value.decode("latin-1")))

    if method != b"POST":
        shown = "missing" if method is None else repr(method.decode("latin-1"))
        raise RequestRejected(405, StatusCode.INTERNAL, f"invalid :method {shown}: gRPC uses POST")
    if content_type is None or not _is_grpc_content_type(content_type):
        shown = "missing" if content_type is None else repr(content_type.decode("latin-1"))
        raise RequestRejected(415, StatusCode.INTERNAL, f"invalid content-type: {shown}")
    if te != b"trailers":
        raise RequestRejected(400, StatusCode.INTERNAL, "missing te: trailers")
    path_str = "" if path is None else path.decode("latin-1")
    if not _is_method_path(path_str):
        raise RequestRejected(200, StatusCode.UNIMPLEMENTED, f"malformed method name: {path_str!r}")
    timeout: Optional[float] = None
    if timeout_value is not None:
        try:
            timeout = parse_timeout(timeout_value)
        except InvalidTimeoutError as exc:
            raise RequestRejected(400, StatusCode.INTERNAL, str(exc)) from None
    if bad_metadata is not None:
        raise RequestRejected(400, StatusCode.INTERNAL, bad_metadata)

    if authority is None:
        authority = host  # an HTTP/1-style client may name the authority in 'host' only
    return RequestHead(
        path=path_str,
        authority="" if authority is None else authority.decode("latin-1"),
        scheme="" if scheme is None else scheme.decode("latin-1"),
        timeout=timeout,
        metadata=Metadata._wrap(pairs),
        encoding=None if encoding is None else _parse_encoding(encoding),
        accept_encoding=() if accept_encoding is None else _parse_accept_encoding(accept_encoding),
        user_agent=None if user_agent is None else user_agent.decode("latin-1"),
        content_type=content_type.decode("latin-1"),
    )


class RequestHeadCache:
    """``parse_request_headers`` for the request heads a server has seen before.

    A client sends the same head for every call of a method (the same fields: only a deadline
    or per-call metadata change it), and the transport's decoder hands a repeated block back as
    the same field objects, so a tuple hash finds it here. Each call still gets a head of its
    own: a copy of the remembered one with its own ``Metadata`` (which handlers may change).
    Heads that were rejected are not remembered (they raise every time). Bounded: forgotten all
    at once when full, so a client sending ever-new heads only loses the shortcut.
    """

    __slots__ = ("_heads", "_size")

    def __init__(self, size: int = 64) -> None:
        self._heads: dict[tuple[Any, ...], RequestHead] = {}
        self._size = size

    def parse(self, headers: InboundHeaders) -> RequestHead:
        key = tuple(headers)
        heads = self._heads
        head = heads.get(key)
        if head is None:
            head = parse_request_headers(headers)
            if len(heads) >= self._size:
                heads.clear()
            heads[key] = head
        copy = object.__new__(RequestHead)
        fields = copy.__dict__
        fields.update(head.__dict__)
        fields["metadata"] = head.metadata.copy()
        return copy


# --- responses -----------------------------------------------------------------------------------


def _status_fields(
    headers: Headers, code: StatusCode, message: str, details: Optional[bytes]
) -> None:
    status = _STATUS_HEADERS.get(code)
    headers.append(status if status is not None else (b"grpc-status", b"%d" % code))
    if message:
        headers.append((b"grpc-message", encode_grpc_message(message)))
    if details is not None:
        headers.append(
            (b"grpc-status-details-bin", binascii.b2a_base64(details, newline=False).rstrip(b"="))
        )


def build_response_headers(
    *,
    metadata: Optional[MetadataLike] = None,
    encoding: Optional[str] = None,
    accept_encoding: Optional[Sequence[str]] = None,
) -> Headers:
    """The response HEADERS block (initial metadata). Raises InvalidMetadataError."""
    headers = [_STATUS_200, _CONTENT_TYPE]
    if encoding is not None or accept_encoding:
        _encoding_headers(headers, encoding, accept_encoding)
    if metadata:
        headers += encode_metadata(metadata)
    return headers


def build_trailers(
    code: StatusCode,
    message: str = "",
    *,
    metadata: Optional[MetadataLike] = None,
    details: Optional[bytes] = None,
) -> Headers:
    """The trailers that end a call: status, message, rich details, trailing metadata.

    Raises InvalidMetadataError if ``metadata`` may not be sent.
    """
    headers: Headers = []
    _status_fields(headers, code, message, details)
    if metadata:
        headers += encode_metadata(metadata)
    return headers


def build_trailers_only(
    code: StatusCode,
    message: str = "",
    *,
    metadata: Optional[MetadataLike] = None,
    details: Optional[bytes] = None,
    accept_encoding: Optional[Sequence[str]] = None,
) -> Headers:
    """A Trailers-Only response: one HEADERS frame (sent with END_STREAM) with the status."""
    headers = [_STATUS_200, _CONTENT_TYPE]
    if accept_encoding:
        _encoding_headers(headers, None, accept_encoding)
    _status_fields(headers, code, message, details)
    if metadata:
        headers += encode_metadata(metadata)
    return headers


def build_http_rejection(http_status: int, code: StatusCode, message: str) -> tuple[Headers, bytes]:
    """The answer to a request that is not gRPC at all (405, 415, 400): headers and a body.

    The HTTP status is what a plain HTTP client understands (grpc-go answers the same codes);
    the short ``text/plain`` body says what the server is and what it expected, so that
    ``curl --http2-prior-knowledge`` shows something readable instead of an empty reply. The
    ``grpc-status`` and ``grpc-message`` fields stay in the header block, as grpc-go sends them,
    for a gRPC client that looks. A 405 names the one method allowed (RFC 9110 §15.5.6).
    """
    headers: Headers = [
        (b":status", b"%d" % http_status),
        (b"content-type", b"text/plain; charset=utf-8"),
    ]
    if http_status == 405:
        headers.append((b"allow", b"POST"))
    _status_fields(headers, code, message, None)
    body = (
        f"This is a gRPC server: it expects HTTP/2 POST requests with content-type "
        f"application/grpc, made by a gRPC client.\nThis request: {message}\n"
    ).encode()
    return headers, body


@dataclass(frozen=True)
class ResponseHead:
    """A parsed response HEADERS frame.

    ``trailers_only`` is the call's status when the frame was Trailers-Only (it held
    ``grpc-status``); the metadata is then trailing metadata, in that Status, and ``metadata``
    (initial metadata) is empty, as in grpcio.
    """

    metadata: Metadata
    encoding: Optional[str] = None
    accept_encoding: tuple[str, ...] = ()
    trailers_only: Optional[Status] = None


def _make_status(
    status: Optional[bytes],
    message: Optional[bytes],
    details: Optional[bytes],
    pairs: list[tuple[str, MetadataValue]],
) -> Status:
    """Status from raw trailer fields; a bad grpc-status becomes UNKNOWN, as in grpc."""
    text = "" if message is None else decode_grpc_message(message)
    details_bytes = None if details is None else decode_binary_value(details)
    metadata = Metadata._wrap(pairs)
    if status is None:
        code = StatusCode.UNKNOWN
        problem = "missing grpc-status in trailers"
        text = f"{problem}: {text}" if text else problem
    else:
        found = _STATUS_BY_VALUE.get(status)
        if found is None:
            code = StatusCode.UNKNOWN
            problem = f"invalid grpc-status {status.decode('latin-1')!r}"
            text = f"{problem}: {text}" if text else problem
        else:
            code = found
    return Status(code, text, metadata, details_bytes)


def _split_status_fields(
    headers: InboundHeaders,
) -> tuple[
    Optional[bytes],
    Optional[bytes],
    Optional[bytes],
    list[tuple[str, MetadataValue]],
    dict[bytes, bytes],
]:
    """One pass: (grpc-status, grpc-message, grpc-status-details-bin, metadata, other fields).

    Other fields are the ``:``-prefixed ones and the protocol headers a response head needs
    (content-type, grpc-encoding, grpc-accept-encoding); first occurrence wins.
    """
    status = message = details = None
    pairs: list[tuple[str, MetadataValue]] = []
    other: dict[bytes, bytes] = {}
    for name, value in headers:
        if name[:1] == b":" or name == b"content-type":
            other.setdefault(name, value)
        elif name.startswith(b"grpc-"):
            if name == b"grpc-status":
                status = value
            elif name == b"grpc-message":
                message = value
            elif name == b"grpc-status-details-bin":
                details = value
            elif name == b"grpc-retry-pushback-ms":
                # gRFC A6 server pushback: trailing metadata, as grpcio's clients show it.
                pairs.append(("grpc-retry-pushback-ms", value.decode("latin-1")))
            else:
                other.setdefault(name, value)
        elif name == b"te":
            continue
        elif name.endswith(b"-bin"):
            pairs.append((name.decode("latin-1"), decode_binary_value(value)))
        else:
            pairs.append((name.decode("latin-1"), value.decode("latin-1")))
    return status, message, details, pairs, other


def parse_response_headers(headers: InboundHeaders, *, end_stream: bool) -> ResponseHead:
    """Check and parse a response HEADERS frame; raises InvalidResponseError for a bad one.

    A non-200 ``:status`` means the answer did not come from a gRPC server (a proxy, usually): the
    code is the HTTP mapping, unless the frame carries ``grpc-status``: proxies answer their own
    errors that way (nginx's documented ``error_page`` for gRPC is a 204 with ``grpc-status: 14``
    and, a 204 having no body, no content-type), and grpcio takes the gRPC status then (seen with
    grpcio 1.85 behind nginx). A 200 frame holding ``grpc-status`` is
    Trailers-Only. A frame that ends the stream without ``grpc-status`` leaves the
    call without a status: UNKNOWN.
    """
    try:
        status, message, details, pairs, other = _split_status_fields(headers)
    except InvalidMetadataError as exc:
        raise InvalidResponseError(
            StatusCode.INTERNAL, f"malformed response headers: {exc}"
        ) from None
    http_status = other.get(b":status")
    if http_status is None:
        raise InvalidResponseError(StatusCode.INTERNAL, "missing :status in response headers")
    content_type = other.get(b"content-type")
    is_grpc = content_type is not None and _is_grpc_content_type(content_type)
    if http_status != b"200" and status is not None:
        is_grpc = True  # a proxy's gRPC answer (nginx sends no content-type with a 204)
    elif http_status != b"200":
        shown = http_status.decode("latin-1")
        try:
            code = status_from_http(int(http_status))
        except ValueError:
            code = StatusCode.UNKNOWN
        text = f"HTTP status {shown}"
        if message is not None:
            text = f"{text}: {decode_grpc_message(message)}"
        raise InvalidResponseError(code, text)
    if not is_grpc:
        shown = "missing" if content_type is None else repr(content_type.decode("latin-1"))
        raise InvalidResponseError(StatusCode.UNKNOWN, f"invalid content-type: {shown}")
    encoding = other.get(b"grpc-encoding")
    accept_encoding = other.get(b"grpc-accept-encoding")
    encoding_str = None if encoding is None else _parse_encoding(encoding)
    accept = () if accept_encoding is None else _parse_accept_encoding(accept_encoding)
    if status is not None:
        try:
            trailers_only = _make_status(status, message, details, pairs)
        except InvalidMetadataError as exc:
            raise InvalidResponseError(
                StatusCode.INTERNAL, f"malformed grpc-status-details-bin: {exc}"
            ) from None
        return ResponseHead(Metadata(), encoding_str, accept, trailers_only)
    if end_stream:
        raise InvalidResponseError(StatusCode.UNKNOWN, "missing grpc-status")
    return ResponseHead(Metadata._wrap(pairs), encoding_str, accept, None)


def parse_trailers(headers: InboundHeaders) -> Status:
    """The call's status from its trailers; never raises on what the peer sent.

    Missing or invalid ``grpc-status`` gives UNKNOWN; undecodable ``-bin`` values (a protocol
    violation) give INTERNAL, as grpc-go does.
    """
    try:
        status, message, details, pairs, _ = _split_status_fields(headers)
        return _make_status(status, message, details, pairs)
    except InvalidMetadataError as exc:
        return Status(StatusCode.INTERNAL, f"malformed trailers: {exc}")


class ResponseCache:
    """``parse_response_headers`` and ``parse_trailers`` for blocks a channel has seen before.

    A server answers every call of a method with the same response head and, when it succeeds,
    the same trailers; the transport's decoder hands a repeated block back as the same field
    objects, so a tuple hash finds it here. Each call gets results of its own (copies with their
    own ``Metadata``); a head that fails to parse is never remembered. Bounded like
    ``RequestHeadCache``.
    """

    __slots__ = ("_heads", "_size", "_trailers")

    def __init__(self, size: int = 64) -> None:
        self._heads: dict[tuple[Any, ...], ResponseHead] = {}
        self._trailers: dict[tuple[Any, ...], Status] = {}
        self._size = size

    def head(self, headers: InboundHeaders, *, end_stream: bool) -> ResponseHead:
        key = (end_stream, *headers)
        heads = self._heads
        head = heads.get(key)
        if head is None:
            head = parse_response_headers(headers, end_stream=end_stream)
            if len(heads) >= self._size:
                heads.clear()
            heads[key] = head
        status = head.trailers_only
        return ResponseHead(
            head.metadata.copy(),
            head.encoding,
            head.accept_encoding,
            None if status is None else _copy_status(status),
        )

    def trailers(self, headers: InboundHeaders) -> Status:
        key = tuple(headers)
        cache = self._trailers
        status = cache.get(key)
        if status is None:
            status = parse_trailers(headers)
            if len(cache) >= self._size:
                cache.clear()
            cache[key] = status
        return _copy_status(status)


def _copy_status(status: Status) -> Status:
    return Status(status.code, status.message, status.metadata.copy(), status.details)
