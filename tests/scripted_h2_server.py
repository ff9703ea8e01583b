"""A raw h2 server whose answers a test scripts: for what gRPC servers rarely do on purpose (a
proxy's 502, REFUSED_STREAM, a GOAWAY with last-stream-id 0 after reading the request).

Subclasses implement ``answer(conn, stream_id, body)``, called once a request stream has ended
with its whole body (the gRPC-framed request messages); it queues the reply on ``conn`` and
returns True to end the connection once that is sent. ``with Server() as server:`` serves on
``server.port`` (loopback, a free port) in threads, one per connection, until the block ends.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import TypeVar

import h2.config
import h2.connection
import h2.events
import h2.exceptions

S = TypeVar("S", bound="ScriptedH2Server")


class ScriptedH2Server:
    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)  # so that serve() sees `closing` (close() does not wake it)
        self.port = self.listener.getsockname()[1]
        self.closing = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._connections: list[threading.Thread] = []

    def answer(self, conn: h2.connection.H2Connection, stream_id: int, body: bytes) -> bool:
        raise NotImplementedError

    def __enter__(self: S) -> S:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.closing = True
        self.listener.close()
        self._thread.join(5)
        for thread in self._connections:
            thread.join(5)

    def _serve(self) -> None:
        while not self.closing:
            try:
                sock, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._connection, args=(sock,), daemon=True)
            thread.start()
            self._connections.append(thread)

    def _connection(self, sock: socket.socket) -> None:
        sock.settimeout(10)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        bodies: dict[int, bytes] = {}
        with sock, contextlib.suppress(OSError, h2.exceptions.ProtocolError):
            while not self.closing:
                data = sock.recv(65536)
                if not data:
                    return
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.ConnectionTerminated):
                        return  # the client is closing
                    if isinstance(event, h2.events.RequestReceived):
                        bodies[event.stream_id] = b""
                    elif isinstance(event, h2.events.DataReceived):
                        bodies[event.stream_id] += event.data
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded) and self.answer(
                        conn, event.stream_id, bodies.pop(event.stream_id)
                    ):
                        sock.sendall(conn.data_to_send())
                        return  # e.g. a GOAWAY sent: this connection is done
                sock.sendall(conn.data_to_send())
