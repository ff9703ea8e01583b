"""Benchmark server on purerpc (anyio, h2 3.x), run by the runner in its own virtualenv
(``.bench-purerpc-venv``: purerpc requires h2<4, h2rpc h2>=4.1).

``python -m tests.bench.purerpc_server [--port 0]``: prints ``PORT <n>``, serves until SIGTERM,
SIGINT or EOF on stdin. Methods are registered by hand (``Service.add_method``), and the listener
is opened here on the given host (purerpc's own ``serve_async`` listens on every interface).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from .service import (
    SERVICE_NAME,
    StreamBodies,
    announce,
    messages,
    prepare_process,
    server_arguments,
    wait_for_stop_async,
)


def make_service() -> Any:
    import purerpc
    from purerpc import Cardinality, RPCSignature

    m = messages()
    bodies = StreamBodies()

    async def unary(request: Any) -> Any:
        return request

    async def server_stream(request: Any) -> Any:
        message = bodies.get(request.size)
        for _ in range(request.count):
            yield message

    async def bidi(requests: Any) -> Any:
        async for request in requests:
            yield request

    service = purerpc.Service(SERVICE_NAME)
    service.add_method("Unary", unary, RPCSignature(Cardinality.UNARY_UNARY, m.Payload, m.Payload))
    service.add_method(
        "ServerStream",
        server_stream,
        RPCSignature(Cardinality.UNARY_STREAM, m.StreamRequest, m.Payload),
    )
    service.add_method("Bidi", bidi, RPCSignature(Cardinality.STREAM_STREAM, m.Payload, m.Payload))
    return service


async def serve(host: str, port: int) -> None:
    import anyio
    import purerpc
    from purerpc.server import ConnectionHandler

    service = make_service()
    server = purerpc.Server(port=port)
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    announce(listener.extra(anyio.abc.SocketAttribute.local_port))
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(listener.serve, ConnectionHandler({SERVICE_NAME: service}, server))
        await wait_for_stop_async()
        tasks.cancel_scope.cancel()


def main() -> int:
    prepare_process()
    args = server_arguments(__doc__.splitlines()[0]).parse_args()
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
