"""An HPACK decoder that remembers header blocks it has decoded before.

gRPC peers send the same header blocks over and over: a client's request heads for one method
differ at most in ``grpc-timeout`` and metadata, and every OK response ends with the same
trailers. A block made only of indexed fields and literals *without* indexing (RFC 7541 §6.1,
§6.2.2, §6.2.3) leaves the dynamic table as it was, so decoding the same bytes again against
the same table gives the same header list. That is true of every block our own peers send
(``hpack_blocks.py``) and, once the first call has filled the dynamic table, of the repeated
blocks of nghttp2 and grpc-core. hpack decodes a block field by field, in Python; a dictionary
look-up replaces that.

The cache is keyed by the block's bytes and checked against a version of the dynamic table,
bumped whenever the table's contents or size limit change, so a block that refers to dynamic
entries is never answered from a table that has moved on. Blocks that change the table
(literals with incremental indexing, size updates) are decoded normally and not stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Union

from hpack import HeaderTuple
from hpack.hpack import Decoder
from hpack.table import HeaderTable

__all__ = ["CachingDecoder"]

#: Blocks remembered per connection (cleared when full: a peer sending ever-new blocks only
#: loses the shortcut) and the largest block worth remembering.
CACHE_ENTRIES = 128
MAX_CACHED_BLOCK = 1024


class _VersionedTable(HeaderTable):
    """hpack's dynamic table, counting every change to what an index refers to."""

    def __init__(self) -> None:
        super().__init__()
        self.version = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.version += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.version += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class CachingDecoder(Decoder):
    """``hpack.Decoder`` with a per-connection cache of table-neutral blocks (raw mode only)."""

    def __init__(self) -> None:
        self._cache: dict[bytes, tuple[int, tuple[HeaderTuple, ...]]] = {}
        super().__init__()
        self.header_table = _VersionedTable()

    def __setattr__(self, name: str, value: Any) -> None:
        # A new limit can turn a block that passed into one that must fail: forget them all.
        if name in ("max_header_list_size", "max_allowed_table_size"):
            self._cache.clear()
        super().__setattr__(name, value)

    def decode(self, data: Union[bytes, bytearray, memoryview], raw: bool = False) -> Iterable[Any]:
        if not raw:
            return super().decode(bytes(data), raw)
        block = data if type(data) is bytes else bytes(data)
        table = self.header_table
        assert isinstance(table, _VersionedTable)
        version = table.version
        cache = self._cache
        hit = cache.get(block)
        if hit is not None and hit[0] == version:
            return list(hit[1])
        headers = super().decode(block, raw=True)
        if table.version == version and len(block) <= MAX_CACHED_BLOCK:
            if len(cache) >= CACHE_ENTRIES:
                cache.clear()
            cache[block] = (version, tuple(headers))
        return headers
