"""max_connection_idle, max_connection_age and max_connection_age_grace on both servers, over
real sockets: raw frames, h2rpc's two client APIs and grpcio. A client's next call after the
GOAWAY goes to a new connection without an error; calls outliving the grace are cancelled.
The frame-by-frame decisions are tested without sockets in
tests/transport/test_connection_lifetime.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from hyperframe.frame import GoAwayFrame, PingFrame
from peers import GRPCIO_AVAILABLE, GRPCIO_UNAVAILABLE_REASON

import rpc
from tests.hostile.attacker import Attacker, grpc_headers, message
from tests.rpc.server_thread import ServerThread
from transport.core import MAX_STREAM_ID, SHUTDOWN_PING_DATA

pytestmark = pytest.mark.time_limit(60)

SERVICE = "life.Life"


class Hung:
    """What the Hang handler saw: that it started, and that its call was cancelled."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.cancelled = threading.Event()


def make_handlers(hung: Hung) -> list[Any]:
    def peer(request: bytes, context: rpc.ServicerContext) -> bytes:
        return f"{os.getpid()} {context.peer()}".encode()

    def hang(request: bytes, context: rpc.ServicerContext) -> bytes:
        hung.started.set()
        end = time.monotonic() + 20
        while context.is_active() and time.monotonic() < end:
            time.sleep(0.01)
        if not context.is_active():
            hung.cancelled.set()
        return b"finished"

    handlers = {
        "Peer": rpc.unary_unary_rpc_method_handler(peer),
        "Hang": rpc.unary_unary_rpc_method_handler(hang),
    }
    return [rpc.method_handlers_generic_handler(SERVICE, handlers)]


@contextlib.contextmanager
def serving(kind: str, hung: Hung, **options: Any) -> Iterator[int]:
    """An async (on its own loop thread) or blocking server with ``options``; yields its port."""
    if kind == "async":
        thread = ServerThread(lambda: rpc.Server(make_handlers(hung), **options))
        with thread:
            yield thread.port
        return
    server = rpc.sync.Server(make_handlers(hung), **options)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(0.5)


# ------------------------------------------------------------------ clients of three kinds


class Client:
    """Unary calls to ``/life.Life/<name>`` through one channel of some kind."""

    def __init__(self, kind: str, port: int) -> None:
        self.kind = kind
        target = f"127.0.0.1:{port}"
        self._loop: asyncio.AbstractEventLoop | None = None
        if kind == "grpcio":
            import grpc

            self._channel: Any = grpc.insecure_channel(target)
        elif kind == "sync":
            self._channel = rpc.sync.Channel(target)
        else:
            self._loop = asyncio.new_event_loop()
            self._channel = self._loop.run_until_complete(self._open(target))

    @staticmethod
    async def _open(target: str) -> rpc.Channel:
        return rpc.Channel(target)

    def call(self, name: str, timeout: float = 10) -> bytes:
        path = f"/{SERVICE}/{name}"
        if self._loop is not None:
            method = self._channel.unary_unary(path)

            async def call() -> bytes:
                return await method(b"", timeout=timeout)  # type: ignore[no-any-return]

            return self._loop.run_until_complete(call())
        return self._channel.unary_unary(path)(b"", timeout=timeout)  # type: ignore[no-any-return]

    def pause(self, seconds: float) -> None:
        """Wait, as this kind of client does (an asyncio channel reads only while its loop runs:
        without that it would not see the GOAWAY, and its call would cross it, served)."""
        if self._loop is not None:
            self._loop.run_until_complete(asyncio.sleep(seconds))
        else:
            time.sleep(seconds)

    def error_code(self, exc: BaseException) -> str:
        code = exc.code()  # type: ignore[attr-defined]
        return str(code.name)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.run_until_complete(self._channel.close())
            self._loop.close()
        else:
            self._channel.close()


@contextlib.contextmanager
def client(kind: str, port: int) -> Iterator[Client]:
    c = Client(kind, port)
    try:
        yield c
    finally:
        c.close()


def call_errors() -> tuple[type[BaseException], ...]:
    errors: list[type[BaseException]] = [rpc.RpcError]
    with contextlib.suppress(ImportError):
        import grpc

        errors.append(grpc.RpcError)
    return tuple(errors)


SERVERS = ["async", "sync"]
needs_grpcio = pytest.mark.skipif(not GRPCIO_AVAILABLE, reason=GRPCIO_UNAVAILABLE_REASON)
GRPCIO = pytest.param("grpcio", marks=needs_grpcio)
CLIENTS = ["async", "sync", GRPCIO]


# ------------------------------------------------------------------ max_connection_age


@pytest.mark.parametrize("client_kind", CLIENTS)
@pytest.mark.parametrize("server_kind", SERVERS)
def test_calls_move_to_new_connections_after_max_connection_age_without_an_error(
    server_kind: str, client_kind: str
) -> None:
    with serving(server_kind, Hung(), max_connection_age=0.2) as port:
        with client(client_kind, port) as c:
            peers: set[bytes] = set()
            calls = 0
            end = time.monotonic() + 20
            while len(peers) < 3 and time.monotonic() < end:
                peers.add(c.call("Peer").split()[1])  # every call succeeds: none is lost
                calls += 1
                c.pause(0.01)
            assert len(peers) >= 3, f"{calls} calls, all on {peers}"


@pytest.mark.parametrize("client_kind", ["async", GRPCIO])
@pytest.mark.parametrize("server_kind", SERVERS)
def test_a_call_running_past_the_grace_is_cancelled_and_the_client_sees_unavailable(
    server_kind: str, client_kind: str
) -> None:
    hung = Hung()
    options = {"max_connection_age": 0.5, "max_connection_age_grace": 0.5}
    with serving(server_kind, hung, **options) as port:
        with client(client_kind, port) as c:
            started = time.monotonic()
            with pytest.raises(call_errors()) as caught:
                c.call("Hang", timeout=15)
            took = time.monotonic() - started
            assert c.error_code(caught.value) == "UNAVAILABLE"
            assert 0.8 < took < 5, took  # age 0.45 .. 0.55 s, then 0.5 s of grace
            assert hung.cancelled.wait(5), "the handler's call was not cancelled"
            assert c.call("Peer")  # and the next call goes to a new connection


@pytest.mark.parametrize("server_kind", SERVERS)
def test_a_call_within_the_grace_finishes(server_kind: str) -> None:
    hung = Hung()
    options = {"max_connection_age": 0.2, "max_connection_age_grace": 30}
    with serving(server_kind, hung, **options) as port, client("sync", port) as c:
        result: list[Any] = []
        caller = threading.Thread(target=lambda: result.append(c.call("Peer")))
        before = c.call("Peer").split()[1]
        time.sleep(0.4)  # the connection is now past its age: drained, closed once idle
        caller.start()
        caller.join(10)
        assert result and result[0].split()[1] != before


def test_the_age_goaways_on_the_wire_two_steps_then_close() -> None:
    with serving("async", Hung(), max_connection_age=0.3) as port, Attacker(port) as raw:
        raw.send(raw.headers(1, grpc_headers(f"/{SERVICE}/Peer")))
        raw.send(raw.data(1, message(b""), end_stream=True))
        ping = raw.wait_for(PingFrame, timeout=5)
        while ping.opaque_data != SHUTDOWN_PING_DATA or "ACK" in ping.flags:
            raw.read(0.05)
            ping = next(
                f for f in reversed(raw.frames) if isinstance(f, PingFrame) and "ACK" not in f.flags
            )
        ack = PingFrame(0, flags=["ACK"])
        ack.opaque_data = SHUTDOWN_PING_DATA
        raw.send(ack.serialize())
        raw.wait_closed(5)
        goaways = [
            (f.last_stream_id, f.error_code, f.additional_data)
            for f in raw.frames
            if isinstance(f, GoAwayFrame)
        ]
        assert goaways == [(MAX_STREAM_ID, 0, b"max_age"), (1, 0, b"max_age")]


# ------------------------------------------------------------------ max_connection_idle


@pytest.mark.parametrize("client_kind", CLIENTS)
@pytest.mark.parametrize("server_kind", SERVERS)
def test_an_idle_connection_is_closed_and_the_next_call_reconnects(
    server_kind: str, client_kind: str
) -> None:
    with serving(server_kind, Hung(), max_connection_idle=0.2) as port:
        with client(client_kind, port) as c:
            first = c.call("Peer").split()[1]
            # Idle: GOAWAY(max_idle), closed. (The blocking server's reader thread looks at its
            # timers at least once a second, so its idle clock may start that late.)
            c.pause(1.6)
            second = c.call("Peer").split()[1]
            assert first != second


@pytest.mark.parametrize("server_kind", SERVERS)
def test_the_idle_goaway_on_the_wire(server_kind: str) -> None:
    with serving(server_kind, Hung(), max_connection_idle=0.3) as port, Attacker(port) as raw:
        raw.wait_for(GoAwayFrame, timeout=5)
        raw.wait_for(PingFrame, timeout=5)
        ack = PingFrame(0, flags=["ACK"])
        ack.opaque_data = SHUTDOWN_PING_DATA
        raw.send(ack.serialize())
        raw.wait_closed(5)
        goaways = [
            (f.last_stream_id, f.error_code, f.additional_data)
            for f in raw.frames
            if isinstance(f, GoAwayFrame)
        ]
        assert goaways == [(MAX_STREAM_ID, 0, b"max_idle"), (0, 0, b"max_idle")]


def test_an_open_call_keeps_the_connection_from_being_idle() -> None:
    hung = Hung()
    with serving("async", hung, max_connection_idle=0.2) as port, client("sync", port) as c:
        result: list[bytes] = []
        errors: list[BaseException] = []

        def hang() -> None:
            try:
                result.append(c.call("Hang", timeout=0.8))
            except call_errors() as exc:
                errors.append(exc)

        caller = threading.Thread(target=hang)
        caller.start()
        assert hung.started.wait(5)
        caller.join(10)
        # The call ran 0.8 s on a connection with a 0.2 s idle limit: its deadline ended it.
        assert [c.error_code(e) for e in errors] == ["DEADLINE_EXCEEDED"]


# ------------------------------------------------------------------ options


def test_grpcio_option_names_in_milliseconds() -> None:
    server = rpc.Server(
        options=[
            ("grpc.max_connection_idle_ms", 1500),
            ("grpc.max_connection_age_ms", 30_000),
            ("grpc.max_connection_age_grace_ms", 2**31 - 1),  # grpcio's "infinite"
        ]
    )
    options = server._connection_options
    assert options.max_connection_idle == 1.5
    assert options.max_connection_age == 30.0
    assert options.max_connection_age_grace is None


@pytest.mark.parametrize("make", [rpc.Server, rpc.sync.Server])
def test_nonsense_values_are_refused_when_the_server_is_made(make: Callable[..., Any]) -> None:
    with pytest.raises(ValueError, match="max_connection_age"):
        make(max_connection_age=0)
    with pytest.raises(ValueError, match="max_connection_idle"):
        make(options=[("grpc.max_connection_idle_ms", -5)])


def test_the_default_is_off() -> None:
    options = rpc.Server()._connection_options
    assert (
        options.max_connection_idle,
        options.max_connection_age,
        options.max_connection_age_grace,
    ) == (None, None, None)


# ------------------------------------------------------------------ rpc.serve workers


def aged_factory() -> rpc.Server:
    return rpc.Server(make_handlers(Hung()), max_connection_age=0.2)


@pytest.mark.skipif(sys.platform == "win32", reason="SO_REUSEPORT and fork")
def test_one_channel_spreads_over_serve_workers_as_its_connections_age() -> None:
    stop = threading.Event()
    pids: set[bytes] = set()
    failures: list[BaseException] = []

    def on_ready(port: int) -> None:
        try:
            with rpc.sync.Channel(f"127.0.0.1:{port}") as channel:
                method = channel.unary_unary(f"/{SERVICE}/Peer")
                end = time.monotonic() + 20
                while len(pids) < 2 and time.monotonic() < end:
                    pids.add(method(b"", timeout=5).split()[0])
                    time.sleep(0.02)
        except BaseException as exc:
            failures.append(exc)
        finally:
            stop.set()

    rpc.serve(aged_factory, "127.0.0.1:0", workers=2, on_ready=on_ready, stop=stop, grace=1)
    assert not failures
    assert len(pids) == 2  # one long-lived channel, yet both workers served it
