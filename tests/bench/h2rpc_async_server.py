"""Benchmark server on h2rpc's asyncio API (``rpc.Server``), optionally on uvloop.

``python -m tests.bench.h2rpc_async_server [--port 0] [--uvloop] [--workers N]``: prints
``PORT <n>`` once serving, serves until SIGTERM, SIGINT or EOF on stdin. ``--workers N`` serves
from N processes on one port with ``rpc.serve(..., workers=N)`` (SO_REUSEPORT). Python 3.9+ and
PyPy.
"""

from __future__ import annotations

import functools
import os
import sys
import threading
from typing import Any

from .service import (
    MAX_MESSAGE,
    StreamBodies,
    announce,
    messages,
    prepare_process,
    run_async,
    server_arguments,
    wait_for_stop_async,
)


class BenchServicer:
    def __init__(self) -> None:
        self._bodies = StreamBodies()

    async def Unary(self, request: Any, context: Any) -> Any:
        return request

    async def ServerStream(self, request: Any, context: Any) -> Any:
        message = self._bodies.get(request.size)
        for _ in range(request.count):
            yield message

    async def Bidi(self, request_iterator: Any, context: Any) -> Any:
        async for request in request_iterator:
            yield request


def make_server(intercepted: bool = False) -> Any:
    import rpc

    from .noop_interceptors import server_interceptors

    server = rpc.Server(
        max_receive_message_length=MAX_MESSAGE,
        max_send_message_length=MAX_MESSAGE,
        interceptors=server_interceptors(intercepted),
    )
    server.add_service(messages().service, BenchServicer())
    return server


def serve_workers(host: str, port: int, workers: int, intercepted: bool = False) -> None:
    """N processes on one port; stops on SIGTERM/SIGINT (rpc.serve) or EOF on stdin."""
    import rpc

    stop = threading.Event()

    def watch_stdin() -> None:
        try:
            while os.read(sys.stdin.fileno(), 4096):
                pass
        except OSError:
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    factory = functools.partial(make_server, intercepted)
    rpc.serve(factory, f"{host}:{port}", workers=workers, on_ready=announce, stop=stop)


async def serve(host: str, port: int, intercepted: bool = False) -> None:
    server = make_server(intercepted)
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    announce(bound)
    await wait_for_stop_async()
    await server.stop(0.5)


def main() -> int:
    prepare_process()
    parser = server_arguments(__doc__.splitlines()[0], uvloop=True)
    parser.add_argument("--workers", type=int, default=1, help="rpc.serve(workers=N)")
    args = parser.parse_args()
    if args.workers > 1:
        serve_workers(args.host, args.port, args.workers, args.intercepted)
        return 0
    run_async(lambda: serve(args.host, args.port, args.intercepted), args.uvloop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
