"""Benchmark client on grpcio's asyncio API (``grpc.aio``): one channel, tasks for concurrency.

``python -m tests.bench.grpcio_aio_client --target 127.0.0.1:PORT --scenario unary1`` (see
driver.py). Methods are made from paths (no generated code).
"""

from __future__ import annotations

import sys
from typing import Any

from .driver import main_async
from .service import BIDI_PATH, MAX_MESSAGE, SERVER_STREAM_PATH, UNARY_PATH, messages

OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
]


class _Bidi:
    def __init__(self, call: Any) -> None:
        self._call = call
        self.write = call.write
        self.read = call.read

    async def finish(self) -> None:
        import grpc

        await self._call.done_writing()
        while await self._call.read() is not grpc.aio.EOF:
            pass


class Client:
    def __init__(self, target: str) -> None:
        import grpc

        m = messages()
        self._channel = grpc.aio.insecure_channel(target, options=OPTIONS)
        payload = {
            "request_serializer": m.Payload.SerializeToString,
            "response_deserializer": m.Payload.FromString,
        }
        self.unary = self._channel.unary_unary(UNARY_PATH, **payload)
        self.server_stream = self._channel.unary_stream(
            SERVER_STREAM_PATH,
            request_serializer=m.StreamRequest.SerializeToString,
            response_deserializer=m.Payload.FromString,
        )
        self._bidi = self._channel.stream_stream(BIDI_PATH, **payload)

    async def bidi(self) -> _Bidi:
        return _Bidi(self._bidi())

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._channel.close()


if __name__ == "__main__":
    sys.exit(main_async(__doc__.splitlines()[0], lambda args: Client(args.target)))
