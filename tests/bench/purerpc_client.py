"""Benchmark client on purerpc (anyio on asyncio): one channel, tasks for concurrency; run by the
runner in its own virtualenv (purerpc requires h2<4).

``python -m tests.bench.purerpc_client --target 127.0.0.1:PORT --scenario unary1`` (see
driver.py). Method stubs are made by hand (``Client.get_method_stub``).
"""

from __future__ import annotations

import sys
from typing import Any

from .driver import main_async
from .service import SERVICE_NAME, messages


class _Bidi:
    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.write = stream.send_message
        self.read = stream.receive_message

    async def finish(self) -> None:
        await self._stream.close()
        while await self._stream.receive_message() is not None:
            pass


class Client:
    def __init__(self, target: str) -> None:
        import purerpc

        host, _, port = target.rpartition(":")
        self._channel = purerpc.insecure_channel(host.strip("[]"), int(port))

    async def __aenter__(self) -> Client:
        import purerpc
        from purerpc import Cardinality, RPCSignature

        m = messages()
        await self._channel.__aenter__()
        client = purerpc.Client(SERVICE_NAME, self._channel)
        self.unary = client.get_method_stub(
            "Unary", RPCSignature(Cardinality.UNARY_UNARY, m.Payload, m.Payload)
        )
        self.server_stream = client.get_method_stub(
            "ServerStream", RPCSignature(Cardinality.UNARY_STREAM, m.StreamRequest, m.Payload)
        )
        self._bidi = client.get_method_stub(
            "Bidi", RPCSignature(Cardinality.STREAM_STREAM, m.Payload, m.Payload)
        )
        return self

    async def bidi(self) -> _Bidi:
        return _Bidi(await self._bidi())

    async def __aexit__(self, *exc_info: object) -> None:
        await self._channel.__aexit__(None, None, None)


if __name__ == "__main__":
    sys.exit(main_async(__doc__.splitlines()[0], lambda args: Client(args.target)))
