"""Floods: rapid reset, stream floods, control-frame floods, peers that never read.

Each attack runs on one connection, bounded in count and time, while a well-behaved client calls
on another; the server must cut the abuser off (GOAWAY ENHANCE_YOUR_CALM, REFUSED_STREAM,
RESOURCE_EXHAUSTED) and keep serving everyone else with normal latency.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import h2rpc_test_pb2 as pb
import pytest
from hyperframe.frame import PingFrame, RstStreamFrame

from codec.http2_errors import ENHANCE_YOUR_CALM, REFUSED_STREAM
from tests.hostile.attacker import Attacker, grpc_headers, message
from tests.hostile.harness import GoodClient, Memory, count_live, megabytes, serve
from tests.interop.echo_servicer import make_server
from tests.interop.echo_servicer_sync import make_sync_server
from tests.rpc.helpers import wait_until
from tests.rpc.server_thread import ServerThread
from transport import ConnectionOptions
from transport.session import SessionStream

pytestmark = pytest.mark.time_limit(60)


@pytest.fixture
def server() -> Iterator[ServerThread]:
    """An async server under attack."""
    thread = serve()
    with thread:
        yield thread


def live_streams() -> int:
    return count_live(SessionStream)


def test_rapid_reset_is_cut_off_and_frees_every_stream(capsys: pytest.CaptureFixture[str]):
    """CVE-2023-44487: up to 100k streams opened and reset at once on one connection."""
    thread = serve()
    with thread as target:
        baseline_streams = live_streams()
        memory = Memory()
        before = memory.start()
        sent = 0
        with GoodClient(target) as good, Attacker(thread.port) as attacker:
            headers = grpc_headers("/h2rpc.test.EchoTest/Bidi")
            stream_id = 1
            while sent < 100_000 and attacker.seen.goaway is None and not attacker.seen.closed:
                batch = b"".join(
                    attacker.headers(stream_id + 2 * i, headers) + attacker.rst(stream_id + 2 * i)
                    for i in range(200)
                )
                stream_id += 400
                if not attacker.send(batch):
                    break
                sent += 200
                attacker.read()
            attacker.wait_closed()
            goaway = attacker.seen.goaway
            good.check()
        peak = memory.peak()
        wait_until(lambda: thread.call(lambda: len(thread.server._calls)) == 0)
        after = memory.current()
        memory.stop()
        assert goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM
        assert b"reset" in goaway.additional_data
        assert sent < 100_000  # cut off long before the end
        assert thread.call(lambda: len(thread.server._calls)) == 0
        assert live_streams() <= baseline_streams  # every stream object was freed
        if before is not None and after is not None:
            assert after - before < 2 * 1024 * 1024, (before, peak, after)
    with capsys.disabled():
        print(
            f"\nrapid reset: {sent} streams sent before GOAWAY; traced memory before "
            f"{megabytes(before)}, peak {megabytes(peak)}, after {megabytes(after)}"
        )


def test_streams_beyond_the_limit_are_refused_and_the_connection_lives():
    thread = serve(max_concurrent_streams=10)
    with thread, Attacker(thread.port) as attacker:
        blob = b"".join(
            attacker.headers(1 + 2 * i, grpc_headers("/h2rpc.test.EchoTest/Bidi"))
            for i in range(15)
        )
        attacker.send(blob)
        resets = []
        end = time.monotonic() + 5
        while len(resets) < 5 and time.monotonic() < end:
            resets += [f for f in attacker.read(0.05) if isinstance(f, RstStreamFrame)]
        assert sorted(f.stream_id for f in resets) == [21, 23, 25, 27, 29]
        assert all(f.error_code == REFUSED_STREAM for f in resets)
        attacker.send(attacker.ping(b"stillok!"))
        ack = attacker.wait_for(PingFrame)
        assert ack.opaque_data == b"stillok!" and attacker.seen.goaway is None


def test_never_finished_calls_hold_no_worker_others_need():
    thread = serve()
    with thread as target, GoodClient(target) as good, Attacker(thread.port) as attacker:
        headers = grpc_headers("/h2rpc.test.EchoTest/ClientStream")
        attacker.send(b"".join(attacker.headers(1 + 2 * i, headers) for i in range(500)))
        wait_until(lambda: thread.call(lambda: len(thread.server._calls)) >= 500)
        # All 500 are live (the good client may have one call of its own in flight too).
        assert thread.call(lambda: len(thread.server._calls)) in (500, 501)
        good.check()


def test_one_connection_cannot_exhaust_the_blocking_server_pool():
    server_thread = BlockingServer(max_workers=8)
    with server_thread as target, GoodClient(target) as good:
        with Attacker(server_thread.port) as attacker:
            headers = grpc_headers("/h2rpc.test.EchoTest/ClientStream")
            attacker.send(b"".join(attacker.headers(1 + 2 * i, headers) for i in range(20)))
            refused = []
            end = time.monotonic() + 5
            while len(refused) < 14 and time.monotonic() < end:
                for frame in attacker.read(0.05):
                    if getattr(frame, "data", None) is not None and "END_STREAM" in frame.flags:
                        refused.append(frame.stream_id)
            assert len(refused) == 14  # 6 of 8 workers are the most one connection may hold
            served = len(good.latencies)
            # ... and while it holds them, the good client goes on being served.
            wait_until(lambda: len(good.latencies) >= served + 5 or bool(good.failures))
            good.check()


class BlockingServer:
    def __init__(self, **options: object) -> None:
        self.server = make_sync_server(**options)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def __enter__(self) -> str:
        self.server.start()
        return f"127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.stop(0.5)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (Attacker.ping, (b"ping flood", b"too_many_pings")),  # the strike policy may come first
        (Attacker.settings, (b"settings flood",)),
    ],
    ids=["ping", "settings"],
)
def test_control_frame_floods_get_goaway_enhance_your_calm(frame, reason, server: ServerThread):
    with GoodClient(server.target) as good, Attacker(server.port) as attacker:
        for _ in range(50):
            if not attacker.send(frame() * 200):
                break
        attacker.wait_closed()
        goaway = attacker.seen.goaway
        assert goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM
        assert goaway.additional_data in reason
        good.check()


def test_replies_are_not_buffered_for_a_peer_that_does_not_read():
    """A peer that sends (PINGs) but never reads: once our send buffer is full we stop reading
    it, so our replies cannot pile up."""
    options = ConnectionOptions(
        max_write_buffer=16 * 1024, ping_flood_limit=(1e9, 10**9), max_ping_strikes=0
    )
    thread = ServerThread(lambda: make_server(connection_options=options))
    with thread, Attacker(thread.port, timeout=5) as attacker:
        attacker.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        attacker.sock.settimeout(0.5)
        sent = 0
        try:
            while sent < 5_000_000:  # 85 MB of PINGs, if the server kept reading
                attacker.sock.sendall(attacker.ping() * 1000)
                sent += 1000
        except OSError:
            pass  # our send blocked: the server stopped reading us (or, on a busy machine, is
            # still working through what it has read: it stops once its replies pile up)

        def paused() -> list[bool]:
            return [c._reading_paused for c in thread.server._listeners[0].connections]

        def buffered() -> list[int]:
            connections = thread.server._listeners[0].connections
            return [c._transport.get_write_buffer_size() for c in connections]

        # Pings it read before its replies piled up are still being answered: seconds' worth
        # when the machine is busy (the kernel buffers on both sides hold megabytes of them).
        wait_until(lambda: thread.call(paused) == [True], timeout=15)
        sizes = thread.call(buffered)
        assert sizes and max(sizes) < 1024 * 1024
        assert sent < 5_000_000


def test_zero_window_backpressures_the_handler(capsys: pytest.CaptureFixture[str]):
    """A client that never opens its window: the handler waits, memory stays flat."""
    thread = serve()
    with thread, Attacker(thread.port) as attacker:
        memory = Memory()
        before = memory.start()
        request = pb.EchoRequest(response_size=1024 * 1024, response_count=200).SerializeToString()
        attacker.send(
            attacker.headers(1, grpc_headers("/h2rpc.test.EchoTest/ServerStream"))
            + attacker.data(1, message(request), end_stream=True)
        )
        time.sleep(1.0)  # the handler would produce 200 MiB if it could
        attacker.read(0.2)
        peak = memory.peak()
        if before is not None and peak is not None:
            assert peak - before < 8 * 1024 * 1024, (before, peak)
        assert thread.call(lambda: len(thread.server._calls)) == 1  # still waiting, not done
        attacker.send(attacker.rst(1))
        wait_until(lambda: thread.call(lambda: len(thread.server._calls)) == 0)  # freed
        after = memory.current()
        memory.stop()
    with capsys.disabled():
        print(
            f"\nzero window: traced memory before {megabytes(before)}, "
            f"peak {megabytes(peak)}, after {megabytes(after)}"
        )
