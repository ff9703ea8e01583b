"""RFC 9113 to the letter (issue #17): each finding of the conformance run, tested with raw
frames against both servers (``rpc.Server`` and ``rpc.sync.Server``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from hyperframe.frame import PingFrame, RstStreamFrame

from codec.http2_errors import FRAME_SIZE_ERROR, NO_ERROR
from tests.hostile.attacker import Attacker, grpc_headers, message
from tests.hostile.test_protocol_abuse import answer_of
from tests.interop.echo_servicer import make_server
from tests.interop.echo_servicer_sync import make_sync_server
from tests.rpc.server_thread import ServerThread

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
