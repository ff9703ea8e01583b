"""Code from protoc-gen-h2rpc against grpcio, both ways, all four call kinds.

* The generated async and blocking stubs call a grpcio server (``grpc.server``, its servicers
  subclassing grpcio's own generated bases from ``--grpc_python_out``).
* A grpcio client (grpcio's generated stub on ``grpc.insecure_channel``) calls h2rpc servers
  whose servicers subclass the generated bases: async ones on ``rpc.Server``, blocking ones on
  ``rpc.Server`` and ``rpc.sync.Server``; the bare bases answer UNIMPLEMENTED.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import pytest
from peers import GRPCIO_AVAILABLE, GRPCIO_UNAVAILABLE_REASON

if not GRPCIO_AVAILABLE:  # PyPy only: on CPython a missing grpcio is an error, not a skip
    pytest.skip(GRPCIO_UNAVAILABLE_REASON, allow_module_level=True)

import grpc

import rpc
from tests.codegen.conftest import Generated
from tests.codegen.test_generated_code import SERVERS
from tests.rpc.helpers import run

TIMEOUT = 10.0


def _grpcio_servicers(generated: Generated) -> list[Any]:
    """grpcio servicers of Echo and Shapes with the behaviour of tests/codegen/servicers.py."""
    import h2rpc_codegen.services_pb2_grpc as grpcio_code

    servicers = generated.servicers
    Reply = servicers.Reply

    class Echo(grpcio_code.EchoServicer):
        def Unary(self, request: Any, context: Any) -> Any:
            if request.status:
                context.abort(grpc.StatusCode.NOT_FOUND, f"no {request.name}")
            return Reply(message=request.name)

        def ServerStream(self, request: Any, context: Any) -> Iterator[Any]:
            for index in range(request.count):
                yield Reply(message=request.name, index=index)

        def ClientStream(self, request_iterator: Any, context: Any) -> Any:
            names = [request.name for request in request_iterator]
            return Reply(message=",".join(names), index=len(names))

        def Bidi(self, request_iterator: Any, context: Any) -> Iterator[Any]:
            for index, request in enumerate(request_iterator):
                yield Reply(message=request.name, index=index)

    class Shapes(grpcio_code.ShapesServicer):
        def Locate(self, request: Any, context: Any) -> Any:
            return request.point

        def Now(self, request: Any, context: Any) -> Any:
            return servicers.NOW

        def Twice(self, request_iterator: Any, context: Any) -> Iterator[Any]:
            for item in request_iterator:
                yield item
                yield item

    return [
        (grpcio_code.add_EchoServicer_to_server, Echo()),
        (grpcio_code.add_ShapesServicer_to_server, Shapes()),
    ]


@pytest.fixture(scope="module")
def grpcio_target(generated: Generated) -> Iterator[str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    for add, servicer in _grpcio_servicers(generated):
        add(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0).wait(5)


def test_generated_async_stubs_call_a_grpcio_server(
    generated: Generated, grpcio_target: str
) -> None:
    async def main() -> None:
        async with rpc.Channel(grpcio_target) as channel:
            await generated.servicers.echo_async(channel)
            await generated.servicers.shapes_async(channel)

    run(main())


def test_generated_blocking_stubs_call_a_grpcio_server(
    generated: Generated, grpcio_target: str
) -> None:
    with rpc.sync.Channel(grpcio_target) as channel:
        generated.servicers.echo_blocking(channel)
        generated.servicers.shapes_blocking(channel)


# ---------------------------------------------------------------------- grpcio client


@pytest.fixture(scope="module", params=list(SERVERS))
def h2rpc_targets(generated: Generated, request: pytest.FixtureRequest) -> Iterator[list[str]]:
    """[a server with every test servicer, one with the bare Echo bases], of one kind."""
    run_server, add, blocking = SERVERS[request.param]

    def add_bare(server: Any) -> None:
        generated.servicers.add_unimplemented_servicers(server, blocking)

    with contextlib.ExitStack() as stack:
        full = stack.enter_context(run_server(getattr(generated.servicers, add)))
        bare = stack.enter_context(run_server(add_bare))
        yield [full, bare]


@pytest.fixture
def grpcio_stubs(h2rpc_targets: list[str]) -> Iterator[Any]:
    import h2rpc_codegen.services_pb2_grpc as grpcio_code

    with contextlib.ExitStack() as stack:
        full, bare = (
            stack.enter_context(grpc.insecure_channel(target)) for target in h2rpc_targets
        )
        yield (
            grpcio_code.EchoStub(full),
            grpcio_code.ShapesStub(full),
            grpcio_code.EchoStub(bare),
        )


def test_grpcio_client_calls_servicers_built_on_the_generated_bases(
    generated: Generated, grpcio_stubs: Any
) -> None:
    echo, shapes, _ = grpcio_stubs
    servicers = generated.servicers
    Request = servicers.Request

    reply, call = echo.Unary.with_call(Request(name="unary"), timeout=TIMEOUT)
    assert reply.message == "unary" and call.code() == grpc.StatusCode.OK
    replies = echo.ServerStream(Request(name="s", count=3), timeout=TIMEOUT)
    assert [(r.message, r.index) for r in replies] == [("s", 0), ("s", 1), ("s", 2)]
    requests = [Request(name=name) for name in "abc"]
    summary = echo.ClientStream(iter(requests), timeout=TIMEOUT)
    assert (summary.message, summary.index) == ("a,b,c", 3)
    replies = echo.Bidi(iter(requests), timeout=TIMEOUT)
    assert [(r.message, r.index) for r in replies] == [("a", 0), ("b", 1), ("c", 2)]
    with pytest.raises(grpc.RpcError) as info:
        echo.Unary(Request(name="missing", status=1), timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert info.value.details() == "no missing"

    inner = servicers.common_pb2.Outer.Inner(point=servicers.common_pb2.Point(x=1, y=2))
    assert shapes.Locate(inner, timeout=TIMEOUT) == servicers.common_pb2.Point(x=1, y=2)
    assert shapes.Now(servicers.empty_pb2.Empty(), timeout=TIMEOUT) == servicers.NOW
    anys = [servicers.any_pb2.Any(type_url="type.example.com/x", value=b"x")]
    assert [a.value for a in shapes.Twice(iter(anys), timeout=TIMEOUT)] == [b"x", b"x"]


@pytest.mark.parametrize("method", ["Unary", "ServerStream", "ClientStream", "Bidi"])
def test_grpcio_client_gets_unimplemented_from_the_bare_generated_bases(
    generated: Generated, grpcio_stubs: Any, method: str
) -> None:
    bare = grpcio_stubs[2]
    request: Any = generated.servicers.Request(name="x", count=1)
    if method in ("ClientStream", "Bidi"):
        request = iter([request])
    with pytest.raises(grpc.RpcError) as info:
        result = getattr(bare, method)(request, timeout=TIMEOUT)
        if method in ("ServerStream", "Bidi"):
            list(result)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert info.value.details() == "Method not implemented!"
