"""Benchmark client on grpcio's synchronous API: one channel, threads for concurrency.

``python -m tests.bench.grpcio_sync_client --target 127.0.0.1:PORT --scenario unary1`` (see
driver.py). Methods are made from paths (no generated code).
"""

from __future__ import annotations

import sys

from .driver import QueueBidi, main_blocking
from .service import BIDI_PATH, MAX_MESSAGE, SERVER_STREAM_PATH, UNARY_PATH, messages

OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
]


class Client:
    def __init__(self, target: str) -> None:
        import grpc

        m = messages()
        self._channel = grpc.insecure_channel(target, options=OPTIONS)
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

    def bidi(self) -> QueueBidi:
        return QueueBidi(self._bidi)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._channel.close()


if __name__ == "__main__":
    sys.exit(main_blocking(__doc__.splitlines()[0], lambda args: Client(args.target)))
