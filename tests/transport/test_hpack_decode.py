"""The caching HPACK decoder gives exactly what hpack's decoder gives, for any block sequence."""

from __future__ import annotations

import pytest
from hpack import Encoder
from hpack.hpack import Decoder, OversizedHeaderListError
from hypothesis import given, settings
from hypothesis import strategies as st

from transport.hpack_blocks import encode_block
from transport.hpack_decode import CachingDecoder

GRPC_REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/h2rpc.test.EchoTest/Unary"),
    (b":authority", b"127.0.0.1"),
    (b"te", b"trailers"),
    (b"content-type", b"application/grpc"),
]


def test_a_table_neutral_block_is_decoded_once() -> None:
    decoder = CachingDecoder()
    block = encode_block(GRPC_REQUEST)
    first = decoder.decode(block, raw=True)
    assert list(first) == GRPC_REQUEST
    assert len(decoder._cache) == 1
    again = decoder.decode(block, raw=True)
    assert list(again) == GRPC_REQUEST
    assert again is not first  # callers get their own list


def test_a_block_indexing_the_dynamic_table_is_not_answered_after_the_table_moved() -> None:
    decoder = CachingDecoder()
    decoder.decode(Encoder().encode([(b"x-a", b"1")]), raw=True)  # x-a: 1 is now index 62
    indexed_62 = bytes([0x80 | 62])
    assert list(decoder.decode(indexed_62, raw=True)) == [(b"x-a", b"1")]
    assert indexed_62 in decoder._cache
    # A new entry pushes x-a: 1 to index 63; index 62 now means x-b: 2.
    decoder.decode(b"\x40" + bytes([3]) + b"x-b" + bytes([1]) + b"2", raw=True)
    assert list(decoder.decode(indexed_62, raw=True)) == [(b"x-b", b"2")]


def test_blocks_that_change_the_table_are_not_stored() -> None:
    decoder = CachingDecoder()
    block = Encoder().encode([(b"x-new", b"v")])  # literal with incremental indexing
    decoder.decode(block, raw=True)
    assert block not in decoder._cache


def test_a_lowered_limit_applies_to_blocks_seen_before() -> None:
    decoder = CachingDecoder()
    block = encode_block(GRPC_REQUEST)
    decoder.decode(block, raw=True)
    decoder.max_header_list_size = 10
    with pytest.raises(OversizedHeaderListError):
        decoder.decode(block, raw=True)


header = st.tuples(
    st.sampled_from([b"x-a", b"x-b", b"grpc-timeout", b"content-type", b":path"]),
    st.sampled_from([b"1", b"2", b"application/grpc", b"/s/M", b"100m"]),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.lists(header, min_size=1, max_size=5)),
        min_size=1,
        max_size=30,
    ),
    st.sampled_from([0, 64, 4096]),
)
def test_same_results_as_hpack_for_any_sequence(
    blocks: list[tuple[bool, list[tuple[bytes, bytes]]]], table_size: int
) -> None:
    """Mixed streams of indexing (hpack's encoder) and neutral (ours) blocks, small tables."""
    encoder = Encoder()
    encoder.header_table_size = table_size
    plain, caching = Decoder(), CachingDecoder()
    for dynamic, headers in blocks:
        block = encoder.encode(headers) if dynamic else encode_block(headers)
        for _ in range(2):  # every block twice: the second may come from the cache
            assert list(caching.decode(block, raw=True)) == list(plain.decode(block, raw=True))
