"""The client channel: one target, a lazily opened HTTP/2 connection, and multi-callables.

A channel holds one connection at a time and opens a new one when the current one is lost or
draining after a GOAWAY, so new calls go to a fresh connection while in-flight ones finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl
import time
from collections.abc import Sequence
from typing import Any, Callable, Optional

from codec import StatusCode, is_supported_encoding
from transport import (
    AsyncConnection,
    ConnectionClosedError,
    ConnectionOptions,
    connect,
    parse_address,
)

from ._backoff import Backoff, BackoffOptions
from ._call import (
    StreamStreamCall,
    StreamUnaryCall,
    UnaryStreamCall,
    UnaryUnaryCall,
    _ClientCall,
)
from ._errors import RpcError
from ._handlers import Cardinality, Deserializer, Serializer, _identity
from ._options import (
    CHANNEL_GRPC_OPTIONS,
    DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
    merge_grpc_options,
    size_limit,
)
from ._options import connection_options as connection_options_from
from ._tls import require_alpn_h2
from ._version import USER_AGENT

log = logging.getLogger(__name__)

ENHANCE_YOUR_CALM = 0xB


class Channel:
    """An async channel to one target: ``host:port``, ``[v6]:port`` or ``unix:path``.

    Options use grpcio's names and units (seconds, bytes); grpcio's ``options=[("grpc.xxx", v)]``
    form is accepted too. A size limit of ``-1`` or ``None`` means unlimited. See the README for
    the table of options.
    """

    def __init__(
        self,
        target: str,
        *,
        max_receive_message_length: Optional[int] = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
        max_send_message_length: Optional[int] = None,
        max_metadata_size: Optional[int] = None,
        compression: Optional[str] = None,
        keepalive_time: Optional[float] = None,
        keepalive_timeout: Optional[float] = None,
        keepalive_permit_without_calls: Optional[bool] = None,
        initial_reconnect_backoff: Optional[float] = None,
        max_reconnect_backoff: Optional[float] = None,
        min_connect_timeout: Optional[float] = None,
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
            "max_metadata_size": max_metadata_size,
            "keepalive_time": keepalive_time,
            "keepalive_timeout": keepalive_timeout,
            "keepalive_permit_without_calls": keepalive_permit_without_calls,
            "initial_reconnect_backoff": initial_reconnect_backoff,
            "max_reconnect_backoff": max_reconnect_backoff,
            "min_connect_timeout": min_connect_timeout,
            "user_agent": user_agent,
            "authority": authority,
            "server_hostname": server_hostname,
        }
        merge_grpc_options(settings, options, CHANNEL_GRPC_OPTIONS, "channel")
        if compression == "identity":
            compression = None
        if not is_supported_encoding(compression):
            raise ValueError(f"unsupported compression {compression!r}: use gzip or deflate")
        self.target = target
        self._address = parse_address(target)
        self._authority: str = settings["authority"] or self._address.authority
        self._scheme = "https" if ssl_context is not None else "http"
        self._ssl = None if ssl_context is None else require_alpn_h2(ssl_context)
        self._server_hostname = settings["server_hostname"]
        self._compression = compression
        self._max_receive_message_length = size_limit(settings["max_receive_message_length"])
        self._max_send_message_length = size_limit(settings["max_send_message_length"])
        agent = settings["user_agent"]
        self._user_agent = f"{agent} {USER_AGENT}" if agent else USER_AGENT
        self._connection_options = connection_options_from(connection_options, settings)
        backoff = {
            name: settings[key]
            for key, name in (
                ("initial_reconnect_backoff", "initial_backoff"),
                ("max_reconnect_backoff", "max_backoff"),
                ("min_connect_timeout", "min_connect_timeout"),
            )
            if settings[key] is not None
        }
        self._backoff = Backoff(BackoffOptions(**backoff))
        self._retry_at = 0.0  # after a failed attempt: no new attempt before this (monotonic)
        self._last_failure: Optional[RpcError] = None
        self._conn: Optional[AsyncConnection] = None
        self._connecting: Optional[asyncio.Future[AsyncConnection]] = None
        self._closed = False

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self, grace: Optional[float] = None) -> None:
        """Close the channel; calls still in flight fail UNAVAILABLE (after ``grace`` seconds)."""
        self._closed = True
        conn, self._conn = self._conn, None
        if self._connecting is not None:
            self._connecting.cancel()
        if conn is None:
            return
        if grace:
            conn.close_when_idle()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(conn.wait_closed(), grace)
        conn.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(conn.wait_closed(), 5.0)

    async def channel_ready(self) -> None:
        """Wait until the channel is connected (retrying with backoff, like wait-for-ready)."""
        await self._get_connection(wait_for_ready=True)

    async def _get_connection(self, wait_for_ready: bool = False) -> AsyncConnection:
        """The connection to use for a new call, connecting (or reconnecting) as needed.

        A call that is not wait-for-ready fails at once with UNAVAILABLE while the channel is
        backing off after a failed attempt (gRPC's TRANSIENT_FAILURE); a wait-for-ready call waits
        for the next attempt instead, until it succeeds or the call's deadline passes.
        """
        while True:
            conn = self._conn
            if conn is not None and conn.is_usable:
                return conn
            if self._closed:
                raise RpcError(StatusCode.CANCELLED, "channel is closed")
            if conn is not None:
                self._retire(conn)
            if self._connecting is None:
                delay = self._retry_at - time.monotonic()
                if delay > 0:
                    if not wait_for_ready and self._last_failure is not None:
                        raise self._last_failure
                    await asyncio.sleep(delay)
                    continue
                self._connecting = asyncio.ensure_future(self._connect())
            try:
                return await asyncio.shield(self._connecting)
            except RpcError:
                if not wait_for_ready:
                    raise

    def _retire(self, conn: AsyncConnection) -> None:
        """Stop using a lost or draining connection; its in-flight calls may finish."""
        self._conn = None
        if (
            conn.goaway_error_code == ENHANCE_YOUR_CALM
            and conn.goaway_debug_data == b"too_many_pings"
        ):
            # gRPC clients double their keepalive interval when a server says they ping too much.
            options = self._connection_options
            if options.keepalive_time is not None:
                log.warning("server %s said too_many_pings: keepalive time doubled", self.target)
                self._connection_options = dataclasses.replace(
                    options, keepalive_time=options.keepalive_time * 2
                )
        conn.close_when_idle()

    async def _connect(self) -> AsyncConnection:
        try:
            conn = await asyncio.wait_for(
                connect(
                    self._address,
                    options=self._connection_options,
                    ssl=self._ssl,
                    server_hostname=self._server_hostname,
                ),
                self._backoff.connect_timeout(),
            )
        except (OSError, asyncio.TimeoutError, ConnectionClosedError) as exc:
            reason = str(exc) or type(exc).__name__
            self._last_failure = RpcError(
                StatusCode.UNAVAILABLE, f"failed to connect to {self.target}: {reason}"
            )
            self._retry_at = time.monotonic() + self._backoff.next_delay()
            raise self._last_failure from None
        finally:
            self._connecting = None
        if self._closed:
            conn.close()
            raise RpcError(StatusCode.CANCELLED, "channel is closed")
        self._backoff.reset()
        self._retry_at = 0.0
        self._last_failure = None
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
        self,
        request: Any = None,
        *,
        timeout: Optional[float] = None,
        metadata: Any = None,
        compression: Optional[str] = None,
        wait_for_ready: Optional[bool] = None,
    ) -> Any:
        return self._call_class(
            request,
            self._channel,
            self._method,
            self._serializer,
            self._deserializer,
            timeout=timeout,
            metadata=metadata,
            compression=compression,
            wait_for_ready=wait_for_ready,
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
