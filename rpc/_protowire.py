"""The protobuf wire form of small messages, written and read by hand.

Two messages h2rpc must speak have no generated code it can rely on: ``google.rpc.Status`` (rich
error details; its type lives in googleapis-common-protos, not a dependency) and the health
service's one-field request and response (the balancer's health checks, which sit below
``rpc.services``). Both need only the wire format's basics: varints, length-delimited fields,
and skipping the fields they do not know, as every protobuf parser does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Union

__all__ = ["WireError", "fields", "length_delimited", "varint"]


class WireError(ValueError):
    """Bytes that are not a protobuf message (truncated, overlong varint, bad wire type)."""


def varint(value: int) -> bytes:
    """``value`` as a varint; a negative int32/int64 is sign-extended to ten bytes."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def length_delimited(field: int, payload: bytes) -> bytes:
    """Field ``field`` of wire type 2 (string, bytes, message)."""
    return varint(field << 3 | 2) + varint(len(payload)) + payload


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise WireError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def fields(data: bytes) -> Iterator[tuple[int, Union[int, bytes]]]:
    """``(field number, value)`` of each field: an int for varints, bytes for length-delimited
    fields; fixed32/fixed64 fields are skipped (neither message uses them). WireError if bad."""
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = _read_varint(data, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(data, pos)
            yield field, value
            continue
        if wire_type == 2:
            length, pos = _read_varint(data, pos)
            stop = pos + length
            if stop > end:
                raise WireError("truncated field")
            yield field, data[pos:stop]
            pos = stop
            continue
        if wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise WireError(f"unsupported wire type {wire_type}")
        if pos > end:
            raise WireError("truncated field")
