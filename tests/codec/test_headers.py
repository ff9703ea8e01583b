from __future__ import annotations

import pytest

from codec import (
    CONTENT_TYPE,
    InvalidMetadataError,
    InvalidResponseError,
    Metadata,
    RequestRejected,
    Status,
    StatusCode,
    build_request_headers,
    build_response_headers,
    build_trailers,
    build_trailers_only,
    parse_request_headers,
    parse_response_headers,
    parse_trailers,
)

Headers = list[tuple[bytes, bytes]]


def request(**overrides: bytes | None) -> Headers:
    """A valid request head; an override of None drops that header."""
    fields: dict[bytes, bytes | None] = {
        b":method": b"POST",
        b":scheme": b"http",
        b":path": b"/pkg.Service/Method",
        b":authority": b"localhost:50051",
        b"te": b"trailers",
        b"content-type": b"application/grpc",
    }
    fields.update({k.replace("_", "-").encode(): v for k, v in overrides.items()})
    return [(k, v) for k, v in fields.items() if v is not None]


# --- requests -------------------------------------------------------------------------------


def test_build_request_headers_minimal_order() -> None:
    assert build_request_headers("/pkg.Svc/M", "host:1") == [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/pkg.Svc/M"),
        (b":authority", b"host:1"),
        (b"te", b"trailers"),
        (b"content-type", b"application/grpc"),
    ]
    assert CONTENT_TYPE == b"application/grpc"


def test_build_request_headers_full_order() -> None:
    headers = build_request_headers(
        "/pkg.Svc/M",
        "host:1",
        scheme="https",
        timeout=1.5,
        metadata=[("k", "v"), ("b-bin", b"\xff")],
        encoding="gzip",
        accept_encoding=["identity", "deflate", "gzip"],
        user_agent="h2rpc/0.1",
    )
    assert headers == [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":path", b"/pkg.Svc/M"),
        (b":authority", b"host:1"),
        (b"te", b"trailers"),
        (b"content-type", b"application/grpc"),
        (b"grpc-timeout", b"1500000u"),
        (b"grpc-encoding", b"gzip"),
        (b"grpc-accept-encoding", b"identity,deflate,gzip"),
        (b"user-agent", b"h2rpc/0.1"),
        (b"k", b"v"),
        (b"b-bin", b"/w"),
    ]


def test_build_request_headers_validates_metadata() -> None:
    with pytest.raises(InvalidMetadataError):
        build_request_headers("/a/b", "h", metadata=[("Bad", "v")])
    with pytest.raises(InvalidMetadataError):
        build_request_headers("/a/b", "h", metadata=Metadata(("grpc-status", "0")))


def test_request_round_trip() -> None:
    md = Metadata(("k", "v1"), ("bin-bin", b"\x00\x01\x02"), ("k", "v2"))
    headers = build_request_headers(
        "/pkg.Svc/M",
        "example.com:443",
        scheme="https",
        timeout=2.0,
        metadata=md,
        encoding="gzip",
        accept_encoding=("gzip", "identity"),
        user_agent="ua/1",
    )
    head = parse_request_headers(headers)
    assert head.path == "/pkg.Svc/M"
    assert head.authority == "example.com:443"
    assert head.scheme == "https"
    assert head.timeout == pytest.approx(2.0)
    assert head.encoding == "gzip"
    assert head.accept_encoding == ("gzip", "identity")
    assert head.user_agent == "ua/1"
    assert head.content_type == "application/grpc"
    assert head.metadata == (("user-agent", "ua/1"), *md)


def test_parse_request_without_optional_headers() -> None:
    head = parse_request_headers(request())
    assert head.timeout is None
    assert head.encoding is None
    assert head.accept_encoding == ()
    assert head.user_agent is None
    assert head.metadata == Metadata()


def test_identity_encoding_is_reported_as_none() -> None:
    assert parse_request_headers(request(grpc_encoding=b"identity")).encoding is None


def test_accept_encoding_is_split_and_stripped() -> None:
    head = parse_request_headers(request(grpc_accept_encoding=b"gzip, deflate ,,identity"))
    assert head.accept_encoding == ("gzip", "deflate", "identity")


def test_request_reserved_grpc_headers_are_not_metadata() -> None:
    head = parse_request_headers(request(grpc_trace_bin=b"AAAA", x_custom=b"1"))
    assert head.metadata == (("x-custom", "1"),)


@pytest.mark.parametrize(
    "content_type",
    [
        b"application/grpc",
        b"application/grpc+proto",
        b"application/grpc; x=y",
        b"Application/GRPC+json",
    ],
)
def test_grpc_content_types_are_accepted(content_type: bytes) -> None:
    head = parse_request_headers(request(content_type=content_type))
    assert head.content_type == content_type.decode()


@pytest.mark.parametrize(
    "content_type",
    [b"application/json", b"application/grpcx", b"text/plain", b"application/", None],
)
def test_wrong_content_type_is_rejected_with_415(content_type: bytes | None) -> None:
    with pytest.raises(RequestRejected) as info:
        parse_request_headers(request(content_type=content_type))
    assert info.value.http_status == 415
    assert info.value.code == StatusCode.INTERNAL
    assert "invalid content-type" in info.value.message


@pytest.mark.parametrize("method", [b"GET", b"PUT", None])
def test_non_post_method_is_rejected_with_405(method: bytes | None) -> None:
    with pytest.raises(RequestRejected) as info:
        parse_request_headers(request(**{":method": method}))
    assert info.value.http_status == 405


def test_method_is_checked_before_content_type() -> None:
    with pytest.raises(RequestRejected) as info:
        parse_request_headers(request(**{":method": b"GET", "content_type": b"text/html"}))
    assert info.value.http_status == 405


@pytest.mark.parametrize("te", [None, b"gzip", b"Trailers"])
def test_missing_or_wrong_te_is_rejected_with_400(te: bytes | None) -> None:
    with pytest.raises(RequestRejected) as info:
        parse_request_headers(request(te=te))
    assert (info.value.http_status, info.value.code) == (400, StatusCode.INTERNAL)
    assert info.value.message == "missing te: trailers"


@pytest.mark.parametrize(
    "path", [b"/", b"//", b"/svc", b"/svc/", b"svc/m", b"/a/b/c", b"//m", None]
)
def test_malformed_path_is_unimplemented(path: bytes | None) -> None:
    with pytest.raises(RequestRejected) as info:
        parse_request_headers(request(**{":path": path}))
    assert (info.value.http_status, info.value.code) == (200, StatusCode.UNIMPLEMENTED)
    assert info.value.message.startswith("malformed method name")


@pytest.mark.parametrize("timeout", [b"1", b"1x", b"123456789S", b"-1S", b""])
def test_bad_timeout_is_rejected_with_400(timeout: bytes) -> None:
    with pytest.raises(RequestRejected) as info:
        parse_request_headers(request(grpc_timeout=timeout))
    assert (info.value.http_status, info.value.code) == (400, StatusCode.INTERNAL)


def test_bad_bin_metadata_is_rejected_with_400() -> None:
    with pytest.raises(RequestRejected) as info:
        parse_request_headers(request(x_bin=b"A"))
    assert (info.value.http_status, info.value.code) == (400, StatusCode.INTERNAL)


def test_authority_falls_back_to_host() -> None:
    head = parse_request_headers(request(**{":authority": None, "host": b"h:1"}))
    assert head.authority == "h:1"


# --- responses ------------------------------------------------------------------------------


def test_build_response_headers_order() -> None:
    assert build_response_headers(
        metadata=[("k", "v")], encoding="gzip", accept_encoding=["gzip", "identity"]
    ) == [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
        (b"grpc-encoding", b"gzip"),
        (b"grpc-accept-encoding", b"gzip,identity"),
        (b"k", b"v"),
    ]
    assert build_response_headers() == [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
    ]


def test_build_trailers_fields_in_order() -> None:
    assert build_trailers(
        StatusCode.NOT_FOUND, "no such 100%", metadata=[("t", "1")], details=b"\x08\x05"
    ) == [
        (b"grpc-status", b"5"),
        (b"grpc-message", b"no such 100%25"),
        (b"grpc-status-details-bin", b"CAU"),
        (b"t", b"1"),
    ]
    assert build_trailers(StatusCode.OK) == [(b"grpc-status", b"0")]


def test_build_trailers_validates_metadata() -> None:
    with pytest.raises(InvalidMetadataError):
        build_trailers(StatusCode.OK, metadata=[("x-bin", "not bytes")])


def test_build_trailers_only_has_status_and_content_type_first() -> None:
    assert build_trailers_only(
        StatusCode.UNIMPLEMENTED, "nope", accept_encoding=["gzip"], metadata=[("k", "v")]
    ) == [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
        (b"grpc-accept-encoding", b"gzip"),
        (b"grpc-status", b"12"),
        (b"grpc-message", b"nope"),
        (b"k", b"v"),
    ]


def test_response_headers_round_trip() -> None:
    headers = build_response_headers(
        metadata=[("k", "v"), ("k-bin", b"\x01")], encoding="gzip", accept_encoding=["gzip"]
    )
    head = parse_response_headers(headers, end_stream=False)
    assert head.metadata == (("k", "v"), ("k-bin", b"\x01"))
    assert head.encoding == "gzip"
    assert head.accept_encoding == ("gzip",)
    assert head.trailers_only is None


@pytest.mark.parametrize("end_stream", [True, False])
def test_trailers_only_is_detected_by_grpc_status(end_stream: bool) -> None:
    headers = build_trailers_only(
        StatusCode.PERMISSION_DENIED, "denied \u263a", metadata=[("t", "1")], details=b"rich"
    )
    head = parse_response_headers(headers, end_stream=end_stream)
    assert head.trailers_only == Status(
        StatusCode.PERMISSION_DENIED, "denied \u263a", Metadata(("t", "1")), b"rich"
    )
    assert head.metadata == Metadata()


def test_headers_ending_the_stream_without_grpc_status_are_unknown() -> None:
    with pytest.raises(InvalidResponseError) as info:
        parse_response_headers(build_response_headers(), end_stream=True)
    assert info.value.code == StatusCode.UNKNOWN
    assert "missing grpc-status" in info.value.message


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (b"404", StatusCode.UNIMPLEMENTED),
        (b"503", StatusCode.UNAVAILABLE),
        (b"401", StatusCode.UNAUTHENTICATED),
        (b"500", StatusCode.UNKNOWN),
        (b"abc", StatusCode.UNKNOWN),
    ],
)
def test_non_200_status_maps_http_status(status: bytes, code: StatusCode) -> None:
    headers = [(b":status", status), (b"content-type", b"text/html")]
    with pytest.raises(InvalidResponseError) as info:
        parse_response_headers(headers, end_stream=True)
    assert info.value.code == code
    assert info.value.message == f"HTTP status {status.decode()}"


def test_non_200_grpc_answer_from_a_proxy_keeps_its_grpc_status() -> None:
    # nginx's error_page for gRPC: HTTP 204 (no body, so no content-type) with grpc-status 14;
    # grpcio 1.85 takes the gRPC status (UNAVAILABLE, retryable), not the HTTP mapping of 204.
    headers = [
        (b":status", b"204"),
        (b"grpc-status", b"14"),
        (b"grpc-message", b"upstream unavailable"),
    ]
    head = parse_response_headers(headers, end_stream=True)
    assert head.trailers_only is not None
    assert head.trailers_only.code == StatusCode.UNAVAILABLE
    assert head.trailers_only.message == "upstream unavailable"


def test_non_200_status_message_includes_grpc_message() -> None:
    headers = [(b":status", b"503"), (b"grpc-message", b"go%20away")]
    with pytest.raises(InvalidResponseError) as info:
        parse_response_headers(headers, end_stream=True)
    assert info.value.code == StatusCode.UNAVAILABLE
    assert info.value.message == "HTTP status 503: go away"


def test_non_200_status_with_grpc_status_is_that_status() -> None:
    headers = [(b":status", b"503"), (b"grpc-status", b"8"), (b"grpc-message", b"go%20away")]
    head = parse_response_headers(headers, end_stream=True)
    assert head.trailers_only is not None
    assert head.trailers_only.code == StatusCode.RESOURCE_EXHAUSTED
    assert head.trailers_only.message == "go away"


def test_missing_status_is_internal() -> None:
    with pytest.raises(InvalidResponseError) as info:
        parse_response_headers([(b"content-type", b"application/grpc")], end_stream=False)
    assert info.value.code == StatusCode.INTERNAL


@pytest.mark.parametrize("content_type", [None, b"text/html", b"application/grpc-web"])
def test_response_with_wrong_content_type_is_unknown(content_type: bytes | None) -> None:
    headers = [(b":status", b"200")]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    with pytest.raises(InvalidResponseError) as info:
        parse_response_headers(headers, end_stream=False)
    assert info.value.code == StatusCode.UNKNOWN
    assert "invalid content-type" in info.value.message


def test_bad_bin_metadata_in_response_headers_is_internal() -> None:
    headers = [*build_response_headers(), (b"x-bin", b"!")]
    with pytest.raises(InvalidResponseError) as info:
        parse_response_headers(headers, end_stream=False)
    assert info.value.code == StatusCode.INTERNAL


# --- trailers -------------------------------------------------------------------------------


def test_trailers_round_trip() -> None:
    md = Metadata(("a", "1"), ("b-bin", b"\x00"), ("a", "2"))
    trailers = build_trailers(StatusCode.ABORTED, "retry\nlater", metadata=md, details=b"\x01\x02")
    assert parse_trailers(trailers) == Status(StatusCode.ABORTED, "retry\nlater", md, b"\x01\x02")


@pytest.mark.parametrize("code", list(StatusCode))
def test_every_code_round_trips_through_trailers(code: StatusCode) -> None:
    status = parse_trailers(build_trailers(code))
    assert status.code is code
    assert status.message == ""


def test_padded_status_details_are_accepted() -> None:
    status = parse_trailers([(b"grpc-status", b"0"), (b"grpc-status-details-bin", b"CAU=")])
    assert status.details == b"\x08\x05"


def test_missing_grpc_status_in_trailers_is_unknown() -> None:
    status = parse_trailers([(b"k", b"v")])
    assert status.code == StatusCode.UNKNOWN
    assert status.message == "missing grpc-status in trailers"
    assert status.metadata == (("k", "v"),)


@pytest.mark.parametrize("value", [b"abc", b"17", b"-1", b"", b" 0", b"99999999999999999999"])
def test_invalid_grpc_status_is_unknown(value: bytes) -> None:
    status = parse_trailers([(b"grpc-status", value), (b"grpc-message", b"boom")])
    assert status.code == StatusCode.UNKNOWN
    assert status.message.startswith("invalid grpc-status")
    assert status.message.endswith(": boom")


@pytest.mark.parametrize(
    "trailers",
    [
        [(b"grpc-status", b"0"), (b"grpc-status-details-bin", b"A")],
        [(b"grpc-status", b"0"), (b"x-bin", b"***")],
    ],
)
def test_undecodable_bin_in_trailers_is_internal_not_raised(trailers: Headers) -> None:
    assert parse_trailers(trailers).code == StatusCode.INTERNAL


def test_trailers_keep_malformed_message_escapes() -> None:
    status = parse_trailers([(b"grpc-status", b"2"), (b"grpc-message", b"50%zz")])
    assert status.message == "50%zz"


def test_request_head_cache_gives_each_call_a_head_and_metadata_of_its_own():
    from codec import RequestHeadCache, RequestRejected, parse_request_headers

    headers = [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":path", b"/pkg.Svc/Method"),
        (b":authority", b"localhost"),
        (b"te", b"trailers"),
        (b"content-type", b"application/grpc"),
        (b"grpc-timeout", b"5S"),
        (b"x-key", b"value"),
    ]
    cache = RequestHeadCache(size=2)
    first = cache.parse(headers)
    first.metadata.add("x-added", "by a handler")
    second = cache.parse(list(headers))
    assert second == parse_request_headers(headers)
    assert second is not first and second.metadata is not first.metadata
    assert list(second.metadata) == [("x-key", "value")]
    assert second.timeout == 5.0
    bad = [h for h in headers if h[0] != b"te"]
    for _ in range(2):  # a rejected head is not remembered: rejected every time
        with pytest.raises(RequestRejected):
            cache.parse(bad)
    for n in range(5):  # bounded
        cache.parse([*headers, (b"x-n", str(n).encode())])
    assert len(cache._heads) <= 2


def test_response_cache_gives_each_call_its_own_results_and_remembers_no_failure():
    from codec import InvalidResponseError, ResponseCache, parse_response_headers, parse_trailers

    head = [(b":status", b"200"), (b"content-type", b"application/grpc"), (b"x-h", b"1")]
    trailers = [(b"grpc-status", b"0"), (b"x-t", b"2")]
    trailers_only = [*head[:2], (b"grpc-status", b"5"), (b"grpc-message", b"gone")]
    cache = ResponseCache(size=4)
    for _ in range(2):
        got = cache.head(head, end_stream=False)
        assert got == parse_response_headers(head, end_stream=False)
        got.metadata.add("x-added", "by the application")
        status = cache.trailers(trailers)
        assert status == parse_trailers(trailers)
        status.metadata.add("x-added", "by the application")
        only = cache.head(trailers_only, end_stream=True)
        assert only == parse_response_headers(trailers_only, end_stream=True)
        assert only.trailers_only is not None and only.trailers_only.code == StatusCode.NOT_FOUND
        only.trailers_only.metadata.add("x-added", "by the application")
    assert list(cache.head(head, end_stream=False).metadata) == [("x-h", "1")]
    assert list(cache.trailers(trailers).metadata) == [("x-t", "2")]
    for _ in range(2):  # the same head ending the stream without a status: UNKNOWN each time
        with pytest.raises(InvalidResponseError):
            cache.head(head, end_stream=True)
