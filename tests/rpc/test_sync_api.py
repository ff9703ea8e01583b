"""The blocking API in process: one servicer class on both servers, mixed clients, deadlines
enforced by the blocking server, TLS and Unix sockets on the thread-driven transport."""

from __future__ import annotations

import asyncio
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

import rpc
from tests.rpc.helpers import run

pb = pytest.importorskip("examples.route_guide.route_guide_pb2")
SERVICE = pb.DESCRIPTOR.services_by_name["RouteGuide"]


class Guide:
    """Plain def methods: served as is by rpc.sync.Server, in a thread pool by rpc.Server."""

    def __init__(self) -> None:
        self.cancelled = threading.Event()

    def GetFeature(self, request: Any, context: Any) -> Any:
        if request.latitude < 0:
            context.abort(rpc.StatusCode.INVALID_ARGUMENT, "south of the equator")
        if request.latitude == 999:
            while context.is_active():  # a handler polling is_active(), as grpcio's do
                time.sleep(0.01)
            self.cancelled.set()
            return pb.Feature()
        context.send_initial_metadata([("who", "guide")])
        context.set_trailing_metadata([("count-bin", b"\x01")])
        return pb.Feature(name=f"at {request.latitude}", location=request)

    def ListFeatures(self, request: Any, context: Any) -> Iterator[Any]:
        for i in range(request.lo.latitude):
            yield pb.Feature(name=str(i))

    def RecordRoute(self, request_iterator: Iterator[Any], context: Any) -> Any:
        return pb.RouteSummary(point_count=sum(1 for _ in request_iterator))

    def RouteChat(self, request_iterator: Iterator[Any], context: Any) -> Iterator[Any]:
        for note in request_iterator:
            yield pb.RouteNote(message=note.message[::-1])


def exercise_blocking(target: str, **channel_options: Any) -> None:
    with rpc.sync.Channel(target, **channel_options) as channel:
        channel.channel_ready(timeout=5)
        stub = rpc.Stub(channel, SERVICE)
        reply, call = stub.GetFeature.with_call(pb.Point(latitude=7), timeout=5)
        assert reply.name == "at 7"
        assert call.initial_metadata()["who"] == "guide"
        assert call.trailing_metadata()["count-bin"] == b"\x01"
        assert [f.name for f in stub.ListFeatures(pb.Rectangle(lo=pb.Point(latitude=3)))] == [
            "0",
            "1",
            "2",
        ]
        assert stub.RecordRoute(pb.Point() for _ in range(4)).point_count == 4
        notes = [n.message for n in stub.RouteChat(iter([pb.RouteNote(message="abc")] * 2))]
        assert notes == ["cba", "cba"]
        with pytest.raises(rpc.RpcError) as info:
            stub.GetFeature(pb.Point(latitude=-1))
        assert info.value.code() == rpc.StatusCode.INVALID_ARGUMENT
        assert info.value.details() == "south of the equator"


@pytest.fixture
def blocking_server() -> Iterator[tuple[rpc.sync.Server, Guide, int]]:
    guide = Guide()
    server = rpc.sync.Server(max_workers=8)
    server.add_service(SERVICE, guide)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield server, guide, port
    server.stop(0.5)


def test_blocking_client_and_blocking_server(blocking_server: Any) -> None:
    exercise_blocking(f"127.0.0.1:{blocking_server[2]}")


def test_one_servicer_class_serves_on_the_async_server_too() -> None:
    async def body() -> None:
        server = rpc.Server()
        server.add_service(SERVICE, Guide())
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, exercise_blocking, f"127.0.0.1:{port}")
            async with rpc.Channel(f"127.0.0.1:{port}") as channel:
                stub = rpc.Stub(channel, SERVICE)
                assert (await stub.GetFeature(pb.Point(latitude=1))).name == "at 1"
                notes = [
                    n.message async for n in stub.RouteChat(iter([pb.RouteNote(message="xy")]))
                ]
                assert notes == ["yx"]
        finally:
            await server.stop(0.5)

    run(body())


def test_async_client_against_the_blocking_server(blocking_server: Any) -> None:
    async def body() -> None:
        async with rpc.Channel(f"127.0.0.1:{blocking_server[2]}") as channel:
            stub = rpc.Stub(channel, SERVICE)
            assert (await stub.GetFeature(pb.Point(latitude=2))).name == "at 2"
            assert await stub.RecordRoute(iter([pb.Point()] * 3)) == pb.RouteSummary(point_count=3)

    run(body())


def test_blocking_server_enforces_deadlines_on_handlers_that_keep_running(
    blocking_server: Any,
) -> None:
    _, guide, port = blocking_server

    async def body() -> None:
        async with rpc.Channel(f"127.0.0.1:{port}") as channel:
            call = rpc.Stub(channel, SERVICE).GetFeature(pb.Point(latitude=999), timeout=0.3)
            call._timer.cancel()  # only the server's deadline is left to act
            with pytest.raises(rpc.RpcError) as info:
                await call
            assert info.value.code() == rpc.StatusCode.DEADLINE_EXCEEDED

    run(body())
    assert guide.cancelled.wait(5)  # the handler saw is_active() turn false


def test_client_cancel_reaches_a_blocking_handler(blocking_server: Any) -> None:
    _, guide, port = blocking_server
    with rpc.sync.Channel(f"127.0.0.1:{port}") as channel:
        call = rpc.Stub(channel, SERVICE).GetFeature._start(
            pb.Point(latitude=999), None, None, None, None
        )
        threading.Timer(0.2, call.cancel).start()
        with pytest.raises(rpc.RpcError) as info:
            call.result()
        assert info.value.code() == rpc.StatusCode.CANCELLED
    assert guide.cancelled.wait(5)


def test_blocking_api_over_a_unix_socket() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        address = f"unix:{os.path.join(tmp, 'sync.sock')}"
        server = rpc.sync.Server()
        server.add_service(SERVICE, Guide())
        server.add_insecure_port(address)
        with server:
            exercise_blocking(address)


def test_blocking_api_over_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
    chain.write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key))
    server = rpc.sync.Server()
    server.add_service(SERVICE, Guide())
    port = server.add_secure_port("127.0.0.1:0", rpc.ssl_server_context(chain, key))
    with server:
        exercise_blocking(
            f"127.0.0.1:{port}",
            ssl_context=rpc.ssl_channel_context(ca.cert_pem.bytes()),
            server_hostname="localhost",
        )


def test_blocking_channel_to_nowhere_is_unavailable_fast() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        with rpc.sync.Channel(f"127.0.0.1:{port}") as channel:
            started = time.monotonic()
            with pytest.raises(rpc.RpcError) as info:
                channel.unary_unary("/x.Y/Z")(b"", timeout=5)
            assert info.value.code() == rpc.StatusCode.UNAVAILABLE
            assert time.monotonic() - started < 2


def test_a_client_at_the_per_connection_limit_is_never_refused_by_calls_already_answered():
    """The slot is freed before the status is sent: the client's next call may arrive at once."""
    limit = 4
    server = rpc.sync.Server(max_workers=8, max_calls_per_connection=limit)
    server.add_service(SERVICE, Guide())
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    errors: list[BaseException] = []
    try:
        with rpc.sync.Channel(f"127.0.0.1:{port}") as channel:
            stub = rpc.Stub(channel, SERVICE)

            def caller() -> None:
                try:
                    for _ in range(300):
                        stub.GetFeature(pb.Point(latitude=1), timeout=5)
                except BaseException as exc:
                    errors.append(exc)

            threads = [threading.Thread(target=caller) for _ in range(limit)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
    finally:
        server.stop(None)
    assert not errors, errors[:1]
