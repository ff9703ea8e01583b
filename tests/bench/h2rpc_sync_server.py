"""Benchmark server on h2rpc's blocking API (``rpc.sync.Server``, handlers in a thread pool).

``python -m tests.bench.h2rpc_sync_server [--port 0]``: prints ``PORT <n>`` once serving, serves
until SIGTERM, SIGINT or EOF on stdin. Python 3.9+ and PyPy.
"""

from __future__ import annotations

import sys
from typing import Any

from .service import (
    MAX_MESSAGE,
    StreamBodies,
    announce,
    messages,
    prepare_process,
    server_arguments,
    wait_for_stop_blocking,
)

#: Threads in the handler pool: the 64-concurrent scenario keeps 64 calls in flight.
WORKERS = 64


class BenchServicer:
    def __init__(self) -> None:
        self._bodies = StreamBodies()

    def Unary(self, request: Any, context: Any) -> Any:
        return request

    def ServerStream(self, request: Any, context: Any) -> Any:
        message = self._bodies.get(request.size)
        for _ in range(request.count):
            yield message

    def Bidi(self, request_iterator: Any, context: Any) -> Any:
        yield from request_iterator


def main() -> int:
    prepare_process()
    args = server_arguments(__doc__.splitlines()[0]).parse_args()
    import rpc

    from .noop_interceptors import server_interceptors

    server = rpc.sync.Server(
        interceptors=server_interceptors(args.intercepted),
        max_workers=WORKERS,
        max_calls_per_connection=WORKERS,
        max_receive_message_length=MAX_MESSAGE,
        max_send_message_length=MAX_MESSAGE,
    )
    server.add_service(messages().service, BenchServicer())
    bound = server.add_insecure_port(f"{args.host}:{args.port}")
    server.start()
    announce(bound)
    wait_for_stop_blocking()
    server.stop(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
