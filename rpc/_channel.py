"""The client channel: one target, a lazily opened HTTP/2 connection, and multi-callables.

A channel holds one connection at a time and opens a new one when the current one is lost or
draining after a GOAWAY, so new calls go to a fresh connection while in-flight ones finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Sequence
from typing import Any, Callable, Optional

from codec import StatusCode
from transport import (
    AsyncConnection,
    ConnectionOptions,
    connect,
    parse_address,
)

from ._call import (
    StreamStreamCall,
    StreamUnaryCall,
    UnaryStreamCall,
    UnaryUnaryCall,
    _ClientCall,
)
from ._errors import RpcError
from ._handlers import Cardinality, Deserializer, Serializer, _identity
from ._options import DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH, merge_grpc_options, size_limit
from ._version import USER_AGENT

_GRPC_OPTION_NAMES = {
    "grpc.max_receive_message_length": "max_receive_message_length",
    "grpc.max_send_message_length": "max_send_message_length",
    "grpc.primary_user_agent": "user_agent",
    "grpc.default_authority": "authority",
    "grpc.ssl_target_name_override": "server_hostname",
}


class Channel:
    """An async channel to one target: ``host:port``, ``[v6]:port`` or ``unix:path``.

    Options use grpcio's names and units; ``options=[("grpc.max_receive_message_length", n)]``
    (grpcio's form) is accepted too. A size limit of ``-1`` or ``None`` means unlimited.
    """

    def __init__(
        self,
        target: str,
        *,
        max_receive_message_length: Optional[int] = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
        max_send_message_length: Optional[int] = None,
        user_agent: Optional[str] = None,
        authority: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        server_hostname: Optional[str] = None,
        connection_options: Optional[ConnectionOptions] = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        settings: dict[str, Any] = {
            "max_receive_message_length": max_receive_message_length,
            "max_send_message_length": max_send_message_length,
            "user_agent": user_agent,
            "authority": authority,
            "server_hostname": server_hostname,
        }
        merge_grpc_options(settings, options, _GRPC_OPTION_NAMES, "channel")
        self.target = target
        self._address = parse_address(target)
        self._authority: str = settings["authority"] or self._address.authority
        self._scheme = "https" if ssl_context is not None else "http"
        self._ssl = ssl_context
        self._server_hostname = settings["server_hostname"]
        self._max_receive_message_length = size_limit(settings["max_receive_message_length"])
        self._max_send_message_length = size_limit(settings["max_send_message_length"])
        agent = settings["user_agent"]
        self._user_agent = f"{agent} {USER_AGENT}" if agent else USER_AGENT
        self._connection_options = connection_options
        self._conn: Optional[AsyncConnection] = None
        self._connecting: Optional[asyncio.Future[AsyncConnection]] = None
        self._old_connections: set[AsyncConnection] = set()
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self, grace: Optional[float] = None) -> None:
        """Close the connection(s); calls still in flight fail UNAVAILABLE."""
        self._closed = True
        conns = set(self._old_connections)
        if self._conn is not None:
            conns.add(self._conn)
        self._conn = None
        self._old_connections.clear()
        for conn in conns:
            conn.close()
        for conn in conns:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(conn.wait_closed(), 5.0)

    async def channel_ready(self) -> None:
        """Connect now (instead of at the first call); raises RpcError(UNAVAILABLE) on failure."""
        await self._get_connection()

    async def _get_connection(self) -> AsyncConnection:
        conn = self._conn
        if conn is not None and conn.is_usable:
            return conn
        if self._closed:
            raise RpcError(StatusCode.CANCELLED, "channel is closed")
        if self._connecting is None:
            if conn is not None:
                self._conn = None
                if conn.active_streams:
                    self._old_connections.add(conn)
                else:
                    conn.close()
            self._connecting = asyncio.ensure_future(self._connect())
        return await asyncio.shield(self._connecting)

    async def _connect(self) -> AsyncConnection:
        try:
            conn = await connect(
                self._address,
                options=self._connection_options,
                ssl=self._ssl,
                server_hostname=self._server_hostname,
            )
        except OSError as exc:
            raise RpcError(
                StatusCode.UNAVAILABLE, f"failed to connect to {self.target}: {exc}"
            ) from None
        finally:
            self._connecting = None
        if self._closed:
            conn.close()
            raise RpcError(StatusCode.CANCELLED, "channel is closed")
        self._conn = conn
        return conn

    # ------------------------------------------------------------------ multi-callables

    def unary_unary(
        self,
        method: str,
        request_serializer: Optional[Serializer] = None,
        response_deserializer: Optional[Deserializer] = None,
    ) -> UnaryUnaryMultiCallable:
        return UnaryUnaryMultiCallable(self, method, request_serializer, response_deserializer)

    def unary_stream(
        self,
        method: str,
        request_serializer: Optional[Serializer] = None,
        response_deserializer: Optional[Deserializer] = None,
    ) -> UnaryStreamMultiCallable:
        return UnaryStreamMultiCallable(self, method, request_serializer, response_deserializer)

    def stream_unary(
        self,
        method: str,
        request_serializer: Optional[Serializer] = None,
        response_deserializer: Optional[Deserializer] = None,
    ) -> StreamUnaryMultiCallable:
        return StreamUnaryMultiCallable(self, method, request_serializer, response_deserializer)

    def stream_stream(
        self,
        method: str,
        request_serializer: Optional[Serializer] = None,
        response_deserializer: Optional[Deserializer] = None,
    ) -> StreamStreamMultiCallable:
        return StreamStreamMultiCallable(self, method, request_serializer, response_deserializer)

    def _multi_callable(
        self,
        kind: Cardinality,
        method: str,
        request_serializer: Serializer,
        response_deserializer: Deserializer,
    ) -> _MultiCallable:
        cls: type[_MultiCallable] = _MULTI_CALLABLES[kind]
        return cls(self, method, request_serializer, response_deserializer)


class _MultiCallable:
    """A method bound to a channel; calling it starts a call of ``_call_class``.

    The first argument is the request (unary-request kinds) or an optional iterable or async
    iterable of requests (streaming-request kinds; without one, use ``call.write()``).
    """

    _call_class: Callable[..., _ClientCall]

    def __init__(
        self,
        channel: Channel,
        method: str,
        request_serializer: Optional[Serializer],
        response_deserializer: Optional[Deserializer],
    ) -> None:
        if not method.startswith("/"):
            raise ValueError(f"method must be a path like /package.Service/Method: {method!r}")
        self._channel = channel
        self._method = method
        self._serializer = request_serializer or _identity
        self._deserializer = response_deserializer or _identity

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._method}>"

    def __call__(
        self, request: Any = None, *, timeout: Optional[float] = None, metadata: Any = None
    ) -> Any:
        return self._call_class(
            request,
            self._channel,
            self._method,
            self._serializer,
            self._deserializer,
            timeout=timeout,
            metadata=metadata,
        )


class UnaryUnaryMultiCallable(_MultiCallable):
    _call_class = UnaryUnaryCall


class UnaryStreamMultiCallable(_MultiCallable):
    _call_class = UnaryStreamCall


class StreamUnaryMultiCallable(_MultiCallable):
    _call_class = StreamUnaryCall


class StreamStreamMultiCallable(_MultiCallable):
    _call_class = StreamStreamCall


_MULTI_CALLABLES: dict[Cardinality, type[_MultiCallable]] = {
    Cardinality.UNARY_UNARY: UnaryUnaryMultiCallable,
    Cardinality.UNARY_STREAM: UnaryStreamMultiCallable,
    Cardinality.STREAM_UNARY: StreamUnaryMultiCallable,
    Cardinality.STREAM_STREAM: StreamStreamMultiCallable,
}
