"""The client channel: one target, a lazily opened HTTP/2 connection, and multi-callables.

A channel holds one connection at a time and opens a new one when the current one is lost or
draining after a GOAWAY, so new calls go to a fresh connection while in-flight ones finish.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, Iterable
from typing import TYPE_CHECKING, Any, Generic, Optional, Union

from codec import StatusCode
from transport import AsyncConnection, ConnectionClosedError, connect

from .._core.channel import ChannelCore, MultiCallableBase, no_call_credentials
from .._core.client_call import PAUSE
from .._errors import RpcError
from .._handlers import Cardinality
from .call import (
    RequestT,
    ResponseT,
    StreamStreamCall,
    StreamUnaryCall,
    UnaryStreamCall,
    UnaryUnaryCall,
)


class Channel(ChannelCore):
    """An async channel to one target: ``host:port``, ``[v6]:port`` or ``unix:path``.

    Options use grpcio's names and units (seconds, bytes); grpcio's ``options=[("grpc.xxx", v)]``
    form is accepted too. A size limit of ``-1`` or ``None`` means unlimited. See the README for
    the table of options.
    """

    _conn: Optional[AsyncConnection]

    def _setup(self) -> None:
        self._connecting: Optional[asyncio.Future[AsyncConnection]] = None

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
            # The attempt may end anyway (asyncio.wait_for returns a result that arrives with
            # the cancellation); _connected then closes that connection and raises CANCELLED.
            # Nobody awaits the attempt any more: take its outcome, or asyncio logs "Task
            # exception was never retrieved".
            self._connecting.add_done_callback(_take_outcome)
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
        """Wait until the channel is connected (retrying with backoff, like wait-for-ready), as
        grpc.aio's does: bound it with ``asyncio.wait_for``. RpcError CANCELLED if the channel
        is closed meanwhile."""
        await self.connection(wait_for_ready=True)

    async def connection(self, wait_for_ready: bool = False) -> AsyncConnection:
        """The connection for a new call, connecting (or reconnecting) as the policy says.

        The calls' ``ConnectionSource``: RpcError UNAVAILABLE while backing off after a failed
        attempt (unless ``wait_for_ready``), CANCELLED once the channel is closed. It drives the
        core's ``_connection`` program; one attempt at a time, shared by the calls that wait.
        """
        conn = self._conn
        if conn is not None and conn.is_usable:
            return conn  # the common case, without starting the program
        program = self._connection(wait_for_ready)
        result: Any = None
        error: Optional[Exception] = None
        while True:
            try:
                if error is None:
                    command = program.send(result)
                else:
                    command = program.throw(error)
                    error = None
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
            try:
                if command[0] == PAUSE:
                    await asyncio.sleep(command[1])
                    result = None
                else:  # CONNECT
                    result = await self._attempt()
            except Exception as exc:
                error = exc

    async def _attempt(self) -> AsyncConnection:
        """Join the connection attempt under way, or start one."""
        connecting = self._connecting
        if connecting is None:
            connecting = self._connecting = asyncio.ensure_future(self._connect())
        try:
            return await asyncio.shield(connecting)
        except asyncio.CancelledError:
            if connecting.cancelled() and self._closed:  # close() stopped the attempt
                raise RpcError(StatusCode.CANCELLED, "channel is closed") from None
            raise  # we were cancelled

    async def _connect(self) -> AsyncConnection:
        try:
            try:
                conn = await asyncio.wait_for(
                    connect(
                        self._address,
                        options=self._connection_options,
                        ssl=self._ssl,
                        server_hostname=self._server_hostname,
                    ),
                    self._connect_timeout(),
                )
            except (OSError, asyncio.TimeoutError, ConnectionClosedError) as exc:
                raise self._connect_failed(exc) from None
            connected: AsyncConnection = self._connected(conn)
            return connected
        finally:
            self._connecting = None


class _MultiCallable(MultiCallableBase):
    """A method bound to a channel; calling it starts a call of ``_call_class``.

    The first argument is the request (unary-request kinds) or an optional iterable or async
    iterable of requests (streaming-request kinds; without one, use ``call.write()``).
    """

    _call_class: type[
        UnaryUnaryCall[Any]
        | UnaryStreamCall[Any]
        | StreamUnaryCall[Any, Any]
        | StreamStreamCall[Any, Any]
    ]
    _kind: Cardinality

    _channel: Channel

    def __call__(
        self,
        request: Any = None,
        timeout: Optional[float] = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: Optional[bool] = None,
        compression: Optional[str] = None,
    ) -> Any:
        # grpcio's parameters in grpcio's order. ``credentials`` is accepted for compatibility:
        # anything but None is an error (h2rpc has no call credentials).
        if credentials is not None:
            raise no_call_credentials(credentials)
        return self._call_class(
            self._kind,
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


class UnaryUnaryMultiCallable(_MultiCallable, Generic[RequestT, ResponseT]):
    """One request, one response: ``await stub.M(request)``; generic in both message types."""

    _call_class = UnaryUnaryCall
    _kind = Cardinality.UNARY_UNARY

    if TYPE_CHECKING:  # the signature of this kind (the shared __call__ takes every kind's)

        def __call__(  # type: ignore[override]
            self,
            request: RequestT,
            timeout: Optional[float] = None,
            metadata: Any = None,
            credentials: Any = None,
            wait_for_ready: Optional[bool] = None,
            compression: Optional[str] = None,
        ) -> UnaryUnaryCall[ResponseT]: ...


class UnaryStreamMultiCallable(_MultiCallable, Generic[RequestT, ResponseT]):
    """One request, a stream of responses: ``async for response in stub.M(request)``."""

    _call_class = UnaryStreamCall
    _kind = Cardinality.UNARY_STREAM

    if TYPE_CHECKING:  # the signature of this kind (the shared __call__ takes every kind's)

        def __call__(  # type: ignore[override]
            self,
            request: RequestT,
            timeout: Optional[float] = None,
            metadata: Any = None,
            credentials: Any = None,
            wait_for_ready: Optional[bool] = None,
            compression: Optional[str] = None,
        ) -> UnaryStreamCall[ResponseT]: ...


class StreamUnaryMultiCallable(_MultiCallable, Generic[RequestT, ResponseT]):
    """A stream of requests (an iterable, or ``write()``), one response: ``await stub.M(it)``."""

    _call_class = StreamUnaryCall
    _kind = Cardinality.STREAM_UNARY

    if TYPE_CHECKING:  # the signature of this kind (the shared __call__ takes every kind's)

        def __call__(
            self,
            request: Optional[Union[Iterable[RequestT], AsyncIterable[RequestT]]] = None,
            timeout: Optional[float] = None,
            metadata: Any = None,
            credentials: Any = None,
            wait_for_ready: Optional[bool] = None,
            compression: Optional[str] = None,
        ) -> StreamUnaryCall[RequestT, ResponseT]: ...


class StreamStreamMultiCallable(_MultiCallable, Generic[RequestT, ResponseT]):
    """Streams both ways: ``call = stub.M(requests)`` (or ``stub.M()`` and ``call.write()``)."""

    _call_class = StreamStreamCall
    _kind = Cardinality.STREAM_STREAM

    if TYPE_CHECKING:  # the signature of this kind (the shared __call__ takes every kind's)

        def __call__(
            self,
            request: Optional[Union[Iterable[RequestT], AsyncIterable[RequestT]]] = None,
            timeout: Optional[float] = None,
            metadata: Any = None,
            credentials: Any = None,
            wait_for_ready: Optional[bool] = None,
            compression: Optional[str] = None,
        ) -> StreamStreamCall[RequestT, ResponseT]: ...


_MULTI_CALLABLES: dict[Cardinality, type[_MultiCallable]] = {
    Cardinality.UNARY_UNARY: UnaryUnaryMultiCallable,
    Cardinality.UNARY_STREAM: UnaryStreamMultiCallable,
    Cardinality.STREAM_UNARY: StreamUnaryMultiCallable,
    Cardinality.STREAM_STREAM: StreamStreamMultiCallable,
}
Channel._multi_callables = _MULTI_CALLABLES


def _take_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()
