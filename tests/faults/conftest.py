"""Fixtures of the fault tests: servers (h2rpc async and blocking in this process, grpcio in a
child process), a FaultProxy in front of the server of each test, and the leak check every test
ends with: once the client is closed and the proxy has closed its connections, the process has
the fds, threads and asyncio tasks it had before the test (and the server no connection)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from peers import (
    GRPCIO_AVAILABLE,
    GRPCIO_UNAVAILABLE_REASON,
    INTEROP_DIR,
    python_peer_argv,
    start_peer,
)

from .proxy import FaultProxy

#: (client, server) pairs every fault runs on: h2rpc's two APIs against h2rpc's two servers, and
#: grpcio in each direction.
PAIRS = [
    ("async", "async"),
    ("blocking", "blocking"),
    ("grpcio", "async"),
    ("grpcio", "blocking"),
    ("async", "grpcio"),
    ("blocking", "grpcio"),
]

#: Threads that servers start when first needed and keep (pools), not per connection or call.
POOL_THREADS = ("h2rpc-handler", "ThreadPoolExecutor", "h2rpc-deadlines", "asyncio_")


def pair_id(pair: tuple[str, str]) -> str:
    return f"{pair[0]}-to-{pair[1]}"


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd")) - 1


def fd_names() -> list[str]:
    names = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            names.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            pass
    return sorted(names)


def counted_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if not t.name.startswith(POOL_THREADS)}


class GrpcioServer:
    kind = "grpcio"

    def __init__(self) -> None:
        self.proc, self.port = start_peer(python_peer_argv(INTEROP_DIR / "grpcio_peer.py"))
        self.target = f"127.0.0.1:{self.port}"
        self.produced = None

    def connections(self) -> int:
        return 0

    def tasks(self) -> int:
        return 0

    def stop(self) -> None:
        self.proc.stop()
        self.proc.remove_logs()


@pytest.fixture(scope="module")
def servers() -> Iterator[Callable[[str], Any]]:
    """Servers made on first use, shared by the tests of a module."""
    made: dict[str, Any] = {}

    def get(kind: str) -> Any:
        if kind not in made:
            if kind == "grpcio":
                made[kind] = GrpcioServer()
            else:
                from .peers import H2rpcServer  # the test protos are compiled by now

                made[kind] = H2rpcServer(kind)
        return made[kind]

    yield get
    for server in made.values():
        server.stop()


class Rig:
    """One test's proxy, server and clients."""

    def __init__(self, client_kind: str, server: Any) -> None:
        self.client_kind = client_kind
        self.server = server
        self.proxy = FaultProxy(("127.0.0.1", server.port)).start()
        self.clients: list[Any] = []

    def client(self, **options: Any) -> Any:
        from .peers import CLIENTS

        client = CLIENTS[self.client_kind](self.proxy.address, **options)
        self.clients.append(client)
        return client

    def close_clients(self) -> None:
        for client in self.clients:
            client.close()
            leftover = getattr(client, "leftover_tasks", 0)
            assert leftover == 0, f"{leftover} asyncio tasks left on the client's loop"
        self.clients.clear()


def _warm_up_grpcio() -> None:
    """grpcio keeps process-wide threads and fds from its first channel on: make them first."""
    import grpc

    grpc.insecure_channel("127.0.0.1:1").close()


@contextlib.contextmanager
def rig_for(client_kind: str, server: Any) -> Iterator[Rig]:
    """A proxy in front of ``server``, clients of ``client_kind``, and the leak check at the end."""
    if client_kind == "grpcio":
        _warm_up_grpcio()
    rig = Rig(client_kind, server)
    fds, threads, server_tasks = fd_count(), counted_threads(), server.tasks()
    fd_list = fd_names()
    try:
        yield rig
        rig.close_clients()
        rig.proxy.clear()
        rig.proxy.close_all()
        _wait_until_back(rig, fds, threads, server_tasks, fd_list)
    finally:
        rig.close_clients()
        rig.proxy.close()


def skip_without_grpcio(pair: tuple[str, str]) -> None:
    if "grpcio" in pair and not GRPCIO_AVAILABLE:
        pytest.skip(GRPCIO_UNAVAILABLE_REASON)


@pytest.fixture(params=PAIRS, ids=pair_id)
def rig(request: pytest.FixtureRequest, servers: Callable[[str], Any]) -> Iterator[Rig]:
    skip_without_grpcio(request.param)
    client_kind, server_kind = request.param
    with rig_for(client_kind, servers(server_kind)) as rig:
        yield rig


def _wait_until_back(
    rig: Rig, fds: int, threads: set[threading.Thread], server_tasks: int, fd_list: list[str]
) -> None:
    """The leak check: the server drops the connections, and the counts come back."""
    deadline = time.monotonic() + 5
    while True:
        now = (
            rig.server.connections(),
            fd_count(),
            counted_threads() - threads,
            rig.server.tasks(),
        )
        if now[0] == 0 and now[1] <= fds and not now[2] and now[3] <= server_tasks:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    connections, fd_now, new_threads, tasks_now = now
    assert connections == 0, f"the server still has {connections} connections"
    assert fd_now <= fds, (
        f"fds: {fds} before, {fd_now} after: {sorted(set(fd_names()) - set(fd_list))}"
    )
    assert not new_threads, f"threads left: {sorted(t.name for t in new_threads)}"
    assert tasks_now <= server_tasks, f"server tasks: {server_tasks} before, {tasks_now} after"
