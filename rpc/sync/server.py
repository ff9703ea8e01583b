"""The blocking server: ``rpc.sync.Server``, plain ``def`` handlers on a thread pool.

Every protocol decision is the cores' (``rpc._core``); this module adds only the waiting: a driver
that performs the call programs' commands by blocking (``ServicerContext._drive``), handler
threads on one queue, a deadline-watcher thread (threads cannot be cancelled: the status is sent
on time, and the handler's next read or write fails).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import heapq
import logging
import ssl
import threading
import time
from typing import Any, Callable, Optional

from codec import Status, StatusCode
from codec.http2_errors import CANCEL
from transport import TransportError, parse_address
from transport.blocking import BlockingConnection, BlockingListener, BlockingStream

from .._core.server import ServerCore
from .._core.server_call import (
    ARM,
    CALL_DEF,
    DONE,
    HOLD,
    NEXT,
    READ,
    REQUEST_STREAM,
    SEND,
    SEND_NEXT,
    CallBook,
    DeadlineWatch,
    HandlerFailed,
    Program,
    ServerCallCore,
)
from .._core.server_context import ThreadServicerContext, request_iterator
from .handler_threads import HandlerThreads

log = logging.getLogger(__name__)


class ServicerContext(ThreadServicerContext):
    """The context handed to plain ``def`` handlers (grpcio's synchronous names), and the call's
    driver: it performs the programs' commands in the handler's thread, blocking (see the table
    in ``rpc._core.server_call``)."""

    def __init__(self, call: ServerCallCore, stream: BlockingStream, book: CallBook) -> None:
        super().__init__(call)
        self._stream = stream
        self._book = book
        # Reentrant: a done callback run by end() may add another callback.
        self._end_lock = threading.RLock()
        self._corked = False
        self._deadline_watch: Optional[DeadlineWatch] = None

    def _owned(self, function: Callable[..., Any], *args: Any) -> Any:
        with self._end_lock:  # the deadline watcher may be ending the call right now
            return function(*args)

    # ------------------------------------------------------------------ driver (a pool thread)

    def _run(self) -> None:
        self._stream.on_failed = self._stream_failed
        status = self._drive(self._call.serve())
        self._finish(status)
        if self._corked:
            self._stream.connection.uncork()

    def _drive(self, program: Program) -> Any:
        call = self._call
        stream = self._stream
        value: Any = None
        failure: Optional[BaseException] = None
        while True:
            try:
                if failure is None:
                    command = program.send(value)
                else:
                    try:
                        command = program.throw(failure)
                    finally:  # see "Dropping a thrown error" in rpc/_core/server_call.py
                        failure = None
            except StopIteration as stop:
                return stop.value
            op = command[0]
            try:
                if op == READ:
                    value = stream.read(timeout=call.time_remaining())
                elif op == SEND:
                    stream.send_data(command[1], timeout=call.time_remaining())
                    value = None
                elif op == SEND_NEXT:
                    stream.send_data(command[1], timeout=call.time_remaining())
                    try:
                        value = next(command[2][1], DONE)
                    except Exception as exc:
                        raise HandlerFailed(exc) from None
                elif op == NEXT:
                    value = next(command[1], DONE)
                elif op == CALL_DEF:
                    argument = command[2]
                    if argument is REQUEST_STREAM:
                        argument = request_iterator(self)
                    value = command[1](argument, self)
                elif op == HOLD:
                    # A unary response: held back so that headers, message and trailers leave in
                    # one send (nothing is read after it).
                    self._corked = True
                    stream.connection.cork()
                    value = None
                elif op == ARM:
                    self._deadline_watch = self._book.watch_deadline(
                        command[1], self._deadline_fired
                    )
                    value = None
                else:  # CALL_ASYNC, AWAIT, ANEXT: an async handler
                    raise TypeError(
                        f"the handler for {call.method()} is an async def: rpc.sync.Server runs "
                        "plain def handlers (serve async ones with rpc.Server)"
                    )
            except Exception as exc:
                failure = exc

    def _finish(self, status: Optional[Status]) -> None:
        """End the call with ``status``, once (the handler's thread and the deadline watcher
        may race), freeing its connection's slot before the status is queued."""
        with self._end_lock:
            if self._call.done():
                return
            if self._deadline_watch is not None:
                self._deadline_watch.cancel()
            self._book.release_slot(self)
            self._call.end(status)

    def _stop(self, status: Optional[Status]) -> None:
        """End the call now (the server is stopping, or the deadline passed); reset its stream,
        so that the handler's next read or write fails."""
        self._finish(status)
        with contextlib.suppress(TransportError):
            self._stream.reset(CANCEL)

    # ------------------------------------------------------------------ events

    # A thread cannot be cancelled. The call is over for the client: end it now (answer a passed
    # deadline; run the done callbacks, as grpcio runs them when the call terminates, so that a
    # handler blocked until one fires (grpcio-health-checking's Watch) is released) and let the
    # handler's next read or write fail; its return value is then dropped.

    def _stream_failed(self) -> None:
        # The client reset the stream: we are on its connection's reader thread, under the
        # connection's lock, where application callbacks must not run.
        if self._call.stream_failed():
            self._book.watch_deadline(0.0, self._end_cancelled)

    def _deadline_fired(self) -> None:  # on the server's timer thread
        if self._call.deadline_passed():
            self._stop(self._call.status_after_cancel())

    def _end_cancelled(self) -> None:
        self._finish(self._call.status_after_cancel())


class _Watch:
    """A deadline being watched; ``cancel()`` once the call has ended.

    Cancelling drops the callback, and with it the call: a call that ended must not stay alive
    until its deadline, which clients often set hours ahead (a server answering 1000 calls a
    second with a one-hour deadline would otherwise hold 3.6 million finished calls).
    """

    __slots__ = ("_watcher", "callback")

    def __init__(self, callback: Callable[[], None], watcher: _DeadlineWatcher) -> None:
        self.callback: Optional[Callable[[], None]] = callback
        self._watcher = watcher

    def cancel(self) -> None:
        if self.callback is not None:
            self.callback = None
            self._watcher._cancelled()


class _DeadlineWatcher:
    """One thread per server that fires call deadlines (threads cannot be cancelled), and runs
    what must not run on a connection's reader thread (the done callbacks of cancelled calls).

    Cancelled watches leave the heap when they reach its top, or all at once when they are
    more than half of it (as asyncio's loop does with its cancelled timers), so the heap stays
    within twice the calls still running.
    """

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Watch]] = []
        self._cond = threading.Condition()
        self._counter = 0
        self._cancelled_count = 0
        self._stopped = False
        self._thread: Optional[threading.Thread] = None

    def watch(self, deadline: float, callback: Callable[[], None]) -> _Watch:
        watch = _Watch(callback, self)
        with self._cond:
            self._counter += 1
            heapq.heappush(self._heap, (deadline, self._counter, watch))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="h2rpc-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()
        return watch

    def _cancelled(self) -> None:
        with self._cond:
            self._cancelled_count += 1
            if self._cancelled_count > 64 and self._cancelled_count * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if entry[2].callback is not None]
                heapq.heapify(self._heap)
                self._cancelled_count = 0

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, watch = heapq.heappop(self._heap)
                callback = watch.callback
                if callback is None:
                    self._cancelled_count -= 1
                    continue
                watch.callback = None
            try:
                callback()
            except Exception:
                log.exception("deadline callback failed")


class _CallBook:
    """The blocking server's running calls: each connection's slots, the wait for the last call
    to end, and the deadline watcher. What a call gets from its server (``CallBook``)."""

    def __init__(self, per_connection: int) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._calls: set[ServicerContext] = set()
        #: Calls counted against their connection's ``max_calls_per_connection``.
        self._slots: dict[object, BlockingConnection] = {}
        self._per_connection: dict[BlockingConnection, int] = {}
        self._per_connection_limit = per_connection
        self._deadlines = _DeadlineWatcher()

    def admit(
        self,
        call: ServicerContext,
        conn: BlockingConnection,
        over_limit: Callable[[int], Optional[Status]],
    ) -> Optional[Status]:
        """Count ``call`` in (None), or the status that refuses it."""
        with self._lock:
            refusal = over_limit(len(self._calls))
            if refusal is None and self._per_connection.get(conn, 0) >= self._per_connection_limit:
                refusal = Status(
                    StatusCode.RESOURCE_EXHAUSTED, "too many concurrent calls on this connection"
                )
            if refusal is None:
                self._calls.add(call)
                self._slots[call] = conn
                self._per_connection[conn] = self._per_connection.get(conn, 0) + 1
        return refusal

    def watch_deadline(self, deadline: float, callback: Callable[[], None]) -> _Watch:
        return self._deadlines.watch(deadline, callback)

    def release_slot(self, call: object) -> None:
        """The call is answering for the last time: its connection may start another one.

        Done before the final status is queued, not when the worker returns: the client may
        start its next call the moment it reads that status, and must not find the slot held.
        """
        with self._lock:
            self._release_slot_locked(call)

    def _release_slot_locked(self, call: object) -> None:
        conn = self._slots.pop(call, None)
        if conn is not None:
            left = self._per_connection.get(conn, 1) - 1
            if left:
                self._per_connection[conn] = left
            else:
                self._per_connection.pop(conn, None)

    def forget(self, call: ServicerContext) -> None:
        with self._idle:
            self._calls.discard(call)
            self._release_slot_locked(call)
            self._idle.notify_all()

    def wait_idle(self, end: float) -> list[ServicerContext]:
        """Wait until no call runs or ``end`` (monotonic) passed; the calls still running."""
        with self._idle:
            while self._calls and time.monotonic() < end:
                self._idle.wait(end - time.monotonic())
            return list(self._calls)

    def stop(self) -> None:
        self._deadlines.stop()


class Server(ServerCore):
    """A blocking server: plain ``def`` handlers run in a thread pool.

    ::

        server = rpc.sync.Server(max_workers=16)
        server.add_service(GREETER, Greeter())
        server.add_insecure_port("[::]:50051")
        server.start()
        server.wait_for_termination()

    Options are those of ``rpc.Server``, plus ``max_workers`` (the pool size) and
    ``max_calls_per_connection``.
    """

    _async_interceptors = False

    def __init__(
        self,
        handlers: Any = (),
        *,
        max_workers: int = 32,
        max_calls_per_connection: Optional[int] = None,
        **options: Any,
    ) -> None:
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._pool = HandlerThreads(max_workers, "h2rpc-handler")
        #: One connection may hold at most this many workers, so that it cannot starve the
        #: others (by default three quarters of the pool): beyond, RESOURCE_EXHAUSTED.
        self._per_connection = max_calls_per_connection or max(1, max_workers * 3 // 4)
        super().__init__(handlers, **options)

    def _setup(self) -> None:
        self._listeners: list[BlockingListener] = []
        self._book = _CallBook(self._per_connection)
        self._stopped = threading.Event()

    def __enter__(self) -> Server:
        if not self._started:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop(None)

    def _add_port(self, address: str, ssl_context: Optional[ssl.SSLContext]) -> int:
        listener = BlockingListener(
            parse_address(address, default_port=None),
            self._on_request,
            options=self._connection_options,
            ssl=ssl_context,
            handshake_timeout=self._connection_options.handshake_timeout,
        )
        self._listeners.append(listener)
        return listener.port

    def start(self) -> None:
        if self._started:
            raise RuntimeError("server already started")
        if not self._listeners:
            raise RuntimeError("no address to serve: call add_insecure_port() first")
        self._started = True
        for listener in self._listeners:
            listener.start()

    def stop(self, grace: Optional[float] = None) -> threading.Event:
        """Stop accepting, shut every connection down gracefully, let calls finish for
        ``grace`` seconds, then cancel the rest and close. Returns an event set once stopped
        (as grpcio does). The shutdown is ``rpc.Server.stop``'s: GOAWAY(2^31-1) and a PING,
        the final GOAWAY once the client has answered; calls it started meanwhile are served."""
        if self._stopping:
            self._stopped.wait()
            return self._stopped
        self._stopping = True
        self._stop_began()
        for listener in self._listeners:
            listener.stop_accepting()
        connections = [c for listener in self._listeners for c in listener.snapshot()]
        for conn in connections:
            conn.shut_down()
        end = time.monotonic() + (grace or 0.0)
        for conn in connections:  # new calls may arrive until each client answers the PING
            conn.wait_drained(max(0.0, end - time.monotonic()))
        for context in self._book.wait_idle(end):
            context._stop(Status(StatusCode.UNAVAILABLE, "server is shutting down"))
        for conn in connections:
            conn.close()
        for conn in connections:
            conn.wait_closed(2.0)
        self._book.stop()
        self._pool.shutdown()
        self._stopped.set()
        return self._stopped

    def wait_for_termination(self, timeout: Optional[float] = None) -> bool:
        """Block until ``stop()`` has finished; False if ``timeout`` passed first."""
        return self._stopped.wait(timeout)

    wait = wait_for_termination

    def _on_request(self, stream: BlockingStream) -> None:
        # Called on a connection's reader thread with its lock held: decide and hand off at once.
        book = self._book
        call = ServerCallCore(self._call_settings, stream)
        context = ServicerContext(call, stream, book)
        conn = stream.connection
        refusal = book.admit(context, conn, self._over_limit)
        if refusal is None:
            try:
                self._pool.submit(self._serve, context)
                return
            except RuntimeError:  # the pool is shut down: we are stopping
                book.forget(context)
                refusal = Status(StatusCode.UNAVAILABLE, "shutting down")
        conn.call_soon(functools.partial(call.end, refusal))  # sends: not under the lock

    def _serve(self, context: ServicerContext) -> None:
        try:
            # A fresh context per call: what the call sets (its deadline, for the calls the
            # handler makes) stays with it instead of passing to the thread's next call.
            contextvars.Context().run(context._run)
        finally:
            self._book.forget(context)
