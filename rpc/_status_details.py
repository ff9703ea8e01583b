"""Rich error details: ``google.rpc.Status`` in ``grpc-status-details-bin``, without googleapis.

gRPC's richer error model sends a serialized ``google.rpc.Status`` (code, message, and
``google.protobuf.Any`` details such as ``BadRequest`` or ``RetryInfo``) in the
``grpc-status-details-bin`` trailer. Its message type lives in googleapis-common-protos, which
h2rpc does not depend on; the message is three fields, so we write and read its wire form here
and use protobuf's own ``Any`` for the details (the wire basics: ``rpc._protowire``).

Wire form (google/rpc/status.proto): ``int32 code = 1; string message = 2;
repeated google.protobuf.Any details = 3;``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf import any_pb2
from google.protobuf.message import DecodeError

from ._protowire import WireError, fields, length_delimited, varint

__all__ = ["decode_status_details", "encode_status_details"]


def encode_status_details(code: int, message: str, details: Iterable[Any] = ()) -> bytes:
    """Serialize a ``google.rpc.Status``; each detail is an ``Any`` or a message to pack in one."""
    out = bytearray()
    if code:
        out += varint(1 << 3) + varint(int(code))
    if message:
        out += length_delimited(2, message.encode("utf-8"))
    for detail in details:
        if not isinstance(detail, any_pb2.Any):
            packed = any_pb2.Any()
            packed.Pack(detail)
            detail = packed
        out += length_delimited(3, detail.SerializeToString())
    return bytes(out)


def decode_status_details(data: bytes) -> tuple[int, str, list[Any]]:
    """``(code, message, details)`` of a serialized ``google.rpc.Status``; DecodeError if bad.

    Unknown fields are skipped, as protobuf parsers do.
    """
    code, message, details = 0, "", []
    try:
        for field, value in fields(data):
            if isinstance(value, int):
                if field == 1:
                    code = value - (1 << 64) if value >= 1 << 63 else value
            elif field == 2:
                message = value.decode("utf-8", errors="replace")
            elif field == 3:
                details.append(any_pb2.Any.FromString(value))
    except WireError as exc:
        raise DecodeError(str(exc)) from None
    return code, message, details
