"""Benchmark server on h2rpc's asyncio API (``rpc.Server``), optionally on uvloop.

``python -m tests.bench.h2rpc_async_server [--port 0] [--uvloop] [--workers N]``: prints
``PORT <n>`` once serving, serves until SIGTERM, SIGINT or EOF on stdin. ``--workers N`` passes
``workers=N`` to ``rpc.Server`` (the multi-process option) and exits with status 3, saying so,
when this version of ``rpc.Server`` has no such option. Python 3.9+ and PyPy.
"""

from __future__ import annotations

import inspect
import sys
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

#: Exit status when ``--workers`` is asked of an ``rpc.Server`` without a ``workers`` option.
NO_WORKERS_OPTION = 3


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


async def serve(host: str, port: int, workers: int) -> None:
    import rpc

    options: dict[str, Any] = {}
    if workers > 1:
        options["workers"] = workers
    server = rpc.Server(
        max_receive_message_length=MAX_MESSAGE, max_send_message_length=MAX_MESSAGE, **options
    )
    server.add_service(messages().service, BenchServicer())
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    announce(bound)
    await wait_for_stop_async()
    await server.stop(0.5)


def main() -> int:
    prepare_process()
    parser = server_arguments(__doc__.splitlines()[0], uvloop=True)
    parser.add_argument("--workers", type=int, default=1, help="rpc.Server(workers=N)")
    args = parser.parse_args()
    if args.workers > 1:
        import rpc

        if "workers" not in inspect.signature(rpc.Server).parameters:
            print("UNSUPPORTED rpc.Server has no workers= option", flush=True)
            return NO_WORKERS_OPTION
    run_async(lambda: serve(args.host, args.port, args.workers), args.uvloop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
