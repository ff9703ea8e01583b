"""Run an h2rpc server on its own event loop in a background thread, for in-process tests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import rpc


class ServerThread:
    """Start with ``with ServerThread(make_server) as target: ...``; stops on exit."""

    def __init__(self, make_server: Callable[[], rpc.Server], address: str = "127.0.0.1:0"):
        self._make_server = make_server
        self._address = address
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: rpc.Server | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self.port = 0
        self.target = ""

    def __enter__(self) -> str:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("server thread did not start")
        if self._error is not None:
            raise self._error
        return self.target

    def __exit__(self, *exc: Any) -> None:
        # (A test that stopped the server itself has waited for that: the thread is ending.)
        if self._loop is not None and self._server is not None and not self._server._stopping:
            future = asyncio.run_coroutine_threadsafe(self._server.stop(0.5), self._loop)
            future.result(10)
        self._thread.join(10)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop and return its result."""
        assert self._loop is not None
        result: list[Any] = []
        done = threading.Event()

        def run() -> None:
            result.append(fn())
            done.set()

        self._loop.call_soon_threadsafe(run)
        done.wait(5)
        return result[0]

    @property
    def server(self) -> rpc.Server:
        assert self._server is not None
        return self._server

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # surfaced by __enter__
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._server = self._make_server()
        self.port = self._server.add_insecure_port(self._address)
        unix = self._address.startswith("unix")
        self.target = self._address if unix else f"127.0.0.1:{self.port}"
        await self._server.start()
        self._ready.set()
        await self._server.wait_for_termination()
