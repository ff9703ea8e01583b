"""Bearer-token auth: a server interceptor in grpcio's shape, and the client side that sends the
token.

The server checks ``authorization: Bearer <token>`` before any handler runs; without it (or with
a wrong one) every call kind ends UNAUTHENTICATED. The same class works on ``rpc.Server`` and
``rpc.sync.Server`` (and, with ``import grpc``, on ``grpc.server`` too: only names count).
"""

from __future__ import annotations

import hmac
from typing import Any

import rpc


class BearerAuth(rpc.ServerInterceptor):
    """Refuse calls without ``authorization: Bearer <token>`` (UNAUTHENTICATED)."""

    def __init__(self, token: str, *, public: tuple[str, ...] = ()) -> None:
        self._expected = f"Bearer {token}"
        self._public = public  # paths served without a token (health checks, say)

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        if handler_call_details.method not in self._public:
            given = rpc.Metadata.from_pairs(handler_call_details.invocation_metadata).get(
                "authorization", ""
            )
            if not hmac.compare_digest(str(given), self._expected):
                raise rpc.RpcError(rpc.StatusCode.UNAUTHENTICATED, "missing or invalid token")
        return continuation(handler_call_details)


class _Token:
    def __init__(self, token: str) -> None:
        self._pair = ("authorization", f"Bearer {token}")


class BearerToken(
    _Token,
    rpc.UnaryUnaryClientInterceptor,
    rpc.UnaryStreamClientInterceptor,
    rpc.StreamUnaryClientInterceptor,
    rpc.StreamStreamClientInterceptor,
):
    """Client side, ``rpc.Channel`` (grpc.aio's form): add the token to every call."""

    async def _add_token(self, continuation: Any, details: Any, request: Any) -> Any:
        details.metadata.add(*self._pair)
        return await continuation(details, request)

    intercept_unary_unary = _add_token
    intercept_unary_stream = _add_token
    intercept_stream_unary = _add_token
    intercept_stream_stream = _add_token


class BlockingBearerToken(
    _Token,
    rpc.sync.UnaryUnaryClientInterceptor,
    rpc.sync.UnaryStreamClientInterceptor,
    rpc.sync.StreamUnaryClientInterceptor,
    rpc.sync.StreamStreamClientInterceptor,
):
    """Client side, ``rpc.sync.Channel`` (grpcio's blocking form)."""

    def _add_token(self, continuation: Any, details: Any, request: Any) -> Any:
        metadata = [*(details.metadata or ()), self._pair]
        return continuation(details._replace(metadata=metadata), request)

    intercept_unary_unary = _add_token
    intercept_unary_stream = _add_token
    intercept_stream_unary = _add_token
    intercept_stream_stream = _add_token
