"""Servicers built on the generated bases, and calls through the generated stubs, all typed.

The runtime tests run them (h2rpc against h2rpc, and against grpcio peers), and mypy --strict
checks them against the generated code (test_generated_code.py): what a user program does, typed.
Importable once the test protos are generated and their directory is on ``sys.path``
(tests/codegen/conftest.py).

The services' behaviour (tests/codegen/protos): Echo.Unary answers the request's name (a request
with ``status`` set fails NOT_FOUND), ServerStream ``count`` replies, ClientStream the names
joined and their number, Bidi one reply per request; Shapes.Locate the point of an
``Outer.Inner``, Now a fixed time, Twice each ``Any`` twice; Keywords and Lambda show names that
are Python keywords.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import keyword_message_h2rpc
import keyword_message_pb2
from google.protobuf import any_pb2, empty_pb2, timestamp_pb2
from h2rpc_codegen import common_pb2, keywords_h2rpc, services_h2rpc, services_pb2

import rpc

if TYPE_CHECKING:
    from typing_extensions import assert_type
else:

    def assert_type(value: object, expected: object) -> object:
        return value


TIMEOUT = 10.0
NOW = timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=5)
Request = services_pb2.Request
Reply = services_pb2.Reply


def _requests(*names: str) -> list[services_pb2.Request]:
    return [Request(name=name) for name in names]


def _from(value: str) -> services_pb2.Request:
    """A request whose field ``from`` (a Python keyword) is set."""
    fields: dict[str, Any] = {"from": value}
    return Request(**fields)


def _holder_return(value: int) -> Any:
    """A ``Holder.return`` message (a class only getattr reaches)."""
    return getattr(keyword_message_pb2.Holder, "return")(value=value)


# ====================================================================== servicers


class AsyncEcho(services_h2rpc.EchoServicer):
    async def Unary(
        self, request: services_pb2.Request, context: rpc.ServicerContext
    ) -> services_pb2.Reply:
        if request.status:
            raise rpc.RpcError(rpc.StatusCode.NOT_FOUND, f"no {request.name}")
        return Reply(message=request.name)

    async def ServerStream(
        self, request: services_pb2.Request, context: rpc.ServicerContext
    ) -> AsyncIterator[services_pb2.Reply]:
        for index in range(request.count):
            yield Reply(message=request.name, index=index)

    async def ClientStream(
        self,
        request_iterator: AsyncIterator[services_pb2.Request],
        context: rpc.ServicerContext,
    ) -> services_pb2.Reply:
        names = [request.name async for request in request_iterator]
        return Reply(message=",".join(names), index=len(names))

    async def Bidi(
        self,
        request_iterator: AsyncIterator[services_pb2.Request],
        context: rpc.ServicerContext,
    ) -> AsyncIterator[services_pb2.Reply]:
        index = 0
        async for request in request_iterator:
            yield Reply(message=request.name, index=index)
            index += 1


class BlockingEcho(services_h2rpc.EchoBlockingServicer):
    def Unary(
        self, request: services_pb2.Request, context: rpc.sync.ServicerContext
    ) -> services_pb2.Reply:
        if request.status:
            context.abort(rpc.StatusCode.NOT_FOUND, f"no {request.name}")
        return Reply(message=request.name)

    def ServerStream(
        self, request: services_pb2.Request, context: rpc.sync.ServicerContext
    ) -> Iterable[services_pb2.Reply]:
        # A list is an iterable of responses too (the blocking base says Iterable).
        return [Reply(message=request.name, index=index) for index in range(request.count)]

    def ClientStream(
        self,
        request_iterator: Iterator[services_pb2.Request],
        context: rpc.sync.ServicerContext,
    ) -> services_pb2.Reply:
        names = [request.name for request in request_iterator]
        return Reply(message=",".join(names), index=len(names))

    def Bidi(
        self,
        request_iterator: Iterator[services_pb2.Request],
        context: rpc.sync.ServicerContext,
    ) -> Iterator[services_pb2.Reply]:
        for index, request in enumerate(request_iterator):
            yield Reply(message=request.name, index=index)


class AsyncShapes(services_h2rpc.ShapesServicer):
    async def Locate(
        self, request: common_pb2.Outer.Inner, context: rpc.ServicerContext
    ) -> common_pb2.Point:
        return request.point

    async def Now(
        self, request: empty_pb2.Empty, context: rpc.ServicerContext
    ) -> timestamp_pb2.Timestamp:
        return NOW

    async def Twice(
        self, request_iterator: AsyncIterator[any_pb2.Any], context: rpc.ServicerContext
    ) -> AsyncIterator[any_pb2.Any]:
        async for item in request_iterator:
            yield item
            yield item


class BlockingShapes(services_h2rpc.ShapesBlockingServicer):
    def Locate(
        self, request: common_pb2.Outer.Inner, context: rpc.sync.ServicerContext
    ) -> common_pb2.Point:
        return request.point

    def Now(
        self, request: empty_pb2.Empty, context: rpc.sync.ServicerContext
    ) -> timestamp_pb2.Timestamp:
        return NOW

    def Twice(
        self, request_iterator: Iterator[any_pb2.Any], context: rpc.sync.ServicerContext
    ) -> Iterator[any_pb2.Any]:
        for item in request_iterator:
            yield item
            yield item


class AsyncKeywords(keywords_h2rpc.KeywordsServicer):
    async def import_(
        self, request: services_pb2.Request, context: rpc.ServicerContext
    ) -> services_pb2.Reply:
        return Reply(message="import " + getattr(request, "from"))

    async def None_(
        self,
        request_iterator: AsyncIterator[services_pb2.Request],
        context: rpc.ServicerContext,
    ) -> AsyncIterator[services_pb2.Reply]:
        async for request in request_iterator:
            yield Reply(message=f"None {request.name}")

    async def lambda_(
        self, request: empty_pb2.Empty, context: rpc.ServicerContext
    ) -> AsyncIterator[services_pb2.Reply]:
        yield Reply(message="lambda", index=0)
        yield Reply(message="lambda", index=1)


class BlockingKeywords(keywords_h2rpc.KeywordsBlockingServicer):
    def import_(
        self, request: services_pb2.Request, context: rpc.sync.ServicerContext
    ) -> services_pb2.Reply:
        return Reply(message="import " + getattr(request, "from"))


class AsyncLambda(keyword_message_h2rpc.LambdaServicer):
    async def Yield(self, request: Any, context: rpc.ServicerContext) -> Any:
        return _holder_return(len(getattr(request, "def")))


class BlockingLambda(keyword_message_h2rpc.LambdaBlockingServicer):
    def Yield(self, request: Any, context: rpc.sync.ServicerContext) -> Any:
        return _holder_return(len(getattr(request, "def")))


def add_async_servicers(server: rpc.Server) -> None:
    """Every test service, served by async servicers."""
    services_h2rpc.add_EchoServicer_to_server(AsyncEcho(), server)
    services_h2rpc.add_ShapesServicer_to_server(AsyncShapes(), server)
    services_h2rpc.add_NothingServicer_to_server(services_h2rpc.NothingServicer(), server)
    keywords_h2rpc.add_KeywordsServicer_to_server(AsyncKeywords(), server)
    keyword_message_h2rpc.add_LambdaServicer_to_server(AsyncLambda(), server)


def add_blocking_servicers(server: rpc.Server | rpc.sync.Server) -> None:
    """Every test service, served by blocking servicers (on either server)."""
    services_h2rpc.add_EchoServicer_to_server(BlockingEcho(), server)
    services_h2rpc.add_ShapesServicer_to_server(BlockingShapes(), server)
    services_h2rpc.add_NothingServicer_to_server(services_h2rpc.NothingBlockingServicer(), server)
    keywords_h2rpc.add_KeywordsServicer_to_server(BlockingKeywords(), server)
    keyword_message_h2rpc.add_LambdaServicer_to_server(BlockingLambda(), server)


def add_unimplemented_servicers(server: rpc.Server | rpc.sync.Server, blocking: bool) -> None:
    """Echo served by a bare generated base: every method answers UNIMPLEMENTED."""
    if blocking:
        services_h2rpc.add_EchoServicer_to_server(services_h2rpc.EchoBlockingServicer(), server)
    else:
        assert isinstance(server, rpc.Server)
        services_h2rpc.add_EchoServicer_to_server(services_h2rpc.EchoServicer(), server)


# ====================================================================== calls


async def _async_requests(*names: str) -> AsyncIterator[services_pb2.Request]:
    for request in _requests(*names):
        yield request


async def echo_async(channel: rpc.Channel) -> None:
    """The four call kinds of Echo through the async stub, and an error."""
    stub = services_h2rpc.EchoStub(channel)

    call = stub.Unary(Request(name="unary"), timeout=TIMEOUT)
    assert_type(call, rpc.UnaryUnaryCall[services_pb2.Reply])
    reply = await call
    assert_type(reply, services_pb2.Reply)
    assert reply.message == "unary"

    stream = stub.ServerStream(Request(name="s", count=3), timeout=TIMEOUT)
    assert_type(stream, rpc.UnaryStreamCall[services_pb2.Reply])
    assert [(r.message, r.index) async for r in stream] == [("s", 0), ("s", 1), ("s", 2)]

    summary = await stub.ClientStream(_async_requests("a", "b", "c"), timeout=TIMEOUT)
    assert (summary.message, summary.index) == ("a,b,c", 3)
    summary = await stub.ClientStream(_requests("d"), timeout=TIMEOUT)  # a plain iterable
    assert (summary.message, summary.index) == ("d", 1)

    bidi = stub.Bidi(timeout=TIMEOUT)
    assert_type(bidi, rpc.StreamStreamCall[services_pb2.Request, services_pb2.Reply])
    await bidi.write(Request(name="x"))
    first = await bidi.read()
    assert isinstance(first, services_pb2.Reply) and first.message == "x"
    await bidi.done_writing()
    assert await bidi.read() is rpc.EOF
    together = stub.Bidi(_requests("p", "q"), timeout=TIMEOUT)
    assert [(r.message, r.index) async for r in together] == [("p", 0), ("q", 1)]

    try:
        await stub.Unary(Request(name="missing", status=1), timeout=TIMEOUT)
    except rpc.RpcError as error:
        assert error.code() == rpc.StatusCode.NOT_FOUND
        assert error.details() == "no missing"
    else:
        raise AssertionError("the call should have failed")


def echo_blocking(channel: rpc.sync.Channel) -> None:
    """The four call kinds of Echo through the blocking stub, ``with_call``, ``future``, an
    error."""
    stub = services_h2rpc.EchoBlockingStub(channel)

    reply = stub.Unary(Request(name="unary"), timeout=TIMEOUT)
    assert_type(reply, services_pb2.Reply)
    assert reply.message == "unary"
    reply, call = stub.Unary.with_call(Request(name="with_call"), timeout=TIMEOUT)
    assert_type(call, rpc.sync.Call[services_pb2.Reply])
    assert reply.message == "with_call" and call.code() == rpc.StatusCode.OK
    future = stub.Unary.future(Request(name="future"), timeout=TIMEOUT)
    assert_type(future, rpc.sync.CallFuture[services_pb2.Reply])
    assert future.result(TIMEOUT).message == "future"

    stream = stub.ServerStream(Request(name="s", count=3), timeout=TIMEOUT)
    assert_type(stream, rpc.sync.Call[services_pb2.Reply])
    assert [(r.message, r.index) for r in stream] == [("s", 0), ("s", 1), ("s", 2)]

    summary = stub.ClientStream(iter(_requests("a", "b", "c")), timeout=TIMEOUT)
    assert (summary.message, summary.index) == ("a,b,c", 3)

    replies = stub.Bidi(iter(_requests("p", "q")), timeout=TIMEOUT)
    assert [(r.message, r.index) for r in replies] == [("p", 0), ("q", 1)]

    try:
        stub.Unary(Request(name="missing", status=1), timeout=TIMEOUT)
    except rpc.RpcError as error:
        assert error.code() == rpc.StatusCode.NOT_FOUND
        assert error.details() == "no missing"
    else:
        raise AssertionError("the call should have failed")


async def _anys() -> AsyncIterator[any_pb2.Any]:
    for value in (b"one", b"two"):
        yield any_pb2.Any(type_url="type.example.com/bytes", value=value)


async def shapes_async(channel: rpc.Channel) -> None:
    """Imported and nested messages, and well-known types, through the async stub."""
    stub = services_h2rpc.ShapesStub(channel)
    inner = common_pb2.Outer.Inner(text="here", point=common_pb2.Point(x=3, y=4))
    point = await stub.Locate(inner, timeout=TIMEOUT)
    assert_type(point, common_pb2.Point)
    assert (point.x, point.y) == (3, 4)
    now = await stub.Now(empty_pb2.Empty(), timeout=TIMEOUT)
    assert_type(now, timestamp_pb2.Timestamp)
    assert now == NOW
    values = [item.value async for item in stub.Twice(_anys(), timeout=TIMEOUT)]
    assert values == [b"one", b"one", b"two", b"two"]


def shapes_blocking(channel: rpc.sync.Channel) -> None:
    stub = services_h2rpc.ShapesBlockingStub(channel)
    inner = common_pb2.Outer.Inner(point=common_pb2.Point(x=5, y=6))
    assert stub.Locate(inner, timeout=TIMEOUT) == common_pb2.Point(x=5, y=6)
    assert stub.Now(empty_pb2.Empty(), timeout=TIMEOUT) == NOW
    anys = [any_pb2.Any(type_url="type.example.com/bytes", value=b"v")]
    assert [item.value for item in stub.Twice(iter(anys), timeout=TIMEOUT)] == [b"v", b"v"]


async def keywords_async(channel: rpc.Channel) -> None:
    """RPCs named after Python keywords (``import_``, ...), messages named after them too."""
    stub = keywords_h2rpc.KeywordsStub(channel)
    assert (await stub.import_(_from("here"), timeout=TIMEOUT)).message == "import here"
    replies = [r.message async for r in stub.None_(_requests("a", "b"), timeout=TIMEOUT)]
    assert replies == ["None a", "None b"]
    lambdas = stub.lambda_(empty_pb2.Empty(), timeout=TIMEOUT)
    assert [r.index async for r in lambdas] == [0, 1]

    message = getattr(keyword_message_pb2, "class")(**{"def": "four"})
    answer = await keyword_message_h2rpc.LambdaStub(channel).Yield(message, timeout=TIMEOUT)
    assert answer.value == 4


def keywords_blocking(channel: rpc.sync.Channel) -> None:
    stub = keywords_h2rpc.KeywordsBlockingStub(channel)
    assert stub.import_(_from("there"), timeout=TIMEOUT).message == "import there"
    message = getattr(keyword_message_pb2, "class")(**{"def": "seven"})
    answer = keyword_message_h2rpc.LambdaBlockingStub(channel).Yield(message, timeout=TIMEOUT)
    assert answer.value == 5


async def echo_unimplemented_async(channel: rpc.Channel) -> list[tuple[rpc.StatusCode, str]]:
    """(code, details) of each Echo method left to the generated base."""
    stub = services_h2rpc.EchoStub(channel)
    outcomes = []
    calls: list[Any] = [
        stub.Unary(Request(), timeout=TIMEOUT),
        stub.ServerStream(Request(count=1), timeout=TIMEOUT),
        stub.ClientStream(_requests("a"), timeout=TIMEOUT),
        stub.Bidi(_requests("a"), timeout=TIMEOUT),
    ]
    for call in calls:
        try:
            if isinstance(call, (rpc.UnaryStreamCall, rpc.StreamStreamCall)):
                _ = [reply async for reply in call]
            else:
                await call
        except rpc.RpcError as error:
            outcomes.append((error.code(), error.details()))
    return outcomes
