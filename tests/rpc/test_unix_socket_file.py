"""A server listening on a ``unix:`` path removes its socket file when it stops, and only its
own: not a file another server has bound at the same path since."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

import rpc
from tests.rpc.helpers import generic_server, run

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets")


def upper(request: bytes, context: object) -> bytes:
    return request.upper()


HANDLERS = {"Upper": rpc.unary_unary_rpc_method_handler(upper)}


def sync_server() -> rpc.sync.Server:
    return rpc.sync.Server([rpc.method_handlers_generic_handler("t.T", HANDLERS)], max_workers=2)


def is_socket(path: Path) -> bool:
    return path.exists() and stat.S_ISSOCK(path.stat().st_mode)


def test_the_async_server_removes_its_socket_file_when_it_stops(tmp_path: Path):
    path = tmp_path / "async.sock"

    async def body() -> None:
        server = generic_server(HANDLERS)
        server.add_insecure_port(f"unix:{path}")
        await server.start()
        assert is_socket(path)
        async with rpc.Channel(f"unix:{path}") as channel:
            assert await channel.unary_unary("/t.T/Upper")(b"hi", timeout=5) == b"HI"
        await server.stop(1)
        assert not path.exists()

    run(body())


def test_the_blocking_server_removes_its_socket_file_when_it_stops(tmp_path: Path):
    path = tmp_path / "sync.sock"
    server = sync_server()
    server.add_insecure_port(f"unix:{path}")
    with server:
        assert is_socket(path)
        with rpc.sync.Channel(f"unix:{path}") as channel:
            assert channel.unary_unary("/t.T/Upper")(b"hi", timeout=5) == b"HI"
    assert not path.exists()


def test_a_server_leaves_the_socket_file_another_server_bound_there_since(tmp_path: Path):
    path = tmp_path / "shared.sock"

    async def body() -> None:
        first = generic_server(HANDLERS)
        first.add_insecure_port(f"unix:{path}")
        await first.start()
        # A second server takes the path over (the first one's file looks stale to it).
        second = sync_server()
        second.add_insecure_port(f"unix:{path}")
        second.start()
        try:
            inode = path.stat().st_ino
            await first.stop(0)
            assert is_socket(path) and path.stat().st_ino == inode  # still the second's
            with rpc.sync.Channel(f"unix:{path}") as channel:
                assert channel.unary_unary("/t.T/Upper")(b"hi", timeout=5) == b"HI"
        finally:
            second.stop(0)
        assert not path.exists()
        # ...and the other way round: the blocking server leaves the async one's file.
        third = sync_server()
        third.add_insecure_port(f"unix:{path}")
        third.start()
        fourth = generic_server(HANDLERS)
        fourth.add_insecure_port(f"unix:{path}")
        await fourth.start()
        try:
            inode = path.stat().st_ino
            third.stop(0)
            assert is_socket(path) and path.stat().st_ino == inode
        finally:
            await fourth.stop(0)
        assert not path.exists()

    run(body())


def test_a_file_that_is_not_a_socket_is_never_removed(tmp_path: Path):
    path = tmp_path / "sync.sock"
    server = sync_server()
    server.add_insecure_port(f"unix:{path}")
    with server:
        os.unlink(path)
        path.write_text("not a socket")  # someone else's file, put there meanwhile
    assert path.read_text() == "not a socket"
