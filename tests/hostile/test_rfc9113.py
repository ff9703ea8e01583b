"""RFC 9113 to the letter (issue #17): each finding of the conformance run, tested with raw
frames against both servers (``rpc.Server`` and ``rpc.sync.Server``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from codec.http2_errors import FRAME_SIZE_ERROR
from tests.hostile.attacker import Attacker
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
