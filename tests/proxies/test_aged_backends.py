"""Backends with ``max_connection_age`` behind nginx and HAProxy: the proxy's connections to them
are drained and replaced over and over (graceful GOAWAY in two steps), and no call through the
proxy fails meanwhile (no retry policy: nothing is retried, nothing needs to be)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

import rpc
from tests.debian_tools import find_program, missing
from tests.proxies.proxy_processes import PROXIES, ProxyProcess
from tests.rpc.server_thread import ServerThread

pytestmark = pytest.mark.time_limit(60)

SERVICE = "aged.Aged"
AGE = 0.3
THREADS = 4


class Peers:
    """The client addresses (``context.peer()``) each backend saw: one per proxy connection."""

    def __init__(self) -> None:
        self.seen: set[str] = set()
        self._lock = threading.Lock()

    def handler(self, request: bytes, context: rpc.ServicerContext) -> bytes:
        with self._lock:
            self.seen.add(context.peer())
        return request


@pytest.fixture(params=sorted(PROXIES))
def aged(request: pytest.FixtureRequest) -> Iterator[tuple[ProxyProcess, Peers]]:
    if find_program(request.param) is None:
        pytest.skip(missing(request.param, request.param))
    peers = Peers()

    def make() -> rpc.Server:
        handlers = {"Echo": rpc.unary_unary_rpc_method_handler(peers.handler)}
        return rpc.Server(
            [rpc.method_handlers_generic_handler(SERVICE, handlers)],
            max_connection_age=AGE,
            max_connection_age_grace=10,
        )

    with ServerThread(make) as first, ServerThread(make) as second:
        with PROXIES[request.param]([first, second]) as proxy:
            yield proxy, peers


def test_calls_through_the_proxy_survive_backend_connections_being_aged_out(
    aged: tuple[ProxyProcess, Peers],
) -> None:
    proxy, peers = aged
    failures: list[BaseException] = []
    done = [0]
    stop = threading.Event()
    with rpc.sync.Channel(proxy.target) as channel:
        echo = channel.unary_unary(f"/{SERVICE}/Echo")

        def worker() -> None:
            while not stop.is_set():
                try:
                    assert echo(b"x", timeout=10) == b"x"
                    done[0] += 1
                except BaseException as exc:  # every failure is reported
                    failures.append(exc)

        threads = [threading.Thread(target=worker) for _ in range(THREADS)]
        for thread in threads:
            thread.start()
        time.sleep(10 * AGE)
        stop.set()
        for thread in threads:
            thread.join(20)
    assert not failures, f"{len(failures)} of {done[0]} calls failed, e.g. {failures[0]!r}"
    # The proxy reconnected to the backends again and again: many connections seen.
    assert len(peers.seen) >= 4, peers.seen
