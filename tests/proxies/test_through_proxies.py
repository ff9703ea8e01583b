"""gRPC through real nginx (``grpc_pass``) and HAProxy (``proto h2``), each in front of two h2rpc
servers, with h2rpc's asyncio and blocking clients and grpcio's: every call kind, metadata both
ways (binary ``-bin`` values included), statuses with details and trailers, deadlines that pass
through (``grpc-timeout``) and cancellation that reaches the backend.

The proxies run the README's configs (tests/proxies/configs/); the call cases are the interop
suite's (tests/interop/*_client_cases.py), pointed at the proxy instead of a server.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import h2rpc_client_cases as async_cases
import pytest
import sync_client_cases as sync_cases
from peers import GRPCIO_AVAILABLE, GRPCIO_UNAVAILABLE_REASON

import rpc
from tests.proxies.backends import PROBE, Backends
from tests.proxies.proxy_processes import ProxyProcess

pytestmark = pytest.mark.time_limit(120)

CLIENTS = ["async", "sync", "grpcio"]
needs_grpcio = pytest.mark.skipif(not GRPCIO_AVAILABLE, reason=GRPCIO_UNAVAILABLE_REASON)
CLIENT_PARAMS = [
    pytest.param(kind, marks=needs_grpcio) if kind == "grpcio" else kind for kind in CLIENTS
]

#: The happy-path cases of each client's suite: the four call kinds, then metadata both ways.
KINDS_AND_METADATA = ["unary_echo", "server_stream", "client_stream", "bidi"]
KINDS_AND_METADATA += ["unary_metadata_echo", "bidi_metadata_echo", "concurrent_unary"]
SYNC_CASES = ["unary_echo", "server_stream", "client_stream", "bidi_ping_pong", "metadata_echo"]
SYNC_CASES += ["large_messages"]  # 8 MiB each way: nothing in the proxy caps a body
HAPPY_CASES = {
    "async": KINDS_AND_METADATA,
    "sync": SYNC_CASES,
    "grpcio": KINDS_AND_METADATA,
}


def grpcio_cases() -> Any:
    import grpcio_client_cases

    return grpcio_client_cases


def run_case(client: str, name: str, *args: Any) -> None:
    if client == "async":
        async_cases.run(getattr(async_cases, name)(*args))
    elif client == "sync":
        getattr(sync_cases, name)(*args)
    else:
        getattr(grpcio_cases(), name)(*args)


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_every_call_kind_and_metadata_both_ways(proxy: ProxyProcess, client: str) -> None:
    for name in HAPPY_CASES[client]:
        run_case(client, name, proxy.target)


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_every_status_with_its_details_and_trailers(proxy: ProxyProcess, client: str) -> None:
    if client == "sync":
        for code in sync_cases.NON_OK_STATUS_CODES:
            sync_cases.status(proxy.target, code)
        return
    module = async_cases if client == "async" else grpcio_cases()
    for code in module.NON_OK_STATUS_CODES:
        run_case(client, "unary_status", proxy.target, code)
        run_case(client, "server_stream_status", proxy.target, code)


# ------------------------------------------------------------------ one client, three kinds

RICH_DETAILS = b"\x08\x05\x12\x09not found\x1a\x03\x0a\x01\xff"  # google.rpc.Status bytes


class Client:
    """Calls to the Probe and EchoTest services through one channel of some kind."""

    def __init__(self, kind: str, target: str) -> None:
        self.kind = kind
        self._loop: asyncio.AbstractEventLoop | None = None
        if kind == "grpcio":
            import grpc

            self.errors: tuple[type[BaseException], ...] = (grpc.RpcError,)
            self._channel: Any = grpc.insecure_channel(target)
        elif kind == "sync":
            self.errors = (rpc.RpcError,)
            self._channel = rpc.sync.Channel(target)
        else:
            self.errors = (rpc.RpcError,)
            self._loop = asyncio.new_event_loop()
            self._channel = self._run(self._open(target))

    @staticmethod
    async def _open(target: str) -> rpc.Channel:
        return rpc.Channel(target)

    def _run(self, coro: Any) -> Any:
        assert self._loop is not None
        return self._loop.run_until_complete(asyncio.wait_for(coro, 30))

    def close(self) -> None:
        if self._loop is not None:
            self._run(self._channel.close())
            self._loop.close()
        else:
            self._channel.close()

    def unary(self, method: str, request: bytes = b"", **kwargs: Any) -> Any:
        callable_ = self._channel.unary_unary(method)
        if self._loop is not None:

            async def call() -> Any:
                return await callable_(request, **kwargs)

            return self._run(call())
        return callable_(request, **kwargs)

    def code_of(self, error: BaseException) -> str:
        return str(error.code().name)  # type: ignore[attr-defined]

    def hang_then_cancel(self, backends: Backends) -> None:
        """Start a Hang call, wait until a backend runs it, cancel it from the client."""
        path = f"/{PROBE}/Hang"
        if self._loop is not None:

            async def go() -> None:
                method = self._channel.unary_unary(path)

                async def call() -> Any:
                    return await method(b"", timeout=30)

                task = asyncio.ensure_future(call())  # the call starts when awaited
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(None, backends.hung)
                task.cancel()  # a cancelled task cancels its call, as in grpc.aio
                with contextlib.suppress(asyncio.CancelledError, *self.errors):
                    await task

            self._run(go())
            return
        future = self._channel.unary_unary(path).future(b"", timeout=30)
        backends.hung()
        assert future.cancel()


@pytest.fixture(params=CLIENT_PARAMS)
def client(request: pytest.FixtureRequest, proxy: ProxyProcess) -> Any:
    c = Client(request.param, proxy.target)
    try:
        yield c
    finally:
        c.close()


def test_rich_status_details_come_through(client: Client) -> None:
    import h2rpc_test_pb2 as pb

    request = pb.EchoRequest(
        status_code=5, status_message="no such thing", status_details=RICH_DETAILS
    ).SerializeToString()
    with pytest.raises(client.errors) as caught:
        client.unary("/h2rpc.test.EchoTest/Unary", request, timeout=10)
    error: Any = caught.value
    assert client.code_of(error) == "NOT_FOUND"
    assert error.details() == "no such thing"
    if client.kind == "grpcio":  # grpcio leaves it in the trailers
        details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    else:
        details = error.status_details()
    assert details == RICH_DETAILS


def test_the_deadline_reaches_the_backend_and_the_call_ends_deadline_exceeded(
    client: Client, backends: Backends
) -> None:
    backends.reset()
    with pytest.raises(client.errors) as caught:
        client.unary(f"/{PROBE}/Hang", timeout=1.0)
    assert client.code_of(caught.value) == "DEADLINE_EXCEEDED"
    probe = backends.hung()
    # grpc-timeout went through the proxy: the handler had about the deadline (grpcio rounds
    # the header up: 1 s may arrive as "1010m").
    assert probe.time_remaining is not None and 0.5 < probe.time_remaining <= 1.05
    assert probe.ended.wait(5) and probe.cancelled  # and its call ended there too


def test_cancellation_reaches_the_backend(client: Client, backends: Backends) -> None:
    backends.reset()
    client.hang_then_cancel(backends)
    probe = backends.hung()
    assert probe.ended.wait(5), f"the {probe.name} backend never saw the cancellation"
    assert probe.cancelled
    assert client.unary(f"/{PROBE}/Who", timeout=10) in (b"async", b"sync")


def test_calls_are_spread_over_both_backends(client: Client, backends: Backends) -> None:
    seen = {client.unary(f"/{PROBE}/Who", timeout=10) for _ in range(20)}
    assert seen == {b"async", b"sync"}  # one client connection, calls on both servers
