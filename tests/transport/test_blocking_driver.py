"""The thread driver when its socket fails under it: errors end the connection, never the caller."""

from __future__ import annotations

import socket
import threading

import pytest

from transport import ConnectionClosedError
from transport.blocking import BlockingConnection

pytestmark = pytest.mark.time_limit(20)


def test_close_after_the_socket_went_bad_does_not_raise() -> None:
    # Seen in CI: a server's stop() flushed its GOAWAY while the reader thread had just closed
    # the socket; the write failed with EBADF and the error path notified the condition without
    # holding its lock, so stop() raised RuntimeError and the server process exited 1.
    ours, theirs = socket.socketpair()
    conn = BlockingConnection(ours, client_side=False, on_request=lambda stream: None)
    try:
        ours.close()  # as the reader thread's cleanup does
        conn.close()  # queues a GOAWAY and flushes it into the dead socket
        conn.abort_transport()  # outside the lock too
    finally:
        theirs.close()


def test_write_failure_fails_waiters_instead_of_hanging_them() -> None:
    ours, theirs = socket.socketpair()
    conn = BlockingConnection(ours, client_side=True)
    woke = threading.Event()

    def waiter() -> None:
        with conn.cond:
            conn.cond.wait(10)
        woke.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        ours.close()
        conn.goaway()  # the flush fails: the session is failed and every waiter woken
        assert woke.wait(5)
        assert isinstance(conn.session.error, ConnectionClosedError)
    finally:
        thread.join(5)
        theirs.close()
