"""The blocking API: ``rpc.sync.Channel`` and ``rpc.sync.Server``, for threads and scripts.

Plain function calls, as grpcio's synchronous API gives them. The same cores as the asyncio API
make every protocol decision (``rpc._core``); ``client.py`` and ``server.py`` add the waiting.

::

    with rpc.sync.Channel("localhost:50051") as channel:
        stub = rpc.Stub(channel, GREETER)
        print(stub.SayHello(HelloRequest(name="you"), timeout=5).message)
"""

from __future__ import annotations

from .._core.messages import EOF
from ..interceptors import (
    ClientCallDetails,
    Interceptor,
    ServerInterceptor,
    StreamStreamClientInterceptor,
    StreamUnaryClientInterceptor,
    UnaryStreamClientInterceptor,
    UnaryUnaryClientInterceptor,
)
from . import intercepted as _intercepted  # noqa: F401  (rpc.sync.Channel(interceptors=...))
from .client import (
    Call,
    CallFuture,
    Channel,
    StreamStreamMultiCallable,
    StreamUnaryMultiCallable,
    UnaryStreamMultiCallable,
    UnaryUnaryMultiCallable,
    channel_ready_future,
)
from .future_base import FutureCancelledError, FutureTimeoutError
from .server import Server, ServicerContext

__all__ = [
    "EOF",
    "Call",
    "CallFuture",
    "Channel",
    "ClientCallDetails",
    "FutureCancelledError",
    "FutureTimeoutError",
    "Interceptor",
    "Server",
    "ServerInterceptor",
    "ServicerContext",
    "StreamStreamClientInterceptor",
    "StreamStreamMultiCallable",
    "StreamUnaryClientInterceptor",
    "StreamUnaryMultiCallable",
    "UnaryStreamClientInterceptor",
    "UnaryStreamMultiCallable",
    "UnaryUnaryClientInterceptor",
    "UnaryUnaryMultiCallable",
    "channel_ready_future",
]
