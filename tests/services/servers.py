"""The two servers the services are tested on, with the same services registered."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Callable

import rpc
from tests.rpc.server_thread import ServerThread

#: The fixture parameter: which server.
KINDS = ["async", "sync"]


@contextlib.contextmanager
def serving(kind: str, register: Callable[[Any], None]) -> Iterator[str]:
    """An ``rpc.Server`` (on a thread of its own) or an ``rpc.sync.Server`` with ``register``
    applied, listening on a free loopback port: its address."""
    if kind == "async":

        def make_server() -> rpc.Server:
            server = rpc.Server()
            register(server)
            return server

        with ServerThread(make_server) as address:
            yield address
        return
    server = rpc.sync.Server(max_workers=4)
    register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)
