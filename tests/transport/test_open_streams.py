"""CountedOpenStreams counts open streams exactly as h2 does, and forgets the same closed ones."""

from __future__ import annotations

import h2.config
import h2.connection
import pytest

from transport.open_streams import CountedOpenStreams

_REQUEST = [(":method", "POST"), (":path", "/s/m"), (":scheme", "http"), (":authority", "x")]


def _pair(conn_class: type) -> tuple[h2.connection.H2Connection, h2.connection.H2Connection]:
    client = conn_class(h2.config.H2Configuration(client_side=True))
    server = conn_class(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    server.initiate_connection()
    server.receive_data(client.data_to_send())
    client.receive_data(server.data_to_send())
    return client, server


def _traffic(client: h2.connection.H2Connection, server: h2.connection.H2Connection) -> None:
    """Streams in every state that matters: open, half-closed both ways, closed, reset."""
    for stream_id in range(1, 41, 2):
        kind = stream_id % 5
        client.send_headers(stream_id, _REQUEST, end_stream=kind in (1, 2))
        server.receive_data(client.data_to_send())
        if kind == 2:  # closed: answered with trailers
            server.send_headers(stream_id, [(":status", "200")])
            server.send_headers(stream_id, [("grpc-status", "0")], end_stream=True)
        elif kind == 3:  # reset by the client
            client.reset_stream(stream_id)
        elif kind == 4:  # half-closed (local) on the server
            server.send_headers(stream_id, [(":status", "200")], end_stream=True)
        client.receive_data(server.data_to_send())
        server.receive_data(client.data_to_send())


@pytest.mark.parametrize("side", ["client", "server"])
def test_same_count_and_same_streams_forgotten_as_h2(side: str) -> None:
    results = []
    for conn_class in (h2.connection.H2Connection, CountedOpenStreams):
        client, server = _pair(conn_class)
        _traffic(client, server)
        conn = client if side == "client" else server
        before = dict(conn.streams)
        counts = (conn.open_outbound_streams, conn.open_inbound_streams)
        states = {sid: s.state_machine.state for sid, s in before.items()}
        results.append((counts, sorted(conn.streams), dict(conn._closed_streams), states))
    assert results[0] == results[1]
    counts, kept, forgotten, _ = results[1]
    assert sum(counts) > 0 and kept and forgotten  # the case covers open and closed streams
