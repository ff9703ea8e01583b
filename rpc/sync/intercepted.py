"""Client interceptors on ``rpc.sync.Channel``: grpcio's blocking form (``def intercept_*``).

A channel made with ``interceptors=[...]`` hands out these multi-callables instead of the plain
ones (``ChannelCore._multi_callable``), with their chains built once
(``rpc.interceptors.client_chain``). As in grpcio, ``continuation(details, request)`` returns:

* for a unary response, the finished call, which is also a ``grpc.Future`` (``result()``,
  ``exception()``, ``code()``, ...; a failed call does not raise until ``result()``), or, under
  ``.future()``, the ``CallFuture`` of a call under way;
* for a response stream, the call (an iterator of the responses, and a call).
"""

from __future__ import annotations

import threading
import types
from typing import Any, Callable, Optional

from .._errors import RpcError
from .._handlers import Cardinality, Deserializer, Serializer
from ..interceptors import ClientCallDetails, client_chain, make_call
from .client import (
    Call,
    CallFuture,
    Channel,
    StreamStreamMultiCallable,
    StreamUnaryMultiCallable,
    UnaryStreamMultiCallable,
    UnaryUnaryMultiCallable,
)
from .future_base import FutureBase, TaskThread


class FinishedCall(Call[Any]):
    """What a unary-response continuation returns: the call, run to its end, and a finished
    ``grpc.Future`` of its response (as grpcio's continuation gives)."""

    def exception(self, timeout: Optional[float] = None) -> Optional[BaseException]:
        try:
            self.result()
        except RpcError as exc:
            return exc
        return None

    def traceback(self, timeout: Optional[float] = None) -> Optional[types.TracebackType]:
        exc = self.exception()
        return None if exc is None else exc.__traceback__

    def add_done_callback(self, fn: Callable[[Any], Any]) -> None:
        fn(self)  # done already

    def running(self) -> bool:
        return False


class RefusedFuture(FutureBase):
    """What ``.future()`` gives when an interceptor refuses the call (raises ``RpcError``): a
    future already failed with that error, as grpcio's, and its status as a call's."""

    def __init__(self, error: RpcError, callback_thread: TaskThread) -> None:
        self._error = error
        self._init_future(threading.Lock(), callback_thread)
        self._set_outcome(error=error)

    def cancel(self) -> bool:
        return False

    def code(self) -> Any:
        return self._error.code()

    def details(self) -> str:
        return self._error.details()

    def initial_metadata(self) -> Any:
        return self._error.initial_metadata()

    def trailing_metadata(self) -> Any:
        return self._error.trailing_metadata()

    def time_remaining(self) -> Optional[float]:
        return None

    def is_active(self) -> bool:
        return False


def _result(outcome: Any) -> Any:
    """The response of what the chain returned: a call/future, or (leniently) the response."""
    result = getattr(outcome, "result", None)
    return result() if callable(result) else outcome


class _Intercepted:
    """The shared part of the intercepted multi-callables: the chains, built once."""

    _kind: Cardinality
    _method: str

    def __init__(
        self,
        channel: Channel,
        method: str,
        request_serializer: Optional[Serializer],
        response_deserializer: Optional[Deserializer],
    ) -> None:
        super().__init__(channel, method, request_serializer, response_deserializer)  # type: ignore[call-arg]
        interceptors = channel._interceptors
        self._chain = client_chain(interceptors, self._kind, self._run_call)
        self._future_chain = client_chain(interceptors, self._kind, self._start_future)
        self._future_callbacks = channel._future_callbacks

    def _details(
        self,
        timeout: Optional[float],
        metadata: Any,
        credentials: Any,
        wait_for_ready: Optional[bool],
        compression: Optional[str],
    ) -> ClientCallDetails:
        return ClientCallDetails(
            self._method, timeout, metadata, credentials, wait_for_ready, compression
        )

    def _run_call(self, details: Any, request: Any) -> Any:
        if not self._kind.response_streaming:
            call = make_call(self, FinishedCall, details, request)
            try:
                call.result()
            except RpcError:
                pass  # the call carries it: result() raises it again
            return call
        return make_call(self, Call, details, request)

    def _start_future(self, details: Any, request: Any) -> Any:
        future = make_call(self, CallFuture, details, request)
        future._begin()
        return future


class _InterceptedUnaryResponse(_Intercepted):
    def __call__(
        self,
        request: Any = None,
        timeout: Optional[float] = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: Optional[bool] = None,
        compression: Optional[str] = None,
    ) -> Any:
        details = self._details(timeout, metadata, credentials, wait_for_ready, compression)
        return _result(self._chain(details, request))

    def with_call(
        self,
        request: Any = None,
        timeout: Optional[float] = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: Optional[bool] = None,
        compression: Optional[str] = None,
    ) -> tuple[Any, Any]:
        details = self._details(timeout, metadata, credentials, wait_for_ready, compression)
        outcome = self._chain(details, request)
        return _result(outcome), outcome

    def future(
        self,
        request: Any = None,
        timeout: Optional[float] = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: Optional[bool] = None,
        compression: Optional[str] = None,
    ) -> Any:
        details = self._details(timeout, metadata, credentials, wait_for_ready, compression)
        try:
            return self._future_chain(details, request)
        except RpcError as exc:  # refused by an interceptor: grpcio gives a failed future
            return RefusedFuture(exc, self._future_callbacks)


class _InterceptedStreamResponse(_Intercepted):
    def __call__(
        self,
        request: Any = None,
        timeout: Optional[float] = None,
        metadata: Any = None,
        credentials: Any = None,
        wait_for_ready: Optional[bool] = None,
        compression: Optional[str] = None,
    ) -> Any:
        details = self._details(timeout, metadata, credentials, wait_for_ready, compression)
        return self._chain(details, request)


class InterceptedUnaryUnaryMultiCallable(
    _InterceptedUnaryResponse, UnaryUnaryMultiCallable[Any, Any]
):
    pass


class InterceptedUnaryStreamMultiCallable(
    _InterceptedStreamResponse, UnaryStreamMultiCallable[Any, Any]
):
    pass


class InterceptedStreamUnaryMultiCallable(
    _InterceptedUnaryResponse, StreamUnaryMultiCallable[Any, Any]
):
    pass


class InterceptedStreamStreamMultiCallable(
    _InterceptedStreamResponse, StreamStreamMultiCallable[Any, Any]
):
    pass


Channel._intercepted_multi_callables = {
    Cardinality.UNARY_UNARY: InterceptedUnaryUnaryMultiCallable,
    Cardinality.UNARY_STREAM: InterceptedUnaryStreamMultiCallable,
    Cardinality.STREAM_UNARY: InterceptedStreamUnaryMultiCallable,
    Cardinality.STREAM_STREAM: InterceptedStreamStreamMultiCallable,
}
