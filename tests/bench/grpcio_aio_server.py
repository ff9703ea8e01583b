"""Benchmark server on grpcio's asyncio API (``grpc.aio.server``).

``python -m tests.bench.grpcio_aio_server [--port 0]``: prints ``PORT <n>``, serves until
SIGTERM, SIGINT or EOF on stdin. Handlers are registered generically (no generated code).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from .service import (
    MAX_MESSAGE,
    SERVICE_NAME,
    StreamBodies,
    announce,
    messages,
    prepare_process,
    server_arguments,
    wait_for_stop_async,
)

OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
]


def handlers(grpc: Any) -> Any:
    m = messages()
    bodies = StreamBodies()

    async def unary(request: Any, context: Any) -> Any:
        return request

    async def server_stream(request: Any, context: Any) -> Any:
        message = bodies.get(request.size)
        for _ in range(request.count):
            yield message

    async def bidi(request_iterator: Any, context: Any) -> Any:
        async for request in request_iterator:
            yield request

    payload = {
        "request_deserializer": m.Payload.FromString,
        "response_serializer": m.Payload.SerializeToString,
    }
    return grpc.method_handlers_generic_handler(
        SERVICE_NAME,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(unary, **payload),
            "ServerStream": grpc.unary_stream_rpc_method_handler(
                server_stream,
                request_deserializer=m.StreamRequest.FromString,
                response_serializer=m.Payload.SerializeToString,
            ),
            "Bidi": grpc.stream_stream_rpc_method_handler(bidi, **payload),
        },
    )


async def serve(host: str, port: int) -> None:
    import grpc

    server = grpc.aio.server(options=OPTIONS)
    server.add_generic_rpc_handlers((handlers(grpc),))
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    announce(bound)
    await wait_for_stop_async()
    await server.stop(0.5)


def main() -> int:
    prepare_process()
    args = server_arguments(__doc__.splitlines()[0]).parse_args()
    asyncio.run(serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
