"""Client stubs built at run time from a protobuf service descriptor (no generated code)."""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import ServiceDescriptor

from ._handlers import message_class_of, method_cardinality, method_path, serialize_message
from ._trace.tracer import MESSAGE_TYPES


class Stub:
    """A client stub built at run time: one multi-callable attribute per RPC of the service.

    Works on ``rpc.Channel`` (calls are awaitable) and on ``rpc.sync.Channel`` (calls block).

    ``stub = Stub(channel, helloworld_pb2.DESCRIPTOR.services_by_name["Greeter"])``, then
    ``await stub.SayHello(HelloRequest(name="you"))``.
    """

    def __init__(self, channel: Any, descriptor: ServiceDescriptor) -> None:
        self._descriptor = descriptor
        MESSAGE_TYPES.register_service(descriptor)  # so that traces show its messages as text
        for method in descriptor.methods:
            response_class = message_class_of(method.output_type)
            path = method_path(method)
            kind = method_cardinality(method)
            # The channel's public multi-callable API (unary_unary, ...): any channel with
            # grpcio's methods will do, rpc.Channel, rpc.sync.Channel or grpcio's own.
            callable_ = getattr(channel, kind.name.lower())(
                path,
                request_serializer=serialize_message,
                response_deserializer=response_class.FromString,
            )
            setattr(self, method.name, callable_)

    def __getattr__(self, name: str) -> Any:  # only reached for names the service lacks
        raise AttributeError(f"service {self._descriptor.full_name} has no method {name!r}")
