"""The frame writer leaves h2 exactly as h2's own send calls would, and writes the same bytes.

Each test runs one sequence of sends twice on fresh connection pairs: once through
``H2Connection.send_headers`` / ``send_data`` (given the same pre-encoded header block) and once
through ``transport.frame_writer``, and compares the bytes queued, the state of every stream,
the flow-control windows and the errors.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

import h2.config
import h2.connection
import h2.exceptions
import h2.settings
import pytest

from transport.frame_writer import send_data_frame, send_headers_frame
from transport.hpack_blocks import PreEncodingEncoder, encode_block

REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/pkg.Svc/M"),
    (b":authority", b"example.com"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
]
RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0"), (b"grpc-message", b"")]


def connection(client_side: bool) -> h2.connection.H2Connection:
    config = h2.config.H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )
    conn = h2.connection.H2Connection(config)
    conn.encoder = PreEncodingEncoder(conn.encoder)  # type: ignore[assignment]
    conn.initiate_connection()
    return conn


def pair() -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
    client, server = connection(True), connection(False)
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    server.receive_data(client.data_to_send())
    return client, server


class Sender:
    """Sends through h2 (``fast=False``) or through the frame writer (``fast=True``)."""

    def __init__(self, fast: bool) -> None:
        self.fast = fast
        self.client, self.server = pair()

    def headers(self, conn: Any, stream_id: int, fields: Any, end: bool = False) -> None:
        block = encode_block(fields)
        if self.fast:
            assert send_headers_frame(conn, stream_id, fields, block, end)
        else:
            conn.encoder.next_block = block
            conn.send_headers(stream_id, fields, end_stream=end)

    def data(self, conn: Any, stream_id: int, payload: Any, end: bool = False) -> None:
        if self.fast:
            send_data_frame(conn, conn.streams[stream_id], stream_id, payload, end)
        else:
            conn.send_data(stream_id, payload, end_stream=end)

    def deliver(self, sender: Any, receiver: Any) -> list[str]:
        events = receiver.receive_data(sender.data_to_send())
        return [type(e).__name__ for e in events]


def state(conn: h2.connection.H2Connection) -> dict[str, Any]:
    return {
        "connection": conn.state_machine.state,
        "window": conn.outbound_flow_control_window,
        "streams": {
            sid: (
                s.state_machine.state,
                s.outbound_flow_control_window,
                s._authority,
                s.request_method,
                s.state_machine.trailers_sent,
                s.state_machine.headers_sent,
            )
            for sid, s in conn.streams.items()
        },
        "highest_outbound": conn.highest_outbound_stream_id,
    }


def both(script: Callable[[Sender], Any]) -> Optional[str]:
    """Run ``script`` both ways, check they agree; the error both raised, if any."""
    results = []
    for fast in (False, True):
        sender = Sender(fast)
        error: Optional[str] = None
        try:
            out = script(sender)
        except h2.exceptions.ProtocolError as exc:
            out, error = None, f"{type(exc).__name__}: {exc}"
        results.append(
            (
                out,
                error,
                state(sender.client),
                state(sender.server),
                sender.client.data_to_send(),
                sender.server.data_to_send(),
            )
        )
    assert results[0] == results[1]
    return results[0][1]


def test_a_unary_call_both_ways() -> None:
    def script(s: Sender) -> Any:
        s.headers(s.client, 1, REQUEST)
        s.data(s.client, 1, b"\x00\x00\x00\x00\x02hi", end=True)
        seen = s.deliver(s.client, s.server)
        s.headers(s.server, 1, RESPONSE)
        s.data(s.server, 1, memoryview(b"\x00\x00\x00\x00\x03bye"))
        s.headers(s.server, 1, TRAILERS, end=True)
        return seen + s.deliver(s.server, s.client)

    both(script)


def test_streams_open_one_after_another_and_end_in_any_order() -> None:
    def script(s: Sender) -> Any:
        for sid in (1, 3, 5):
            s.headers(s.client, sid, REQUEST)
        s.data(s.client, 3, b"x" * 1000)
        s.data(s.client, 1, b"", end=True)
        s.headers(s.client, 5, TRAILERS, end=True)  # client trailers end a request too
        s.data(s.client, 3, b"y" * 100, end=True)
        seen = s.deliver(s.client, s.server)
        s.headers(s.server, 3, [*TRAILERS, (b"x", b"1")], end=True)  # Trailers-Only
        return seen + s.deliver(s.server, s.client)

    both(script)


def test_a_request_that_ends_with_its_headers() -> None:
    def script(s: Sender) -> Any:
        s.headers(s.client, 1, REQUEST, end=True)
        return s.deliver(s.client, s.server)

    both(script)


@pytest.mark.parametrize(
    "mistake",
    [
        lambda s: s.headers(s.client, 1, TRAILERS),  # trailers without END_STREAM
        lambda s: s.data(s.client, 1, b"after the end"),  # the request was ended
        lambda s: s.headers(s.client, 1, TRAILERS, end=True),  # ... also for trailers
        lambda s: s.headers(s.client, 2, REQUEST),  # a client opens odd streams only
        lambda s: (
            s.headers(s.server, 1, RESPONSE)
            or s.headers(s.server, 1, RESPONSE)
            or s.headers(s.server, 1, RESPONSE)
        ),  # a third header block
    ],
)
def test_mistakes_raise_what_h2_raises_and_change_what_h2_changes(mistake: Any) -> None:
    def script(s: Sender) -> Any:
        s.headers(s.client, 1, REQUEST)
        s.data(s.client, 1, b"", end=True)
        s.headers(s.client, 3, REQUEST)
        s.deliver(s.client, s.server)
        mistake(s)

    assert both(script) is not None


def test_too_many_streams_is_h2s_error() -> None:
    def script(s: Sender) -> Any:
        settings = s.client.remote_settings
        settings.update({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 2})
        settings.acknowledge()
        for sid in (1, 3, 5):
            s.headers(s.client, sid, REQUEST)

    assert (both(script) or "").startswith("TooManyStreamsError")


def test_what_the_writer_leaves_to_h2() -> None:
    client, server = pair()
    big = [(b"x-big", b"v" * 20_000)]
    assert not send_headers_frame(client, 1, REQUEST + big, encode_block(REQUEST + big), False)
    assert not client.streams and not client.data_to_send()  # nothing done
    client.send_headers(1, REQUEST, end_stream=True)
    server.receive_data(client.data_to_send())
    informational = [(b":status", b"100")]
    assert not send_headers_frame(server, 1, informational, encode_block(informational), False)
