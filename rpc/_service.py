"""Services from protobuf descriptors: server handlers from a servicer, client stubs at run time.

``_pb2`` modules made by protoc (for instance grpcio-tools') carry a ``ServiceDescriptor`` for each
service; from it we know every method's path, cardinality and message classes, so neither side
needs generated ``_pb2_grpc`` code.
"""

from __future__ import annotations

from operator import methodcaller
from typing import TYPE_CHECKING, Any, Callable, Union

from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from codec import StatusCode

from ._errors import RpcError
from ._handlers import Cardinality, MethodHandler, ServiceHandlers
from ._messages import WrongMessageType
from ._trace import MESSAGE_TYPES

if TYPE_CHECKING:
    from ._channel import Channel
    from .sync import Channel as SyncChannel

#: Serializes any protobuf message; one shared callable instead of a closure per method.
serialize_message: Callable[[Any], bytes] = methodcaller("SerializeToString")


def method_path(method: MethodDescriptor) -> str:
    """The HTTP/2 ``:path`` of a method: ``/package.Service/Method``."""
    return f"/{method.containing_service.full_name}/{method.name}"


def method_cardinality(method: MethodDescriptor) -> Cardinality:
    return Cardinality.of(method.client_streaming, method.server_streaming)


def _message_class(descriptor: Any) -> Any:
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
            _message_class(method.input_type).FromString,
            response_serializer(_message_class(method.output_type)),
        )
    return ServiceHandlers(descriptor.full_name, handlers)


class Stub:
    """A client stub built at run time: one multi-callable attribute per RPC of the service.

    Works on ``rpc.Channel`` (calls are awaitable) and on ``rpc.sync.Channel`` (calls block).

    ``stub = Stub(channel, helloworld_pb2.DESCRIPTOR.services_by_name["Greeter"])``, then
    ``await stub.SayHello(HelloRequest(name="you"))``.
    """

    def __init__(self, channel: Union[Channel, SyncChannel], descriptor: ServiceDescriptor) -> None:
        self._descriptor = descriptor
        MESSAGE_TYPES.register_service(descriptor)  # so that traces show its messages as text
        for method in descriptor.methods:
            response_class = _message_class(method.output_type)
            path = method_path(method)
            kind = method_cardinality(method)
            callable_ = channel._multi_callable(
                kind, path, serialize_message, response_class.FromString
            )
            setattr(self, method.name, callable_)

    def __getattr__(self, name: str) -> Any:  # only reached for names the service lacks
        raise AttributeError(f"service {self._descriptor.full_name} has no method {name!r}")
