"""RFC 9113 to the letter (issue #17): each finding of the conformance run, tested with raw
frames against both servers (``rpc.Server`` and ``rpc.sync.Server``)."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hyperframe.frame import DataFrame, GoAwayFrame, PingFrame, RstStreamFrame

from codec.http2_errors import FRAME_SIZE_ERROR, NO_ERROR, SETTINGS_TIMEOUT
from tests.hostile.attacker import Attacker, grpc_headers, message
from tests.hostile.test_protocol_abuse import answer_of
from tests.interop.echo_servicer import make_server
from tests.interop.echo_servicer_sync import make_sync_server
from tests.rpc.server_thread import ServerThread
from transport import ConnectionOptions
from transport.guard import PREFACE

pytestmark = pytest.mark.time_limit(60)

KINDS = ["async", "sync"]


@contextlib.contextmanager
def serving(kind: str, **options: Any) -> Iterator[int]:
    """The echo service on an ``rpc.Server`` (on its own thread) or an ``rpc.sync.Server``:
    its port."""
    if kind == "async":
        with ServerThread(lambda: make_server(**options)) as target:
            yield int(target.rsplit(":", 1)[1])
        return
    server = make_sync_server(max_workers=8, **options)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(None)


@pytest.fixture(params=KINDS)
def port(request: pytest.FixtureRequest) -> Iterator[int]:
    with serving(request.param) as bound:
        yield bound


def goaway_of(attacker: Attacker) -> tuple[int, bytes]:
    attacker.wait_closed()
    goaway = attacker.seen.goaway
    assert goaway is not None, "no GOAWAY before the close"
    return goaway.error_code, goaway.additional_data


# --- §6.5: SETTINGS ------------------------------------------------------------------------


def test_settings_ack_with_a_payload_is_a_frame_size_error(port: int):
    with Attacker(port) as attacker:
        attacker.send(attacker.raw(0x4, 0x1, 0, b"\x00\x03\x00\x00\x00\x64"))  # ACK + one setting
        code, reason = goaway_of(attacker)
        assert code == FRAME_SIZE_ERROR and b"SETTINGS ACK" in reason


# --- §5.1, §5.4.2: frames on a stream we reset -----------------------------------------------


def test_frames_in_flight_on_a_stream_the_server_reset_are_ignored(port: int):
    with Attacker(port) as attacker:
        wrong = [(k, "application/json" if k == "content-type" else v) for k, v in grpc_headers()]
        attacker.send(attacker.headers(1, wrong))  # no END_STREAM: the body would follow
        assert answer_of(attacker, 1)[":status"] == "415"
        reset = attacker.wait_for(RstStreamFrame, stream_id=1)
        assert reset.error_code == NO_ERROR  # "stop sending", after the complete answer
        # What the client had sent before it read the reset: the body, its end, trailers.
        attacker.send(
            attacker.data(1, b"{}" * 1000)
            + attacker.data(1, b"", end_stream=False)
            + attacker.headers(1, [("x-trailer", "late")], end_stream=True)
            + attacker.ping(b"ignored?")
        )
        assert attacker.wait_for(PingFrame).opaque_data == b"ignored?"
        resets = [f for f in attacker.frames if isinstance(f, RstStreamFrame)]
        assert [(f.stream_id, f.error_code) for f in resets] == [(1, NO_ERROR)]
        # The connection (and its HPACK state) is fine.
        attacker.send(attacker.headers(3) + attacker.data(3, message(b""), end_stream=True))
        assert answer_of(attacker, 3)["grpc-status"] == "0"


# --- requests that are not gRPC: an HTTP status and a readable body ---------------------------


def body_of(attacker: Attacker, stream_id: int) -> bytes:
    return b"".join(
        f.data for f in attacker.frames if isinstance(f, DataFrame) and f.stream_id == stream_id
    )


def test_plain_get_is_405_with_allow_post_and_a_text_body(port: int):
    with Attacker(port) as attacker:
        get = [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "x")]
        attacker.send(attacker.headers(1, get, end_stream=True))
        answer = answer_of(attacker, 1)
        assert answer[":status"] == "405"
        assert answer["allow"] == "POST"
        assert answer["content-type"] == "text/plain; charset=utf-8"
        body = body_of(attacker, 1).decode()
        assert "gRPC server" in body and "POST" in body and "'GET'" in body
        # The request was complete: nothing to reset; the connection goes on.
        assert not [f for f in attacker.frames if isinstance(f, RstStreamFrame)]
        attacker.send(attacker.headers(3) + attacker.data(3, message(b""), end_stream=True))
        assert answer_of(attacker, 3)["grpc-status"] == "0"


@pytest.mark.parametrize("content_type", ["application/json", None])
def test_wrong_or_missing_content_type_is_415_with_a_text_body(port: int, content_type):
    headers = [
        (k, content_type if k == "content-type" else v)
        for k, v in grpc_headers()
        if k != "content-type" or content_type is not None
    ]
    with Attacker(port) as attacker:
        attacker.send(attacker.headers(1, headers) + attacker.data(1, b"{}", end_stream=True))
        answer = answer_of(attacker, 1)
        assert answer[":status"] == "415"
        assert answer["content-type"] == "text/plain; charset=utf-8"
        assert answer["grpc-status"] == "13"  # INTERNAL, as grpc-go says it beside the 415
        body = body_of(attacker, 1).decode()
        assert "application/grpc" in body
        assert (repr(content_type) if content_type else "missing") in body


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_shows_a_readable_answer(port: int):
    def curl(*args: str) -> str:
        done = subprocess.run(
            ["curl", "-s", "-i", "--http2-prior-knowledge", "--max-time", "10", *args],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )
        return done.stdout

    shown = curl(f"http://127.0.0.1:{port}/")
    assert shown.startswith("HTTP/2 405")
    assert "allow: POST" in shown
    assert "This is a gRPC server" in shown
    shown = curl("-d", "{}", "-H", "content-type: application/json", f"http://127.0.0.1:{port}/x")
    assert shown.startswith("HTTP/2 415")
    assert "This is a gRPC server" in shown and "'application/json'" in shown


# --- the drain after a GOAWAY for cause is bounded by bytes ---------------------------------


def test_the_drain_after_a_frame_size_error_is_bounded_by_bytes(port: int):
    """After GOAWAY(FRAME_SIZE_ERROR) the server reads and discards for a moment (so that the
    GOAWAY is not lost to a RST), but no more than LINGER_BYTES: a peer pushing at full speed
    is cut off at once. Before the bound, loopback took 2 to 3 GiB within the linger second;
    now a few MiB (the kernel's socket buffers)."""
    with Attacker(port) as attacker:
        attacker.send(attacker.headers(1))
        attacker.send((1 << 20).to_bytes(3, "big") + b"\x00\x00\x00\x00\x00\x01")
        goaway = attacker.wait_for(GoAwayFrame)
        assert goaway.error_code == FRAME_SIZE_ERROR
        chunk = bytes(1 << 20)
        sent = 0
        attacker.sock.settimeout(5)
        end = time.monotonic() + 5
        with pytest.raises(OSError):  # the server closes (resets) the connection
            while time.monotonic() < end:
                attacker.sock.sendall(chunk)
                sent += len(chunk)
        assert sent < 64 << 20, f"{sent >> 20} MiB went into the drain"


# --- the handshake timeout -------------------------------------------------------------------

QUICK_HANDSHAKE = ConnectionOptions(handshake_timeout=1.0)


@pytest.fixture(params=KINDS)
def quick_port(request: pytest.FixtureRequest) -> Iterator[int]:
    with serving(request.param, connection_options=QUICK_HANDSHAKE) as bound:
        yield bound


def handshake_goaway(attacker: Attacker) -> tuple[int, bytes]:
    code, reason = goaway_of(attacker)  # wait_closed is bounded by the attacker's deadline
    return code, reason


@pytest.mark.parametrize("sent", [b"", PREFACE], ids=["silent", "preface only"])
def test_an_unfinished_handshake_gets_goaway_settings_timeout(quick_port: int, sent: bytes):
    with Attacker(quick_port, handshake=False, timeout=8) as attacker:
        attacker.send(sent)
        code, reason = handshake_goaway(attacker)
        assert code == SETTINGS_TIMEOUT
        assert reason == b"did not receive HTTP/2 settings before handshake timeout"


def test_a_dripping_handshake_is_closed_too(quick_port: int):
    # The preface, then a SETTINGS frame of 100 settings, one byte every 0.1 s: never done
    # within the timeout, and the socket is never quiet for long.
    drip = PREFACE + Attacker.raw(0x4, 0, 0, b"\x00\x03\x00\x00\x00\x64" * 100)
    with Attacker(quick_port, handshake=False, timeout=8) as attacker:
        end = time.monotonic() + 6
        for byte in drip:
            if time.monotonic() > end or not attacker.send(bytes([byte])):
                break
            attacker.read(0.1)
            if attacker.seen.closed:
                break
        code, _ = handshake_goaway(attacker)
        assert code == SETTINGS_TIMEOUT


def test_a_finished_handshake_is_not_timed_out(quick_port: int):
    with Attacker(quick_port) as attacker:
        attacker.read(1.5)  # past the handshake timeout
        assert attacker.seen.goaway is None and not attacker.seen.closed
        attacker.send(attacker.headers(1) + attacker.data(1, message(b""), end_stream=True))
        assert answer_of(attacker, 1)["grpc-status"] == "0"
