"""A client channel's settings and connection policy, for both the asyncio and the blocking API.

``ChannelCore`` parses the options (grpcio's names and units) and the target (``client.target``),
builds the connection options, and owns the channel's ``rpc.client.balancer.Balancer``, which
decides which connection a call takes and when to connect, resolve or give up (subchannels with
gRPC connection backoff, pick_first / round_robin, fail-fast versus wait-for-ready). It also keeps
what a GOAWAY teaches (``too_many_pings`` doubles the keepalive interval). The shells perform the
balancer's commands and add the waiting.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import ssl
import time
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional, TypeVar, Union

from codec import StatusCode
from codec.http2_errors import ENHANCE_YOUR_CALM
from transport import Address, ConnectionOptions

from .._errors import RpcError, UsageError
from .._errors import no_call_credentials as no_call_credentials  # for the shells
from .._handlers import Cardinality, Deserializer, Serializer, _identity
from .._tls import require_alpn_h2
from .._trace.capture import PcapOption, with_capture
from .._trace.tracer import TraceOption, with_tracer
from .._version import USER_AGENT
from ..client.balancer import (
    DEFAULT_MIN_RESOLUTION_INTERVAL,
    LB_POLICIES,
    Balancer,
    check_policy,
)
from ..client.connectivity import ChannelConnectivity
from ..client.health import is_serving, watch_request
from ..client.retry import DEFAULT_CHANNEL_BUFFER, DEFAULT_PER_RPC_BUFFER, ChannelRetry
from ..client.service_config import ServiceConfig, parse_service_config
from ..client.subchannel import Subchannel
from ..client.target import DnsResolver, addresses_of, host_of, parse_target
from ..interceptors import check_client_interceptors
from .backoff import BackoffOptions
from .client_call import CallSettings, Program
from .options import (
    CHANNEL_GRPC_OPTIONS,
    DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
    merge_grpc_options,
    normalize_compression,
    size_limit,
)
from .options import connection_options as build_connection_options

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: ``(WAIT_FOR_PICKER,)``: the channel's command to wait until the balancer's state or picker
#: changes (a connection became ready, or every attempt failed), then pick again.
WAIT_FOR_PICKER = "wait_for_picker"
_WAIT_FOR_PICKER = (WAIT_FOR_PICKER,)


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
        pcap: PcapOption = None,
        interceptors: Sequence[Any] = (),
        lb_policy_name: Optional[str] = None,
        dns_min_time_between_resolutions: Optional[float] = None,
        _health_check_service_name: Optional[str] = None,
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
            "lb_policy_name": lb_policy_name,
            "dns_min_time_between_resolutions": dns_min_time_between_resolutions,
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
        #: The target, parsed, and the resolver of its scheme (ValueError: why it cannot work).
        self._target, self._resolver = parse_target(target)
        addresses = self._fixed_addresses()
        authority = settings["authority"] or self._resolver.default_authority(self._target)
        self._ssl = None if ssl_context is None else require_alpn_h2(ssl_context)
        # TLS checks the certificate against the name the channel was given (gRPC's target name:
        # the authority's host), not the address it resolved to.
        self._server_hostname: Optional[str] = settings["server_hostname"]
        if self._server_hostname is None and self._ssl is not None:
            self._server_hostname = host_of(authority)
        #: The service config (``service_config=`` or ``grpc.service_config``): per-method
        #: defaults and retry policies, throttling, the load-balancing policy.
        self.service_config: ServiceConfig = parse_service_config(
            settings["service_config"], LB_POLICIES
        )
        #: ``grpc.service_config_disable_resolution``: ignore configs a resolver would give.
        self.service_config_disable_resolution = bool(settings["service_config_disable_resolution"])
        agent = settings["user_agent"]
        #: What each call of this channel needs from it.
        self.settings = CallSettings(
            authority=authority,
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
        # Wireshark capture (rpc._trace.capture): this option, an active writer, or H2RPC_PCAP.
        self._connection_options = with_capture(self._connection_options, pcap)
        backoff = {
            name: settings[key]
            for key, name in (
                ("initial_reconnect_backoff", "initial_backoff"),
                ("max_reconnect_backoff", "max_backoff"),
                ("min_connect_timeout", "min_connect_timeout"),
            )
            if settings[key] is not None
        }
        min_interval = settings["dns_min_time_between_resolutions"]
        if min_interval is None:
            min_interval = DEFAULT_MIN_RESOLUTION_INTERVAL
        elif min_interval < 0:
            raise ValueError("dns_min_time_between_resolutions must be >= 0")
        policy, health_service = self._balancing(
            settings["lb_policy_name"],
            _health_check_service_name,
            self.service_config,
        )
        self._closed = False
        #: The connection new calls use without asking the balancer (pick_first, READY): the
        #: hot path of every call. Set by ``_balancer_changed``.
        self._conn: Any = None
        self._balancer = Balancer(
            target,
            addresses,
            policy=policy,
            health_service=health_service,
            backoff=BackoffOptions(**backoff),
            min_resolution_interval=min_interval,
            on_change=self._balancer_changed,
            on_lost=self._retire,
        )
        self._setup()

    def _setup(self) -> None:
        """The driver's own state (the async and blocking channels differ only in waiting)."""

    def _fixed_addresses(self) -> Optional[list[Address]]:
        """The addresses of a target that needs no lookup (ipv4, ipv6, unix, an IP literal);
        None: the resolver is asked when the channel first connects, and again later."""
        resolver = self._resolver
        if resolver.static:
            return addresses_of(resolver.resolve(self._target), self._target)
        if isinstance(resolver, DnsResolver):
            return resolver.literal(self._target)
        return None

    @staticmethod
    def _balancing(
        lb_policy_name: Optional[str],
        health_check_service_name: Optional[str],
        service_config: Optional[ServiceConfig] = None,
    ) -> tuple[str, Optional[str]]:
        """The load balancing policy and the health service to check (None: no checking).

        The service config plugs in here: its ``loadBalancingConfig`` (or
        ``loadBalancingPolicy``) wins over the ``lb_policy_name`` option, as in grpcio, and its
        ``healthCheckConfig.serviceName`` turns health checking on.
        """
        if service_config is not None:
            if service_config.lb_policy is not None:
                lb_policy_name = service_config.lb_policy
            if service_config.health_check_service_name is not None:
                health_check_service_name = service_config.health_check_service_name
        return check_policy(lb_policy_name), health_check_service_name

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

    @property
    def _last_failure(self) -> Optional[RpcError]:
        """Why the last attempt (or name resolution) failed: what fail-fast calls get."""
        return self._balancer.failure

    def next_attempt_in(self) -> float:
        """Seconds until a backoff allows the next connection attempt (<= 0: now)."""
        return self._balancer.next_attempt_in()

    def get_state(self, try_to_connect: bool = False) -> ChannelConnectivity:
        """The channel's connectivity state (grpcio's ``ChannelConnectivity``).

        ``try_to_connect``: an IDLE channel starts connecting (as a call would).
        """

        def look() -> ChannelConnectivity:
            balancer = self._balancer
            balancer.refresh()
            if try_to_connect:
                balancer.exit_idle()
            return balancer.state

        return self._balance(look)

    def _connection(self, wait_for_ready: bool) -> Program:
        """The connection for a new call (a program the channels drive): the load balancing
        policy's pick; without one, the call waits (``WAIT_FOR_PICKER``) for the picker to change.

        A fail-fast call fails UNAVAILABLE while the channel is in TRANSIENT_FAILURE; a
        wait-for-ready call waits. A deadline that passes meanwhile reaches the program as
        TimeoutError. The drivers perform the balancer's commands after each step.
        """
        balancer = self._balancer
        while True:
            conn = balancer.pick(wait_for_ready)
            if conn is not None:
                return conn
            try:
                yield _WAIT_FOR_PICKER
            except TimeoutError:
                raise RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None

    # ------------------------------------------------------------------ for the drivers

    #: Held while the balancer runs (the blocking channel's lock; nothing for asyncio).
    _balancer_lock: Any = contextlib.nullcontext()

    def _balance(self, action: Callable[..., _T], *args: Any) -> _T:
        """Run a balancer entry point, then perform the commands it left."""
        with self._balancer_lock:
            result = action(*args)
            self._perform_commands()
        return result

    def _perform_commands(self) -> None:
        for command in self._balancer.take_commands():
            self._perform(command)

    def _perform(self, command: tuple[Any, ...]) -> None:
        """Start what a balancer command asks (an attempt, a resolution, a timer, a health
        Watch) without waiting for it: the driver's."""
        raise NotImplementedError

    def _balancer_changed(self) -> None:
        """The balancer's state or picker changed: the hot path's connection, then the
        driver wakes the calls waiting for a pick and the state watchers."""
        self._conn = self._balancer.fast_conn
        self._state_changed()

    def _state_changed(self) -> None:
        """The driver's: wake what waits for a state change."""

    def _retire(self, conn: Any, closed: bool) -> None:
        """A connection takes no new calls (lost, GOAWAY, or its address is gone): unless it is
        closed already, its calls may finish, then it closes; learn from its GOAWAY."""
        self._learn_from_goaway(conn.goaway_error_code, conn.goaway_debug_data)
        if not closed:
            conn.close_when_idle()

    def _lookup(self) -> Optional[tuple[str, int]]:
        """A DNS target's host and port, which the asyncio driver gives ``loop.getaddrinfo``
        (then ``_dns_addresses``); None: run ``_resolver.resolve`` (on a thread)."""
        resolver = self._resolver
        if isinstance(resolver, DnsResolver):
            return resolver.lookup(self._target)
        return None

    def _dns_addresses(self, infos: Any) -> list[Any]:
        assert isinstance(self._resolver, DnsResolver)
        port = self._resolver.lookup(self._target)[1]
        return self._resolver.addresses_from(infos, port)

    def _resolution_done(self, results: Any, error: Optional[BaseException] = None) -> None:
        """A resolution ended with ``results`` (the resolver's answer) or ``error``."""
        if error is None:
            try:
                addresses = addresses_of(results, self._target)
            except (ValueError, TypeError) as exc:
                error = exc
        if error is not None:
            self._balance(self._balancer.resolve_failed, error)
        else:
            self._balance(self._balancer.resolved, addresses)

    def _connect_failed(self, subchannel: Subchannel, exc: BaseException) -> None:
        self._balance(self._balancer.connect_failed, subchannel, exc)

    def _connected(self, subchannel: Subchannel, conn: Any) -> None:
        self._balance(self._balancer.connected, subchannel, conn)

    def _connection_closed(self, subchannel: Subchannel, conn: Any) -> None:
        self._balance(self._balancer.connection_lost, subchannel, conn)

    def _connect_timeout(self, subchannel: Subchannel, deadline: Optional[float] = None) -> float:
        """How long one connection attempt may take: the backoff's, within ``deadline``."""
        timeout = subchannel.backoff.connect_timeout()
        if deadline is not None:
            timeout = max(0.001, min(timeout, deadline - time.monotonic()))
        return timeout

    def _health_request(self) -> bytes:
        return watch_request(self._balancer.health_service or "")

    def _health_answer(self, subchannel: Subchannel, conn: Any, response: bytes) -> None:
        try:
            serving = is_serving(response)
        except ValueError as exc:
            log.warning("%s: bad health answer: %s", subchannel.address, exc)
            serving = False
        self._balance(self._balancer.health_update, subchannel, conn, serving)

    def _health_ended(self, subchannel: Subchannel, conn: Any, code: StatusCode, why: str) -> None:
        self._balance(self._balancer.health_ended, subchannel, conn, code, why)

    def _learn_from_goaway(self, error_code: Optional[int], debug_data: bytes) -> None:
        """gRPC clients double their keepalive interval when told they ping too much."""
        if error_code == ENHANCE_YOUR_CALM and debug_data == b"too_many_pings":
            options = self._connection_options
            if options.keepalive_time is not None:
                log.warning("server %s said too_many_pings: keepalive time doubled", self.target)
                self._connection_options = dataclasses.replace(
                    options, keepalive_time=options.keepalive_time * 2
                )


class PinnedConnection:
    """A connection source for the calls the channel makes on one subchannel's connection
    (the health Watch): its settings are the channel's, its connection always ``conn``."""

    def __init__(self, settings: CallSettings, conn: Any) -> None:
        self.settings = settings
        self.conn = conn

    def pinned(self) -> Any:
        if not self.conn.is_usable:
            raise RpcError(StatusCode.UNAVAILABLE, "connection lost")
        return self.conn


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
