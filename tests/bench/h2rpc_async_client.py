"""Benchmark client on h2rpc's asyncio API (``rpc.Channel`` + ``rpc.Stub``), optionally on uvloop.

``python -m tests.bench.h2rpc_async_client --target 127.0.0.1:PORT --scenario unary1 [--uvloop]``
(see driver.py). Python 3.9+ and PyPy.
"""

from __future__ import annotations

import sys
from typing import Any

from .driver import main_async
from .service import MAX_MESSAGE, messages


class _Bidi:
    def __init__(self, call: Any) -> None:
        self._call = call
        self.write = call.write
        self.read = call.read

    async def finish(self) -> None:
        import rpc

        await self._call.done_writing()
        while await self._call.read() is not rpc.EOF:
            pass


class Client:
    def __init__(self, target: str, intercepted: bool = False) -> None:
        import rpc

        from .noop_interceptors import NoopAsyncClientInterceptor

        interceptors = [NoopAsyncClientInterceptor()] if intercepted else []
        self._channel = rpc.Channel(
            target, max_receive_message_length=MAX_MESSAGE, interceptors=interceptors
        )
        stub = rpc.Stub(self._channel, messages().service)
        self.unary = stub.Unary
        self.server_stream = stub.ServerStream
        self._bidi = stub.Bidi

    async def bidi(self) -> _Bidi:
        return _Bidi(self._bidi())

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._channel.close()


if __name__ == "__main__":
    sys.exit(
        main_async(__doc__.splitlines()[0], lambda args: Client(args.target, args.intercepted))
    )
