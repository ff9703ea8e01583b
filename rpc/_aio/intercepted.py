"""Client interceptors on ``rpc.Channel``: grpc.aio's form (``async def intercept_*``).

A channel made with ``interceptors=[...]`` hands out these multi-callables instead of the plain
ones (``ChannelCore._multi_callable``), each with its interceptor chain built once
(``rpc.interceptors.async_client_chain``). Calling one returns an ``InterceptedCall`` at once, as
grpc.aio does: the chain runs when the call is first used (awaited, iterated, read, written,
asked for its status), and the chain's end makes the ordinary call object of ``rpc._aio.call``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Generator
from typing import Any, Optional

from codec import Metadata, StatusCode

from .._errors import RpcError
from .._handlers import Cardinality, Deserializer, Serializer
from ..interceptors import ClientCallDetails, async_client_chain, make_call
from .channel import (
    Channel,
    StreamStreamMultiCallable,
    StreamUnaryMultiCallable,
    UnaryStreamMultiCallable,
    UnaryUnaryMultiCallable,
)

_PENDING: Any = object()


class InterceptedCall:
    """The call of an intercepted multi-callable: the API of ``rpc.UnaryUnaryCall`` and its
    siblings, over what the interceptor chain returned (a call, or a unary response)."""

    def __init__(self, chain: Any, details: ClientCallDetails, request: Any) -> None:
        self._chain = chain
        self._details = details
        self._request = request
        #: What the chain gave: a call object, or a response (unary), or the error it raised.
        self._call: Any = None
        self._response: Any = _PENDING
        self._error: Optional[BaseException] = None
        self._resolved = False
        self._running = False
        self._resolving: Optional[asyncio.Future[None]] = None
        self._cancel_requested = False

    async def _resolve(self) -> Any:
        """Run the chain once (a task that comes meanwhile waits for it); the call it gave, or
        None. A future exists only when a second task waits."""
        if self._resolved:
            return self._call
        if self._running:
            if self._resolving is None:
                self._resolving = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._resolving)
            return self._call
        self._running = True
        try:
            result = await self._chain(self._details, self._request)
            if _is_call(result):
                self._call = result
                if self._cancel_requested:
                    result.cancel()
            else:
                self._response = result
        except Exception as exc:
            self._error = exc
        finally:
            self._resolved = True
            waiting = self._resolving
            if waiting is not None:
                waiting.set_result(None)
        return self._call

    def _raise_error(self) -> None:
        error = self._error
        if error is not None:
            raise error

    # ------------------------------------------------------------------ responses

    def __await__(self) -> Generator[Any, None, Any]:
        return self._single_response().__await__()

    async def _single_response(self) -> Any:
        call = self._call if self._resolved else await self._resolve()
        self._raise_error()
        if call is None:
            return self._response
        return await call

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Any]:
        call = await self._resolve()
        self._raise_error()
        source = call if call is not None else self._response
        async for message in source:
            yield message

    async def read(self) -> Any:
        call = await self._resolve()
        self._raise_error()
        return await call.read()

    # ------------------------------------------------------------------ requests

    async def write(self, message: Any, **kwargs: Any) -> None:
        call = await self._resolve()
        self._raise_error()
        await call.write(message, **kwargs)

    async def done_writing(self) -> None:
        call = await self._resolve()
        self._raise_error()
        await call.done_writing()

    # ------------------------------------------------------------------ the call's outcome

    async def initial_metadata(self) -> Metadata:
        call = await self._resolve()
        if call is not None:
            return await call.initial_metadata()  # type: ignore[no-any-return]
        error = self._error
        if isinstance(error, RpcError):
            metadata = error.initial_metadata()
            if metadata is not None:
                return metadata
        return Metadata()

    async def trailing_metadata(self) -> Metadata:
        call = await self._resolve()
        if call is not None:
            return await call.trailing_metadata()  # type: ignore[no-any-return]
        error = self._error
        if isinstance(error, RpcError):
            return error.trailing_metadata() or Metadata()
        return Metadata()

    async def code(self) -> StatusCode:
        call = await self._resolve()
        if call is not None:
            return await call.code()  # type: ignore[no-any-return]
        error = self._error
        if error is None:
            return StatusCode.OK
        return error.code() if isinstance(error, RpcError) else StatusCode.UNKNOWN

    async def details(self) -> str:
        call = await self._resolve()
        if call is not None:
            return await call.details()  # type: ignore[no-any-return]
        error = self._error
        if error is None:
            return ""
        return error.details() if isinstance(error, RpcError) else repr(error)

    def cancel(self) -> bool:
        call = self._call
        if call is not None:
            return bool(call.cancel())
        if self._resolved:
            return False
        self._cancel_requested = True
        return True

    def cancelled(self) -> bool:
        call = self._call
        return bool(call.cancelled()) if call is not None else False

    def done(self) -> bool:
        call = self._call
        if call is not None:
            return bool(call.done())
        return self._resolved

    def time_remaining(self) -> Optional[float]:
        call = self._call
        if call is not None:
            return call.time_remaining()  # type: ignore[no-any-return]
        timeout: Optional[float] = self._details.timeout
        return timeout


def _is_call(result: Any) -> bool:
    """A call object (ours, or one an interceptor wraps), not a response message."""
    return hasattr(result, "code") and (
        hasattr(result, "__await__") or hasattr(result, "__aiter__")
    )


class _Intercepted:
    """The shared part of the four intercepted multi-callables."""

    _kind: Cardinality
    _call_class: Any
    _method: str

    def __init__(
        self,
        channel: Channel,
        method: str,
        request_serializer: Optional[Serializer],
        response_deserializer: Optional[Deserializer],
    ) -> None:
        super().__init__(channel, method, request_serializer, response_deserializer)  # type: ignore[call-arg]
        self._chain = async_client_chain(channel._interceptors, self._kind, self._make_call)

    def _make_call(self, details: Any, request: Any) -> Any:
        return make_call(self, self._call_class, details, request)

    def __call__(
        self,
        request: Any = None,
        timeout: Optional[float] = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: Optional[bool] = None,
        compression: Optional[str] = None,
    ) -> Any:
        # grpc.aio's interceptors get a Metadata (never None) they may change in place.
        metadata = Metadata.from_pairs(metadata) if metadata is not None else Metadata()
        details = ClientCallDetails(
            self._method, timeout, metadata, credentials, wait_for_ready, compression
        )
        return InterceptedCall(self._chain, details, request)


class InterceptedUnaryUnaryMultiCallable(_Intercepted, UnaryUnaryMultiCallable[Any, Any]):
    pass


class InterceptedUnaryStreamMultiCallable(_Intercepted, UnaryStreamMultiCallable[Any, Any]):
    pass


class InterceptedStreamUnaryMultiCallable(_Intercepted, StreamUnaryMultiCallable[Any, Any]):
    pass


class InterceptedStreamStreamMultiCallable(_Intercepted, StreamStreamMultiCallable[Any, Any]):
    pass


Channel._intercepted_multi_callables = {
    Cardinality.UNARY_UNARY: InterceptedUnaryUnaryMultiCallable,
    Cardinality.UNARY_STREAM: InterceptedUnaryStreamMultiCallable,
    Cardinality.STREAM_UNARY: InterceptedStreamUnaryMultiCallable,
    Cardinality.STREAM_STREAM: InterceptedStreamStreamMultiCallable,
}
