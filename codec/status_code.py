"""The 17 canonical gRPC status codes, the values of ``grpc-status``.

A module of its own that imports nothing from the project, so every codec module (the exceptions
in ``errors.py`` included) can name a status code without importing the rest of the codec.
"""

from __future__ import annotations

import enum

__all__ = ["StatusCode"]


class StatusCode(enum.IntEnum):
    """The 17 canonical gRPC status codes (``grpc-status`` values)."""

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16

    # grpcio's ``grpc.StatusCode`` members have ``(int, name)`` tuples as values. Accepting and
    # comparing them here (by duck typing: h2rpc never imports grpcio) lets grpcio programs keep
    # ``context.set_code(grpc.StatusCode.NOT_FOUND)`` and ``err.code() == grpc.StatusCode.X``.

    @classmethod
    def _missing_(cls, value: object) -> StatusCode | None:
        """``StatusCode(grpc.StatusCode.NOT_FOUND)`` is ``StatusCode.NOT_FOUND``."""
        number = _grpcio_code_number(value)
        return None if number is None else cls(number)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, int):
            return int(self) == other
        number = _grpcio_code_number(other)
        return NotImplemented if number is None else int(self) == number

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = int.__hash__


def _grpcio_code_number(value: object) -> int | None:
    """The number of a grpcio ``grpc.StatusCode`` member (value ``(number, name)``), else None."""
    pair = getattr(value, "value", None)
    if type(pair) is tuple and len(pair) == 2 and type(pair[0]) is int:
        return pair[0]
    return None
