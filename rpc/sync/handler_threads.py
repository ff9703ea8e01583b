"""The blocking server's handler threads: a lean pool, one queue, no futures.

``concurrent.futures.ThreadPoolExecutor`` does more per task than a server needs: a ``Future``
(with its own condition variable), two global locks and an idle ``Semaphore`` written in
Python, all to return a result nobody reads (a call's outcome goes to its client, not back to
the reader thread). Profiled under 64 concurrent unary calls, ``submit`` held the GIL for a
third of the blocking server's time. Here a task is a ``(function, argument)`` pair on a
``SimpleQueue``; threads start on demand up to the limit and then stay.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable, Optional

__all__ = ["HandlerThreads"]

log = logging.getLogger(__name__)

_Task = Optional[tuple[Callable[[Any], None], Any]]


class HandlerThreads:
    """Runs ``function(argument)`` tasks on up to ``max_threads`` daemon threads."""

    def __init__(self, max_threads: int, name: str) -> None:
        if max_threads < 1:
            raise ValueError("max_threads must be at least 1")
        self._max = max_threads
        self._name = name
        self._queue: queue.SimpleQueue[_Task] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0  # threads waiting in get(), or about to
        self._shut = False

    def submit(self, function: Callable[[Any], None], argument: Any) -> None:
        """Queue a task; RuntimeError once ``shutdown()`` was called."""
        if self._shut:
            raise RuntimeError("handler threads are shut down")
        self._queue.put((function, argument))
        with self._lock:
            if self._idle:
                self._idle -= 1  # that thread takes this task
                return
            if self._threads >= self._max:
                return  # the task waits for the next thread to come free
            self._threads += 1
            number = self._threads
        threading.Thread(target=self._work, name=f"{self._name}_{number}", daemon=True).start()

    def shutdown(self) -> None:
        """Let every thread finish its task and end; queued tasks still run."""
        with self._lock:
            self._shut = True
            threads = self._threads
        for _ in range(threads):
            self._queue.put(None)

    def _work(self) -> None:
        get = self._queue.get
        while True:
            task = get()
            if task is None:
                return
            function, argument = task
            try:
                function(argument)
            except Exception:
                log.exception("handler task %r failed", function)
            # Not held while this thread waits for the next task: the call and its messages.
            del task, function, argument
            with self._lock:
                self._idle += 1
