"""A raw HTTP/2 client on a blocking socket, for sending what a well-behaved client never would.

Written here with h2 directly, bounded by a socket timeout so a silent server fails the test fast.
"""

from __future__ import annotations

import socket
import time

import h2.config
import h2.connection
import h2.events

GRPC_REQUEST = [
    (":method", "POST"),
    (":scheme", "http"),
    (":path", "/h2rpc.test.EchoTest/Unary"),
    (":authority", "localhost"),
    ("te", "trailers"),
    ("content-type", "application/grpc"),
]


class RawClient:
    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        )
        self.conn.initiate_connection()
        self.events: list[h2.events.Event] = []
        self.deadline = time.monotonic() + timeout
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_request(
        self, headers: list[tuple[str, str]] | None = None, body: bytes = b"", end: bool = True
    ) -> int:
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, headers or GRPC_REQUEST, end_stream=not body and end)
        self.flush()
        if body:
            self.send_body(stream_id, body, end)
        return stream_id

    def send_body(self, stream_id: int, body: bytes, end: bool = True) -> None:
        """Send ``body`` in frames, within the peer's frame size and flow-control windows."""
        while body:
            room = min(self.conn.local_flow_control_window(stream_id), len(body))
            room = min(room, self.conn.max_outbound_frame_size)
            if room <= 0:
                self.receive_once()  # wait for WINDOW_UPDATE / SETTINGS
                continue
            chunk, body = body[:room], body[room:]
            self.conn.send_data(stream_id, chunk, end_stream=end and not body)
            self.flush()

    def receive_once(self) -> None:
        if time.monotonic() > self.deadline:
            raise TimeoutError("peer never opened the flow-control window")
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("server closed the connection")
        for event in self.conn.receive_data(data):
            self.events.append(event)
            if isinstance(event, h2.events.DataReceived):
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        self.flush()

    def wait_stream_done(self, stream_id: int) -> list[h2.events.Event]:
        """Events of ``stream_id`` until it ends or is reset; TimeoutError if it never does."""
        while True:
            mine = [e for e in self.events if getattr(e, "stream_id", None) == stream_id]
            if any(isinstance(e, (h2.events.StreamEnded, h2.events.StreamReset)) for e in mine):
                return mine
            if time.monotonic() > self.deadline:
                raise TimeoutError(f"stream {stream_id} got no answer: {mine}")
            self.receive_once()

    def close(self) -> None:
        self.sock.close()


def headers_of(events: list[h2.events.Event]) -> dict[str, str]:
    """All response header and trailer fields of a stream's events, merged."""
    merged: dict[str, str] = {}
    for event in events:
        if isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
            merged.update(dict(event.headers))
    return merged
