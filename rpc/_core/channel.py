"""A client channel's settings and connection policy, for both the asyncio and the blocking API.

``ChannelCore`` parses the options (grpcio's names and units), builds the connection options,
and decides when to connect: gRPC connection backoff, fail-fast versus wait-for-ready, and what a
GOAWAY teaches (``too_many_pings`` doubles the keepalive interval). The shells add the waiting.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional, Union

from codec import StatusCode
from codec.http2_errors import ENHANCE_YOUR_CALM
from transport import Address, ConnectionOptions, parse_address

from .._errors import RpcError, UsageError
from .._errors import no_call_credentials as no_call_credentials  # for the shells
from .._handlers import Cardinality, Deserializer, Serializer, _identity
from .._tls import require_alpn_h2
from .._trace.tracer import TraceOption, with_tracer
from .._version import USER_AGENT
from ..client.retry import DEFAULT_CHANNEL_BUFFER, DEFAULT_PER_RPC_BUFFER, ChannelRetry
from ..client.service_config import ServiceConfig, parse_service_config
from ..interceptors import check_client_interceptors
from .backoff import Backoff, BackoffOptions
from .client_call import CONNECT, PAUSE, CallSettings, Program
from .options import (
    CHANNEL_GRPC_OPTIONS,
    DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
    merge_grpc_options,
    normalize_compression,
    size_limit,
)
from .options import connection_options as build_connection_options

log = logging.getLogger(__name__)

_CONNECT = (CONNECT,)


class ChannelCore:
    """A channel's settings and connection policy, shared by the async and blocking channels.

    Options use grpcio's names and units (seconds, bytes); grpcio's ``options=[("grpc.xxx", v)]``
    form is accepted too. A size limit of ``-1`` or ``None`` means unlimited. See the README for
    the table of options.
    """

    def __init__(
        self,
        target: str,
        *,
        max_receive_message_length: Optional[int] = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
        max_send_message_length: Optional[int] = None,
        max_metadata_size: Optional[int] = None,
        compression: Optional[str] = None,
        keepalive_time: Optional[float] = None,
        keepalive_timeout: Optional[float] = None,
        keepalive_permit_without_calls: Optional[bool] = None,
        initial_reconnect_backoff: Optional[float] = None,
        max_reconnect_backoff: Optional[float] = None,
        min_connect_timeout: Optional[float] = None,
        user_agent: Optional[str] = None,
        authority: Optional[str] = None,
        ssl_context: Optional[ssl.SSLContext] = None,
        server_hostname: Optional[str] = None,
        connection_options: Optional[ConnectionOptions] = None,
        service_config: Union[str, Mapping[str, Any], None] = None,
        service_config_disable_resolution: bool = False,
        enable_retries: bool = True,
        per_rpc_retry_buffer_size: int = DEFAULT_PER_RPC_BUFFER,
        retry_buffer_size: int = DEFAULT_CHANNEL_BUFFER,
        options: Sequence[tuple[str, Any]] = (),
        trace: TraceOption = None,
        interceptors: Sequence[Any] = (),
    ) -> None:
        settings: dict[str, Any] = {
            "max_receive_message_length": max_receive_message_length,
            "max_send_message_length": max_send_message_length,
            "max_metadata_size": max_metadata_size,
            "keepalive_time": keepalive_time,
            "keepalive_timeout": keepalive_timeout,
            "keepalive_permit_without_calls": keepalive_permit_without_calls,
            "initial_reconnect_backoff": initial_reconnect_backoff,
            "max_reconnect_backoff": max_reconnect_backoff,
            "min_connect_timeout": min_connect_timeout,
            "user_agent": user_agent,
            "authority": authority,
            "server_hostname": server_hostname,
            "service_config": service_config,
            "service_config_disable_resolution": service_config_disable_resolution,
            "enable_retries": enable_retries,
            "per_rpc_retry_buffer_size": per_rpc_retry_buffer_size,
            "retry_buffer_size": retry_buffer_size,
        }
        merge_grpc_options(settings, options, CHANNEL_GRPC_OPTIONS, "channel")
        try:
            compression = normalize_compression(compression)
        except UsageError as exc:
            raise ValueError(str(exc)) from None
        self.target = target
        #: Client interceptors (``rpc.interceptors``), in order: the first is outermost.
        self._interceptors = check_client_interceptors(interceptors)
        self._address: Address = parse_address(target)
        self._ssl = None if ssl_context is None else require_alpn_h2(ssl_context)
        self._server_hostname: Optional[str] = settings["server_hostname"]
        #: The service config (``service_config=`` or ``grpc.service_config``): per-method
        #: defaults and retry policies, throttling, the load-balancing policy.
        self.service_config: ServiceConfig = parse_service_config(settings["service_config"])
        #: ``grpc.service_config_disable_resolution``: ignore configs a resolver would give.
        self.service_config_disable_resolution = bool(settings["service_config_disable_resolution"])
        agent = settings["user_agent"]
        #: What each call of this channel needs from it.
        self.settings = CallSettings(
            authority=settings["authority"] or self._address.authority,
            scheme="https" if ssl_context is not None else "http",
            user_agent=f"{agent} {USER_AGENT}" if agent else USER_AGENT,
            compression=compression,
            max_receive_message_length=size_limit(settings["max_receive_message_length"]),
            max_send_message_length=size_limit(settings["max_send_message_length"]),
            service_config=self.service_config if self.service_config.method_configs else None,
            retry=(
                ChannelRetry(
                    self.service_config.retry_throttling,
                    settings["per_rpc_retry_buffer_size"],
                    settings["retry_buffer_size"],
                )
                if settings["enable_retries"]
                else None
            ),
        )
        self._connection_options = build_connection_options(connection_options, settings)
        # Wire tracing (rpc._trace): this option, an active rpc.trace() block, or H2RPC_TRACE.
        self._connection_options = with_tracer(self._connection_options, trace)
        backoff = {
            name: settings[key]
            for key, name in (
                ("initial_reconnect_backoff", "initial_backoff"),
                ("max_reconnect_backoff", "max_backoff"),
                ("min_connect_timeout", "min_connect_timeout"),
            )
            if settings[key] is not None
        }
        self._backoff = Backoff(BackoffOptions(**backoff))
        self._retry_at = 0.0  # after a failed attempt: no new attempt before this (monotonic)
        self._last_failure: Optional[RpcError] = None
        self._closed = False
        #: The connection new calls use (the shells' connection type).
        self._conn: Any = None
        self._setup()

    def _setup(self) -> None:
        """The driver's own state (the async and blocking channels differ only in waiting)."""

    # ------------------------------------------------------------------ multi-callables

    def unary_unary(
        self,
        method: str,
        request_serializer: Optional[Serializer] = None,
        response_deserializer: Optional[Deserializer] = None,
        _registered_method: Optional[bool] = False,
    ) -> Any:
        """A callable for one request and one response (grpcio's name).

        ``_registered_method`` is accepted and ignored: stubs generated by recent grpcio-tools
        pass ``_registered_method=True`` so that grpcio's C core registers the path once; h2rpc
        needs no such step (a method's request head is built once per channel anyway), so the
        generated stubs run unchanged on ``rpc.Channel`` and ``rpc.sync.Channel``.
        """
        return self._multi_callable(
            Cardinality.UNARY_UNARY, method, request_serializer, response_deserializer
        )

    def unary_stream(
        self,
        method: str,
        request_serializer: Optional[Serializer] = None,
        response_deserializer: Optional[Deserializer] = None,
        _registered_method: Optional[bool] = False,
    ) -> Any:
        """A callable for one request and a stream of responses.

        ``_registered_method``: ignored, as in ``unary_unary``.
        """
        return self._multi_callable(
            Cardinality.UNARY_STREAM, method, request_serializer, response_deserializer
        )

    def stream_unary(
        self,
        method: str,
        request_serializer: Optional[Serializer] = None,
        response_deserializer: Optional[Deserializer] = None,
        _registered_method: Optional[bool] = False,
    ) -> Any:
        """A callable for a stream of requests and one response.

        ``_registered_method``: ignored, as in ``unary_unary``.
        """
        return self._multi_callable(
            Cardinality.STREAM_UNARY, method, request_serializer, response_deserializer
        )

    def stream_stream(
        self,
        method: str,
        request_serializer: Optional[Serializer] = None,
        response_deserializer: Optional[Deserializer] = None,
        _registered_method: Optional[bool] = False,
    ) -> Any:
        """A callable for streams both ways.

        ``_registered_method``: ignored, as in ``unary_unary``.
        """
        return self._multi_callable(
            Cardinality.STREAM_STREAM, method, request_serializer, response_deserializer
        )

    #: The driver's multi-callable class for each call kind (async: awaitable calls; blocking:
    #: calls that block), set by each channel class.
    _multi_callables: Mapping[Cardinality, Callable[..., Any]] = {}
    #: The same, for a channel with interceptors (their chain is built once per multi-callable).
    _intercepted_multi_callables: Mapping[Cardinality, Callable[..., Any]] = {}

    def _multi_callable(
        self,
        kind: Cardinality,
        method: str,
        request_serializer: Optional[Serializer],
        response_deserializer: Optional[Deserializer],
    ) -> Any:
        classes = self._intercepted_multi_callables if self._interceptors else self._multi_callables
        return classes[kind](self, method, request_serializer, response_deserializer)

    # ------------------------------------------------------------------ connection policy

    @property
    def closed(self) -> bool:
        return self._closed

    def next_attempt_in(self) -> float:
        """Seconds until the backoff after a failed attempt allows the next one (<= 0: now)."""
        return self._retry_at - time.monotonic()

    def _connection(self, wait_for_ready: bool) -> Program:
        """The connection for a new call (a program the channels drive): the current one while
        it takes new streams; else it is retired (after a GOAWAY its calls may finish) and a new
        one made, as gRPC's connection backoff allows.

        While backing off after a failed attempt (TRANSIENT_FAILURE) a fail-fast call gets the
        last failure at once; a wait-for-ready call waits for the next attempt. A deadline that
        passes meanwhile reaches the program as TimeoutError.
        """
        while True:
            conn = self._conn
            if conn is not None:
                if conn.is_usable:
                    return conn
                self._conn = None
                self._learn_from_goaway(conn.goaway_error_code, conn.goaway_debug_data)
                conn.close_when_idle()  # its in-flight calls may finish
            if self._closed:
                raise RpcError(StatusCode.CANCELLED, "channel is closed")
            delay = self._retry_at - time.monotonic()
            if delay > 0:
                if not wait_for_ready and self._last_failure is not None:
                    raise self._last_failure
                try:
                    yield (PAUSE, delay)
                except TimeoutError:
                    raise RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
                continue
            try:
                return (yield _CONNECT)
            except RpcError:
                if not wait_for_ready:
                    raise

    def _connect_timeout(self, deadline: Optional[float] = None) -> float:
        """How long one connection attempt may take: the backoff's, within ``deadline``."""
        timeout = self._backoff.connect_timeout()
        if deadline is not None:
            timeout = max(0.001, min(timeout, deadline - time.monotonic()))
        return timeout

    def _connect_failed(self, exc: BaseException) -> RpcError:
        """An attempt failed: back off; the error fail-fast calls get meanwhile."""
        reason = str(exc) or type(exc).__name__
        self._last_failure = RpcError(
            StatusCode.UNAVAILABLE, f"failed to connect to {self.target}: {reason}"
        )
        self._retry_at = time.monotonic() + self._backoff.next_delay()
        return self._last_failure

    def _connected(self, conn: Any) -> Any:
        """An attempt succeeded: ``conn`` is the channel's connection (unless it was closed
        meanwhile: then RpcError CANCELLED)."""
        if self._closed:
            conn.close()
            raise RpcError(StatusCode.CANCELLED, "channel is closed")
        self._backoff.reset()
        self._retry_at = 0.0
        self._last_failure = None
        self._conn = conn
        return conn

    def _learn_from_goaway(self, error_code: Optional[int], debug_data: bytes) -> None:
        """gRPC clients double their keepalive interval when told they ping too much."""
        if error_code == ENHANCE_YOUR_CALM and debug_data == b"too_many_pings":
            options = self._connection_options
            if options.keepalive_time is not None:
                log.warning("server %s said too_many_pings: keepalive time doubled", self.target)
                self._connection_options = dataclasses.replace(
                    options, keepalive_time=options.keepalive_time * 2
                )


class MultiCallableBase:
    """A method bound to a channel (the async and blocking ones differ only in their calls)."""

    def __init__(
        self,
        channel: Any,
        method: str,
        request_serializer: Optional[Serializer],
        response_deserializer: Optional[Deserializer],
    ) -> None:
        if not method.startswith("/"):
            raise ValueError(f"method must be a path like /package.Service/Method: {method!r}")
        self._channel = channel
        self._method = method
        self._serializer = request_serializer or _identity
        self._deserializer = response_deserializer or _identity

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._method}>"
