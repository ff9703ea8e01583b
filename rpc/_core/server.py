"""What every server shares, async or blocking: settings, the registry, adding ports."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

from google.protobuf.descriptor import ServiceDescriptor

from codec import Status, StatusCode
from transport import ConnectionOptions

from .._errors import UsageError
from .._handlers import GenericRpcHandler, MethodHandler, service_handlers
from .._tls import require_alpn_h2
from .._trace.capture import PcapOption, with_capture
from .._trace.tracer import TraceOption, with_tracer
from ..interceptors import intercepted_lookup, server_call_starter, split_server_interceptors
from .options import (
    DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
    SERVER_GRPC_OPTIONS,
    merge_grpc_options,
    normalize_compression,
    size_limit,
)
from .options import connection_options as connection_options_from
from .registry import Registry
from .server_call import ServerCallSettings

log = logging.getLogger(__name__)


class ServerCore:
    """Settings (grpcio names, seconds and bytes; see the README's options table), the service
    registry, and the ports; the async and blocking servers add serving.

    ``max_connection_idle``, ``max_connection_age``, ``max_connection_age_grace`` (seconds,
    None: never; grpc-go's and grpc-core's): drain a connection with a graceful GOAWAY when no
    call has been open on it for that long, or when it is that old (+-10% jitter), so clients
    reconnect and load spreads over new servers; calls still running after the age's grace are
    cancelled (transport/lifetime.py).

    ``interceptors``: grpcio-shaped ``ServerInterceptor``s (``intercept_service``) and
    ``rpc.Interceptor``s, run in the order given (see ``rpc.interceptors``).
    """

    #: Whether ``async def intercept_service`` interceptors may be used (asyncio server).
    _async_interceptors = True

    def __init__(
        self,
        handlers: Sequence[GenericRpcHandler] = (),
        *,
        max_receive_message_length: Optional[int] = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
        max_send_message_length: Optional[int] = None,
        max_concurrent_streams: Optional[int] = None,
        maximum_concurrent_rpcs: Optional[int] = None,
        max_metadata_size: Optional[int] = None,
        compression: Optional[str] = None,
        keepalive_time: Optional[float] = None,
        keepalive_timeout: Optional[float] = None,
        keepalive_permit_without_calls: Optional[bool] = None,
        min_ping_interval: Optional[float] = None,
        max_ping_strikes: Optional[int] = None,
        max_connection_idle: Optional[float] = None,
        max_connection_age: Optional[float] = None,
        max_connection_age_grace: Optional[float] = None,
        connection_options: Optional[ConnectionOptions] = None,
        options: Sequence[tuple[str, Any]] = (),
        trace: TraceOption = None,
        pcap: PcapOption = None,
        interceptors: Sequence[Any] = (),
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
            "max_connection_idle": max_connection_idle,
            "max_connection_age": max_connection_age,
            "max_connection_age_grace": max_connection_age_grace,
        }
        merge_grpc_options(settings, options, SERVER_GRPC_OPTIONS, "server")
        try:
            #: The default compression of responses (used when the client accepts it).
            self._compression = normalize_compression(compression)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        self._max_receive_message_length = size_limit(settings["max_receive_message_length"])
        self._max_send_message_length = size_limit(settings["max_send_message_length"])
        self._connection_options = connection_options_from(connection_options, settings)
        # Wire tracing (rpc._trace): this option, an active rpc.trace() block, or H2RPC_TRACE.
        self._connection_options = with_tracer(self._connection_options, trace)
        # Wireshark capture (rpc._trace.capture): this option, an active writer, or H2RPC_PCAP.
        self._connection_options = with_capture(self._connection_options, pcap)
        #: Calls running at once, server-wide, beyond which new ones get RESOURCE_EXHAUSTED.
        self._maximum_concurrent_rpcs = maximum_concurrent_rpcs
        self._registry = Registry()
        for handler in handlers:
            self._registry.add(handler)
        # Interceptors (rpc.interceptors): grpcio's intercept_service wraps the handler lookup;
        # rpc.Interceptor runs in each call's program. Without them the call path is unchanged.
        lookup: Any = self._registry.lookup
        intercept = None
        if interceptors:
            services, calls = split_server_interceptors(interceptors)
            if services:
                lookup = intercepted_lookup(lookup, services, self._async_interceptors)
            if calls:
                intercept = server_call_starter(calls)
        #: What every call gets from this server (nothing else: calls do not see the server).
        self._call_settings = ServerCallSettings(
            lookup=lookup,
            max_receive_message_length=self._max_receive_message_length,
            max_send_message_length=self._max_send_message_length,
            compression=self._compression,
            intercept=intercept,
        )
        self._started = False
        self._stopping = False
        self._stop_callbacks: list[Callable[[], None]] = []
        self._setup()

    def _setup(self) -> None:
        """The driver's own state (listeners, the set of running calls)."""

    def add_stop_callback(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` (no argument, once) when ``stop()`` begins, before connections are
        shut down and while calls may still run (health checking turns NOT_SERVING here)."""
        self._stop_callbacks.append(callback)

    def _stop_began(self) -> None:
        """Run the stop callbacks, in the order added; one that raises is logged and skipped."""
        for callback in self._stop_callbacks:
            try:
                callback()
            except Exception:
                log.exception("stop callback %r failed", callback)

    # ------------------------------------------------------------------ registration

    def add_service(self, descriptor: ServiceDescriptor, servicer: object) -> None:
        """Serve every RPC of a protobuf service with the servicer's methods of the same names."""
        self._registry.add(service_handlers(descriptor, servicer))

    def add_generic_rpc_handlers(self, handlers: Sequence[GenericRpcHandler]) -> None:
        """Add handlers that pick a method handler per path (grpcio's name).

        h2rpc's own (``rpc.method_handlers_generic_handler``) are merged into the exact-path
        table; any other object with a ``service(handler_call_details)`` method, grpcio's
        included, is asked per call for a path not in that table.
        """
        for handler in handlers:
            self._registry.add(handler)

    def add_registered_method_handlers(
        self, service_name: str, method_handlers: Mapping[str, Any]
    ) -> None:
        """Serve ``service_name``'s methods with ``method_handlers`` by method name (grpcio's name).

        grpcio-generated ``add_XServicer_to_server`` (recent grpcio-tools, 1.64 already) calls
        this after ``add_generic_rpc_handlers`` with the same handlers; as in grpcio, these take
        precedence over a generic handler's for the same paths. The handlers may be
        ``rpc.MethodHandler`` or grpcio's ``grpc.RpcMethodHandler`` (converted once, here), and
        their paths are served by one dict lookup per call.
        """
        self._registry.add_registered(service_name, method_handlers)

    def add_method(self, path: str, handler: MethodHandler) -> None:
        """Serve one ``/package.Service/Method`` path with a hand-built handler."""
        self._registry.add_method(path, handler)

    def services(self) -> dict[str, Optional[ServiceDescriptor]]:
        """The services registered so far, by full name in the order added, each with its
        protobuf descriptor when registration gave one (``add_service``, or a generic handler
        made with one), else None (grpcio-generated ``add_XServicer_to_server``). What server
        reflection lists."""
        return self._registry.services()

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
        raise NotImplementedError

    def _over_limit(self, running: int) -> Optional[Status]:
        """The status that refuses a new call when ``running`` calls already run, if any."""
        limit = self._maximum_concurrent_rpcs
        if limit is not None and running >= limit:
            return Status(StatusCode.RESOURCE_EXHAUSTED, "Concurrent RPC limit exceeded!")
        return None
