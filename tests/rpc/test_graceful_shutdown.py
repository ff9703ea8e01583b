"""Graceful shutdown in two steps (RFC 9113 §6.8), seen from a raw client and from our channels.

A stopping server sends GOAWAY(2^31-1, NO_ERROR) and a PING; once the client has answered the
PING (so it has read the GOAWAY and opens no more streams), or after a timeout, the final GOAWAY
names the last stream accepted. Streams the client opened before it read the first GOAWAY are
served, not refused. The frame-by-frame logic is tested without sockets in
tests/transport/test_core.py; these tests drive both servers over real sockets.
"""

from __future__ import annotations

import asyncio
import select
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import h2rpc_test_pb2 as pb
import hpack
import pytest
from hyperframe.frame import DataFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame

import rpc
from tests.hostile.attacker import Attacker, message
from tests.interop.echo_servicer import SERVICE, make_server
from tests.interop.echo_servicer_sync import make_sync_server
from tests.rpc.helpers import eventually, run
from tests.rpc.server_thread import ServerThread
from transport.core import MAX_STREAM_ID, SHUTDOWN_PING_DATA

pytestmark = pytest.mark.time_limit(30)


class Served:
    """An EchoTest server of either kind on a port, whose stop runs in the background."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._executor = ThreadPoolExecutor(1)
        self._thread: ServerThread | None = None
        self._sync: rpc.sync.Server | None = None
        if kind == "async":
            self._thread = ServerThread(make_server)
            self._thread.__enter__()
            self.port = self._thread.port
        else:
            self._sync = make_sync_server()
            self.port = self._sync.add_insecure_port("127.0.0.1:0")
            self._sync.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop_in_background(self, grace: float) -> Future[float]:
        """Start ``stop(grace)``; the future gives how long it took, in seconds."""
        started = time.monotonic()
        if self._thread is not None:
            loop = self._thread._loop
            assert loop is not None
            inner = asyncio.run_coroutine_threadsafe(self._thread.server.stop(grace), loop)
            return self._executor.submit(lambda: (inner.result(20), time.monotonic() - started)[1])
        assert self._sync is not None
        sync = self._sync
        return self._executor.submit(lambda: (sync.stop(grace), time.monotonic() - started)[1])

    def close(self) -> None:
        if self._thread is not None:
            self._thread.__exit__(None, None, None)
        elif self._sync is not None:
            self._sync.stop(0)
        self._executor.shutdown(wait=True)


@pytest.fixture(params=["async", "sync"])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    server = Served(request.param)
    try:
        yield server
    finally:
        server.close()


def echo(attacker: Attacker, stream_id: int, payload: bytes) -> None:
    """Send a whole Unary call on ``stream_id``."""
    body = message(pb.EchoRequest(payload=payload).SerializeToString())
    attacker.send(attacker.headers(stream_id) + attacker.data(stream_id, body, end_stream=True))


def answer(attacker: Attacker, stream_id: int, timeout: float = 5.0) -> tuple[str, bytes]:
    """The grpc-status and the message payload the server answered on ``stream_id``."""
    attacker.wait_for(HeadersFrame, timeout, stream_id)  # the response head came
    end = time.monotonic() + timeout
    while not any(
        isinstance(f, HeadersFrame) and f.stream_id == stream_id and "END_STREAM" in f.flags
        for f in attacker.frames
    ):
        assert time.monotonic() < end, f"stream {stream_id} not finished: {attacker.frames[-8:]}"
        attacker.read(0.05)
    decoder = hpack.Decoder()  # every block in order: the HPACK table stays in step
    fields: dict[str, str] = {}
    body = b""
    for frame in attacker.frames:
        if isinstance(frame, HeadersFrame):
            block = decoder.decode(frame.data)
            if frame.stream_id == stream_id:
                fields.update((str(k), str(v)) for k, v in block)
        elif isinstance(frame, DataFrame) and frame.stream_id == stream_id:
            body += frame.data
    assert fields.get(":status") == "200", fields
    return fields.get("grpc-status", ""), pb.EchoResponse.FromString(body[5:]).payload


def control_frames(frames: list[Frame]) -> list[tuple[str, object]]:
    """The GOAWAYs (last-stream-id) and PINGs (opaque data) among ``frames``, in order."""
    out: list[tuple[str, object]] = []
    for frame in frames:
        if isinstance(frame, GoAwayFrame):
            out.append(("GOAWAY", frame.last_stream_id))
        elif isinstance(frame, PingFrame) and "ACK" not in frame.flags:
            out.append(("PING", frame.opaque_data))
    return out


def peek_frames(sock: socket.socket) -> list[Frame]:
    """The whole frames waiting in the socket's receive buffer, left there unread."""
    view = memoryview(sock.recv(65536, socket.MSG_PEEK))
    frames = []
    while len(view) >= 9:
        frame, length = Frame.parse_frame_header(view[:9])
        if len(view) < 9 + length:
            break
        frame.parse_body(view[9 : 9 + length])
        frames.append(frame)
        view = view[9 + length :]
    return frames


def connected(served: Served) -> Attacker:
    """A raw client whose connection the server has accepted and served a call on."""
    attacker = Attacker(served.port)
    echo(attacker, 1, b"first")
    assert answer(attacker, 1) == ("0", b"first")
    attacker.read(0.1)  # whatever else the call brought
    return attacker


def test_a_stream_opened_before_the_client_read_the_goaway_is_served(served: Served):
    with connected(served) as attacker:
        stopping = served.stop_in_background(grace=5)
        # Wait until GOAWAY(2^31-1) and its PING are in our receive buffer, without reading
        # them: as far as this client knows, the connection is still open for new streams.
        assert select.select([attacker.sock], [], [], 5)[0], "no GOAWAY came"
        end = time.monotonic() + 5
        while ("PING", SHUTDOWN_PING_DATA) not in control_frames(peek_frames(attacker.sock)):
            assert time.monotonic() < end
            time.sleep(0.01)
        assert control_frames(peek_frames(attacker.sock)) == [
            ("GOAWAY", MAX_STREAM_ID),
            ("PING", SHUTDOWN_PING_DATA),
        ]
        echo(attacker, 3, b"late")
        # Now the client reads the GOAWAY and the PING, and answers the PING.
        attacker.wait_for(PingFrame)
        ack = PingFrame(0, flags=["ACK"])
        ack.opaque_data = SHUTDOWN_PING_DATA
        attacker.send(ack.serialize())
        assert answer(attacker, 3) == ("0", b"late")  # served, not refused
        attacker.wait_closed(5)
        assert control_frames(attacker.frames) == [
            ("GOAWAY", MAX_STREAM_ID),
            ("PING", SHUTDOWN_PING_DATA),
            ("GOAWAY", 3),  # the final GOAWAY names the late stream: it was processed
            ("GOAWAY", 3),  # and the close, once no call is left, repeats it
        ]
        assert all(f.error_code == 0 for f in attacker.frames if isinstance(f, GoAwayFrame))
        assert stopping.result(10) < 3


def test_a_client_that_never_answers_the_ping_still_gets_the_final_goaway(served: Served):
    with connected(served) as attacker:
        # This client reads nothing until the server has stopped: the PING goes unanswered.
        took = served.stop_in_background(grace=5).result(10)
        # The final GOAWAY waits for the PING's timeout (1 s by default), not for the grace;
        # the blocking server then also waits for its lingering close (1 s: this peer reads
        # nothing, so it never closes its side).
        assert 0.9 < took < 3.5, took
        attacker.wait_closed(5)
        assert control_frames(attacker.frames) == [
            ("GOAWAY", MAX_STREAM_ID),
            ("PING", SHUTDOWN_PING_DATA),
            ("GOAWAY", 1),
            ("GOAWAY", 1),  # the close repeats it
        ]


def test_the_no_answer_wait_is_bounded_by_the_grace_period(served: Served):
    with connected(served) as attacker:
        took = served.stop_in_background(grace=0.3).result(10)
        assert took < 0.3 + 1.0 + 1.0, took  # the grace, the lingering close and some slack
        attacker.wait_closed(5)
        goaways = [f.last_stream_id for f in attacker.frames if isinstance(f, GoAwayFrame)]
        assert goaways == [MAX_STREAM_ID, 1]  # the close names the last stream


def shut_down_connections(thread: ServerThread) -> list[tuple[bool, int | None]]:
    """Begin a graceful shutdown of every connection of the server (which keeps listening);
    return each connection's (draining, last-stream-id of its GOAWAY)."""

    def on_loop() -> list[tuple[bool, int | None]]:
        conns = [c for listener in thread.server._listeners for c in listener.connections]
        for conn in conns:
            conn.shut_down()
        return [(c.session.draining, c.session.core.goaway_sent_last_stream_id) for c in conns]

    return thread.call(on_loop)  # type: ignore[no-any-return]


def server_goaways(thread: ServerThread) -> list[tuple[bool, int | None]]:
    def on_loop() -> list[tuple[bool, int | None]]:
        conns = [c for listener in thread.server._listeners for c in listener.connections]
        return [(c.session.draining, c.session.core.goaway_sent_last_stream_id) for c in conns]

    return thread.call(on_loop)  # type: ignore[no-any-return]


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.01)


def test_our_async_channel_moves_to_a_new_connection_and_finishes_calls_in_flight():
    thread = ServerThread(make_server)
    with thread as target:

        async def body() -> None:
            async with rpc.Channel(target) as channel:
                stub = rpc.Stub(channel, SERVICE)
                await stub.Unary(pb.EchoRequest())
                first = channel._conn
                assert first is not None
                slow = pb.EchoRequest(payload=b"old", sleep_ms=500)
                in_flight = asyncio.ensure_future(stub.Unary(slow, timeout=10))
                await asyncio.sleep(0.1)
                assert shut_down_connections(thread) == [(True, MAX_STREAM_ID)]
                await eventually(lambda: first.goaway_received)
                new = await stub.Unary(pb.EchoRequest(payload=b"new"), timeout=5)
                assert new.payload == b"new" and channel._conn is not first
                # The client answered the PING: the old connection's final GOAWAY names the
                # call in flight (stream 3), which finishes there.
                await eventually(lambda: (False, 3) in server_goaways(thread))
                assert (await in_flight).payload == b"old"

        run(body())


def test_our_sync_channel_moves_to_a_new_connection_and_finishes_calls_in_flight():
    thread = ServerThread(make_server)
    with thread as target, rpc.sync.Channel(target) as channel:
        stub = rpc.Stub(channel, SERVICE)
        stub.Unary(pb.EchoRequest(), timeout=5)
        first = channel._conn
        assert first is not None
        with ThreadPoolExecutor(1) as pool:
            slow = pb.EchoRequest(payload=b"old", sleep_ms=500)
            in_flight = pool.submit(stub.Unary, slow, timeout=10)
            wait_until(lambda: first.active_streams == 1)
            assert shut_down_connections(thread) == [(True, MAX_STREAM_ID)]
            wait_until(lambda: first.goaway_received)
            new = stub.Unary(pb.EchoRequest(payload=b"new"), timeout=5)
            assert new.payload == b"new" and channel._conn is not first
            wait_until(lambda: (False, 3) in server_goaways(thread))
            assert in_flight.result(10).payload == b"old"
