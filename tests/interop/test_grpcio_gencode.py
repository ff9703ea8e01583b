"""grpcio-generated ``_pb2_grpc`` code runs unchanged on h2rpc, against real grpcio peers.

Two generators' code for tests/protos/h2rpc_test.proto: grpcio-tools 1.64.1's (committed in
tests/protos/grpcio_tools_1_64_1/, kept current by scripts/gen_protos.py) and the installed
grpcio-tools' (the newest; generated here, into a temporary directory). Both import the session's
``h2rpc_test_pb2`` (tests/conftest.py), so messages are the same classes everywhere.

* Client side: ``EchoTestStub(channel)`` on ``rpc.Channel`` (awaited) and ``rpc.sync.Channel``
  (blocking) calls grpcio's server (the session's grpcio peer process), all four call kinds.
* Server side: ``add_EchoTestServicer_to_server(servicer, server)`` on ``rpc.Server`` (plain ``def``
  servicer, run in its thread pool, and an ``async def`` one) and ``rpc.sync.Server``, called by a
  grpcio client through the generated stub on ``grpc.insecure_channel``. grpcio's own
  ``grpc.server`` runs the same cases as the reference: what it answers, h2rpc must answer.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from pathlib import Path
from types import ModuleType
from typing import Any, Callable

import pytest
from peers import GRPCIO_AVAILABLE, GRPCIO_UNAVAILABLE_REASON

if not GRPCIO_AVAILABLE:  # PyPy only: on CPython a missing grpcio is an error, not a skip
    pytest.skip(GRPCIO_UNAVAILABLE_REASON, allow_module_level=True)

import grpc
import h2rpc_test_pb2 as pb
from compile import PROTOS_DIR, compile_protos

import rpc
from tests.rpc.helpers import run
from tests.rpc.server_thread import ServerThread

OLD_TOOLS = "1.64.1"
OLD_GENCODE = PROTOS_DIR / "grpcio_tools_1_64_1" / "h2rpc_test_pb2_grpc.py"
NEWEST_TOOLS = importlib.metadata.version("grpcio-tools")
GENERATORS = (OLD_TOOLS, "newest")
TIMEOUT = 10.0

_loaded: dict[str, ModuleType] = {}


def _load(path: Path, generator: str) -> ModuleType:
    """Import a ``_pb2_grpc`` file under a name of its own (both generators' files are named
    ``h2rpc_test_pb2_grpc``)."""
    name = f"h2rpc_test_pb2_grpc__tools_{generator.replace('.', '_')}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def gencode_modules(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModuleType]:
    """generator -> its ``_pb2_grpc`` module (the newest one compiled now, grpc code only)."""
    if not _loaded:
        newest_dir = compile_protos(tmp_path_factory.mktemp("gencode-newest"), messages=False)
        _loaded[OLD_TOOLS] = _load(OLD_GENCODE, OLD_TOOLS)
        _loaded["newest"] = _load(newest_dir / "h2rpc_test_pb2_grpc.py", NEWEST_TOOLS)
    return _loaded


@pytest.fixture(scope="module", params=GENERATORS, ids=[OLD_TOOLS, f"newest-{NEWEST_TOOLS}"])
def gencode(request: pytest.FixtureRequest, gencode_modules: dict[str, ModuleType]) -> ModuleType:
    return gencode_modules[request.param]


def test_both_generators_code_is_exercised(gencode_modules: dict[str, ModuleType]) -> None:
    """The version markers grpcio-tools writes: the committed file is 1.64.1's, the other the
    installed grpcio-tools', and they differ."""
    assert gencode_modules[OLD_TOOLS].GRPC_GENERATED_VERSION == OLD_TOOLS
    assert gencode_modules["newest"].GRPC_GENERATED_VERSION == NEWEST_TOOLS
    assert NEWEST_TOOLS != OLD_TOOLS, "install a newer grpcio-tools to test two generators"


# ====================================================================== client side


def _requests(n: int) -> list[pb.EchoRequest]:
    return [pb.EchoRequest(payload=b"r%d" % i) for i in range(n)]


async def _async_requests(n: int) -> AsyncIterator[pb.EchoRequest]:
    for request in _requests(n):
        yield request


def test_generated_stub_on_async_channel_calls_grpcio_server(
    gencode: ModuleType, grpcio_server_target: str
) -> None:
    async def main() -> None:
        async with rpc.Channel(grpcio_server_target) as channel:
            stub = gencode.EchoTestStub(channel)
            assert isinstance(stub.Unary, rpc.UnaryUnaryMultiCallable)

            reply = await stub.Unary(pb.EchoRequest(payload=b"hi"), timeout=TIMEOUT)
            assert reply.payload == b"hi"

            call = stub.ServerStream(pb.EchoRequest(payload=b"s", response_count=3))
            assert [r.index async for r in call] == [0, 1, 2]

            reply = await stub.ClientStream(_async_requests(4), timeout=TIMEOUT)
            assert (reply.received_count, reply.received_bytes) == (4, 8)

            call = stub.Bidi(iter(_requests(3)), timeout=TIMEOUT)
            assert [(r.payload, r.index) async for r in call] == [
                (b"r0", 0),
                (b"r1", 1),
                (b"r2", 2),
            ]

            bidi = stub.Bidi(timeout=TIMEOUT)  # grpcio-aio's read/write form
            await bidi.write(pb.EchoRequest(payload=b"w"))
            assert (await bidi.read()).payload == b"w"
            await bidi.done_writing()
            assert await bidi.read() is rpc.EOF

            with pytest.raises(rpc.RpcError) as info:
                await stub.Unary(
                    pb.EchoRequest(status_code=grpc.StatusCode.NOT_FOUND.value[0]),
                    timeout=TIMEOUT,
                )
            assert info.value.code() == grpc.StatusCode.NOT_FOUND

    run(main())


def test_generated_stub_on_blocking_channel_calls_grpcio_server(
    gencode: ModuleType, grpcio_server_target: str
) -> None:
    with rpc.sync.Channel(grpcio_server_target) as channel:
        stub = gencode.EchoTestStub(channel)
        assert isinstance(stub.Unary, rpc.sync.UnaryUnaryMultiCallable)

        assert stub.Unary(pb.EchoRequest(payload=b"hi"), timeout=TIMEOUT).payload == b"hi"
        reply, call = stub.Unary.with_call(pb.EchoRequest(payload=b"again"), timeout=TIMEOUT)
        assert reply.payload == b"again" and call.code() == grpc.StatusCode.OK

        responses = stub.ServerStream(pb.EchoRequest(response_count=3), timeout=TIMEOUT)
        assert [r.index for r in responses] == [0, 1, 2]

        reply = stub.ClientStream(iter(_requests(4)), timeout=TIMEOUT)
        assert (reply.received_count, reply.received_bytes) == (4, 8)

        responses = stub.Bidi(iter(_requests(3)), timeout=TIMEOUT)
        assert [(r.payload, r.index) for r in responses] == [(b"r0", 0), (b"r1", 1), (b"r2", 2)]

        with pytest.raises(rpc.RpcError) as info:
            stub.Unary(
                pb.EchoRequest(status_code=grpc.StatusCode.NOT_FOUND.value[0]), timeout=TIMEOUT
            )
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


# ====================================================================== server side


def _fail(context: Any, request: pb.EchoRequest) -> None:
    """The error paths a grpcio servicer takes, chosen by the request's payload."""
    if request.payload == b"set_code":
        context.set_code(grpc.StatusCode.FAILED_PRECONDITION)
        context.set_details("not now")
        raise ValueError("secret internal detail")
    if request.payload == b"raise":
        raise ValueError("secret internal detail")


def _servicer_classes(gencode: ModuleType) -> tuple[type, type, type]:
    """(plain ``def`` servicer, ``async def`` servicer, one that implements nothing), all
    subclassing the generated ``EchoTestServicer``."""

    class Servicer(gencode.EchoTestServicer):
        def Unary(self, request: pb.EchoRequest, context: Any) -> pb.EchoResponse:
            if request.payload == b"abort":
                context.abort(grpc.StatusCode.NOT_FOUND, "no such echo")
            _fail(context, request)
            return pb.EchoResponse(payload=request.payload)

        def ServerStream(self, request: pb.EchoRequest, context: Any) -> Iterator[Any]:
            for index in range(request.response_count):
                yield pb.EchoResponse(payload=request.payload, index=index)
            if request.payload == b"abort":
                context.abort(grpc.StatusCode.NOT_FOUND, "no more echoes")

        def ClientStream(self, request_iterator: Iterator[Any], context: Any) -> Any:
            payloads = [r.payload for r in request_iterator]
            return pb.EchoResponse(
                received_count=len(payloads), received_bytes=sum(map(len, payloads))
            )

        def Bidi(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
            for index, request in enumerate(request_iterator):
                yield pb.EchoResponse(payload=request.payload, index=index)

    class AsyncServicer(gencode.EchoTestServicer):
        async def Unary(self, request: pb.EchoRequest, context: Any) -> pb.EchoResponse:
            if request.payload == b"abort":
                await context.abort(grpc.StatusCode.NOT_FOUND, "no such echo")
            _fail(context, request)
            return pb.EchoResponse(payload=request.payload)

        async def ServerStream(self, request: pb.EchoRequest, context: Any) -> AsyncIterator[Any]:
            for index in range(request.response_count):
                yield pb.EchoResponse(payload=request.payload, index=index)
            if request.payload == b"abort":
                await context.abort(grpc.StatusCode.NOT_FOUND, "no more echoes")

        async def ClientStream(self, request_iterator: AsyncIterator[Any], context: Any) -> Any:
            payloads = [r.payload async for r in request_iterator]
            return pb.EchoResponse(
                received_count=len(payloads), received_bytes=sum(map(len, payloads))
            )

        async def Bidi(
            self, request_iterator: AsyncIterator[Any], context: Any
        ) -> AsyncIterator[Any]:
            index = 0
            async for request in request_iterator:
                yield pb.EchoResponse(payload=request.payload, index=index)
                index += 1

    class Unimplemented(gencode.EchoTestServicer):
        """Leaves every method to the generated base: set_code(UNIMPLEMENTED), then raise."""

    return Servicer, AsyncServicer, Unimplemented


@contextlib.contextmanager
def _grpcio_server(add: Callable[[Any], None]) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    add(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0).wait(5)


@contextlib.contextmanager
def _h2rpc_server(add: Callable[[Any], None]) -> Iterator[str]:
    def make() -> rpc.Server:
        server = rpc.Server()
        add(server)
        return server

    with ServerThread(make) as target:
        yield target


@contextlib.contextmanager
def _h2rpc_sync_server(add: Callable[[Any], None]) -> Iterator[str]:
    server = rpc.sync.Server(max_workers=16)
    add(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0.5).wait(5)


class _GenericOnly:
    """A server as older generated code used it: ``add_generic_rpc_handlers`` only (grpcio's
    generic handler, asked per call), no ``add_registered_method_handlers``."""

    def __init__(self, server: Any) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service_name: str, handlers: Any) -> None:
        pass


#: server kind -> (how to run a server, servicer class: 0 def, 1 async def; generic only)
SERVERS = {
    "grpcio": (_grpcio_server, 0, False),
    "h2rpc": (_h2rpc_server, 0, False),
    "h2rpc-async-servicer": (_h2rpc_server, 1, False),
    "h2rpc-generic-only": (_h2rpc_server, 0, True),
    "h2rpc_sync": (_h2rpc_sync_server, 0, False),
}


class Served:
    """A grpcio client's stubs for one server kind: ``full`` (every method implemented) and
    ``unimplemented`` (the generated base's defaults), both added with the generated
    ``add_EchoTestServicer_to_server``."""

    def __init__(self, gencode: ModuleType, full: str, unimplemented: str) -> None:
        self._channels = [grpc.insecure_channel(full), grpc.insecure_channel(unimplemented)]
        self.full = gencode.EchoTestStub(self._channels[0])
        self.unimplemented = gencode.EchoTestStub(self._channels[1])

    def close(self) -> None:
        for channel in self._channels:
            channel.close()


@pytest.fixture(scope="module", params=list(SERVERS))
def served(request: pytest.FixtureRequest, gencode: ModuleType) -> Iterator[Served]:
    run_server, flavour, generic_only = SERVERS[request.param]
    classes = _servicer_classes(gencode)

    def adder(servicer: Any) -> Callable[[Any], None]:
        def add(server: Any) -> None:
            gencode.add_EchoTestServicer_to_server(
                servicer, _GenericOnly(server) if generic_only else server
            )

        return add

    with contextlib.ExitStack() as stack:
        full_target = stack.enter_context(run_server(adder(classes[flavour]())))
        bare_target = stack.enter_context(run_server(adder(classes[2]())))
        served = Served(gencode, full_target, bare_target)
        stack.callback(served.close)
        yield served


def test_grpcio_client_calls_unary(served: Served) -> None:
    reply, call = served.full.Unary.with_call(pb.EchoRequest(payload=b"hi"), timeout=TIMEOUT)
    assert reply.payload == b"hi"
    assert call.code() == grpc.StatusCode.OK


def test_grpcio_client_calls_server_stream(served: Served) -> None:
    responses = served.full.ServerStream(
        pb.EchoRequest(payload=b"s", response_count=3), timeout=TIMEOUT
    )
    assert [(r.payload, r.index) for r in responses] == [(b"s", 0), (b"s", 1), (b"s", 2)]


def test_grpcio_client_calls_client_stream(served: Served) -> None:
    reply = served.full.ClientStream(iter(_requests(4)), timeout=TIMEOUT)
    assert (reply.received_count, reply.received_bytes) == (4, 8)


def test_grpcio_client_calls_bidi(served: Served) -> None:
    responses = served.full.Bidi(iter(_requests(3)), timeout=TIMEOUT)
    assert [(r.payload, r.index) for r in responses] == [(b"r0", 0), (b"r1", 1), (b"r2", 2)]


METHODS = ("Unary", "ServerStream", "ClientStream", "Bidi")


@pytest.mark.parametrize("method", METHODS)
def test_method_left_to_the_generated_base_is_unimplemented(served: Served, method: str) -> None:
    multi_callable = getattr(served.unimplemented, method)
    request: Any = pb.EchoRequest(payload=b"x", response_count=2)
    if method in ("ClientStream", "Bidi"):
        request = iter(_requests(2))
    with pytest.raises(grpc.RpcError) as info:
        result = multi_callable(request, timeout=TIMEOUT)
        if method in ("ServerStream", "Bidi"):
            list(result)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert info.value.details() == "Method not implemented!"


def test_exception_after_set_code_and_set_details_sends_them(served: Served) -> None:
    with pytest.raises(grpc.RpcError) as info:
        served.full.Unary(pb.EchoRequest(payload=b"set_code"), timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert info.value.details() == "not now"


def test_other_exception_is_unknown(served: Served) -> None:
    with pytest.raises(grpc.RpcError) as info:
        served.full.Unary(pb.EchoRequest(payload=b"raise"), timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.UNKNOWN


def test_abort_with_grpcio_status_code_reaches_grpcio_client(served: Served) -> None:
    with pytest.raises(grpc.RpcError) as info:
        served.full.Unary(pb.EchoRequest(payload=b"abort"), timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "no such echo"


def test_abort_after_streamed_responses_reaches_grpcio_client(served: Served) -> None:
    responses = served.full.ServerStream(
        pb.EchoRequest(payload=b"abort", response_count=2), timeout=TIMEOUT
    )
    received = []
    with pytest.raises(grpc.RpcError) as info:
        for response in responses:
            received.append(response.index)
    assert received == [0, 1]
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "no more echoes"


# ====================================================================== both ends generated


@pytest.mark.parametrize("blocking", [False, True], ids=["async", "blocking"])
def test_generated_stub_and_servicer_on_h2rpc_at_both_ends(
    gencode: ModuleType, blocking: bool
) -> None:
    """No grpcio on the wire at all: the generated module alone, on h2rpc's channel and server."""
    servicer = _servicer_classes(gencode)[0]()

    def add(server: Any) -> None:
        gencode.add_EchoTestServicer_to_server(servicer, server)

    with _h2rpc_server(add) as target:
        if blocking:
            with rpc.sync.Channel(target) as channel:
                stub = gencode.EchoTestStub(channel)
                assert stub.Unary(pb.EchoRequest(payload=b"x"), timeout=TIMEOUT).payload == b"x"
                assert [r.index for r in stub.Bidi(iter(_requests(2)))] == [0, 1]
        else:

            async def main() -> None:
                async with rpc.Channel(target) as channel:
                    stub = gencode.EchoTestStub(channel)
                    reply = await stub.Unary(pb.EchoRequest(payload=b"x"), timeout=TIMEOUT)
                    assert reply.payload == b"x"
                    assert [r.index async for r in stub.Bidi(iter(_requests(2)))] == [0, 1]

            run(main())
