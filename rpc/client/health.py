"""Client-side health checking (gRFC A17): the ``grpc.health.v1.Health/Watch`` messages, by hand.

The request is ``HealthCheckRequest{service}``, the answers ``HealthCheckResponse{status}``; two
one-field messages are written and read here without protobuf, so that the balancer needs no
generated code (``rpc.services.health`` is the server side).
"""

from __future__ import annotations

from .._protowire import fields, length_delimited

WATCH_METHOD = "/grpc.health.v1.Health/Watch"

#: ``HealthCheckResponse.ServingStatus.SERVING``.
SERVING = 1


def watch_request(service: str) -> bytes:
    """``HealthCheckRequest{service: service}`` (field 1, a string; empty: the whole server)."""
    name = service.encode("utf-8")
    return length_delimited(1, name) if name else b""


def is_serving(response: bytes) -> bool:
    """Whether a ``HealthCheckResponse`` says SERVING (field 1, an enum; absent: UNKNOWN).
    ValueError for bytes that are no such message."""
    status = 0
    for field, value in fields(response):  # WireError is a ValueError
        if field == 1 and isinstance(value, int):
            status = value
    return status == SERVING
