from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codec import (
    DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
    CodecError,
    MessageDecoder,
    MessageTooLargeError,
    TruncatedMessageError,
    encode_message,
)


def test_encode_message_prefixes_flag_and_big_endian_length() -> None:
    assert encode_message(b"abc") == b"\x00\x00\x00\x00\x03abc"
    assert encode_message(b"abc", compressed=True) == b"\x01\x00\x00\x00\x03abc"
    assert encode_message(b"") == b"\x00\x00\x00\x00\x00"
    assert encode_message(b"x" * 0x01020304)[:5] == b"\x00\x01\x02\x03\x04"


def test_default_limit_is_grpcio_4_mib() -> None:
    assert DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH == 4 * 1024 * 1024
    assert MessageDecoder().max_message_length == DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH


def test_chunk_of_whole_messages_decodes_all_in_order() -> None:
    data = encode_message(b"one") + encode_message(b"", True) + encode_message(b"three")
    decoder = MessageDecoder()
    assert decoder.feed(data) == [(False, b"one"), (True, b""), (False, b"three")]
    assert decoder.buffered == 0
    decoder.finish()


def test_empty_message_is_a_message() -> None:
    decoder = MessageDecoder()
    assert decoder.feed(encode_message(b"")) == [(False, b"")]
    decoder.finish()


def test_empty_chunks_change_nothing() -> None:
    decoder = MessageDecoder()
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\x00\x00") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\x00\x00\x02a") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"b") == [(False, b"ab")]


def test_prefix_split_across_chunks_byte_by_byte() -> None:
    data = encode_message(b"hello", compressed=True) + encode_message(b"world")
    decoder = MessageDecoder()
    out = []
    for i in range(len(data)):
        out += decoder.feed(data[i : i + 1])
    assert out == [(True, b"hello"), (False, b"world")]
    assert decoder.buffered == 0


def test_buffered_counts_held_prefix_and_body_bytes() -> None:
    decoder = MessageDecoder()
    decoder.feed(b"\x00\x00")
    assert decoder.buffered == 2
    decoder.feed(b"\x00\x00\x0a" + b"12345")
    assert decoder.buffered == 5
    decoder.feed(b"678")
    assert decoder.buffered == 8
    assert decoder.feed(b"90" + b"\x00") == [(False, b"1234567890")]
    assert decoder.buffered == 1


def test_large_message_over_many_chunks_is_joined() -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    data = encode_message(payload) + encode_message(b"tail")
    decoder = MessageDecoder()
    out = []
    for i in range(0, len(data), 16384):
        out += decoder.feed(data[i : i + 16384])
    assert out == [(False, payload), (False, b"tail")]


def test_bytearray_and_memoryview_chunks_are_copied_not_referenced() -> None:
    decoder = MessageDecoder()
    data = encode_message(b"abcdef")
    chunk = bytearray(data[:7])
    assert decoder.feed(chunk) == []
    chunk[:] = b"XXXXXXX"  # the caller reuses its buffer
    chunk += b"."  # and may resize it (no exported views)
    assert decoder.feed(memoryview(data)[7:]) == [(False, b"abcdef")]


@given(
    payloads=st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=12),
    cuts=st.lists(st.integers(min_value=0, max_value=5000), max_size=25),
)
def test_round_trip_under_any_chunking(payloads: list[tuple[bool, bytes]], cuts: list[int]) -> None:
    data = b"".join(encode_message(p, c) for c, p in payloads)
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    decoder = MessageDecoder()
    out = []
    for a, b in zip(points, points[1:]):
        out += decoder.feed(data[a:b])
    assert out == payloads
    assert decoder.buffered == 0
    decoder.finish()


def test_oversized_prefix_raises_before_buffering_the_body() -> None:
    decoder = MessageDecoder()
    declared = 5 * 1024 * 1024
    with pytest.raises(MessageTooLargeError) as info:
        decoder.feed(struct.pack(">BI", 0, declared))  # only the prefix: no body sent at all
    assert info.value.length == declared
    assert info.value.limit == DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH
    assert str(info.value) == f"Received message larger than max ({declared} vs. 4194304)"


def test_oversized_prefix_split_across_chunks_raises_when_complete() -> None:
    decoder = MessageDecoder(max_message_length=10)
    assert decoder.feed(b"\x00\x00\x00") == []
    with pytest.raises(MessageTooLargeError):
        decoder.feed(b"\x00\x0b")


def test_oversized_prefix_after_a_complete_message_in_same_chunk_raises() -> None:
    decoder = MessageDecoder(max_message_length=3)
    with pytest.raises(MessageTooLargeError):
        decoder.feed(encode_message(b"ok") + struct.pack(">BI", 0, 4))


def test_message_exactly_at_the_limit_is_accepted() -> None:
    decoder = MessageDecoder(max_message_length=4)
    assert decoder.feed(encode_message(b"1234")) == [(False, b"1234")]


def test_limit_is_mutable_and_none_or_negative_means_unlimited() -> None:
    decoder = MessageDecoder(max_message_length=None)
    big = b"x" * (DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH + 1)
    assert decoder.feed(encode_message(big)) == [(False, big)]
    decoder.max_message_length = -1
    assert decoder.feed(encode_message(big)) == [(False, big)]
    decoder.max_message_length = 1
    with pytest.raises(MessageTooLargeError):
        decoder.feed(encode_message(b"ab"))


@pytest.mark.parametrize("flag", [2, 0x80, 0xFF])
def test_invalid_compression_flag_raises(flag: int) -> None:
    decoder = MessageDecoder()
    with pytest.raises(CodecError, match="invalid message compression flag"):
        decoder.feed(bytes([flag]) + b"\x00\x00\x00\x01a")


def test_invalid_flag_in_prefix_split_across_chunks_raises() -> None:
    decoder = MessageDecoder()
    decoder.feed(b"\x02\x00")
    with pytest.raises(CodecError, match="invalid message compression flag"):
        decoder.feed(b"\x00\x00\x01a")


def test_finish_on_truncated_body_raises() -> None:
    decoder = MessageDecoder()
    decoder.feed(encode_message(b"abcdef")[:-2])
    with pytest.raises(TruncatedMessageError, match="4 of 6 bytes"):
        decoder.finish()


def test_finish_on_truncated_prefix_raises() -> None:
    decoder = MessageDecoder()
    decoder.feed(b"\x00\x00\x00")
    with pytest.raises(TruncatedMessageError, match="prefix"):
        decoder.finish()


def test_finish_right_after_a_prefix_with_no_body_bytes_raises() -> None:
    decoder = MessageDecoder()
    decoder.feed(b"\x00\x00\x00\x00\x01")
    with pytest.raises(TruncatedMessageError):
        decoder.finish()


def test_finish_on_a_message_boundary_is_fine() -> None:
    decoder = MessageDecoder()
    decoder.finish()
    decoder.feed(encode_message(b"x"))
    decoder.finish()
