"""``grpc.Future`` for the blocking API: an outcome set once, the waiting for it, done callbacks,
and the small thread that runs queued work and timers for a channel's futures.

grpcio's blocking API gives futures from ``multi_callable.future(...)`` and
``grpc.channel_ready_future(channel)``; ``rpc.sync`` gives the same interface
(``result``/``exception``/``traceback`` with a timeout, ``add_done_callback``, ``cancel``,
``cancelled``, ``running``, ``done``), and the same exceptions under its own names.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import logging
import threading
import time
from collections import deque
from types import TracebackType
from typing import Any, Callable, Optional

__all__ = ["FutureBase", "FutureCancelledError", "FutureTimeoutError", "TaskThread", "Timer"]

log = logging.getLogger(__name__)


class FutureTimeoutError(concurrent.futures.TimeoutError):
    """``result()``, ``exception()`` or ``traceback()`` ran out of time
    (``grpc.FutureTimeoutError``; also a ``concurrent.futures.TimeoutError``)."""


class FutureCancelledError(concurrent.futures.CancelledError):
    """The future was cancelled (``grpc.FutureCancelledError``; also a
    ``concurrent.futures.CancelledError``)."""


# ====================================================================== a task thread


class Timer:
    """A function to run at a time on a ``TaskThread``; ``cancel()`` drops it."""

    __slots__ = ("function", "owner", "when")

    def __init__(self, when: float, function: Callable[[], None], owner: TaskThread) -> None:
        self.when = when
        self.function: Optional[Callable[[], None]] = function
        self.owner = owner

    def __lt__(self, other: Timer) -> bool:
        return self.when < other.when

    def cancel(self) -> None:
        if self.function is not None:
            self.function = None
            self.owner._timer_cancelled()


class TaskThread:
    """Runs functions queued with ``call_soon`` and timers set with ``call_at``, in order, on one
    daemon thread that starts when there is work and ends after ``idle`` seconds without any.

    The functions must not block for long: everything else queued waits for them.
    """

    def __init__(self, name: str, idle: float = 10.0) -> None:
        self._name = name
        self._idle = idle
        self._cond = threading.Condition(threading.Lock())
        self._ready: deque[Callable[[], None]] = deque()
        self._timers: list[Timer] = []
        self._cancelled = 0  # cancelled timers still in the heap
        self._running = False

    def call_soon(self, function: Callable[[], None]) -> None:
        with self._cond:
            self._ready.append(function)
            self._wake()

    def call_at(self, when: float, function: Callable[[], None]) -> Timer:
        """Run ``function`` at ``when`` (``time.monotonic()``), unless cancelled first."""
        timer = Timer(when, function, self)
        with self._cond:
            heapq.heappush(self._timers, timer)
            self._wake()
        return timer

    def close(self) -> None:
        """Its owner is closed: end the thread as soon as nothing is left to run (work queued
        later starts a new one), instead of idling on for its ``idle`` seconds. A program that
        opens and closes channels would otherwise keep two idle threads per recent channel."""
        with self._cond:
            self._idle = 0.0
            if self._running:
                self._cond.notify()

    def _wake(self) -> None:
        if self._running:
            self._cond.notify()
        else:
            self._running = True
            threading.Thread(target=self._run, name=self._name, daemon=True).start()

    def _timer_cancelled(self) -> None:
        with self._cond:
            self._cancelled += 1
            timers = self._timers
            if self._cancelled > 64 and self._cancelled > len(timers) // 2:
                # Many calls ended before their deadline: drop them rather than hold them.
                self._timers = [t for t in timers if t.function is not None]
                heapq.heapify(self._timers)
                self._cancelled = 0

    def _next_batch(self) -> Optional[deque[Callable[[], None]]]:
        """The functions due now (waiting for them), or None when idle long enough to stop."""
        idle_since = time.monotonic()
        with self._cond:
            while True:
                timers = self._timers
                now = time.monotonic()
                idle_until = idle_since + self._idle  # close() may have shortened it
                while timers and (timers[0].function is None or timers[0].when <= now):
                    timer = heapq.heappop(timers)
                    if timer.function is None:
                        self._cancelled -= 1
                    else:
                        self._ready.append(timer.function)
                if self._ready:
                    batch, self._ready = self._ready, deque()
                    return batch
                if timers:
                    wait = timers[0].when - now
                elif now >= idle_until:
                    self._running = False
                    return None
                else:
                    wait = idle_until - now
                self._cond.wait(wait)

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            for function in batch:
                try:
                    function()
                except Exception:
                    log.exception("%s: task %r failed", self._name, function)


# ====================================================================== the future interface

_PENDING = "pending"
_FINISHED = "finished"
_CANCELLED = "cancelled"


class FutureBase:
    """The waiting half of ``grpc.Future``: an outcome (a result, an exception, or cancelled) set
    once by the subclass, and ``result``/``exception``/``traceback``/``add_done_callback``.

    Done callbacks get the future and run on the given ``TaskThread`` (or at once, in the
    caller's thread, when added to a future already done, as grpcio does).
    """

    _future_cond: threading.Condition
    _future_state: str
    _future_result: Any
    _future_error: Optional[BaseException]
    _done_callbacks: Optional[list[Callable[[Any], None]]]
    _callback_thread: TaskThread

    def _init_future(self, lock: Any, callback_thread: TaskThread) -> None:
        self._future_cond = threading.Condition(lock)
        self._future_state = _PENDING
        self._future_result = None
        self._future_error = None
        self._done_callbacks = []
        self._callback_thread = callback_thread

    # ------------------------------------------------------------------ grpc.Future

    def result(self, timeout: Optional[float] = None) -> Any:
        """The result; raises the call's error if it failed, FutureCancelledError if cancelled,
        FutureTimeoutError if not done within ``timeout`` seconds."""
        self._wait(timeout)
        error = self._future_error
        if error is not None:
            raise error
        return self._future_result

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        """The error the future failed with, or None (waits like ``result``)."""
        self._wait(timeout)
        return self._future_error

    def traceback(self, timeout: Optional[float] = None) -> Optional[TracebackType]:
        """The traceback of the error the future failed with, or None (waits like ``result``)."""
        self._wait(timeout)
        error = self._future_error
        return None if error is None else error.__traceback__

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        """Call ``fn(future)`` once the future is done (at once if it is)."""
        with self._future_cond:
            callbacks = self._done_callbacks
            if callbacks is not None:
                callbacks.append(fn)
                return
        fn(self)

    def cancelled(self) -> bool:
        return self._future_state is _CANCELLED

    def running(self) -> bool:
        return self._future_state is _PENDING

    def done(self) -> bool:
        return self._future_state is not _PENDING

    # ------------------------------------------------------------------ for subclasses

    def _wait(self, timeout: Optional[float]) -> None:
        if self._future_state is _PENDING:
            with self._future_cond:
                if not self._future_cond.wait_for(self.done, timeout):
                    raise FutureTimeoutError()
        if self._future_state is _CANCELLED:
            raise FutureCancelledError()

    def _set_outcome(
        self, result: Any = None, error: Optional[BaseException] = None, cancelled: bool = False
    ) -> bool:
        """Set the outcome (False if it was set already) and schedule the done callbacks."""
        with self._future_cond:
            if self._future_state is not _PENDING:
                return False
            if error is not None and error.__traceback__ is None:
                try:  # give it a traceback, as raising it would (for traceback())
                    raise error
                except BaseException:
                    pass
            self._future_result = result
            self._future_error = error
            self._future_state = _CANCELLED if cancelled else _FINISHED
            callbacks, self._done_callbacks = self._done_callbacks, None
            self._future_cond.notify_all()
        if callbacks:
            self._callback_thread.call_soon(lambda: self._run_callbacks(callbacks))
        return True

    def _run_callbacks(self, callbacks: list[Callable[[Any], None]]) -> None:
        for callback in callbacks:
            try:
                callback(self)
            except Exception:
                log.exception("done callback %r of %r raised", callback, self)
