"""Benchmark server on grpcio's synchronous API (``grpc.server`` with a thread pool).

``python -m tests.bench.grpcio_sync_server [--port 0]``: prints ``PORT <n>``, serves until
SIGTERM, SIGINT or EOF on stdin. Handlers are registered generically (no generated code).
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .service import (
    MAX_MESSAGE,
    SERVICE_NAME,
    StreamBodies,
    announce,
    messages,
    prepare_process,
    server_arguments,
    wait_for_stop_blocking,
)

#: As h2rpc's blocking server: the 64-concurrent scenario keeps 64 calls in flight.
WORKERS = 64
OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
]


def handlers(grpc: Any) -> Any:
    m = messages()
    bodies = StreamBodies()

    def unary(request: Any, context: Any) -> Any:
        return request

    def server_stream(request: Any, context: Any) -> Any:
        message = bodies.get(request.size)
        for _ in range(request.count):
            yield message

    def bidi(request_iterator: Any, context: Any) -> Any:
        yield from request_iterator

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


def main() -> int:
    prepare_process()
    args = server_arguments(__doc__.splitlines()[0]).parse_args()
    import grpc

    server = grpc.server(ThreadPoolExecutor(max_workers=WORKERS), options=OPTIONS)
    server.add_generic_rpc_handlers((handlers(grpc),))
    bound = server.add_insecure_port(f"{args.host}:{args.port}")
    server.start()
    announce(bound)
    wait_for_stop_blocking()
    server.stop(0.5).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
