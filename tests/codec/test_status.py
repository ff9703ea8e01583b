from __future__ import annotations

import enum

import pytest

from codec import Metadata, Status, StatusCode, status_from_http, status_from_reset

CANONICAL = [
    ("OK", 0),
    ("CANCELLED", 1),
    ("UNKNOWN", 2),
    ("INVALID_ARGUMENT", 3),
    ("DEADLINE_EXCEEDED", 4),
    ("NOT_FOUND", 5),
    ("ALREADY_EXISTS", 6),
    ("PERMISSION_DENIED", 7),
    ("RESOURCE_EXHAUSTED", 8),
    ("FAILED_PRECONDITION", 9),
    ("ABORTED", 10),
    ("OUT_OF_RANGE", 11),
    ("UNIMPLEMENTED", 12),
    ("INTERNAL", 13),
    ("UNAVAILABLE", 14),
    ("DATA_LOSS", 15),
    ("UNAUTHENTICATED", 16),
]


def test_exactly_the_17_canonical_codes() -> None:
    assert [(code.name, code.value) for code in StatusCode] == CANONICAL


@pytest.mark.parametrize(("name", "value"), CANONICAL)
def test_code_by_name_and_by_value(name: str, value: int) -> None:
    assert StatusCode[name] is StatusCode(value)
    assert StatusCode[name] == value


@pytest.mark.parametrize(
    ("http_status", "code"),
    [
        (400, StatusCode.INTERNAL),
        (401, StatusCode.UNAUTHENTICATED),
        (403, StatusCode.PERMISSION_DENIED),
        (404, StatusCode.UNIMPLEMENTED),
        (429, StatusCode.UNAVAILABLE),
        (502, StatusCode.UNAVAILABLE),
        (503, StatusCode.UNAVAILABLE),
        (504, StatusCode.UNAVAILABLE),
        (200, StatusCode.UNKNOWN),
        (302, StatusCode.UNKNOWN),
        (415, StatusCode.UNKNOWN),
        (500, StatusCode.UNKNOWN),
    ],
)
def test_http_status_mapping(http_status: int, code: StatusCode) -> None:
    assert status_from_http(http_status) is code


@pytest.mark.parametrize(
    ("error_code", "code"),
    [
        (0x8, StatusCode.CANCELLED),
        (0x7, StatusCode.UNAVAILABLE),
        (0xB, StatusCode.RESOURCE_EXHAUSTED),
        (0xC, StatusCode.PERMISSION_DENIED),
        (0x0, StatusCode.INTERNAL),
        (0x1, StatusCode.INTERNAL),
        (0x2, StatusCode.INTERNAL),
        (0xD, StatusCode.INTERNAL),
        (0x1234, StatusCode.INTERNAL),
    ],
)
def test_rst_stream_code_mapping(error_code: int, code: StatusCode) -> None:
    assert status_from_reset(error_code) is code


def test_status_defaults_and_immutability() -> None:
    status = Status(StatusCode.NOT_FOUND)
    assert status.message == ""
    assert status.metadata == Metadata()
    assert status.details is None
    assert Status(StatusCode.OK).metadata is not Status(StatusCode.OK).metadata
    with pytest.raises(AttributeError):
        status.code = StatusCode.OK  # type: ignore[misc]


class _GrpcioLikeCode(enum.Enum):
    """The shape of grpcio's ``grpc.StatusCode``: values are ``(number, name)`` tuples."""

    OK = (0, "ok")
    NOT_FOUND = (5, "not found")
    UNIMPLEMENTED = (12, "unimplemented")


def test_grpcio_shaped_codes_convert_to_ours() -> None:
    assert StatusCode(_GrpcioLikeCode.NOT_FOUND) is StatusCode.NOT_FOUND
    assert StatusCode(_GrpcioLikeCode.UNIMPLEMENTED) is StatusCode.UNIMPLEMENTED
    with pytest.raises(ValueError):
        StatusCode("NOT_FOUND")  # type: ignore[arg-type]


def test_grpcio_shaped_codes_compare_equal_both_ways() -> None:
    assert StatusCode.NOT_FOUND == _GrpcioLikeCode.NOT_FOUND
    assert _GrpcioLikeCode.NOT_FOUND == StatusCode.NOT_FOUND
    assert StatusCode.OK != _GrpcioLikeCode.NOT_FOUND
    assert (StatusCode.OK != _GrpcioLikeCode.OK) is False
    assert StatusCode.OK != "OK"


def test_codes_stay_ints_for_hashing_and_comparison() -> None:
    assert StatusCode.NOT_FOUND == 5 and hash(StatusCode.NOT_FOUND) == hash(5)
    assert {StatusCode.OK: "ok"}[0] == "ok"
    assert StatusCode(5) is StatusCode.NOT_FOUND
