"""The public exception hierarchy, and the one place where failures become a gRPC status."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

from codec import Metadata, Status, StatusCode

from ._status_details import decode_status_details, encode_status_details


class RpcError(Exception):
    """A call ended with a non-OK status.

    Raised by the client for a failed call, and raised *by handlers* on the server to end their call
    with this status: ``raise RpcError(StatusCode.NOT_FOUND, "no such user")``.
    Accessors mirror grpcio's (``code()``, ``details()``, ``trailing_metadata()``).
    """

    def __init__(
        self,
        code: StatusCode,
        details: str = "",
        trailing_metadata: Optional[Metadata] = None,
        *,
        initial_metadata: Optional[Metadata] = None,
        status_details: Any = None,
    ) -> None:
        super().__init__(code, details)
        self._code = StatusCode(code)
        self._details = details
        self._trailing_metadata = trailing_metadata if trailing_metadata is not None else Metadata()
        self._initial_metadata = initial_metadata if initial_metadata is not None else Metadata()
        if status_details is not None and not isinstance(status_details, bytes):
            status_details = status_details.SerializeToString()  # e.g. a google.rpc.Status
        self._status_details: Optional[bytes] = status_details

    @classmethod
    def from_status(cls, status: Status, initial_metadata: Optional[Metadata] = None) -> RpcError:
        return cls(
            status.code,
            status.message,
            status.metadata,
            initial_metadata=initial_metadata,
            status_details=status.details,
        )

    def code(self) -> StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Metadata:
        return self._trailing_metadata

    def initial_metadata(self) -> Metadata:
        return self._initial_metadata

    def status_details(self) -> Optional[bytes]:
        """The raw ``grpc-status-details-bin`` (a serialized ``google.rpc.Status``), if any."""
        return self._status_details

    def rich_status(self) -> Any:
        """The status details as a ``google.rpc.Status``, if that proto is importable.

        Returns None when there are no details or ``google.rpc.status_pb2`` (from the
        googleapis-common-protos package) is not installed; ``status_details()`` always has the
        raw bytes.
        """
        if self._status_details is None:
            return None
        try:
            from google.rpc import status_pb2  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError:
            return None
        return status_pb2.Status.FromString(self._status_details)

    def rich_details(self) -> list[Any]:
        """The ``google.protobuf.Any`` details of the rich status (``[]`` without one).

        Needs no googleapis package: ``detail.Is(BadRequest.DESCRIPTOR)`` and
        ``detail.Unpack(message)`` work on each. A malformed details trailer gives ``[]``.
        """
        if self._status_details is None:
            return []
        try:
            return decode_status_details(self._status_details)[2]
        except Exception:
            return []

    def debug_error_string(self) -> str:
        return f"{self._code.name}: {self._details}"

    def __str__(self) -> str:
        return f"<RpcError {self._code.name}: {self._details!r}>"

    __repr__ = __str__


class AbortError(Exception):
    """Raised inside a handler by ``context.abort()``: unwinds it with the status already chosen."""


class UsageError(ValueError):
    """We (the application) asked for something invalid, e.g. a malformed target or metadata."""


def rich_error(
    code: StatusCode,
    message: str,
    details: Iterable[Any] = (),
    trailing_metadata: Optional[Metadata] = None,
) -> RpcError:
    """An ``RpcError`` carrying a ``google.rpc.Status`` with ``details`` (messages or ``Any``).

    A handler raises it (or passes it to ``context.abort_with_status``); clients read the details
    with ``err.rich_details()`` (h2rpc) or grpcio-status's ``rpc_status.from_call(err)`` (grpcio)::

        raise rpc.rich_error(rpc.StatusCode.INVALID_ARGUMENT, "bad name",
                             [error_details_pb2.BadRequest(field_violations=[...])])
    """
    code = StatusCode(code)
    return RpcError(
        code,
        message,
        trailing_metadata,
        status_details=encode_status_details(code, message, details),
    )


def no_call_credentials(credentials: object) -> UsageError:
    """The error for grpcio's ``credentials=`` call argument: h2rpc has no call credentials."""
    return UsageError(
        f"h2rpc has no call credentials (credentials={credentials!r}): send a token as metadata, "
        "e.g. metadata=[('authorization', 'Bearer <token>')], on a TLS channel "
        "(ssl_context=rpc.ssl_channel_context())"
    )
