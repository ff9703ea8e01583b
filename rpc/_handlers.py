"""Method handlers: what the server runs for one ``/package.Service/Method`` path.

A handler pairs the application's function with the call's cardinality and the message
(de)serializers. They come from protobuf service descriptors (``service_handlers`` below), are
built by hand with the grpcio-named helpers below (the "generic handler" route, for services
without a ``.proto``), or are converted from grpcio's own handlers (``as_method_handler``), which
is what ``add_XServicer_to_server`` in grpcio-generated ``_pb2_grpc`` modules registers.
"""

from __future__ import annotations

import enum
import functools
import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from operator import methodcaller
from typing import Any, Callable, Optional, Protocol

from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from codec import StatusCode

from ._core.messages import WrongMessageType
from ._errors import RpcError
from ._trace.tracer import MESSAGE_TYPES

Serializer = Callable[[Any], bytes]
Deserializer = Callable[[bytes], Any]


class Cardinality(enum.Enum):
    """The four call kinds: does each side send one message or a stream of them?"""

    UNARY_UNARY = (False, False)
    UNARY_STREAM = (False, True)
    STREAM_UNARY = (True, False)
    STREAM_STREAM = (True, True)

    @property
    def request_streaming(self) -> bool:
        return self.value[0]

    @property
    def response_streaming(self) -> bool:
        return self.value[1]

    @classmethod
    def of(cls, request_streaming: bool, response_streaming: bool) -> Cardinality:
        return cls((bool(request_streaming), bool(response_streaming)))


def _identity(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class MethodHandler:
    """Everything the server needs to run one method."""

    cardinality: Cardinality
    behavior: Callable[..., Any]
    request_deserializer: Deserializer = _identity
    response_serializer: Serializer = _identity

    @property
    def request_streaming(self) -> bool:
        return self.cardinality.request_streaming

    @property
    def response_streaming(self) -> bool:
        return self.cardinality.response_streaming

    # grpcio's ``RpcMethodHandler`` attributes, so that grpcio-style server interceptors can
    # read and wrap the handler ``continuation`` gives them: the behavior under its kind's name.

    @property
    def unary_unary(self) -> Optional[Callable[..., Any]]:
        return self.behavior if self.cardinality is Cardinality.UNARY_UNARY else None

    @property
    def unary_stream(self) -> Optional[Callable[..., Any]]:
        return self.behavior if self.cardinality is Cardinality.UNARY_STREAM else None

    @property
    def stream_unary(self) -> Optional[Callable[..., Any]]:
        return self.behavior if self.cardinality is Cardinality.STREAM_UNARY else None

    @property
    def stream_stream(self) -> Optional[Callable[..., Any]]:
        return self.behavior if self.cardinality is Cardinality.STREAM_STREAM else None

    @functools.cached_property
    def is_async(self) -> bool:
        """True for an ``async def`` or async generator behavior: it runs on the event loop (a
        plain ``def`` runs where it may block: a thread). Looked up once per handler."""
        behavior = self.behavior
        return inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)


#: The attribute of a grpcio ``RpcMethodHandler`` that holds the behavior of each call kind.
_GRPCIO_BEHAVIOR_FIELDS = {
    Cardinality.UNARY_UNARY: "unary_unary",
    Cardinality.UNARY_STREAM: "unary_stream",
    Cardinality.STREAM_UNARY: "stream_unary",
    Cardinality.STREAM_STREAM: "stream_stream",
}


def as_method_handler(handler: Any) -> MethodHandler:
    """``handler`` as a ``MethodHandler``: ours as it is, grpcio's converted by its attributes.

    grpcio-generated ``add_XServicer_to_server`` builds handlers with
    ``grpc.unary_unary_rpc_method_handler(...)`` and friends: ``grpc.RpcMethodHandler`` tuples of
    ``request_streaming``, ``response_streaming``, ``request_deserializer``,
    ``response_serializer`` and one behavior per call kind (``unary_unary``, ``unary_stream``,
    ``stream_unary``, ``stream_stream``; the others None). They are read by duck typing, so that
    ``rpc`` never imports grpcio. Called once per handler at registration, not per call.
    """
    if isinstance(handler, MethodHandler):
        return handler
    try:
        kind = Cardinality.of(handler.request_streaming, handler.response_streaming)
        behavior = getattr(handler, _GRPCIO_BEHAVIOR_FIELDS[kind])
        request_deserializer = handler.request_deserializer
        response_serializer = handler.response_serializer
    except AttributeError as exc:
        raise TypeError(
            f"not a method handler: {handler!r} (an rpc.MethodHandler, or an object with "
            f"grpc.RpcMethodHandler's attributes, is needed): {exc}"
        ) from None
    if not callable(behavior):
        raise TypeError(
            f"method handler {handler!r} is {kind.name.lower()} but its "
            f"{_GRPCIO_BEHAVIOR_FIELDS[kind]} behavior is {behavior!r}"
        )
    return _handler(kind, behavior, request_deserializer, response_serializer)


def _handler(
    cardinality: Cardinality,
    behavior: Callable[..., Any],
    request_deserializer: Optional[Deserializer],
    response_serializer: Optional[Serializer],
) -> MethodHandler:
    return MethodHandler(
        cardinality,
        behavior,
        request_deserializer or _identity,
        response_serializer or _identity,
    )


def unary_unary_rpc_method_handler(
    behavior: Callable[..., Any],
    request_deserializer: Optional[Deserializer] = None,
    response_serializer: Optional[Serializer] = None,
) -> MethodHandler:
    """``async def behavior(request, context) -> response``."""
    return _handler(Cardinality.UNARY_UNARY, behavior, request_deserializer, response_serializer)


def unary_stream_rpc_method_handler(
    behavior: Callable[..., Any],
    request_deserializer: Optional[Deserializer] = None,
    response_serializer: Optional[Serializer] = None,
) -> MethodHandler:
    """``async def behavior(request, context)`` yielding responses (or using ``context.write``)."""
    return _handler(Cardinality.UNARY_STREAM, behavior, request_deserializer, response_serializer)


def stream_unary_rpc_method_handler(
    behavior: Callable[..., Any],
    request_deserializer: Optional[Deserializer] = None,
    response_serializer: Optional[Serializer] = None,
) -> MethodHandler:
    """``async def behavior(request_iterator, context) -> response``."""
    return _handler(Cardinality.STREAM_UNARY, behavior, request_deserializer, response_serializer)


def stream_stream_rpc_method_handler(
    behavior: Callable[..., Any],
    request_deserializer: Optional[Deserializer] = None,
    response_serializer: Optional[Serializer] = None,
) -> MethodHandler:
    """``async def behavior(request_iterator, context)`` yielding responses."""
    return _handler(Cardinality.STREAM_STREAM, behavior, request_deserializer, response_serializer)


@dataclass(frozen=True)
class HandlerCallDetails:
    """What a generic handler is told about a call before choosing a handler for it."""

    method: str
    invocation_metadata: Any


class GenericRpcHandler(Protocol):
    """grpcio's generic handler protocol: pick a handler for any path, or return None.

    grpcio's own generic handlers (``grpc.method_handlers_generic_handler(...)``, as registered by
    grpcio-generated ``add_XServicer_to_server``) work too: the ``grpc.RpcMethodHandler`` they
    return is converted with ``as_method_handler``.
    """

    def service(self, handler_call_details: HandlerCallDetails) -> Optional[MethodHandler]: ...


class ServiceHandlers:
    """A fixed set of method handlers for one service, looked up by exact path.

    The handlers may be grpcio's ``RpcMethodHandler``s too: they are converted here, once.
    ``descriptor``, the service's protobuf descriptor when known, is what server reflection
    describes it with.
    """

    def __init__(
        self,
        service_name: str,
        method_handlers: Mapping[str, Any],
        descriptor: Optional[ServiceDescriptor] = None,
    ) -> None:
        if descriptor is not None and descriptor.full_name != service_name:
            raise ValueError(
                f"the descriptor is of service {descriptor.full_name}, not {service_name}"
            )
        self.service_name = service_name
        self.descriptor = descriptor
        self.method_handlers: dict[str, MethodHandler] = {
            f"/{service_name}/{name}": as_method_handler(handler)
            for name, handler in method_handlers.items()
        }

    def service(self, handler_call_details: HandlerCallDetails) -> Optional[MethodHandler]:
        return self.method_handlers.get(handler_call_details.method)


def method_handlers_generic_handler(
    service: str,
    method_handlers: Mapping[str, Any],
    descriptor: Optional[ServiceDescriptor] = None,
) -> ServiceHandlers:
    """Bundle handlers named by method into a service (grpcio's function of the same name).

    ``descriptor`` (optional, h2rpc's addition): the service's protobuf ``ServiceDescriptor``, for
    server reflection (``rpc.services.reflection``) to describe it.
    """
    return ServiceHandlers(service, method_handlers, descriptor)


# ---------------------------------------------------------------------- from protobuf services

#: Serializes any protobuf message; one shared callable instead of a closure per method.
serialize_message: Callable[[Any], bytes] = methodcaller("SerializeToString")


def method_path(method: MethodDescriptor) -> str:
    """The HTTP/2 ``:path`` of a method: ``/package.Service/Method``."""
    return f"/{method.containing_service.full_name}/{method.name}"


def method_cardinality(method: MethodDescriptor) -> Cardinality:
    return Cardinality.of(method.client_streaming, method.server_streaming)


def message_class_of(descriptor: Any) -> Any:
    return message_factory.GetMessageClass(descriptor)


def response_serializer(message_class: Any) -> Callable[[Any], bytes]:
    """Serializes responses of ``message_class``; a message of another type raises
    WrongMessageType naming both (protobuf would serialize it without a word, to bytes the
    client then reads as its response type)."""
    serialize = message_class.SerializeToString
    full_name = message_class.DESCRIPTOR.full_name

    def serialize_response(message: Any) -> bytes:
        if message.__class__ is not message_class:
            # The same message type from another generated module (or pool) is fine.
            given = getattr(getattr(message, "DESCRIPTOR", None), "full_name", None)
            if given != full_name:
                raise WrongMessageType(
                    f"the response must be a {full_name} message, not "
                    f"{given or type(message).__name__}"
                )
            data: bytes = message.SerializeToString()
            return data
        return serialize(message)  # type: ignore[no-any-return]

    return serialize_response


def _unimplemented(name: str) -> Callable[..., Any]:
    async def behavior(request: Any, context: Any) -> Any:
        raise RpcError(StatusCode.UNIMPLEMENTED, f"Method {name} not implemented")

    return behavior


def service_handlers(descriptor: ServiceDescriptor, servicer: object) -> ServiceHandlers:
    """Handlers for every RPC of ``descriptor``, run by the servicer's methods of the same name.

    A method the servicer lacks answers UNIMPLEMENTED, like grpcio's generated base classes.
    """
    MESSAGE_TYPES.register_service(descriptor)  # so that traces show its messages as text
    handlers: dict[str, MethodHandler] = {}
    for method in descriptor.methods:
        behavior = getattr(servicer, method.name, None)
        if behavior is None:
            behavior = _unimplemented(method.full_name)
        handlers[method.name] = MethodHandler(
            method_cardinality(method),
            behavior,
            message_class_of(method.input_type).FromString,
            response_serializer(message_class_of(method.output_type)),
        )
    return ServiceHandlers(descriptor.full_name, handlers, descriptor)
