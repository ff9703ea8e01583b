"""A user program with the wrong message types: mypy --strict must report an error on each line
that follows an ``# error: <part of mypy's message>`` comment (test_generated_code.py), and no
other error. Never run."""

from __future__ import annotations

from h2rpc_codegen import common_pb2, services_h2rpc, services_pb2

import rpc


async def wrong_requests(channel: rpc.Channel) -> None:
    stub = services_h2rpc.EchoStub(channel)
    # error: "UnaryUnaryMultiCallable" has incompatible type "Reply"; expected "Request"
    await stub.Unary(services_pb2.Reply())
    # error: List item 0 has incompatible type "Point"; expected "Request"
    await stub.ClientStream([common_pb2.Point()])
    call = stub.Bidi()
    # error: Argument 1 to "write" of
    # error: has incompatible type "Reply"; expected "Request"
    await call.write(services_pb2.Reply())
    # error: (expression has type "Reply", variable has type "Request")
    reply: services_pb2.Request = await stub.Unary(services_pb2.Request())
    print(reply)


def wrong_blocking_requests(channel: rpc.sync.Channel) -> None:
    stub = services_h2rpc.EchoBlockingStub(channel)
    # error: incompatible type "Point"; expected "Request"
    stub.Unary(common_pb2.Point())
    # error: Argument 1 to "future" of "UnaryUnaryMultiCallable" has incompatible type "Point"
    stub.Unary.future(common_pb2.Point())
    for reply in stub.ServerStream(services_pb2.Request()):
        # error: "Reply" has no attribute "no_such_field"
        print(reply.no_such_field)


class WrongServicer(services_h2rpc.EchoServicer):
    async def Unary(
        self,
        # error: Argument 1 of "Unary" is incompatible with supertype
        request: common_pb2.Point,
        context: rpc.ServicerContext,
    ) -> services_pb2.Reply:
        return services_pb2.Reply()

    # error: Return type "Coroutine[Any, Any, Point]" of "ClientStream" incompatible with
    async def ClientStream(
        self, request_iterator: object, context: rpc.ServicerContext
    ) -> common_pb2.Point:
        return common_pb2.Point()


def async_servicer_on_blocking_server(server: rpc.sync.Server) -> None:
    servicer = services_h2rpc.EchoServicer()
    # error: No overload variant of "add_EchoServicer_to_server" matches argument types
    services_h2rpc.add_EchoServicer_to_server(servicer, server)
