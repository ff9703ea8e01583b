"""The blocking client: ``rpc.sync.Channel``, its calls and futures.

Plain function calls, as grpcio's synchronous API gives them: a unary call returns its reply, a
server stream is an iterator, a client stream takes any iterable, ``.future()`` gives a
``grpc.Future``. Every protocol decision is the cores' (``rpc._core``); this module adds only the
waiting, on a thread-driven transport (``transport.blocking``): a reader thread per connection,
a locked writer.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, Optional

from codec import Metadata, Status, StatusCode
from transport import ConnectionClosedError, TransportError
from transport.blocking import BlockingConnection, BlockingStream, connect_blocking

from .._core.channel import ChannelCore, MultiCallableBase, no_call_credentials
from .._core.client_call import CANCEL, MAX_TRANSPARENT_RETRIES, ClientCallCore
from .._core.messages import EOF
from .._errors import RpcError
from .._handlers import Cardinality, Deserializer, Serializer
from .future_base import FutureBase, TaskThread

log = logging.getLogger(__name__)


class Channel(ChannelCore):
    """A blocking channel: a context manager whose calls block the calling thread.

    Safe to share between threads: calls from many threads go out concurrently on one HTTP/2
    connection. Options are those of ``rpc.Channel``.
    """

    def _setup(self) -> None:
        self._conn: Optional[BlockingConnection] = None
        self._lock = threading.Lock()
        #: Where this channel's futures advance (``.future()``), and where their callbacks run.
        self._future_tasks = TaskThread("h2rpc-futures")
        self._future_callbacks = TaskThread("h2rpc-future-callbacks")

    def __enter__(self) -> Channel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; calls still in flight fail UNAVAILABLE."""
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
            conn.wait_closed(5.0)

    def channel_ready(self, timeout: Optional[float] = None) -> None:
        """Block until connected (retrying with backoff), or RpcError after ``timeout``.

        ``rpc.sync.channel_ready_future(channel)`` is the grpcio-style form.
        """
        end = None if timeout is None else time.monotonic() + timeout
        self._get_connection(wait_for_ready=True, deadline=end)

    def _ready_connection(self) -> Optional[BlockingConnection]:
        """The connection if a new call may use it now (no connecting, no waiting), else None."""
        conn = self._conn
        if conn is not None and conn.is_usable and not self._closed:
            return conn
        return None

    def _get_connection(
        self,
        wait_for_ready: bool,
        deadline: Optional[float],
        call: Optional[ClientCallCore] = None,
    ) -> BlockingConnection:
        """The connection for a new call; one thread connects while the others wait for it.

        A ``call`` that ends meanwhile (cancelled from another thread) stops the waiting.
        """
        while True:
            with self._lock:
                conn = self._conn
                if conn is not None and conn.is_usable:
                    return conn
                if call is not None and call._status is not None:
                    raise RpcError(StatusCode.CANCELLED, "Locally cancelled by application!")
                if conn is not None:
                    self._conn = None
                    session = conn.session
                    self._learn_from_goaway(session.goaway_error_code, session.goaway_debug_data)
                    conn.close_when_idle()  # its in-flight calls may finish
                delay = self._connect_delay(wait_for_ready)
                if delay <= 0:
                    try:
                        return self._connect(deadline)
                    except RpcError:
                        if not wait_for_ready:
                            raise
                        continue
            if deadline is not None and time.monotonic() + delay >= deadline:
                time.sleep(max(0.0, deadline - time.monotonic()))
                raise RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
            time.sleep(delay)

    def _connect(self, deadline: Optional[float]) -> BlockingConnection:
        timeout = self._connect_timeout()
        if deadline is not None:
            timeout = max(0.001, min(timeout, deadline - time.monotonic()))
        try:
            conn = connect_blocking(
                self._address,
                options=self._connection_options,
                ssl=self._ssl,
                server_hostname=self._server_hostname,
                timeout=timeout,
            )
        except (OSError, TimeoutError, ConnectionClosedError, ssl.SSLError) as exc:
            raise self._connect_failed(exc) from None
        self._connected()
        self._conn = conn
        return conn


class Call(ClientCallCore):
    """A blocking call: iterate it for a response stream; metadata, status and ``cancel()``.

    Every wait is bounded by the call's deadline; ``cancel()`` may come from any thread.
    """

    _channel: Channel

    def __init__(
        self,
        kind: Cardinality,
        first: Any,
        channel: Channel,
        path: str,
        serializer: Serializer,
        deserializer: Deserializer,
        **kwargs: Any,
    ) -> None:
        super().__init__(channel, path, serializer, deserializer, **kwargs)
        self._kind = kind
        self._request = first
        self._sent = False
        self._lock = threading.RLock()
        self._writer: Optional[threading.Thread] = None
        self._writer_stop = threading.Event()

    # ------------------------------------------------------------------ public

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        message = self.read()
        if message is EOF:
            raise StopIteration
        return message

    def read(self) -> Any:
        """The next response, or ``rpc.EOF`` at the end of an OK stream."""
        self._send_requests()
        return self._read()

    def result(self) -> Any:
        """The single response of a unary-response call."""
        self._send_requests()
        first = self._read()
        return self._single_from(first, self._read() if first is not EOF else EOF)

    def initial_metadata(self) -> Metadata:
        with contextlib.suppress(RpcError):
            self._receive_head()
        return self._initial_metadata if self._initial_metadata is not None else Metadata()

    def trailing_metadata(self) -> Metadata:
        return self._wait_status().metadata

    def code(self) -> StatusCode:
        return self._wait_status().code

    def details(self) -> str:
        return self._wait_status().message

    def is_active(self) -> bool:
        return self._status is None

    # ------------------------------------------------------------------ sending

    def _remaining(self) -> Optional[float]:
        if self._deadline is None:
            return None
        left = self._deadline - time.monotonic()
        if left <= 0:
            self._deadline_exceeded()
            raise self._rpc_error()
        return left

    def _get_stream(self) -> BlockingStream:
        with self._lock:
            if self._stream is not None:
                assert isinstance(self._stream, BlockingStream)
                return self._stream
            if self._status is not None:
                raise self._rpc_error()
            stream = self._open()
            self._stream = stream
            return stream

    def _open(self) -> BlockingStream:
        for attempt in range(MAX_TRANSPARENT_RETRIES + 1):
            try:
                conn = self._channel._get_connection(self._wait_for_ready, self._deadline, self)
                # A unary request's HEADERS wait for its DATA: one send for both.
                return conn.open_stream(
                    self._headers,
                    timeout=self._remaining(),
                    flush=self._kind.request_streaming,
                )
            except ConnectionClosedError as exc:
                if attempt == MAX_TRANSPARENT_RETRIES:
                    self._finish(self._status_from(exc))
                    raise self._rpc_error() from None
            except TimeoutError:
                self._deadline_exceeded()
                raise self._rpc_error() from None
            except RpcError as exc:
                self._finish(self._status_from(exc))
                raise self._rpc_error() from None
        raise AssertionError("unreachable")

    def _write(self, message: Any, *, end: bool = False) -> None:
        stream = self._get_stream()
        if self._status is not None:
            raise self._rpc_error()
        if self._response_complete(stream):
            return
        data = self._frame(message, True)
        try:
            stream.send_data(data, end_stream=end, timeout=self._remaining())
        except TimeoutError:
            self._deadline_exceeded()
            raise self._rpc_error() from None
        except TransportError as exc:
            if self._response_complete(stream):
                return
            raise self._write_failed(stream, exc) from None

    def _send_requests(self) -> None:
        if self._sent:
            return
        self._sent = True
        if not self._kind.request_streaming:
            self._write(self._request, end=True)
        else:
            self._get_stream()
            self._writer = threading.Thread(
                target=self._consume_requests, name="h2rpc-request-writer", daemon=True
            )
            self._writer.start()

    def _consume_requests(self) -> None:
        requests: Iterable[Any] = self._request if self._request is not None else ()
        try:
            for message in requests:
                if self._writer_stop.is_set() or self._status is not None:
                    return
                self._write(message)
            stream = self._get_stream()
            self._done_writing = True
            if self._status is None and not stream.local_closed:
                with contextlib.suppress(TransportError):
                    stream.end()
        except RpcError:
            pass  # the response side reports the status
        except Exception as exc:  # the application's iterator failed
            self._finish(
                Status(StatusCode.UNKNOWN, f"Exception iterating requests: {exc!r}"), CANCEL
            )

    def _replayable(self) -> bool:
        return not self._kind.request_streaming

    # ------------------------------------------------------------------ receiving

    def _receive_head(self) -> None:
        if self._initial_metadata is not None or self._status is not None:
            return
        self._send_requests()
        while True:
            stream = self._get_stream()
            try:
                headers = stream.receive_response_headers(timeout=self._remaining())
            except TimeoutError:
                self._deadline_exceeded()
                return
            except TransportError as exc:
                pause = self._retry_pause(exc)
                if pause is None:
                    return
                time.sleep(pause)
                self._sent = False
                self._send_requests()
                continue
            self._on_response_head(stream, headers)
            return

    def _read(self) -> Any:
        if not self._messages and self._status is None:
            self._receive_head()
            while self._needs_data():
                stream = self._stream
                assert isinstance(stream, BlockingStream)
                try:
                    chunk = stream.read(timeout=self._remaining())
                except TimeoutError:
                    self._deadline_exceeded()
                    break
                except TransportError as exc:
                    self._on_read_error(exc)
                    break
                self._on_chunk(chunk)
        return self._next_message()

    def _wait_status(self) -> Status:
        while self._status is None:
            self._messages.clear()
            with contextlib.suppress(RpcError):
                self._read()
        return self._status

    def _finish(self, status: Status, reset_code: Optional[int] = None) -> None:
        with self._lock:  # cancel() may race the reading thread
            super()._finish(status, reset_code)

    def _on_finished(self) -> None:
        self._writer_stop.set()


_NOTHING: Any = object()  # no response message taken yet


class _FutureWaiter(threading.Condition):
    """A future's stream waiter: news for the stream (the connection's reader thread wakes its
    waiter) also has the call advanced on the channel's task thread."""

    def __init__(self, lock: Any, call: CallFuture) -> None:
        super().__init__(lock)
        self.call: Optional[CallFuture] = call

    def notify_all(self) -> None:
        super().notify_all()
        call = self.call
        if call is not None:
            call._schedule_advance()


class CallFuture(FutureBase, Call):
    """What ``.future()`` returns: a ``grpc.Future`` of the single response, and the call.

    ``result(timeout)`` gives the response or raises the call's ``RpcError`` (which carries its
    code, details and metadata); ``exception()``, ``traceback()``, ``add_done_callback(fn)``,
    ``cancel()``, ``cancelled()``, ``running()``, ``done()`` behave as grpcio's. As a call it has
    ``initial_metadata()``, ``trailing_metadata()``, ``code()``, ``details()`` (these wait),
    ``time_remaining()`` and ``is_active()``.

    No thread of its own waits for the call: the connection's reader thread wakes the stream's
    waiter, which queues the call on the channel's task thread (one per channel, started when
    needed), where everything that has arrived is taken in without waiting; the deadline is a
    timer there. Done callbacks run on a second thread of the channel, so that a callback that
    waits for another future cannot stall the first one. Threads are used only where something
    must block: connecting, or waiting for a free stream slot, before the request can go out
    (a short-lived thread until the stream is open; on a connected channel there is none), and
    sending a request stream (its writer thread, as for a blocking call).
    """

    _channel: Channel

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        channel = self._channel
        self._init_future(self._lock, channel._future_callbacks)
        self._tasks = channel._future_tasks
        self._first: Any = _NOTHING
        self._advance_queued = False
        self._timer: Any = None
        self._data: Optional[bytes] = None  # the framed request (kept for a transparent retry)

    # ------------------------------------------------------------------ grpc.Future and call

    def cancel(self) -> bool:
        """Cancel the call (RST_STREAM(CANCEL)); False if it is already done."""
        with self._lock:
            if self.done() or not ClientCallCore.cancel(self):
                return False
            self._set_outcome(cancelled=True)
            self._unwatch()
        return True

    def initial_metadata(self) -> Metadata:
        with self._future_cond:
            self._future_cond.wait_for(
                lambda: self._initial_metadata is not None or self._status is not None
            )
        return self._initial_metadata if self._initial_metadata is not None else Metadata()

    def read(self) -> Any:
        raise TypeError("a future has a single response: use result()")

    __iter__ = None  # type: ignore[assignment]  # not an iterator of responses

    def _wait_status(self) -> Status:
        """The call's ``code()``, ``details()`` and ``trailing_metadata()`` wait for the outcome
        the channel's task thread sets, instead of driving the call themselves."""
        with self._future_cond:
            self._future_cond.wait_for(self.done)
        assert self._status is not None
        return self._status

    # ------------------------------------------------------------------ starting

    def _begin(self) -> None:
        """Start the call (``future()`` returns right after)."""
        if self._deadline is not None:
            self._timer = self._tasks.call_at(self._deadline, self._on_deadline)
        if self._kind.request_streaming:
            self._writer = threading.Thread(
                target=self._write_request_stream, name="h2rpc-request-writer", daemon=True
            )
            self._writer.start()
            return
        try:
            self._data = self._frame(self._request, True)
        except RpcError:
            return  # the call is over; its status is the outcome
        except Exception as exc:  # grpcio's wording
            self._finish(Status(StatusCode.INTERNAL, f"Exception serializing request: {exc!r}"))
            return
        self._launch()

    def _launch(self) -> None:
        """Open the stream and queue the request: at once on a connected channel with a free
        stream slot, else on a short-lived thread (connecting or waiting for a slot blocks)."""
        if self._status is not None:
            return
        conn = self._channel._ready_connection()
        if conn is not None:
            try:
                stream = conn.open_stream(self._headers, timeout=0.0, flush=False)
            except (TimeoutError, TransportError):
                pass  # no free slot, or the connection just went: the thread will see
            else:
                if self._adopt(stream):
                    self._send_request(stream)
                return
        thread = threading.Thread(target=self._start_blocking, name="h2rpc-future-start")
        thread.daemon = True
        thread.start()

    def _start_blocking(self) -> None:
        try:
            stream = self._get_stream()
        except RpcError:
            return  # the call is over; its status is the outcome
        except Exception as exc:  # a bug of ours: end the call, never leave it pending
            with self._lock:
                self._fail_internally(exc)
            return
        self._send_request(stream)

    def _fail_internally(self, exc: Exception) -> None:
        log.error("future of %s failed", self._path, exc_info=exc)
        self._finish(Status(StatusCode.INTERNAL, f"internal error: {exc!r}"), CANCEL)
        self._set_outcome(error=self._rpc_error())

    def _get_stream(self) -> BlockingStream:
        # Opened without holding the call's lock (connecting may take long: cancel() and the
        # deadline timer must not wait for it); only one thread at a time opens a future's stream.
        stream = self._stream
        if stream is not None:
            assert isinstance(stream, BlockingStream)
            return stream
        if self._status is not None:
            raise self._rpc_error()
        stream = self._open()
        if not self._adopt(stream):
            raise self._rpc_error()
        return stream

    def _adopt(self, stream: BlockingStream) -> bool:
        """Make ``stream`` the call's and watch it; False (and reset) if the call is over."""
        with self._lock:
            if self._status is not None:
                stream.reset(CANCEL)
                return False
            self._stream = stream
        conn = stream.connection
        with conn.lock:
            stream.read_waiter = _FutureWaiter(conn.lock, self)
        self._schedule_advance()  # news that came before the waiter
        return True

    def _send_request(self, stream: BlockingStream) -> None:
        """Queue the framed request with END_STREAM; never waits for flow control (the reader
        thread sends the rest as the server's window opens)."""
        assert self._data is not None
        try:
            stream.send_data(self._data, end_stream=True, timeout=0.0)
        except TimeoutError:
            pass  # all queued; only the wait for it to drain timed out
        except TransportError:
            pass  # the stream failed: taking in the response tells why

    def _write_request_stream(self) -> None:
        """The writer thread of a request stream: open the stream, then send the requests."""
        try:
            self._get_stream()
        except RpcError:
            return
        self._consume_requests()

    # ------------------------------------------------------------------ advancing (task thread)

    def _schedule_advance(self) -> None:
        if not self._advance_queued:
            self._advance_queued = True
            self._tasks.call_soon(self._advance)

    def _on_deadline(self) -> None:
        with self._lock:  # only ever held briefly (never while connecting)
            if self._status is None:
                self._deadline_exceeded()

    def _on_finished(self) -> None:
        super()._on_finished()
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()
        self._schedule_advance()

    def _advance(self) -> None:
        """Take in whatever has arrived, without waiting; set the outcome once the call is over.

        The steps of ``Call.result()``, each done only if it need not wait: the response head,
        then messages up to the end of the stream; a transparent retry restarts the call.
        """
        self._advance_queued = False
        retry_after: Optional[float] = None
        with self._lock:
            if self.done():
                return
            try:
                while not self.done():
                    retry_after = self._take_arrived()
                    if retry_after is not None or (self._status is None and not self._messages):
                        break  # a retry is coming, or nothing more has arrived
                    self._take_messages()
            except RpcError as exc:
                self._set_outcome(error=exc)
            except Exception as exc:  # a bug of ours: end the call, never leave it pending
                self._fail_internally(exc)
            if self.done():
                self._unwatch()
        if retry_after is not None:
            self._tasks.call_at(time.monotonic() + retry_after, self._launch)

    def _take_arrived(self) -> Optional[float]:
        """Take the head and data that have arrived; the pause before a transparent retry, if
        the stream was refused. Stops at the first message, or when it would have to wait."""
        while self._status is None and not self._messages:
            stream = self._stream
            if stream is None:
                return None  # not open yet (starting, or a retry is coming)
            assert isinstance(stream, BlockingStream)
            if self._initial_metadata is None:
                try:
                    headers = stream.receive_response_headers(timeout=0.0)
                except TimeoutError:
                    return None
                except TransportError as exc:
                    pause = self._retry_pause(exc)
                    if pause is not None:
                        return pause
                    continue
                self._on_response_head(stream, headers)
                self._future_cond.notify_all()  # for initial_metadata()
                continue
            try:
                chunk = stream.read(timeout=0.0)
            except TimeoutError:
                return None
            except TransportError as exc:
                self._on_read_error(exc)
                continue
            self._on_chunk(chunk)
        return None

    def _take_messages(self) -> None:
        """The first and second reads of ``Call.result()``: the response, then the end."""
        if self._first is _NOTHING:
            self._first = self._next_message()
            if self._first is not EOF and self._status is None and not self._messages:
                return  # wait for the end of the stream
        second = self._next_message() if self._first is not EOF else EOF
        self._set_outcome(self._single_from(self._first, second))

    def _unwatch(self) -> None:
        """Done: the stream's waiter no longer needs the call (and keeps no cycle alive)."""
        stream = self._stream
        if stream is not None and isinstance(stream.read_waiter, _FutureWaiter):
            stream.read_waiter.call = None


class _ChannelReadyFuture(FutureBase):
    """``channel_ready_future(channel)``: done once the channel is connected."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._stop = threading.Event()
        self._init_future(threading.Lock(), channel._future_callbacks)
        if channel._ready_connection() is not None:
            self._set_outcome(None)
        else:  # connecting blocks: a thread of its own, until connected or cancelled
            threading.Thread(target=self._connect, name="h2rpc-channel-ready", daemon=True).start()

    def cancel(self) -> bool:
        """Stop waiting (the channel itself is not affected); False once it is connected."""
        if self._set_outcome(cancelled=True):
            self._stop.set()
            return True
        return False

    def _connect(self) -> None:
        channel = self._channel
        while not self._stop.is_set():
            try:
                channel._get_connection(wait_for_ready=False, deadline=None)
            except RpcError:
                if channel._closed:
                    return  # never ready: result() times out, as grpcio's does
                # Backing off after a failed attempt: the next one when the channel allows it.
                self._stop.wait(max(channel._retry_at - time.monotonic(), 0.01))
                continue
            self._set_outcome(None)
            return


def channel_ready_future(channel: Channel) -> FutureBase:
    """A future done once ``channel`` is connected (``grpc.channel_ready_future``).

    ``channel_ready_future(channel).result(timeout=5)`` waits up to 5 s (FutureTimeoutError
    after); it connects, retrying with the channel's backoff, until connected or cancelled.
    ``channel.channel_ready(timeout)`` is the direct form.
    """
    if not isinstance(channel, Channel):
        raise TypeError(
            f"channel_ready_future() takes an rpc.sync.Channel, not {type(channel).__name__} "
            "(with rpc.Channel, use 'await channel.channel_ready()')"
        )
    return _ChannelReadyFuture(channel)


class _MultiCallable(MultiCallableBase):
    """A method bound to a blocking channel."""

    _kind: Cardinality

    _channel: Channel

    def _start(
        self,
        first: Any,
        timeout: Optional[float],
        metadata: Any,
        compression: Optional[str],
        wait_for_ready: Optional[bool],
        credentials: Any = None,
        call_class: type[Call] = Call,
    ) -> Call:
        if credentials is not None:
            raise no_call_credentials(credentials)
        return call_class(
            self._kind,
            first,
            self._channel,
            self._method,
            self._serializer,
            self._deserializer,
            timeout=timeout,
            metadata=metadata,
            compression=compression,
            wait_for_ready=wait_for_ready,
        )


class _UnaryResponse(_MultiCallable):
    # grpcio's parameters, in grpcio's order (positional or keyword). ``credentials`` is accepted
    # for compatibility: anything but None is an error (h2rpc has no call credentials).

    def __call__(
        self,
        request: Any = None,
        timeout: Optional[float] = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: Optional[bool] = None,
        compression: Optional[str] = None,
    ) -> Any:
        """Make the call and return its response (RpcError if it fails)."""
        return self._start(
            request, timeout, metadata, compression, wait_for_ready, credentials
        ).result()

    def with_call(
        self,
        request: Any = None,
        timeout: Optional[float] = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: Optional[bool] = None,
        compression: Optional[str] = None,
    ) -> tuple[Any, Call]:
        """Like calling it, but also return the call (for its metadata and status)."""
        call = self._start(request, timeout, metadata, compression, wait_for_ready, credentials)
        return call.result(), call

    def future(
        self,
        request: Any = None,
        timeout: Optional[float] = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: Optional[bool] = None,
        compression: Optional[str] = None,
    ) -> CallFuture:
        """Start the call and return at once a ``CallFuture``: ``future.result(timeout)`` is the
        response (grpcio's ``future()``)."""
        call = self._start(
            request, timeout, metadata, compression, wait_for_ready, credentials, CallFuture
        )
        assert isinstance(call, CallFuture)
        call._begin()
        return call


class _StreamResponse(_MultiCallable):
    def __call__(
        self,
        request: Any = None,
        timeout: Optional[float] = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: Optional[bool] = None,
        compression: Optional[str] = None,
    ) -> Call:
        """Start the call; iterate the returned call for the responses."""
        return self._start(request, timeout, metadata, compression, wait_for_ready, credentials)


class UnaryUnaryMultiCallable(_UnaryResponse):
    _kind = Cardinality.UNARY_UNARY


class UnaryStreamMultiCallable(_StreamResponse):
    _kind = Cardinality.UNARY_STREAM


class StreamUnaryMultiCallable(_UnaryResponse):
    _kind = Cardinality.STREAM_UNARY


class StreamStreamMultiCallable(_StreamResponse):
    _kind = Cardinality.STREAM_STREAM


_MULTI_CALLABLES: dict[Cardinality, type[_MultiCallable]] = {
    Cardinality.UNARY_UNARY: UnaryUnaryMultiCallable,
    Cardinality.UNARY_STREAM: UnaryStreamMultiCallable,
    Cardinality.STREAM_UNARY: StreamUnaryMultiCallable,
    Cardinality.STREAM_STREAM: StreamStreamMultiCallable,
}
Channel._multi_callables = _MULTI_CALLABLES
