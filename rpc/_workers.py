"""Several server processes on one port (``SO_REUSEPORT``), so that all of a machine's cores serve.

One Python process runs one event loop on one core; a pure-Python server scales across cores by
running several processes. ``serve(factory, address, workers=N)`` starts N worker processes, each
building its own server with ``factory()`` and listening on the same port; the kernel spreads new
connections among them. SIGTERM or SIGINT to the parent stops them all gracefully.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import socket
import sys
import threading
from typing import Any, Callable, Optional

from transport import parse_address

from ._loop import run
from ._server import Server

__all__ = ["serve"]


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
    factory: Callable[[], Server],
    address: str,
    grace: float,
    ready: Any,
    use_uvloop: Optional[bool],
) -> None:
    async def main() -> None:
        server = factory()
        server._reuse_port = True
        port = server.add_insecure_port(address)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        ready.put(port)
        await stop.wait()
        await server.stop(grace)

    run(main(), use_uvloop=use_uvloop)


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
    """
    if workers < 1:
        raise ValueError("workers must be at least 1")
    context: Any = multiprocessing.get_context("fork" if sys.platform != "win32" else "spawn")
    holder: Optional[socket.socket] = None
    if parse_address(address, default_port=None).port == 0:
        holder, address = _free_port(address)
    ready = context.Queue()
    processes = [
        context.Process(
            target=_worker, args=(factory, address, grace, ready, use_uvloop), daemon=True
        )
        for _ in range(workers)
    ]
    done = stop or threading.Event()
    previous = {
        signum: signal.signal(signum, lambda *_: done.set())
        for signum in (signal.SIGTERM, signal.SIGINT)
    }
    try:
        for process in processes:
            process.start()
        ports = {ready.get(timeout=30) for _ in processes}
        if holder is not None:
            holder.close()
        if on_ready is not None:
            on_ready(ports.pop())
        while not done.wait(0.2):
            if not all(p.is_alive() for p in processes):
                break  # a worker died: stop them all rather than serve at reduced capacity
    finally:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        for process in processes:
            process.join(grace + 5)
            if process.is_alive():
                process.kill()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
