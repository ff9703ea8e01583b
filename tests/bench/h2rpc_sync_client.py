"""Benchmark client on h2rpc's blocking API (``rpc.sync.Channel`` + ``rpc.Stub``), threads for
concurrency, all on one channel.

``python -m tests.bench.h2rpc_sync_client --target 127.0.0.1:PORT --scenario unary1`` (see
driver.py). Python 3.9+ and PyPy.
"""

from __future__ import annotations

import sys

from .driver import QueueBidi, main_blocking
from .service import MAX_MESSAGE, messages


class Client:
    def __init__(self, target: str, intercepted: bool = False) -> None:
        import rpc

        from .noop_interceptors import NoopClientInterceptor

        interceptors = [NoopClientInterceptor()] if intercepted else []
        self._channel = rpc.sync.Channel(
            target, max_receive_message_length=MAX_MESSAGE, interceptors=interceptors
        )
        stub = rpc.Stub(self._channel, messages().service)
        self.unary = stub.Unary
        self.server_stream = stub.ServerStream
        self._bidi = stub.Bidi

    def bidi(self) -> QueueBidi:
        return QueueBidi(self._bidi)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._channel.close()


if __name__ == "__main__":
    sys.exit(
        main_blocking(__doc__.splitlines()[0], lambda args: Client(args.target, args.intercepted))
    )
