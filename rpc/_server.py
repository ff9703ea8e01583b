"""The async server: listeners, the service registry, and one task per call."""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Sequence
from typing import Any, Optional

from google.protobuf.descriptor import ServiceDescriptor

from codec import is_supported_encoding
from transport import ConnectionOptions, Listener, Stream, parse_address

from ._handlers import GenericRpcHandler, MethodHandler
from ._options import (
    DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
    SERVER_GRPC_OPTIONS,
    merge_grpc_options,
    size_limit,
)
from ._options import connection_options as connection_options_from
from ._registry import Registry
from ._server_call import ServicerContext
from ._service import service_handlers
from ._tls import require_alpn_h2

log = logging.getLogger(__name__)


class Server:
    """Serves registered services on one or more addresses.

    ::

        server = rpc.Server()
        server.add_service(helloworld_pb2.DESCRIPTOR.services_by_name["Greeter"], Greeter())
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        await server.wait_for_termination()
    """

    def __init__(
        self,
        handlers: Sequence[GenericRpcHandler] = (),
        *,
        max_receive_message_length: Optional[int] = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
        max_send_message_length: Optional[int] = None,
        max_concurrent_streams: Optional[int] = None,
        max_metadata_size: Optional[int] = None,
        compression: Optional[str] = None,
        keepalive_time: Optional[float] = None,
        keepalive_timeout: Optional[float] = None,
        keepalive_permit_without_calls: Optional[bool] = None,
        min_ping_interval: Optional[float] = None,
        max_ping_strikes: Optional[int] = None,
        connection_options: Optional[ConnectionOptions] = None,
        options: Sequence[tuple[str, Any]] = (),
    ) -> None:
        settings: dict[str, Any] = {
            "max_receive_message_length": max_receive_message_length,
            "max_send_message_length": max_send_message_length,
            "max_concurrent_streams": max_concurrent_streams,
            "max_metadata_size": max_metadata_size,
            "keepalive_time": keepalive_time,
            "keepalive_timeout": keepalive_timeout,
            "keepalive_permit_without_calls": keepalive_permit_without_calls,
            "min_ping_interval": min_ping_interval,
            "max_ping_strikes": max_ping_strikes,
        }
        merge_grpc_options(settings, options, SERVER_GRPC_OPTIONS, "server")
        if compression == "identity":
            compression = None
        if not is_supported_encoding(compression):
            raise ValueError(f"unsupported compression {compression!r}: use gzip or deflate")
        #: The default compression of responses (used when the client accepts it).
        self._compression = compression
        self._max_receive_message_length = size_limit(settings["max_receive_message_length"])
        self._max_send_message_length = size_limit(settings["max_send_message_length"])
        self._connection_options = connection_options_from(connection_options, settings)
        self._registry = Registry()
        for handler in handlers:
            self._registry.add(handler)
        self._listeners: list[Listener] = []
        self._calls: set[asyncio.Task[None]] = set()
        self._started = False
        self._stopping = False
        self._stopped: Optional[asyncio.Event] = None

    # ------------------------------------------------------------------ registration

    def add_service(self, descriptor: ServiceDescriptor, servicer: object) -> None:
        """Serve every RPC of a protobuf service with the servicer's methods of the same names."""
        self._registry.add(service_handlers(descriptor, servicer))

    def add_generic_rpc_handlers(self, handlers: Sequence[GenericRpcHandler]) -> None:
        for handler in handlers:
            self._registry.add(handler)

    def add_method(self, path: str, handler: MethodHandler) -> None:
        """Serve one ``/package.Service/Method`` path with a hand-built handler."""
        self._registry.add_method(path, handler)

    # ------------------------------------------------------------------ addresses

    def add_insecure_port(self, address: str) -> int:
        """Bind ``address`` now and return the port (the real one for port 0; 0 for Unix)."""
        return self._add_port(address, None)

    def add_secure_port(self, address: str, ssl_context: ssl.SSLContext) -> int:
        """Like ``add_insecure_port``, serving TLS; see ``rpc.ssl_server_context()``.

        ALPN ``h2`` is required: the context is made to offer it, and a client that does not
        negotiate it is disconnected.
        """
        require_alpn_h2(ssl_context)
        return self._add_port(address, ssl_context)

    def _add_port(self, address: str, ssl_context: Optional[ssl.SSLContext]) -> int:
        listener = Listener(
            parse_address(address, default_port=None),
            self._on_request,
            options=self._connection_options,
            ssl=ssl_context,
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
        """Stop accepting; GOAWAY every connection; let calls finish for ``grace`` s; close."""
        if self._stopping:
            if self._stopped is not None:
                await self._stopped.wait()
            return
        self._stopping = True
        for listener in self._listeners:
            listener.stop_accepting()
        connections = [c for listener in self._listeners for c in listener.connections]
        for conn in connections:
            conn.goaway()
        if self._calls and grace:
            await asyncio.wait(set(self._calls), timeout=grace)
        for task in list(self._calls):
            task.cancel()
        if self._calls:
            await asyncio.wait(set(self._calls), timeout=1.0)
        for conn in connections:
            conn.close()
        for listener in self._listeners:
            await listener.wait_stopped()
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
        context = ServicerContext(self, stream)
        task = asyncio.get_running_loop().create_task(context._run())
        context._task = task
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)
