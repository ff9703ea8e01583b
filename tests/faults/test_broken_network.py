"""A broken network: a peer that stops reading, a connection reset in the middle of a frame, a
link that silently drops everything (a blackhole). Calls fail with the right status before their
deadline (never hang), memory stays within the flow-control windows, keepalive notices a dead
peer, and the next call reconnects once the fault is lifted.

Each test runs on every (client, server) pair of conftest.PAIRS (or the pairs it names) and
ends with the leak check (fds, threads, asyncio tasks, the server's connections).
"""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from transport import ConnectionOptions

from .conftest import pair_id, rig_for, skip_without_grpcio

SLACK = 1.0
MESSAGE = 64 * 1024
#: What a stream may have produced when its peer stops reading: the receiver's windows (h2rpc's
#: 4 MiB per stream; grpcio grows its own with the bandwidth-delay product: 9 MiB seen here,
#: 16 MiB allowed) and
#: the sender's queue (h2rpc: send_buffer_high_water), plus the message being written.
H2RPC_WINDOW = ConnectionOptions().initial_window_size
GRPCIO_WINDOW = 16 * 1024 * 1024
HIGH_WATER = ConnectionOptions().send_buffer_high_water

PYPY = sys.implementation.name == "pypy"

pytestmark = pytest.mark.time_limit(30)


def window_of(kind: str) -> int:
    return GRPCIO_WINDOW if kind == "grpcio" else H2RPC_WINDOW


def wait_for(predicate: Any, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            return False
        if PYPY:
            # A stopped handler's generator stays suspended at its yield until the GC finalizes
            # it (h2rpc does not close() it): on PyPy, without reference counting, that is the
            # next collection. Only then does the counting servicer's finally say it ended.
            gc.collect()
        time.sleep(0.02)
    return True


def call_after_fault(rig: Any, client: Any) -> None:
    """Once a fault is lifted, the next call succeeds. (grpcio's own client may hand the first
    call after a keepalive failure to the transport it is closing, "Delayed close due to
    in-progress write": it gets a retry; h2rpc's clients get one call.)"""
    attempts = 3 if rig.client_kind == "grpcio" else 1
    for _ in range(attempts):
        outcome = client.unary(5, payload=b"after")
        if outcome.code == "OK":
            return
        time.sleep(0.2)
    raise AssertionError(f"the call after the fault failed: {outcome}")


# ---------------------------------------------------------------------- a peer that stops reading


def test_a_client_that_stops_reading_holds_the_server_to_its_window(rig):
    # The server streams 1 GiB to a client that stops reading after the first message: the
    # handler is held by flow control once the client's window is full (its memory with it),
    # and the call ends DEADLINE_EXCEEDED on time; the client's RST_STREAM ends the handler.
    proxy = rig.proxy
    client = rig.client()
    produced = rig.server.produced

    def stop_reading(count: int) -> None:
        if count == 1:
            proxy.down.paused = True

    outcome = client.server_stream(1.5, stop_reading, response_count=16384, response_size=MESSAGE)
    assert outcome.code == "DEADLINE_EXCEEDED", outcome
    assert outcome.seconds < 1.5 + SLACK
    if produced is not None:  # an h2rpc server, in this process
        # What reached the client before the pause (it read that, and gave its credit back),
        # plus a full window, plus the server's queue.
        bound = proxy.down.bytes_forwarded + window_of(rig.client_kind) + HIGH_WATER + 2 * MESSAGE
        assert produced.bytes <= bound, f"{produced.bytes} bytes produced, bound {bound}"
    proxy.clear()
    if produced is not None:
        # (Not before: a blocking server's handler thread may be inside a socket write that
        # only a reading peer, or the connection's end, lets go. Memory is bounded meanwhile.)
        assert wait_for(lambda: produced.running == 0, 5), "the handler still runs"
    assert client.unary(5, payload=b"after").code == "OK"


def test_a_server_that_stops_reading_holds_the_client_to_its_window(rig):
    proxy = rig.proxy
    client = rig.client()
    assert client.unary(5, payload=b"warm").code == "OK"
    sent = [0]

    def requests() -> Iterator[Any]:
        from .peers import pb

        for _ in range(16384):  # 1 GiB
            sent[0] += MESSAGE
            yield pb.EchoRequest(payload=bytes(MESSAGE))

    proxy.up.paused = True
    outcome = client.client_stream(1.5, requests())
    assert outcome.code == "DEADLINE_EXCEEDED", outcome
    assert outcome.seconds < 1.5 + SLACK
    server_kind = "grpcio" if rig.server.produced is None else "h2rpc"
    bound = window_of(server_kind) + HIGH_WATER + 2 * MESSAGE
    if rig.client_kind != "grpcio":  # grpcio's window is the server's; its queue is its own
        assert sent[0] <= bound, f"{sent[0]} bytes produced, bound {bound}"
    proxy.clear()
    assert client.unary(5, payload=b"after").code == "OK"
    if rig.server.produced is not None:
        assert wait_for(lambda: rig.server.produced.running == 0, 5), "the handler still runs"


# ---------------------------------------------------------------------- a reset mid-frame


def test_a_reset_in_the_middle_of_a_response_frame_is_unavailable_then_reconnects(rig):
    proxy = rig.proxy
    client = rig.client()
    assert client.unary(5, payload=b"warm").code == "OK"
    proxy.reset_mid_frame(proxy.down)  # the first message's DATA frame is cut
    outcome = client.server_stream(10, response_count=50, response_size=MESSAGE)
    assert outcome.code == "UNAVAILABLE", outcome
    assert outcome.responses == []
    assert outcome.seconds < 10
    assert proxy.resets == 1
    if rig.server.produced is not None:
        assert wait_for(lambda: rig.server.produced.running == 0, 5), "the handler still runs"
    call_after_fault(rig, client)
    assert proxy.accepted == 2


def test_a_reset_in_the_middle_of_a_request_frame_is_unavailable_then_reconnects(rig):
    from .peers import pb

    proxy = rig.proxy
    client = rig.client()
    assert client.unary(5, payload=b"warm").code == "OK"
    proxy.reset_mid_frame(proxy.up)
    requests = (pb.EchoRequest(payload=bytes(MESSAGE)) for _ in range(50))
    outcome = client.client_stream(10, requests)
    assert outcome.code == "UNAVAILABLE", outcome
    assert proxy.resets == 1
    if rig.server.produced is not None:
        assert wait_for(lambda: rig.server.produced.running == 0, 5), "the handler still runs"
    call_after_fault(rig, client)
    assert proxy.accepted == 2


# ---------------------------------------------------------------------- blackholes and keepalive

KEEPALIVE = {"keepalive_time": 0.2, "keepalive_timeout": 0.5}


@pytest.mark.parametrize("direction", ["up", "down"])
def test_client_keepalive_finds_a_blackholed_link_and_the_next_call_reconnects(rig, direction):
    proxy = rig.proxy
    client = rig.client(**KEEPALIVE)
    assert client.unary(5, payload=b"warm").code == "OK"
    getattr(proxy, direction).blackhole = True
    # The server would answer in 4 s and the deadline is 8 s: only keepalive can end it sooner.
    outcome = client.unary(8, payload=b"lost", sleep_ms=4000)
    assert outcome.code == "UNAVAILABLE", outcome
    limit = KEEPALIVE["keepalive_time"] + KEEPALIVE["keepalive_timeout"] + 2 * SLACK
    assert outcome.seconds < limit
    proxy.clear()
    call_after_fault(rig, client)
    assert proxy.accepted >= 2


SERVER_KEEPALIVE_PAIRS = [
    ("async", "async"),
    ("blocking", "blocking"),
    ("grpcio", "async"),
    ("grpcio", "blocking"),
]


@pytest.mark.parametrize("pair", SERVER_KEEPALIVE_PAIRS, ids=pair_id)
def test_server_keepalive_drops_a_client_that_went_silent(pair):
    # The client freezes (nothing it sends arrives, nothing reaches it), without keepalive of
    # its own: the server's keepalive must close the connection and end the call's handler
    # long before the client's deadline.
    from .peers import H2rpcServer

    skip_without_grpcio(pair)
    client_kind, server_kind = pair
    server = H2rpcServer(
        server_kind, keepalive_time=0.1, keepalive_timeout=0.3, min_ping_interval=0.0
    )
    try:
        with rig_for(client_kind, server) as rig:
            client = rig.client()
            assert client.unary(5, payload=b"warm").code == "OK"
            results = []
            call = threading.Thread(
                target=lambda: results.append(
                    client.server_stream(2, response_count=1, response_size=1, sleep_ms=1500)
                )
            )
            call.start()
            assert wait_for(lambda: server.produced.running == 1, 5)
            rig.proxy.up.blackhole = rig.proxy.down.blackhole = True
            frozen = time.monotonic()
            assert wait_for(lambda: server.connections() == 0, 3), "the connection stayed"
            assert time.monotonic() - frozen < 0.1 + 0.3 + 2 * SLACK
            call.join(10)
            assert results and results[0].code in ("DEADLINE_EXCEEDED", "UNAVAILABLE")
            assert wait_for(lambda: server.produced.running == 0, 5), "the handler still runs"
            rig.proxy.clear()
            # The server's FIN, lost in the blackhole, now reaches the client, which closes.
            assert wait_for(lambda: rig.proxy.connections == 0, 5), "the client kept it open"
            assert client.unary(5, payload=b"after").code == "OK"
    finally:
        server.stop()


def test_a_blocking_call_ends_on_time_while_its_writer_is_stuck_in_send():
    # A server with windows larger than the kernel's socket buffers that stops reading: the
    # blocking client's request writer thread blocks in sendall() holding the connection's write
    # lock. The deadline must still end the call on time: its RST_STREAM goes out when the
    # writer gets the socket back, instead of the caller waiting for the lock (it hung there).
    from .peers import H2rpcServer, pb

    big = ConnectionOptions(
        initial_window_size=256 * 1024 * 1024, connection_window_size=256 * 1024 * 1024
    )
    server = H2rpcServer("async", connection_options=big)
    try:
        with rig_for("blocking", server) as rig:
            client = rig.client()
            assert client.unary(5, payload=b"warm").code == "OK"
            rig.proxy.up.paused = True
            requests = (pb.EchoRequest(payload=bytes(MESSAGE)) for _ in range(16384))
            outcome = client.client_stream(1.0, requests)
            assert outcome.code == "DEADLINE_EXCEEDED", outcome
            assert outcome.seconds < 1.0 + SLACK
            rig.proxy.clear()
            assert client.unary(5, payload=b"after").code == "OK"
    finally:
        server.stop()
