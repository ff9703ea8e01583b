"""Rich error details: ``google.rpc.Status`` in ``grpc-status-details-bin``, without googleapis.

gRPC's richer error model sends a serialized ``google.rpc.Status`` (code, message, and
``google.protobuf.Any`` details such as ``BadRequest`` or ``RetryInfo``) in the
``grpc-status-details-bin`` trailer. Its message type lives in googleapis-common-protos, which
h2rpc does not depend on; the message is three fields, so we write and read its wire form here
and use protobuf's own ``Any`` for the details.

Wire form (google/rpc/status.proto): ``int32 code = 1; string message = 2;
repeated google.protobuf.Any details = 3;``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError

__all__ = ["decode_status_details", "encode_status_details"]


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int32 negatives are sign-extended to ten bytes
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _length_delimited(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def encode_status_details(code: int, message: str, details: Iterable[Any] = ()) -> bytes:
    """Serialize a ``google.rpc.Status``; each detail is an ``Any`` or a message to pack in one."""
    out = bytearray()
    if code:
        out += _varint(1 << 3) + _varint(int(code))
    if message:
        out += _length_delimited(2, message.encode("utf-8"))
    for detail in details:
        if not isinstance(detail, any_pb2.Any):
            packed = any_pb2.Any()
            packed.Pack(detail)
            detail = packed
        out += _length_delimited(3, detail.SerializeToString())
    return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise DecodeError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def decode_status_details(data: bytes) -> tuple[int, str, list[Any]]:
    """``(code, message, details)`` of a serialized ``google.rpc.Status``; DecodeError if bad.

    Unknown fields are skipped, as protobuf parsers do.
    """
    code, message, details = 0, "", []
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(data, pos)
            if field == 1:
                code = value - (1 << 64) if value >= 1 << 63 else value
        elif wire_type == 2:
            length, pos = _read_varint(data, pos)
            end = pos + length
            if end > len(data):
                raise DecodeError("truncated field")
            chunk = data[pos:end]
            pos = end
            if field == 2:
                message = chunk.decode("utf-8", errors="replace")
            elif field == 3:
                details.append(any_pb2.Any.FromString(chunk))
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise DecodeError(f"unsupported wire type {wire_type}")
        if pos > len(data):
            raise DecodeError("truncated field")
    return code, message, details
