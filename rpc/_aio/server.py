"""The asyncio server: listeners, one task per call, and graceful stop."""

from __future__ import annotations

import asyncio
import logging
import ssl
from concurrent.futures import Executor, ThreadPoolExecutor
from typing import Optional

from transport import Listener, Stream, parse_address

from .._core.server import ServerCore
from .._core.server_call import ServerCallCore
from .server_call import start

log = logging.getLogger(__name__)


class _HandlerPool:
    """Where plain ``def`` handlers run: the pool given to ``set_executor()``, else a default one
    made on first use. What the server's calls get instead of the server (``HandlerPool``)."""

    def __init__(self) -> None:
        self._executor: Optional[Executor] = None

    def set(self, executor: Executor) -> None:
        self._executor = executor

    def executor(self) -> Executor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(thread_name_prefix="h2rpc-handler")
        return self._executor

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)


class Server(ServerCore):
    """Serves registered services on one or more addresses, on the running event loop.

    ::

        server = rpc.Server()
        server.add_service(helloworld_pb2.DESCRIPTOR.services_by_name["Greeter"], Greeter())
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        await server.wait_for_termination()

    Handlers are ``async def`` (or async generators); plain ``def`` handlers run in a thread pool
    (a default one, or the one given to ``set_executor()``), so one servicer class can serve on
    both the async and the blocking server.
    """

    def _setup(self) -> None:
        self._listeners: list[Listener] = []
        self._calls: set[asyncio.Task[None]] = set()
        self._stopped: Optional[asyncio.Event] = None
        self._pool = _HandlerPool()
        #: Set by ``rpc.serve(workers=N)``: every worker process listens on the same port.
        self._reuse_port = False

    def set_executor(self, executor: ThreadPoolExecutor) -> None:
        """The thread pool that runs plain ``def`` handlers."""
        self._pool.set(executor)

    def _add_port(self, address: str, ssl_context: Optional[ssl.SSLContext]) -> int:
        listener = Listener(
            parse_address(address, default_port=None),
            self._on_request,
            options=self._connection_options,
            ssl=ssl_context,
            reuse_port=self._reuse_port,
        )
        self._listeners.append(listener)
        return listener.port

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("server already started")
        if not self._listeners:
            raise RuntimeError("no address to serve: call add_insecure_port() first")
        self._started = True
        self._stopped = asyncio.Event()
        for listener in self._listeners:
            await listener.start()

    async def stop(self, grace: Optional[float] = None) -> None:
        """Stop accepting; shut every connection down gracefully; let calls finish for
        ``grace`` s; close.

        Each connection gets GOAWAY(2^31-1) and a PING, then, once the client has answered
        (it has read the GOAWAY: it opens no more streams), the final GOAWAY naming the last
        stream accepted (RFC 9113 §6.8). Calls the client started before it saw the first
        GOAWAY are served like the others, within the same grace period.
        """
        if self._stopping:
            if self._stopped is not None:
                await self._stopped.wait()
            return
        self._stopping = True
        self._stop_began()
        for listener in self._listeners:
            listener.stop_accepting()
        connections = [c for listener in self._listeners for c in listener.connections]
        for conn in connections:
            conn.shut_down()
        loop = asyncio.get_running_loop()
        end = loop.time() + (grace or 0.0)
        if grace and connections:
            # New calls may still arrive until every client has answered the shutdown PING.
            drains = [loop.create_task(conn.wait_drained()) for conn in connections]
            _, pending = await asyncio.wait(drains, timeout=grace)
            for task in pending:
                task.cancel()
        while self._calls and loop.time() < end:
            await asyncio.wait(set(self._calls), timeout=end - loop.time())
        for task in list(self._calls):
            task.cancel()
        if self._calls:
            await asyncio.wait(set(self._calls), timeout=1.0)
        for conn in connections:
            conn.close()
        for listener in self._listeners:
            await listener.wait_stopped()
        self._pool.shutdown()
        if self._stopped is not None:
            self._stopped.set()

    async def wait_for_termination(self, timeout: Optional[float] = None) -> bool:
        """Wait until ``stop()`` has finished; False if ``timeout`` passed first."""
        if self._stopped is None:
            raise RuntimeError("server not started")
        try:
            await asyncio.wait_for(self._stopped.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    async def __aenter__(self) -> Server:
        if not self._started:
            await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop(None)

    # ------------------------------------------------------------------ calls

    def _on_request(self, stream: Stream) -> None:
        call = ServerCallCore(self._call_settings, stream)
        refusal = self._over_limit(len(self._calls))
        if refusal is not None:
            call.end(refusal)
            return
        task = start(call, stream, self._pool)
        if not task.done():  # it waits for something: stop() must know it
            self._calls.add(task)
            task.add_done_callback(self._calls.discard)
