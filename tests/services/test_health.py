"""grpcio-health-checking's own client (grpcio's ``HealthStub``) against h2rpc's health service.

Three servers: ``rpc.Server`` with ``enable_health`` (async methods), ``rpc.sync.Server`` with
``enable_health`` (plain def methods, blocking watchers), and ``rpc.Server`` serving the plain def
``HealthServicer`` through ``add_service`` (watchers in its thread pool).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Callable

import pytest
from peers import GRPCIO_AVAILABLE, GRPCIO_UNAVAILABLE_REASON

import rpc
from rpc.services import health
from tests.rpc.server_thread import ServerThread

if not GRPCIO_AVAILABLE:  # PyPy only: on CPython a missing grpcio is an error, not a skip
    pytest.skip(GRPCIO_UNAVAILABLE_REASON, allow_module_level=True)

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

HealthCheckResponse = health_pb2.HealthCheckResponse


@dataclass
class Served:
    target: str
    servicer: health.HealthServicer
    stop: Callable[[float], None]  # server.stop(grace), blocking until it has finished


def _serve_async(make_servicer: Callable[[rpc.Server], health.HealthServicer]) -> Iterator[Served]:
    servicers: list[health.HealthServicer] = []

    def make_server() -> rpc.Server:
        server = rpc.Server()
        servicers.append(make_servicer(server))
        return server

    thread = ServerThread(make_server)
    with thread as target:
        loop = thread._loop
        assert loop is not None

        def stop(grace: float) -> None:
            import asyncio

            asyncio.run_coroutine_threadsafe(thread.server.stop(grace), loop).result(30)

        yield Served(target, servicers[0], stop)


def _plain_servicer_on_async_server(server: rpc.Server) -> health.HealthServicer:
    servicer = health.HealthServicer()
    server.add_service(health.SERVICE, servicer)
    server.add_stop_callback(servicer.enter_graceful_shutdown)
    return servicer


@pytest.fixture(params=["async", "sync", "async-server-def-servicer"])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    if request.param == "async":
        yield from _serve_async(health.enable_health)
    elif request.param == "async-server-def-servicer":
        yield from _serve_async(_plain_servicer_on_async_server)
    else:
        server = rpc.sync.Server(max_workers=8)
        servicer = health.enable_health(server)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            yield Served(f"127.0.0.1:{port}", servicer, lambda grace: server.stop(grace).wait(30))
        finally:
            server.stop(None)


@pytest.fixture
def stub(served: Served) -> Iterator[Any]:
    with grpc.insecure_channel(served.target) as channel:
        yield health_pb2_grpc.HealthStub(channel)


def _check(stub: Any, service: str) -> int:
    status: int = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status
    return status


def test_check_answers_overall_serving_then_each_status_the_application_sets(
    served: Served, stub: Any
) -> None:
    assert _check(stub, "") == HealthCheckResponse.SERVING
    served.servicer.set("helloworld.Greeter", health.SERVING)
    assert _check(stub, "helloworld.Greeter") == HealthCheckResponse.SERVING
    served.servicer.set("helloworld.Greeter", health.NOT_SERVING)
    assert _check(stub, "helloworld.Greeter") == HealthCheckResponse.NOT_SERVING


def test_check_of_an_unknown_service_is_not_found(stub: Any) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _check(stub, "no.such.Service")
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_list_returns_every_known_service_and_its_status(served: Served, stub: Any) -> None:
    served.servicer.set("a.A", health.SERVING)
    served.servicer.set("b.B", health.NOT_SERVING)
    reply = stub.List(health_pb2.HealthListRequest(), timeout=5)
    assert {name: value.status for name, value in reply.statuses.items()} == {
        "": HealthCheckResponse.SERVING,
        "a.A": HealthCheckResponse.SERVING,
        "b.B": HealthCheckResponse.NOT_SERVING,
    }


def _collect(responses: Any) -> queue.Queue[Any]:
    """Read ``responses`` in a thread; each status, then the RpcError or None at the end."""
    seen: queue.Queue[Any] = queue.Queue()

    def read() -> None:
        try:
            for response in responses:
                seen.put(response.status)
        except grpc.RpcError as exc:
            seen.put(exc)
            return
        seen.put(None)

    threading.Thread(target=read, daemon=True).start()
    return seen


def test_watch_sends_service_unknown_then_every_change_without_ending(
    served: Served, stub: Any
) -> None:
    responses = stub.Watch(health_pb2.HealthCheckRequest(service="svc.S"), timeout=20)
    seen = _collect(responses)
    assert seen.get(timeout=5) == HealthCheckResponse.SERVICE_UNKNOWN
    served.servicer.set("svc.S", health.SERVING)
    assert seen.get(timeout=5) == HealthCheckResponse.SERVING
    served.servicer.set("svc.S", health.SERVING)  # no change: nothing sent
    served.servicer.set("svc.S", health.NOT_SERVING)
    assert seen.get(timeout=5) == HealthCheckResponse.NOT_SERVING
    responses.cancel()
    assert isinstance(seen.get(timeout=5), grpc.RpcError)


def test_cancelled_watchers_are_forgotten(served: Served, stub: Any) -> None:
    for _ in range(3):
        responses = stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=20)
        seen = _collect(responses)
        assert seen.get(timeout=5) == HealthCheckResponse.SERVING
        responses.cancel()
        assert isinstance(seen.get(timeout=5), grpc.RpcError)
    deadline = time.monotonic() + 5
    while served.servicer._watchers and time.monotonic() < deadline:
        time.sleep(0.02)
    assert served.servicer._watchers == {}


def test_graceful_stop_turns_every_service_not_serving_and_watchers_see_it(
    served: Served, stub: Any
) -> None:
    served.servicer.set("svc.S", health.SERVING)
    overall = _collect(stub.Watch(health_pb2.HealthCheckRequest(service=""), timeout=20))
    service = _collect(stub.Watch(health_pb2.HealthCheckRequest(service="svc.S"), timeout=20))
    assert overall.get(timeout=5) == HealthCheckResponse.SERVING
    assert service.get(timeout=5) == HealthCheckResponse.SERVING

    stopper = threading.Thread(target=served.stop, args=(2.0,), daemon=True)
    stopper.start()
    assert overall.get(timeout=5) == HealthCheckResponse.NOT_SERVING
    assert service.get(timeout=5) == HealthCheckResponse.NOT_SERVING
    served.servicer.set("svc.S", health.SERVING)  # ignored once stopping
    assert served.servicer.get("svc.S") == health.NOT_SERVING
    stopper.join(30)
    assert not stopper.is_alive()
    # The grace period over, the watches end (with an error status: the server went away).
    assert isinstance(overall.get(timeout=5), grpc.RpcError)
    assert isinstance(service.get(timeout=5), grpc.RpcError)


def test_set_rejects_a_value_that_is_not_a_serving_status() -> None:
    with pytest.raises(ValueError):
        health.HealthServicer().set("x", 42)
