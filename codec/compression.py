"""Per-message compression: ``identity``, ``gzip`` and ``deflate`` (gRPC's ``grpc-encoding``).

The sender names its algorithm in ``grpc-encoding`` and sets the compressed flag of each message it
compressed (it may leave some uncompressed); the receiver lists what it can decode in
``grpc-accept-encoding``. ``deflate`` is the zlib format (RFC 1950), as in HTTP and grpc-core.
Decompression is bounded: a small message that inflates past the receive limit (a "zip bomb") is
stopped at the limit, never inflated in full.
"""

from __future__ import annotations

import zlib
from typing import Optional

from .errors import CodecError, MessageTooLargeError

__all__ = [
    "SUPPORTED_ENCODINGS",
    "compress",
    "decompress",
    "is_supported_encoding",
]

#: What we can decode, in the order advertised in ``grpc-accept-encoding``.
SUPPORTED_ENCODINGS = ("identity", "deflate", "gzip")

_WBITS = {"gzip": 31, "deflate": 15}  # 16+15: gzip container; 15: zlib container
_UNLIMITED = 0xFFFFFFFF


def is_supported_encoding(name: Optional[str]) -> bool:
    return name is None or name in _WBITS or name == "identity"


def compress(encoding: str, data: bytes) -> bytes:
    """Compress one message payload with ``encoding`` (``gzip`` or ``deflate``)."""
    try:
        wbits = _WBITS[encoding]
    except KeyError:
        raise CodecError(f"unsupported compression {encoding!r}") from None
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, wbits)
    return compressor.compress(data) + compressor.flush()


def decompress(encoding: str, data: bytes, max_length: Optional[int] = None) -> bytes:
    """Inflate one message payload, refusing to produce more than ``max_length`` bytes.

    Raises MessageTooLargeError when the output would pass the limit (checked while inflating)
    and CodecError for an unknown encoding or corrupt data.
    """
    try:
        wbits = _WBITS[encoding]
    except KeyError:
        raise CodecError(f"unsupported compression {encoding!r}") from None
    limit = _UNLIMITED if max_length is None or max_length < 0 else max_length
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise CodecError(f"corrupt {encoding} message: {exc}") from None
    if len(out) > limit:
        raise MessageTooLargeError(len(out), limit)
    if not inflater.eof:
        raise CodecError(f"truncated {encoding} message")
    return out
