"""A backend killed (SIGKILL) while calls run through nginx or HAProxy: with a retry policy on
UNAVAILABLE (service config ``retryPolicy``), no call is lost.

Calls in flight on the killed server fail at the proxy (nginx answers HTTP 502, HAProxy 502 or
503: ``UNAVAILABLE`` to a gRPC client); the client's retry goes through the proxy again, which by
then sends it to the other server. The backends are real processes (slow_echo_peer.py)
so that one can really be killed; their handler answers after 50 ms with headers, message and
trailers at once, so the calls running at the kill have had no response headers (a call that had
them is committed, gRFC A6, and no policy may retry it).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from peers import GRPCIO_AVAILABLE, GRPCIO_UNAVAILABLE_REASON, python_peer_argv, start_peer

import rpc
from tests.debian_tools import find_program, missing
from tests.proxies.proxy_processes import PROXIES, ProxyProcess

pytestmark = pytest.mark.time_limit(120)

ECHO = "/proxy.Slow/Echo"
PEER = Path(__file__).resolve().parent / "slow_echo_peer.py"
RETRY_ON_UNAVAILABLE = {
    "methodConfig": [
        {
            "name": [{"service": "proxy.Slow"}],
            "retryPolicy": {
                "maxAttempts": 5,
                "initialBackoff": "0.1s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}
THREADS = 8


@pytest.fixture(params=sorted(PROXIES))
def killable(request: pytest.FixtureRequest) -> Iterator[tuple[ProxyProcess, list[Any]]]:
    """A proxy in front of two h2rpc server processes (which the test may kill)."""
    if find_program(request.param) is None:
        pytest.skip(missing(request.param, request.param))
    peers = []
    try:
        for _ in range(2):
            peers.append(start_peer(python_peer_argv(PEER)))
        with PROXIES[request.param]([f"127.0.0.1:{port}" for _, port in peers]) as proxy:
            yield proxy, [process for process, _ in peers]
    finally:
        for process, _ in peers:
            process.stop(timeout=2)
            process.remove_logs()


def grpcio_caller(target: str) -> tuple[Callable[[bytes], bytes], Callable[[], None]]:
    import grpc

    channel = grpc.insecure_channel(
        target, options=[("grpc.service_config", json.dumps(RETRY_ON_UNAVAILABLE))]
    )
    method = channel.unary_unary(ECHO)

    def call(payload: bytes) -> bytes:
        return method(payload, timeout=20)  # type: ignore[no-any-return]

    return call, channel.close


def sync_caller(target: str) -> tuple[Callable[[bytes], bytes], Callable[[], None]]:
    channel = rpc.sync.Channel(target, service_config=RETRY_ON_UNAVAILABLE)
    method = channel.unary_unary(ECHO)

    def call(payload: bytes) -> bytes:
        return method(payload, timeout=20)  # type: ignore[no-any-return]

    return call, channel.close


def async_caller(target: str) -> tuple[Callable[[bytes], bytes], Callable[[], None]]:
    """Calls on an asyncio channel whose loop runs in a thread, from the test's threads."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def open_channel() -> rpc.Channel:
        return rpc.Channel(target, service_config=json.dumps(RETRY_ON_UNAVAILABLE))

    channel = asyncio.run_coroutine_threadsafe(open_channel(), loop).result(10)
    method = channel.unary_unary(ECHO)

    async def one(payload: bytes) -> bytes:
        return await method(payload, timeout=20)  # type: ignore[no-any-return]

    def call(payload: bytes) -> bytes:
        return asyncio.run_coroutine_threadsafe(one(payload), loop).result(30)

    def close() -> None:
        asyncio.run_coroutine_threadsafe(channel.close(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()

    return call, close


CALLERS = {"async": async_caller, "sync": sync_caller, "grpcio": grpcio_caller}
CLIENT_PARAMS = [
    pytest.param(
        kind, marks=pytest.mark.skipif(not GRPCIO_AVAILABLE, reason=GRPCIO_UNAVAILABLE_REASON)
    )
    if kind == "grpcio"
    else kind
    for kind in CALLERS
]


@pytest.mark.parametrize("client", CLIENT_PARAMS)
def test_no_call_is_lost_when_a_backend_is_killed_mid_run(
    killable: tuple[ProxyProcess, list[Any]], client: str
) -> None:
    proxy, backends = killable
    call, close = CALLERS[client](proxy.target)
    stop = threading.Event()
    done: list[int] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        i = 0
        while not stop.is_set():
            payload = f"{n}-{i}".encode()
            try:
                assert call(payload) == payload
                with lock:
                    done.append(n)
            except BaseException as exc:
                failures.append(exc)
            i += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    try:
        for thread in threads:
            thread.start()
        end = time.monotonic() + 10
        while len(done) < 100 and time.monotonic() < end:  # both backends busy
            time.sleep(0.01)
        before_kill = len(done)
        backends[0].kill()  # SIGKILL, with calls running on it
        backends[0].wait(5)
        end = time.monotonic() + 10
        while len(done) < before_kill + 200 and time.monotonic() < end:
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
        close()
    assert not failures, f"{len(failures)} calls lost, e.g. {failures[0]!r}\n{proxy.logs()[-3000:]}"
    assert len(done) >= before_kill + 200  # and calls went on, on the surviving backend
