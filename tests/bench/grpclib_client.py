"""Benchmark client on grpclib (asyncio), optionally on uvloop: one channel, tasks for
concurrency.

``python -m tests.bench.grpclib_client --target 127.0.0.1:PORT --scenario unary1 [--uvloop]``
(see driver.py). Methods are made by hand from paths (``grpclib.client.UnaryUnaryMethod`` etc.).
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

from .driver import main_async
from .service import BIDI_PATH, SERVER_STREAM_PATH, UNARY_PATH, messages


class _Bidi:
    def __init__(self, context: Any, stream: Any) -> None:
        self._context = context
        self._stream = stream
        self.write = stream.send_message
        self.read = stream.recv_message

    async def finish(self) -> None:
        await self._stream.end()
        while await self._stream.recv_message() is not None:
            pass
        await self._context.__aexit__(None, None, None)


class Client:
    def __init__(self, target: str) -> None:
        from grpclib.client import Channel, StreamStreamMethod, UnaryStreamMethod, UnaryUnaryMethod

        m = messages()
        host, _, port = target.rpartition(":")
        self._channel = Channel(host.strip("[]"), int(port))
        self.unary = UnaryUnaryMethod(self._channel, UNARY_PATH, m.Payload, m.Payload)
        self._stream = UnaryStreamMethod(
            self._channel, SERVER_STREAM_PATH, m.StreamRequest, m.Payload
        )
        self._bidi = StreamStreamMethod(self._channel, BIDI_PATH, m.Payload, m.Payload)

    async def server_stream(self, request: Any) -> AsyncIterator[Any]:
        async with self._stream.open() as stream:
            await stream.send_message(request, end=True)
            async for reply in stream:
                yield reply

    async def bidi(self) -> _Bidi:
        context = self._bidi.open()
        stream = await context.__aenter__()
        return _Bidi(context, stream)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._channel.close()


if __name__ == "__main__":
    sys.exit(main_async(__doc__.splitlines()[0], lambda args: Client(args.target)))
