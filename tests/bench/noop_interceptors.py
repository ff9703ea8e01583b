"""One no-op interceptor per side, for the runner's ``h2rpc-*-intercepted`` rows: what an
interceptor costs when it does nothing (``--intercepted`` on the h2rpc bench clients/servers)."""

from __future__ import annotations

from typing import Any


class NoopClientInterceptor:
    """grpcio's blocking shape, every call kind: straight to the continuation."""

    def _intercept(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(details, request)

    intercept_unary_unary = _intercept
    intercept_unary_stream = _intercept
    intercept_stream_unary = _intercept
    intercept_stream_stream = _intercept


class NoopAsyncClientInterceptor:
    """grpc.aio's shape, every call kind."""

    async def _intercept(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(details, request)

    intercept_unary_unary = _intercept
    intercept_unary_stream = _intercept
    intercept_stream_unary = _intercept
    intercept_stream_stream = _intercept


class NoopServerInterceptor:
    """grpcio's ``intercept_service``: the handler as it is."""

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        return continuation(handler_call_details)


def server_interceptors(intercepted: bool) -> list[Any]:
    return [NoopServerInterceptor()] if intercepted else []
