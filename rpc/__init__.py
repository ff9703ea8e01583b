"""h2rpc: a pure-Python gRPC stack over HTTP/2, built from h2, hpack and protobuf.

``import rpc`` is all a user needs: ``rpc.Server``, ``rpc.Channel``, ``rpc.Stub``, ``rpc.RpcError``,
``rpc.StatusCode``, ``rpc.Metadata``. Everything under ``rpc._*``, ``codec`` and ``transport`` is
internal and may change.
"""

from __future__ import annotations

from codec import Metadata, Status, StatusCode

from . import sync
from ._aio import intercepted as _intercepted  # noqa: F401  (rpc.Channel(interceptors=...))
from ._aio.call import (
    EOF,
    StreamStreamCall,
    StreamUnaryCall,
    UnaryStreamCall,
    UnaryUnaryCall,
)
from ._aio.channel import (
    Channel,
    StreamStreamMultiCallable,
    StreamUnaryMultiCallable,
    UnaryStreamMultiCallable,
    UnaryUnaryMultiCallable,
)
from ._aio.run import run
from ._aio.server import Server
from ._aio.server_call import ServicerContext
from ._aio.workers import serve
from ._core.deadline import current_deadline, deadline_scope, no_deadline_propagation
from ._errors import RpcError, UsageError, rich_error
from ._handlers import (
    Cardinality,
    GenericRpcHandler,
    HandlerCallDetails,
    MethodHandler,
    ServiceHandlers,
    method_handlers_generic_handler,
    service_handlers,
    stream_stream_rpc_method_handler,
    stream_unary_rpc_method_handler,
    unary_stream_rpc_method_handler,
    unary_unary_rpc_method_handler,
)
from ._stub import Stub
from ._tls import ssl_channel_context, ssl_server_context
from ._trace.capture import PcapWriter
from ._trace.format import TRACE_JSON_SCHEMA
from ._trace.tracer import TraceEvent, Tracer, trace
from ._version import __version__
from .client.connectivity import ChannelConnectivity
from .client.target import Resolver, Target, register_resolver, unregister_resolver
from .interceptors import (
    ClientCallDetails,
    Interceptor,
    InterceptorContext,
    ServerCallDetails,
    ServerInterceptor,
    StreamStreamClientInterceptor,
    StreamUnaryClientInterceptor,
    UnaryStreamClientInterceptor,
    UnaryUnaryClientInterceptor,
)

__all__ = [
    "EOF",
    "TRACE_JSON_SCHEMA",
    "Cardinality",
    "Channel",
    "ChannelConnectivity",
    "ClientCallDetails",
    "GenericRpcHandler",
    "HandlerCallDetails",
    "Interceptor",
    "InterceptorContext",
    "Metadata",
    "MethodHandler",
    "PcapWriter",
    "Resolver",
    "RpcError",
    "Server",
    "ServerCallDetails",
    "ServerInterceptor",
    "ServiceHandlers",
    "ServicerContext",
    "Status",
    "StatusCode",
    "StreamStreamCall",
    "StreamStreamClientInterceptor",
    "StreamStreamMultiCallable",
    "StreamUnaryCall",
    "StreamUnaryClientInterceptor",
    "StreamUnaryMultiCallable",
    "Stub",
    "Target",
    "TraceEvent",
    "Tracer",
    "UnaryStreamCall",
    "UnaryStreamClientInterceptor",
    "UnaryStreamMultiCallable",
    "UnaryUnaryCall",
    "UnaryUnaryClientInterceptor",
    "UnaryUnaryMultiCallable",
    "UsageError",
    "__version__",
    "current_deadline",
    "deadline_scope",
    "method_handlers_generic_handler",
    "no_deadline_propagation",
    "register_resolver",
    "rich_error",
    "run",
    "serve",
    "service_handlers",
    "ssl_channel_context",
    "ssl_server_context",
    "stream_stream_rpc_method_handler",
    "stream_unary_rpc_method_handler",
    "sync",
    "trace",
    "unary_stream_rpc_method_handler",
    "unary_unary_rpc_method_handler",
    "unregister_resolver",
]
