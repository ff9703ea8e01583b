"""The blocking server: ``rpc.sync.Server``, plain ``def`` handlers on a thread pool.

Every protocol decision is the cores' (``rpc._core``); this module adds only the waiting: handler
threads on one queue, a deadline-watcher thread (threads cannot be cancelled: the status is sent
on time, and the handler's next read or write fails).
"""

from __future__ import annotations

import contextlib
import contextvars
import heapq
import logging
import ssl
import threading
import time
from typing import Any, Callable, NoReturn, Optional

from codec import Status, StatusCode
from transport import TransportError, parse_address
from transport.blocking import BlockingConnection, BlockingListener, BlockingStream

from .._core.client_call import CANCEL
from .._core.server import ServerCore
from .._core.server_call import (
    CallBook,
    ServerCallCore,
    ServerCallSettings,
    StreamGone,
    invoke_blocking,
)
from .handler_threads import HandlerThreads

log = logging.getLogger(__name__)


class ServicerContext(ServerCallCore):
    """The context handed to plain ``def`` handlers (grpcio's synchronous names)."""

    _stream: BlockingStream

    def __init__(
        self, settings: ServerCallSettings, stream: BlockingStream, book: CallBook
    ) -> None:
        super().__init__(settings, stream)
        self._book = book
        # Reentrant: a done callback run by _end may add another callback.
        self._end_lock = threading.RLock()
        self._corked = False

    def _finishing(self) -> None:
        self._book.release_slot(self)

    def send_initial_metadata(self, metadata: Any) -> None:
        self._send_headers(metadata)

    def add_callback(self, callback: Callable[[], Any]) -> bool:
        with self._end_lock:  # the deadline watcher may be ending the call right now
            return super().add_callback(callback)

    def add_done_callback(self, callback: Callable[[Any], Any]) -> None:
        with self._end_lock:
            super().add_done_callback(callback)

    def abort(self, code: StatusCode, details: str = "", trailing_metadata: Any = None) -> NoReturn:
        """End the call now with ``code`` (not OK) and ``details``."""
        self._abort(code, details, trailing_metadata)

    def abort_with_status(self, status: Any) -> NoReturn:
        self._abort_with_status(status)

    def read(self) -> Any:
        """The next request message, or ``rpc.EOF`` once the client half-closed."""
        return self._read_request()

    def write(self, message: Any) -> None:
        """Send one response message."""
        self._send_message(message)

    # ------------------------------------------------------------------ driver (a pool thread)

    def _run(self) -> None:
        status: Optional[Status]
        try:
            status = self._begin()
            if status is None:
                if self._deadline is not None:
                    self._book.watch_deadline(self._deadline, self._on_deadline)
                handler = self._handler
                assert handler is not None
                send = self._send_message if handler.response_streaming else self._send_single
                try:
                    invoke_blocking(self, self, self._read_request, send)
                    status = self._status_of_return()
                except Exception as exc:
                    status = self._status_of_exception(exc)
        except StreamGone:
            status = None
        except BaseException:  # a bug of ours: still answer, never hang the client
            log.exception("internal error serving %s", self.method())
            status = Status(StatusCode.INTERNAL, "internal server error")
        if self._cancelled:
            status = self._status_after_cancel()
        self._end(status)
        if self._corked:
            self._stream.connection.uncork()

    def _send_single(self, message: Any) -> None:
        """A unary response: held back so that headers, message and trailers leave in one send
        (nothing is read after it)."""
        self._corked = True
        self._stream.connection.cork()
        self._send_message(message)

    def _read_request(self) -> Any:
        stream = self._stream
        while self._needs_data():
            try:
                chunk = stream.read(timeout=self.time_remaining())
            except (TransportError, TimeoutError):
                raise StreamGone from None
            self._on_chunk(chunk)
        return self._next_request()

    def _send_message(self, message: Any) -> None:
        data = self._frame_response(message)
        try:
            self._stream.send_data(data, timeout=self.time_remaining())
        except (TransportError, TimeoutError):
            raise StreamGone from None

    def _end(self, status: Optional[Status]) -> None:
        with self._end_lock:  # the deadline watcher and the handler's thread may race
            super()._end(status)

    def _interrupt(self) -> None:
        # A thread cannot be cancelled. The call is over for the client: end it now (answer a
        # passed deadline; run the done callbacks, as grpcio runs them when the call terminates,
        # so that a handler blocked until one fires (grpcio-health-checking's Watch) is released)
        # and let the handler's next read or write fail; its return value is then dropped.
        if self._deadline_passed:  # on the server's timer thread
            self._end(self._status_after_cancel())
            with contextlib.suppress(TransportError):
                self._stream.reset(CANCEL)
        else:
            # The client reset the stream: we are on its connection's reader thread, under the
            # connection's lock, where application callbacks must not run.
            self._book.watch_deadline(0.0, lambda: self._end(self._status_after_cancel()))


class _DeadlineWatcher:
    """One thread per server that fires call deadlines (threads cannot be cancelled), and runs
    what must not run on a connection's reader thread (the done callbacks of cancelled calls)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._cond = threading.Condition()
        self._counter = 0
        self._stopped = False
        self._thread: Optional[threading.Thread] = None

    def watch(self, deadline: float, callback: Callable[[], None]) -> None:
        with self._cond:
            self._counter += 1
            heapq.heappush(self._heap, (deadline, self._counter, callback))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="h2rpc-deadlines", daemon=True
                )
                self._thread.start()
            self._cond.notify()

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
                _, _, callback = heapq.heappop(self._heap)
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

    def watch_deadline(self, deadline: float, callback: Callable[[], None]) -> None:
        self._deadlines.watch(deadline, callback)

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
        for listener in self._listeners:
            listener.stop_accepting()
        connections = [c for listener in self._listeners for c in listener.snapshot()]
        for conn in connections:
            conn.shut_down()
        end = time.monotonic() + (grace or 0.0)
        for conn in connections:  # new calls may arrive until each client answers the PING
            conn.wait_drained(max(0.0, end - time.monotonic()))
        for call in self._book.wait_idle(end):
            call._end(Status(StatusCode.UNAVAILABLE, "server is shutting down"))
            with contextlib.suppress(TransportError):
                call._stream.reset(CANCEL)
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
        context = ServicerContext(self._call_settings, stream, book)
        conn = stream.connection
        refusal = book.admit(context, conn, self._over_limit)
        if refusal is not None:
            conn.call_soon(lambda: context._end(refusal))  # sends: not under the lock
            return
        try:
            self._pool.submit(self._serve, context)
        except RuntimeError:  # the pool is shut down: we are stopping
            book.forget(context)
            conn.call_soon(lambda: context._end(Status(StatusCode.UNAVAILABLE, "shutting down")))

    def _serve(self, context: ServicerContext) -> None:
        try:
            # A fresh context per call: what the call sets (its deadline, for the calls the
            # handler makes) stays with it instead of passing to the thread's next call.
            contextvars.Context().run(context._run)
        finally:
            self._book.forget(context)
