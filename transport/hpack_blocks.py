"""Header blocks encoded once and reused: HPACK without the dynamic table.

gRPC sends the same few header blocks over and over: every response starts with ``:status 200``
and ``content-type: application/grpc``, every OK call ends with ``grpc-status: 0``, and the
request heads of one method differ at most in ``grpc-timeout`` and metadata. hpack's encoder
re-encodes each block field by field, in Python, with logging and dynamic-table bookkeeping.
Encoding with the static table and literals *without indexing* (RFC 7541 §6.1, §6.2.2) makes a
block depend only on its fields, never on what was sent before, so it can be cached by value and
handed to h2 as it is. The dynamic table stays empty, which every HPACK
decoder accepts; a block costs a few more bytes on the wire.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from hpack import Encoder
from hpack.hpack import encode_integer
from hpack.table import HeaderTable

__all__ = ["BlockCache", "PreEncodingEncoder", "encode_block"]

_FULL: dict[tuple[bytes, bytes], int] = {}
_NAME: dict[bytes, int] = {}
for _index, (_name, _value) in enumerate(HeaderTable.STATIC_TABLE, start=1):
    _FULL.setdefault((_name, _value), _index)
    _NAME.setdefault(_name, _index)

_CACHE_LIMIT = 512


def _string(value: bytes) -> bytes:
    """An HPACK string literal, without Huffman coding (H bit clear)."""
    length = len(value)
    if length < 127:
        return bytes((length,)) + value
    return bytes(encode_integer(length, 7)) + value


def encode_block(headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """Encode with the static table and literals without indexing only."""
    out = bytearray()
    for field in headers:
        index = _FULL.get(field)
        if index is not None:  # indexed header field, 7-bit prefix
            if index < 127:
                out.append(0x80 | index)
            else:
                prefix = encode_integer(index, 7)
                prefix[0] |= 0x80
                out += prefix
            continue
        name, value = field
        name_index = _NAME.get(name)
        if name_index is None:  # literal without indexing, new name
            out.append(0x00)
            out += _string(name)
        elif name_index < 15:  # literal without indexing, indexed name, 4-bit prefix
            out.append(name_index)
        else:
            out += encode_integer(name_index, 4)
        out += _string(value)
    return bytes(out)


class BlockCache:
    """Encoded blocks by value; bounded (cleared when full: the hot set refills it at once)."""

    __slots__ = ("_blocks",)

    def __init__(self) -> None:
        self._blocks: dict[tuple[tuple[bytes, bytes], ...], bytes] = {}

    def get(self, headers: Sequence[tuple[bytes, bytes]]) -> bytes:
        key = tuple(headers)
        block = self._blocks.get(key)
        if block is None:
            if len(self._blocks) >= _CACHE_LIMIT:
                self._blocks.clear()
            block = self._blocks[key] = encode_block(key)
        return block


class PreEncodingEncoder:
    """Stands in for h2's HPACK encoder: hands over the block the core prepared, if any.

    h2 has no call to send an already-encoded block; it asks ``encoder.encode(headers)`` once
    per block it builds. The core puts the block in ``next_block`` right before calling h2,
    and anything else (no block prepared) goes to the real encoder.
    """

    def __init__(self, encoder: Encoder) -> None:
        self.real = encoder
        self.next_block: Optional[bytes] = None

    def encode(self, headers: object, huffman: bool = True) -> bytes:
        block = self.next_block
        if block is not None:
            self.next_block = None
            return block
        return self.real.encode(headers, huffman)  # type: ignore[arg-type]

    @property
    def header_table_size(self) -> int:
        return int(self.real.header_table_size)

    @header_table_size.setter
    def header_table_size(self, value: int) -> None:
        self.real.header_table_size = value
