"""Per-message work shared by client and server: framing, compression, size limits.

Both directions of a call do the same things to a message, so both sides call these two helpers;
failures come out as ``RpcError`` with the status gRPC prescribes (RESOURCE_EXHAUSTED for a size
limit, INTERNAL for a malformed or undecodable message).
"""

from __future__ import annotations

from typing import Optional

from codec import (
    CodecError,
    MessageDecoder,
    MessageTooLargeError,
    StatusCode,
    compress,
    decompress,
    encode_message,
)

from .._errors import RpcError


class WrongMessageType(TypeError):
    """A handler gave a message that is not of its method's response type."""


def frame_message(
    payload: bytes, encoding: Optional[str], limit: Optional[int], compressed: bool = True
) -> bytes:
    """Length-prefix one serialized message, compressing it when the call has an encoding."""
    if limit is not None and len(payload) > limit:
        raise RpcError(
            StatusCode.RESOURCE_EXHAUSTED,
            f"Sent message larger than max ({len(payload)} vs. {limit})",
        )
    if encoding is not None and compressed:
        return encode_message(compress(encoding, payload), True)
    return encode_message(payload)


def decode_messages(
    decoder: MessageDecoder, chunk: bytes, encoding: Optional[str], limit: Optional[int]
) -> list[bytes]:
    """The complete message payloads in ``chunk``, decompressed; RpcError if one is bad."""
    try:
        frames = decoder.feed(chunk)
    except MessageTooLargeError as exc:
        raise RpcError(StatusCode.RESOURCE_EXHAUSTED, str(exc)) from None
    except CodecError as exc:
        raise RpcError(StatusCode.INTERNAL, str(exc)) from None
    out = []
    for compressed, payload in frames:
        if compressed:
            if encoding is None:
                raise RpcError(
                    StatusCode.INTERNAL, "compressed message flag set but no grpc-encoding"
                )
            try:
                payload = decompress(encoding, payload, limit)
            except MessageTooLargeError as exc:
                raise RpcError(StatusCode.RESOURCE_EXHAUSTED, str(exc)) from None
            except CodecError as exc:
                raise RpcError(StatusCode.INTERNAL, str(exc)) from None
        out.append(payload)
    return out


class _EOFType:
    """The value ``read()`` returns once a response stream has ended (grpcio's ``aio.EOF``)."""

    _instance: Optional[_EOFType] = None

    def __new__(cls) -> _EOFType:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "EOF"

    def __bool__(self) -> bool:
        return False


EOF = _EOFType()
