"""The blocking client: ``rpc.sync.Channel``, its calls and futures.

Plain function calls, as grpcio's synchronous API gives them: a unary call returns its reply, a
server stream is an iterator, a client stream takes any iterable, ``.future()`` gives a
``grpc.Future``. Every protocol decision is the cores' (``rpc._core``); this module adds only the
waiting, on a thread-driven transport (``transport.blocking``): a reader thread per connection,
a locked writer.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Callable, Generic, Optional, TypeVar, Union

from codec import Metadata, Status, StatusCode
from codec.http2_errors import CANCEL
from transport import TransportError
from transport.blocking import BlockingConnection, BlockingStream, connect_blocking

from .._core.channel import ChannelCore, MultiCallableBase, PinnedConnection, no_call_credentials
from .._core.client_call import (
    DELIVER,
    HEAD,
    NEXT_REQUEST,
    NOT_READY,
    OPEN,
    PAUSE,
    READ,
    SEND,
    SEND_ON,
    START_WRITER,
    STREAM,
    WAIT_ANY,
    ClientCallCore,
    Program,
    has_news,
)
from .._core.messages import EOF, _EOFType
from .._errors import RpcError
from .._handlers import Cardinality, Deserializer, Serializer, _identity
from ..client.balancer import CONNECT_TO, RESOLVE, STOP_HEALTH, TIMER, WATCH_HEALTH
from ..client.connectivity import ChannelConnectivity
from ..client.health import WATCH_METHOD
from ..client.subchannel import Subchannel
from .future_base import FutureBase, TaskThread, Timer

log = logging.getLogger(__name__)

#: The types of a call's requests and responses (``Call[HelloReply]``, as the stubs that
#: protoc-gen-h2rpc generates declare them): for type checkers only, no cost per call.
RequestT = TypeVar("RequestT")
ResponseT = TypeVar("ResponseT")


class Channel(ChannelCore):
    """A blocking channel: a context manager whose calls block the calling thread.

    Safe to share between threads: calls from many threads go out concurrently on one HTTP/2
    connection (per backend). Options and targets are those of ``rpc.Channel``.
    """

    _conn: Optional[BlockingConnection]

    def _setup(self) -> None:
        self._lock = threading.RLock()
        self._balancer_lock = self._lock
        #: Notified (under the lock) whenever the balancer's state or picker changes.
        self._changed = threading.Condition(self._lock)
        self._version = 0
        #: grpcio's ``subscribe()`` callbacks, and the last state they were told.
        self._subscribers: list[Callable[[ChannelConnectivity], None]] = []
        self._reported: Optional[ChannelConnectivity] = None
        self._timers: list[Timer] = []
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
            conns = self._balance(self._balancer.shutdown)
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        for conn in conns:
            conn.close()
        for conn in conns:
            conn.wait_closed(5.0)
        self._future_tasks.close()
        self._future_callbacks.close()

    def channel_ready(self, timeout: Optional[float] = None) -> None:
        """Block until connected (retrying with backoff), or RpcError after ``timeout``.

        ``rpc.sync.channel_ready_future(channel)`` is the grpcio-style form.
        """
        end = None if timeout is None else time.monotonic() + timeout
        self.connection(wait_for_ready=True, deadline=end)

    def subscribe(
        self, callback: Callable[[ChannelConnectivity], None], try_to_connect: bool = False
    ) -> None:
        """Call ``callback(state)`` now and on every change of the connectivity state (grpcio's;
        on a thread of the channel's, so it must not block for long)."""
        with self._lock:
            state = self.get_state(try_to_connect)
            self._subscribers.append(callback)  # (after: told the state once, not twice)
            self._future_callbacks.call_soon(lambda: _tell(callback, state))

    def unsubscribe(self, callback: Callable[[ChannelConnectivity], None]) -> None:
        with self._lock:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

    def _state_changed(self) -> None:  # under the lock
        self._version += 1
        self._changed.notify_all()
        state = self._balancer.state
        if state is not self._reported:
            self._reported = state
            for callback in self._subscribers:
                self._future_callbacks.call_soon(functools.partial(_tell, callback, state))

    def ready_connection(self) -> Optional[BlockingConnection]:
        """The connection if a new call may use it now (no waiting), else None."""
        conn = self._conn
        if conn is not None and conn.is_usable and not self._closed:
            return conn
        if self._closed:
            return None

        def pick() -> Optional[BlockingConnection]:
            try:
                picked: Optional[BlockingConnection] = self._balancer.pick(False)
            except RpcError:
                return None
            return picked

        return self._balance(pick)

    def connection(
        self,
        wait_for_ready: bool,
        deadline: Optional[float],
        call: Optional[ClientCallCore] = None,
    ) -> BlockingConnection:
        """The connection for a new call, as the load balancing policy picks it.

        It drives the core's ``_connection`` program under the channel's lock, waiting (on the
        lock's condition) for the picker to change when there is no connection. A ``call`` that
        ends meanwhile (cancelled from another thread) stops the waiting.
        """
        conn = self._conn
        if conn is not None and conn.is_usable:
            return conn  # the common case, without starting the program
        program = self._connection(wait_for_ready)
        error: Optional[Exception] = None
        with self._lock:
            while True:
                try:
                    if error is None:
                        program.send(None)
                    else:
                        try:
                            program.throw(error)
                        finally:  # see "Dropping a thrown error" in rpc/_core/server_call.py
                            error = None
                except StopIteration as stop:
                    self._perform_commands()
                    return stop.value  # type: ignore[no-any-return]
                except BaseException:
                    self._perform_commands()
                    raise
                self._perform_commands()
                error = self._wait_for_change(deadline, call)  # WAIT_FOR_PICKER

    def _wait_for_change(
        self, deadline: Optional[float], call: Optional[ClientCallCore]
    ) -> Optional[Exception]:
        """Wait (holding the lock's condition) for the balancer to change; TimeoutError once the
        deadline passes; RpcError CANCELLED if ``call`` ends meanwhile."""
        version = self._version
        while self._version == version:
            if call is not None and call.done():
                return RpcError(StatusCode.CANCELLED, "Locally cancelled by application!")
            timeout = _CANCEL_CHECK
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return TimeoutError()
                timeout = min(timeout, left)
            self._changed.wait(timeout)
        return None

    # ------------------------------------------------------------------ balancer commands

    def _perform(self, command: tuple[Any, ...]) -> None:  # under the lock
        op = command[0]
        if op == TIMER:
            key = command[2]
            self._timers = [t for t in self._timers if t.function is not None]
            self._timers.append(
                self._future_tasks.call_at(
                    command[1], lambda: self._balance(self._balancer.timer_fired, key)
                )
            )
        elif op == CONNECT_TO:
            _thread(self._attempt, "h2rpc-connect", command[1])
        elif op == RESOLVE:
            _thread(self._resolve, "h2rpc-resolve")
        elif op == WATCH_HEALTH:
            subchannel, conn = command[1], command[2]
            call: Call[bytes] = Call(
                Cardinality.UNARY_STREAM,
                self._health_request(),
                _Pinned(self.settings, conn),  # type: ignore[arg-type]
                WATCH_METHOD,
                _identity,
                _identity,
                timeout=None,
                metadata=None,
            )
            subchannel.health_call = call
            _thread(self._watch_health, "h2rpc-health", subchannel, conn, call)
        elif op == STOP_HEALTH:
            command[1].cancel()

    def _attempt(self, subchannel: Subchannel) -> None:
        def closed(conn: BlockingConnection) -> None:
            self._connection_closed(subchannel, conn)

        try:
            conn = connect_blocking(
                subchannel.address,
                options=self._connection_options,
                ssl=self._ssl,
                server_hostname=self._server_hostname,
                timeout=self._connect_timeout(subchannel),
                on_closed=closed,
            )
        except Exception as exc:  # refused, timed out, TLS, not HTTP/2...: this attempt failed
            self._connect_failed(subchannel, exc)
            return
        self._connected(subchannel, conn)

    def _resolve(self) -> None:
        try:
            results = self._resolver.resolve(self._target)
        except Exception as exc:
            self._resolution_done(None, exc)
            return
        self._resolution_done(results)

    def _watch_health(
        self, subchannel: Subchannel, conn: BlockingConnection, call: Call[bytes]
    ) -> None:
        code, why = StatusCode.OK, "the health service ended the Watch"
        try:
            for response in call:
                self._health_answer(subchannel, conn, response)
        except RpcError as exc:
            code, why = exc.code(), exc.details()
        except Exception as exc:
            code, why = StatusCode.UNKNOWN, repr(exc)
        self._health_ended(subchannel, conn, code, why)


#: How often a call waiting for a connection looks whether it was cancelled meanwhile.
_CANCEL_CHECK = 0.5


def _thread(target: Callable[..., None], name: str, *args: Any) -> None:
    threading.Thread(target=target, args=args, name=name, daemon=True).start()


def _tell(callback: Callable[[ChannelConnectivity], None], state: ChannelConnectivity) -> None:
    try:
        callback(state)
    except Exception:
        log.exception("connectivity callback %r failed", callback)


class _Pinned(PinnedConnection):
    def connection(
        self, wait_for_ready: bool, deadline: Optional[float], call: Any = None
    ) -> BlockingConnection:
        return self.pinned()  # type: ignore[no-any-return]


class Call(ClientCallCore, Generic[ResponseT]):
    """A blocking call: iterate it for a response stream; metadata, status and ``cancel()``.

    Generic in the response type: ``Call[Feature]`` iterates ``Feature`` messages.

    It drives the core's programs, performing each command by blocking on the threaded
    transport; every wait is bounded by the call's deadline; ``cancel()`` may come from any
    thread.
    """

    _stream: Optional[BlockingStream]

    def __init__(
        self,
        kind: Cardinality,
        request: Any,
        channel: Channel,
        path: str,
        serializer: Serializer,
        deserializer: Deserializer,
        **kwargs: Any,
    ) -> None:
        if kind.request_streaming and request is None:
            request = ()  # no write() here: no request iterator means no requests
        super().__init__(channel.settings, kind, request, path, serializer, deserializer, **kwargs)
        self._channel = channel
        #: Held to end the call (cancel() may race the thread that reads).
        self._lock = threading.RLock()
        self._guard = self._lock  # retry bookkeeping shared with the writer thread
        #: Held by the one thread opening the stream (not the call's lock: cancel() and the
        #: deadline must not wait for a connection attempt).
        self._opening = threading.Lock()
        #: The program that iterating the call drives (one for the whole response stream).
        self._iteration: Optional[Program] = None
        self._paused: Optional[threading.Event] = None  # a retry's backoff

    # ------------------------------------------------------------------ public

    def __iter__(self) -> Iterator[ResponseT]:
        return self

    def __next__(self) -> ResponseT:
        program = self._iteration
        if program is None:
            program = self._iteration = self._read(True)
        try:
            message: ResponseT = self._drive(program)
        except BaseException:  # the program is over (or was left mid-command): start anew
            self._iteration = None
            raise
        if message is EOF:
            self._iteration = None
            raise StopIteration
        return message

    def read(self) -> Union[ResponseT, _EOFType]:
        """The next response, or ``rpc.EOF`` at the end of an OK stream."""
        message: Union[ResponseT, _EOFType] = self._ready_message()
        if message is NOT_READY:
            message = self._drive(self._read_any())
        return message

    def result(self) -> ResponseT:
        """The single response of a unary-response call."""
        response: ResponseT = self._drive(self._single_response())
        return response

    def initial_metadata(self) -> Metadata:
        metadata: Metadata = self._drive(self._initial_metadata_of())
        return metadata

    def trailing_metadata(self) -> Metadata:
        return self._wait_status().metadata

    def code(self) -> StatusCode:
        return self._wait_status().code

    def details(self) -> str:
        return self._wait_status().message

    def is_active(self) -> bool:
        return self._status is None

    # ------------------------------------------------------------------ the driver

    def _wait_status(self) -> Status:
        status: Status = self._drive(self._final_status())
        return status

    def _drive(self, program: Program) -> Any:
        """Run a program of the core to its end, performing its commands by blocking.

        Each wait gets the time left before the deadline; once it has passed, the program gets
        TimeoutError instead.
        """
        result: Any = None
        error: Optional[Exception] = None
        while True:
            try:
                if error is None:
                    command = program.send(result)
                else:
                    try:
                        command = program.throw(error)
                    finally:  # see "Dropping a thrown error" in rpc/_core/server_call.py
                        error = None
            except StopIteration as stop:
                return stop.value
            op = command[0]
            try:
                if op == READ:
                    result = self._stream.read(  # type: ignore[union-attr]
                        timeout=None if self._deadline is None else self._time_left()
                    )
                elif op == DELIVER:
                    return command[1]
                elif op == SEND:
                    result = self._stream.send_data(  # type: ignore[union-attr]
                        command[1], end_stream=command[2], timeout=self._time_left()
                    )
                elif op == SEND_ON:
                    result = command[1].send_data(
                        command[2], end_stream=command[3], timeout=self._time_left()
                    )
                elif op == HEAD:
                    stream = self._stream
                    assert stream is not None
                    result = stream.receive_response_headers(timeout=self._time_left())
                elif op == STREAM:
                    result = self._get_stream()
                elif op == OPEN:
                    result = self._open()
                elif op == PAUSE:
                    self._pause(command[1])
                    result = None
                elif op == NEXT_REQUEST:
                    result = next(command[1], EOF)
                elif op == WAIT_ANY:
                    self._wait_any(command[1], command[2])
                    result = None
                else:  # START_WRITER
                    self._start_writer()
                    result = None
            except Exception as exc:
                error = exc

    def _time_left(self) -> Optional[float]:
        """The timeout of the next wait: None without a deadline; TimeoutError once it passed."""
        deadline = self._deadline
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    def _get_stream(self) -> BlockingStream:
        with self._opening:
            stream = self._stream
            if stream is not None:
                return stream
            if self._status is not None:
                raise self._rpc_error()
            opened: BlockingStream = self._drive(self._open_stream())
            return opened

    def _open(self) -> BlockingStream:
        conn = self._channel.connection(self._wait_for_ready, self._deadline, self)
        # A unary request's HEADERS wait for its DATA: one send for both.
        return conn.open_stream(
            self._headers, timeout=self._time_left(), flush=self._kind.request_streaming
        )

    def _wait_any(self, streams: list[BlockingStream], timeout: Optional[float]) -> None:
        """Until one of ``streams`` has news for its reader, or ``timeout`` passes (hedging)."""
        news = threading.Event()
        for stream in streams:
            stream.on_news = news.set
        try:
            if any(has_news(stream) for stream in streams):
                return
            left = self._time_left()
            news.wait(timeout if left is None or (timeout is not None and timeout < left) else left)
        finally:
            for stream in streams:
                stream.on_news = None

    def _start_writer(self) -> None:
        self._request = iterator = iter(self._request)  # a restarted writer goes on
        program = self._write_requests(iterator)
        writer = threading.Thread(
            target=self._drive, args=(program,), name="h2rpc-request-writer", daemon=True
        )
        writer.start()

    def _pause(self, seconds: float) -> None:
        """A retry's backoff, cut short if the call ends meanwhile (``cancel()``) or the
        channel is closed (looked at every ``_PAUSE_CHECK`` seconds: a backoff is on no
        connection the close could fail)."""
        with self._lock:
            if self._status is not None:
                return
            paused = self._paused = threading.Event()
        end = time.monotonic() + seconds
        while not self._channel.closed:
            left = end - time.monotonic()
            if left <= 0 or paused.wait(min(left, _PAUSE_CHECK)):
                break
        self._paused = None

    def _finish(self, status: Status, reset_code: Optional[int] = None) -> None:
        with self._lock:  # cancel() may race the reading thread
            super()._finish(status, reset_code)
            paused = self._paused
        if paused is not None:
            paused.set()


#: How often a call backing off before a retry looks whether its channel was closed.
_PAUSE_CHECK = 0.1

_BLOCKED: Any = object()  # a command that would have to wait
_SPLICED: Any = object()  # a command that became a program of its own (STREAM: _open_stream)


class CallFuture(FutureBase, Call[ResponseT]):
    """What ``.future()`` returns: a ``grpc.Future`` of the single response, and the call.

    ``result(timeout)`` gives the response or raises the call's ``RpcError`` (which carries its
    code, details and metadata); ``exception()``, ``traceback()``, ``add_done_callback(fn)``,
    ``cancel()``, ``cancelled()``, ``running()``, ``done()`` behave as grpcio's. As a call it has
    ``initial_metadata()``, ``trailing_metadata()``, ``code()``, ``details()`` (these wait),
    ``time_remaining()`` and ``is_active()``.

    No thread of its own waits for the call. It runs the same program as ``Call.result()``, but
    performs a command only when that need not wait; a command that would wait is kept, and
    tried again when the stream has news (its ``on_news``, called by the connection's reader
    thread, queues the call on the channel's task thread, one per channel, started when needed).
    The deadline is a timer there. Done callbacks run on a second thread of the channel, so that
    a callback that waits for another future cannot stall the first one. Threads are used only
    where something must block: connecting, or waiting for a free stream slot, before the
    request can go out (a short-lived thread until the stream is open; on a connected channel
    there is none), and sending a request stream (its writer thread, as for a blocking call).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        channel = self._channel
        self._init_future(self._lock, channel._future_callbacks)
        self._tasks = channel._future_tasks
        #: The program and the sub-programs it waits for (innermost last).
        self._programs: list[Program] = []
        self._pending: Optional[tuple[Any, ...]] = None  # the command that would have waited
        self._advance_queued = False
        self._timer: Any = None
        self._resume_at: Optional[float] = None  # a PAUSE's end
        self._opener: Optional[threading.Thread] = None
        self._opened: Optional[tuple[Optional[BlockingStream], Optional[Exception]]] = None
        self.when_finished = self._on_finished

    # ------------------------------------------------------------------ grpc.Future and call

    if TYPE_CHECKING:  # FutureBase.result, with the response's type

        def result(self, timeout: Optional[float] = None) -> ResponseT: ...

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

    # ------------------------------------------------------------------ the driver

    def _begin(self) -> None:
        """Start the call (``future()`` returns right after): the program's first steps run
        here, so on a connected channel the request is on its way when ``future()`` returns."""
        if self._deadline is not None:
            self._timer = self._tasks.call_at(self._deadline, self._on_deadline)
        self._programs.append(self._single_response())
        with self._lock:
            self._step(None, None)

    def _schedule_advance(self) -> None:
        if not self._advance_queued:
            self._advance_queued = True
            self._tasks.call_soon(self._advance)

    def _advance(self) -> None:
        self._advance_queued = False
        with self._lock:
            if not self.done():
                self._step(None, None)

    def _step(self, result: Any, error: Optional[Exception]) -> None:
        """Run the programs as far as they go without waiting (under the call's lock); set the
        outcome when the outermost one ends."""
        programs = self._programs
        while programs:
            command = self._pending
            if command is None:
                program = programs[-1]
                try:
                    if error is None:
                        command = program.send(result)
                    else:
                        try:
                            command = program.throw(error)
                        finally:  # see "Dropping a thrown error" in rpc/_core/server_call.py
                            error = None
                except StopIteration as stop:
                    programs.pop()
                    result, error = stop.value, None
                    self._future_cond.notify_all()  # a stream opened: for the writer thread
                    continue
                except Exception as exc:  # to the program that waits for this one
                    programs.pop()
                    result, error = None, exc
                    continue
            try:
                result = self._perform_now(command)
            except Exception as exc:
                self._pending = None
                result, error = None, exc
                continue
            if result is _BLOCKED:
                self._pending = command
                self._future_cond.notify_all()  # for initial_metadata()
                return
            self._pending = None
            if result is _SPLICED:
                result = None
        if error is None:
            self._set_outcome(result)
        elif isinstance(error, RpcError):
            self._set_outcome(error=error)
        else:  # a bug of ours: end the call, never leave it pending
            log.error("future of %s failed", self._path, exc_info=error)
            self._finish(Status(StatusCode.INTERNAL, f"internal error: {error!r}"), CANCEL)
            self._set_outcome(error=self._rpc_error())
        self._unwatch()

    def _perform_now(self, command: tuple[Any, ...]) -> Any:
        """Perform ``command`` if it need not wait; else _BLOCKED (tried again on news)."""
        op = command[0]
        stream = self._stream
        if op in (HEAD, READ):
            assert stream is not None
            try:
                if op == HEAD:
                    return stream.receive_response_headers(timeout=0.0)
                return stream.read(timeout=0.0)
            except TimeoutError:
                return _BLOCKED
        if op in (SEND, SEND_ON):
            data, end = command[1:3] if op == SEND else command[2:4]
            if op == SEND_ON:
                stream = command[1]
            assert stream is not None
            try:
                stream.send_data(data, end_stream=end, timeout=0.0)
            except TimeoutError:
                pass  # all queued: the reader thread sends the rest as the server's window opens
            return None
        if op == STREAM:
            if stream is not None:
                return stream
            self._programs.append(self._open_stream())
            return _SPLICED
        if op == OPEN:
            return self._open_now()
        if op == PAUSE:
            if self._status is not None:
                raise self._rpc_error()
            now = time.monotonic()
            if self._resume_at is None:
                self._resume_at = now + command[1]
            elif now >= self._resume_at or self._channel.closed:
                self._resume_at = None  # (a closed channel: the next step fails the call)
                return None
            # Looked at again when the pause ends, and meanwhile every _PAUSE_CHECK seconds
            # for a channel closed while the call backs off (it is on no connection).
            self._tasks.call_at(min(self._resume_at, now + _PAUSE_CHECK), self._schedule_advance)
            return _BLOCKED
        if op == START_WRITER:
            self._start_writer()
            return None
        if op == WAIT_ANY:
            return self._wait_any_now(command[1], command[2])
        raise AssertionError(f"a future performs no {command!r}")

    def _wait_any_now(self, streams: list[BlockingStream], timeout: Optional[float]) -> Any:
        """WAIT_ANY without waiting: done if a stream has news or the time is up, else
        _BLOCKED until a stream's news or the timer advances the call again."""
        for stream in streams:
            stream.on_news = self._schedule_advance
        now = time.monotonic()
        if any(has_news(stream) for stream in streams) or (
            self._resume_at is not None and now >= self._resume_at
        ):
            self._resume_at = None
            return None
        if timeout is not None and self._resume_at is None:
            self._resume_at = now + timeout
            self._tasks.call_at(self._resume_at, self._schedule_advance)
        return _BLOCKED

    def _get_stream(self) -> BlockingStream:
        """The request writer's STREAM: the future's own program opens (and replays) every
        stream of the call; the writer thread waits for it rather than open a second one."""
        with self._future_cond:
            self._future_cond.wait_for(
                lambda: (
                    (self._stream is not None and self._replaying is None)
                    or self._status is not None
                )
            )
            if self._stream is None or self._status is not None:
                raise self._rpc_error()
            return self._stream

    def _open_now(self) -> Any:
        """OPEN without waiting: on a connected channel with a free stream slot, at once; else on
        a short-lived thread (connecting, or waiting for a slot, blocks)."""
        opened = self._opened
        if opened is not None:
            self._opened = self._opener = None
            stream, error = opened
            if error is not None:
                raise error
            assert stream is not None
            stream.on_news = self._schedule_advance
            return stream
        if self._status is not None:  # the call ended while a thread connects: it cleans up
            raise self._rpc_error()
        if self._opener is not None:
            return _BLOCKED
        conn = self._channel.ready_connection()
        if conn is not None:
            try:
                stream = conn.open_stream(self._headers, timeout=0.0, flush=False)
            except (TimeoutError, TransportError):
                pass  # no free slot, or the connection just went: the thread will see
            else:
                stream.on_news = self._schedule_advance
                return stream
        self._opener = threading.Thread(
            target=self._open_in_thread, name="h2rpc-future-start", daemon=True
        )
        self._opener.start()
        return _BLOCKED

    def _open_in_thread(self) -> None:
        stream: Optional[BlockingStream] = None
        error: Optional[Exception] = None
        try:
            stream = self._open()
        except Exception as exc:
            error = exc
        with self._lock:
            if self._status is not None:  # nobody will take it
                if stream is not None:
                    stream.reset(CANCEL)
                return
            self._opened = (stream, error)
        self._schedule_advance()

    def _on_deadline(self) -> None:
        with self._lock:  # only ever held briefly (never while connecting)
            if self._status is None:
                self._deadline_exceeded()

    def _on_finished(self) -> None:
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()
        self._schedule_advance()

    def _unwatch(self) -> None:
        """Done: the stream's news no longer concern the call (and keep no cycle alive)."""
        stream = self._stream
        if stream is not None:
            stream.on_news = None


class _ChannelReadyFuture(FutureBase):
    """``channel_ready_future(channel)``: done once the channel is connected."""

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._stop = threading.Event()
        self._init_future(threading.Lock(), channel._future_callbacks)
        if channel.ready_connection() is not None:
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
                # Wait-for-ready: through TRANSIENT_FAILURE until a connection is READY, in
                # slices so that cancel() is seen.
                channel.connection(wait_for_ready=True, deadline=time.monotonic() + _CANCEL_CHECK)
            except RpcError:
                if channel.closed:
                    return  # never ready: result() times out, as grpcio's does
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
        call_class: type[Call[Any]] = Call,
    ) -> Call[Any]:
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
    ) -> tuple[Any, Call[Any]]:
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
    ) -> CallFuture[Any]:
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
    ) -> Call[Any]:
        """Start the call; iterate the returned call for the responses."""
        return self._start(request, timeout, metadata, compression, wait_for_ready, credentials)


class UnaryUnaryMultiCallable(_UnaryResponse, Generic[RequestT, ResponseT]):
    """One request, one response: ``stub.M(request)``, ``.with_call(...)``, ``.future(...)``."""

    _kind = Cardinality.UNARY_UNARY

    if TYPE_CHECKING:  # the signatures of this kind (the shared methods take every kind's)

        def __call__(  # type: ignore[override]
            self,
            request: RequestT,
            timeout: Optional[float] = None,
            metadata: Any = None,
            credentials: Any = None,
            wait_for_ready: Optional[bool] = None,
            compression: Optional[str] = None,
        ) -> ResponseT: ...

        def with_call(  # type: ignore[override]
            self,
            request: RequestT,
            timeout: Optional[float] = None,
            metadata: Any = None,
            credentials: Any = None,
            wait_for_ready: Optional[bool] = None,
            compression: Optional[str] = None,
        ) -> tuple[ResponseT, Call[ResponseT]]: ...

        def future(  # type: ignore[override]
            self,
            request: RequestT,
            timeout: Optional[float] = None,
            metadata: Any = None,
            credentials: Any = None,
            wait_for_ready: Optional[bool] = None,
            compression: Optional[str] = None,
        ) -> CallFuture[ResponseT]: ...


class UnaryStreamMultiCallable(_StreamResponse, Generic[RequestT, ResponseT]):
    """One request, a stream of responses: ``for response in stub.M(request)``."""

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
        ) -> Call[ResponseT]: ...


class StreamUnaryMultiCallable(_UnaryResponse, Generic[RequestT, ResponseT]):
    """An iterable of requests, one response: ``stub.M(requests)``, ``.with_call``, ``.future``."""

    _kind = Cardinality.STREAM_UNARY

    if TYPE_CHECKING:  # the signatures of this kind (the shared methods take every kind's)

        def __call__(
            self,
            request: Optional[Iterable[RequestT]] = None,
            timeout: Optional[float] = None,
            metadata: Any = None,
            credentials: Any = None,
            wait_for_ready: Optional[bool] = None,
            compression: Optional[str] = None,
        ) -> ResponseT: ...

        def with_call(
            self,
            request: Optional[Iterable[RequestT]] = None,
            timeout: Optional[float] = None,
            metadata: Any = None,
            credentials: Any = None,
            wait_for_ready: Optional[bool] = None,
            compression: Optional[str] = None,
        ) -> tuple[ResponseT, Call[ResponseT]]: ...

        def future(
            self,
            request: Optional[Iterable[RequestT]] = None,
            timeout: Optional[float] = None,
            metadata: Any = None,
            credentials: Any = None,
            wait_for_ready: Optional[bool] = None,
            compression: Optional[str] = None,
        ) -> CallFuture[ResponseT]: ...


class StreamStreamMultiCallable(_StreamResponse, Generic[RequestT, ResponseT]):
    """An iterable of requests, a stream of responses: ``for response in stub.M(requests)``."""

    _kind = Cardinality.STREAM_STREAM

    if TYPE_CHECKING:  # the signature of this kind (the shared __call__ takes every kind's)

        def __call__(
            self,
            request: Optional[Iterable[RequestT]] = None,
            timeout: Optional[float] = None,
            metadata: Any = None,
            credentials: Any = None,
            wait_for_ready: Optional[bool] = None,
            compression: Optional[str] = None,
        ) -> Call[ResponseT]: ...


_MULTI_CALLABLES: dict[Cardinality, type[_MultiCallable]] = {
    Cardinality.UNARY_UNARY: UnaryUnaryMultiCallable,
    Cardinality.UNARY_STREAM: UnaryStreamMultiCallable,
    Cardinality.STREAM_UNARY: StreamUnaryMultiCallable,
    Cardinality.STREAM_STREAM: StreamStreamMultiCallable,
}
Channel._multi_callables = _MULTI_CALLABLES
