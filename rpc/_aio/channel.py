"""The client channel: a target, its subchannels' HTTP/2 connections, and multi-callables.

The decisions (which connection a call takes, when to connect, resolve, give up) are the
balancer's (``rpc.client``, through ``ChannelCore``); this shell performs its commands with tasks
and timers and makes the calls that find no connection wait for the picker to change. A
connection lost or draining after a GOAWAY is replaced for new calls while in-flight ones finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterable, Iterable
from typing import TYPE_CHECKING, Any, Generic, Optional, Union

from codec import StatusCode
from transport import AsyncConnection, connect

from .._core.channel import ChannelCore, MultiCallableBase, PinnedConnection, no_call_credentials
from .._errors import RpcError
from .._handlers import Cardinality, _identity
from ..client.balancer import CONNECT_TO, RESOLVE, STOP_HEALTH, TIMER, WATCH_HEALTH
from ..client.connectivity import ChannelConnectivity
from ..client.health import WATCH_METHOD
from ..client.subchannel import Subchannel
from .call import (
    RequestT,
    ResponseT,
    StreamStreamCall,
    StreamUnaryCall,
    UnaryStreamCall,
    UnaryUnaryCall,
)


class Channel(ChannelCore):
    """An async channel to a target (``host:port``, ``dns:///host:port``, ``ipv4:a:p,b:p``,
    ``unix:path``, ...; see the README's "Targets and load balancing").

    Options use grpcio's names and units (seconds, bytes); grpcio's ``options=[("grpc.xxx", v)]``
    form is accepted too. A size limit of ``-1`` or ``None`` means unlimited. See the README for
    the table of options.
    """

    _conn: Optional[AsyncConnection]

    def _setup(self) -> None:
        self._changed: Optional[asyncio.Future[None]] = None
        self._tasks: set[asyncio.Future[Any]] = set()
        self._timers: set[asyncio.TimerHandle] = set()

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self, grace: Optional[float] = None) -> None:
        """Close the channel; calls still in flight fail UNAVAILABLE (after ``grace`` seconds)."""
        self._closed = True
        conns = self._balance(self._balancer.shutdown)
        for task in list(self._tasks):
            task.cancel()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if not conns:
            return
        if grace:
            for conn in conns:
                conn.close_when_idle()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(conn.wait_closed() for conn in conns)), grace
                )
        for conn in conns:
            conn.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(conn.wait_closed() for conn in conns)), 5.0)

    async def channel_ready(self) -> None:
        """Wait until the channel is connected (retrying with backoff, like wait-for-ready), as
        grpc.aio's does: bound it with ``asyncio.wait_for``. RpcError CANCELLED if the channel
        is closed meanwhile."""
        await self.connection(wait_for_ready=True)

    async def wait_for_state_change(self, last_observed_state: ChannelConnectivity) -> None:
        """Return once the state differs from ``last_observed_state`` (grpc.aio's; bound it
        with ``asyncio.wait_for``)."""
        while self.get_state() is last_observed_state:
            await self._wait_for_change()

    async def _wait_for_change(self) -> None:
        changed = self._changed
        if changed is None:
            changed = self._changed = asyncio.get_running_loop().create_future()
        await asyncio.shield(changed)

    def _state_changed(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)

    async def connection(self, wait_for_ready: bool = False) -> AsyncConnection:
        """The connection for a new call, as the load balancing policy picks it.

        The calls' ``ConnectionSource``: RpcError UNAVAILABLE in TRANSIENT_FAILURE (unless
        ``wait_for_ready``), CANCELLED once the channel is closed. It drives the core's
        ``_connection`` program, waiting for the picker to change when there is no connection.
        """
        conn = self._conn
        if conn is not None and conn.is_usable:
            return conn  # the common case, without starting the program
        program = self._connection(wait_for_ready)
        while True:
            try:
                program.send(None)
            except StopIteration as stop:
                self._perform_commands()
                return stop.value  # type: ignore[no-any-return]
            except BaseException:
                self._perform_commands()
                raise
            self._perform_commands()
            await self._wait_for_change()  # WAIT_FOR_PICKER

    # ------------------------------------------------------------------ balancer commands

    def _perform(self, command: tuple[Any, ...]) -> None:
        op = command[0]
        if op == TIMER:
            loop = asyncio.get_running_loop()
            delay = max(0.0, command[1] - time.monotonic())
            key = command[2]

            def fire() -> None:
                self._timers.discard(handle)
                self._balance(self._balancer.timer_fired, key)

            handle = loop.call_later(delay, fire)
            self._timers.add(handle)
        elif op == CONNECT_TO:
            self._start(self._attempt(command[1]))
        elif op == RESOLVE:
            self._start(self._resolve())
        elif op == WATCH_HEALTH:
            subchannel, conn = command[1], command[2]
            call: UnaryStreamCall[bytes] = UnaryStreamCall(
                Cardinality.UNARY_STREAM,
                self._health_request(),
                _Pinned(self.settings, conn),
                WATCH_METHOD,
                _identity,
                _identity,
                timeout=None,
                metadata=None,
            )
            subchannel.health_call = call
            self._start(self._watch_health(subchannel, conn, call))
        elif op == STOP_HEALTH:
            command[1].cancel()

    def _start(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attempt(self, subchannel: Subchannel) -> None:
        def closed(conn: AsyncConnection) -> None:
            self._connection_closed(subchannel, conn)

        try:
            conn = await asyncio.wait_for(
                connect(
                    subchannel.address,
                    options=self._connection_options,
                    ssl=self._ssl,
                    server_hostname=self._server_hostname,
                    on_closed=closed,
                ),
                self._connect_timeout(subchannel),
            )
        except Exception as exc:  # refused, timed out, TLS, not HTTP/2...: this attempt failed
            self._connect_failed(subchannel, exc)
            return
        self._connected(subchannel, conn)

    async def _resolve(self) -> None:
        lookup = self._lookup()
        loop = asyncio.get_running_loop()
        try:
            if lookup is not None:
                infos = await loop.getaddrinfo(*lookup, type=socket.SOCK_STREAM)
                results: Any = self._dns_addresses(infos)
            else:
                results = await loop.run_in_executor(None, self._resolver.resolve, self._target)
        except Exception as exc:
            self._resolution_done(None, exc)
            return
        self._resolution_done(results)

    async def _watch_health(
        self, subchannel: Subchannel, conn: AsyncConnection, call: UnaryStreamCall[bytes]
    ) -> None:
        code, why = StatusCode.OK, "the health service ended the Watch"
        try:
            async for response in call:
                self._health_answer(subchannel, conn, response)
        except RpcError as exc:
            code, why = exc.code(), exc.details()
        except Exception as exc:
            code, why = StatusCode.UNKNOWN, repr(exc)
        self._health_ended(subchannel, conn, code, why)


class _Pinned(PinnedConnection):
    async def connection(self, wait_for_ready: bool) -> AsyncConnection:
        return self.pinned()  # type: ignore[no-any-return]


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
