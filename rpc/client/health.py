"""Client-side health checking (gRFC A17): the ``grpc.health.v1.Health/Watch`` messages, by hand.

The request is ``HealthCheckRequest{service}``, the answers ``HealthCheckResponse{status}``; two
one-field messages are written and read here without protobuf, so that the balancer needs no
generated code (``rpc.services.health`` is the server side).
"""

from __future__ import annotations

WATCH_METHOD = "/grpc.health.v1.Health/Watch"

#: ``HealthCheckResponse.ServingStatus.SERVING``.
SERVING = 1


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated or overlong varint in HealthCheckResponse")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def watch_request(service: str) -> bytes:
    """``HealthCheckRequest{service: service}`` (field 1, a string; empty: the whole server)."""
    name = service.encode("utf-8")
    return b"\x0a" + _varint(len(name)) + name if name else b""


def is_serving(response: bytes) -> bool:
    """Whether a ``HealthCheckResponse`` says SERVING (field 1, an enum; absent: UNKNOWN).
    ValueError for bytes that are no such message."""
    status = 0
    pos = 0
    while pos < len(response):
        key, pos = _read_varint(response, pos)
        field, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(response, pos)
            if field == 1:
                status = value
        elif wire_type == 2:
            length, pos = _read_varint(response, pos)
            pos += length
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        else:
            raise ValueError(f"bad wire type {wire_type} in HealthCheckResponse")
    if pos > len(response):
        raise ValueError("truncated HealthCheckResponse")
    return status == SERVING
