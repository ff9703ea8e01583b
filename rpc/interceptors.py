"""Interceptors: their interfaces, and the chains that run them, for both APIs and both sides.

Two families:

* **grpcio's shapes**, so that existing interceptors port with an import change (grpcio's own
  subclasses work too: only the method names count).

  - client: ``UnaryUnaryClientInterceptor.intercept_unary_unary(continuation,
    client_call_details, request)``, ``UnaryStreamClientInterceptor.intercept_unary_stream``,
    ``StreamUnaryClientInterceptor.intercept_stream_unary(continuation, client_call_details,
    request_iterator)``, ``StreamStreamClientInterceptor.intercept_stream_stream``. On
    ``rpc.sync.Channel`` they are plain ``def`` and ``continuation(details, request)`` returns
    the call (for a unary response: a finished call that is also a ``grpc.Future``; for a
    response stream: the call, an iterator). On ``rpc.Channel`` they are ``async def`` (grpc.aio's
    form) and ``await continuation(details, request)`` returns the call (not yet awaited); the
    interceptor returns that call, another object with the call's API, or (unary response) the
    response itself.
  - server: ``ServerInterceptor.intercept_service(continuation, handler_call_details)`` returns
    the method handler (``continuation(handler_call_details)`` gives the next one; None answers
    UNIMPLEMENTED). ``def`` on both servers; ``async def`` (grpc.aio's form, ``await
    continuation(...)``) on ``rpc.Server`` too. It runs where the server looks the handler up, so
    it may return another handler (wrapping the behavior) or one that aborts.

* **``Interceptor``**, server side, one method for every call kind, the same on ``rpc.Server``
  (``async def`` and ``def`` handlers) and ``rpc.sync.Server``, because the call's core runs it,
  not the shell. ``intercept(details, request, context)`` is a generator::

      class Timing(rpc.Interceptor):
          def intercept(self, details, request, context):
              start = time.perf_counter()          # before the handler runs
              status = yield request               # the call runs; its final status comes back
              log(details.method, status.code, time.perf_counter() - start)
              return None                          # or an rpc.Status to send instead

  Before its ``yield`` it may read ``details`` (method, invocation metadata, call kind,
  ``time_remaining``), refuse the call (raise ``rpc.RpcError``, or ``context.abort(code,
  details)``), and wrap streamed messages one by one (``context.wrap_requests(fn)``,
  ``context.wrap_responses(fn)``: ``fn(message)`` returns the message to use; any kind, it is
  called for the one message of a unary side too). It yields the request (unary-request kinds:
  it may yield another one; request streams: ``request`` is None). The value sent back is the
  final status (None if the client is gone); returning an ``rpc.Status`` replaces it. A plain
  function (no ``yield``) is a before-only interceptor.

Interceptors run in the order given, the first outermost. Chains are built once, per channel
method or per server, never per call; without interceptors nothing here is on a call's path.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import inspect
import logging
from collections.abc import Generator, Sequence
from typing import Any, Callable, NamedTuple, NoReturn, Optional

from codec import Metadata, Status, StatusCode

from ._core.server_call import ServerCallCore
from ._core.server_context import ServicerContextBase
from ._errors import RpcError, no_call_credentials
from ._handlers import Cardinality, HandlerCallDetails, MethodHandler, as_method_handler

log = logging.getLogger(__name__)

__all__ = [
    "ClientCallDetails",
    "HandlerCallDetails",
    "Interceptor",
    "InterceptorContext",
    "ServerCallDetails",
    "ServerInterceptor",
    "StreamStreamClientInterceptor",
    "StreamUnaryClientInterceptor",
    "UnaryStreamClientInterceptor",
    "UnaryUnaryClientInterceptor",
]


# ---------------------------------------------------------------------- client: grpcio's shapes


class ClientCallDetails(NamedTuple):
    """What a client interceptor sees of a call, and may replace (``details._replace(...)``).

    grpcio's ``ClientCallDetails`` fields; ``timeout`` in seconds (None: no deadline),
    ``metadata`` a sequence of ``(key, value)`` pairs or None. Any object with these attributes
    may be handed to ``continuation`` (grpcio-style details classes included).
    """

    method: str
    timeout: Optional[float]
    metadata: Any
    credentials: Any
    wait_for_ready: Optional[bool]
    compression: Optional[str]


class UnaryUnaryClientInterceptor(abc.ABC):
    """grpcio's shape: ``intercept_unary_unary(continuation, client_call_details, request)``
    (``def`` on ``rpc.sync.Channel``, ``async def`` on ``rpc.Channel``)."""

    @abc.abstractmethod
    def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any: ...


class UnaryStreamClientInterceptor(abc.ABC):
    """grpcio's shape: ``intercept_unary_stream(continuation, client_call_details, request)``."""

    @abc.abstractmethod
    def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any: ...


class StreamUnaryClientInterceptor(abc.ABC):
    """grpcio's shape: ``intercept_stream_unary(continuation, client_call_details,
    request_iterator)``."""

    @abc.abstractmethod
    def intercept_stream_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request_iterator: Any
    ) -> Any: ...


class StreamStreamClientInterceptor(abc.ABC):
    """grpcio's shape: ``intercept_stream_stream(continuation, client_call_details,
    request_iterator)``."""

    @abc.abstractmethod
    def intercept_stream_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request_iterator: Any
    ) -> Any: ...


#: The client interceptor method of each call kind.
CLIENT_METHODS = {
    Cardinality.UNARY_UNARY: "intercept_unary_unary",
    Cardinality.UNARY_STREAM: "intercept_unary_stream",
    Cardinality.STREAM_UNARY: "intercept_stream_unary",
    Cardinality.STREAM_STREAM: "intercept_stream_stream",
}


def check_client_interceptors(interceptors: Sequence[Any]) -> tuple[Any, ...]:
    """The channel's interceptors, checked once: each must intercept some call kind."""
    checked = tuple(interceptors)
    for interceptor in checked:
        if not any(callable(getattr(interceptor, m, None)) for m in CLIENT_METHODS.values()):
            raise TypeError(
                f"{interceptor!r} is not a client interceptor: it has none of "
                f"{', '.join(CLIENT_METHODS.values())}"
            )
    return checked


def _link(
    method: Callable[..., Any], continuation: Callable[..., Any], details: Any, request: Any
) -> Any:
    return method(continuation, details, request)


def client_chain(
    interceptors: Sequence[Any], kind: Cardinality, terminal: Callable[[Any, Any], Any]
) -> Callable[[Any, Any], Any]:
    """``chain(details, request)``: the interceptors of ``kind``'s calls around ``terminal``,
    the first outermost (blocking form: each link returns what its interceptor returns)."""
    name = CLIENT_METHODS[kind]
    chain = terminal
    for interceptor in reversed(interceptors):
        method = getattr(interceptor, name, None)
        if method is not None:  # an interceptor of other kinds lets this one pass
            chain = functools.partial(_link, method, chain)
    return chain


async def _async_link(
    method: Callable[..., Any], continuation: Callable[..., Any], details: Any, request: Any
) -> Any:
    return await method(continuation, details, request)


async def _async_terminal(terminal: Callable[[Any, Any], Any], details: Any, request: Any) -> Any:
    return terminal(details, request)


def async_client_chain(
    interceptors: Sequence[Any], kind: Cardinality, terminal: Callable[[Any, Any], Any]
) -> Callable[[Any, Any], Any]:
    """Like ``client_chain`` for grpc.aio's form: each continuation is a coroutine function,
    ``terminal`` a plain one (it makes the call object)."""
    name = CLIENT_METHODS[kind]
    chain: Callable[[Any, Any], Any] = functools.partial(_async_terminal, terminal)
    for interceptor in reversed(interceptors):
        method = getattr(interceptor, name, None)
        if method is not None:
            chain = functools.partial(_async_link, method, chain)
    return chain


def make_call(multi_callable: Any, call_class: Any, details: Any, request: Any) -> Any:
    """The end of every client chain: the call ``details`` describe (any object with grpcio's
    ``ClientCallDetails`` attributes; missing ones are None), as ``call_class`` of the shell."""
    method = details.method
    if isinstance(method, bytes):
        method = method.decode()
    credentials = getattr(details, "credentials", None)
    if credentials is not None:
        raise no_call_credentials(credentials)
    return call_class(
        multi_callable._kind,
        request,
        multi_callable._channel,
        method,
        multi_callable._serializer,
        multi_callable._deserializer,
        timeout=getattr(details, "timeout", None),
        metadata=getattr(details, "metadata", None),
        compression=getattr(details, "compression", None),
        wait_for_ready=getattr(details, "wait_for_ready", None),
    )


# ---------------------------------------------------------------------- server: grpcio's shape


class ServerInterceptor(abc.ABC):
    """grpcio's shape: ``intercept_service(continuation, handler_call_details)`` returns the
    method handler for the call (``def``; on ``rpc.Server`` also ``async def``)."""

    @abc.abstractmethod
    def intercept_service(
        self, continuation: Callable[[HandlerCallDetails], Any], handler_call_details: Any
    ) -> Any: ...


def _service_link(
    method: Callable[..., Any], continuation: Callable[..., Any], details: Any
) -> Any:
    return method(continuation, details)


async def _async_service_link(
    method: Callable[..., Any], continuation: Callable[..., Any], details: Any
) -> Any:
    result = method(continuation, details)
    if inspect.isawaitable(result):
        result = await result
    return result


async def _async_service_terminal(terminal: Callable[..., Any], details: Any) -> Any:
    return terminal(details)


def _handler_or_none(found: Any) -> Optional[MethodHandler]:
    return None if found is None else as_method_handler(found)


async def _awaited_handler(pending: Any) -> Optional[MethodHandler]:
    return _handler_or_none(await pending)


def intercepted_lookup(
    lookup: Callable[[str, Metadata], Optional[MethodHandler]],
    interceptors: Sequence[Any],
    allow_async: bool,
) -> Callable[[str, Metadata], Any]:
    """The server's handler lookup behind its ``intercept_service`` interceptors (built once).

    It returns a ``MethodHandler`` or None; with an ``async def intercept_service``, an
    awaitable of one, which the call's program awaits (its AWAIT command).
    """

    def terminal(details: Any) -> Any:
        return lookup(details.method, details.invocation_metadata)

    chain: Callable[..., Any] = terminal
    is_async = False
    for interceptor in reversed(interceptors):
        method = interceptor.intercept_service
        if inspect.iscoroutinefunction(method):
            if not allow_async:
                raise TypeError(
                    f"{interceptor!r}: an async def intercept_service needs rpc.Server "
                    "(rpc.sync.Server runs def interceptors)"
                )
            if not is_async:
                chain = functools.partial(_async_service_terminal, chain)
                is_async = True
            chain = functools.partial(_async_service_link, method, chain)
        else:
            if is_async:
                raise TypeError(
                    f"{interceptor!r}: a def intercept_service cannot come before an async def "
                    "one (its continuation would be a coroutine): make it async def"
                )
            chain = functools.partial(_service_link, method, chain)

    if is_async:

        def async_lookup(path: str, metadata: Metadata) -> Any:
            return _awaited_handler(chain(HandlerCallDetails(path, metadata)))

        return async_lookup

    def sync_lookup(path: str, metadata: Metadata) -> Optional[MethodHandler]:
        return _handler_or_none(chain(HandlerCallDetails(path, metadata)))

    return sync_lookup


# ---------------------------------------------------------------------- server: Interceptor


@dataclasses.dataclass(frozen=True)
class ServerCallDetails:
    """What an ``Interceptor`` is told about a server call."""

    #: ``/package.Service/Method``.
    method: str
    #: The metadata the client sent.
    invocation_metadata: Metadata
    #: The call kind (``rpc.Cardinality``).
    cardinality: Cardinality
    #: Seconds left before the client's deadline when the call started (None: no deadline).
    timeout: Optional[float]


class InterceptorContext(ServicerContextBase):
    """The context an ``Interceptor`` gets: the handler context's non-waiting API
    (``invocation_metadata()``, ``peer()``, ``time_remaining()``, ``set_code()``,
    ``set_trailing_metadata()``, ...), plus ``abort`` and the message wrappers."""

    def __init__(self, call: ServerCallCore, interception: _Interception) -> None:
        super().__init__(call)
        self._interception = interception

    def abort(self, code: StatusCode, details: str = "", trailing_metadata: Any = None) -> NoReturn:
        """Refuse the call: it ends now with ``code`` (not OK); the handler does not run."""
        if code == StatusCode.OK:
            raise ValueError("abort() needs a non-OK status code")
        raise RpcError(StatusCode(code), details, trailing_metadata)

    def wrap_requests(self, wrapper: Callable[[Any], Any]) -> None:
        """Call ``wrapper(request)`` for every request as it arrives (decoded); the handler
        gets what it returns. Wrappers of later interceptors run after this one's."""
        self._interception.request_wrappers.append(wrapper)

    def wrap_responses(self, wrapper: Callable[[Any], Any]) -> None:
        """Call ``wrapper(response)`` for every response the handler gives, before it is sent;
        what it returns is sent. Wrappers of later interceptors run before this one's."""
        self._interception.response_wrappers.insert(0, wrapper)


class Interceptor:
    """Server side, every call kind, ``rpc.Server`` and ``rpc.sync.Server`` alike: one method.

    Override ``intercept(details, request, context)``, a generator (see this module's
    docstring): before its ``yield`` the handler has not run; it yields the request (or
    another); it is resumed with the final ``rpc.Status`` (None when the client is gone) and may
    return a status to send instead. ``details`` is a ``ServerCallDetails``; ``context`` an
    ``InterceptorContext`` (``abort``, ``wrap_requests``, ``wrap_responses``, and the handler
    context's non-waiting methods).
    """

    def intercept(
        self, details: ServerCallDetails, request: Any, context: InterceptorContext
    ) -> Generator[Any, Optional[Status], Optional[Status]]:
        yield request
        return None


class _Interception:
    """One server call's running ``Interceptor`` generators (outermost first)."""

    __slots__ = ("request_wrappers", "response_wrappers", "running")

    def __init__(self) -> None:
        self.request_wrappers: list[Callable[[Any], Any]] = []
        self.response_wrappers: list[Callable[[Any], Any]] = []
        self.running: list[Generator[Any, Any, Any]] = []

    def finish(self, call: ServerCallCore, status: Optional[Status]) -> Optional[Status]:
        """Resume the generators, innermost first, with the status; the one to send."""
        for generator in reversed(self.running):
            try:
                generator.send(status)
            except StopIteration as stop:
                replacement = stop.value
                if replacement is not None and status is not None:
                    status = _as_status(replacement)
                continue
            except RpcError as exc:
                if status is not None:
                    status = Status(
                        exc.code(), exc.details(), exc.trailing_metadata() or Metadata()
                    )
                continue
            except Exception:
                log.exception("interceptor of %s failed after the call", call.method())
                continue
            log.error("interceptor of %s yielded more than once", call.method())
            generator.close()
        self.running.clear()
        return status


def _as_status(value: Any) -> Status:
    if isinstance(value, Status):
        return value
    if isinstance(value, RpcError):
        return Status(value.code(), value.details(), value.trailing_metadata() or Metadata())
    raise TypeError(f"an interceptor returned {value!r}: an rpc.Status (or None) is needed")


def _wrapped(
    function: Callable[[Any], Any], wrappers: Sequence[Callable[[Any], Any]], before: bool
) -> Callable[[Any], Any]:
    if before:  # wrap the messages, then (de)serialize... for responses: wrap, then serialize

        def serialize(message: Any) -> Any:
            for wrapper in wrappers:
                message = wrapper(message)
            return function(message)

        return serialize

    def deserialize(data: Any) -> Any:
        message = function(data)
        for wrapper in wrappers:
            message = wrapper(message)
        return message

    return deserialize


def server_call_starter(
    interceptors: Sequence[Interceptor],
) -> Callable[[ServerCallCore, MethodHandler, Any], tuple[MethodHandler, Any]]:
    """What a server call runs before its handler when the server has ``Interceptor``s: it
    starts them, in order; their wrappers go into the handler's (de)serializers (for this call
    only), and the status goes through them at the end (``ServerCallCore._interception``)."""
    chain = tuple(interceptors)

    def start(
        call: ServerCallCore, handler: MethodHandler, request: Any
    ) -> tuple[MethodHandler, Any]:
        interception = _Interception()
        call._interception = interception
        context = InterceptorContext(call, interception)
        details = ServerCallDetails(
            call.method(), call.invocation_metadata(), handler.cardinality, call.time_remaining()
        )
        streaming = handler.cardinality.request_streaming
        for interceptor in chain:
            generator = interceptor.intercept(details, None if streaming else request, context)
            if not inspect.isgenerator(generator):
                continue  # a before-only interceptor
            try:
                yielded = next(generator)
            except StopIteration:
                continue  # it ended without yielding: a before-only interceptor too
            interception.running.append(generator)
            if not streaming:
                request = yielded
        if interception.request_wrappers or interception.response_wrappers:
            handler = dataclasses.replace(
                handler,
                request_deserializer=_wrapped(
                    handler.request_deserializer, interception.request_wrappers, False
                ),
                response_serializer=_wrapped(
                    handler.response_serializer, interception.response_wrappers, True
                ),
            )
            if not streaming and interception.request_wrappers:
                for wrapper in interception.request_wrappers:
                    request = wrapper(request)
        return handler, request

    return start


def split_server_interceptors(interceptors: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """The ``intercept_service`` ones (grpcio's shape) and the ``intercept`` ones, in order."""
    services: list[Any] = []
    calls: list[Any] = []
    for interceptor in interceptors:
        if callable(getattr(interceptor, "intercept_service", None)):
            services.append(interceptor)
        elif callable(getattr(interceptor, "intercept", None)):
            calls.append(interceptor)
        else:
            raise TypeError(
                f"{interceptor!r} is not a server interceptor: it has neither "
                "intercept_service (grpcio's shape) nor intercept (rpc.Interceptor)"
            )
    return services, calls
