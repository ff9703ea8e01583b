"""Per-message compression: round trips, and bounded decompression."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codec import (
    SUPPORTED_ENCODINGS,
    CodecError,
    MessageTooLargeError,
    compress,
    decompress,
    is_supported_encoding,
)


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@given(data=st.binary(max_size=5000))
def test_round_trip(encoding: str, data: bytes) -> None:
    assert decompress(encoding, compress(encoding, data)) == data


def test_gzip_is_the_gzip_container_and_deflate_the_zlib_one() -> None:
    assert gzip.decompress(compress("gzip", b"hello")) == b"hello"
    assert zlib.decompress(compress("deflate", b"hello")) == b"hello"


def test_a_compression_bomb_stops_at_the_limit_without_inflating_it_all() -> None:
    bomb = compress("gzip", bytes(50 * 1024 * 1024))  # ~50 KiB that inflates to 50 MiB
    assert len(bomb) < 100_000
    with pytest.raises(MessageTooLargeError):
        decompress("gzip", bomb, 4 * 1024 * 1024)


def test_exactly_the_limit_is_allowed() -> None:
    assert len(decompress("deflate", compress("deflate", bytes(1000)), 1000)) == 1000


@pytest.mark.parametrize("blob", [b"not compressed at all", compress("gzip", b"x" * 100)[:-8]])
def test_corrupt_or_truncated_data_is_a_codec_error(blob: bytes) -> None:
    with pytest.raises(CodecError):
        decompress("gzip", blob)


def test_unknown_encoding_is_rejected() -> None:
    assert not is_supported_encoding("snappy")
    assert is_supported_encoding(None) and is_supported_encoding("identity")
    with pytest.raises(CodecError):
        compress("snappy", b"")
    with pytest.raises(CodecError):
        decompress("br", b"")


def test_advertised_encodings() -> None:
    assert SUPPORTED_ENCODINGS == ("identity", "deflate", "gzip")
