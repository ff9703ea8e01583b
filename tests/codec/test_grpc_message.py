from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codec import decode_grpc_message, encode_grpc_message


def test_printable_ascii_is_sent_unchanged() -> None:
    assert encode_grpc_message("Hello, world! ~{}") == b"Hello, world! ~{}"


def test_percent_and_non_printable_bytes_are_escaped_uppercase() -> None:
    assert encode_grpc_message("100%") == b"100%25"
    assert encode_grpc_message("a\nb\tc\x7f") == b"a%0Ab%09c%7F"
    assert encode_grpc_message("\u00e9") == b"%C3%A9"


def test_grpc_interop_special_status_message() -> None:
    # From the gRPC interop test "special_status_message".
    message = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
    encoded = encode_grpc_message(message)
    assert encoded == (
        b"%09%0Atest with whitespace%0D%0Aand Unicode BMP %E2%98%BA and non-BMP %F0%9F%98%88%09%0A"
    )
    assert decode_grpc_message(encoded) == message


def test_empty_message() -> None:
    assert encode_grpc_message("") == b""
    assert decode_grpc_message(b"") == ""


@given(st.text())
def test_round_trip_any_text_including_non_bmp(message: str) -> None:
    encoded = encode_grpc_message(message)
    assert all(0x20 <= b <= 0x7E for b in encoded)
    assert decode_grpc_message(encoded) == message


@given(st.binary())
def test_decode_never_raises(value: bytes) -> None:
    assert isinstance(decode_grpc_message(value), str)


def test_lowercase_escapes_are_decoded() -> None:
    assert decode_grpc_message(b"%c3%a9") == "\u00e9"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"100%", "100%"),
        (b"%", "%"),
        (b"%4", "%4"),
        (b"%zz ok", "%zz ok"),
        (b"%%41", "%A"),
        (b"50% off %41", "50% off A"),
    ],
)
def test_malformed_escapes_are_kept_as_is(value: bytes, expected: str) -> None:
    assert decode_grpc_message(value) == expected


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert decode_grpc_message(b"a%FFb") == "a\ufffdb"
    assert decode_grpc_message(b"a\xffb") == "a\ufffdb"


def test_lone_surrogate_does_not_raise_when_encoding() -> None:
    assert decode_grpc_message(encode_grpc_message("x\ud800y")) == "x?y"
