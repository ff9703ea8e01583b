"""Several server processes on one port (``SO_REUSEPORT``), so that all of a machine's cores serve.

One Python process runs one event loop on one core; a pure-Python server scales across cores by
running several processes. ``serve(factory, address, workers=N)`` starts N worker processes, each
building its own server with ``factory()`` and listening on the same port; the kernel spreads new
connections among them. SIGTERM or SIGINT to the parent stops them all gracefully. The parent
supervises: a worker that dies is replaced (after a backoff), and a worker that keeps dying as
soon as it starts makes ``serve`` give up with ``WorkerFailed``.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable, Optional

from transport import parse_address

from .run import run
from .server import Server

__all__ = ["WorkerFailed", "serve"]

log = logging.getLogger(__name__)

#: A worker that dies sooner than this after it started (or before it listens) failed quickly:
#: a crash at start-up or a crash loop. One that ran longer is replaced after the shortest pause.
STABLE_AFTER = 10.0
#: This many quick failures in a row of one worker, and ``serve`` gives up.
MAX_QUICK_FAILURES = 5
#: The pause before replacing a worker; doubled after each quick failure in a row, up to the max.
RESTART_BACKOFF = 0.2
MAX_RESTART_BACKOFF = 5.0
#: A worker must be listening this soon after it was started, or it is killed (and replaced).
START_TIMEOUT = 30.0
#: How often the supervisor looks at its workers, and a worker at its supervisor.
POLL_INTERVAL = 0.1
PARENT_CHECK_INTERVAL = 1.0


def _free_port(address: str) -> tuple[socket.socket, str]:
    """For port 0: pick a port once (SO_REUSEPORT, not listening) so every worker shares it."""
    parsed = parse_address(address, default_port=None)
    if parsed.path is not None or parsed.port != 0:
        raise ValueError("workers > 1 needs a TCP address (port 0 picks a free one)")
    sock = socket.socket(socket.AF_INET6 if ":" in parsed.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((parsed.host or "0.0.0.0", 0))
    port = sock.getsockname()[1]
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return sock, f"{host}:{port}"


def _worker(
    ready: Any,
    factory: Callable[[], Server],
    address: str,
    grace: float,
    use_uvloop: Optional[bool],
    parent: int,
) -> None:
    """A worker process: serve until SIGTERM or SIGINT; ``ready`` (a pipe) gets the port."""
    # Forked with the supervisor's signal handlers: until this worker's loop has its own, a
    # SIGTERM or SIGINT simply ends it (it serves nothing yet).
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)

    async def main() -> None:
        server = factory()
        server._reuse_port = True
        port = server.add_insecure_port(address)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        ready.send(port)
        ready.close()
        orphaned = loop.create_task(_watch_parent(parent, stop))
        await stop.wait()
        orphaned.cancel()
        await server.stop(grace)

    run(main(), use_uvloop=use_uvloop)


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    """Stop the worker if the supervisor is gone (killed: it could not stop us itself)."""
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_CHECK_INTERVAL)
    log.warning("worker %d: the supervising process is gone: stopping", os.getpid())
    stop.set()


def _exit_status(code: Optional[int]) -> str:
    if code is None:
        return "no exit code"
    if code < 0:
        try:
            return f"exit code {code} ({signal.Signals(-code).name})"
        except ValueError:
            return f"exit code {code} (signal {-code})"
    return f"exit code {code}"


class WorkerFailed(RuntimeError):
    """``serve`` gave up: a worker kept dying soon after it was started."""


class _Slot:
    """One of the N worker places: its current process, and how its recent ones fared."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: Any = None
        self.ready_pipe: Any = None
        self.started = 0.0
        self.ready = False
        #: Quick failures in a row (deaths before STABLE_AFTER, or before listening).
        self.failures = 0
        self.restart_at = 0.0


class _Supervisor:
    """Starts the workers, replaces those that die (with backoff), gives up on a crash loop."""

    def __init__(self, context: Any, workers: int, args: tuple[Any, ...]) -> None:
        self._context = context
        self._args = args  # _worker's, after the pipe
        self.slots = [_Slot(i) for i in range(workers)]
        self.port: Optional[int] = None

    def start(self, slot: _Slot) -> None:
        receive, send = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=_worker,
            args=(send, *self._args),
            name=f"h2rpc-worker-{slot.index}",
            daemon=True,
        )
        process.start()
        send.close()
        slot.process, slot.ready_pipe = process, receive
        slot.started, slot.ready = time.monotonic(), False

    @property
    def all_ready(self) -> bool:
        return all(slot.ready for slot in self.slots)

    def check(self) -> None:
        """Note workers that now listen, replace dead ones; WorkerFailed on a crash loop."""
        now = time.monotonic()
        for slot in self.slots:
            process = slot.process
            if process is None:
                if now >= slot.restart_at:
                    self.start(slot)
                    log.info("worker %d restarted (pid %s)", slot.index, slot.process.pid)
                continue
            if not slot.ready and slot.ready_pipe.poll():
                try:
                    self.port = slot.ready_pipe.recv()
                    slot.ready = True
                except (EOFError, OSError):  # it died before it could say so
                    pass
            if not process.is_alive():
                self._replace(slot, now)
            elif not slot.ready and now - slot.started > START_TIMEOUT:
                log.error(
                    "worker %d (pid %s) is not listening %.0f s after it started: killing it",
                    slot.index,
                    process.pid,
                    START_TIMEOUT,
                )
                process.kill()

    def _replace(self, slot: _Slot, now: float) -> None:
        process = slot.process
        process.join()
        slot.ready_pipe.close()
        slot.process = slot.ready_pipe = None
        lived = now - slot.started
        quick = not slot.ready or lived < STABLE_AFTER
        slot.failures = slot.failures + 1 if quick else 0
        status = _exit_status(process.exitcode)
        if slot.failures >= MAX_QUICK_FAILURES:
            message = (
                f"worker {slot.index} died {slot.failures} times in a row soon after it "
                f"started (before it listened, or within {STABLE_AFTER:g} s; last: pid "
                f"{process.pid}, {status}): giving up"
            )
            log.error("%s", message)
            raise WorkerFailed(message)
        delay = RESTART_BACKOFF * 2 ** max(0, slot.failures - 1)
        delay = min(delay, MAX_RESTART_BACKOFF)
        slot.restart_at = now + delay
        log.warning(
            "worker %d (pid %s) exited with %s after %.1f s: restarting it in %.1f s",
            slot.index,
            process.pid,
            status,
            lived,
            delay,
        )

    def stop(self, grace: float) -> None:
        """SIGTERM every worker (each stops gracefully), then wait; kill what is left."""
        running = [slot.process for slot in self.slots if slot.process is not None]
        for process in running:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process in running:
            process.join(grace + 5)
            if process.is_alive():
                process.kill()
                process.join(5)
        for slot in self.slots:
            if slot.ready_pipe is not None:
                slot.ready_pipe.close()
            slot.process = slot.ready_pipe = None


def serve(
    factory: Callable[[], Server],
    address: str,
    *,
    workers: int = 1,
    grace: float = 5.0,
    on_ready: Optional[Callable[[int], None]] = None,
    stop: Optional[threading.Event] = None,
    use_uvloop: Optional[bool] = None,
) -> None:
    """Serve ``factory()``'s services on ``address`` from ``workers`` processes, until SIGTERM,
    SIGINT or ``stop`` is set. ``on_ready(port)`` is called once all workers listen.

    ``factory`` builds a fresh ``rpc.Server`` (without ports) in each worker; with the "spawn"
    start method (where fork is unavailable) it must be picklable, e.g. a module-level function.
    Each worker runs on uvloop when it is installed (``use_uvloop=False`` opts out; see
    ``rpc.run``).

    A worker that dies is replaced by a new one on the same port, after a pause (logged, with
    the worker's exit code) that doubles while the replacements keep dying soon after they
    start. After ``MAX_QUICK_FAILURES`` such deaths in a row (a factory that fails, a port
    that cannot be bound, a crash at start-up) ``serve`` stops the other workers and raises
    ``WorkerFailed`` (so a script running it exits non-zero).
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    context: Any = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    holder: Optional[socket.socket] = None
    if parse_address(address, default_port=None).port == 0:
        # Held until the end, so that the port stays ours even while every worker is down.
        holder, address = _free_port(address)
    supervisor = _Supervisor(context, workers, (factory, address, grace, use_uvloop, os.getpid()))
    done = stop or threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: done.set())
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    announced = False
    try:
        for slot in supervisor.slots:
            supervisor.start(slot)
        while not done.is_set():
            supervisor.check()
            if not announced and supervisor.all_ready:
                announced = True
                if on_ready is not None:
                    assert supervisor.port is not None
                    on_ready(supervisor.port)
            done.wait(POLL_INTERVAL)
    finally:
        supervisor.stop(grace)
        if holder is not None:
            holder.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
